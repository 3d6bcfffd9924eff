"""Errors of the cassette layer (their place in the tree: :mod:`wstape.core.errors`).

CassetteError                 anything wrong with reading a cassette (exit code 3)
├── TruncatedCassette         the file ends inside a record (a recorder was killed)
└── NewerCassette             written by a newer wstape ("upgrade wstape")
CassetteWriteError            a record could not be written (disk full, file removed)
└── CassetteExists            the file exists and neither append nor overwrite was asked
"""

from __future__ import annotations

from pathlib import Path

from wstape.core.errors import WstapeError


class CassetteError(WstapeError):
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


class CassetteWriteError(WstapeError):
    """Writing a record failed; recording must stop rather than lose traffic silently."""

    def __init__(self, path: str | Path, cause: BaseException | str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: cannot write cassette: {cause}")


class CassetteExists(CassetteWriteError):
    """The output cassette exists and the writer was asked neither to append nor to
    overwrite; callers add how to ask (``--append``, ``wstape_append``, ``record_mode``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        WstapeError.__init__(self, f"{self.path} already exists")
