"""What every cassette command does alike: unreadable input, --help."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import (
    DATA,
    V1,
    invoke,
    ok,
    runner,
)
from tests.helpers.servers import clean_env
from wstape.cli.app import app

COMMANDS = [
    ["ls"],
    ["ls", "--json"],
    ["show"],
    ["stats"],
    ["diff", str(V1)],
    ["redact", "-o", "{out}", "--json-key", "k"],
    ["cut", "-o", "{out}", "--conn", "1"],
    ["repair", "-o", "{out}"],
    ["export", "--format", "har"],
    ["import", "-o", "{out}"],
    ["view", "-o", "{out}"],
    ["check"],
    ["upgrade", "-o", "{out}"],
    ["replay", "--port", "0"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("problem", ["missing", "junk", "directory", "fifo", "device"])
def test_unreadable_input_is_one_line_exit_3(
    tmp_path: Path, command: list[str], problem: str
) -> None:
    """Including a FIFO with no writer (opening it used to wait forever) and a device
    (/dev/zero was 'an empty file')."""
    if problem == "missing":
        path = tmp_path / "missing.msgpack"
    elif problem == "junk":
        path = tmp_path / "junk.msgpack"
        path.write_bytes(b"hello, I am not a cassette")
    elif problem == "fifo":
        path = tmp_path / "fifo.msgpack"
        os.mkfifo(path)
    elif problem == "device":
        path = Path(os.devnull)
    else:
        path = tmp_path / "dir"
        path.mkdir()
    out = str(tmp_path / "out.msgpack")
    name, *rest = command
    args = [name, *(a.replace("{out}", out) for a in rest)]
    if name == "diff":
        args = ["diff", str(V1), str(path)]
    else:
        args.insert(1, str(path))
    result = runner.invoke(app, args)
    assert result.exit_code == 3, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("wstape: error: ")
    assert not Path(out).exists()
    if problem in ("fifo", "device"):
        kind = "a FIFO (named pipe)" if problem == "fifo" else "a character device"
        assert f"is {kind}, not a regular file" in result.stderr


def _without_read_access() -> list[str]:
    """What runs a command so that a file of mode 000 cannot be read: nothing for a user,
    and for root (whom chmod does not stop) setpriv, dropping the capabilities that let
    root read any file."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and no setpriv to drop CAP_DAC_OVERRIDE with")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_a_cassette_without_read_permission_is_one_line_exit_3(
    tmp_path: Path, command: list[str]
) -> None:
    # (typer checked every Path argument was readable: click's four-line usage error, exit 2)
    path = tmp_path / "private.msgpack"
    path.write_bytes((DATA / "cassette-v3.msgpack").read_bytes())
    path.chmod(0)
    out = str(tmp_path / "out.msgpack")
    name, *rest = command
    args = [name, str(path), *(a.replace("{out}", out) for a in rest)]
    if name == "diff":
        args = ["diff", str(V1), str(path)]
    result = subprocess.run(
        [*_without_read_access(), sys.executable, "-m", "wstape", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert result.stderr == f"wstape: error: {path}: cannot open: Permission denied\n"
    assert not Path(out).exists()


@pytest.mark.parametrize(
    "command", ["show", "stats", "diff", "redact", "cut", "repair", "import", "export", "view"]
)
def test_help(command: str) -> None:
    out = ok(command, "--help")
    assert "Usage: " in out
    if command in ("stats", "diff", "redact", "cut", "repair", "import"):
        assert "--json" in out


def test_top_level_help_lists_the_tools() -> None:
    out = ok("--help")
    for command in ("show", "stats", "diff", "redact", "cut", "repair", "import", "export", "view"):
        assert command in out


def test_a_bad_fault_names_the_flag_given() -> None:
    result = invoke("replay", V1, "--port", "0", "--fault", "nonsense")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr.startswith("wstape: error: --fault: 'nonsense': unknown fault")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["ls"], "wstape: error: Missing argument 'CASSETTE'."),
        (["show", "--conn", "abc", "x"], "'abc' is not a valid int."),
        (["export", "-f", "xml", "x"], "'xml' is not one of 'jsonl', 'har'."),
        (["ls", "--bogus", "x"], "No such option: --bogus"),
    ],
)
def test_usage_errors_click_finds_are_one_line(args: list[str], line: str) -> None:
    # QA: click's usage errors were four lines (usage, hint, blank, message).
    result = subprocess.run(
        [sys.executable, "-m", "wstape", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and line in result.stderr, result.stderr
    assert result.stderr.startswith("wstape: error: ")
    assert result.stderr.endswith(f" wstape {args[0]} --help)\n")  # (as python -m, too)
