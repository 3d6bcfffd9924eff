"""Rewriting cassettes: keep a subset (``cut``), keep the complete part (``repair``),
bring an older format version up to date (``upgrade``).

Every rewrite streams record by record into a temporary file next to the output and
renames it into place only when everything was written, so an interrupted run never
leaves a half-written output, and rewriting a file in place is safe.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from wstape.cassettes import WriteMode
from wstape.cassettes.errors import CassetteWriteError
from wstape.cassettes.modes import restrict
from wstape.cassettes.reader import CassetteReader
from wstape.cassettes.schema import FORMAT_VERSION
from wstape.cassettes.writer import CassetteWriter
from wstape.core.connections import CASSETTE, STRAY, ConnectionTracker, Strays
from wstape.core.model import Close, Header, Message, Note, Open, Record

REPAIR_NOTE = (
    "repaired: the cassette ended while this connection was open (the recorder was "
    "stopped without closing it); no close was seen"
)


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name the same file (or the same path, if one is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


@contextmanager
def rewrite_to(
    output: str | Path, header: Header, source: str | Path | None = None
) -> Iterator[CassetteWriter]:
    """A writer for ``output`` that only replaces it when the block ends without error.

    The new cassette keeps the header's creator and start time, and is no more readable
    than ``source`` (:mod:`wstape.cassettes.modes`). Raises CassetteWriteError when the
    file cannot be written.
    """
    output = Path(output)
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        restrict(tmp, source)
        with CassetteWriter(
            tmp, mode=WriteMode.OVERWRITE, creator=header.creator, started_at=header.started_at
        ) as writer:
            yield writer
        os.replace(tmp, output)
    except CassetteWriteError as e:
        tmp.unlink(missing_ok=True)
        raise e.naming(output) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_records(
    records: Iterable[Record], output: str | Path, header: Header, source: str | Path | None
) -> int:
    """Write ``records`` as a new cassette at ``output`` (no more readable than the
    ``source`` file); returns how many were written."""
    count = 0
    with rewrite_to(output, header, source) as writer:
        for record in records:
            writer.write(record)
            count += 1
    return count


# -- cut -------------------------------------------------------------------------------


def _path_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z")


def _path_matches(open_: Open, patterns: tuple[str, ...]) -> bool:
    for pattern in patterns:
        # A pattern with a query is compared with path and query, otherwise with the path.
        subject = open_.target if "?" in pattern else open_.path
        if _path_regex(pattern).match(subject):
            return True
    return False


@dataclass
class CutResult:
    """What :func:`cut_cassette` kept."""

    connections: list[int] = field(default_factory=list)
    """Ids of the connections kept, in the order they opened."""
    records: int = 0
    messages: int = 0
    strays: Strays = field(default_factory=Strays)
    """Records of no connection (:mod:`wstape.core.connections`): never kept."""


class Selection:
    """Which connections to keep.

    ``conns``: connection ids; ``paths``: request paths, exact, where ``*`` matches
    anything; a pattern with ``?query`` is compared with path and query. A connection is
    kept when it matches one of the ids (if any are given) and one of the paths (if any
    are given).
    """

    def __init__(self, conns: Iterable[int] = (), paths: Iterable[str] = ()) -> None:
        self.conns = frozenset(conns)
        self.paths = tuple(paths)

    def __call__(self, open_: Open) -> bool:
        if self.conns and open_.conn not in self.conns:
            return False
        return not self.paths or _path_matches(open_, self.paths)


def select_records(
    records: Iterable[Record], keep: Callable[[Open], bool], result: CutResult
) -> Iterator[Record]:
    """The records of the connections ``keep`` accepts, their notes, and cassette notes."""
    tracker = ConnectionTracker()
    kept: list[bool] = []
    for record in records:
        slot = tracker.route(record)
        if isinstance(record, Open):
            kept.append(keep(record))
            if not kept[slot]:
                continue
            result.connections.append(record.conn)
        elif slot == STRAY or (slot != CASSETTE and not kept[slot]):
            continue
        if isinstance(record, Message):
            result.messages += 1
        result.records += 1
        yield record
    result.strays = tracker.strays


def cut_cassette(
    reader: CassetteReader, output: str | Path, keep: Callable[[Open], bool]
) -> CutResult:
    """Write the header, the kept connections' records and all notes about them.

    Raises CassetteError (including TruncatedCassette: repair first), CassetteWriteError,
    and NothingKept when no connection matched (``output`` is then left as it was).
    """
    result = CutResult()
    copy_records(_kept_some(reader, keep, result), output, reader.header, reader.path)
    return result


class NothingKept(Exception):
    """No connection matched what :func:`cut_cassette` was to keep: nothing was written
    (an empty cassette under a typo's name would pass as a fixture)."""


def _kept_some(
    reader: CassetteReader, keep: Callable[[Open], bool], result: CutResult
) -> Iterator[Record]:
    yield from select_records(reader, keep, result)
    if not result.connections:
        raise NothingKept  # (inside the writer's block: the output is left as it was)


# -- upgrade ---------------------------------------------------------------------------


def upgrade_cassette(reader: CassetteReader, output: str | Path) -> int:
    """Rewrite ``reader``'s cassette (any format version it reads) in ``FORMAT_VERSION``,
    every record as it is (migrated by :mod:`wstape.cassettes.compat`), with the header's
    creator and start time, ended by an end record. Returns the records written.

    Raises CassetteError (TruncatedCassette for a cut-off input: ``repair`` writes the
    current version too) and CassetteWriteError.
    """
    return copy_records(reader, output, replace(reader.header, version=FORMAT_VERSION), reader.path)


# -- repair ----------------------------------------------------------------------------


@dataclass
class RepairResult:
    records: int = 0
    """Complete records kept."""
    truncated_at: int | None = None
    """Byte offset where the incomplete tail started (None: the file was complete)."""
    dropped_bytes: int = 0
    incomplete: str | None = None
    """Why the input had not ended cleanly (format 2 and later: no end record for its last records;
    ``truncated_at`` is then the end of the file and nothing was dropped)."""
    closed: list[int] = field(default_factory=list)
    """Connections that had no close record and got ``Close(by=None, code=None)``."""
    renumbered: list[tuple[int, int, int]] = field(default_factory=list)
    """``(old id, new id, record index of its open)`` of each connection whose id an
    earlier connection already used."""
    strays: Strays = field(default_factory=Strays)
    """Records of no connection (:mod:`wstape.core.connections`): dropped."""


class _Renumber(Exception):
    """A reused connection id: the pass must start again, knowing the highest id."""


def repair_cassette(reader: CassetteReader, output: str | Path) -> RepairResult:
    """Write every complete record of ``reader`` that belongs to a connection.

    Open ``reader`` with ``allow_truncated=True`` and ``allow_reused_ids=True``.
    Connections still open at the end (accepted, no close record) are ended the way the
    recorder ends them when it stops: ``Close(by=None, code=None, on_wire=False)`` at the
    time of their last record, and a note. A connection whose id an earlier one already
    used (two recorders appended at once) gets a fresh id, above every id in the file, and
    so do the records it owns (:mod:`wstape.core.connections`). Records of no connection
    are dropped. Raises CassetteError for corruption other than a truncated tail.
    """
    try:
        result = RepairResult()
        copy_records(_repaired(reader, result, None), output, reader.header, reader.path)
    except _Renumber:
        highest = max(
            (r.conn for r in reader if isinstance(r, Open)), default=0
        )  # a second pass over the file, only for a cassette that needs it
        result = RepairResult()
        copy_records(_repaired(reader, result, highest + 1), output, reader.header, reader.path)
    result.truncated_at = reader.truncated_at
    result.incomplete = reader.incomplete
    if reader.truncated_at is not None:
        result.dropped_bytes = reader.size - reader.truncated_at
    return result


def _repaired(reader: CassetteReader, result: RepairResult, fresh: int | None) -> Iterator[Record]:
    """The records to write; raises _Renumber at a reused id when ``fresh`` is None."""
    tracker = ConnectionTracker()
    ids: list[int] = []
    last_t: list[float] = []
    for record in reader:
        slot = tracker.route(record)
        if isinstance(record, Open):
            conn = record.conn
            if tracker.reused and tracker.reused[-1] == slot:
                if fresh is None:
                    raise _Renumber
                conn, fresh = fresh, fresh + 1
                result.renumbered.append((record.conn, conn, tracker.position))
                record = replace(record, conn=conn)
            ids.append(conn)
            last_t.append(0.0)
        elif slot == STRAY:
            continue
        elif slot != CASSETTE:
            if isinstance(record, Message | Close):
                last_t[slot] = max(last_t[slot], record.t)
            if record.conn != ids[slot]:
                record = replace(record, conn=ids[slot])
        result.records += 1
        yield record
    for slot in tracker.unclosed():
        conn, t = ids[slot], last_t[slot]
        yield Close(conn=conn, t=t, by=None, code=None, reason="", on_wire=False)
        yield Note(conn=conn, text=REPAIR_NOTE, t=t)
        result.closed.append(conn)
    result.strays = tracker.strays
