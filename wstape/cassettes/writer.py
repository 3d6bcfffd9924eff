"""Append-only cassette writer: one msgpack map per record, flushed as it is written.

A killed recorder loses at most the record being written; readers report that tail as
truncated. Any write failure raises :class:`CassetteWriteError` and leaves the writer
unusable: recording must stop rather than let traffic through unrecorded.

Several processes may append to one cassette at once (two ``wstape record --append``,
pytest-xdist workers in ``new_episodes`` mode): the file is opened ``O_APPEND`` and each
record is one ``write()``, so records never interleave; a new connection id is taken
under an exclusive ``flock`` on the cassette, after reading what the others appended
since, and its ``open`` record is written before the lock is let go
(:meth:`CassetteWriter.reserve_conn`), so ids stay unique. Creating the file and writing
its header happen under the same lock, so two appenders on a missing file write one
header.

Every record is first held to the reader's own schema check
(:func:`~wstape.cassettes.schema.check_record_dict` on the map about to be packed, and the
record cap on the packed bytes): wstape never writes what it cannot read back. A record
that fails raises :class:`UnreadableRecord` and nothing is written; the writer stays usable.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import msgpack

from wstape.cassettes.errors import (
    CassetteError,
    CassetteExists,
    CassetteWriteError,
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
from wstape.core.errors import ConfigError
from wstape.core.model import Header, Note, Open, Record
from wstape.core.version import __version__


class WriteMode(StrEnum):
    """What to do with an output cassette that already exists."""

    CREATE = "create"
    """Refuse it (CassetteExists): the default, so no recording is lost by accident."""
    APPEND = "append"
    """Add to it (same format version), continuing its connection ids; create if missing."""
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
    CassetteError when the existing file cannot be appended to, and CassetteWriteError
    when the file cannot be created or written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        mode: WriteMode = WriteMode.CREATE,
        creator: str | None = None,
        started_at: float | None = None,
    ) -> None:
        self.path = Path(path)
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)
        self._next_conn = 1
        self._failed: CassetteWriteError | None = None
        self.records_written = 0
        self._next_index = 1
        """The record index the next record gets in the file (the header is record 0)."""
        self.mode = mode
        self._scanned_to = 0
        """Bytes of the file whose connection ids this writer knows."""
        self._highest = 0
        """The highest connection id in those bytes (or reserved by this writer)."""
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
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if mode is not WriteMode.APPEND:
            flags |= os.O_TRUNC
        try:
            self._fd = os.open(self.path, flags, 0o666)
        except OSError as e:
            raise CassetteWriteError(self.path, e) from e
        try:
            with self._locked():
                if os.fstat(self._fd).st_size == 0:
                    self._write(header_bytes)
                else:
                    self._scan_existing()
        except BaseException:
            os.close(self._fd)
            raise
        self._next_conn = self._highest + 1

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
        lock). Raises for a newer, broken, truncated cassette or a reused id: never
        append after garbage."""
        reader = CassetteReader(self.path)
        if reader.header.version != FORMAT_VERSION:
            raise CassetteError(
                self.path,
                f"cannot append: the cassette is format version {reader.header.version}, "
                f"this wstape writes {FORMAT_VERSION}",
            )
        for index, _, record in reader.iter_with_offsets():
            if isinstance(record, Open):
                self._highest = max(self._highest, record.conn)
            self._next_index = index + 1
        self._scanned_to = reader.size

    def _catch_up(self) -> None:
        """Learn the connection ids other writers appended since we last looked (under
        the lock, so every ``open`` among them is complete; a message being written may
        not be, and is read next time)."""
        size = os.fstat(self._fd).st_size
        if size <= self._scanned_to:
            return
        try:
            reader = CassetteReader(self.path, allow_truncated=True, allow_reused_ids=True)
            for index, _, record in reader.iter_with_offsets(
                start=self._scanned_to, index=self._next_index
            ):
                if isinstance(record, Open):
                    self._highest = max(self._highest, record.conn)
                self._next_index = index + 1
        except CassetteError as e:
            self._failed = CassetteWriteError(self.path, OSError(0, f"cannot append: {e}"))
            raise self._failed from None
        at = reader.truncated_at
        self._scanned_to = reader.size if at is None else at

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
        try:
            fields = record_to_dict(record)
            check_record_dict(fields)  # the reader's own check, so it can read this back
            data = self._packer.pack(fields)
        except (SchemaError, TypeError, AttributeError) as e:
            raise self._unreadable(record, str(e)) from None
        except (ValueError, OverflowError) as e:  # UnicodeEncodeError is a ValueError
            raise self._unreadable(record, f"cannot pack it: {e}") from None
        if len(data) > MAX_RECORD_BYTES:
            raise self._unreadable(record, f"{len(data)} bytes, over the {MAX_RECORD_BYTES} cap")
        self._write(data)
        self.records_written += 1
        self._next_index += 1

    def _unreadable(self, record: Record, reason: str) -> UnreadableRecord:
        return UnreadableRecord(self.path, record_label(record), self._next_index, reason)

    def note(self, text: str, conn: int | None = None, t: float | None = None) -> None:
        self.write(Note(conn=conn, text=text, t=t))

    def _write(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            view = memoryview(data)
            while view:  # one write() a record; the loop only for a short write
                written = os.write(self._fd, view)
                view = view[written:]
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            if end - len(data) == self._scanned_to:
                self._scanned_to = end  # nobody wrote in between: nothing to read back
            # A file removed under us still accepts writes on Linux; notice it (fstat of
            # the open file: no path lookup on the hot path, and a file renamed over ours
            # is noticed too).
            if os.fstat(self._fd).st_nlink == 0:
                raise FileNotFoundError(2, "the cassette file was removed while recording")
        except (OSError, ValueError) as e:
            self._failed = CassetteWriteError(self.path, e)
            raise self._failed from e

    def close(self) -> None:
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

    def __exit__(self, *exc: object) -> None:
        self.close()
