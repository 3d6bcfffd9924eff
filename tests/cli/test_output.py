"""Human output: tables that fit 80 columns, plain text in a pipe, no terminal control
from recorded data, plain metavars and singulars (issue 11 "Output that fits")."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.cli.helpers import V1, opened
from tests.helpers.records import write
from tests.helpers.servers import clean_env
from wstape.cli import output
from wstape.cli.app import app
from wstape.core.model import Close, Message, Note, Opcode, Open, Side
from wstape.core.rules import CATALOGUE

runner = CliRunner()
WIDTH = 80


def run80(*args: str | Path, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == code, (result.stdout, result.stderr)
    return result.stdout


def assert_fits(text: str) -> None:
    wide = [line for line in text.splitlines() if cell_len(line) > WIDTH]
    assert not wide, wide


def test_rules_fit_80_columns_and_never_split_an_id() -> None:
    out = run80("rules")
    assert_fits(out)
    words = set(re.findall(r"[A-Z][A-Z0-9-]+[A-Z0-9]", out))
    missing = [r.id for r in CATALOGUE if r.id not in words]
    assert not missing
    assert "\x1b" not in out  # piped: no colour


def long_cassette(path: Path) -> str:
    url_target = "/api/v2/stream?room=general"
    write(
        path,
        [
            opened(1, url_target),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"hi"),
            Close(1, 1.0, Side.SERVER, 4000, "session expired: please sign in again, " * 2),
        ],
    )
    return "wss://chat.example.com" + url_target


def test_ls_fits_80_columns_with_the_url_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (a title line holds the cassette path whole, to copy: keep it short here)
    monkeypatch.chdir(tmp_path)
    url = long_cassette(Path("long.msgpack"))
    out = run80("ls", "long.msgpack")
    assert_fits(out)
    assert url in out
    assert "(1 connection)" in out
    assert "left out to fit 80 columns" in out
    shutil.copy(V1, "v1.msgpack")
    out = run80("ls", "v1.msgpack")
    assert_fits(out)
    for url in ("wss://chat.example.com/chat?room=1", "ws://127.0.0.1:9000/admin"):
        assert url in out


def test_stats_fits_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = long_cassette(Path("long.msgpack"))
    out = run80("stats", "long.msgpack")
    assert_fits(out)
    assert url in out
    assert "1 connection (1 accepted" in out
    assert "close codes: 4000: 1" in out


def test_a_url_wider_than_the_terminal_is_folded_not_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = "/stream?" + "&".join(f"param{i}=value{i}" for i in range(12))
    write(tmp_path / "wide.msgpack", [opened(1, target)])
    out = run80("ls", "wide.msgpack")
    assert_fits(out)
    assert "…" not in out
    cells = [line.split("│")[2].strip() for line in out.splitlines() if line.count("│") > 3]
    assert "".join(cells).startswith("wss://chat.example.com" + target)


def test_a_wide_terminal_gets_every_column() -> None:
    result = runner.invoke(app, ["ls", str(V1)], env={"COLUMNS": "200"})
    assert "left out" not in result.stdout
    assert "subprotocol" in result.stdout and "duration" in result.stdout


def test_colour_only_on_a_terminal_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(output, "_NO_COLOR", False)
    assert output.color_enabled(Tty())
    assert not output.color_enabled(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not output.color_enabled(Tty())
    monkeypatch.delenv("NO_COLOR")
    output.no_color()
    assert not output.color_enabled(Tty())


def test_no_color_is_taken_before_and_after_the_command() -> None:
    for args in (["--no-color", "ls", str(V1)], ["ls", str(V1), "--no-color"]):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 2)
    # after the command, main() moves it; the typer app takes it before the command
    assert runner.invoke(app, ["--no-color", "rules"]).exit_code == 0


HOSTILE = "\x1b]0;PWNED\x07\x1b[2J\u202egnp.exe\x9b31m"


def hostile_cassette(path: Path) -> None:
    o = opened(1, "/chat")
    o = Open(**{**o.__dict__, "request_headers": ((b"X-Evil", HOSTILE.encode()),)})
    write(
        path,
        [
            o,
            Message(1, 0.1, Side.SERVER, Opcode.TEXT, HOSTILE.encode()),
            Note(1, "note " + HOSTILE, 0.2),
            Close(1, 1.0, Side.SERVER, 4000, HOSTILE[:20]),
        ],
    )


@pytest.mark.parametrize("command", [["show"], ["show", "--headers"], ["ls"], ["stats"], ["check"]])
def test_recorded_text_cannot_drive_the_terminal(tmp_path: Path, command: list[str]) -> None:
    path = tmp_path / "hostile.msgpack"
    hostile_cassette(path)
    result = runner.invoke(app, [*command, str(path)], env={"COLUMNS": "200"})
    assert result.exit_code in (0, 1), result.stdout
    out = result.stdout
    for ch in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert ch not in out, (command, out)
    if command[0] == "show":
        assert "\\x1b]0;PWNED\\x07" in out
    if command == ["show", "--headers"]:
        assert "> X-Evil: \\x1b]0;PWNED" in out


def test_safe_escapes_controls_and_bidi_but_keeps_text() -> None:
    assert output.safe("小明 ok") == "小明 ok"
    assert output.safe("a\x1bb\u202ec\x85") == "a\\x1bb\\u202ec\\x85"
    assert output.safe("line\nbreak") == "line\\nbreak"
    assert output.safe("line\nbreak", newlines=True) == "line\nbreak"


def test_singular_and_plural(tmp_path: Path) -> None:
    path = tmp_path / "one.msgpack"
    write(path, [opened(1), Close(1, 1.0, Side.CLIENT, 1000, "")])
    assert "(1 connection)" in run80("ls", path)
    out = run80("check", path, code=1)
    summary = out.splitlines()[-1]
    assert "1 connection," in summary and "connections" not in summary, summary
    assert output.plural(1, "error") == "1 error"
    assert output.plural(2, "error") == "2 errors"
    assert output.plural(0, "warning") == "0 warnings"


def test_show_headers_prints_the_handshake() -> None:
    out = run80("show", "--headers", V1)
    assert "> Authorization: <redacted>" in out
    assert "< Sec-WebSocket-Protocol: chat.v1" in out
    assert "> Authorization" not in run80("show", V1)


COMMANDS = [
    "demo", "record", "addon-path", "replay", "check", "rules", "ls", "show", "stats",
    "diff", "redact", "cut", "repair", "upgrade", "export", "import", "view",
]  # fmt: skip


def test_top_level_help_lists_every_command_uncut() -> None:
    out = run80("--help")
    listed = re.findall(r"^  ([a-z-]+)\s{2,}(.+)$", out, re.M)
    names = [name for name, _ in listed if not name.startswith("-")]
    assert sorted(names) == sorted(COMMANDS)
    for name, summary in listed:
        assert not summary.endswith("..."), (name, summary)
    assert run80("-h") == out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_metavars_are_plain_names(command: str) -> None:
    out = run80(command, "--help")
    for bad in ("<list", "<int", "<float", "<text>", "<path>", "{cassette}", "<integer"):
        assert bad not in out, (command, bad)
    assert "-h, --help" in out


@pytest.mark.parametrize("command", [["ls"], ["stats"]])
def test_a_long_table_is_drawn_as_rich_draws_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    # Over RICH_ROWS rows wstape draws the table itself, a row at a time: the same box,
    # columns and widths as rich for rows that fit.
    records: list[Open | Message | Close] = []
    for conn in range(1, 6):
        records.append(opened(conn, f"/chat?room={conn * 7}"))
        records.append(Message(conn, 0.25, Side.CLIENT, Opcode.TEXT, b"hi" * conn))
        records.append(Close(conn, 1.5, Side.SERVER, 1000, "bye"))
    write(tmp_path / "c.msgpack", list(records))
    by_rich = run80(*command, tmp_path / "c.msgpack")
    monkeypatch.setattr(output, "RICH_ROWS", 2)
    by_wstape = run80(*command, tmp_path / "c.msgpack")
    assert by_wstape == by_rich


def test_a_long_table_still_fits_and_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "RICH_ROWS", 0)
    out = io.StringIO()
    console = output.Console(file=out, width=40, no_color=True, color_system=None)
    columns = (
        output.Column("id", keep=9, whole=True, justify="right"),
        output.Column("close", keep=6, min_width=14),
    )
    rows = [("7", "by client: 1000 (normal closure) with a long reason")]
    output.print_table(console, "t", columns, rows)
    text = out.getvalue()
    assert_fits(text)
    cells = [line.split("│")[2].strip() for line in text.splitlines() if line.count("│") == 3]
    assert "".join(cells).replace(" ", "") == rows[0][1].replace(" ", "")


@pytest.mark.parametrize("rich_rows", [0, 1000])
@pytest.mark.parametrize("width", [40, 80, 200])
def test_rows_held_as_text_draw_the_same_table(
    monkeypatch: pytest.MonkeyPatch, rich_rows: int, width: int
) -> None:
    # ls keeps each row as one escaped string (TextRows): the table is the one its cells
    # would draw, control characters escaped, wide ones measured, long cells folded.
    monkeypatch.setattr(output, "RICH_ROWS", rich_rows)
    columns = (
        output.Column("id", keep=9, whole=True, justify="right"),
        output.Column("url", keep=8, whole=True),
        output.Column("note", keep=2),
        output.Column("close", keep=6, min_width=14),
    )
    rows = [
        ("1", "ws://h/a", "plain", "by client: 1000 (normal closure)"),
        ("22", "ws://h/\x1b]0;PWNED\x07", "聊天室 wide", "by server: 4000 " + "x" * 70),
        ("333", "ws://h/\u202eevil", "", "-"),
    ]

    def drawn(table_rows: Sequence[Sequence[str]]) -> str:
        out = io.StringIO()
        console = output.Console(file=out, width=width, no_color=True, color_system=None)
        output.print_table(console, "t", columns, table_rows)
        return out.getvalue()

    text = drawn(output.TextRows([output.text_row(row) for row in rows]))
    assert text == drawn(rows)
    assert "\x1b" not in text and "\u202e" not in text


WORDS = "小明 says héllo 😀"
"""Not ASCII, not Latin-1, and beyond the BMP (an emoji)."""


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize(
    "command",
    [
        ["ls"],
        ["ls", "--json"],
        ["show"],
        ["show", "--json"],
        ["show", "--headers"],
        ["stats"],
        ["stats", "--json"],
        ["export", "--format", "jsonl", "--notes"],
        ["export", "--format", "har"],
        ["check"],
    ],
    ids=" ".join,
)
def test_a_stdout_that_cannot_encode_the_text_gets_escapes_not_a_traceback(
    tmp_path: Path, command: list[str], encoding: str
) -> None:
    path = tmp_path / "unicode.msgpack"
    write(
        path,
        [
            replace(opened(1, "/聊天?name=小明"), request_headers=((b"Host", "例子.cn".encode()),)),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, WORDS.encode()),
            Note(conn=1, t=0.2, text=WORDS),
            Close(1, 1.0, Side.CLIENT, 4001, WORDS),
        ],
    )
    result = subprocess.run(
        [sys.executable, "-m", "wstape", *command[:1], str(path), *command[1:]],
        capture_output=True,
        timeout=120,
        env={**clean_env(), "PYTHONIOENCODING": encoding, "COLUMNS": "200"},
    )
    expected = {0, 1} if command[0] == "check" else {0}  # (check: the rules' verdict)
    assert result.returncode in expected, result.stderr.decode(errors="replace")
    assert b"Traceback" not in result.stderr and not result.stderr, result.stderr
    text = result.stdout.decode(encoding)  # (nothing it cannot hold was written)
    if "--json" in command or "jsonl" in command or "har" in command:
        lines = text.splitlines() if "jsonl" in command or command[0] == "show" else [text]
        parsed = [json.loads(line) for line in lines]  # (the escapes keep it valid JSON)
        assert WORDS in json.dumps(parsed, ensure_ascii=False)
    elif command[0] != "check":
        assert "\\u5c0f\\u660e" in text  # (小明, escaped)
