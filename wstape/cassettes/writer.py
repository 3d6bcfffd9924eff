"""Append-only cassette writer: one msgpack map per record, flushed as it is written.

A killed recorder loses at most the record being written; readers report that tail as
truncated. Any write failure raises :class:`CassetteWriteError` and leaves the writer
unusable: recording must stop rather than let traffic through unrecorded.

Every record is first held to the reader's own schema check
(:func:`~wstape.cassettes.schema.check_record_dict` on the map about to be packed, and the
record cap on the packed bytes): wstape never writes what it cannot read back. A record
that fails raises :class:`UnreadableRecord` and nothing is written; the writer stays usable.
"""

from __future__ import annotations

import os
import time
from enum import StrEnum
from pathlib import Path
from typing import IO

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
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and mode is WriteMode.APPEND:
            self._next_conn = self._scan_existing() + 1
            how = "ab"
        elif exists and mode is WriteMode.CREATE:
            raise CassetteExists(self.path)
        else:
            how = "wb"
        header_bytes = b""
        if how == "wb":
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
        try:
            self._file: IO[bytes] = open(self.path, how)
        except OSError as e:
            raise CassetteWriteError(self.path, e) from e
        if header_bytes:
            self._write(header_bytes)

    def _scan_existing(self) -> int:
        reader = CassetteReader(self.path)  # raises for a newer or broken cassette
        if reader.header.version != FORMAT_VERSION:
            raise CassetteError(
                self.path,
                f"cannot append: the cassette is format version {reader.header.version}, "
                f"this wstape writes {FORMAT_VERSION}",
            )
        highest = 0
        # Raises TruncatedCassette and DuplicateConnection: never append after garbage.
        for index, _, record in reader.iter_with_offsets():
            if isinstance(record, Open):
                highest = max(highest, record.conn)
            self._next_index = index + 1
        return highest

    def new_conn_id(self) -> int:
        """A connection id not used in this cassette yet."""
        conn = self._next_conn
        self._next_conn += 1
        return conn

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
            self._file.write(data)
            self._file.flush()
            # A file removed under us still accepts writes on Linux; notice it (fstat of
            # the open file: no path lookup on the hot path, and a file renamed over ours
            # is noticed too).
            if os.fstat(self._file.fileno()).st_nlink == 0:
                raise FileNotFoundError(2, "the cassette file was removed while recording")
        except (OSError, ValueError) as e:
            self._failed = CassetteWriteError(self.path, e)
            raise self._failed from e

    def close(self) -> None:
        try:
            self._file.close()
        except OSError as e:
            if self._failed is None:
                raise CassetteWriteError(self.path, e) from e

    def __enter__(self) -> CassetteWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
