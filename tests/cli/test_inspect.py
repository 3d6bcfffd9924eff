from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.helpers import (
    V1,
    invoke,
    ok,
    opened,
    runner,
    truncated,
)
from tests.helpers.records import write
from wstape.cli.app import app
from wstape.core.model import Message, Opcode, Side


def test_ls_json_shape() -> None:
    result = runner.invoke(app, ["ls", str(V1), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["conn"] for r in rows] == [1, 2, 3]
    chat = rows[0]
    assert chat["url"] == "wss://chat.example.com/chat?room=1"
    assert chat["status"] == 101 and chat["subprotocol"] == "chat.v1"
    assert chat["messages"] == {"client": 1, "server": 2}
    assert chat["bytes"]["server"] == len(b'{"type":"welcome"}') + 256
    assert chat["close"]["code"] == 4001 and chat["close"]["by"] == "client"
    assert rows[1]["status"] == 403 and rows[1]["close"] is None
    assert rows[2]["close"] == {"by": "server", "code": 1006, "reason": "", "on_wire": False}


def test_ls_human_table() -> None:
    result = runner.invoke(app, ["ls", str(V1)])
    assert result.exit_code == 0, result.output
    assert "wss://chat.example.com/chat?room=1" in result.stdout
    assert "refused 403" in result.stdout
    assert "4001" in result.stdout


def test_export_jsonl_exact_keys(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    result = runner.invoke(app, ["export", str(V1), "--format", "jsonl", "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [ln["type"] for ln in lines] == [
        "connection",
        "message",
        "message",
        "message",
        "connection",
        "close",
        "connection",
        "close",
    ]
    conn = lines[0]
    assert set(conn) == {
        "type",
        "conn",
        "url",
        "method",
        "status",
        "subprotocols_offered",
        "subprotocol",
        "request_headers",
        "response_headers",
        "started_at",
    }
    assert conn["subprotocols_offered"] == ["chat.v1", "chat.v0"]
    assert ["Authorization", "<redacted>"] in conn["request_headers"]
    assert conn["started_at"].startswith("2026-11-25T") and conn["started_at"].endswith("Z")
    text = lines[1]
    assert set(text) == {"type", "conn", "t", "from", "opcode", "text", "size"}
    assert text["text"] == '{"type":"hello","name":"小明"}'
    assert text["size"] == len(text["text"].encode())
    binary = lines[3]
    assert set(binary) == {"type", "conn", "t", "from", "opcode", "base64", "size"}
    assert base64.b64decode(binary["base64"]) == bytes(range(256))
    close = lines[5]
    assert set(close) == {"type", "conn", "t", "by", "code", "reason", "on_wire"}
    assert close["reason"] == "用户主动退出登录" * 5 + "谢"
    assert lines[-1]["on_wire"] is False and lines[-1]["code"] == 1006


def test_export_to_stdout_with_notes() -> None:
    result = runner.invoke(app, ["export", str(V1), "--notes"])
    assert result.exit_code == 0
    types = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert "note" in types


@pytest.mark.parametrize("command", ["ls", "export"])
def test_missing_file_is_one_line_exit_3(tmp_path: Path, command: str) -> None:
    result = runner.invoke(app, [command, str(tmp_path / "missing.msgpack")])
    assert result.exit_code == 3
    assert "no such file" in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_not_a_cassette_exit_3(tmp_path: Path) -> None:
    junk = tmp_path / "junk.msgpack"
    junk.write_text("hello")
    result = runner.invoke(app, ["ls", str(junk)])
    assert result.exit_code == 3
    assert "not a wstape cassette" in result.stderr


def test_truncated_cassette_warns_and_lists_complete_part(tmp_path: Path) -> None:
    cut = tmp_path / "cut.msgpack"
    data = V1.read_bytes()
    cut.write_bytes(data[:-5])
    result = runner.invoke(app, ["ls", str(cut), "--json"])
    assert result.exit_code == 0
    assert "truncated at byte" in result.stderr
    rows = json.loads(result.stdout)
    assert [r["conn"] for r in rows] == [1, 2, 3]
    assert rows[2]["close"] is None


def test_show_timeline() -> None:
    out = ok("show", V1)
    lines = out.splitlines()
    assert lines[0].startswith("# cassette-v1.msgpack: wstape-cassette v1")
    assert "open GET wss://chat.example.com/chat?room=1" in lines[1]
    assert "101 Switching Protocols subprotocol chat.v1" in lines[1]
    hello = lines[2]
    assert "0.010s" in hello and "→" in hello and "text" in hello and "32 B" in hello
    assert '{"type":"hello","name":"小明"}' in hello
    assert "←" in lines[3]
    assert "binary" in lines[4] and "256 B" in lines[4]
    assert "00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f …" in lines[4]
    assert "# a note" in lines[5]
    assert "403 Forbidden (refused, body 2 B: no)" in lines[6]
    assert "✕ closed by client: 4001" in lines[7]
    assert "1006 (abnormal closure) (no Close frame on the wire)" in lines[-1]
    assert "\x1b[" not in out  # plain when not on a terminal


def test_show_filters_and_limits() -> None:
    out = ok("show", V1, "--conn", "3", "--no-color")
    assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["#3", "#3"]
    limited = ok("show", V1, "--limit", "2").splitlines()
    assert len(limited) == 4 and "--limit" in limited[-1]


def test_show_json_is_the_export() -> None:
    shown = ok("show", V1, "--json", "--conn", "1")
    exported = [json.loads(ln) for ln in ok("export", V1).splitlines()]
    assert [json.loads(ln) for ln in shown.splitlines()] == [e for e in exported if e["conn"] == 1]
    assert len(ok("show", V1, "--json", "-n", "2").splitlines()) == 2
    # the note (record 5) is not a JSON line, so it does not count against the limit
    assert [json.loads(x)["type"] for x in ok("show", V1, "--json", "-n", "5").splitlines()] == [
        "connection",
        "message",
        "message",
        "message",
        "connection",
    ]


def test_show_elides_long_text(tmp_path: Path) -> None:
    path = tmp_path / "long.msgpack"
    write(path, [opened(1), Message(1, 0.0, Side.SERVER, Opcode.TEXT, b"x\n" * 5000)])
    line = ok("show", path).splitlines()[2]
    assert "10000 B" in line and line.endswith("…")
    assert "x\\nx\\n" in line and len(line) < 200


def test_show_says_empty_for_an_empty_message_of_either_kind(tmp_path: Path) -> None:
    # QA: an empty binary message read "(empty)", an empty text one nothing at all
    path = tmp_path / "empty.msgpack"
    write(
        path,
        [
            opened(1),
            Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b""),
            Message(1, 0.1, Side.SERVER, Opcode.BINARY, b""),
        ],
    )
    lines = ok("show", path).splitlines()[2:4]
    assert [line.split(" B ")[1].strip() for line in lines] == ["(empty)", "(empty)"]


def test_show_truncated_warns_and_shows_the_rest(tmp_path: Path) -> None:
    result = invoke("show", truncated(tmp_path))
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert "truncated at byte" in result.stderr  # type: ignore[attr-defined]
    assert "open GET ws://127.0.0.1:9000/feed" in result.stdout  # type: ignore[attr-defined]


def test_stats_json_shape() -> None:
    doc = json.loads(ok("stats", V1, "--json"))
    assert set(doc) == {"connections", "total"}
    conn = doc["connections"][0]
    assert set(conn) == {
        "conn",
        "url",
        "status",
        "started_at",
        "duration",
        "messages",
        "bytes",
        "size",
        "gap",
        "close",
    }
    assert set(conn["size"]["client"]) == {"p50", "p90", "p99", "max"}
    assert set(conn["gap"]) == {"p50", "max"}
    assert set(doc["total"]) == {
        "connections",
        "accepted",
        "refused",
        "messages",
        "bytes",
        "size",
        "gap",
        "duration",
        "close_codes",
        "unclosed",
    }


def test_stats_table(tmp_path: Path) -> None:
    out = ok("stats", V1)
    assert "wss://chat.example.com/chat?room=1" in out and "total" in out
    assert "1006: 1, 4001: 1" in out
    result = invoke("stats", truncated(tmp_path), "--json")
    assert result.exit_code == 0 and "truncated at byte" in result.stderr  # type: ignore[attr-defined]


def test_show_warns_about_a_connection_that_is_not_there() -> None:
    from tests.cli.helpers import V1

    result = CliRunner().invoke(app, ["show", str(V1), "--conn", "99", "--conn", "1"])
    assert result.exit_code == 0
    assert "no connection 99" in result.stderr and "no connection 1" not in result.stderr
    assert "4001" in result.stdout


def test_conn_selects_connections_in_ls_stats_and_export() -> None:
    rows = json.loads(ok("ls", V1, "--json", "--conn", "1", "-c", "3"))
    assert [r["conn"] for r in rows] == [1, 3]
    doc = json.loads(ok("stats", V1, "--json", "--conn", "2"))
    assert [c["conn"] for c in doc["connections"]] == [2]
    assert doc["total"]["connections"] == 1
    lines = [json.loads(line) for line in ok("export", V1, "--conn", "3").splitlines()]
    assert {line["conn"] for line in lines} == {3}
    har = json.loads(ok("export", V1, "--format", "har", "--conn", "1"))
    assert [e["_wstape"]["conn"] for e in har["log"]["entries"]] == [1]
    missing = invoke("ls", V1, "--conn", "9")
    assert missing.exit_code == 0  # type: ignore[attr-defined]
    assert "no connection 9 in this cassette" in missing.stderr  # type: ignore[attr-defined]


def test_export_har_warns_about_a_connection_that_is_not_there() -> None:
    """QA: `export --format jsonl --conn 99` warns that the cassette has no connection
    99, as ls, show and stats do; `export --format har --conn 99` wrote a HAR of no entry
    without a word."""
    from tests.cli.helpers import V1

    result = CliRunner().invoke(app, ["export", str(V1), "-f", "har", "--conn", "99", "-c", "1"])
    assert result.exit_code == 0
    assert [e["_wstape"]["conn"] for e in json.loads(result.stdout)["log"]["entries"]] == [1]
    assert result.stderr.splitlines() == [
        f"wstape: warning: {V1}: no connection 99 in this cassette"
    ]
