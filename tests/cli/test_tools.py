"""The cassette tools through the CLI: exit codes, output, --json shapes."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.records import write
from wstape.cassettes import CassetteReader, CassetteWriter, read_cassette
from wstape.cli.app import app
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.interchange.har import export_har
from wstape.tools.edit import Selection, cut_cassette, repair_cassette
from wstape.tools.redact import RedactRules, redact_cassette
from wstape.tools.stats import compute_stats

DATA = Path(__file__).parent.parent / "data"
V1 = DATA / "cassette-v1.msgpack"
CHROME = DATA / "chrome-websocket.har"
runner = CliRunner()
SECRET = "sk-Ab12Cd34Ef56"


def invoke(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def opened(conn: int, target: str = "/chat", status: int = 101) -> Open:
    return Open(
        conn=conn,
        started_at=1_790_000_000.0 + conn,
        method="GET",
        scheme="wss",
        host="chat.example.com",
        port=443,
        target=target,
        http_version="HTTP/1.1",
        request_headers=((b"Host", b"chat.example.com"), (b"X-Token", SECRET.encode())),
        status=status,
        response_headers=(),
    )


def secret_cassette(path: Path) -> None:
    write(
        path,
        [
            opened(1, f"/chat?key={SECRET}"),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, f'{{"token":"{SECRET}","n":1}}'.encode()),
            Message(1, 0.2, Side.SERVER, Opcode.TEXT, f"your key is {SECRET}".encode()),
            Message(1, 0.3, Side.SERVER, Opcode.BINARY, b"\x00\x01" + SECRET.encode()),
            Close(1, 1.0, Side.CLIENT, 1000, "bye"),
            opened(2, "/feed"),
            Close(2, 2.0, Side.SERVER, 1006, "", False),
        ],
    )


def truncated(tmp_path: Path) -> Path:
    path = tmp_path / "cut.msgpack"
    path.write_bytes(V1.read_bytes()[:-5])
    return path


# -- show ------------------------------------------------------------------------------


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


def test_show_truncated_warns_and_shows_the_rest(tmp_path: Path) -> None:
    result = invoke("show", truncated(tmp_path))
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert "truncated at byte" in result.stderr  # type: ignore[attr-defined]
    assert "open GET ws://127.0.0.1:9000/feed" in result.stdout  # type: ignore[attr-defined]


# -- stats -----------------------------------------------------------------------------


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


# -- diff ------------------------------------------------------------------------------


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


# -- redact ----------------------------------------------------------------------------


def test_redact_removes_the_secret_and_counts(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    secret_cassette(src)
    doc = json.loads(
        ok(
            "redact",
            src,
            "-o",
            out,
            "--header",
            "X-Token",
            "--json-key",
            "token",
            "--pattern",
            "sk-[A-Za-z0-9]+",
            "--json",
        )
    )
    assert doc["replaced"] == {"headers": 2, "json_keys": 1, "patterns": 2, "query": 0}
    assert doc["total"] == 5 and doc["input"] == str(src) and doc["output"] == str(out)
    raw = out.read_bytes()
    # the binary message is never rewritten: everything else is clean
    assert raw.count(SECRET.encode()) == 1 and b"\x00\x01" + SECRET.encode() in raw
    human = ok("redact", src, "-o", out, "--pattern", "sk-[A-Za-z0-9]+")
    assert human.startswith("redacted 5 values in 4 of 7 records")
    assert "patterns 5 in header 2, message 2, target 1" in human


def test_redact_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    src = tmp_path / "in.msgpack"
    secret_cassette(src)
    before = src.read_bytes()
    result = invoke("redact", src, "-o", src, "--json-key", "token")
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr  # type: ignore[attr-defined]
    assert src.read_bytes() == before
    ok("redact", src, "--in-place", "--json-key", "token")
    assert b'"token":"<redacted>"' in src.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to redact"),
        (["--json-key", "token"], "give --output"),
        (["-o", "x.msgpack", "--pattern", "("], "--pattern"),
    ],
)
def test_redact_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "in.msgpack"
    secret_cassette(src)
    result = invoke("redact", src, *args)
    assert result.exit_code == 2 and message in result.stderr  # type: ignore[attr-defined]


def test_redact_truncated_points_to_repair(tmp_path: Path) -> None:
    result = invoke("redact", truncated(tmp_path), "-o", tmp_path / "o.msgpack", "--json-key", "a")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "wstape repair" in result.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "o.msgpack").exists()


# -- cut and repair --------------------------------------------------------------------


def test_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.msgpack"
    doc = json.loads(ok("cut", V1, "-o", out, "--conn", "1", "--conn", "3", "--json"))
    assert doc == {
        "input": str(V1),
        "output": str(out),
        "connections": [1, 3],
        "records": 8,
        "messages": 3,
    }
    assert {r.conn for r in read_cassette(out)[1]} == {1, 3}
    assert "kept 1 connections (2)" in ok("cut", V1, "-o", out, "--path", "/admin")
    result = invoke("cut", V1, "-o", out)
    assert result.exit_code == 2  # type: ignore[attr-defined]


def test_repair(tmp_path: Path) -> None:
    out = tmp_path / "fixed.msgpack"
    src = truncated(tmp_path)
    doc = json.loads(ok("repair", src, "-o", out, "--json"))
    assert doc["truncated_at"] is not None and doc["dropped_bytes"] > 0
    assert doc["closed"] == [3] and doc["records"] == 8
    _header, records = read_cassette(out)
    assert records[:8] == read_cassette(V1)[1][:8]
    assert "not truncated" in ok("repair", V1, "-o", out)


# -- import and export -----------------------------------------------------------------


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


# -- errors common to every command ----------------------------------------------------


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


# -- streaming -------------------------------------------------------------------------


def test_commands_stream_in_bounded_memory(tmp_path: Path) -> None:
    """40 000 messages of 300 bytes (12 MB of payload): no command keeps them all."""
    src = tmp_path / "big.msgpack"
    n = 40_000
    with CassetteWriter(src, creator="t", started_at=1.0) as w:
        w.write(opened(1))
        w.write(opened(2, "/feed"))
        for i in range(n):
            side = Side.CLIENT if i % 2 else Side.SERVER
            w.write(
                Message(
                    1 + i % 2,
                    i / 100,
                    side,
                    Opcode.TEXT,
                    b'{"token": "%06d", "pad": "%s"}' % (i, b"x" * 270),
                )
            )
        w.write(Note(1, "end"))
        w.write(Close(1, n / 100, Side.CLIENT, 1000))
    limit = 6 * 1024 * 1024
    har_out = open(tmp_path / "big.har", "w", encoding="utf-8")
    jobs = {
        "stats": lambda: compute_stats(CassetteReader(src)),
        "export har": lambda: export_har(CassetteReader(src), har_out),
        "cut": lambda: cut_cassette(CassetteReader(src), tmp_path / "cut.msgpack", Selection([1])),
        "redact": lambda: redact_cassette(
            CassetteReader(src), tmp_path / "red.msgpack", RedactRules.build(json_keys=["token"])
        ),
        "repair": lambda: repair_cassette(
            CassetteReader(src, allow_truncated=True), tmp_path / "rep.msgpack"
        ),
    }
    for name, job in jobs.items():
        tracemalloc.start()
        try:
            job()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < limit, f"{name} peaked at {peak} bytes"
    har_out.close()
    assert len(json.loads((tmp_path / "big.har").read_text())["log"]["entries"]) == 2
    records: list[Record] = read_cassette(tmp_path / "red.msgpack")[1]
    assert b"<redacted>" in records[2].payload  # type: ignore[union-attr]


def test_show_warns_about_a_connection_that_is_not_there() -> None:
    from tests.cli.test_inspect import V1

    result = CliRunner().invoke(app, ["show", str(V1), "--conn", "99", "--conn", "1"])
    assert result.exit_code == 0
    assert "no connection 99" in result.stderr and "no connection 1" not in result.stderr
    assert "4001" in result.stdout
