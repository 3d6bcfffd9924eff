"""What every command shares: exit codes, one-line errors, opening cassettes."""

from __future__ import annotations

import contextlib
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from wstape.cassettes import CassetteError, CassetteReader
from wstape.core.errors import ConfigError


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


def open_cassette(path: Path, *, allow_truncated: bool = True) -> CassetteReader:
    """Open a cassette for a command, or exit 3 with one line naming the problem."""
    try:
        return CassetteReader(path, allow_truncated=allow_truncated)
    except CassetteError as e:
        fail(str(e), ExitCode.CASSETTE)


def warn_if_truncated(reader: CassetteReader) -> None:
    if reader.truncated_at is not None:
        warn(
            f"{reader.path}: truncated at byte {reader.truncated_at} (the recorder was "
            "stopped mid-write); showing the complete records before it"
        )


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
