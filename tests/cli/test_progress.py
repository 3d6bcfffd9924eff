"""Long commands show progress on stderr when it is a terminal, and never in a pipe or
with --json (a real process on a pseudo-terminal)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers.records import make_open, write
from wstape.cassettes import CassetteWriter, WriteMode
from wstape.cli.output import PROGRESS_MIN_BYTES
from wstape.core.model import Close, Message, Opcode, Side


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "big.msgpack"
    payload = b"x" * 1000
    count = PROGRESS_MIN_BYTES // len(payload) + 2000
    records = [make_open(1, "/feed")]
    records += [Message(1, i / 1000, Side.SERVER, Opcode.TEXT, payload) for i in range(count)]
    records.append(Close(1, count / 1000, Side.SERVER, 1000))
    write(path, records)
    with CassetteWriter(path, mode=WriteMode.APPEND) as appended:
        # (a second writer: the end record lists no connections, so ls reads it all too)
        appended.note("appended")
    return path


def run_on_terminal(*args: str) -> tuple[int, str, str]:
    """``wstape ARGS`` with stderr on a pseudo-terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    env = {**os.environ, "WSTAPE_PROGRESS_DELAY": "0", "COLUMNS": "100"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wstape", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    out = bytearray()  # read stdout beside the terminal, so a big export cannot fill the pipe

    def drain() -> None:
        assert proc.stdout is not None
        out.extend(proc.stdout.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], deadline - time.monotonic())
        if not ready:
            break  # the wait below fails the test with a timeout
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(60)
    reader.join(60)
    os.close(master)
    return code, out.decode(), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize(
    "args",
    [["ls"], ["stats"], ["check"], ["export"]],
    ids=lambda a: a[0],
)
def test_a_terminal_gets_a_progress_bar(big: Path, args: list[str]) -> None:
    code, out, err = run_on_terminal(*args, str(big))
    assert code in (0, 1), err
    assert f"{args[0]} " in err and "MB" in err  # the label and the bytes read so far
    assert "\x1b[" not in out  # stdout (a pipe) stays plain


def test_json_on_a_terminal_gets_none(big: Path) -> None:
    code, out, err = run_on_terminal("stats", str(big), "--json")
    assert code == 0 and err == ""
    assert out.startswith("{")


def test_a_pipe_gets_none(big: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wstape", "ls", str(big)],
        capture_output=True,
        text=True,
        env={**os.environ, "WSTAPE_PROGRESS_DELAY": "0"},
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == ""
