"""``wstape diff`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import (
    V1,
    invoke,
    ok,
    opened,
    truncated,
)
from tests.helpers.records import write
from wstape.cassettes import read_cassette
from wstape.core.model import Message, Opcode, Side


def test_diff_same_and_different(tmp_path: Path) -> None:
    assert "no differences" in ok("diff", V1, V1)
    other = tmp_path / "other.msgpack"
    _header, records = read_cassette(V1)
    records[1] = Message(
        1, 0.01, Side.CLIENT, Opcode.TEXT, '{"type":"hello","name":"小红"}'.encode()
    )
    write(other, records)
    result = invoke("diff", V1, other)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert '$.name: "小明" → "小红"' in out and "~ message 1 ↔ 1" in out
    result = invoke("diff", V1, other, "--json")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    doc = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert set(doc) == {"same", "a", "b", "connections"} and doc["same"] is False
    conn = doc["connections"][0]
    assert set(conn) == {
        "status",
        "a",
        "b",
        "url",
        "open",
        "messages",
        "changes",
        "changes_left_out",
        "close",
    }
    assert conn["messages"] == {"a": 3, "b": 3, "same": 2, "changed": 1, "added": 0, "removed": 0}
    assert conn["changes"][0]["details"][0]["path"] == "$.name"


def test_diff_warns_about_a_truncated_cassette(tmp_path: Path) -> None:
    result = invoke("diff", V1, truncated(tmp_path))
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "truncated at byte" in result.stderr  # type: ignore[attr-defined]


def test_diff_binary_byte(tmp_path: Path) -> None:
    a, b = tmp_path / "a.msgpack", tmp_path / "b.msgpack"
    payload = bytes(1024 * 1024)
    write(a, [opened(1), Message(1, 0.0, Side.SERVER, Opcode.BINARY, payload)])
    changed = bytearray(payload)
    changed[500_000] = 0xFF
    write(b, [opened(1), Message(1, 0.0, Side.SERVER, Opcode.BINARY, bytes(changed))])
    result = invoke("diff", a, b)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "byte 500000: 00 → ff (1 bytes differ" in result.stdout  # type: ignore[attr-defined]
