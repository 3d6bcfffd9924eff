"""``export`` and ``import`` through the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tests.cli.helpers import (
    CHROME,
    V1,
    invoke,
    ok,
    truncated,
)
from wstape.cassettes import FORMAT_VERSION, read_cassette


def test_export_har_then_import_gives_the_same_cassette(tmp_path: Path) -> None:
    har, back = tmp_path / "chat.har", tmp_path / "back.msgpack"
    ok("export", V1, "--format", "har", "-o", har)
    assert json.loads(har.read_text(encoding="utf-8"))["log"]["version"] == "1.2"
    doc = json.loads(ok("import", har, "-o", back, "--json"))
    assert doc.pop("redacted")["total"] == 0
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


def _devtools_har(path: Path) -> None:
    """A HAR as DevTools saves it: the page's cookie, a token in the URL and in a message."""
    path.write_text(
        json.dumps(
            {
                "log": {
                    "version": "1.2",
                    "creator": {"name": "WebInspector", "version": "537.36"},
                    "entries": [
                        {
                            "startedDateTime": "2026-12-04T10:00:00.000Z",
                            "time": 1,
                            "request": {
                                "method": "GET",
                                "url": "wss://chat.example.com/chat?room=1&token=s3cr3t-t0ken",
                                "httpVersion": "HTTP/1.1",
                                "headers": [
                                    {"name": "Host", "value": "chat.example.com"},
                                    {"name": "Cookie", "value": "session=abcdef123456"},
                                    {"name": "Upgrade", "value": "websocket"},
                                ],
                            },
                            "response": {"status": 101, "statusText": "", "headers": []},
                            "_resourceType": "websocket",
                            "_webSocketMessages": [
                                {
                                    "type": "send",
                                    "time": 1764842400.5,
                                    "opcode": 1,
                                    "data": '{"type":"auth","access_token":"s3cr3t-t0ken"}',
                                }
                            ],
                        }
                    ],
                }
            }
        ),
        encoding="utf-8",
    )


def test_import_redacts_as_record_does_unless_told_not_to(tmp_path: Path) -> None:
    # QA: import wrote a DevTools HAR's cookie and tokens into the cassette as they were,
    # where wstape record replaces them by default (cassettes are committed).
    har, out, kept = tmp_path / "devtools.har", tmp_path / "out.msgpack", tmp_path / "kept.msgpack"
    _devtools_har(har)
    line = ok("import", har, "-o", out)
    assert line.strip().endswith("; redacted 3 values (headers 1, query 1, JSON keys 1)")
    _, records = read_cassette(out)
    text = repr(records)
    assert "s3cr3t-t0ken" not in text and "abcdef123456" not in text
    assert text.count("<redacted>") == 3
    doc = json.loads(ok("import", har, "-o", kept, "--no-default-redaction", "--json"))
    assert doc["redacted"]["total"] == 0
    text = repr(read_cassette(kept)[1])
    assert text.count("s3cr3t-t0ken") == 2 and "abcdef123456" in text


def test_export_har_to_stdout_and_truncated(tmp_path: Path) -> None:
    assert json.loads(ok("export", V1, "-f", "har"))["log"]["entries"]
    result = invoke("export", truncated(tmp_path), "--format", "har")
    assert result.exit_code == 0 and "truncated at byte" in result.stderr  # type: ignore[attr-defined]


def test_import_chrome_har(tmp_path: Path) -> None:
    out = tmp_path / "chrome.msgpack"
    text = ok("import", CHROME, "-o", out)
    assert "imported 1 connection (1 refused)" in text and "skipped 1 entry that" in text
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
    forced = invoke("import", flows, "-o", out, "--format", "har", "--overwrite")
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


def test_a_forced_format_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "chat.msgpack"
    result = invoke("import", CHROME, "-o", out, "--format", "mitm")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.strip().splitlines() == [
        f"wstape: error: {CHROME}: is a HAR file, not a mitmproxy flow dump (--format mitm); "
        "leave out --format to import it as har"
    ]
    assert not out.exists()


def test_a_har_given_as_a_cassette_points_to_import(tmp_path: Path) -> None:
    for command in ("ls", "show", "check", "stats"):
        result = invoke(command, CHROME)
        assert result.exit_code == 3  # type: ignore[attr-defined]
        err = result.stderr  # type: ignore[attr-defined]
        assert len(err.strip().splitlines()) == 1
        assert "it looks like a HAR file: convert it with `wstape import" in err, command
    jsonl = tmp_path / "chat.jsonl"
    ok("export", V1, "-o", jsonl)
    err = invoke("ls", jsonl).stderr  # type: ignore[attr-defined]
    assert f"a wstape JSONL export: convert it with `wstape import {jsonl} -o" in err
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"\x00junk")
    assert "wstape import" not in invoke("ls", junk).stderr  # type: ignore[attr-defined]


def test_jsonl_export_imports_back(tmp_path: Path) -> None:
    exact, plain = tmp_path / "exact.jsonl", tmp_path / "plain.jsonl"
    ok("export", V1, "--format", "jsonl", "--exact", "-o", exact)
    ok("export", V1, "-o", plain)
    assert json.loads(exact.read_text(encoding="utf-8").splitlines()[0])["type"] == "header"
    back = tmp_path / "back.msgpack"
    doc = json.loads(ok("import", exact, "-o", back, "--json"))
    assert doc["format"] == "jsonl" and doc["connections"] == 2 and doc["messages"] == 3
    (header, records), (v1_header, v1_records) = read_cassette(back), read_cassette(V1)
    assert records == v1_records  # the same records, written in the current format version
    assert (header.version, replace(header, version=1)) == (FORMAT_VERSION, v1_header)
    again = ok("import", plain, "-o", back, "--overwrite")
    assert "imported 2 connections (1 refused), 3 messages" in again
    # a plain export leaves out the reason phrase, TLS facts and bodies: only those differ
    diff = invoke("diff", V1, back).stdout  # type: ignore[attr-defined]
    assert "messages: 3 → 3 (3 same, 0 changed" in diff and "open reason" in diff
    bad = invoke("export", V1, "--format", "har", "--exact")
    assert bad.exit_code == 2 and "--exact is for --format jsonl" in bad.stderr  # type: ignore[attr-defined]


def test_max_inflated(tmp_path: Path) -> None:
    import zlib

    zhar = tmp_path / "chat.zhar"
    zhar.write_bytes(zlib.compress(CHROME.read_bytes() + b" " * 3_000_000))
    result = invoke("import", zhar, "-o", tmp_path / "o.msgpack", "--max-inflated", "1")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "inflates to more than 1048576 bytes" in result.stderr  # type: ignore[attr-defined]
    assert invoke("import", zhar, "-o", tmp_path / "o.msgpack").exit_code == 0  # type: ignore[attr-defined]


def test_hostile_imports_in_a_real_process(tmp_path: Path) -> None:
    """No traceback, one line, exit 3, no output: as a user runs it."""
    import subprocess
    import sys

    status = tmp_path / "status.har"
    har = json.loads(CHROME.read_text(encoding="utf-8"))
    har["log"]["entries"][1]["response"]["status"] = 10**40
    status.write_text(json.dumps(har), encoding="utf-8")
    deep = tmp_path / "deep.har"
    deep.write_bytes(b'{"log": {"entries": [{"request": ' + b"[" * 10**6 + b"]" * 10**6 + b"}]}}")
    for source in (status, deep):
        out = tmp_path / "out.msgpack"
        proc = subprocess.run(
            [sys.executable, "-m", "wstape", "import", str(source), "-o", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 3, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert f"{source}, entry 1: " in proc.stderr or f"{source}, entry 0: " in proc.stderr
        assert not out.exists()


def test_a_failed_export_leaves_no_half_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.msgpack"
    broken.write_bytes(V1.read_bytes() + b"\xc1")  # a byte msgpack never uses, at the end
    out = tmp_path / "out.har"
    result = invoke("export", broken, "--format", "har", "-o", out)
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "corrupt record" in result.stderr  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.msgpack"]
    same = invoke("export", V1, "-o", V1)
    assert same.exit_code == 2 and "refusing to overwrite" in same.stderr  # type: ignore[attr-defined]


def test_an_interrupted_view_leaves_no_temporary_file(tmp_path: Path, monkeypatch: Any) -> None:
    """QA: Ctrl-C (or any error view did not expect) while the page was being written
    left its hidden `.chat.html.PID.tmp` beside the output; export, import and the edits
    remove theirs."""
    import wstape.cli.convert as convert

    def interrupted(reader: object, out: Any, *args: object, **kwargs: object) -> None:
        out.write("<!doctype html>")
        raise KeyboardInterrupt

    monkeypatch.setattr(convert, "render_html", interrupted)
    cassette = tmp_path / "chat.msgpack"
    cassette.write_bytes(V1.read_bytes())
    result = invoke("view", cassette, "-o", tmp_path / "chat.html", "--no-check")
    assert result.exit_code != 0  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chat.msgpack"]


def test_import_warns_of_records_that_belong_to_no_connection(tmp_path: Path) -> None:
    """QA: `wstape import` of a JSONL whose message names a connection never opened
    exited 0 without a word; `ls`, `check`, `replay` warned later. The import warns."""
    source, out = tmp_path / "in.jsonl", tmp_path / "out.msgpack"
    source.write_text(
        '{"type": "message", "conn": 4, "t": 0.1, "from": "client", "opcode": "text", '
        '"text": "hi", "size": 2}\n',
        encoding="utf-8",
    )
    result = invoke("import", source, "-o", out)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert result.stderr.splitlines() == [  # type: ignore[attr-defined]
        f"wstape: warning: {out}: 1 record belongs to no open connection and is left out "
        "(first: record 1, a message of connection 4 which was never opened)"
    ]


def test_import_counts_what_it_skipped_as_a_warning(tmp_path: Path) -> None:
    """QA: an upgrade without a response was reported as `wstape: error: skipped 1
    WebSocket upgrades that got no response` by an import that exited 0 (an error line
    on a success fails a CI log scan, and says the wrong thing), and the other count
    read `skipped 1 entry that are not WebSocket upgrades`."""
    har = json.loads(CHROME.read_text(encoding="utf-8"))
    entries = har["log"]["entries"]
    ws = next(e for e in entries if "_webSocketMessages" in e)
    unanswered = json.loads(json.dumps(ws))
    unanswered["response"]["status"] = 0
    har["log"]["entries"] = [entries[0], ws, unanswered]
    source, out = tmp_path / "s.har", tmp_path / "s.msgpack"
    source.write_text(json.dumps(har), encoding="utf-8")
    result = invoke("import", source, "-o", out)
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert "skipped 1 entry that is not a WebSocket upgrade" in result.stdout  # type: ignore[attr-defined]
    assert result.stderr.splitlines() == [  # type: ignore[attr-defined]
        "wstape: warning: skipped 1 WebSocket upgrade that got no response"
    ]
