"""``wstape replay --echo`` with the ``websockets`` client: in-process and as a process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest
import websockets

from tests.helpers.rawclient import RawClient
from wstape.core.frames import OpCode, encode_close_body
from wstape.replay import ReplayOptions, ReplayServer


async def test_echo_server_with_websockets() -> None:
    async with ReplayServer(None, ReplayOptions.build(port=0, echo=True, timeout=3)) as server:
        big = os.urandom(3 * 1024 * 1024)
        async with websockets.connect(
            f"{server.url}/whatever?x=1", compression=None, max_size=None
        ) as ws:
            await ws.send("héllo")
            assert await asyncio.wait_for(ws.recv(), 5) == "héllo"
            await ws.send(big)
            assert await asyncio.wait_for(ws.recv(), 10) == big
            await ws.send(["frag", "ment", "é"])  # a fragmented text message
            assert await asyncio.wait_for(ws.recv(), 5) == "fragmenté"
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.close(4001, "再见")
        assert ws.close_code == 4001  # the code is echoed
        async with websockets.connect(f"{server.url}/second", compression=None) as ws2:
            await ws2.send(b"\x00\x01")
            assert await asyncio.wait_for(ws2.recv(), 5) == b"\x00\x01"
        assert not server.played  # an echo server never finishes by itself
    report = server.report().to_dict()
    assert report["passed"] is True and report["violations"] == []
    assert report["cassette"] == "(echo)"
    first, second = report["connections"]
    assert (first["conn"], first["path"], first["messages_matched"]) == (1, "/whatever", 3)
    assert first["close"] == {"by": "client", "code": 4001, "reason": "再见"}
    assert (second["conn"], second["close"]["code"]) == (2, 1000)


async def test_echo_reports_rule_violations() -> None:
    async with ReplayServer(None, ReplayOptions.build(port=0, echo=True, timeout=3)) as server:
        assert server.port is not None
        raw = await RawClient.connect(server.port)
        assert (await raw.handshake("/")).status == 101
        await raw.send(OpCode.TEXT, b"ok")
        echoed = await raw.recv()
        assert echoed is not None and echoed.payload == b"ok"
        await raw.send_close(encode_close_body(1000, "x" * 124))  # 126-byte Close payload
        *_, close = await raw.recv_until_close()
        await raw.aclose()
        assert close.opcode == OpCode.CLOSE and close.payload[:2] == (1002).to_bytes(2, "big")
    assert {v.rule for v in server.report().violations} == {
        "RFC-FRAME-CONTROL",
        "RFC-CLOSE-REASON-LENGTH",
    }


def test_echo_takes_no_cassette() -> None:
    with pytest.raises(ValueError, match="echo"):
        ReplayServer("x.msgpack", ReplayOptions.build(echo=True))
    with pytest.raises(ValueError, match="cassette"):
        ReplayServer(None, ReplayOptions.build())


async def _run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "replay", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_cli_usage_errors(tmp_path: Path) -> None:
    code, err = await _run("--port", "0")
    assert code == 2 and "--echo" in err
    code, err = await _run(str(tmp_path / "chat.msgpack"), "--echo", "--port", "0")
    assert code == 2 and "no cassette" in err


async def test_cli_echo_serves_until_sigterm(tmp_path: Path) -> None:
    ready, report_path = tmp_path / "port.txt", tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "replay", "--echo", "--port", "0",
        "--ready-file", str(ready), "--report", str(report_path), "--max-size", "1000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            while not ready.exists():
                assert proc.returncode is None
                await asyncio.sleep(0.02)
        url = f"ws://127.0.0.1:{int(ready.read_text())}"
        for path in ("/a", "/b"):
            async with websockets.connect(url + path, compression=None) as ws:
                await ws.send(path)
                assert await asyncio.wait_for(ws.recv(), 5) == path
        async with websockets.connect(url + "/big", compression=None) as ws:
            await ws.send(b"x" * 1001)  # over --max-size
            with pytest.raises(websockets.ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1009
        await asyncio.sleep(0.3)
        assert proc.returncode is None  # still serving
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    # The message over --max-size is a violation of its own (and the only one).
    assert proc.returncode == 1, err.decode()
    assert "echoing every message" in err.decode()
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert [c["path"] for c in report["connections"]] == ["/a", "/b", "/big"]
    assert report["passed"] is False
    assert [(v["rule"], v["conn"]) for v in report["violations"]] == [("RFC-MESSAGE-TOO-BIG", 3)]
