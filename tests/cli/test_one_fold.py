"""Every command sees the same connections (wstape.core.connections): a connection id
opened twice is refused by all of them with the same line and renumbered by ``repair``;
records of no connection are left out by all of them, with the same warning."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import opened, runner
from tests.helpers.records import write
from wstape.cassettes import CassetteError, read_cassette
from wstape.cli.app import app
from wstape.core.model import Close, Message, Note, Opcode, Record, Side
from wstape.replay.index import CassetteIndex


def msg(conn: int, t: float, data: bytes, side: Side = Side.CLIENT) -> Message:
    return Message(conn, t, side, Opcode.TEXT, data)


def reading_commands(path: Path, out: Path, other: Path) -> dict[str, list[str]]:
    p, o = str(path), str(out)
    return {
        "ls": ["ls", p],
        "ls --json": ["ls", "--json", p],
        "show": ["show", p],
        "stats": ["stats", "--json", p],
        "check": ["check", p],
        "export jsonl": ["export", p, "--format", "jsonl", "-o", o + ".jsonl"],
        "export har": ["export", p, "--format", "har", "-o", o + ".har"],
        "diff a": ["diff", p, str(other)],
        "diff b": ["diff", str(other), p],
        "redact": ["redact", p, "-o", o + ".redacted", "--header", "X-Token"],
        "cut": ["cut", p, "-o", o + ".cut", "--conn", "1"],
        "view": ["view", p, "-o", o + ".html"],
        "replay": ["replay", p, "--port", "0"],
    }


def reused_id_cassette(path: Path) -> None:
    # What two recorders appending to one cassette at once leave: both picked id 2.
    records: list[Record] = [
        opened(1),
        msg(1, 0.1, b"one"),
        opened(2, "/first"),
        msg(2, 0.1, b"first"),
        opened(2, "/second"),  # record 5
        msg(2, 0.2, b"second"),
        Close(2, 0.3, Side.CLIENT, 1000),  # ends the second
        msg(2, 0.4, b"first again"),
        Close(2, 0.5, Side.SERVER, 1000),  # ends the first
        Close(1, 1.0, Side.CLIENT, 1000),
    ]
    write(path, records)


def test_a_reused_id_is_refused_by_every_command_with_the_same_line(tmp_path: Path) -> None:
    path, other = tmp_path / "twice.msgpack", tmp_path / "other.msgpack"
    reused_id_cassette(path)
    write(other, [opened(1)])
    with_index = None
    try:
        CassetteIndex.build(path)
    except CassetteError as e:
        with_index = f"wstape: error: {e}"
    assert with_index is not None
    assert "record 5, byte " in with_index and "connection id 2" in with_index
    assert "record 3" in with_index and "wstape repair" in with_index
    for name, args in reading_commands(path, tmp_path / "out", other).items():
        result = runner.invoke(app, args)
        assert result.exit_code == 3, (name, result.stdout, result.stderr)
        assert result.stderr.strip() == with_index, name


def test_repair_renumbers_the_later_connection(tmp_path: Path) -> None:
    path, fixed, other = tmp_path / "twice.msgpack", tmp_path / "fixed.msgpack", tmp_path / "o"
    reused_id_cassette(path)
    write(other, [opened(1)])
    result = runner.invoke(app, ["repair", str(path), "-o", str(fixed), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["renumbered"] == [{"conn": 2, "new": 3, "record": 5}]
    _, records = read_cassette(fixed)
    by_conn: dict[int, list[bytes]] = {}
    for r in records:
        if isinstance(r, Message):
            by_conn.setdefault(r.conn, []).append(r.payload)
    assert by_conn == {1: [b"one"], 2: [b"first", b"first again"], 3: [b"second"]}
    human = runner.invoke(app, ["repair", str(path), "-o", str(fixed), "--overwrite"])
    assert "connection 2 opened again at record 5: renumbered 3" in human.stdout
    for name, args in reading_commands(fixed, tmp_path / "out", other).items():
        if name == "replay":
            continue  # it would serve; that it loads is what the index build shows
        got = runner.invoke(app, args)
        assert got.exit_code in (0, 1), (name, got.stderr)
    assert [c.conn for c in CassetteIndex.build(fixed).connections] == [1, 2, 3]


def strays_cassette(path: Path) -> list[Record]:
    records: list[Record] = [
        msg(9, 0.0, b"orphan \xff"),  # record 1: connection 9 never opened (not UTF-8)
        opened(1),
        msg(1, 0.1, b"a"),
        msg(1, 0.2, b"b", Side.SERVER),
        opened(2, "/feed", status=403),
        msg(2, 0.1, b"after a refusal"),
        Close(1, 1.0, Side.CLIENT, 1000),
        Note(1, "closed", 1.0),
        msg(1, 2.0, b"after the close"),
        Close(1, 3.0, Side.SERVER, 999),  # a second close, with a code no server may send
    ]
    write(path, records)
    return records


def test_records_of_no_connection_are_left_out_the_same_way(tmp_path: Path) -> None:
    path, out = tmp_path / "strays.msgpack", tmp_path / "out"
    strays_cassette(path)
    warning = (
        f"wstape: warning: {path}: 4 records belong to no open connection and are left "
        "out (first: record 1, a message of connection 9 which was never opened)"
    )

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        assert warning in result.stderr.splitlines(), (args, result.stderr)
        return result.exit_code, result.stdout, result.stderr

    _, ls, _ = run("ls", "--json", str(path))
    conns = json.loads(ls)
    assert [(c["conn"], c["messages"], c["close"] and c["close"]["code"]) for c in conns] == [
        (1, {"client": 1, "server": 1}, 1000),
        (2, {"client": 0, "server": 0}, None),
    ]
    assert conns[0]["duration"] == 1.0
    _, stats, _ = run("stats", "--json", str(path))
    total = json.loads(stats)["total"]
    assert total["messages"] == {"client": 1, "server": 1} and total["close_codes"] == {"1000": 1}
    _, check, _ = run("check", str(path))
    # Records of no connection are not checked: no word about the orphan's bytes nor the
    # second close (the handshakes of these hand-made opens do break rules).
    assert "RFC-HS-KEY" in check
    assert "RFC-TEXT-UTF8" not in check and "RFC-SRV-CLOSE-CODE" not in check
    run("diff", str(path), str(path))
    run("view", str(path), "-o", str(out) + ".html")
    html = Path(str(out) + ".html").read_text()
    assert "after the close" not in html and "orphan" not in html
    run("cut", str(path), "-o", str(out) + ".cut", "--conn", "1", "--conn", "2")
    _, cut = read_cassette(str(out) + ".cut")
    assert [r.payload for r in cut if isinstance(r, Message)] == [b"a", b"b"]
    repaired = runner.invoke(app, ["repair", str(path), "-o", str(out) + ".fixed"])
    assert "dropped 4 records of no open connection" in repaired.stdout
    assert read_cassette(str(out) + ".fixed")[1] == cut
    index = CassetteIndex.build(path)
    assert index.strays.count == 4
    assert [(c.conn, c.close and c.close.code) for c in index.connections] == [
        (1, 1000),
        (2, None),
    ]
    assert [m.payload for m in index.events(1) if isinstance(m, Message)] == [b"a", b"b"]
