"""Rewriting cassettes: keep a subset (``cut``), keep the complete part (``repair``).

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
from dataclasses import dataclass, field
from pathlib import Path

from wstape.cassettes import WriteMode
from wstape.cassettes.reader import CassetteReader
from wstape.cassettes.writer import CassetteWriter
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
def rewrite_to(output: str | Path, header: Header) -> Iterator[CassetteWriter]:
    """A writer for ``output`` that only replaces it when the block ends without error.

    The new cassette keeps the header's creator and start time. Raises
    CassetteWriteError when the file cannot be written.
    """
    output = Path(output)
    directory = output.parent if str(output.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with CassetteWriter(
            tmp, mode=WriteMode.OVERWRITE, creator=header.creator, started_at=header.started_at
        ) as writer:
            yield writer
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def copy_records(records: Iterable[Record], output: str | Path, header: Header) -> int:
    """Write ``records`` as a new cassette at ``output``; returns how many were written."""
    count = 0
    with rewrite_to(output, header) as writer:
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
    kept: set[int] = set()
    for record in records:
        if isinstance(record, Open):
            if keep(record):
                kept.add(record.conn)
                result.connections.append(record.conn)
            else:
                kept.discard(record.conn)  # a reused id: this open decides from here on
                continue
        elif record.conn is None:
            if not isinstance(record, Note):  # pragma: no cover - only notes lack a conn
                continue
        elif record.conn not in kept:
            continue
        if isinstance(record, Message):
            result.messages += 1
        result.records += 1
        yield record


def cut_cassette(
    reader: CassetteReader, output: str | Path, keep: Callable[[Open], bool]
) -> CutResult:
    """Write the header, the kept connections' records and all notes about them.

    Raises CassetteError (including TruncatedCassette: repair first) and
    CassetteWriteError.
    """
    result = CutResult()
    copy_records(select_records(reader, keep, result), output, reader.header)
    return result


# -- repair ----------------------------------------------------------------------------


@dataclass
class RepairResult:
    records: int = 0
    """Complete records kept."""
    truncated_at: int | None = None
    """Byte offset where the incomplete tail started (None: the file was complete)."""
    dropped_bytes: int = 0
    closed: list[int] = field(default_factory=list)
    """Connections that had no close record and got ``Close(by=None, code=None)``."""


def repair_cassette(reader: CassetteReader, output: str | Path) -> RepairResult:
    """Write every complete record of ``reader`` (opened with ``allow_truncated=True``).

    Connections still open at the end (accepted, no close record) are ended the way the
    recorder ends them when it stops: ``Close(by=None, code=None, on_wire=False)`` at the
    time of their last record, and a note. Raises CassetteError for corruption other than
    a truncated tail.
    """
    result = RepairResult()
    last_t: dict[int, float] = {}
    open_conns: dict[int, None] = {}

    def records() -> Iterator[Record]:
        for record in reader:
            if isinstance(record, Open):
                if record.accepted:
                    open_conns[record.conn] = None
                else:
                    open_conns.pop(record.conn, None)
                last_t[record.conn] = 0.0
            elif isinstance(record, Message | Close) and record.conn in last_t:
                last_t[record.conn] = max(last_t[record.conn], record.t)
                if isinstance(record, Close):
                    open_conns.pop(record.conn, None)
            result.records += 1
            yield record
        for conn in open_conns:
            t = last_t.get(conn, 0.0)
            yield Close(conn=conn, t=t, by=None, code=None, reason="", on_wire=False)
            yield Note(conn=conn, text=REPAIR_NOTE, t=t)
            result.closed.append(conn)

    copy_records(records(), output, reader.header)
    result.truncated_at = reader.truncated_at
    if reader.truncated_at is not None:
        result.dropped_bytes = reader.size - reader.truncated_at
    return result
