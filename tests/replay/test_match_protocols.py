"""``--match json --ignore-json-path`` inside a protocol's units, against a real replay
server and a real client: paths are relative to the JSON the application wrote."""

from __future__ import annotations

import asyncio
import time

import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, rule_ids, s
from wstape.core.model import Side

SIO_OPEN = '0{"sid":"abc","upgrades":[],"pingTimeout":20000,"pingInterval":25000}'
SIO = [
    opening(1, "/socket.io/?EIO=4&transport=websocket"),
    s(1, 0.001, SIO_OPEN),
    c(1, 0.002, "40"),
    s(1, 0.003, '40{"sid":"def"}'),
    c(1, 0.004, '42["hello",{"name":"py","ts":1700000000}]'),
    s(1, 0.005, '42["ok"]'),
    close(1, 0.01, Side.CLIENT, 1000),
]


async def test_ignore_json_path_applies_to_socketio_event_arguments(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    cassette = make_cassette(SIO)
    for paths, expected in (((), ["REPLAY-MESSAGE-MISMATCH"]), (("$[1].ts",), [])):
        server = await serve(cassette, match="json", ignore_json_paths=paths)
        url = f"{server.url}/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, compression=None) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send("40")
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send(f'42["hello",{{"name":"py","ts":{int(time.time())}}}]')
            assert await asyncio.wait_for(ws.recv(), 5) == '42["ok"]'
        assert await server.wait_played(5)
        await server.stop()
        assert rule_ids(server) == expected
        if expected:
            [violation] = server.report().violations
            assert "$[1].ts: expected 1700000000" in violation.message
