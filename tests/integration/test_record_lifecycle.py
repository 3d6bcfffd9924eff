"""How ``wstape record`` starts, stops, fails and protects secrets, as a real process."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.cassettes.test_listing import by_pass, from_end
from tests.helpers.servers import (
    MAX_SIZE,
    RecorderProcess,
    ScenarioServer,
    clean_env,
    read_records,
    recorder,
    wait_for,
    wait_for_records,
)
from wstape.addons.recorder import REDACTED
from wstape.cassettes import CassetteReader, TruncatedCassette, read_cassette
from wstape.core.model import Close, Message, Note, Open

V1_SAMPLE = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"


def reverse(server: ScenarioServer) -> tuple[str, str]:
    return ("--mode", f"reverse:ws://127.0.0.1:{server.port}")


def wstape(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wstape", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
    )


async def open_and_talk(url: str, text: str = "still here") -> ClientConnection:
    ws = await connect(url, proxy=None, open_timeout=10)
    await ws.send(text)
    assert await ws.recv() == text
    return ws


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_ends_open_connections_with_by_none(
    tmp_path: Path, ws_server: ScenarioServer, sig: signal.Signals
) -> None:
    out, ready = tmp_path / "open.msgpack", tmp_path / "ready"
    rec = RecorderProcess(out, *reverse(ws_server), "--ready-file", str(ready)).start()
    try:
        assert ready.read_text() == f"{rec.port}\n"

        async def scenario() -> int:
            ws = await open_and_talk(rec.url("/hold"))
            wait_for_records(out, lambda rs: sum(isinstance(r, Message) for r in rs) == 2)
            code = await asyncio.to_thread(rec.stop, sig)
            await asyncio.wait_for(ws.wait_closed(), 10)  # the proxy let go of the client
            return code

        assert asyncio.run(scenario()) == 0, rec.output_text
    finally:
        rec.kill()
    _, records = read_cassette(out)
    opened, _, _, close, note = records
    assert isinstance(opened, Open) and opened.target == "/hold"
    assert isinstance(close, Close)
    assert (close.conn, close.by, close.code, close.reason, close.on_wire) == (
        opened.conn,
        None,
        None,
        "",
        False,
    )
    assert isinstance(note, Note) and note.conn == opened.conn
    assert "recording stopped" in note.text
    assert "1 still open at the stop" in rec.output_text
    assert_ls_from_the_end(out, listed=True)  # (one recorder wrote it all)


def assert_ls_from_the_end(path: Path, *, listed: bool) -> None:
    """Whether the cassette's end record lists its connections (format 3); when it does,
    ``ls`` gets from it what a pass over every record gets."""
    end = CassetteReader(path).end_summary()
    assert end is not None and (end.listing is not None) is listed
    if listed:
        assert from_end(path) == by_pass(path)


def test_kill_9_mid_connection_leaves_every_complete_record_readable(
    tmp_path: Path, ws_server: ScenarioServer
) -> None:
    out = tmp_path / "killed.msgpack"
    chunk = os.urandom(256 * 1024)
    rec = RecorderProcess(out, *reverse(ws_server)).start()
    try:

        async def busy() -> int:
            sent = 0
            try:
                async with connect(
                    rec.url("/busy"), proxy=None, max_size=MAX_SIZE, compression=None
                ) as ws:
                    while True:
                        await ws.send(chunk)
                        sent += 1
                        await ws.recv()
                        if sent == 8:
                            # Mid-stream: the recorder dies while messages are in flight.
                            asyncio.get_running_loop().call_soon(rec.proc.kill)  # type: ignore[union-attr]
            except (ConnectionClosed, OSError):
                return sent

        sent = asyncio.run(asyncio.wait_for(busy(), 30))
    finally:
        rec.kill()
    assert sent >= 8
    reader = CassetteReader(out, allow_truncated=True)
    records = list(reader)
    assert isinstance(records[0], Open)
    messages = [r for r in records if isinstance(r, Message)]
    assert len(messages) >= 15  # the 8 round trips before the kill, at least
    assert all(m.payload == chunk for m in messages)
    assert not any(isinstance(r, Close) for r in records)  # killed: no close was written
    if reader.truncated_at is not None:  # the kill landed inside a record
        with pytest.raises(TruncatedCassette):
            list(CassetteReader(out))


def test_a_truncated_tail_is_reported_by_ls(tmp_path: Path, ws_server: ScenarioServer) -> None:
    """What a kill during a write leaves: complete records, then part of one."""
    out = tmp_path / "whole.msgpack"
    with recorder(out, *reverse(ws_server)) as rec:

        async def talk() -> None:
            ws = await open_and_talk(rec.url("/t"), "x" * 5000)
            await ws.close()

        asyncio.run(talk())
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    cut = tmp_path / "cut.msgpack"
    shutil.copy(out, cut)
    data = out.read_bytes()
    cut.write_bytes(data[: data.rindex(b"x" * 5000) + 100])  # inside the last message record
    reader = CassetteReader(cut, allow_truncated=True)
    records = list(reader)
    assert reader.truncated_at is not None
    assert [type(r).__name__ for r in records] == ["Open", "Message"]
    listing = wstape("ls", str(cut))
    assert "truncated" in listing.stderr, listing.stderr


def test_secrets_never_reach_the_file(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "secret.msgpack"
    auth, token, api_key = "Bearer AUTH-S3CRET-1", "TOKEN-S3CRET-2", "KEY-S3CRET-3"
    args = (*reverse(ws_server), "--redact-json-key", "token", "--redact-header", "X-Api-Key")
    with recorder(out, *args) as rec:

        async def login() -> None:
            async with connect(
                rec.url("/login"),
                proxy=None,
                additional_headers={"Authorization": auth, "X-Api-Key": api_key},
            ) as ws:
                await ws.send(f'{{"op": "login", "token": "{token}", "user": "张三"}}')
                echoed = await ws.recv()
                assert token in str(echoed)  # the wire is untouched: only the file is masked

        asyncio.run(login())
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    raw = out.read_bytes()
    for secret in (auth, token, api_key):
        assert secret.encode() not in raw
    _, records = read_cassette(out)
    opened = records[0]
    assert isinstance(opened, Open)
    assert (b"Authorization", REDACTED) in opened.request_headers
    assert (b"X-Api-Key", REDACTED) in opened.request_headers
    first = records[1]
    assert isinstance(first, Message)
    # only the value changed: the message keeps its spacing
    assert first.payload == '{"op": "login", "token": "<redacted>", "user": "张三"}'.encode()


def test_a_write_failure_stops_recording_loudly(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "doomed.msgpack"
    rec = RecorderProcess(out, *reverse(ws_server)).start()
    try:

        async def scenario() -> bool:
            ws = await open_and_talk(rec.url("/doomed"))
            wait_for_records(out, lambda rs: sum(isinstance(r, Message) for r in rs) == 2)
            out.unlink()  # as if someone removed the cassette (or the disk filled up)
            await ws.send("after the cassette is gone")
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                return False
            return True

        echoed = asyncio.run(scenario())
        code = rec.wait(20)
    finally:
        rec.kill()
    assert not echoed  # the unrecordable message was not relayed
    assert code == 3, rec.output_text
    errors = [line for line in rec.output_text.splitlines() if "error" in line]
    assert len(errors) == 1, rec.output_text
    assert "cannot write cassette" in errors[0]
    assert "Traceback" not in rec.output_text


def test_append_continues_connection_ids(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "both.msgpack"
    for run, extra in enumerate([(), ("--append",)]):
        with recorder(out, *reverse(ws_server), *extra) as rec:

            async def talk(n: int = run) -> None:
                ws = await open_and_talk(rec.url(f"/run{n}"))
                await ws.close()

            asyncio.run(talk())
            wait_for_records(out, lambda rs, n=run: sum(isinstance(r, Close) for r in rs) > n)
            assert rec.stop() == 0
    _, records = read_cassette(out)
    assert [(r.conn, r.target) for r in records if isinstance(r, Open)] == [
        (1, "/run0"),
        (2, "/run1"),
    ]
    assert_ls_from_the_end(out, listed=False)  # (the second recorder appended)


def test_filter_records_only_matching_upgrades(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "filtered.msgpack"
    with recorder(out, *reverse(ws_server), "--filter", "~u /chat") as rec:

        async def talk() -> None:
            for path in ("/metrics", "/chat"):
                ws = await open_and_talk(rec.url(path), f"to {path}")  # both are relayed
                await ws.close()

        asyncio.run(talk())
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    _, records = read_cassette(out)
    assert [r.target for r in records if isinstance(r, Open)] == ["/chat"]
    assert [r.payload for r in records if isinstance(r, Message)] == [b"to /chat"] * 2


def test_idle_timeout_cuts_silent_connections(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "idle.msgpack"
    with recorder(out, *reverse(ws_server), "--idle-timeout", "1") as rec:

        async def idle() -> None:
            ws = await connect(rec.url("/idle"), proxy=None, ping_interval=None)
            await asyncio.wait_for(ws.wait_closed(), 10)

        asyncio.run(idle())
        records = wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    close = next(r for r in records if isinstance(r, Close))
    assert (close.code, close.on_wire) == (1006, False)  # mitmproxy cut TCP, no Close frame
    assert close.t >= 0.9


def test_an_unreachable_backend_is_reported(tmp_path: Path) -> None:
    out = tmp_path / "down.msgpack"
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with recorder(out, "--mode", f"reverse:ws://127.0.0.1:{dead}") as rec:

        async def attempt() -> None:
            # QA: reverse mode connected to the backend before reading the request, and
            # closed the client's connection without an answer: now a 502 naming why.
            with pytest.raises(InvalidStatus) as refused:
                await connect(rec.url("/x"), proxy=None, open_timeout=10)
            assert refused.value.response.status_code == 502
            assert b"Connect call failed" in refused.value.response.body

        asyncio.run(attempt())
        assert rec.stderr is not None
        rec.stderr.wait_for(rf"wstape: warning: cannot connect to 127.0.0.1:{dead}", 10)
        assert rec.stop() == 0
        # one line for one failure (the failed upgrade said it again)
        assert [line for line in rec.stderr.lines if "warning" in line] == [
            f"wstape: warning: cannot connect to 127.0.0.1:{dead} ([Errno 111] Connect call "
            f"failed ('127.0.0.1', {dead})); nothing is recorded for that client connection"
        ]
    assert read_records(out) == []


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "never.msgpack"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = wstape("record", "-o", str(out), "--listen-port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"wstape: error: cannot listen on 127.0.0.1:{port}: address already in use "
        "(another proxy running? choose another --port, or 0 for any free port)"
    ]
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "bogus"], "invalid --mode 'bogus'"),
        (["--mode", "local"], "wstape record supports regular"),
        (["--filter", "~u ("], "invalid --filter"),
        (["--append", "--overwrite"], "cannot be used together"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = wstape("record", "-o", str(tmp_path / "x.msgpack"), *args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("wstape: error: ") and message in line


def test_an_existing_output_needs_append_or_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "exists.msgpack"
    out.write_bytes(b"something")
    result = wstape("record", "-o", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"wstape: error: {out} already exists; use --append to add to it or --overwrite to "
        "replace it"
    ]
    appended = wstape("record", "-o", str(out), "--append")  # not a cassette: exit 3
    assert appended.returncode == 3
    assert "not a wstape cassette" in appended.stderr
    assert out.read_bytes() == b"something"


def test_append_to_a_format_1_cassette_says_to_upgrade_it(tmp_path: Path) -> None:
    out = tmp_path / "old.msgpack"
    shutil.copy(V1_SAMPLE, out)
    result = wstape("record", "-o", str(out), "--append")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"wstape: error: {out}: cannot append: the cassette is format version 1 and this "
        f"wstape writes version 3; convert it first with `wstape upgrade {out} -o "
        "NEW.msgpack` and append to NEW.msgpack"
    ]
    assert out.read_bytes() == V1_SAMPLE.read_bytes()


def test_overwrite_replaces(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "old.msgpack"
    out.write_bytes(b"old junk")
    with recorder(out, *reverse(ws_server), "--overwrite") as rec:
        assert rec.stop() == 0
    _, records = read_cassette(out)
    assert records == []


def test_help_explains_modes() -> None:
    result = wstape("record", "--help")
    assert result.returncode == 0
    for needle in ("reverse:ws://", "transparent", "docs/recording.md", "--ready-file"):
        assert needle in result.stdout


def test_addon_path_points_at_the_script() -> None:
    result = wstape("addon-path")
    assert result.returncode == 0
    path = Path(result.stdout.strip())
    assert path.name == "script.py" and path.is_file()
    assert "addons = [ScriptRecorder()]" in path.read_text()


def test_status_goes_to_stderr_as_plain_lines(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "status.msgpack"
    with recorder(out, *reverse(ws_server)) as rec:

        async def talk() -> None:
            ws = await open_and_talk(rec.url("/s"))
            await ws.close()

        asyncio.run(talk())
        assert rec.stderr is not None
        rec.stderr.wait_for(r"connections 0 open, 1 closed; messages 2", 10)
        assert rec.stop() == 0
    assert "\r" not in rec.output_text and "\x1b" not in rec.output_text
    assert read_records(out)


def test_verbose_prints_one_line_per_record(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out = tmp_path / "verbose.msgpack"
    with recorder(out, *reverse(ws_server), "-v") as rec:

        async def talk() -> None:
            ws = await open_and_talk(rec.url("/v"), "hello \x1b]0;title\x07")
            await ws.close()

        asyncio.run(talk())
        assert rec.stderr is not None
        rec.stderr.wait_for(r"#1 .*✕ closed by client: 1000", 10)
        assert rec.stop() == 0
    text = rec.output_text
    assert "⇄ open GET ws://127.0.0.1" in text and "/v at " in text
    assert "→ text" in text and "← text" in text
    assert "hello \\x1b]0;title\\x07" in text  # escaped: the terminal title is left alone
    assert "\x1b]" not in text


def test_quiet_prints_nothing_but_problems(tmp_path: Path, ws_server: ScenarioServer) -> None:
    out, ready = tmp_path / "quiet.msgpack", tmp_path / "ready"
    rec = RecorderProcess(out, *reverse(ws_server), "-q", "--ready-file", str(ready))
    rec.spawn()
    try:
        port = int(wait_for(lambda: ready.exists() and ready.read_text().strip(), 20))

        async def talk() -> None:
            ws = await open_and_talk(f"ws://127.0.0.1:{port}/q")
            await ws.close()

        asyncio.run(talk())
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    finally:
        rec.kill()
    assert rec.output_text == ""
    assert sum(isinstance(r, Message) for r in read_records(out)) == 2


def test_an_unusable_confdir_is_refused_up_front(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    out = tmp_path / "never.msgpack"
    result = wstape("record", "-o", str(out), "--port", "0", "--confdir", str(not_a_dir / "ca"))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"wstape: error: --confdir {not_a_dir / 'ca'}: cannot create or load")
    assert not out.exists()


def test_two_recorders_appending_to_one_cassette_at_once(
    tmp_path: Path, ws_server: ScenarioServer
) -> None:
    out = tmp_path / "shared.msgpack"
    per_recorder = 12
    with (
        recorder(out, *reverse(ws_server), "--append") as one,
        recorder(out, *reverse(ws_server), "--append") as two,
    ):

        async def talk(rec: RecorderProcess, n: int) -> None:
            ws = await open_and_talk(rec.url(f"/r{rec.port}"), f"m{n}")
            await ws.close()

        async def everyone() -> None:
            await asyncio.gather(*(talk(rec, n) for n in range(per_recorder) for rec in (one, two)))

        asyncio.run(everyone())
        total = 2 * per_recorder
        wait_for_records(out, lambda rs: sum(isinstance(r, Close) for r in rs) == total)
        assert one.stop() == 0 and two.stop() == 0
    _, records = read_cassette(out)  # refuses a reused connection id or a second header
    opens = [r for r in records if isinstance(r, Open)]
    assert sorted(r.conn for r in opens) == list(range(1, total + 1))
    assert sum(isinstance(r, Message) for r in records) == 2 * total
    assert_ls_from_the_end(out, listed=False)  # (neither wrote it all)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        # 4001 and a 123-byte reason cut inside its last character
        (b"\x0f\xa1" + ("用" * 40).encode() + b"ab" + "谢".encode()[:1], "RFC-CLOSE-REASON-UTF8"),
        (b"\x03", "RFC-CLOSE-PAYLOAD"),
    ],
    ids=["reason-cut-in-a-character", "one-byte-body"],
)
def test_a_close_the_proxy_refused_is_not_recorded_as_the_clients(
    tmp_path: Path, ws_server: ScenarioServer, body: bytes, rule: str
) -> None:
    """mitmproxy's wsproto refuses a Close it cannot parse and closes both sides with its
    own 1007 or 1002, which it reports as the client's close. The cassette says so in a
    note, and wstape check judges the client's frame, not mitmproxy's code (which is
    sendable, so the broken client passed)."""
    from tests.helpers.rawclient import RawClient
    from wstape.core.lint import check_records
    from wstape.core.rules import RuleConfig

    out = tmp_path / "refused.msgpack"
    with recorder(out, *reverse(ws_server)) as rec:

        async def talk() -> None:
            raw = await RawClient.connect(rec.port)
            assert (await raw.handshake("/echo")).status == 101
            await raw.send_close(body)
            await raw.recv_until_close()
            await raw.aclose()

        asyncio.run(talk())
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0
    _, records = read_cassette(out)
    [close] = [r for r in records if isinstance(r, Close)]
    assert close.code in (1002, 1007)  # mitmproxy's verdict, sent to the backend too
    [note] = [r for r in records if isinstance(r, Note)]
    assert "mitmproxy refused a frame from the client" in note.text
    assert f"closed both sides with {close.code} itself" in note.text
    found = [(v.rule, v.severity.value) for v in check_records(records, RuleConfig())]
    assert found == [(rule, "error")]
    result = wstape("check", str(out))
    assert result.returncode == 1 and rule in result.stdout, result
