"""What every command shares: exit codes, one-line errors, opening cassettes, the common
arguments and previews of payloads."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Collection, Iterable, Iterator
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import typer
from rich.console import Console

from wstape.cassettes import (
    CassetteError,
    CassetteReader,
    CassetteWriteError,
    NewerCassette,
    TruncatedCassette,
)
from wstape.cassettes.modes import opener
from wstape.cli import output
from wstape.core.connections import MessageRun, Strays
from wstape.core.errors import ConfigError
from wstape.core.model import Open
from wstape.interchange.jsonl import one_line
from wstape.interchange.sources import FORMAT_NAMES, sniff_file
from wstape.tools.edit import same_file


class ExitCode(IntEnum):
    """Exit codes of every wstape command (DESIGN.md)."""

    OK = 0
    VIOLATIONS = 1
    """Rule violations or replay mismatches (or, for diff, differences)."""
    USAGE = 2
    CASSETTE = 3
    """A cassette is unreadable, truncated where that matters, or from a newer wstape."""


def error(message: str) -> None:
    """Print one line to stderr, prefixed so it is clear who is talking."""
    print(f"wstape: error: {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"wstape: warning: {message}", file=sys.stderr, flush=True)


FLAGS = {
    "allow_hosts": "--allow-host",
    "ignore_json_paths": "--ignore-json-path",
    "hostnames": "--hostname",
    "heartbeats": "--heartbeat",
    "ignore_query_params": "--ignore-query-param",
    "faults": "--fault",
}
"""Library option names whose flag is not ``--`` plus the name with dashes."""


def flag(option: str) -> str:
    """The command-line flag of a library option (``max_sockets`` -> ``--max-sockets``)."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def config_error(e: ConfigError) -> NoReturn:
    """Exit 2 with a ConfigError's message, naming the flag instead of the field."""
    fail(f"{flag(e.option)}: {e.message}" if e.option else e.message)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    error(message)
    raise typer.Exit(int(code))


def check_writable(path: Path, option: str, *, source: Path | None = None) -> None:
    """Exit 2 now, before any work is done, when ``path`` could not be written later, or
    should not be: it is ``source`` (the cassette read), or an existing path that is not a
    regular file (every output is written beside it and renamed over it, which would turn
    a device, a FIFO or a symlink into a plain file)."""
    if path.is_dir():
        fail(f"{option} {path}: is a directory; give a file name")
    if source is not None and same_file(source, path):
        fail(f"{option} {path}: refusing to overwrite the input file")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        fail(f"{option} {path}: not a regular file (wstape replaces its outputs whole)")
    if not path.parent.is_dir():
        fail(f"{option} {path}: no such directory {path.parent}")
    if not os.access(path.parent, os.W_OK):
        fail(f"{option} {path}: directory {path.parent} is not writable")


def write_atomically(path: Path, text: str, option: str, *, source: Path | None = None) -> None:
    """Write ``text`` so a reader polling ``path`` never sees half of it, no more readable
    than the ``source`` it tells of (a report quotes the cassette's messages); exit 2 with
    one line naming the option and the file when it cannot be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", opener=opener(source)) as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        fail(f"{option} {path}: cannot write: {e.strerror or e}")


def open_cassette(
    path: Path,
    *,
    allow_truncated: bool = True,
    allow_reused_ids: bool = False,
    check_ends: bool = False,
) -> CassetteReader:
    """Open a cassette for a command, or exit 3 with one line naming the problem."""
    try:
        return CassetteReader(
            path,
            allow_truncated=allow_truncated,
            allow_reused_ids=allow_reused_ids,
            check_ends=check_ends,
        )
    except CassetteError as e:
        cassette_error(e)


def ends_disagree(reader: CassetteReader, strays: int, *, fatal: bool) -> None:
    """After a whole pass of a reader opened with ``check_ends``: one line when the file's
    end records say, per connection, what its records do not (``conns``, a ``listing``);
    exit 3 with it when ``fatal`` (``check``), else a warning (``stats``)."""
    problem = reader.ends_disagree(strays)
    if problem is None:
        return
    message = (
        f"{reader.path}: the end records do not match the records ({problem}): the file "
        "was changed after it was written"
    )
    if fatal:
        fail(message, ExitCode.CASSETTE)
    warn(f"{message}; the figures are the records'")


def warn_if_truncated(reader: CassetteReader) -> None:
    if reader.incomplete is not None:  # every record is whole: none is left out
        warn(f"{reader.path}: {reader.incomplete}; `wstape repair` writes an ended copy")
    elif reader.truncated_at is not None:
        warn(
            f"{reader.path}: truncated at byte {reader.truncated_at} (the recorder was "
            "stopped mid-write); showing the complete records before it"
        )


def warn_strays(path: Path, strays: Strays) -> None:
    """Say on stderr that some records belong to no connection (every tool leaves them out
    the same way: :mod:`wstape.core.connections`)."""
    if strays.count:
        warn(f"{path}: {strays.describe()}")


def console(*, stderr: bool = False) -> Console:
    """A rich console: colour only on a terminal without NO_COLOR or --no-color, as wide
    as the output (docs in :mod:`wstape.cli.output`)."""
    return output.console(stderr=stderr)


def stdout_closed() -> NoReturn:
    """``wstape ... | head`` closed our stdout: stop quietly, as other filters do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


# -- arguments and output shared by the cassette commands ---------------------------

CassetteArg = Annotated[
    Path,
    typer.Argument(metavar="CASSETTE", help="The cassette file (.msgpack).", show_default=False),
]
OutputOpt = Annotated[
    Path,
    typer.Option(
        "--output", "-o", metavar="FILE", help="The cassette to write.", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON object instead of text.")]
ConnOpt = Annotated[
    list[int] | None,
    typer.Option("--conn", "-c", metavar="ID", help="Only this connection id (repeatable)."),
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the --output file if it exists.")
]


def cassette_error(e: CassetteError) -> NoReturn:
    """Exit 3 with the error's line, and what to run when that is clear: ``repair`` for a
    truncated cassette, ``import`` for a HAR, JSONL or flow file given as a cassette."""
    if isinstance(e, TruncatedCassette) and e.record in (0, None) and e.offset in (0, None):
        # Cut inside the header: there is no complete part, and repair would fail too.
        fail(f"{e}; nothing in it can be kept", ExitCode.CASSETTE)
    if isinstance(e, TruncatedCassette):
        fail(f"{e} (run `wstape repair` to keep the complete part)", ExitCode.CASSETTE)
    fail(f"{e}{import_hint(e)}", ExitCode.CASSETTE)


def import_hint(e: CassetteError) -> str:
    """``"; it is a HAR file: convert it with `wstape import ...`"`` when the file that is
    not a cassette shows the content of something ``wstape import`` reads, else ``""``."""
    if isinstance(e, NewerCassette) or e.record not in (0, None):
        return ""
    found = sniff_file(e.path)  # (None for a FIFO or a device: they are not opened)
    if found is None:
        return ""
    path = Path(e.path)
    out = (
        path.with_suffix(".msgpack")
        if path.suffix != ".msgpack"
        else path.with_name(f"{path.stem}-imported.msgpack")
    )
    return f"; it looks like {FORMAT_NAMES[found]}: convert it with `wstape import {path} -o {out}`"


def write_error(e: CassetteWriteError | OSError, path: Path) -> NoReturn:
    if isinstance(e, CassetteWriteError):
        fail(str(e), ExitCode.USAGE)
    fail(f"{path}: cannot write: {e.strerror or e}", ExitCode.USAGE)


def print_json(obj: Any) -> None:
    """``obj`` as one line of JSON (:func:`~wstape.interchange.jsonl.one_line`)."""
    sys.stdout.write(one_line(json.dumps(obj, ensure_ascii=False)) + "\n")


def write_json_texts(texts: Iterable[str]) -> None:
    """A JSON array of items already encoded (each by ``json.JSONEncoder(
    ensure_ascii=False).encode``), written a few hundred at a time (a cassette of many
    connections makes an array too big to build whole)."""
    sys.stdout.write("[")
    write_chunks(one_line(", " + text if i else text) for i, text in enumerate(texts))
    sys.stdout.write("]\n")


def write_chunks(chunks: Iterable[str]) -> None:
    """Write ``chunks`` to stdout, a few hundred at a time."""
    write = sys.stdout.write
    batch: list[str] = []
    for chunk in chunks:
        batch.append(chunk)
        if len(batch) >= 256:
            write("".join(batch))
            batch.clear()
    write("".join(batch))


R = TypeVar("R")


def only_conns(records: Iterable[R], conns: Collection[int] | None, path: Path) -> Iterable[R]:
    """``--conn``: the records of these connections and the notes about the whole cassette
    (all records when ``conns`` is None); a warning afterwards for ids the cassette lacks.
    A record may be a message as its fields (the reader's ``iter_fields``), and messages
    may come as a MessageRun (``iter_runs``: then as their fields, one by one)."""
    if conns is None:
        return records
    return _only_conns(records, set(conns), path)


def _only_conns(records: Iterable[R], wanted: set[int], path: Path) -> Iterator[R]:
    opened: set[int] = set()
    for record in records:
        if isinstance(record, MessageRun):  # (the reader's iter_runs: its messages one by one)
            yield from cast(Iterator[R], (m for m in record.fields() if m[0] in wanted))
            continue
        conn = record[0] if isinstance(record, tuple) else getattr(record, "conn", None)
        if conn is None:
            yield record
        elif conn in wanted:
            if isinstance(record, Open):
                opened.add(conn)
            yield record
    missing_ids(path, wanted - opened)


def missing_ids(path: Path, missing: Collection[int]) -> None:
    if missing:
        warn(f"{path}: no connection {', '.join(map(str, sorted(missing)))} in this cassette")


def refuse_input(source: Path, output: Path) -> None:
    if same_file(source, output):
        fail(f"{output}: refusing to overwrite the input file", ExitCode.USAGE)


STDOUT = "-"
"""``-o -``: standard output, for the commands whose output is text."""


def output_target(output: Path, *, source: Path | None, overwrite: bool, text: bool) -> Path | None:
    """The one policy for every command that writes a file: ``None`` for ``-o -``
    (standard output; only where the output is text), else ``output`` once it is known
    writable, not the input, and not an existing file unless ``--overwrite``. Exits 2
    with one line otherwise, before any work is done."""
    if str(output) == STDOUT:
        if not text:
            fail("-o -: this command writes a cassette (binary); give a file name")
        return None
    if source is not None:
        refuse_input(source, output)
    check_writable(output, "--output")
    if output.exists() and not overwrite:
        fail(f"--output {output}: exists; give --overwrite to replace it")
    return output
