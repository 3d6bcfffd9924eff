"""--speed: recorded gaps between server messages are kept (within 50 ms) at 1, scaled
at 2, and gone at 0; a server message never goes out before the client message that
preceded it in the recording."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, rule_ids, s
from wstape.core.model import Side

GAPS = [0.0, 0.25, 0.05, 0.3, 0.1]
TIMES = [0.2 + sum(GAPS[: i + 1]) for i in range(len(GAPS))]
PUSH = [
    opening(1, "/push"),
    *[s(1, t, f"m{i}") for i, t in enumerate(TIMES)],
    close(1, TIMES[-1] + 0.05, Side.CLIENT, 1000),
]


async def _arrivals(url: str, n: int) -> tuple[float, list[float]]:
    async with websockets.connect(url, compression=None) as ws:
        opened = time.monotonic()
        arrivals = []
        for _ in range(n):
            await asyncio.wait_for(ws.recv(), 5)
            arrivals.append(time.monotonic())
        await ws.close(1000)
    return opened, arrivals


@pytest.mark.parametrize("speed", [1.0, 2.0])
async def test_recorded_gaps_are_kept(
    speed: float, make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(PUSH), speed=speed)
    opened, arrivals = await _arrivals(f"{server.url}/push", len(TIMES))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    recorded = [(b - a) / speed for a, b in itertools.pairwise(TIMES)]
    for got, want in zip(gaps, recorded, strict=True):
        assert abs(got - want) < 0.05, (gaps, recorded)
    assert abs((arrivals[0] - opened) - TIMES[0] / speed) < 0.05
    assert await server.wait_played(5)
    assert rule_ids(server) == []


async def test_speed_0_has_no_delays(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(PUSH), speed=0)
    opened, arrivals = await _arrivals(f"{server.url}/push", len(TIMES))
    assert arrivals[-1] - opened < 0.05  # the recording spans 0.9 s


async def test_server_waits_for_the_preceding_client_message(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [
        opening(1, "/ask"),
        c(1, 0.0, "question"),
        s(1, 0.1, "answer"),
        close(1, 0.2, Side.CLIENT, 1000),
    ]
    server = await serve(make_cassette(records), speed=1, timeout=5)
    async with websockets.connect(f"{server.url}/ask", compression=None) as ws:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.4)  # nothing before the question
        asked = time.monotonic()
        await ws.send("question")
        assert await asyncio.wait_for(ws.recv(), 5) == "answer"
        assert abs(time.monotonic() - asked - 0.1) < 0.05
        await ws.close(1000)
    assert await server.wait_played(5)
    assert rule_ids(server) == []
