"""Record a session through ``wstape record`` (mitmproxy, reverse mode), replay it, and
check that a client repeating the original behaviour gets exactly the recorded server
messages, in order, with the recorded gaps (within 50 ms) and the recorded close."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wstape.cassettes import WriteMode, read_cassette
from wstape.core.model import Close, Message, Side
from wstape.replay import ReplayOptions, ReplayServer

runner = pytest.importorskip("wstape.addons.runner")


async def backend(ws: ServerConnection) -> None:
    hello = await ws.recv()
    await ws.send(f"welcome {hello}")
    for i in range(3):
        await asyncio.sleep(0.15 + 0.1 * i)
        await ws.send(f"tick {i}")
    await ws.recv()  # "done"
    await ws.close(4003, "kicked")


async def client(url: str) -> tuple[list[str], list[float], int | None, str | None]:
    received: list[str] = []
    times: list[float] = []
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:
        await ws.send("alice")
        for _ in range(4):
            message = await asyncio.wait_for(ws.recv(), 5)
            assert isinstance(message, str)
            received.append(message)
            times.append(time.monotonic())
        await ws.send("done")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        return received, times, ws.close_code, ws.close_reason


async def test_record_then_replay(tmp_path: Path) -> None:
    cassette = tmp_path / "session.msgpack"
    async with serve(backend, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        config = runner.RecordConfig(
            output=cassette,
            mode=f"reverse:ws://127.0.0.1:{port}",
            listen_port=0,
            write=WriteMode.OVERWRITE,
            confdir=str(tmp_path / "mitmproxy"),
        )
        task = asyncio.ensure_future(
            runner.record(
                config, stop=stop, on_listening=lambda rec: listening.set_result(rec.port)
            )
        )
        try:
            proxy = await asyncio.wait_for(asyncio.shield(listening), 30)
            original, _, code, reason = await client(f"ws://127.0.0.1:{proxy}/live")
        finally:
            stop.set()
        await asyncio.wait_for(task, 30)
    assert (code, reason) == (4003, "kicked")

    _, records = read_cassette(cassette)
    recorded = [r for r in records if isinstance(r, Message) and r.side is Side.SERVER]
    [recorded_close] = [r for r in records if isinstance(r, Close)]
    assert [m.payload.decode() for m in recorded] == original

    replay = ReplayServer(cassette, ReplayOptions.build(port=0, speed=1, timeout=5))
    await replay.start()
    try:
        received, times, code, reason = await client(f"{replay.url}/live")
        assert await replay.wait_played(5)
    finally:
        await replay.stop()
    assert received == original
    assert (code, reason) == (recorded_close.code, recorded_close.reason) == (4003, "kicked")
    # Gaps between the ticks (the welcome answers the client, so it starts the clock).
    want = [b.t - a.t for a, b in itertools.pairwise(recorded[1:])]
    got = [b - a for a, b in itertools.pairwise(times[1:])]
    assert all(abs(g - w) < 0.05 for g, w in zip(got, want, strict=True)), (got, want)
    report = replay.report()
    assert report.passed and report.violations == ()
