"""``wstape replay`` as a real process: --port 0 --ready-file F --report R, exit codes,
SIGTERM still writing the report, JUnit XML, --json on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import websockets

from tests.helpers.rawclient import RawClient
from tests.replay.conftest import CassetteFactory, c, close, opening, s
from wstape.core.frames import encode_close_body
from wstape.core.model import Side

ECHO = [
    opening(1, "/echo"),
    c(1, 0.01, "ping?"),
    s(1, 0.02, "pong!"),
    close(1, 0.05, Side.CLIENT, 1000, "done"),
]
REPORT_KEYS = ["passed", "profile", "cassette", "connections", "violations"]


class Replay:
    """A ``wstape replay`` subprocess with its ready file and report."""

    def __init__(self, tmp: Path, cassette: Path, *args: str) -> None:
        self.ready = tmp / "port.txt"
        self.report_path = tmp / "report.json"
        self.junit_path = tmp / "junit.xml"
        self.argv = [
            sys.executable, "-m", "wstape", "replay", str(cassette),
            "--port", "0", "--ready-file", str(self.ready),
            "--report", str(self.report_path), "--junit", str(self.junit_path),
            "--speed", "0", "--timeout", "3", *args,
        ]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> Replay:
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200"},
        )
        async with asyncio.timeout(20):
            while not self.ready.exists():
                if self.proc.returncode is not None:
                    raise AssertionError(f"wstape replay exited with {self.proc.returncode}")
                await asyncio.sleep(0.02)
        self.port = int(self.ready.read_text())
        return self

    async def finish(self, timeout: float = 15) -> tuple[int, str, str]:
        assert self.proc is not None
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        assert self.proc.returncode is not None
        return self.proc.returncode, out.decode(), err.decode()

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.report_path.read_text(encoding="utf-8"))
        return data

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def test_clean_run_exits_0_by_itself(tmp_path: Path, make_cassette: CassetteFactory) -> None:
    async with Replay(tmp_path, make_cassette(ECHO), "--json") as replay:
        async with websockets.connect(f"ws://127.0.0.1:{replay.port}/echo", compression=None) as ws:
            await ws.send("ping?")
            assert await asyncio.wait_for(ws.recv(), 5) == "pong!"
            await ws.close(1000, "done")
        code, out, err = await replay.finish()
    assert code == 0, err
    report = replay.report()
    assert list(report) == REPORT_KEYS
    assert report["passed"] is True and report["violations"] == []
    [row] = report["connections"]
    assert list(row) == [
        "conn", "path", "client", "messages_expected", "messages_matched", "close",
        "protocol", "heartbeats", "correlated",
    ]  # fmt: skip
    assert row["close"] == {"by": "client", "code": 1000, "reason": "done"}
    assert json.loads(out) == report
    assert "conn 1: open /echo" in err and "passed" in err
    suite = ET.parse(replay.junit_path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0"


async def test_violation_exits_1_and_is_printed(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(ECHO)) as replay:
        raw = await RawClient.connect(replay.port)
        assert (await raw.handshake("/echo")).status == 101
        await raw.send_text("ping?")
        await raw.recv()
        await raw.send_close(encode_close_body(1005))  # never on the wire
        await raw.recv_until_close()
        await raw.aclose()
        code, _, err = await replay.finish()
    assert code == 1
    assert sorted({v["rule"] for v in replay.report()["violations"]}) == [
        "REPLAY-CLOSE-CHANGED",
        "RFC-CLOSE-CODE",
    ]
    assert "RFC-CLOSE-CODE conn 1" in err
    suite = ET.parse(replay.junit_path).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"


@pytest.mark.parametrize(("partial", "exit_code"), [(False, 1), (True, 0)])
async def test_sigterm_still_writes_the_report(
    tmp_path: Path, make_cassette: CassetteFactory, partial: bool, exit_code: int
) -> None:
    records = [*ECHO, opening(2, "/never"), close(2, 1.0, Side.CLIENT, 1000)]
    args = ["--allow-partial"] if partial else []
    async with Replay(tmp_path, make_cassette(records), *args) as replay:
        async with websockets.connect(f"ws://127.0.0.1:{replay.port}/echo", compression=None) as ws:
            await ws.send("ping?")
            await asyncio.wait_for(ws.recv(), 5)
            assert replay.proc is not None
            replay.proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(ws.wait_closed(), 5)
            assert ws.close_code == 1001  # the server said goodbye
        code, _, _ = await replay.finish()
    # A recorded connection no client opened fails the run, unless --allow-partial.
    assert code == exit_code
    report = replay.report()
    assert [(v["rule"], v["conn"], v["severity"]) for v in report["violations"]] == [
        ("REPLAY-UNPLAYED", 2, "warn" if partial else "error")
    ]
    assert report["connections"][0]["close"]["code"] == 1001


async def test_repeated_sigterm_during_shutdown_still_writes_the_report(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    """A supervisor that keeps sending SIGTERM: none of them, before or after the server
    stopped, keeps the report from reaching the disk (the loop's removal of its handlers
    used to put back the default action, which killed the process first)."""
    async with Replay(tmp_path, make_cassette(ECHO)) as replay:
        assert replay.proc is not None
        async with asyncio.timeout(20):
            while replay.proc.returncode is None:
                # os.kill, not send_signal: that polls (reaps) the child itself, and the
                # event loop's child watcher then reports an unknown child, exit 255.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(replay.proc.pid, signal.SIGTERM)
                await asyncio.sleep(0.002)  # pacing the signals, not waiting for readiness
        code, _, err = await replay.finish()
    # Once the report is out the default action is back: a late signal may end the exit.
    assert code in (1, -signal.SIGTERM), err
    [v] = replay.report()["violations"]
    assert v["rule"] == "REPLAY-UNPLAYED"
    assert ET.parse(replay.junit_path).getroot().find("testsuite") is not None


def test_a_fault_aimed_at_no_recorded_connection_is_a_usage_error(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    cassette = make_cassette(ECHO)
    argv = [sys.executable, "-m", "wstape", "replay", str(cassette), "--port", "0"]
    done = subprocess.run(
        [*argv, "--fault", "drop@conn=7", "--max-wait", "5"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "wstape: error: --fault: 'drop@conn=7': the cassette has no connection 7 (it has 1); "
        "it would never happen"
    ]


async def test_max_wait_ends_a_run_no_client_connected_to(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    # A replay nobody used proves nothing: it fails, even with --allow-partial.
    args = ("--max-wait", "0.2", "--allow-partial")
    async with Replay(tmp_path, make_cassette(ECHO), *args) as replay:
        code, _, _ = await replay.finish()
    assert code == 1
    [v] = replay.report()["violations"]
    assert (v["rule"], v["severity"], v["conn"]) == ("REPLAY-UNPLAYED", "error", None)
    assert "no client connected" in v["message"]


async def test_a_cassette_with_no_connection_fails_its_replay(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    """QA: a recording whose client crashed before connecting is a cassette of no
    connection; its replay said 'passed: 0 connections played' and exited 0 at once (so a
    client started after it could not even connect), though nothing was tested."""
    async with Replay(tmp_path, make_cassette([])) as replay:
        code, _, err = await replay.finish()
    assert code == 1
    [v] = replay.report()["violations"]
    assert (v["rule"], v["severity"], v["conn"]) == ("REPLAY-UNPLAYED", "error", None)
    assert "the cassette holds no recorded connection" in v["message"]
    assert "FAILED" in err


async def test_truncated_cassette_exits_3(tmp_path: Path, make_cassette: CassetteFactory) -> None:
    path = make_cassette(ECHO)
    path.write_bytes(path.read_bytes()[:-3])
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "replay", str(path), "--port", "0",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 3
    (line,) = err.decode().strip().splitlines()
    assert "truncated" in line and "wstape repair" in line


async def test_port_in_use_is_one_line(make_cassette: CassetteFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wstape", "replay", str(make_cassette(ECHO)),
            "--port", str(port), stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"wstape: error: cannot listen on 127.0.0.1:{port}: address already in use (another "
        "replay running? choose another --port, or 0 for any free port)"
    ]


async def test_listening_lines_name_the_paths_and_the_ca(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    cassette = make_cassette(
        [*ECHO, opening(2, "/echo"), close(2, 0.1, Side.CLIENT, 1000), opening(3, "/feed?x=1")]
    )
    replay = Replay(tmp_path, cassette, "--tls", "--hostname", "localhost",
                    "--confdir", str(tmp_path / "ca"), "--max-wait", "0.5")  # fmt: skip
    async with replay:
        code, _, err = await replay.finish()
    url = f"wss://127.0.0.1:{replay.port}"
    lines = err.splitlines()
    assert f"wstape: replaying {cassette} (3 recorded connections) on {url}" in lines
    assert f"wstape: connect to {url}/echo (2x), {url}/feed?x=1" in lines
    ca = tmp_path / "ca" / "mitmproxy-ca-cert.pem"
    assert f"wstape: clients must trust the CA {ca} (--tls)" in lines
    assert ca.exists() and code == 1  # nobody connected


async def test_tls_certificate_covers_the_url_the_listening_line_names(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    """QA: with --tls --hostname chat.example.com the server said 'connect to
    wss://127.0.0.1:PORT/echo', but its certificate named chat.example.com only, so a
    client that did that and trusted the CA failed verification (IP address mismatch)."""
    import ssl

    replay = Replay(tmp_path, make_cassette(ECHO), "--tls", "--hostname", "chat.example.com",
                    "--confdir", str(tmp_path / "ca"))  # fmt: skip
    async with replay:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca" / "mitmproxy-ca-cert.pem"))
        # the name given still works (a TLS handshake only: no recording is used up)
        sock = socket.create_connection(("127.0.0.1", replay.port))
        with contextlib.closing(ctx.wrap_socket(sock, server_hostname="chat.example.com")) as t:
            assert t.getpeercert() is not None
        url = f"wss://127.0.0.1:{replay.port}/echo"
        async with websockets.connect(url, ssl=ctx, proxy=None) as ws:
            await ws.send("ping?")
            assert await ws.recv() == "pong!"
            await ws.close(1000, "done")
        code, _, err = await replay.finish()
    assert f"wstape: connect to {url}" in err.splitlines()
    assert code == 0, err


async def test_a_failed_tls_handshake_is_one_line_saying_why(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    """QA: a client that refused the certificate, or spoke plain ws:// to the wss:// port,
    left no trace in the output: the run just ended with the recording never reached."""
    import ssl

    replay = Replay(tmp_path, make_cassette(ECHO), "--tls", "--hostname", "chat.example.com",
                    "--confdir", str(tmp_path / "ca"), "--max-wait", "5")  # fmt: skip
    async with replay:

        def refuse() -> bytes:
            """A client that does not trust the CA: its alert, then it waits for the
            server to hang up (a client closing at once may beat its alert to the server,
            which then sees only a connection closed, as from a port probe: not named)."""
            untrusting = ssl.create_default_context()  # the system's CAs, not mitmproxy's
            into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = untrusting.wrap_bio(into, out, server_hostname="chat.example.com")
            with socket.create_connection(("127.0.0.1", replay.port), timeout=10) as sock:
                with pytest.raises(ssl.SSLCertVerificationError):
                    while True:
                        try:
                            tls.do_handshake()
                        except ssl.SSLWantReadError:
                            sock.sendall(out.read())
                            into.write(sock.recv(65536))
                        else:
                            break
                sock.sendall(out.read())  # the alert
                return sock.recv(100)

        assert await asyncio.to_thread(refuse) == b""
        with pytest.raises(websockets.InvalidMessage):
            await websockets.connect(
                f"ws://127.0.0.1:{replay.port}/echo", proxy=None, open_timeout=5
            )
        code, _, err = await replay.finish()
    ca = tmp_path / "ca" / "mitmproxy-ca-cert.pem"
    lines = [line for line in err.splitlines() if "TLS handshake" in line]
    assert len(lines) == 2, err
    assert lines[0].startswith("wstape: TLS handshake from 127.0.0.1:")
    assert lines[0].endswith(
        f"failed: the client refused the certificate (alert: unknown ca); it must trust the CA {ca}"
    )
    assert lines[1].endswith("failed: it sent plain HTTP to this wss:// port (a ws:// URL?)")
    assert code == 1  # nobody reached the recording


async def test_client_text_in_a_violation_is_neither_markup_nor_terminal_control(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(ECHO)) as replay:
        async with websockets.connect(f"ws://127.0.0.1:{replay.port}/echo", proxy=None) as ws:
            await ws.send("[/red][bold]\x1b]0;owned\x07")
            await ws.close()
        code, _, err = await replay.finish()
    assert code == 1
    assert "REPLAY-MESSAGE-MISMATCH" in err and "internal error" not in err
    assert "[/red][bold]" in err and "\x1b" not in err and "\\x1b]0;owned" in err


async def test_usage_errors_exit_2(tmp_path: Path, make_cassette: CassetteFactory) -> None:
    path = make_cassette(ECHO)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        # --port 0 so that a usage error that went unnoticed could not collide with
        # anything on the default port; it would then serve, and time out here.
        for args in (
            ["--port", "0", "--ignore", "NO-SUCH-RULE"],
            ["--port", "0", "--tls"],
            ["--port", "0", "--match", "fuzzy"],
            ["--port", "0", "--ignore-json-path", "$..["],
            ["--port", "0", "--compression", "gzip"],
            ["--port", str(busy.getsockname()[1])],
        ):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "wstape", "replay", str(path), *args,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert proc.returncode == 2, (args, err)
            if "--compression" in args:
                assert err.decode().strip() == (
                    "wstape: error: --compression: unknown compression 'gzip'; choose one "
                    "of auto, on, off"
                )
    finally:
        busy.close()


async def test_unwritable_output_paths_exit_2_in_one_line(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    path = make_cassette(ECHO)
    missing = tmp_path / "no-such-dir" / "out"
    for args, named in (
        (["--report", str(missing)], "--report"),
        (["--junit", str(tmp_path)], "--junit"),
        (["--ready-file", str(missing)], "--ready-file"),
        (["--key", str(tmp_path / "key.pem")], "--key"),
        (["--proxy-ready-file", str(tmp_path / "proxy-port")], "--proxy-host"),
    ):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "wstape", "replay", str(path), "--port", "0",
            "--max-wait", "5", *args,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        lines = err.decode().strip().splitlines()
        assert proc.returncode == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("wstape: error: " + named), lines


async def test_loop_summary_counts_each_play_on_its_own(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    replay = Replay(tmp_path, make_cassette(ECHO), "--loop")
    async with replay:
        for text in ("ping?", "wrong", "ping?"):
            async with websockets.connect(f"ws://127.0.0.1:{replay.port}/echo", proxy=None) as ws:
                await ws.send(text)
                if text == "ping?":
                    assert await ws.recv() == "pong!"
                await ws.close(1000, "done")
        assert replay.proc is not None
        replay.proc.send_signal(signal.SIGTERM)
        code, _, err = await replay.finish()
    assert code == 1
    rows = [line.split("│") for line in err.splitlines() if line.count("│") >= 7]
    counts = [(r[1].strip(), r[6].strip()) for r in rows if r[1].strip().isdigit()]
    assert counts == [("1", "0"), ("1", "1"), ("1", "0")], err


async def test_view_marks_the_faults_of_a_replay_report(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    cassette = make_cassette(
        [
            opening(1, "/feed"),
            s(1, 0.01, "one"),
            s(1, 0.02, "two"),
            close(1, 0.5, Side.SERVER, 1000),
        ]
    )
    replay = Replay(tmp_path, cassette, "--fault", "drop@after=1", "--expect-reconnect", "1")
    async with replay:
        async with websockets.connect(f"ws://127.0.0.1:{replay.port}/feed", proxy=None) as ws:
            assert await ws.recv() == "one"
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
        code, _, _ = await replay.finish()
    assert code == 1  # the client never reconnected
    page = tmp_path / "page.html"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "view", str(cassette), "-o", str(page),
        "--report", str(replay.report_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert b", 1 fault" in out
    html = page.read_text(encoding="utf-8")
    section = html[html.index('id="conn-1"') :]
    assert 'class="row fault"' in section and "fault drop@after=1" in section
    assert "REPLAY-FAULT-NO-RECONNECT" in html
    bad = tmp_path / "bad.json"
    bad.write_text('{"passed": true}')
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "view", str(cassette), "-o", str(tmp_path / "x.html"),
        "--report", str(bad), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f'wstape: error: --report {bad}: not a wstape report (no "violations" list)'
    ]
