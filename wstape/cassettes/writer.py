"""Append-only cassette writer: one msgpack record per write, flushed as it is written.

It writes format version 3 (:mod:`wstape.cassettes.v2`): messages as arrays, other records
as maps, and, when the writer is closed, an end record counting what it wrote, so a
reader can tell a cassette that ended cleanly from one cut at a record boundary. A writer
that wrote the whole file by itself also lists its connections in the end record (where
each one's open and close are, and its message and byte counts), so ``wstape ls`` reads
them from the end instead of reading every record. A killed
recorder loses at most the record being written; readers report the cassette as truncated
(a record cut short, or no end record). Any write failure raises
:class:`CassetteWriteError` and leaves the writer unusable: recording must stop rather
than let traffic through unrecorded.

A cassette removed (or replaced) while it is written still accepts writes on Linux, into
a file nobody will see. The writer notices with an ``fstat`` of its open file: before every
record for a live recording (``live=True``: the recorder, where a record lost is traffic
lost), else every :data:`CHECK_EVERY` records, whenever it takes the lock and on close.

Several processes may append to one cassette at once (two ``wstape record --append``,
pytest-xdist workers in ``new_episodes`` mode): the file is opened ``O_APPEND`` and each
record is one ``write()`` (a message of :data:`~wstape.cassettes.v2.BIG_PAYLOAD` bytes or
more: one ``writev()`` of its packed head and its payload as it is, never copied), so
records never interleave; a new connection id is taken
under an exclusive ``flock`` on the cassette, after reading what the others appended
since, and its ``open`` record is written before the lock is let go
(:meth:`CassetteWriter.reserve_conn`), so ids stay unique. Creating the file and writing
its header happen under the same lock, so two appenders on a missing file write one
header. Every writer also holds a shared lock on the cassette while it has it open (an
OFD lock, :func:`_writing`): a writer asked to replace the file refuses while another one
has it (:class:`CassetteBusy`), and one asked to append to a cassette that did not end
cleanly refuses when nobody has it (its recorder was killed: :class:`UnendedAppend`).

Every record is first held to the reader's own schema check
(:func:`~wstape.cassettes.schema.check_record_dict` on the map about to be packed,
:func:`~wstape.cassettes.v2.message_to_array` for a message, and the record cap on the
packed bytes): wstape never writes what it cannot read back. A record that fails raises
:class:`UnreadableRecord` and nothing is written; the writer stays usable.

Appending needs a cassette of format version 2 or 3 (a writer that appends lists no
connections, so what it writes is the same in both): a version-1 file is refused
(:class:`OlderCassette`, "run `wstape upgrade`") rather than mixed with later records.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgpack

from wstape.cassettes import v2
from wstape.cassettes.errors import (
    CassetteBusy,
    CassetteError,
    CassetteExists,
    CassetteWriteError,
    OlderCassette,
    UnendedAppend,
    UnendedCassette,
    UnreadableRecord,
)
from wstape.cassettes.reader import CassetteReader
from wstape.cassettes.schema import (
    FORMAT_VERSION,
    MAX_RECORD_BYTES,
    SchemaError,
    check_record_dict,
    header_from_dict,
    header_to_dict,
    record_label,
    record_to_dict,
)
from wstape.core.connections import CASSETTE, STRAY, ConnectionTracker
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Header, Message, Note, Open, Record
from wstape.core.version import __version__

CHECK_EVERY = 1024
"""Records between two checks that the file was not removed (unless ``live``)."""
APPENDABLE = 2
"""The oldest format version a writer appends to."""


class _Listing:
    """What ``wstape ls`` folds of a writer's records, for its end record's listing
    (:class:`~wstape.cassettes.v2.ListedConn`): the same
    :class:`~wstape.core.connections.ConnectionTracker` decides which connection each
    record belongs to. Given up (:meth:`add` says False) past
    :data:`~wstape.cassettes.v2.MAX_LISTED` connections and at the first record a pass
    would leave out or refuse (a stray, a reused id): ``ls`` then reads the file."""

    def __init__(self) -> None:
        self.tracker = ConnectionTracker()
        self.entries: list[list[Any]] = []
        """Per slot: the items of its ListedConn, counted as records are written."""

    def message(self, conn: int, from_client: bool, size: int, t: float) -> bool:
        """Count a message (the writer's hot path: no Message routed); False: a stray,
        which a pass would leave out and warn of."""
        live = self.tracker.live_slots(conn)  # (route()'s first case, as the folds do)
        if not live:
            return False
        entry = self.entries[live[-1]]
        if from_client:
            entry[3] += 1
            entry[5] += size
        else:
            entry[4] += 1
            entry[6] += size
        if t > entry[7]:
            entry[7] = t
        return True

    def add(self, record: Record, offset: int) -> bool:
        """Count a record other than a message, written at byte ``offset``; False: no
        listing can be made."""
        slot = self.tracker.route(record)
        if slot == STRAY or self.tracker.reused:
            return False
        if slot == CASSETTE or type(record) is Note:
            return True
        if type(record) is Open:
            if slot >= v2.MAX_LISTED:
                return False
            self.entries.append([record.conn, offset, None, 0, 0, 0, 0, 0.0])
            return True
        assert type(record) is Close  # (messages come through message())
        entry = self.entries[slot]
        entry[2] = offset
        entry[7] = max(entry[7], float(record.t))
        return True

    def listing(self) -> list[v2.ListedConn]:
        return [v2.ListedConn(*entry) for entry in self.entries]


_OFD = hasattr(fcntl, "F_OFD_SETLK")
_WRITING_AT = 1 << 62
"""The byte (far past any cassette's data) that every writer holds a shared lock on while
it has the cassette open: an open file description lock (Linux's OFD locks), which no
other open or close of the file in the same process lets go, unlike a POSIX record lock,
and which does not meet the ``flock`` that ids are reserved under."""


def _writing(fd: int, kind: str, *, wait: bool = False) -> bool | None:
    """Take (or turn the one held through ``fd`` into) the writers' lock: ``"shared"`` (a
    writer has the file open) or ``"sole"`` (and no other writer has). False when another
    open of the file holds one that stands in the way; None when this cannot be told (no
    OFD locks here, or none on this filesystem: the writers then behave as before)."""
    if not _OFD:
        return None
    what = fcntl.F_RDLCK if kind == "shared" else fcntl.F_WRLCK
    lock = struct.pack("hh4xqqi4x", what, os.SEEK_SET, _WRITING_AT, 1, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK, lock)
    except OSError as e:
        return False if e.errno in (errno.EAGAIN, errno.EACCES) else None
    return True


class WriteMode(StrEnum):
    """What to do with an output cassette that already exists."""

    CREATE = "create"
    """Refuse it (CassetteExists): the default, so no recording is lost by accident."""
    APPEND = "append"
    """Add to it (same format version), continuing its connection ids; create if missing.
    A cassette of an older format version is refused (OlderCassette: `wstape upgrade`)."""
    OVERWRITE = "overwrite"
    """Replace it."""

    @classmethod
    def from_flags(cls, append: bool, overwrite: bool) -> WriteMode:
        """The mode two yes/no options ask for; ConfigError if both are set."""
        if append and overwrite:
            raise ConfigError("append and overwrite cannot both be asked for")
        return cls.APPEND if append else cls.OVERWRITE if overwrite else cls.CREATE


class CassetteWriter:
    """Write records to ``path``, created, appended to or overwritten as ``mode`` says.

    Raises CassetteExists for an existing file without ``append`` or ``overwrite``,
    OlderCassette for appending to an older format version, CassetteError when the
    existing file cannot be appended to, and CassetteWriteError when the file cannot be
    created or written. ``live``: check before every record that the file is still there
    (a live recording), not every :data:`CHECK_EVERY` records.

    :meth:`close` (and leaving a ``with`` block without an error) appends the end record;
    :meth:`abort` (leaving it with an error) does not, so readers see the output as not
    ended cleanly.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: WriteMode = WriteMode.CREATE,
        creator: str | None = None,
        started_at: float | None = None,
        live: bool = False,
    ) -> None:
        self.path = Path(path)
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)
        self._pack = self._packer.pack
        self._check_every = 1 if live else CHECK_EVERY
        self._check_at = 0
        """The next check that the file is still there is due before this many records
        (of ``records_written``) are written: once every ``_check_every``."""
        self._counts: dict[int, int] = {}
        """Records per connection (what the end record says)."""
        self._created = False
        """Whether this writer wrote the header (so it ends even an empty cassette)."""
        self._next_conn = 1
        self._failed: CassetteWriteError | None = None
        self.records_written = 0
        self._index_base = 1
        """``_next_index`` less ``records_written``."""
        self.mode = mode
        self._scanned_to = 0
        """Bytes of the file whose connection ids this writer knows."""
        self._scanned_index = 1
        """The record index of the record at ``_scanned_to``."""
        self._own = 0
        """Bytes this writer wrote since ``_scanned_to``: when the file is exactly that much
        longer, nobody else wrote and there is nothing to read back."""
        self._highest = 0
        """The highest connection id in those bytes (or reserved by this writer)."""
        self._listing: _Listing | None = None
        """The connections for the end record's listing, while this writer is the only
        one that wrote the file (it wrote the header, and nobody else wrote since)."""
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and mode is WriteMode.CREATE:
            raise CassetteExists(self.path)
        header = Header(
            version=FORMAT_VERSION,
            creator=creator or f"wstape {__version__}",
            started_at=time.time() if started_at is None else started_at,
        )
        fields = header_to_dict(header)
        try:
            header_from_dict(fields)
            header_bytes = self._packer.pack(fields)
        except (SchemaError, TypeError, ValueError, OverflowError) as e:
            raise UnreadableRecord(self.path, "the header", 0, str(e)) from None
        # (O_RDWR, though only written: a shared lock needs a descriptor open for reading)
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as e:
            raise CassetteWriteError(self.path, e) from e
        try:
            if mode is not WriteMode.APPEND:
                # Replace what is there, unless another writer has the file open: it
                # would go on writing into what is left, and both would say they had
                # recorded (the sole writer's lock is then held while the file is new).
                if _writing(self._fd, "sole") is False:
                    raise CassetteBusy(self.path)
                if stat.S_ISREG(os.fstat(self._fd).st_mode):  # (not /dev/null, /dev/full)
                    try:
                        os.ftruncate(self._fd, 0)
                    except OSError as e:
                        raise CassetteWriteError(self.path, e) from e
            with self._locked():
                if os.fstat(self._fd).st_size == 0:
                    self._write(header_bytes)
                    self._created = True
                    self._listing = _Listing()
                    self._scanned_to, self._own = len(header_bytes), 0  # (under the lock)
                    self._check_at = 0  # (the header's check does not count for record 1)
                else:
                    self._scan_existing()
            _writing(self._fd, "shared", wait=True)  # (held while the file is open)
        except BaseException:
            os.close(self._fd)
            raise
        self._next_conn = self._highest + 1

    def fileno(self) -> int:
        """The descriptor the writer writes through (open until :meth:`close`)."""
        return self._fd

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on the cassette against other writers (other processes, or
        other writers of this one), waiting for it."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except OSError as e:  # a filesystem without locks: carry on unlocked
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                raise CassetteWriteError(self.path, e) from e
            yield
            return
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _scan_existing(self) -> None:
        """Check the cassette can be appended to and learn its connection ids (under the
        lock). Raises for an older, newer, broken or truncated cassette or a reused id:
        never append after garbage. One that did not end cleanly is fine (another writer
        may be appending to it right now)."""
        reader = CassetteReader(self.path)
        if reader.header.version < APPENDABLE:
            raise OlderCassette(self.path, reader.header.version)
        if reader.header.version > FORMAT_VERSION:  # pragma: no cover - refused as newer
            raise CassetteError(self.path, f"cannot append to format {reader.header.version}")
        try:
            for _, _, record in reader.iter_with_offsets():
                if isinstance(record, Open):
                    self._highest = max(self._highest, record.conn)
        except UnendedCassette:
            # Every record was read, only the end records are missing: fine while another
            # writer is appending to it; with none, its recorder was killed.
            if _writing(self._fd, "sole") is True:
                raise UnendedAppend(self.path) from None
        self._next_index = self._scanned_index = reader.next_index
        self._scanned_to = reader.size

    def _catch_up(self) -> None:
        """Learn the connection ids other writers appended since we last looked (under
        the lock, so every ``open`` among them is complete; a message being written may
        not be, and is read next time)."""
        stat = self._check_file()
        if stat.st_size == self._scanned_to + self._own:  # nobody else wrote
            self._scanned_to, self._own = stat.st_size, 0
            self._scanned_index = self._next_index
            return
        self._listing = None  # (another writer wrote: this one lists no connections)
        try:  # (our own records since _scanned_to are read back too)
            reader = CassetteReader(self.path, allow_truncated=True, allow_reused_ids=True)
            for _, _, record in reader.iter_with_offsets(
                start=self._scanned_to, index=self._scanned_index
            ):
                if isinstance(record, Open):
                    self._highest = max(self._highest, record.conn)
        except CassetteError as e:
            self._failed = CassetteWriteError(self.path, OSError(0, f"cannot append: {e}"))
            raise self._failed from None
        at = reader.truncated_at
        self._scanned_to = reader.size if at is None else at
        self._scanned_index = self._next_index = reader.next_index
        self._own = 0

    def new_conn_id(self) -> int:
        """A connection id not used in this cassette yet, by this writer or, as far as is
        known now, by another (:meth:`reserve_conn` is the safe way with other writers)."""
        with self._locked():
            self._catch_up()
            self._highest = conn = max(self._highest, self._next_conn - 1) + 1
        self._next_conn = conn + 1
        return conn

    @contextlib.contextmanager
    def reserve_conn(self) -> Iterator[int]:
        """A connection id nobody else appending to this cassette can take: the lock is
        held until the block ends, and the block must write the connection's ``open``
        record (or nothing)."""
        with self._locked():
            self._catch_up()
            self._highest = conn = max(self._highest, self._next_conn - 1) + 1
            self._next_conn = conn + 1
            yield conn

    def write(self, record: Record) -> None:
        """Append one record and flush it to the OS.

        Raises UnreadableRecord (nothing written) for a record the reader would refuse,
        CassetteWriteError when writing fails.
        """
        if type(record) is Message:  # the hot path: one array, one write, one count
            try:
                items = v2.message_to_array(record)
                if len(items[3]) < v2.BIG_PAYLOAD:
                    data, tail = self._pack(items), None
                else:  # the payload is written as it is: no copy of it packed
                    data, tail = v2.pack_message_head(self._pack, items), items[3]
            except (SchemaError, TypeError, AttributeError) as e:
                raise self._unreadable(record, str(e)) from None
            except (ValueError, OverflowError) as e:
                raise self._unreadable(record, f"cannot pack it: {e}") from None
            size = len(data) if tail is None else len(data) + len(tail)
            if size > MAX_RECORD_BYTES:
                raise self._unreadable(record, f"{size} bytes, over the {MAX_RECORD_BYTES} cap")
            if (
                tail is not None
                or self._failed is not None
                or self.records_written >= self._check_at
            ):
                self._write(data, tail)  # (the long way: raise, or check the file first)
            else:  # _write, inline
                try:
                    written = os.write(self._fd, data)
                except (OSError, ValueError) as e:
                    self._failed = CassetteWriteError(self.path, e)
                    raise self._failed from e
                if written != size:
                    self._write_rest((data,), written)
                self._own += size
            self.records_written += 1
            conn = items[0]
            self._counts[conn] = self._counts.get(conn, 0) + 1
            listing = self._listing
            if listing is not None and not listing.message(
                conn, items[2] < 2, len(items[3]), items[1]
            ):
                self._listing = None
            return
        try:
            fields = record_to_dict(record)
            check_record_dict(fields)  # the reader's own check, so it can read this back
            data = self._pack(fields)
        except (SchemaError, TypeError, AttributeError) as e:
            raise self._unreadable(record, str(e)) from None
        except (ValueError, OverflowError) as e:  # UnicodeEncodeError is a ValueError
            raise self._unreadable(record, f"cannot pack it: {e}") from None
        if len(data) > MAX_RECORD_BYTES:
            raise self._unreadable(record, f"{len(data)} bytes, over the {MAX_RECORD_BYTES} cap")
        offset = self._scanned_to + self._own
        self._write(data)
        self.records_written += 1
        if record.conn is not None:
            self._counts[record.conn] = self._counts.get(record.conn, 0) + 1
        if self._listing is not None and not self._listing.add(record, offset):
            self._listing = None

    @property
    def _next_index(self) -> int:
        """The record index the next record gets in the file (the header is record 0)."""
        return self._index_base + self.records_written

    @_next_index.setter
    def _next_index(self, index: int) -> None:
        self._index_base = index - self.records_written

    def _unreadable(self, record: Record, reason: str) -> UnreadableRecord:
        return UnreadableRecord(self.path, record_label(record), self._next_index, reason)

    def note(self, text: str, conn: int | None = None, t: float | None = None) -> None:
        self.write(Note(conn=conn, text=text, t=t))

    def _write(self, data: bytes, tail: bytes | None = None) -> None:
        """Append ``data`` (then ``tail``, in the same system call) as one record."""
        if self._failed is not None:
            raise self._failed
        try:
            if self.records_written >= self._check_at:
                self._check_file()
            if tail is None:  # one write() a record (O_APPEND)
                size, written = len(data), os.write(self._fd, data)
            else:  # writev() appends as one write() does
                size, written = len(data) + len(tail), os.writev(self._fd, (data, tail))
        except (OSError, ValueError) as e:
            self._failed = CassetteWriteError(self.path, e)
            raise self._failed from e
        if written != size:
            self._write_rest((data,) if tail is None else (data, tail), written)
        self._own += size

    def _write_rest(self, parts: tuple[bytes, ...], written: int) -> None:
        """After a short write (a full disk, a signal): the rest of ``parts``, or the error."""
        try:
            for part in parts:
                if written >= len(part):
                    written -= len(part)
                    continue
                view = memoryview(part)[written:]
                written = 0
                while view:
                    view = view[os.write(self._fd, view) :]
        except (OSError, ValueError) as e:
            self._failed = CassetteWriteError(self.path, e)
            raise self._failed from e

    def _check_file(self) -> os.stat_result:
        """The open file's status; raises when it was removed or replaced (fstat of the
        open file: no path lookup, and a file renamed over ours is noticed too)."""
        self._check_at = self.records_written + self._check_every
        try:
            stat = os.fstat(self._fd)
            if stat.st_nlink == 0:
                raise FileNotFoundError(2, "the cassette file was removed while recording")
        except (OSError, ValueError) as e:
            self._failed = CassetteWriteError(self.path, e)
            raise self._failed from e
        return stat

    def close(self) -> None:
        """Append the end record (unless a write failed) and close the file.

        Raises CassetteWriteError when the end record cannot be written or the file was
        removed since the last check.
        """
        if self._fd < 0:
            return
        try:
            if self._failed is None:
                stat = self._check_file()
                if self.records_written or self._created:
                    listing = self._listing
                    if listing is not None and stat.st_size != self._scanned_to + self._own:
                        listing = None  # (another writer wrote since: offsets unknown)
                    self._write(
                        v2.pack_end(
                            self.records_written,
                            self._counts,
                            None if listing is None else listing.listing(),
                        )
                    )
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the file without an end record: what was written is kept, and readers
        report that the cassette did not end cleanly."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        try:
            os.close(fd)
        except OSError as e:
            if self._failed is None:
                raise CassetteWriteError(self.path, e) from e

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
