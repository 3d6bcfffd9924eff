"""``export`` and ``import`` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import (
    CHROME,
    V1,
    invoke,
    ok,
    truncated,
)
from wstape.cassettes import read_cassette


def test_export_har_then_import_gives_the_same_cassette(tmp_path: Path) -> None:
    har, back = tmp_path / "chat.har", tmp_path / "back.msgpack"
    ok("export", V1, "--format", "har", "-o", har)
    assert json.loads(har.read_text(encoding="utf-8"))["log"]["version"] == "1.2"
    doc = json.loads(ok("import", har, "-o", back, "--json"))
    assert doc == {
        "input": str(har),
        "output": str(back),
        "format": "har",
        "connections": 2,
        "refused": 1,
        "messages": 3,
        "skipped": 0,
    }
    assert "no differences" in ok("diff", V1, back)


def test_export_har_to_stdout_and_truncated(tmp_path: Path) -> None:
    assert json.loads(ok("export", V1, "-f", "har"))["log"]["entries"]
    result = invoke("export", truncated(tmp_path), "--format", "har")
    assert result.exit_code == 0 and "truncated at byte" in result.stderr  # type: ignore[attr-defined]


def test_import_chrome_har(tmp_path: Path) -> None:
    out = tmp_path / "chrome.msgpack"
    text = ok("import", CHROME, "-o", out)
    assert "imported 1 connections (1 refused)" in text and "skipped 1 entries" in text
    rows = json.loads(ok("ls", out, "--json"))
    assert [r["url"] for r in rows] == [
        "wss://chat.example.com/chat?room=1",
        "ws://127.0.0.1:9000/admin",
    ]
    assert rows[0]["close"] == {"by": None, "code": None, "reason": "", "on_wire": False}


def test_import_mitm_flows(tmp_path: Path) -> None:
    from mitmproxy.io import FlowWriter
    from mitmproxy.test import tflow

    flows = tmp_path / "flows.dump"
    with open(flows, "wb") as f:
        FlowWriter(f).add(tflow.twebsocketflow())
    out = tmp_path / "m.msgpack"
    doc = json.loads(ok("import", flows, "-o", out, "--json"))
    assert doc["format"] == "mitm" and doc["connections"] == 1 and doc["messages"] == 3
    assert read_cassette(out)[0].creator.endswith("(imported from a mitmproxy flow file)")
    forced = invoke("import", flows, "-o", out, "--format", "har")
    assert forced.exit_code == 3 and "not a HAR file" in forced.stderr  # type: ignore[attr-defined]


def test_import_errors_name_the_entry(tmp_path: Path) -> None:
    bad = tmp_path / "bad.har"
    bad.write_text(
        json.dumps(
            {
                "log": {
                    "entries": [
                        {
                            "request": {"url": "wss://a/", "method": "GET"},
                            "response": {"status": 101},
                            "_webSocketMessages": [{"type": "send", "opcode": 2, "data": "%%%"}],
                            "startedDateTime": "2026-01-01T00:00:00Z",
                        }
                    ]
                }
            }
        )
    )
    result = invoke("import", bad, "-o", tmp_path / "o.msgpack")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert f"{bad}, entry 0: " in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.msgpack").exists()
    again = invoke("import", V1, "-o", tmp_path / "o.msgpack")
    assert again.exit_code == 3 and "already a wstape cassette" in again.stderr  # type: ignore[attr-defined]
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00garbage")
    third = invoke("import", junk, "-o", tmp_path / "o.msgpack")
    assert third.exit_code == 3 and "--format" in third.stderr  # type: ignore[attr-defined]
