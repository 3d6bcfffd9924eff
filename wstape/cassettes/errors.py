"""Errors of the cassette layer.

Exception tree::

    CassetteError                 anything wrong with reading a cassette (exit code 3)
    ├── TruncatedCassette         the file ends inside a record (a recorder was killed)
    └── NewerCassette             written by a newer wstape ("upgrade wstape")
    CassetteWriteError            a record could not be written (disk full, file removed)
"""

from __future__ import annotations

from pathlib import Path


class CassetteError(Exception):
    """A cassette could not be read. The message names the file, record and byte offset."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        record: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.path = str(path)
        self.detail = message
        self.record = record
        self.offset = offset
        where = [self.path]
        if record is not None:
            where.append(f"record {record}")
        if offset is not None:
            where.append(f"byte {offset}")
        super().__init__(f"{', '.join(where)}: {message}")


class TruncatedCassette(CassetteError):
    """The cassette ends in the middle of a record; everything before ``offset`` is whole."""


class NewerCassette(CassetteError):
    """The cassette's format version is newer than this wstape reads."""


class CassetteWriteError(Exception):
    """Writing a record failed; recording must stop rather than lose traffic silently."""

    def __init__(self, path: str | Path, cause: BaseException) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: cannot write cassette: {cause}")
