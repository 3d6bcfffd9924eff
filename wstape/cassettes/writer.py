"""Append-only cassette writer: one msgpack map per record, flushed as it is written.

A killed recorder loses at most the record being written; readers report that tail as
truncated. Any write failure raises :class:`CassetteWriteError` and leaves the writer
unusable: recording must stop rather than let traffic through unrecorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

import msgpack

import wstape
from wstape.cassettes.errors import CassetteError, CassetteWriteError
from wstape.cassettes.reader import CassetteReader
from wstape.cassettes.schema import FORMAT_VERSION, header_to_dict, record_to_dict
from wstape.core.model import Header, Note, Open, Record


class CassetteWriter:
    """Write records to ``path``.

    ``append=False`` creates the file (refusing to replace an existing non-empty file
    unless ``overwrite=True``); ``append=True`` adds to an existing cassette of the same
    format version, continuing its connection ids, or creates it if missing.

    Raises CassetteError when the existing file cannot be appended to and
    CassetteWriteError when the file cannot be created or written.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        append: bool = False,
        overwrite: bool = False,
        creator: str | None = None,
        started_at: float | None = None,
    ) -> None:
        self.path = Path(path)
        self._packer = msgpack.Packer(use_bin_type=True, datetime=False)
        self._next_conn = 1
        self._failed: CassetteWriteError | None = None
        self.records_written = 0
        exists = self.path.exists() and self.path.stat().st_size > 0
        if exists and append:
            self._next_conn = self._scan_existing() + 1
            mode = "ab"
        elif exists and not overwrite:
            raise CassetteError(
                self.path, "already exists; use --append to add to it or --overwrite to replace it"
            )
        else:
            mode = "wb"
        try:
            self._file: IO[bytes] = open(self.path, mode)
        except OSError as e:
            raise CassetteWriteError(self.path, e) from e
        if mode == "wb":
            header = Header(
                version=FORMAT_VERSION,
                creator=creator or f"wstape {wstape.__version__}",
                started_at=time.time() if started_at is None else started_at,
            )
            self._write(self._packer.pack(header_to_dict(header)))

    def _scan_existing(self) -> int:
        reader = CassetteReader(self.path)  # raises for a newer or broken cassette
        if reader.header.version != FORMAT_VERSION:
            raise CassetteError(
                self.path,
                f"cannot append: the cassette is format version {reader.header.version}, "
                f"this wstape writes {FORMAT_VERSION}",
            )
        highest = 0
        for record in reader:  # raises TruncatedCassette: never append after garbage
            if isinstance(record, Open):
                highest = max(highest, record.conn)
        return highest

    def new_conn_id(self) -> int:
        """A connection id not used in this cassette yet."""
        conn = self._next_conn
        self._next_conn += 1
        return conn

    def write(self, record: Record) -> None:
        """Append one record and flush it to the OS."""
        self._write(self._packer.pack(record_to_dict(record)))
        self.records_written += 1

    def note(self, text: str, conn: int | None = None, t: float | None = None) -> None:
        self.write(Note(conn=conn, text=text, t=t))

    def _write(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        try:
            self._file.write(data)
            self._file.flush()
            # A file removed under us still accepts writes on Linux; notice it.
            if not self.path.exists():
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
