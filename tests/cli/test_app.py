"""What every cassette command does alike: unreadable input, --help."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import (
    V1,
    invoke,
    ok,
    runner,
)
from wstape.cli.app import app

COMMANDS = [
    ["show"],
    ["stats"],
    ["diff", str(V1)],
    ["redact", "-o", "{out}", "--json-key", "k"],
    ["cut", "-o", "{out}", "--conn", "1"],
    ["repair", "-o", "{out}"],
    ["export", "--format", "har"],
    ["import", "-o", "{out}"],
    ["view", "-o", "{out}"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("problem", ["missing", "junk", "directory"])
def test_unreadable_input_is_one_line_exit_3(
    tmp_path: Path, command: list[str], problem: str
) -> None:
    if problem == "missing":
        path = tmp_path / "missing.msgpack"
    elif problem == "junk":
        path = tmp_path / "junk.msgpack"
        path.write_bytes(b"hello, I am not a cassette")
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
