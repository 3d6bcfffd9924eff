from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wstape.cli.app import app

V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"
runner = CliRunner()


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
