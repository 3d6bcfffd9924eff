"""Correlation against a real replay server and a real client: values the client makes
up are carried into the replies, values the server handed out must come back as sent."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, rule_ids, s
from wstape.core.model import Side
from wstape.replay import ReplayServer

REQ = "77777777-8a51-4c7e-9d51-0d7a4c7b1a11"
ROOM = "2b0c6f0e-8a51-4c7e-9d51-0d7a4c7b1a11"


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


async def recv_json(ws: Any) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def finished(server: ReplayServer) -> None:
    assert await server.wait_played(5), "not every recorded connection was played"
    await server.stop()


ROOMS = [
    opening(1),
    c(1, 0.01, {"type": "hello", "req": REQ}),
    s(1, 0.02, {"type": "welcome", "req": REQ, "room": ROOM}),
    c(1, 0.03, {"type": "join", "room": ROOM}),
    s(1, 0.04, {"type": "joined", "room": ROOM}),
    close(1, 0.05, Side.CLIENT, 1000),
]


async def rooms_client(server: ReplayServer, room: str | None) -> list[Any]:
    got = []
    async with websockets.connect(f"{server.url}/chat", compression=None) as ws:
        await ws.send(dumps({"type": "hello", "req": str(uuid.uuid4())}))
        got.append(await recv_json(ws))
        await ws.send(dumps({"type": "join", "room": room or got[0]["room"]}))
        got.append(await recv_json(ws))
    return got


async def test_the_room_the_server_handed_out_must_come_back(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    cassette = make_cassette(ROOMS)
    server = await serve(cassette)
    welcome, joined = await rooms_client(server, None)
    await finished(server)
    assert rule_ids(server) == []
    assert welcome["req"] != REQ and welcome["room"] == ROOM and joined["room"] == ROOM
    assert server.report().to_dict()["connections"][0]["correlated"] == 1  # the request id

    server = await serve(cassette)
    made_up = str(uuid.uuid4())
    _, joined = await rooms_client(server, made_up)
    await finished(server)
    assert rule_ids(server) == ["REPLAY-MESSAGE-MISMATCH"]
    [violation] = server.report().violations
    assert f'$.room: expected "{ROOM}"' in violation.message
    assert joined["room"] == ROOM  # the made-up room was not carried into the reply
