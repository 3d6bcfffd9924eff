from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from typer.testing import CliRunner

from tests.cli.helpers import V1, invoke
from wstape.cassettes import CassetteWriter, WriteMode
from wstape.cli.app import app
from wstape.core.model import Close, Message, Opcode, Open, Side
from wstape.core.rules import CATALOGUE

runner = CliRunner()
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def chat_open(conn: int, *, referer: bytes | None = None, scheme: str = "wss") -> Open:
    headers = [
        (b"Host", b"chat.example.com"),
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Key", KEY),
        (b"Sec-WebSocket-Version", b"13"),
        (b"User-Agent", b"Mozilla/5.0 MicroMessenger/8.0 MiniProgramEnv/android"),
    ]
    if referer is not None:
        headers.append((b"Referer", referer))
    return Open(
        conn=conn,
        started_at=1.0,
        method="GET",
        scheme=scheme,
        host="chat.example.com",
        port=443,
        target="/chat",
        http_version="HTTP/1.1",
        request_headers=tuple(headers),
        status=101,
        response_headers=((b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),),
    )


def write(path: Path, *recs: object) -> Path:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        for r in recs:
            w.write(r)  # type: ignore[arg-type]
    return path


def test_clean_cassette_passes(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ok.msgpack",
        chat_open(1, referer=b"https://servicewechat.com/wx0123456789abcdef/0/page-frame.html"),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b'{"type":"ping"}'),
        Close(1, 0.2, Side.CLIENT, 1000, "bye"),
    )
    result = runner.invoke(app, ["check", str(path), "--profile", "wechat", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] is True and report["violations"] == []
    assert report["profile"] == "wechat"
    conn = report["connections"][0]
    assert "client" not in conn
    assert conn["close"] == {"by": "client", "code": 1000, "reason": "bye"}


def test_bad_close_fails_with_rule_ids(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bad.msgpack",
        chat_open(1, scheme="ws"),
        Close(1, 0.2, Side.CLIENT, 1001, "x" * 124),
    )
    result = runner.invoke(app, ["check", str(path), "--profile", "browser", "--json"])
    assert result.exit_code == 1
    rules = {v["rule"] for v in json.loads(result.stdout)["violations"]}
    assert {"RFC-CLOSE-REASON-LENGTH", "BROWSER-CLOSE-CODE"} <= rules
    human = runner.invoke(app, ["check", str(path), "--profile", "browser"])
    assert human.exit_code == 1
    assert "RFC-CLOSE-REASON-LENGTH" in human.stdout and "FAILED" in human.stdout
    ignored = runner.invoke(
        app,
        [
            "check",
            str(path),
            "--profile",
            "browser",
            "--json",
            "--ignore",
            "RFC-CLOSE-REASON-LENGTH",
            "--ignore",
            "browser-close-code",
        ],
    )
    assert ignored.exit_code == 0, ignored.output


def test_a_recorded_open_without_one_host_fails_check(tmp_path: Path) -> None:
    one = chat_open(1)
    none = chat_open(2)
    none = Open(**{**none.__dict__, "request_headers": none.request_headers[1:]})
    two = chat_open(3)
    two = Open(**{**two.__dict__, "request_headers": (*two.request_headers, (b"host", b"x"))})
    path = write(tmp_path / "hosts.msgpack", one, none, two)
    result = runner.invoke(app, ["check", str(path), "--json"])
    assert result.exit_code == 1, result.output
    found = [v for v in json.loads(result.stdout)["violations"] if v["rule"] == "RFC-HS-HOST"]
    assert [(v["conn"], v["severity"]) for v in found] == [(2, "error"), (3, "error")]
    assert found[1]["actual"] == ["chat.example.com", "x"]


def test_unknown_ignore_is_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.msgpack", chat_open(1))
    result = runner.invoke(app, ["check", str(path), "--ignore", "NOPE-RULE"])
    assert result.exit_code == 2
    assert "NOPE-RULE" in result.stderr


def test_check_missing_file_exit_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path / "x.msgpack")])
    assert result.exit_code == 3 and "no such file" in result.stderr


def test_rules_lists_catalogue() -> None:
    result = runner.invoke(app, ["rules", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [r.id for r in CATALOGUE]
    assert set(rows[0]) == {"id", "side", "profiles", "severity", "source", "description"}
    rfc = json.loads(runner.invoke(app, ["rules", "--profile", "rfc6455", "--json"]).stdout)
    ids = {r["id"] for r in rfc}
    assert "RFC-CLOSE-CODE" in ids and "WX-URL-SCHEME" not in ids
    human = runner.invoke(app, ["rules", "--profile", "wechat"])
    assert "WX-SOCKET-LIMIT" in human.stdout


def test_truncated_cassette_is_refused_with_a_repair_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path / "cut.msgpack",
        chat_open(1),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b'{"type":"ping"}'),
    )
    path.write_bytes(path.read_bytes()[:-4])
    result = runner.invoke(app, ["check", str(path)])
    assert result.exit_code == 3
    assert "truncated" in result.stderr and "wstape repair" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_appid_is_a_usage_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.msgpack", chat_open(1))
    result = runner.invoke(app, ["check", str(path), "--profile", "wechat", "--appid", "bad"])
    assert result.exit_code == 2 and "--appid: 'bad' is not an appid" in result.stderr
    ok = runner.invoke(
        app, ["check", str(path), "--profile", "wechat", "--appid", "wx0123456789abcdef"]
    )
    assert ok.exit_code in (0, 1), ok.output


def test_check_writes_report_and_junit_like_replay(tmp_path: Path) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    result = invoke("check", V1, "--report", report, "--junit", junit)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["passed"] is False and {c["conn"] for c in doc["connections"]} == {1, 2, 3}
    # messages_expected counts the client's messages, as in a replay report
    assert [c["messages_expected"] for c in doc["connections"]] == [1, 0, 0]
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases][-1] == "session"
    bad = invoke("check", V1, "--junit", tmp_path / "no" / "such" / "dir.xml")
    assert bad.exit_code == 2  # type: ignore[attr-defined]
    assert "--junit" in bad.stderr  # type: ignore[attr-defined]


def test_check_names_each_connections_protocol(tmp_path: Path) -> None:
    from tests.helpers.records import make_open, write

    path = tmp_path / "sio.msgpack"
    write(
        path,
        [
            make_open(1, "/socket.io/?EIO=4&transport=websocket"),
            Message(1, 0.01, Side.SERVER, Opcode.TEXT, b'0{"sid":"abc","pingInterval":25000}'),
            Message(1, 0.02, Side.CLIENT, Opcode.TEXT, b"40"),
            Close(1, 1.0, Side.CLIENT, 1000),
            make_open(2, "/plain"),
            Close(2, 1.0, Side.CLIENT, 1000),
        ],
    )
    doc = json.loads(invoke("check", path, "--json").stdout)  # type: ignore[attr-defined]
    assert [c.get("protocol") for c in doc["connections"]] == ["socketio", None]
    human = invoke("check", path).stdout  # type: ignore[attr-defined]
    assert "protocols: conn 1 socketio" in human
    plain = json.loads(invoke("check", path, "--json", "--protocol", "none").stdout)  # type: ignore[attr-defined]
    assert all("protocol" not in c for c in plain["connections"])
    # Named wrong: the Socket.IO connection is not STOMP, and says so (a warning).
    wrong = invoke("check", path, "--json", "--protocol", "stomp")
    found = [
        v
        for v in json.loads(wrong.stdout)["violations"]  # type: ignore[attr-defined]
        if v["rule"] == "REPLAY-PROTOCOL-MISFIT"
    ]
    assert [(v["severity"], v["conn"]) for v in found] == [("warn", 1)]  # not the plain one
    assert "not stomp but socketio" in found[0]["message"]


def test_end_records_that_do_not_match_the_records_are_exit_3_for_check_a_warning_for_stats(
    tmp_path: Path,
) -> None:
    from tests.cassettes.test_listing import end_with

    path = tmp_path / "edited.msgpack"
    write(
        path,
        chat_open(1),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"hi"),
        Close(1, 0.3, Side.CLIENT, 1000, "bye"),
    )
    assert invoke("check", path).exit_code in (0, 1)  # type: ignore[attr-defined]
    end_with(path, {"records": 3, "conns": [[1, 99], [7, 3]]})  # (QA: c_endconnslie)
    result = invoke("check", path)
    assert result.exit_code == 3, result.output  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"wstape: error: {path}: the end records do not match the records (connection 1 "
        "has 3 records, the end records count 99): the file was changed after it was written\n"
    )
    assert result.stdout == ""  # type: ignore[attr-defined]
    stats = invoke("stats", path, "--json")
    assert stats.exit_code == 0  # type: ignore[attr-defined]
    assert json.loads(stats.stdout)["total"]["messages"] == {"client": 1, "server": 0}  # type: ignore[attr-defined]
    (line,) = stats.stderr.splitlines()  # type: ignore[attr-defined]
    assert line.startswith(f"wstape: warning: {path}: the end records do not match the records")


def test_strict_fails_the_run_on_warnings_too(tmp_path: Path) -> None:
    # QA: a run with warnings only exits 0, though README said exit 0 means the client did
    # what the recording did. --strict fails it: here a phone's close with 1001 (a warning
    # under wechat on a device, an error in DevTools).
    path = write(
        tmp_path / "warned.msgpack",
        chat_open(1, referer=b"https://servicewechat.com/wx0123456789abcdef/0/page-frame.html"),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b'{"type":"ping"}'),
        Close(1, 0.2, Side.CLIENT, 1001, "bye"),
    )
    lenient = invoke("check", path, "--profile", "wechat", "--json")
    assert lenient.exit_code == 0  # type: ignore[attr-defined]
    doc = json.loads(lenient.stdout)  # type: ignore[attr-defined]
    assert doc["passed"] is True and "strict" not in doc
    assert [v["severity"] for v in doc["violations"]] == ["warn"]
    strict = invoke(
        "check", path, "--profile", "wechat", "--strict", "--json", "--junit", tmp_path / "j.xml"
    )
    assert strict.exit_code == 1  # type: ignore[attr-defined]
    doc = json.loads(strict.stdout)  # type: ignore[attr-defined]
    assert doc["passed"] is False and doc["strict"] is True
    assert 'type="BROWSER-CLOSE-CODE"' in (tmp_path / "j.xml").read_text()
    human = invoke("check", path, "--profile", "wechat", "--strict")
    assert "FAILED under wechat" in human.stdout  # type: ignore[attr-defined]
