"""Streaming, hostile-input-safe cassette reader.

A cassette can be many gigabytes: records are unpacked one at a time from a bounded
``msgpack.Unpacker``, validated into model objects and handed out, so memory stays flat.
Before the Unpacker builds a record, :class:`~wstape.cassettes.scan.RecordScanner` checks
its bytes against the schema's limits (depth, list and string lengths, value count, no
extension types), so no record can cost more memory than a valid one of its size, and a
length that reaches past the record cap is reported as corruption, not as truncation.

Every failure, whatever msgpack raised, becomes one :class:`CassetteError` naming the file,
the record index and the byte offset. A file that ends inside a record (a recorder killed
mid-write) raises :class:`TruncatedCassette`, or, for readers that can show what is whole,
ends the iteration and sets ``truncated_at``. A connection id opened twice (two recorders
appending at once) raises :class:`DuplicateConnection`, unless the reader is asked to let
it through (``wstape repair`` renumbers it).

From format version 2 (:mod:`wstape.cassettes.v2`), a message is an array and a writer
that stops cleanly appends an end record. End records are not handed out: a whole pass
holds the file to them (:class:`~wstape.cassettes.v2.Tally`), and a cassette that did not
end cleanly (no end record at the end, or records no end record counts: a recorder still
running or killed, or a file cut at a record boundary) is truncated the same way, at the
end of the file. :meth:`CassetteReader.end_summary` reads the last end record without a
pass; from format version 3, :meth:`CassetteReader.listed` reads the connections of a
cassette one writer wrote from the listing in its end record (``wstape ls``).

:meth:`CassetteReader.read_batch` reads a bounded batch of records from a record boundary
(the replay streams each connection's segments of the file that way) with the same fast
way and long way as a whole pass (:class:`_Pass`), the file open only while it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import msgpack

from wstape.cassettes import compat, v2
from wstape.cassettes.decode import (
    MAX_FAST_BYTES,
    Decoder,
    decode_v1,
    decode_v1_fields,
    decode_v2,
    decode_v2_fields,
)
from wstape.cassettes.errors import (
    CassetteError,
    DuplicateConnection,
    NewerCassette,
    TruncatedCassette,
    UnendedCassette,
)
from wstape.cassettes.scan import NotAMap, RecordScanner, RecordTruncated, ShapeError
from wstape.cassettes.schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_FIELDS,
    MAX_ITEMS,
    MAX_RECORD_BYTES,
    MAX_TEXT_BYTES,
    SchemaError,
    describe_value,
    header_from_dict,
)
from wstape.core.connections import MessageFields, slim_open
from wstape.core.model import Close, ConnectionSummary, Header, Open, Record

__all__ = ["MAX_RECORD_BYTES", "CassetteReader", "read_cassette"]

_READ_SIZE = 64 * 1024
BIG_RECORD = 8 * 1024 * 1024
"""Records longer than this are built field by field, each payload read straight into its
bytes object: the Unpacker would hold the record in its buffer as well (twice the memory)."""
DIRECT_READ = 64 * 1024
"""In a big record, binary values longer than this are read straight from the file."""

_UNPACK_ERRORS = (
    msgpack.UnpackException,
    ValueError,
    TypeError,
    UnicodeDecodeError,
    OverflowError,
    RecursionError,
    MemoryError,
)
_REASONS = {
    "StackError": "nested too deep",
    "FormatError": "not msgpack",
    "BufferFull": "a record larger than the record cap",
    "OutOfData": "the record ends early",
}


def _reject_ext(code: int, data: bytes) -> NoReturn:
    raise ValueError(f"msgpack extension type {code}: cassettes use no extension types")


def _unpacker(stream: IO[bytes]) -> Any:
    # The limits repeat the scanner's, so even a record it let through by mistake could not
    # be built into something bigger.
    return msgpack.Unpacker(
        stream,
        raw=False,
        strict_map_key=True,
        read_size=_READ_SIZE,
        max_buffer_size=MAX_RECORD_BYTES + 2 * _READ_SIZE,
        max_str_len=MAX_TEXT_BYTES,
        max_bin_len=MAX_RECORD_BYTES,
        max_array_len=MAX_ITEMS,
        max_map_len=MAX_FIELDS,
        max_ext_len=0,
        ext_hook=_reject_ext,
        timestamp=0,
        use_list=True,
    )


FEED = 64 * 1024
"""Bytes the fast way feeds its Unpacker at a time."""


def _fast_unpacker() -> Any:
    # Tighter than the schema: a list of more items or a map of more fields than an everyday
    # record holds takes the long way, so no header claiming a long list can make msgpack
    # allocate much before the bytes that fill it arrive.
    return msgpack.Unpacker(
        None,
        raw=False,
        strict_map_key=True,
        max_buffer_size=MAX_FAST_BYTES + 2 * FEED,
        max_str_len=MAX_FAST_BYTES,
        max_bin_len=MAX_FAST_BYTES,
        max_array_len=256,
        max_map_len=32,
        max_ext_len=0,
        ext_hook=_reject_ext,
        timestamp=0,
        use_list=False,  # (arrays as tuples: what the model keeps, no copy; decode.py)
    )


def unpack_reason(e: BaseException) -> str:
    """What a msgpack failure means, in a few words (some of its errors say nothing)."""
    text = str(e).strip()
    if isinstance(e, UnicodeDecodeError):
        return "a string that is not UTF-8"
    if not text:
        return _REASONS.get(type(e).__name__, type(e).__name__)
    return text if len(text) <= 120 else text[:120] + "..."


_UNPACK_LIMITS: dict[str, Any] = {
    "raw": False,
    "strict_map_key": True,
    "max_str_len": MAX_TEXT_BYTES,
    "max_bin_len": MAX_RECORD_BYTES,
    "max_array_len": MAX_ITEMS,
    "max_map_len": MAX_FIELDS,
    "max_ext_len": 0,
    "ext_hook": _reject_ext,
    "timestamp": 0,
}
_BIN_LENGTH = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _build_big(scanner: RecordScanner, start: int) -> dict[str, Any] | list[Any]:
    """A big record (already scanned) built field by field (item by item for an array);
    a big binary value is read straight into its bytes object."""
    out: dict[str, Any] = {}
    items: list[Any] = []
    for key_at, value_at, value_end in scanner.fields(start):
        head = scanner.read(value_at, min(value_end, value_at + 5))
        size = _BIN_LENGTH.get(head[0], 0)
        if size and value_end - value_at > DIRECT_READ:
            value = scanner.read(value_at + 1 + size, value_end)
        else:
            value = msgpack.unpackb(scanner.read(value_at, value_end), **_UNPACK_LIMITS)
        if key_at == value_at:  # an array's item
            items.append(value)
        else:
            out[msgpack.unpackb(scanner.read(key_at, value_at), **_UNPACK_LIMITS)] = value
    return items if items else out


class CassetteReader:
    """Iterate over the records of one cassette file.

    ``CassetteReader(path)`` reads and checks the header at once (raising CassetteError for
    a missing file, a non-cassette or a newer format); iterating yields records. With
    ``allow_truncated=True`` a truncated tail ends the iteration quietly and sets
    ``truncated_at`` to the byte offset where the incomplete record starts; otherwise it
    raises TruncatedCassette. A second ``open`` of a connection id raises
    DuplicateConnection unless ``allow_reused_ids=True``. A reader can be iterated more than
    once; each pass re-reads the file.
    """

    def __init__(
        self, path: str | Path, *, allow_truncated: bool = False, allow_reused_ids: bool = False
    ) -> None:
        self.path = Path(path)
        self.allow_truncated = allow_truncated
        self.allow_reused_ids = allow_reused_ids
        self.truncated_at: int | None = None
        self.incomplete: str | None = None
        """Why the last pass set ``truncated_at`` at the end of the file: the cassette did
        not end cleanly (format version 2 or later; every record in it is whole)."""
        self.next_index = 1
        """After a pass that read to the end of the file: the index the next record
        written would have."""
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
            try:
                end = RecordScanner(f.fileno(), self.size, version=1).scan(0)
            except RecordTruncated:
                raise TruncatedCassette(
                    self.path, "file ends inside the header record", record=0, offset=0
                ) from None
            except NotAMap:
                self._fail("not a wstape cassette (no wstape header)", record=0, offset=0)
            except ShapeError as e:
                self._fail(f"not a wstape cassette ({e})", record=0, offset=0)
            unpacker = _unpacker(f)
            try:
                obj = unpacker.unpack()
            except _UNPACK_ERRORS as e:
                raise CassetteError(
                    self.path, f"not a wstape cassette ({unpack_reason(e)})", record=0, offset=0
                ) from e
            if (
                not isinstance(obj, dict)
                or obj.get("type") != "header"
                or obj.get("format") != FORMAT_NAME
            ):
                self._fail("not a wstape cassette (no wstape header)", record=0, offset=0)
            version = obj.get("version")
            if isinstance(version, bool) or not isinstance(version, int) or version < 1:
                self._fail(f"bad format version ({describe_value(version)})", record=0, offset=0)
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
            if unpacker.tell() != end:  # pragma: no cover - the scanner and msgpack disagree
                self._fail("corrupt header record (its length is ambiguous)", record=0, offset=0)
            return header, version, end

    def __iter__(self) -> Iterator[Record]:
        return self._stream(fields=False)

    def iter_fields(self) -> Iterator[Record | MessageFields]:
        """The records, each message as the plain tuple of its fields
        (:data:`~wstape.core.connections.MessageFields`) instead of a Message: the fast pass
        for folds that need no object per message (``ls``, ``stats``, ``check``). Checked
        exactly as :meth:`__iter__` checks."""
        return self._stream(fields=True)

    def _stream(self, *, fields: bool) -> Iterator[Any]:
        """The records from the start, without their offsets: :class:`_Pass` batches, the
        fast way's records handed out a fed chunk at a time (no generator step per record)."""
        with self._open() as f:
            batches = _Pass(self, f, None, 1, fields=fields)
            while (batch := batches.next_batch()) is not None:
                yield from batch

    def read_batch(
        self, start: int, index: int, last: int, *, feed: int = FEED
    ) -> tuple[list[Record], int | None, int]:
        """One batch of the records from the record boundary ``start`` (record index
        ``index``, as :meth:`iter_with_offsets` yields them) that start at or before the
        byte offset ``last``: those of one chunk of about ``feed`` bytes (at most
        :data:`FEED`; a longer record is read whole), or one record taken the long way.
        Returns them, then where the next record starts (None: none left that starts at
        or before ``last``) and its index. Checked exactly as a pass of
        :meth:`iter_with_offsets` from the middle checks (connection ids and end records
        only a pass from the start can check). The file is open only while it reads, so
        many resumable passes hold no file open."""
        with self._open() as f:
            batches = _Pass(self, f, start, index, fields=False, last=last, feed=feed)
            batch = batches.next_batch()
            if batch is None:
                return [], None, batches.index
            done = batches.over or batches.offset >= batches.limit
            return batch, None if done else batches.offset, batches.index

    def _duplicate(self, conn: int, index: int, offset: int) -> NoReturn:
        raise DuplicateConnection(
            self.path, conn, first=self._first_open(conn), record=index, offset=offset
        )

    def iter_with_offsets(
        self, start: int | None = None, index: int = 1
    ) -> Iterator[tuple[int, int, Record]]:
        """Yield ``(record index, byte offset, record)``.

        ``start`` is a byte offset of a record boundary to resume from (as yielded by an
        earlier pass) and ``index`` that record's index, for seeking into big cassettes.
        Connection ids are checked for reuse only on a pass from the start.
        """
        check_ids = start is None and not self.allow_reused_ids
        return self._records(start, index, check_ids=check_ids)

    def decoder(self, *, fields: bool = False) -> Decoder | None:
        """The fast decode of this file's records, chosen once per file by its format
        version (:mod:`wstape.cassettes.decode`); None: every record takes the long way
        (migrated by compat.py, then checked in full)."""
        if self._version == 1:
            return decode_v1_fields if fields else decode_v1
        if self._version in (2, 3):  # (version 3 changed only the end record)
            return decode_v2_fields if fields else decode_v2
        return None

    def _records(
        self, start: int | None, index: int, *, check_ids: bool, fields: bool = False
    ) -> Iterator[tuple[int, int, Any]]:
        # Two ways to a record. The fast way: a msgpack.Unpacker fed FEED bytes at a time
        # builds it, and the format's decoder takes it if it is exactly as the writer lays
        # records out. It is fed no more once it holds MAX_FAST_BYTES of the record, and
        # its limits are tighter than the schema's, so whatever it builds is bounded by a
        # few MiB, however hostile the bytes. Anything else (a bigger record, a msgpack
        # error, a map the decoder does not take, the end of the file) takes the long way
        # from the record's first byte: the byte scan, then msgpack, then the full schema
        # check, which report exactly what is wrong.
        self.truncated_at = None
        self.incomplete = None
        opened: set[int] | None = set() if check_ids else None
        tally: v2.Tally | None = v2.Tally() if start is None else None
        decode = self.decoder(fields=fields)
        with self._open() as f:
            offset = self._body_offset if start is None else start
            size = self.size
            scanner = RecordScanner(f.fileno(), size, version=self._version)
            f.seek(offset)
            unpacker = _fast_unpacker()
            base = fed = offset
            """File offsets where the unpacker started and where what it was fed ends."""
            while offset < size:
                record: Any = None
                if decode is not None:
                    try:
                        record = decode(unpacker.unpack())
                    except msgpack.OutOfData:
                        if fed - offset < MAX_FAST_BYTES and fed < size:
                            chunk = f.read(min(FEED, size - fed))
                            if chunk:
                                unpacker.feed(chunk)
                                fed += len(chunk)
                                continue
                    except _UNPACK_ERRORS:
                        pass
                if record is not None:
                    end = base + unpacker.tell()
                else:
                    got = self._long_way(scanner, offset, index)
                    if got is None:
                        return
                    end, record = got
                    f.seek(end)
                    unpacker = _fast_unpacker()
                    base = fed = end
                    if type(record) is v2.End:
                        if tally is not None:  # (a pass from the middle checks no ends)
                            tally.end(record, index)
                        index += 1
                        offset = end
                        continue
                if opened is not None and type(record) is Open:
                    if record.conn in opened:
                        self._duplicate(record.conn, index, offset)
                    opened.add(record.conn)
                yield index, offset, record
                index += 1
                offset = end
            if start is None:
                self._hold_to_ends(tally, index, offset)

    def _long_way(
        self, scanner: RecordScanner, offset: int, index: int
    ) -> tuple[int, Record | v2.End] | None:
        """The record at ``offset`` the long way (the byte scan, then the full check) and
        where it ends; None when the file ends inside it (``truncated_at`` is set)."""
        try:
            end = scanner.scan(offset)
        except RecordTruncated:
            self._truncated(index, offset)
            return None
        except ShapeError as e:
            raise CassetteError(
                self.path, f"corrupt record: {e}", record=index, offset=offset
            ) from None
        return end, self._slow_record(scanner, offset, end, index)

    def _slow_record(
        self, scanner: RecordScanner, offset: int, end: int, index: int
    ) -> Record | v2.End:
        """The record the scanner checked at ``offset``..``end``, built and checked in full
        (an end record only in a file of format version 2 or later)."""
        try:
            if end - offset > BIG_RECORD:  # (a module constant: tests lower it)
                obj = _build_big(scanner, offset)
            else:
                obj = msgpack.unpackb(scanner.read(offset, end), **_UNPACK_LIMITS)
        except RecordTruncated:  # pragma: no cover - the file shrank after the scan
            raise CassetteError(
                self.path, "corrupt record (the file shrank)", record=index, offset=offset
            ) from None
        except _UNPACK_ERRORS as e:
            raise CassetteError(
                self.path, f"corrupt record ({unpack_reason(e)})", record=index, offset=offset
            ) from None
        try:
            if self._version != FORMAT_VERSION:
                obj = compat.migrate(obj, self._version)
            record = v2.record_from_obj(obj)
            if type(record) is v2.End:
                if self._version < 2:
                    raise SchemaError("unknown record type 'end'")
                if record.size != end - offset:
                    raise SchemaError(
                        f"field 'size' of an end record must be its length, "
                        f"{end - offset}, not {record.size}"
                    )
            return record
        except SchemaError as e:
            raise CassetteError(self.path, str(e), record=index, offset=offset) from None

    def _first_open(self, conn: int) -> int:
        """The record index of the first ``open`` of ``conn`` (for an error message)."""
        for index, _, record in self._records(None, 1, check_ids=False):
            if type(record) is Open and record.conn == conn:
                return index
        raise AssertionError("the first open vanished")  # pragma: no cover

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
        self.next_index = index

    def _hold_to_ends(self, tally: v2.Tally | None, index: int, offset: int) -> None:
        """After a pass that read the whole file: hold it to its end records (format
        version 2 and later), so a cassette that did not end cleanly is reported as truncated."""
        self.next_index = index
        if tally is None or self._version < 2:
            return
        verdict = tally.verdict(index)
        if verdict is not None:
            corrupt, message = verdict
            if corrupt:
                raise CassetteError(self.path, message, record=index, offset=offset)
            self._incomplete(index, offset, message)

    def _incomplete(self, index: int, offset: int, message: str) -> None:
        if not self.allow_truncated:
            raise UnendedCassette(self.path, message, record=index, offset=offset)
        self.truncated_at = offset
        self.incomplete = message

    def end_summary(self) -> v2.End | None:
        """The cassette's last end record, read from the end of the file without a pass,
        or None when the file does not end with one (format version 1, a recording still
        running or stopped uncleanly). Only a hint: a payload can end with bytes that look
        like an end record; a whole pass checks the file against its end records."""
        if self._version < 2:
            return None
        with self._open() as f:
            fd, size = f.fileno(), self.size
            if size - self._body_offset < len(v2.SIZE_TRAILER) + 5:
                return None
            tail = os.pread(fd, len(v2.SIZE_TRAILER) + 4, size - len(v2.SIZE_TRAILER) - 4)
            if not tail.startswith(v2.SIZE_TRAILER):
                return None
            length = int.from_bytes(tail[len(v2.SIZE_TRAILER) :], "big")
            start = size - length
            if not self._body_offset <= start < size or length > v2.MAX_END_BYTES:
                return None
            try:
                if RecordScanner(fd, size).scan(start) != size:
                    return None
                obj = msgpack.unpackb(os.pread(fd, length, start), **_UNPACK_LIMITS)
                if self._version != FORMAT_VERSION:
                    obj = compat.migrate(obj, self._version)
                record = v2.record_from_obj(obj)
            except (ShapeError, RecordTruncated, SchemaError, *_UNPACK_ERRORS):
                return None
            if type(record) is not v2.End or record.size != length:
                return None
            return record

    def listed(self) -> list[ConnectionSummary] | None:
        """Every connection of a cassette that one writer wrote start to finish, from the
        listing of its end record (format version 3) without a pass: the summaries
        :func:`~wstape.core.connections.summarize_connections` makes (``wstape ls``), each
        from its open and close records, read at the offsets the listing gives and checked
        in full, and the listing's counts.

        None when the file has no listing or the listing does not hold (it disagrees with
        the end record's counts, or a record at one of its offsets is not that
        connection's open or close): a pass reads such a file and reports what is wrong
        with it. Only the opens and closes are read: ``wstape check`` reads every record.
        """
        end = self.end_summary()
        if end is None or end.listing is None or not _listing_agrees(end):
            return None
        end_at = self.size - end.size
        out: list[ConnectionSummary] = []
        seen: set[int] = set()
        with self._open() as f:
            scanner = RecordScanner(f.fileno(), self.size, version=self._version)

            def at(offset: int) -> Record | v2.End | None:
                if not self._body_offset <= offset < end_at:
                    return None
                try:
                    return self._slow_record(scanner, offset, scanner.scan(offset), 0)
                except (CassetteError, ShapeError, RecordTruncated):
                    return None

            for entry in end.listing:
                op = at(entry.open_at)
                if type(op) is not Open or op.conn != entry.conn or op.conn in seen:
                    return None
                seen.add(op.conn)
                close: Close | None = None
                if entry.close_at is not None:
                    got = at(entry.close_at) if entry.close_at > entry.open_at else None
                    if type(got) is not Close or got.conn != entry.conn:
                        return None
                    close = got
                out.append(
                    ConnectionSummary(
                        open=slim_open(op),
                        messages_client=entry.messages_client,
                        messages_server=entry.messages_server,
                        bytes_client=entry.bytes_client,
                        bytes_server=entry.bytes_server,
                        last_t=entry.last_t,
                        close=close,
                    )
                )
        return out


def _listing_agrees(end: v2.End) -> bool:
    """Whether an end record's listing agrees with its counts: the same connections in
    the same order as ``conns`` (a writer lists both), each with at least the records
    the listing gives it, and no more records than ``records`` in all."""
    conns, listing = end.conns, end.listing or ()
    if conns is None or [c.conn for c in conns] != [e.conn for e in listing]:
        return False
    if sum(c.records for c in conns) > end.records:
        return False
    return all(
        c.records >= 1 + e.messages_client + e.messages_server + (e.close_at is not None)
        for c, e in zip(conns, listing, strict=True)
    )


class _Pass:
    """One pass over a cassette's records from a record boundary, a batch at a time (for
    :meth:`CassetteReader._stream` and :meth:`CassetteReader.read_batch`).

    The fast way: a ``msgpack.Unpacker`` fed ``feed`` bytes at a time builds records and
    the format's decoder takes each one laid out exactly as the writer lays records out; a
    batch is what one fed chunk held. Anything else takes the long way, as in
    :meth:`CassetteReader._records`, as a batch of its own. A pass from the start (``start``
    None) checks connection ids for reuse (unless the reader allows it) and holds the file
    to its end records; one from the middle checks neither. ``last``: the pass ends before
    the first record that starts after this byte offset.
    """

    def __init__(
        self,
        reader: CassetteReader,
        f: IO[bytes],
        start: int | None,
        index: int,
        *,
        fields: bool,
        last: int | None = None,
        feed: int = FEED,
    ) -> None:
        reader.truncated_at = None
        reader.incomplete = None
        self.reader = reader
        self.f = f
        whole = start is None
        self.opened: set[int] | None = set() if whole and not reader.allow_reused_ids else None
        self.tally: v2.Tally | None = v2.Tally() if whole else None
        self.decode = reader.decoder(fields=fields)
        self.offset = reader._body_offset if start is None else start
        """Where the next record starts."""
        self.index = index
        """And its record index."""
        self.size = reader.size
        self.limit = self.size if last is None else min(self.size, last + 1)
        self.feed = max(1, min(feed, FEED))
        """(More at once would not fit the fast unpacker's buffer.)"""
        self.scanner = RecordScanner(f.fileno(), self.size, version=reader._version)
        self.over = False
        """The pass has ended (the file, or ``last``, reached; or a truncated tail)."""
        self._long_next = self.decode is None
        """The record at ``offset`` takes the long way (the fast way failed on it)."""
        self._duplicate: int | None = None
        """A reused connection id, to raise once the records before it are handed out."""
        self._restart(self.offset)

    def _restart(self, offset: int) -> None:
        self.f.seek(offset)
        self.unpacker = _fast_unpacker()
        self.base = self.fed = offset
        """File offsets where the unpacker started and where what it was fed ends."""

    def next_batch(self) -> list[Any] | None:
        """The next records (never an empty list), or None once the pass is over."""
        reader = self.reader
        if self._duplicate is not None:
            reader._duplicate(self._duplicate, self.index, self.offset)
        opened = self.opened
        while self.offset < self.limit:
            decode = self.decode
            if decode is not None and not self._long_next:
                batch: list[Any] = []
                append = batch.append
                unpacker = self.unpacker
                tell = unpacker.tell
                base = self.base
                offset = self.offset
                limit = self.limit
                ran_out = True
                """Whether the unpacker stopped at the end of what it was fed."""
                try:
                    for obj in unpacker:
                        record = decode(obj)
                        if record is None:
                            ran_out = False
                            break
                        if type(record) is Open and opened is not None:
                            if record.conn in opened:
                                self._duplicate = record.conn
                                break
                            opened.add(record.conn)
                        append(record)
                        offset = base + tell()
                        if offset >= limit:
                            break
                except _UNPACK_ERRORS:
                    ran_out = False
                self.offset = offset
                self.index += len(batch)
                if self._duplicate is not None:
                    if batch:
                        return batch
                    reader._duplicate(self._duplicate, self.index, offset)
                if not ran_out:
                    self._long_next = True
                if batch:
                    return batch
                if offset >= limit:
                    break
                fed, size = self.fed, self.size
                if ran_out and fed - offset < MAX_FAST_BYTES and fed < size:
                    chunk = self.f.read(min(self.feed, size - fed))
                    if chunk:
                        unpacker.feed(chunk)
                        self.fed = fed + len(chunk)
                        continue
            # The long way, for the one record at ``offset``.
            self._long_next = self.decode is None
            got = reader._long_way(self.scanner, self.offset, self.index)
            if got is None:
                self.over = True
                return None
            end, slow = got
            index, offset = self.index, self.offset
            if opened is not None and type(slow) is Open:
                if slow.conn in opened:
                    reader._duplicate(slow.conn, index, offset)
                opened.add(slow.conn)
            self.index += 1
            self.offset = end
            self._restart(end)
            if type(slow) is v2.End:
                if self.tally is not None:  # (a pass from the middle checks no ends)
                    self.tally.end(slow, index)
                continue  # (not handed out)
            return [slow]
        self.over = True
        if self.limit == self.size and self.offset >= self.size and self.tally is not None:
            reader._hold_to_ends(self.tally, self.index, self.offset)
        return None


def read_cassette(path: str | Path) -> tuple[Header, list[Record]]:
    """Read a whole cassette into memory (for small files and tests)."""
    reader = CassetteReader(path)
    return reader.header, list(reader)
