"""The import pipeline: a HAR, a JSONL export or a mitmproxy flow dump in, a cassette out.

:func:`import_file` is what ``wstape import`` runs::

    result = wstape.import_file("session.har", "chat.msgpack")   # format="auto"
    result.connections, result.messages, result.to_dict()

It picks the format from the content (then the file name), refuses a forced format that
the content contradicts (``--format mitm`` on a HAR would read it as plain HTTP flows and
drop every message), streams the records of the chosen importer into a temporary file
next to the output and renames it into place only when every record was written: an
import that fails leaves no output behind, and an existing output is replaced only by a
complete cassette. Every record is checked before it is written (see
:mod:`wstape.interchange.values`), so the output is always a cassette wstape reads.

Raises :class:`InterchangeError` (one line naming the file, the entry, line or flow, and
the field) for an input that cannot be used, ``ConfigError`` for an option value that
cannot work, and ``CassetteWriteError`` when the output cannot be written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wstape.cassettes.errors import CassetteWriteError
from wstape.cassettes.modes import restrict
from wstape.cassettes.schema import FORMAT_VERSION
from wstape.cassettes.writer import CassetteWriter, WriteMode
from wstape.core.connections import ConnectionTracker, Strays
from wstape.core.errors import ConfigError
from wstape.core.model import Header, Message, Note, Open, Record
from wstape.core.redaction import Counts, Policy, Redactor
from wstape.core.version import __version__
from wstape.interchange.errors import InterchangeError
from wstape.interchange.sources import (
    FORMAT_NAMES,
    ImportFormat,
    compressed_as,
    detect_format,
    is_cassette,
    read_head,
    sniff_format,
)

FLOW_CREATOR = f"wstape {__version__} (imported from a mitmproxy flow file)"


@dataclass
class ImportResult:
    """What :func:`import_file` read and wrote."""

    input: Path
    output: Path
    format: ImportFormat
    connections: int = 0
    """Accepted upgrades (status 101)."""
    refused: int = 0
    """Upgrades the server refused (their open records carry the status and body)."""
    messages: int = 0
    notes: int = 0
    skipped: int = 0
    """Entries or flows that are not WebSocket upgrades (ordinary HTTP requests...)."""
    failed: int = 0
    """WebSocket upgrades that never got a response: nothing to replay."""
    redacted: Counts = field(default_factory=Counts)
    """What the redaction (``record``'s defaults unless turned off) replaced."""
    strays: Strays = field(default_factory=Strays)
    """Records written as the input has them that belong to no open connection (a
    message of an upgrade the server refused, or of a connection never opened): every
    command that reads the cassette leaves them out, and says so."""

    def to_dict(self) -> dict[str, Any]:
        """The ``wstape import --json`` object."""
        return {
            "input": str(self.input),
            "output": str(self.output),
            "format": self.format.value,
            "connections": self.connections,
            "refused": self.refused,
            "messages": self.messages,
            "skipped": self.skipped + self.failed,
            "redacted": self.redacted.to_json(),
        }


def choose_format(source: str | Path, format: str | ImportFormat = "auto") -> ImportFormat:
    """The format to read ``source`` as: detected for ``"auto"``, else the one asked for,
    when the content does not show another.

    Raises InterchangeError for a cassette or a content that contradicts ``format``, and
    ConfigError (option ``format``) for an unknown format name.
    """
    head = read_head(source)
    if is_cassette(head):
        raise InterchangeError(source, "is already a wstape cassette")
    compressed = compressed_as(head)
    if compressed is not None:
        raise InterchangeError(source, compressed)
    if format == "auto":
        return detect_format(source, head)
    try:
        forced = ImportFormat(format)
    except ValueError:
        names = ", ".join(["auto", *(f.value for f in ImportFormat)])
        raise ConfigError(f"unknown format {format!r} (one of {names})", option="format") from None
    found = sniff_format(head)
    if found is not None and found is not forced:
        raise InterchangeError(
            source,
            f"is {FORMAT_NAMES[found]}, not {FORMAT_NAMES[forced]} (--format {forced.value}); "
            f"leave out --format to import it as {found.value}",
        )
    return forced


@dataclass
class _Source:
    header: Header
    records: Iterator[Record]
    counters: Any
    """The importer's own counters (``skipped``, ``failed``), read after the import."""
    close: Any = None


def _open(source: Path, fmt: ImportFormat, max_inflated: int | None, spool: Path) -> _Source:
    if fmt is ImportFormat.HAR:
        from wstape.interchange.har.importer import read_har

        har = read_har(source, max_inflated=max_inflated, spool_dir=spool)
        header = Header(FORMAT_VERSION, har.creator, har.started_at)
        return _Source(header, har.records(), har, close=har.close)
    if fmt is ImportFormat.JSONL:
        from wstape.interchange.jsonl_import import read_jsonl

        jsonl = read_jsonl(source)
        return _Source(
            Header(FORMAT_VERSION, jsonl.creator, jsonl.started_at), jsonl.records(), None
        )
    # Only a flow file loads mitmproxy (its own reader upgrades old dumps).
    from wstape.interchange.flows import FlowImport, iter_flow_records

    counters = FlowImport(source)
    records = iter_flow_records(source, counters)
    first = next(records, None)
    started = first.started_at if isinstance(first, Open) else 0.0

    def chained() -> Iterator[Record]:
        if first is not None:
            yield first
        yield from records

    return _Source(Header(FORMAT_VERSION, FLOW_CREATOR, started), chained(), counters)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def import_file(
    source: str | Path,
    output: str | Path,
    format: str | ImportFormat = "auto",
    *,
    max_inflated: int | None = None,
    redaction: Policy | None = None,
) -> ImportResult:
    """Convert a HAR file, a wstape JSONL export or a mitmproxy flow dump into a cassette.

    ``format`` is ``"auto"`` (detected), ``"har"``, ``"jsonl"`` or ``"mitm"``;
    ``max_inflated`` caps how far a zlib ``.zhar`` may inflate (bytes; default
    ``max(64 MiB, 50 x its size)``). ``redaction`` is what to replace by ``<redacted>``
    (default: what ``wstape record`` replaces, :meth:`Policy.build`; ``Policy()`` keeps
    every value as the input has it). An existing ``output`` is replaced, once the new
    cassette is complete. See the module doc for what it raises.
    """
    source, output = Path(source), Path(output)
    if _same_file(source, output):
        raise ConfigError(f"{output} is the input file; refusing to overwrite it", option="output")
    if max_inflated is not None and max_inflated <= 0:
        raise ConfigError("must be a positive number of bytes", option="max_inflated")
    fmt = choose_format(source, format)
    result = ImportResult(input=source, output=output, format=fmt)
    directory = output.parent if str(output.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise CassetteWriteError(output, e.strerror or e) from e
    os.close(fd)
    tmp = Path(tmp_name)
    opened: _Source | None = None
    try:
        restrict(tmp, source)  # a private HAR or flow file gives a private cassette
        opened = _open(source, fmt, max_inflated, directory)
        header = opened.header
        tracker = ConnectionTracker()  # the one fold every reader routes records through
        policy = Policy.build() if redaction is None else redaction
        records = opened.records
        if not policy.empty:
            records = Redactor(policy, counts=result.redacted).records(records)
        with CassetteWriter(
            tmp, mode=WriteMode.OVERWRITE, creator=header.creator, started_at=header.started_at
        ) as writer:
            for record in records:
                tracker.route(record)
                try:
                    writer.write(record)
                except (ValueError, TypeError, OverflowError) as e:
                    # The writer refuses a record the reader could not read back; the
                    # importers check every value first, so this is the last line of defence.
                    raise InterchangeError(source, f"cannot write an imported record ({e})") from e
                _count(result, record)
        counters = opened.counters
        result.skipped = int(getattr(counters, "skipped", 0))
        result.failed = int(getattr(counters, "failed", 0))
        if not result.connections + result.refused and result.skipped + result.failed:
            raise InterchangeError(source, _no_websocket(result))
        os.replace(tmp, output)
    except CassetteWriteError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise e.naming(output) from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        if opened is not None and opened.close is not None:
            opened.close()
    result.strays = tracker.strays
    return result


def _no_websocket(result: ImportResult) -> str:
    """Why an input with entries, none of them a WebSocket that got an answer, gives no
    cassette (QA: it wrote one of no connection, exit 0, whose replay tested nothing; an
    input of no entry at all, a wstape export of an empty cassette, still imports)."""
    what = []
    if result.skipped:
        n = result.skipped
        what.append(
            "1 entry that is not a WebSocket upgrade"
            if n == 1
            else f"{n} entries that are not WebSocket upgrades"
        )
    if result.failed:
        n = result.failed
        what.append(f"{n} WebSocket {'upgrade' if n == 1 else 'upgrades'} that got no response")
    return (
        f"holds no WebSocket connection ({' and '.join(what)}); nothing written (DevTools "
        "records only while it is open: open it before the page connects)"
    )


def _count(result: ImportResult, record: Record) -> None:
    if isinstance(record, Message):
        result.messages += 1
    elif isinstance(record, Open):
        if record.accepted:
            result.connections += 1
        else:
            result.refused += 1
    elif isinstance(record, Note):
        result.notes += 1


__all__ = ["ImportFormat", "ImportResult", "choose_format", "import_file"]
