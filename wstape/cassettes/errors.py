"""Errors of the cassette layer (their place in the tree: :mod:`wstape.core.errors`).

CassetteError                 anything wrong with reading a cassette (exit code 3)
├── TruncatedCassette         the file ends inside a record (a recorder was killed)
│   └── UnendedCassette       format 2+: no end record accounts for the last records
├── DuplicateConnection       a connection id is opened twice (concurrent appends)
└── NewerCassette             written by a newer wstape ("upgrade wstape")
CassetteWriteError            a record could not be written (disk full, file removed)
├── CassetteExists            the file exists and neither append nor overwrite was asked
├── OlderCassette             appending to an older format version (`wstape upgrade`)
└── UnreadableRecord          the record breaks the schema: the reader would refuse it
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


class UnendedCassette(TruncatedCassette):
    """A format-2 cassette whose records are whole but did not end cleanly: no end record
    after the last record, or records no end record counts (a recorder still running or
    killed, or a file cut at a record boundary). ``offset`` is the end of the file."""


class DuplicateConnection(CassetteError):
    """A second ``open`` with a connection id already used in the cassette (two recorders
    appended to it at once). ``record``/``offset`` are the second open's, ``first`` the
    record index of the first; ``wstape repair`` gives the later connection a new id."""

    def __init__(
        self, path: str | Path, conn: int, *, first: int, record: int, offset: int
    ) -> None:
        self.conn = conn
        self.first = first
        super().__init__(
            path,
            f"connection id {conn} is opened a second time (first opened at record {first}); "
            "two recorders appended at once? `wstape repair` gives the later one a new id",
            record=record,
            offset=offset,
        )


class NewerCassette(CassetteError):
    """The cassette's format version is newer than this wstape reads."""


class CassetteWriteError(WstapeError):
    """Writing a record failed; recording must stop rather than lose traffic silently."""

    def __init__(self, path: str | Path, cause: BaseException | str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: cannot write cassette: {cause}")

    def naming(self, path: str | Path) -> CassetteWriteError:
        """The same failure, told of ``path``: the output that a temporary file beside
        it was being written for (the file the user named, not one already removed)."""
        text = str(self)
        if not text.startswith(self.path):
            return self
        renamed = type(self).__new__(type(self))  # (each subclass's __init__ differs)
        renamed.__dict__.update(self.__dict__)
        renamed.path = str(path)
        Exception.__init__(renamed, renamed.path + text[len(self.path) :])
        return renamed


class CassetteExists(CassetteWriteError):
    """The output cassette exists and the writer was asked neither to append nor to
    overwrite; callers add how to ask (``--append``, ``wstape_append``, ``record_mode``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        WstapeError.__init__(self, f"{self.path} already exists")


class CassetteBusy(CassetteWriteError):
    """Overwriting was asked for a cassette another writer has open right now (another
    ``wstape record``, a pytest worker): truncating it would destroy what that writer
    records, and both would report success."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        WstapeError.__init__(
            self,
            f"{self.path}: another recorder is writing this cassette right now; replacing it "
            "would destroy that recording: wait for it to stop, or record to another file",
        )


class UnendedAppend(CassetteError):
    """Appending was asked for a cassette that did not end cleanly while no writer has it
    open (its recorder was killed): what is appended could not be replayed either."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            path,
            "cannot append: the cassette did not end cleanly and no recorder is writing it "
            "(one was killed?); run `wstape repair "
            f"{path} -o FIXED.msgpack` and append to FIXED.msgpack",
        )


class OlderCassette(CassetteWriteError):
    """Appending was asked for a cassette of an older format version: its records would
    be mixed with this version's, so the writer refuses; ``wstape upgrade`` converts it."""

    def __init__(self, path: str | Path, version: int) -> None:
        from wstape.cassettes.schema import FORMAT_VERSION

        self.path = str(path)
        self.version = version
        WstapeError.__init__(
            self,
            f"{self.path}: cannot append: the cassette is format version {version} and this "
            f"wstape writes version {FORMAT_VERSION}; convert it first with "
            f"`wstape upgrade {self.path} -o NEW.msgpack` and append to NEW.msgpack",
        )


class UnreadableRecord(CassetteWriteError):
    """A record the reader would refuse (a value out of the schema's range, a string that
    cannot be encoded, a record over the size cap). Nothing was written: the cassette is
    still whole and the writer still usable."""

    def __init__(self, path: str | Path, what: str, number: int, reason: str) -> None:
        self.path = str(path)
        self.what = what
        self.number = number
        self.reason = reason
        WstapeError.__init__(
            self,
            f"{self.path}: refusing to write record {number} ({what}): {reason}; "
            "the cassette reader would refuse it",
        )
