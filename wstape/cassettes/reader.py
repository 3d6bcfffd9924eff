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

import itertools
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
    v1_run,
    v2_run,
)
from wstape.cassettes.errors import (
    CassetteError,
    DuplicateConnection,
    NewerCassette,
    TruncatedCassette,
    UnendedCassette,
)
from wstape.cassettes.files import NotRegular, open_regular
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
from wstape.core.connections import MessageFields, MessageRun, slim_open
from wstape.core.model import Close, ConnectionSummary, Header, Message, Note, Open, Record

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
        self,
        path: str | Path,
        *,
        allow_truncated: bool = False,
        allow_reused_ids: bool = False,
        check_ends: bool = False,
    ) -> None:
        self.path = Path(path)
        self.allow_truncated = allow_truncated
        self.allow_reused_ids = allow_reused_ids
        self.check_ends = check_ends
        """Whether a whole pass (:meth:`iter_fields`, iterating) also holds the file to
        what its end records say per connection: then ``end_check`` is the
        :class:`~wstape.cassettes.v2.EndCheck` of the latest pass, which the fold reading
        the pass tells each connection's figures (``check``, ``stats``), and
        :meth:`ends_disagree` asks once the pass is over."""
        self.end_check: v2.EndCheck | None = None
        self.truncated_at: int | None = None
        self.incomplete: str | None = None
        """Why the last pass set ``truncated_at`` at the end of the file: the cassette did
        not end cleanly (format version 2 or later; every record in it is whole)."""
        self.next_index = 1
        """After a pass that read to the end of the file: the index the next record
        written would have."""
        self.size = 0
        self.listing_refused: str | None = None
        """Why the last :meth:`listed` did not use the end record's listing (None: it did,
        or there is none)."""
        self.header, self._version, self._body_offset = self._read_header()

    def _fail(
        self, message: str, *, record: int | None = None, offset: int | None = None
    ) -> NoReturn:
        raise CassetteError(self.path, message, record=record, offset=offset)

    def _open(self) -> IO[bytes]:
        try:
            fd, info = open_regular(self.path)
        except FileNotFoundError:
            self._fail("no such file")
        except IsADirectoryError:
            self._fail("is a directory, not a cassette")
        except NotRegular as e:
            if e.kind == "a directory":
                self._fail("is a directory, not a cassette")
            # A cassette is read more than once and from its end: a pipe or a device
            # (/dev/zero, /dev/stdin) cannot be one.
            self._fail(f"is {e.kind}, not a regular file; not a cassette")
        except OSError as e:
            self._fail(f"cannot open: {e.strerror or e}")
        self.size = info.st_size
        return os.fdopen(fd, "rb")

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

    def iter_runs(self) -> Iterator[Record | MessageFields | MessageRun]:
        """:meth:`iter_fields`, with each stretch of messages that the fast way read from one
        fed chunk as one :class:`~wstape.core.connections.MessageRun` (every format:
        ``decode.v2_run``, ``decode.v1_run``; a stretch with any other record in it comes
        a record at a time): for the folds that take a few hundred messages at once
        (``ls``, ``stats``, ``check``). Checked exactly as :meth:`__iter__` checks."""
        return self._stream(fields=True, runs=True)

    def _stream(self, *, fields: bool, runs: bool = False) -> Iterator[Any]:
        """The records from the start, without their offsets: :class:`_Pass` batches, the
        fast way's records handed out a fed chunk at a time (no generator step per record),
        a run of messages as it is (``runs``)."""
        with self._open() as f:
            batches = _Pass(self, f, None, 1, fields=fields, runs=runs)
            while (batch := batches.next_batch()) is not None:
                if isinstance(batch, MessageRun):
                    yield batch
                else:
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
            assert type(batch) is list  # (no runs asked for)
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
        end = self.end_summary()
        if end is not None and self.size - end.size > offset:
            # The file ends with a whole end record after this one: it was not cut, a
            # length in this record was damaged (repair would drop all that follows).
            raise CassetteError(
                self.path,
                "corrupt record: its length runs past the end record at byte "
                f"{self.size - end.size} (a damaged length, not a cut file)",
                record=index,
                offset=offset,
            )
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

    def ends_disagree(self, strays: int) -> str | None:
        """After a whole pass with ``check_ends``: what the end records say that the
        records do not (:meth:`~wstape.cassettes.v2.EndCheck.disagreement`), or None;
        None as well for a file that did not end cleanly or is truncated (the pass said
        so: some records are counted by no end record)."""
        check = self.end_check
        if check is None or self.truncated_at is not None:
            return None
        return check.disagreement(strays)

    def _ends_to_check(self) -> bool:
        """Whether the last end record says anything per connection (``conns``: a file of
        at most 4096 connections per writer); without it there is nothing per connection
        to hold a pass to, and the pass collects nothing."""
        end = self.end_summary()
        return end is not None and end.conns is not None

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

        None when the file has no listing, or the listing does not hold; then
        ``listing_refused`` says why (None when there is no listing), and a pass reads the
        file. What is held to the file, at a cost of a few reads per connection (see
        :func:`_check_listing`): the listing agrees with its end record's counts; each
        open and close offset is a record of the file before the end record, that
        connection's open or close, in the order they opened, no two overlapping; the
        records before the first open are the notes about the whole cassette the counts
        leave room for, and the records after the last listed one are messages and
        notes of listed connections that end exactly where the end record starts (a fake
        end record inside a payload does not); the bytes between the listed records can
        hold the messages and notes the listing counts. Only the opens and closes and
        those few records are read: ``wstape check`` reads every record (and holds the
        listing to them).
        """
        self.listing_refused = None
        end = self.end_summary()
        if end is None or end.listing is None:
            return None
        try:
            return self._listed(end)
        except _ListingWrong as e:
            self.listing_refused = str(e)
            return None

    def _listed(self, end: v2.End) -> list[ConnectionSummary]:
        listing, conns = end.listing or (), end.conns
        notes = _listing_disagrees(end)
        end_at = self.size - end.size
        out: list[ConnectionSummary] = []
        spans: list[tuple[int, int]] = []
        """(start, end) of every listed record."""
        seen: set[int] = set()
        least = 0
        """Bytes the messages and notes outside the listed records take, at least."""
        most = 0
        """And at most."""
        with self._open() as f:
            scanner = RecordScanner(f.fileno(), self.size, version=self._version)

            def at(offset: int, what: str) -> Record | v2.End:
                if not self._body_offset <= offset < end_at:
                    raise _ListingWrong(f"{what} {offset} is outside the file's records")
                try:
                    stop = scanner.scan(offset)
                    record = self._slow_record(scanner, offset, stop, 0)
                except (CassetteError, ShapeError, RecordTruncated):
                    raise _ListingWrong(f"{what} {offset} is not a record") from None
                if stop > end_at:
                    raise _ListingWrong(f"{what} {offset} is not a record before the end record")
                spans.append((offset, stop))
                return record

            last_open = -1
            for entry in listing:
                conn = entry.conn
                if conn in seen:
                    raise _ListingWrong(f"connection {conn} is listed twice")
                seen.add(conn)
                if entry.open_at <= last_open:
                    raise _ListingWrong(
                        f"connection {conn} is not listed in the order the connections opened"
                    )
                last_open = entry.open_at
                op = at(entry.open_at, f"connection {conn}'s open_at")
                if type(op) is not Open or op.conn != conn:
                    raise _ListingWrong(
                        f"the record at byte {entry.open_at} is not the open of connection {conn}"
                    )
                close: Close | None = None
                if entry.close_at is not None:
                    if entry.close_at <= entry.open_at:
                        raise _ListingWrong(f"connection {conn}'s close_at is before its open")
                    got = at(entry.close_at, f"connection {conn}'s close_at")
                    if type(got) is not Close or got.conn != conn:
                        raise _ListingWrong(
                            f"the record at byte {entry.close_at} is not the close of "
                            f"connection {conn}"
                        )
                    close = got
                low, high = _listed_figures(entry, op, close)
                least += low
                most += high
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
            spans.sort()
            for (before, stop), (start, _) in itertools.pairwise(spans):
                if stop > start:
                    raise _ListingWrong(f"the listed records at bytes {before} and {start} overlap")
            first = spans[0][0] if spans else end_at
            last = spans[-1][1] if spans else end_at
            assert conns is not None  # (_listing_disagrees refuses a listing without conns)
            loose = end.records - sum(c.records for c in conns)
            """Records of no connection: notes about the whole cassette."""
            self._held_between(f, self._body_offset, first, loose, None, "before the first open")
            if last < end_at:
                self._held_between(
                    f, last, end_at, end.records, seen, "after the last listed record"
                )
        between = end_at - self._body_offset - sum(stop - start for start, stop in spans)
        least += (notes + loose) * _NOTE_BYTES
        most += (notes + loose) * _NOTE_MOST
        if not least <= between <= most:
            raise _ListingWrong(
                f"its counts do not fit the file: the messages and notes it counts take "
                f"{least} to {most} bytes, the file has {between} for them"
            )
        return out

    def _held_between(
        self,
        f: IO[bytes],
        start: int,
        stop: int,
        most: int,
        conns: set[int] | None,
        where: str,
    ) -> None:
        """The records from ``start`` to ``stop`` (the fast way, as a pass reads them):
        at most ``most``, each a note (about the whole cassette when ``conns`` is None) or a
        message of a connection in ``conns``, and the last one ends exactly at ``stop``;
        raises _ListingWrong otherwise."""
        if start == stop:
            return
        batches = _Pass(self, f, start, 1, fields=True, last=stop - 1)
        count = 0
        try:
            while (batch := batches.next_batch()) is not None:
                assert type(batch) is list  # (no runs asked for)
                for record in batch:
                    count += 1
                    if type(record) is tuple:
                        held = conns is not None and record[0] in conns
                    elif type(record) is Note:
                        held = record.conn is None or (conns is not None and record.conn in conns)
                    else:
                        held = False
                    if not held or count > most:
                        raise _ListingWrong(f"a record {where} is not one it counts")
        except CassetteError:
            raise _ListingWrong(f"the records {where} cannot be read") from None
        finally:
            self.truncated_at = None
        if batches.offset != stop or batches.index != count + 1:
            raise _ListingWrong(
                f"the records {where} do not end where the next listed record or the end "
                f"record starts (byte {stop})"
            )


class _ListingWrong(Exception):
    """Why an end record's listing does not hold (:meth:`CassetteReader.listed`)."""


_NOTE_BYTES = len(msgpack.packb({"type": "note", "text": ""}))
"""The shortest note record."""
_NOTE_MOST = MAX_TEXT_BYTES + 64
"""The longest (its text at the string cap, its id and time as long as they come)."""


def _message_bytes(conn: int) -> tuple[int, int]:
    """The bytes a message of ``conn`` takes beside its payload, at least and at most: the
    array, the id, ``t`` (a fixint to a float64), the kind and the payload's length."""
    head = 1 + len(msgpack.packb(conn)) + 1
    return head + 1 + 2, head + 9 + 5


def _listed_figures(entry: v2.ListedConn, op: Open, close: Close | None) -> tuple[int, int]:
    """The bytes the messages of a listed connection take, at least and at most; raises
    _ListingWrong for figures no pass could fold from its open and close."""
    conn = entry.conn
    if not op.accepted and (
        entry.close_at is not None or entry.messages_client or entry.messages_server
    ):
        raise _ListingWrong(f"connection {conn} is a refused upgrade with messages or a close")
    for count, size, side in (
        (entry.messages_client, entry.bytes_client, "client"),
        (entry.messages_server, entry.bytes_server, "server"),
    ):
        if size > count * MAX_RECORD_BYTES:
            raise _ListingWrong(
                f"connection {conn}: {size} bytes in {count} messages from the {side}"
            )
    messages = entry.messages_client + entry.messages_server
    if close is not None and entry.last_t < close.t:
        raise _ListingWrong(f"connection {conn}'s last_t is before its close")
    if not messages and entry.last_t != (0.0 if close is None else close.t):
        raise _ListingWrong(f"connection {conn}'s last_t is not the time of a record")
    low, high = _message_bytes(conn)
    payload = entry.bytes_client + entry.bytes_server
    return messages * low + payload, messages * high + payload


def _listing_disagrees(end: v2.End) -> int:
    """The notes of connections an end record's listing leaves room for; raises
    _ListingWrong when the listing disagrees with its counts: not the same connections in
    the same order as ``conns`` (a writer lists both), a connection with fewer records
    than the listing gives it, or more records than ``records`` in all."""
    conns, listing = end.conns, end.listing or ()
    if conns is None or [c.conn for c in conns] != [e.conn for e in listing]:
        raise _ListingWrong("its connections are not those of the end record's conns")
    if sum(c.records for c in conns) > end.records:
        raise _ListingWrong("its conns count more records than the end record's records")
    notes = 0
    for c, e in zip(conns, listing, strict=True):
        listed = 1 + e.messages_client + e.messages_server + (e.close_at is not None)
        if c.records < listed:
            raise _ListingWrong(
                f"connection {c.conn} has {c.records} records in conns, fewer than the "
                f"{listed} it lists"
            )
        notes += c.records - listed
    return notes


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
        runs: bool = False,
    ) -> None:
        reader.truncated_at = None
        reader.incomplete = None
        self.reader = reader
        self.f = f
        whole = start is None
        self.opened: set[int] | None = set() if whole and not reader.allow_reused_ids else None
        self.tally: v2.Tally | None = v2.Tally() if whole else None
        if whole and reader.check_ends:
            reader.end_check = v2.EndCheck() if reader._ends_to_check() else None
        check = reader.end_check if whole and reader.check_ends else None
        self.marks = None if check is None else check.record
        """Where the records other than messages go, with their offsets (``check_ends``)."""
        self.plain: type = tuple if fields else Message
        """The type of a message as this pass hands it out."""
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
        self.run_of = (
            None
            if not (runs and fields)
            else v2_run
            if self.decode is decode_v2_fields
            else v1_run
            if self.decode is decode_v1_fields
            else None
        )
        """How a chunk of messages only is made one MessageRun (None: it is not)."""
        self._restart(self.offset)

    def _restart(self, offset: int) -> None:
        self.f.seek(offset)
        self.unpacker = _fast_unpacker()
        self.base = self.fed = offset
        """File offsets where the unpacker started and where what it was fed ends."""

    def next_batch(self) -> list[Any] | MessageRun | None:
        """The next records (never an empty list), or None once the pass is over; a chunk
        of messages only as a MessageRun, if the pass was asked for ``runs``."""
        reader = self.reader
        if self._duplicate is not None:
            reader._duplicate(self._duplicate, self.index, self.offset)
        opened = self.opened
        marks, plain = self.marks, self.plain
        while self.offset < self.limit:
            decode = self.decode
            if decode is not None and not self._long_next:
                # What the unpacker holds whole, with where each ends (a record cut at the
                # end of what was fed is half parsed, so tell() after it would be no
                # record boundary).
                objs: list[Any] = []
                ends: list[int] = []
                keep, at = objs.append, ends.append
                tell = self.unpacker.tell
                ran_out = True
                """Whether the unpacker stopped at the end of what it was fed."""
                try:
                    for obj in self.unpacker:
                        keep(obj)
                        at(tell())
                except _UNPACK_ERRORS:
                    ran_out = False
                base = self.base
                limit = self.limit
                run_of = self.run_of
                if (
                    run_of is not None
                    and (run := run_of(objs)) is not None
                    and base + ends[-1] <= limit
                ):
                    self.offset = base + ends[-1]
                    self.index += len(objs)
                    if not ran_out:
                        self._long_next = True
                    return run
                batch: list[Any] = []
                append = batch.append
                offset = self.offset
                for obj, end in zip(objs, ends, strict=True):
                    record = decode(obj)
                    if record is None:
                        ran_out = False
                        break
                    if type(record) is not plain:  # (one test for a message)
                        if type(record) is Open and opened is not None:
                            if record.conn in opened:
                                self._duplicate = record.conn
                                break
                            opened.add(record.conn)
                        if marks is not None:
                            marks(record, offset)
                    append(record)
                    offset = base + end
                    if offset >= limit:
                        break
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
                        self.unpacker.feed(chunk)
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
            if marks is not None and type(slow) is not Message:
                marks(slow, offset)
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
