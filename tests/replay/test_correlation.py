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


# -- ids in use -------------------------------------------------------------------------

GQL = "graphql-transport-ws"
QUERY = {"query": "subscription { prices }"}
GRAPHQL = [
    opening(1, "/graphql", subprotocols=(GQL,), subprotocol=GQL),
    c(1, 0.01, {"type": "connection_init", "payload": {}}),
    s(1, 0.02, {"type": "connection_ack"}),
    c(1, 0.03, {"id": "a", "type": "subscribe", "payload": QUERY}),
    c(1, 0.04, {"id": "b", "type": "subscribe", "payload": QUERY}),
    s(1, 0.05, {"id": "a", "type": "next", "payload": {"data": 1}}),
    c(1, 0.06, {"id": "a", "type": "complete"}),
    s(1, 0.07, {"id": "b", "type": "complete"}),
    close(1, 0.08, Side.CLIENT, 1000),
]


async def graphql_client(server: ReplayServer, ids: tuple[str, str, str]) -> list[Any]:
    got = []
    async with websockets.connect(
        f"{server.url}/graphql",
        subprotocols=[GQL],
        compression=None,  # type: ignore[list-item]
    ) as ws:
        await ws.send(dumps({"type": "connection_init", "payload": {}}))
        got.append(await recv_json(ws))
        for ident in ids[:2]:
            await ws.send(dumps({"id": ident, "type": "subscribe", "payload": QUERY}))
        got.append(await recv_json(ws))
        await ws.send(dumps({"id": ids[2], "type": "complete"}))
        got.append(await recv_json(ws))
    return [(g["type"], g.get("id")) for g in got]


async def test_graphql_ids_must_be_consistent(make_cassette: CassetteFactory, serve: Serve) -> None:
    cassette = make_cassette(GRAPHQL)
    cases = {
        ("x1", "x2", "x1"): "",
        ("x1", "x2", "nosuch"): '$.id: expected "x1", the client\'s value for recorded "a"',
        ("x1", "x2", "x2"): '$.id: expected "x1"',  # completing the other subscription
        ("x1", "x1", "x1"): '$.id: "x1" is already the client\'s value for recorded "a"',
    }
    for ids, problem in cases.items():
        server = await serve(cassette)
        got = await graphql_client(server, ids)
        await finished(server)
        assert got[1] == ("next", "x1")
        violations = server.report().violations
        if not problem:
            assert list(violations) == [], ids
            assert got[2] == ("complete", "x2")
            continue
        [violation] = violations
        assert violation.rule == "REPLAY-MESSAGE-MISMATCH" and problem in violation.message, ids


def _mqtt(first: int, body: bytes) -> bytes:
    return bytes([first, len(body)]) + body


CONNECT = _mqtt(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x05cli-1")
PUBLISH_QOS2 = 0x34


def _publish(pid: int) -> bytes:
    return _mqtt(PUBLISH_QOS2, b"\x00\x03a/c" + pid.to_bytes(2, "big") + b"up")


def _ack(first: int, pid: int) -> bytes:
    return _mqtt(first, pid.to_bytes(2, "big"))


PUBREC, PUBREL, PUBCOMP = 0x50, 0x62, 0x70
MQTT = [
    opening(1, "/mqtt", subprotocols=("mqtt",), subprotocol="mqtt"),
    c(1, 0.01, CONNECT, binary=True),
    s(1, 0.02, _mqtt(0x20, b"\x00\x00"), binary=True),
    c(1, 0.03, _publish(2), binary=True),
    s(1, 0.04, _ack(PUBREC, 2), binary=True),
    c(1, 0.05, _ack(PUBREL, 2), binary=True),
    s(1, 0.06, _ack(PUBCOMP, 2), binary=True),
    close(1, 0.07, Side.CLIENT, 1000),
]


async def test_mqtt_pubrel_with_another_packet_id_is_a_mismatch(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    cassette = make_cassette(MQTT)
    for pubrel, problem in ((8, None), (99, "$.packet_id: expected 8, the client's value")):
        server = await serve(cassette)
        async with websockets.connect(
            f"{server.url}/mqtt",
            subprotocols=["mqtt"],
            compression=None,  # type: ignore[list-item]
        ) as ws:
            await ws.send(CONNECT)
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send(_publish(8))
            assert await asyncio.wait_for(ws.recv(), 5) == _ack(PUBREC, 8)
            await ws.send(_ack(PUBREL, pubrel))
            # the PUBCOMP completes the live PUBLISH 8, never an id the PUBREL made up
            assert await asyncio.wait_for(ws.recv(), 5) == _ack(PUBCOMP, 8)
        await finished(server)
        violations = server.report().violations
        if problem is None:
            assert list(violations) == []
        else:
            [violation] = violations
            assert violation.rule == "REPLAY-MESSAGE-MISMATCH" and problem in violation.message


# -- the JSON rules inside a protocol's units --------------------------------------------

MSG_ID = "0b5e2a1c-3c11-4d7e-9e7f-5a1b2c3d4e5f"
RPC = [
    opening(1, "/rpc"),
    c(1, 0.01, {"jsonrpc": "2.0", "method": "send", "params": {"msgId": MSG_ID}, "id": 1}),
    s(1, 0.02, {"jsonrpc": "2.0", "result": {"stored": MSG_ID}, "id": 1}),
    close(1, 0.03, Side.CLIENT, 1000),
]
SIO_OPEN = '0{"sid":"abc","upgrades":[],"pingTimeout":20000,"pingInterval":25000}'
SIO = [
    opening(1, "/socket.io/?EIO=4&transport=websocket"),
    s(1, 0.001, SIO_OPEN),
    c(1, 0.002, "40"),
    s(1, 0.003, '40{"sid":"def"}'),
    c(1, 0.004, '421["msg",{"id":"m-1","text":"hi"}]'),
    s(1, 0.005, '431[{"stored":true}]'),
    s(1, 0.006, '42["stored",{"id":"m-1"}]'),
    close(1, 0.01, Side.CLIENT, 1000),
]


async def test_a_fresh_uuid_in_jsonrpc_params_passes(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(RPC))
    fresh = str(uuid.uuid4())
    async with websockets.connect(f"{server.url}/rpc", compression=None) as ws:
        request = {"jsonrpc": "2.0", "method": "send", "params": {"msgId": fresh}, "id": 1}
        await ws.send(dumps(request))
        reply = await recv_json(ws)
    await finished(server)
    assert rule_ids(server) == []
    assert reply == {"jsonrpc": "2.0", "result": {"stored": fresh}, "id": 1}


async def test_correlate_paths_apply_to_socketio_event_arguments(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    cassette = make_cassette(SIO)
    for correlate, expected in (((), ["REPLAY-MESSAGE-MISMATCH"]), (("$[1].id",), [])):
        server = await serve(cassette, correlate=correlate)
        url = f"{server.url}/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, compression=None) as ws:
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send("40")
            await asyncio.wait_for(ws.recv(), 5)
            await ws.send('427["msg",{"id":"m-42","text":"hi"}]')
            ack = await asyncio.wait_for(ws.recv(), 5)
            event = await asyncio.wait_for(ws.recv(), 5)
        await finished(server)
        assert rule_ids(server) == expected
        assert ack == '437[{"stored":true}]'  # the ack id, correlated by the codec
        if not expected:
            assert event == '42["stored",{"id":"m-42"}]'


# -- concurrent requests ------------------------------------------------------------------

RPC_PAIR = [
    opening(1, "/rpc"),
    c(1, 0.01, {"jsonrpc": "2.0", "method": "get", "params": ["a"], "id": 3}),
    c(1, 0.01, {"jsonrpc": "2.0", "method": "get", "params": ["b"], "id": 4}),
    s(1, 0.02, {"jsonrpc": "2.0", "result": "A", "id": 3}),
    s(1, 0.02, {"jsonrpc": "2.0", "result": "B", "id": 4}),
    close(1, 0.05, Side.CLIENT, 1000),
]


async def test_concurrent_json_rpc_calls_in_either_order_get_their_own_results(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    """Two calls the client sent together (as Promise.all or asyncio.gather does) reach
    the wire in either order: each is matched to its own recorded call."""
    cassette = make_cassette(RPC_PAIR)
    for order in (("a", "b"), ("b", "a")):
        server = await serve(cassette)
        async with websockets.connect(f"{server.url}/rpc", compression=None) as ws:
            for n, arg in enumerate(order):
                call = {"jsonrpc": "2.0", "method": "get", "params": [arg], "id": 100 + n}
                await ws.send(dumps(call))
            replies = [await recv_json(ws), await recv_json(ws)]
        await finished(server)
        assert rule_ids(server) == [], order
        sent = {100 + n: arg.upper() for n, arg in enumerate(order)}
        assert {r["id"]: r["result"] for r in replies} == sent


async def test_a_protocol_named_wrong_is_a_warning_naming_what_auto_sees(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(RPC_PAIR), protocol="stomp")
    async with websockets.connect(f"{server.url}/rpc", compression=None) as ws:
        await ws.send(dumps({"jsonrpc": "2.0", "method": "get", "params": ["a"], "id": 3}))
        await ws.send(dumps({"jsonrpc": "2.0", "method": "get", "params": ["b"], "id": 4}))
        await recv_json(ws)
    await server.stop()
    misfits = [v for v in server.report().violations if v.rule == "REPLAY-PROTOCOL-MISFIT"]
    assert [(v.severity.value, v.conn) for v in misfits] == [("warn", 1)]
    assert "not stomp but jsonrpc" in misfits[0].message
