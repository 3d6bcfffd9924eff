"""Opening an import source: one-line errors, telling the formats apart, bounded inflating.

:func:`sniff_format` looks at the first bytes of a file (a HAR, wstape's JSONL export or
a mitmproxy flow dump); the importer uses it to pick a format, to refuse a ``--format``
that does not fit the file, and the CLI to tell someone who gives a HAR where a cassette
is expected to run ``wstape import``.

:class:`JsonSource` is the byte stream the incremental JSON parser reads: the file as it
is, or inflated from mitmproxy's zlib ``.zhar`` with a cap on the inflated size (a 1 MB
file can inflate to 1 GiB). It also refuses a run of more than ``max_string`` bytes
without a quote: the parser keeps a whole JSON string in memory, so that bounds what one
value (a message's ``data``) can cost.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from wstape.cassettes.files import NotRegular, open_regular
from wstape.cassettes.schema import FORMAT_NAME
from wstape.interchange.errors import InterchangeError


class ImportFormat(StrEnum):
    """What ``wstape import`` reads."""

    HAR = "har"
    """HAR 1.2 JSON (Chrome, Playwright, mitmproxy's savehar, wstape), or a zlib ``.zhar``."""
    JSONL = "jsonl"
    """wstape's own JSONL export (``wstape export --format jsonl``)."""
    MITM = "mitm"
    """A mitmproxy flow dump (``mitmdump -w``)."""


FORMAT_NAMES = {
    ImportFormat.HAR: "a HAR file",
    ImportFormat.JSONL: "a wstape JSONL export",
    ImportFormat.MITM: "a mitmproxy flow dump",
}
"""How messages name each format."""

HEAD_BYTES = 4096
"""How much of a file :func:`sniff_format` looks at."""
SUFFIXES = {
    ".har": ImportFormat.HAR,
    ".zhar": ImportFormat.HAR,
    ".json": ImportFormat.HAR,
    ".jsonl": ImportFormat.JSONL,
    ".ndjson": ImportFormat.JSONL,
    ".mitm": ImportFormat.MITM,
    ".flows": ImportFormat.MITM,
    ".dump": ImportFormat.MITM,
}
"""File name endings that decide the format when the content does not."""
JSONL_TYPES = frozenset({"header", "connection", "message", "close", "note"})
"""The ``type`` values of JSONL export lines (docs/cassette-format.md)."""

CHUNK = 64 * 1024
MAX_STRING = 128 * 1024 * 1024
"""Longest run of bytes without a quote (so, longest JSON string) a HAR may have."""
MIN_INFLATED_LIMIT = 64 * 1024 * 1024
INFLATE_RATIO = 50
"""A ``.zhar`` may inflate to ``max(MIN_INFLATED_LIMIT, INFLATE_RATIO * its size)``
unless told otherwise: HAR JSON compresses about 3-15 times, a zip bomb about 1000."""

_BOM = b"\xef\xbb\xbf"
_HAR_START = re.compile(rb'\{\s*"log"\s*:')
_JSONL_START = re.compile(rb'\{\s*"type"\s*:\s*"(?:header|connection|message|close|note)"')


def open_input(path: str | Path) -> BinaryIO:
    """Open an import source for reading, or raise InterchangeError in one line."""
    try:
        fd, _ = open_regular(path)
        return os.fdopen(fd, "rb")
    except FileNotFoundError:
        raise InterchangeError(path, "no such file") from None
    except IsADirectoryError:
        raise InterchangeError(path, "is a directory") from None
    except NotRegular as e:
        if e.kind == "a directory":
            raise InterchangeError(path, "is a directory") from None
        raise InterchangeError(
            path,
            f"is {e.kind}, not a regular file (import reads it more than once: "
            "save it to a file first)",
        ) from None
    except OSError as e:
        raise InterchangeError(path, f"cannot open: {e.strerror or e}") from e


def read_head(path: str | Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of an import source (InterchangeError if unreadable)."""
    with open_input(path) as f:
        try:
            return f.read(size)
        except OSError as e:
            raise InterchangeError(path, f"cannot read: {e.strerror or e}") from e


def is_cassette(head: bytes) -> bool:
    """True when ``head`` starts like a wstape cassette (a msgpack header record)."""
    return FORMAT_NAME.encode() in head[:64] and head[:1] not in (b"{", b"[")


def is_zlib(head: bytes) -> bool:
    """True when ``head`` starts like a zlib stream (mitmproxy's ``.zhar``, RFC 1950 §2.2)."""
    return len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0


_COMPRESSED = (
    (b"\x1f\x8b", "gzip", "gunzip -k"),
    (b"BZh", "bzip2", "bunzip2 -k"),
    (b"\xfd7zXZ\x00", "xz", "unxz -k"),
    (b"\x28\xb5\x2f\xfd", "zstd", "unzstd"),
    (b"PK\x03\x04", "zip", "unzip"),
)


def compressed_as(head: bytes) -> str | None:
    """What to say of a file compressed in a way the import does not inflate (only
    mitmproxy's zlib ``.zhar`` is read compressed): ``is gzip-compressed: ...``."""
    for magic, kind, tool in _COMPRESSED:
        if head.startswith(magic):
            return f"is {kind}-compressed: decompress it first (`{tool}`)"
    return None


def looks_like_flow_file(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a tnetstring flow dump."""
    digits = head[:13].split(b":", 1)[0]
    return bool(digits) and digits.isdigit() and b":" in head[:13]


def _jsonl_line(text: bytes) -> bool:
    if _JSONL_START.match(text):
        return True
    line, newline, _ = text.partition(b"\n")
    if not newline:
        return False
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and obj.get("type") in JSONL_TYPES


def sniff_format(head: bytes) -> ImportFormat | None:
    """The format the first bytes of a file show, or None when they show none."""
    if is_zlib(head):
        return ImportFormat.HAR
    text = head.removeprefix(_BOM).lstrip()
    if text.startswith(b"{"):
        if _HAR_START.match(text):
            return ImportFormat.HAR
        return ImportFormat.JSONL if _jsonl_line(text) else ImportFormat.HAR
    if looks_like_flow_file(head):
        return ImportFormat.MITM
    return None


def sniff_file(path: str | Path) -> ImportFormat | None:
    """The format the start of the file at ``path`` shows; None when it shows none, is a
    cassette, or cannot be read (never raises)."""
    try:
        head = read_head(path)
    except InterchangeError:
        return None
    return None if is_cassette(head) else sniff_format(head)


def detect_format(path: str | Path, head: bytes | None = None) -> ImportFormat:
    """The format of an import source: by content first, then by its name.

    Raises InterchangeError for a cassette, and for a file that shows no format.
    """
    head = read_head(path) if head is None else head
    if is_cassette(head):
        raise InterchangeError(path, "is already a wstape cassette")
    found = sniff_format(head)
    if found is not None:
        return found
    by_name = SUFFIXES.get(Path(path).suffix.lower())
    if by_name is not None:
        return by_name
    if not head.strip():
        raise InterchangeError(path, "empty file (use --format to say what it is)")
    raise InterchangeError(
        path,
        "neither a HAR file, a wstape JSONL export nor a mitmproxy flow dump "
        "(use --format to force one)",
    )


class StreamError(InterchangeError):
    """What :class:`JsonSource` refuses: a corrupt or too big zlib stream, or a value (a
    too long string, a lone surrogate) when ``about_value``."""

    def __init__(self, path: str | Path, message: str, *, about_value: bool = False) -> None:
        super().__init__(path, message)
        self.about_value = about_value


def default_inflate_limit(raw: BinaryIO) -> int:
    """How far a ``.zhar`` may inflate unless told: see ``INFLATE_RATIO``."""
    try:
        size = os.fstat(raw.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        size = 0
    return max(MIN_INFLATED_LIMIT, INFLATE_RATIO * size)


class JsonSource:
    """A readable byte stream over a HAR file for the JSON parser (see the module doc).

    Raises InterchangeError from ``read`` when the inflated size passes ``max_inflated``,
    the zlib data is corrupt or cut short, or a run without a quote passes
    ``max_string``.
    """

    def __init__(
        self,
        raw: BinaryIO,
        path: str | Path,
        *,
        max_inflated: int | None = None,
        max_string: int | None = None,
    ) -> None:
        self.path = str(path)
        self._raw = raw
        self._pending = raw.read(2)
        self.compressed = is_zlib(self._pending)
        self._z = zlib.decompressobj() if self.compressed else None
        if max_inflated is None:
            max_inflated = default_inflate_limit(raw)
        self.max_inflated = max_inflated
        self.max_string = MAX_STRING if max_string is None else max_string
        self.position = 0
        """Bytes handed to the parser so far (inflated bytes for a ``.zhar``)."""
        self.head = b""
        """The first bytes handed to the parser (for error messages)."""
        self._gap = 0
        self._escaped = False
        self._tail = b""

    def _fail(self, message: str, *, about_value: bool = False) -> StreamError:
        return StreamError(self.path, message, about_value=about_value)

    def _source(self, size: int) -> bytes:
        data = self._pending + self._raw.read(max(size - len(self._pending), 0))
        self._pending = b""
        return data

    def _inflate(self, size: int) -> bytes:
        z = self._z
        assert z is not None
        while not z.eof:
            src = z.unconsumed_tail or self._source(CHUNK)
            if not src:
                raise self._fail("not a HAR file (the zlib data is cut short)")
            try:
                out = z.decompress(src, size)
            except zlib.error as e:
                raise self._fail(f"not a HAR file (bad zlib data: {e})") from e
            if out:
                return out
        if z.unused_data or self._source(1):
            raise self._fail("not a HAR file (data after the end of the zlib stream)")
        return b""

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""
        size = CHUNK if size < 0 else size
        data = self._inflate(size) if self._z is not None else self._source(size)
        if self.position == 0:
            data = data.removeprefix(_BOM)
            self.head = data[:16]
        self.position += len(data)
        if self._z is not None and self.position > self.max_inflated:
            raise self._fail(
                f"inflates to more than {self.max_inflated} bytes (a zip bomb?); "
                "raise the limit with --max-inflated if the file is genuine"
            )
        self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        if data:
            self._scan_quotes(data)
        # JSON can spell a lone surrogate (\ud800), which no cassette can hold; parsers
        # differ (yajl turns some into "?"), so refuse it here, before any of them. The
        # last bytes of a chunk are checked again with the next one (an escape can be cut).
        window = self._tail + data
        if _SURROGATE.search(window) is not None:
            first = max(0, len(self._tail) - _MARGIN)  # where the last check stopped
            last = len(window) - _MARGIN if data else len(window)
            for lone in _LONE_SURROGATE.finditer(window):
                escape = lone.start(1 if lone.group(1) else 2) - 1
                if first <= escape < last:
                    code = (lone.group(1) or lone.group(2)).decode("ascii", "replace")
                    raise self._fail(
                        f"a lone surrogate escape (\\{code}) near byte {self.position}: "
                        "not valid Unicode",
                        about_value=True,
                    )
        self._tail = window[-_KEEP:]

    def _scan_quotes(self, data: bytes) -> None:
        # A quote not preceded by a backslash ends or starts a JSON string; a long run
        # without one is a long string (or padding) that the parser would buffer whole.
        start = 1 if self._escaped and data[:1] == b'"' else 0
        first = _QUOTE.search(data, start)
        if first is None:
            self._gap += len(data)
        else:
            if self._gap + first.start() > self.max_string:
                self._too_long()
            last = _QUOTE_REVERSED.search(data[::-1])
            assert last is not None
            self._gap = last.start()
        self._escaped = data.endswith(b"\\")
        if self._gap > self.max_string:
            self._too_long()

    def _too_long(self) -> None:
        raise self._fail(
            f"a JSON string (or a run of bytes without a quote) near byte {self.position} "
            f"is longer than {self.max_string // (1024 * 1024)} MiB",
            about_value=True,
        )


_QUOTE = re.compile(rb'(?<!\\)"')
_KEEP, _MARGIN = 32, 12
"""Bytes of a chunk kept for the next one's check, and how many of them are checked
only then (an escape and what follows it are at most 12 bytes)."""
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile(
    # an escape (a backslash after an even run of backslashes) of a high surrogate not
    # followed by a low one, or of a low surrogate not preceded by a high one
    rb"(?:^|[^\\])(?:\\\\)*\\(u[dD][89abAB][0-9a-fA-F]{2})(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?:^|[^\\])(?:\\\\)*(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\(u[dD][c-fC-F][0-9a-fA-F]{2})"
)
_QUOTE_REVERSED = re.compile(rb'"(?!\\)')
"""In the reversed bytes: a quote not followed (so, originally not preceded) by ``\\``."""


__all__ = [
    "FORMAT_NAMES",
    "HEAD_BYTES",
    "MAX_STRING",
    "ImportFormat",
    "JsonSource",
    "StreamError",
    "compressed_as",
    "detect_format",
    "is_cassette",
    "is_zlib",
    "looks_like_flow_file",
    "open_input",
    "read_head",
    "sniff_file",
    "sniff_format",
]
