"""What every command shares: exit codes, one-line errors, opening cassettes, the common
arguments and previews of payloads."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from wstape.cassettes import CassetteError, CassetteReader, CassetteWriteError, TruncatedCassette
from wstape.core.connections import Strays
from wstape.core.errors import ConfigError
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


def check_writable(path: Path, option: str) -> None:
    """Exit 2 now, before any work is done, when ``path`` could not be written later."""
    if path.is_dir():
        fail(f"{option} {path}: is a directory; give a file name")
    if not path.parent.is_dir():
        fail(f"{option} {path}: no such directory {path.parent}")
    if not os.access(path.parent, os.W_OK):
        fail(f"{option} {path}: directory {path.parent} is not writable")


def write_atomically(path: Path, text: str, option: str) -> None:
    """Write ``text`` so a reader polling ``path`` never sees half of it; exit 2 with one
    line naming the option and the file when it cannot be written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        fail(f"{option} {path}: cannot write: {e.strerror or e}")


def open_cassette(
    path: Path, *, allow_truncated: bool = True, allow_reused_ids: bool = False
) -> CassetteReader:
    """Open a cassette for a command, or exit 3 with one line naming the problem."""
    try:
        return CassetteReader(
            path, allow_truncated=allow_truncated, allow_reused_ids=allow_reused_ids
        )
    except CassetteError as e:
        fail(str(e), ExitCode.CASSETTE)


def warn_if_truncated(reader: CassetteReader) -> None:
    if reader.truncated_at is not None:
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
    """A rich console: colour on a terminal; plain and never wrapped when piped."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=10_000, no_color=True, highlight=False)


def stdout_closed() -> NoReturn:
    """``wstape ... | head`` closed our stdout: stop quietly, as other filters do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise typer.Exit(0)


# -- arguments and output shared by the cassette commands ---------------------------

CassetteArg = Annotated[
    Path, typer.Argument(help="The cassette file (.msgpack).", show_default=False)
]
OutputOpt = Annotated[
    Path, typer.Option("--output", "-o", help="The cassette to write.", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON object instead of text.")]

PREVIEW_CHARS = 100
HEX_BYTES = 16


def cassette_error(e: CassetteError) -> NoReturn:
    if isinstance(e, TruncatedCassette):
        fail(f"{e} (run `wstape repair` to keep the complete part)", ExitCode.CASSETTE)
    fail(str(e), ExitCode.CASSETTE)


def write_error(e: CassetteWriteError | OSError, path: Path) -> NoReturn:
    if isinstance(e, CassetteWriteError):
        fail(str(e), ExitCode.USAGE)
    fail(f"{path}: cannot write: {e.strerror or e}", ExitCode.USAGE)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def refuse_input(source: Path, output: Path) -> None:
    if same_file(source, output):
        fail(f"{output}: refusing to overwrite the input file", ExitCode.USAGE)


Segments = list[tuple[str, str]]
"""A line as (text, rich style) pieces: styled on a terminal, joined when piped."""

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x7F: "\\x7f",
}


def text_preview(text: str, width: int = PREVIEW_CHARS) -> str:
    """One line of at most ``width`` characters (control characters escaped)."""
    line = text.translate(_CONTROL)
    return line if len(line) <= width else line[:width] + "…"


def hex_preview(data: bytes, count: int = HEX_BYTES) -> str:
    """``00 01 02 … |...|``: the first ``count`` bytes in hex and as ASCII."""
    head = data[:count]
    ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = " …" if len(data) > count else ""
    return f"{head.hex(' ')}{more} |{ascii_}|" if head else "(empty)"
