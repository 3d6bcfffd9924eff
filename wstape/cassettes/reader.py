"""Streaming, hostile-input-safe cassette reader.

A cassette can be many gigabytes: records are unpacked one at a time from a bounded
``msgpack.Unpacker``, validated into model objects and handed out, so memory stays flat.
Every failure, whatever msgpack raised, becomes one :class:`CassetteError` naming the file,
the record index and the byte offset. A file that ends inside a record (a recorder killed
mid-write) raises :class:`TruncatedCassette`, or, for readers that can show what is whole,
ends the iteration and sets ``truncated_at``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import msgpack

from wstape.cassettes import compat
from wstape.cassettes.errors import CassetteError, NewerCassette, TruncatedCassette
from wstape.cassettes.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    SchemaError,
    header_from_dict,
    record_from_dict,
)
from wstape.core.model import Header, Record

MAX_RECORD_BYTES = 256 * 1024 * 1024
"""Largest record the reader accepts (a WebSocket message plus its envelope)."""
_MAX_ARRAY = 100_000
_MAX_MAP = 1_000

_UNPACK_ERRORS = (
    msgpack.UnpackException,
    ValueError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
)


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"unknown msgpack extension type {code}")


def _unpacker(stream: IO[bytes]) -> Any:
    return msgpack.Unpacker(
        stream,
        raw=False,
        strict_map_key=True,
        max_buffer_size=MAX_RECORD_BYTES,
        max_array_len=_MAX_ARRAY,
        max_map_len=_MAX_MAP,
        ext_hook=_reject_ext,
        timestamp=0,
        use_list=True,
    )


class CassetteReader:
    """Iterate over the records of one cassette file.

    ``CassetteReader(path)`` reads and checks the header at once (raising CassetteError for
    a missing file, a non-cassette or a newer format); iterating yields records. With
    ``allow_truncated=True`` a truncated tail ends the iteration quietly and sets
    ``truncated_at`` to the byte offset where the incomplete record starts; otherwise it
    raises TruncatedCassette. A reader can be iterated more than once; each pass re-reads
    the file.
    """

    def __init__(self, path: str | Path, *, allow_truncated: bool = False) -> None:
        self.path = Path(path)
        self.allow_truncated = allow_truncated
        self.truncated_at: int | None = None
        self.size = 0
        self.header, self._version, self._body_offset = self._read_header()

    def _fail(
        self, message: str, *, record: int | None = None, offset: int | None = None
    ) -> NoReturn:
        raise CassetteError(self.path, message, record=record, offset=offset)

    def _open(self) -> IO[bytes]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            self._fail("no such file")
        except IsADirectoryError:
            self._fail("is a directory, not a cassette")
        except OSError as e:
            self._fail(f"cannot open: {e.strerror or e}")
        self.size = os.fstat(f.fileno()).st_size
        return f

    def _read_header(self) -> tuple[Header, int, int]:
        with self._open() as f:
            if self.size == 0:
                self._fail("empty file, not a wstape cassette", record=0, offset=0)
            unpacker = _unpacker(f)
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                raise TruncatedCassette(
                    self.path, "file ends inside the header record", record=0, offset=0
                ) from None
            except _UNPACK_ERRORS as e:
                raise CassetteError(
                    self.path, f"not a wstape cassette ({e})", record=0, offset=0
                ) from e
            if (
                not isinstance(obj, dict)
                or obj.get("type") != "header"
                or obj.get("format") != FORMAT_NAME
            ):
                self._fail("not a wstape cassette (no wstape header)", record=0, offset=0)
            version = obj.get("version")
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                self._fail(f"bad format version {version!r}", record=0, offset=0)
            if version > FORMAT_VERSION:
                raise NewerCassette(
                    self.path,
                    f"cassette format version {version} is newer than this wstape reads "
                    f"(up to {FORMAT_VERSION}): upgrade wstape",
                    record=0,
                    offset=0,
                )
            try:
                header = header_from_dict(obj)
            except SchemaError as e:
                self._fail(str(e), record=0, offset=0)
            return header, version, int(unpacker.tell())

    def __iter__(self) -> Iterator[Record]:
        for _, _, record in self.iter_with_offsets():
            yield record

    def iter_with_offsets(
        self, start: int | None = None, index: int = 1
    ) -> Iterator[tuple[int, int, Record]]:
        """Yield ``(record index, byte offset, record)``.

        ``start`` is a byte offset of a record boundary to resume from (as yielded by an
        earlier pass) and ``index`` that record's index, for seeking into big cassettes.
        """
        self.truncated_at = None
        with self._open() as f:
            offset = self._body_offset if start is None else start
            f.seek(offset)
            unpacker = _unpacker(f)
            while True:
                try:
                    obj = unpacker.unpack()
                except msgpack.OutOfData:
                    if offset < self.size:
                        self._truncated(index, offset)
                    return
                except _UNPACK_ERRORS as e:
                    raise CassetteError(
                        self.path, f"corrupt record ({e})", record=index, offset=offset
                    ) from e
                try:
                    if self._version != FORMAT_VERSION:
                        obj = compat.migrate(obj, self._version)
                    record = record_from_dict(obj)
                except SchemaError as e:
                    raise CassetteError(self.path, str(e), record=index, offset=offset) from e
                yield index, offset, record
                index += 1
                offset = self._body_offset_after(start, unpacker)

    def _body_offset_after(self, start: int | None, unpacker: Any) -> int:
        base = self._body_offset if start is None else start
        return base + int(unpacker.tell())

    def _truncated(self, index: int, offset: int) -> None:
        if not self.allow_truncated:
            raise TruncatedCassette(
                self.path,
                f"truncated: the file ends inside this record ({self.size - offset} bytes "
                "of an incomplete record); everything before it is readable",
                record=index,
                offset=offset,
            )
        self.truncated_at = offset


def read_cassette(path: str | Path) -> tuple[Header, list[Record]]:
    """Read a whole cassette into memory (for small files and tests)."""
    reader = CassetteReader(path)
    return reader.header, list(reader)
