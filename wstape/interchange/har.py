"""HAR 1.2 export and import, with Chrome's ``_webSocketMessages`` and wstape extensions.

Export (:func:`export_har`) writes one HAR entry per recorded connection, shaped as Chrome
DevTools writes a WebSocket: the upgrade request and response, ``"_resourceType":
"websocket"`` and ``_webSocketMessages`` (``{"type": "send"|"receive", "time": <epoch
seconds>, "opcode": 1|2, "data": <text, or base64 for binary>}``). Everything a HAR has no
field for (close code, reason and who closed, connection id, offered subprotocols, TLS
facts, exact times, notes, header bytes that are not UTF-8) goes into ``_wstape`` objects,
so ``import(export(cassette))`` gives back the same records.

It streams: a first pass over the cassette collects each connection's open, close and
notes (small); a second pass, resumed at the first connection's open, writes the messages
of up to ``SPOOL_GROUP`` connections at a time to temporary files, one per connection, and
the entries are then written from them in order. Memory does not grow with the number of
messages, and a cassette with many interleaved connections is read about once per group.

Import (:func:`read_har`) accepts HAR files without the extensions (Chrome, Playwright,
mitmproxy's ``savehar``): whatever they do not say stays unknown and is never invented
(a connection whose end is not recorded gets ``Close(by=None, code=None)`` and a note).
The field mapping is documented in docs/interchange.md.

Errors: a HAR that cannot be used raises :class:`InterchangeError`, naming the file and
the entry index.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO, NoReturn
from urllib.parse import parse_qsl, urlsplit

from wstape.cassettes.reader import CassetteReader
from wstape.core.errors import WstapeError
from wstape.core.model import (
    Close,
    Headers,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
    TlsInfo,
    b64,
    decode_header_value,
    split_header_list,
)
from wstape.core.version import __version__
from wstape.interchange.jsonl import close_fields, iso_utc

EXT = "_wstape"
"""Name of the extension objects (HAR custom fields start with an underscore)."""
EXT_VERSION = 1
"""Version of the ``_wstape`` extension fields, written in ``log._wstape.version``."""
UNKNOWN_END_NOTE = (
    "imported from HAR: how the connection ended is not recorded there (close unknown)"
)
NOT_ON_WIRE = frozenset({1005, 1006, 1015})
SPOOL_GROUP = 128
"""Connections whose messages one scan of the cassette spools to temporary files."""
MAX_HAR_BYTES = 4 * 1024 * 1024 * 1024
"""Largest (decompressed) HAR file read."""


class InterchangeError(WstapeError):
    """An import source (HAR, mitmproxy flow file) cannot be used.

    The message names the file and, when known, the entry (HAR) or flow index (0-based).
    """

    def __init__(
        self, path: str | Path, message: str, *, index: int | None = None, what: str = "entry"
    ) -> None:
        self.path = str(path)
        self.index = index
        self.detail = message
        where = self.path if index is None else f"{self.path}, {what} {index}"
        super().__init__(f"{where}: {message}")


# -- export ----------------------------------------------------------------------------


@dataclass
class HarExportResult:
    """What :func:`export_har` wrote and what it had to leave out."""

    connections: int = 0
    messages: int = 0
    orphans: int = 0
    """Records of a connection whose ``open`` record is not in the cassette (left out)."""
    extra_closes: int = 0
    """Second and later close records of one connection (only the last is kept)."""
    truncated_at: int | None = None


@dataclass
class _Conn:
    open: Open
    offset: int
    index: int
    last_offset: int
    messages: int = 0
    last_t: float = 0.0
    close: Close | None = None
    close_after: int = 0
    notes: list[tuple[int, Note]] = field(default_factory=list)
    """``(records before it, note)``: records counts this connection's messages and close."""

    @property
    def seen(self) -> int:
        return self.messages + (1 if self.close is not None else 0)


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _headers_are_text(headers: Headers) -> bool:
    return all(_utf8(k) is not None and _utf8(v) is not None for k, v in headers)


def _har_headers(headers: Headers) -> list[dict[str, str]]:
    return [{"name": decode_header_value(k), "value": decode_header_value(v)} for k, v in headers]


def _raw_headers(headers: Headers) -> list[list[str]]:
    return [[b64(k), b64(v)] for k, v in headers]


def _close_json(close: Close) -> dict[str, Any]:
    return {"t": close.t, **close_fields(close)}


def _entry(conn: _Conn) -> dict[str, Any]:
    o = conn.open
    query = [{"name": k, "value": v} for k, v in parse_qsl(o.query, keep_blank_values=True)]
    content: dict[str, Any] = {
        "size": len(o.body),
        "mimeType": o.response_header("content-type") or "x-unknown",
    }
    if o.body:
        text = _utf8(o.body)
        if text is None:
            content["text"] = b64(o.body)
            content["encoding"] = "base64"
        else:
            content["text"] = text
    ext: dict[str, Any] = {
        "conn": o.conn,
        "started_at": o.started_at,
        "scheme": o.scheme,
        "host": o.host,
        "port": o.port,
        "target": o.target,
        "subprotocols": list(o.subprotocols),
        "extensions": list(o.extensions),
        "subprotocol": o.subprotocol,
        "client": o.client,
        "tls": None
        if o.tls is None
        else {"version": o.tls.version, "sni": o.tls.sni, "alpn": o.tls.alpn},
        "close": None
        if conn.close is None
        else {**_close_json(conn.close), "after": conn.close_after},
        "notes": [{"t": n.t, "text": n.text, "after": after} for after, n in conn.notes],
    }
    if not _headers_are_text(o.request_headers):
        ext["request_headers"] = _raw_headers(o.request_headers)
    if not _headers_are_text(o.response_headers):
        ext["response_headers"] = _raw_headers(o.response_headers)
    end = max(conn.last_t, 0.0)
    entry: dict[str, Any] = {
        "startedDateTime": iso_utc(o.started_at),
        "time": round(end * 1000, 3),
        "request": {
            "method": o.method,
            "url": o.url,
            "httpVersion": o.http_version,
            "cookies": [],
            "headers": _har_headers(o.request_headers),
            "queryString": query,
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": o.status,
            "statusText": o.reason,
            "httpVersion": o.http_version,
            "cookies": [],
            "headers": _har_headers(o.response_headers),
            "content": content,
            "redirectURL": o.response_header("location") or "",
            "headersSize": -1,
            "bodySize": len(o.body),
        },
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": 0,
            "receive": 0,
        },
        "_resourceType": "websocket",
        EXT: ext,
    }
    return entry


def har_message(message: Message, started_at: float) -> dict[str, Any]:
    """One ``_webSocketMessages`` item (Chrome's shape plus ``_wstape.t``)."""
    ext: dict[str, Any] = {"t": message.t}
    if message.opcode is Opcode.TEXT:
        text = _utf8(message.payload)
        if text is None:
            # Chrome's text frames carry text; keep invalid UTF-8 byte for byte anyway.
            text = b64(message.payload)
            ext["encoding"] = "base64"
        data = text
        opcode = 1
    else:
        data = b64(message.payload)
        opcode = 2
    return {
        "type": "send" if message.side is Side.CLIENT else "receive",
        "time": started_at + message.t,
        "opcode": opcode,
        "data": data,
        EXT: ext,
    }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _spool_messages(reader: CassetteReader, group: list[_Conn]) -> dict[int, tuple[IO[str], int]]:
    """One scan over the part of the cassette where ``group``'s connections live, writing
    each connection's HAR messages to a temporary file of its own."""
    spools: dict[int, tuple[IO[str], int]] = {}
    busy = [c for c in group if c.messages]
    if not busy:
        return spools
    by_offset = {c.offset: c for c in busy}
    first = min(busy, key=lambda c: c.offset)
    end = max(c.last_offset for c in busy)
    active: dict[int, _Conn | None] = {}
    for _, offset, record in reader.iter_with_offsets(start=first.offset, index=first.index):
        if offset > end:
            break
        if isinstance(record, Open):
            # an id can be reused: records belong to the latest open with their id
            active[record.conn] = by_offset.get(offset)
        elif isinstance(record, Message):
            conn = active.get(record.conn)
            if conn is None or offset > conn.last_offset:
                continue
            spool, count = spools.get(conn.offset) or (
                tempfile.TemporaryFile("w+", encoding="utf-8"),
                0,
            )
            spool.write("\n" if count == 0 else ",\n")
            spool.write(_dumps(har_message(record, conn.open.started_at)))
            spools[conn.offset] = (spool, count + 1)
    return spools


def _write_group(
    reader: CassetteReader,
    group: list[_Conn],
    out: IO[str],
    result: HarExportResult,
    *,
    first: bool,
) -> None:
    spools = _spool_messages(reader, group)
    try:
        for i, conn in enumerate(group):
            out.write("\n" if first and i == 0 else ",\n")
            entry = _dumps(_entry(conn))
            if not conn.open.accepted and conn.messages == 0:
                out.write(entry)
            else:
                out.write(entry[:-1])
                out.write(', "_webSocketMessages": [')
                spooled = spools.get(conn.offset)
                if spooled is not None:
                    spool, count = spooled
                    spool.seek(0)
                    shutil.copyfileobj(spool, out)
                    result.messages += count
                out.write("]}")
            result.connections += 1
    finally:
        for spool, _ in spools.values():
            spool.close()


def export_har(reader: CassetteReader, out: IO[str]) -> HarExportResult:
    """Write the cassette as a HAR 1.2 document to ``out``, streaming.

    Raises CassetteError when the cassette is corrupt; a truncated tail is left out and
    reported in ``truncated_at`` when the reader allows truncation.
    """
    result = HarExportResult()
    conns: list[_Conn] = []
    current: dict[int, _Conn] = {}
    global_notes: list[dict[str, Any]] = []
    for index, offset, record in reader.iter_with_offsets():
        if isinstance(record, Open):
            conn = _Conn(open=record, offset=offset, index=index, last_offset=offset)
            current[record.conn] = conn
            conns.append(conn)
            continue
        if isinstance(record, Note) and record.conn is None:
            global_notes.append({"t": record.t, "text": record.text, "after": len(conns)})
            continue
        owner = current.get(record.conn) if record.conn is not None else None
        if owner is None:
            result.orphans += 1
            continue
        owner.last_offset = offset
        if isinstance(record, Message):
            owner.messages += 1
            owner.last_t = max(owner.last_t, record.t)
        elif isinstance(record, Close):
            if owner.close is not None:
                result.extra_closes += 1
            owner.close = record
            owner.close_after = owner.messages
            owner.last_t = max(owner.last_t, record.t)
        else:
            owner.notes.append((owner.seen, record))
    truncated_at = reader.truncated_at

    header = reader.header
    log_head = {
        "version": "1.2",
        "creator": {"name": "wstape", "version": __version__},
        "pages": [],
        EXT: {
            "version": EXT_VERSION,
            "creator": header.creator,
            "started_at": header.started_at,
            "notes": global_notes,
        },
    }
    head = _dumps({"log": log_head})
    out.write(head[:-2])  # everything but the closing braces of "log" and the document
    out.write(', "entries": [')
    for g in range(0, len(conns), SPOOL_GROUP):
        _write_group(reader, conns[g : g + SPOOL_GROUP], out, result, first=g == 0)
    out.write("\n]}}\n")
    result.truncated_at = truncated_at
    # The second pass stops before the tail; report what the full pass found.
    reader.truncated_at = truncated_at
    return result


# -- import ----------------------------------------------------------------------------


@dataclass
class HarImport:
    """A parsed HAR ready to be written as a cassette.

    ``records()`` yields the cassette records in order (one connection after the other);
    the counters are filled as it runs.
    """

    path: Path
    creator: str
    started_at: float
    entries: list[Any]
    notes: list[tuple[int, Note]]
    has_ext: bool
    connections: int = 0
    messages: int = 0
    skipped: int = 0
    """Entries that are not WebSocket upgrades (ordinary HTTP requests)."""
    failed: int = 0
    """WebSocket entries without a response (status 0): nothing to replay."""

    def records(self) -> Iterator[Record]:
        pending = sorted(self.notes, key=lambda n: n[0])
        used: set[int] = set()
        planned = [_ext_conn(e) for e in self.entries]
        used.update(c for c in planned if c is not None)
        next_id = 1
        emitted = 0
        for index in self._order():
            raw = self.entries[index]
            while pending and pending[0][0] <= emitted:
                yield pending.pop(0)[1]
            entry = _Entry(self.path, index, raw)
            if not entry.is_websocket():
                self.skipped += 1
                continue
            if entry.status() == 0:
                self.failed += 1
                continue
            conn = planned[index]
            if conn is None:
                while next_id in used:
                    next_id += 1
                conn = next_id
                used.add(conn)
            for record in entry.records(conn):
                if isinstance(record, Message):
                    self.messages += 1
                yield record
            self.connections += 1
            emitted += 1
        for _, note in pending:
            yield note

    def _order(self) -> list[int]:
        """Entry indexes in the order to import them.

        A wstape HAR keeps the cassette's order. Other tools write a WebSocket entry when
        the connection ends (mitmproxy's savehar) or in their own order, so connections
        are put in the order they started, as a recording has them.
        """
        indexes = list(range(len(self.entries)))
        if self.has_ext:
            return indexes

        def started(i: int) -> float:
            entry = _Entry(self.path, i, self.entries[i])
            return entry.started_at() if entry.is_websocket() else float("-inf")

        return sorted(indexes, key=started)


def _ext_conn(entry: Any) -> int | None:
    if isinstance(entry, dict):
        ext = entry.get(EXT)
        if isinstance(ext, dict):
            conn = ext.get("conn")
            if isinstance(conn, int) and not isinstance(conn, bool) and conn >= 0:
                return conn
    return None


def open_input(path: Path) -> BinaryIO:
    """Open an import source for reading, or raise InterchangeError in one line."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise InterchangeError(path, "no such file") from None
    except IsADirectoryError:
        raise InterchangeError(path, "is a directory") from None
    except OSError as e:
        raise InterchangeError(path, f"cannot open: {e.strerror or e}") from e


def _load_json(path: Path) -> Any:
    with open_input(path) as f:
        data = f.read(MAX_HAR_BYTES + 1)
    if len(data) > MAX_HAR_BYTES:
        raise InterchangeError(path, "HAR file too large")
    if data[:1] == b"\x78" and not data.lstrip().startswith(b"{"):
        # mitmproxy writes .zhar files zlib-compressed
        try:
            data = zlib.decompress(data)
        except zlib.error as e:
            raise InterchangeError(path, f"not a HAR file (bad zlib data: {e})") from e
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise InterchangeError(path, f"not a HAR file (not UTF-8 text: {e.reason})") from e
    except (ValueError, RecursionError) as e:
        raise InterchangeError(path, f"not a HAR file (invalid JSON: {e})") from e


def read_har(path: str | Path) -> HarImport:
    """Parse a HAR file (``.har`` JSON, or mitmproxy's zlib ``.zhar``).

    Raises InterchangeError for a file that is not a HAR document; entries are checked
    as :meth:`HarImport.records` reaches them.
    """
    path = Path(path)
    doc = _load_json(path)
    log = doc.get("log") if isinstance(doc, dict) else None
    if not isinstance(log, dict):
        raise InterchangeError(path, 'not a HAR file (no "log" object)')
    entries = log.get("entries")
    if not isinstance(entries, list):
        raise InterchangeError(path, 'not a HAR file (no "log.entries" array)')
    ext = log.get(EXT)
    has_ext = isinstance(ext, dict)
    notes: list[tuple[int, Note]] = []
    creator = None
    started_at = None
    if isinstance(ext, dict):
        version = ext.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > EXT_VERSION:
            raise InterchangeError(
                path,
                f"{EXT} extension version {version} is newer than this wstape reads: "
                "upgrade wstape",
            )
        g = _Fields(path, None, ext, f"log.{EXT}")
        creator = g.opt_str("creator")
        started_at = g.opt_num("started_at")
        for i, n in enumerate(g.req_list("notes")):
            ng = _Fields(path, None, n, f"log.{EXT}.notes[{i}]")
            note = Note(conn=None, text=ng.req_str("text"), t=ng.opt_num("t"))
            notes.append((ng.req_int("after"), note))
    if creator is None:
        who = log.get("creator")
        name = who.get("name") if isinstance(who, dict) else None
        version_s = who.get("version") if isinstance(who, dict) else None
        source = " ".join(str(x) for x in (name, version_s) if x) or "an unknown tool"
        creator = f"wstape {__version__} (imported from a HAR by {source})"
    if started_at is None:
        started_at = _first_start(path, entries)
    return HarImport(
        path=path,
        creator=creator,
        started_at=started_at,
        entries=entries,
        notes=notes,
        has_ext=has_ext,
    )


def _first_start(path: Path, entries: list[Any]) -> float:
    starts = []
    for index, raw in enumerate(entries):
        entry = _Entry(path, index, raw)
        if entry.is_websocket():
            starts.append(entry.started_at())
    return min(starts) if starts else 0.0


class _Fields:
    """Typed access to one JSON object of a HAR, failing with the entry index."""

    def __init__(self, path: Path, index: int | None, obj: Any, where: str) -> None:
        self.path = path
        self.index = index
        self.where = where
        if not isinstance(obj, dict):
            self.fail(f"{where} must be an object")
        self.obj: dict[str, Any] = obj

    def fail(self, message: str) -> NoReturn:
        raise InterchangeError(self.path, message, index=self.index)

    def get(self, name: str) -> Any:
        return self.obj.get(name)

    def sub(self, name: str) -> _Fields:
        return _Fields(self.path, self.index, self.obj.get(name), f"{self.where}.{name}")

    def opt_sub(self, name: str) -> _Fields | None:
        return None if self.obj.get(name) is None else self.sub(name)

    def req_str(self, name: str, default: str | None = None) -> str:
        v = self.obj.get(name, default)
        if not isinstance(v, str):
            self.fail(f"{self.where}.{name} must be a string")
        return v

    def opt_str(self, name: str) -> str | None:
        return None if self.obj.get(name) is None else self.req_str(name)

    def req_int(self, name: str) -> int:
        v = self.obj.get(name)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(f"{self.where}.{name} must be an integer")
        return v

    def opt_int(self, name: str) -> int | None:
        return None if self.obj.get(name) is None else self.req_int(name)

    def req_num(self, name: str) -> float:
        v = self.obj.get(name)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            self.fail(f"{self.where}.{name} must be a number")
        return float(v)

    def opt_num(self, name: str) -> float | None:
        return None if self.obj.get(name) is None else self.req_num(name)

    def req_bool(self, name: str) -> bool:
        v = self.obj.get(name)
        if not isinstance(v, bool):
            self.fail(f"{self.where}.{name} must be true or false")
        return v

    def req_list(self, name: str) -> list[Any]:
        v = self.obj.get(name, [])
        if not isinstance(v, list):
            self.fail(f"{self.where}.{name} must be an array")
        return v

    def strs(self, name: str) -> tuple[str, ...]:
        items = self.req_list(name)
        if not all(isinstance(x, str) for x in items):
            self.fail(f"{self.where}.{name} must be an array of strings")
        return tuple(items)

    def b64(self, value: Any, what: str) -> bytes:
        if not isinstance(value, str):
            self.fail(f"{what} must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(f"{what} is not valid base64")


_HTTP_VERSION = re.compile(r"^(?:http/)?(\d(?:\.\d)?)$", re.IGNORECASE)


def _parse_time(value: str) -> float | None:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Python before 3.11.? rejects fractions that are not 3 or 6 digits: normalize to 6.
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", text)
    if m:
        frac = (m.group(2) or "0")[:6].ljust(6, "0")
        text = f"{m.group(1)}.{frac}{m.group(3)}"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return dt.timestamp()


class _Entry:
    """One HAR entry, read lazily and strictly."""

    def __init__(self, path: Path, index: int, raw: Any) -> None:
        self.path = path
        self.index = index
        self.f = _Fields(path, index, raw, "entry")
        ext = self.f.get(EXT)
        self.ext = None if ext is None else self.f.sub(EXT)

    def fail(self, message: str) -> NoReturn:
        self.f.fail(message)

    def _request(self) -> _Fields:
        return self.f.sub("request")

    def _headers(self, part: _Fields, raw_name: str) -> Headers:
        if self.ext is not None and self.ext.get(raw_name) is not None:
            pairs = self.ext.req_list(raw_name)
            out = []
            for i, pair in enumerate(pairs):
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail(f"{EXT}.{raw_name}[{i}] must be a [name, value] pair")
                what = f"{EXT}.{raw_name}[{i}]"
                out.append((self.f.b64(pair[0], what), self.f.b64(pair[1], what)))
            return tuple(out)
        out = []
        for i, h in enumerate(part.req_list("headers")):
            hf = _Fields(self.path, self.index, h, f"{part.where}.headers[{i}]")
            name, value = hf.req_str("name"), hf.req_str("value", "")
            out.append((name.encode("utf-8"), value.encode("utf-8")))
        return tuple(out)

    def is_websocket(self) -> bool:
        f = self.f
        kind = f.get("_resourceType")
        if isinstance(kind, str) and kind.lower() == "websocket":
            return True
        if "_webSocketMessages" in f.obj or self.ext is not None:
            return True
        request = f.get("request")
        if not isinstance(request, dict):
            return False
        url = request.get("url")
        if isinstance(url, str) and url.lower().startswith(("ws:", "wss:")):
            return True
        headers = request.get("headers")
        if isinstance(headers, list):
            for h in headers:
                if (
                    isinstance(h, dict)
                    and str(h.get("name", "")).lower() == "upgrade"
                    and any(
                        t.lower() == "websocket" for t in split_header_list(str(h.get("value")))
                    )
                ):
                    return True
        return False

    def status(self) -> int:
        response = self.f.get("response")
        if not isinstance(response, dict):
            return 0
        status = response.get("status", 0)
        if isinstance(status, bool) or not isinstance(status, int):
            self.fail("response.status must be an integer")
        return status

    def started_at(self) -> float:
        if self.ext is not None and self.ext.get("started_at") is not None:
            return self.ext.req_num("started_at")
        value = self.f.req_str("startedDateTime")
        t = _parse_time(value)
        if t is None:
            self.fail(f"startedDateTime is not an ISO 8601 time with a zone: {value[:40]!r}")
        return t

    def open(self, conn: int) -> Open:
        f = self.f
        request = self._request()
        response = f.sub("response")
        ext = self.ext
        url = request.req_str("url")
        try:
            parts = urlsplit(url)
            parsed_port = parts.port
        except ValueError as e:
            self.fail(f"request.url {url[:80]!r}: {e}")
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            self.fail(f"request.url {url[:80]!r} is not a ws, wss, http or https URL")
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        host = parts.hostname or ""
        port = parsed_port if parsed_port is not None else (443 if scheme == "wss" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_headers = self._headers(request, "request_headers")
        response_headers = self._headers(response, "response_headers")
        status = response.req_int("status")
        accepted = status == 101
        body = b""
        content = response.get("content")
        if isinstance(content, dict) and content.get("text"):
            cf = response.sub("content")
            text = cf.req_str("text")
            if cf.get("encoding") == "base64":
                body = cf.b64(text, "response.content.text")
            else:
                body = text.encode("utf-8")
        version = request.get("httpVersion") or response.get("httpVersion") or ""
        m = _HTTP_VERSION.match(str(version))
        # An upgrade is HTTP/1.1 unless the HAR says otherwise (RFC 6455 §4.1).
        http_version = f"HTTP/{m.group(1)}" if m else "HTTP/1.1"
        if ext is not None:
            if ext.get("scheme") is not None:
                scheme = ext.req_str("scheme")
            if ext.get("host") is not None:
                host = ext.req_str("host")
            if ext.get("port") is not None:
                port = ext.req_int("port")
            if ext.get("target") is not None:
                target = ext.req_str("target")
        if ext is not None and "subprotocols" in ext.obj:
            subprotocols = ext.strs("subprotocols")
            extensions = ext.strs("extensions")
            subprotocol = ext.opt_str("subprotocol")
            client = ext.opt_str("client")
            tls_f = ext.opt_sub("tls")
            tls = (
                None
                if tls_f is None
                else TlsInfo(
                    version=tls_f.opt_str("version"),
                    sni=tls_f.opt_str("sni"),
                    alpn=tls_f.opt_str("alpn"),
                )
            )
        else:
            subprotocols = _offers(request_headers, b"sec-websocket-protocol")
            extensions = _offers(request_headers, b"sec-websocket-extensions")
            chosen = _header(response_headers, b"sec-websocket-protocol")
            subprotocol = chosen if accepted else None
            client = None
            # A wss connection had TLS, but a HAR does not say which version, SNI or ALPN.
            tls = TlsInfo() if scheme == "wss" else None
        return Open(
            conn=conn,
            started_at=self.started_at(),
            method=request.req_str("method", "GET"),
            scheme=scheme,
            host=host,
            port=port,
            target=target,
            http_version=http_version,
            request_headers=request_headers,
            status=status,
            response_headers=response_headers,
            subprotocols=subprotocols,
            extensions=extensions,
            subprotocol=subprotocol,
            client=client,
            tls=tls,
            reason=response.req_str("statusText", ""),
            body=body,
        )

    def records(self, conn: int) -> Iterator[Record]:
        opened = self.open(conn)
        yield opened
        started = opened.started_at
        messages: list[Message] = []
        events: list[Record] = []  # notes and closes from the frames themselves
        frame_close: Close | None = None
        last_t = 0.0
        for i, raw in enumerate(self.f.req_list("_webSocketMessages")):
            mf = _Fields(self.path, self.index, raw, f"_webSocketMessages[{i}]")
            kind = mf.get("type")
            m_ext = mf.opt_sub(EXT)
            if m_ext is not None and m_ext.get("t") is not None:
                t = m_ext.req_num("t")
            else:
                when = mf.get("time")
                if isinstance(when, str):
                    parsed = _parse_time(when)
                    if parsed is None:
                        mf.fail(f"{mf.where}.time is not a number or an ISO 8601 time")
                    t = round(max(0.0, parsed - started), 6)
                elif when is None:
                    t = last_t  # not recorded: keep the order, invent no time
                else:
                    t = round(max(0.0, mf.req_num("time") - started), 6)
            last_t = max(last_t, t)
            if kind == "error":
                events.append(
                    Note(conn=conn, text=f"client reported an error: {mf.req_str('data', '')}", t=t)
                )
                continue
            if kind not in ("send", "receive"):
                mf.fail(f'{mf.where}.type must be "send", "receive" or "error", not {kind!r}')
            side = Side.CLIENT if kind == "send" else Side.SERVER
            opcode = mf.req_int("opcode") if mf.get("opcode") is not None else 1
            data = mf.req_str("data", "")
            if opcode == 1:
                if m_ext is not None and m_ext.get("encoding") == "base64":
                    payload = mf.b64(data, f"{mf.where}.data")
                else:
                    payload = data.encode("utf-8")
                messages.append(Message(conn, t, side, Opcode.TEXT, payload))
            elif opcode == 2:
                payload = mf.b64(data, f"{mf.where}.data")
                messages.append(Message(conn, t, side, Opcode.BINARY, payload))
            elif opcode == 0:
                # A continuation frame (frame-level capture): append to the message it
                # continues. Text continuations carry text, binary ones base64.
                prev = next((m for m in reversed(messages) if m.side is side), None)
                if prev is None:
                    mf.fail(f"{mf.where} continues no earlier message")
                extra = (
                    data.encode("utf-8")
                    if prev.opcode is Opcode.TEXT
                    else mf.b64(data, f"{mf.where}.data")
                )
                messages[messages.index(prev)] = Message(
                    conn, prev.t, side, prev.opcode, prev.payload + extra
                )
            elif opcode == 8:
                if frame_close is None:
                    frame_close = _close_from_frame(conn, t, side, data)
            elif opcode in (9, 10):
                continue  # ping/pong: cassettes do not record them
            else:
                mf.fail(f"{mf.where}.opcode {opcode} is not a WebSocket data opcode")
        yield from self._tail(opened, messages, events, frame_close, last_t)

    def _tail(
        self,
        opened: Open,
        messages: list[Message],
        events: list[Record],
        frame_close: Close | None,
        last_t: float,
    ) -> Iterator[Record]:
        conn = opened.conn
        ext = self.ext
        if ext is not None and "close" in ext.obj:
            close = None
            close_after = len(messages)
            cf = ext.opt_sub("close")
            if cf is not None:
                by = cf.opt_str("by")
                if by not in (None, "client", "server"):
                    cf.fail(f'{cf.where}.by must be "client", "server" or null')
                close = Close(
                    conn=conn,
                    t=cf.req_num("t"),
                    by=None if by is None else Side(by),
                    code=cf.opt_int("code"),
                    reason=cf.req_str("reason", ""),
                    on_wire=cf.req_bool("on_wire"),
                )
                close_after = cf.req_int("after") if cf.get("after") is not None else len(messages)
            notes: list[tuple[int, Note]] = []
            for i, n in enumerate(ext.req_list("notes")):
                nf = _Fields(self.path, self.index, n, f"{EXT}.notes[{i}]")
                note = Note(conn=conn, text=nf.req_str("text"), t=nf.opt_num("t"))
                notes.append((nf.req_int("after"), note))
            sequence: list[Record] = list(messages)
            if close is not None:
                sequence.insert(min(max(close_after, 0), len(sequence)), close)
            notes.sort(key=lambda n: n[0])
            ni = 0
            for position, record in enumerate([*sequence, None]):
                while ni < len(notes) and notes[ni][0] <= position:
                    yield notes[ni][1]
                    ni += 1
                if record is not None:
                    yield record
            yield from events
            return
        yield from messages
        yield from events
        if not opened.accepted:
            return
        if frame_close is not None:
            yield frame_close
            return
        t = max([last_t, *(m.t for m in messages)])
        yield Close(conn=conn, t=t, by=None, code=None, reason="", on_wire=False)
        yield Note(conn=conn, text=UNKNOWN_END_NOTE, t=t)


def _close_from_frame(conn: int, t: float, side: Side, data: str) -> Close:
    """A Close from a captured Close frame (Chrome sends its payload base64-encoded)."""
    try:
        body = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return Close(conn=conn, t=t, by=side, code=None, reason="", on_wire=True)
    if not body:
        return Close(conn=conn, t=t, by=side, code=1005, reason="", on_wire=False)
    if len(body) == 1:
        return Close(conn=conn, t=t, by=side, code=None, reason="", on_wire=True)
    code = int.from_bytes(body[:2], "big")
    return Close(
        conn=conn,
        t=t,
        by=side,
        code=code,
        reason=body[2:].decode("utf-8", "replace"),
        on_wire=code not in NOT_ON_WIRE,
    )


def _header(headers: Headers, name: bytes) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return decode_header_value(v)
    return None


def _offers(headers: Headers, name: bytes) -> tuple[str, ...]:
    return tuple(
        item
        for k, v in headers
        if k.lower() == name
        for item in split_header_list(decode_header_value(v))
    )


__all__ = [
    "EXT",
    "HarExportResult",
    "HarImport",
    "InterchangeError",
    "export_har",
    "har_message",
    "read_har",
]
