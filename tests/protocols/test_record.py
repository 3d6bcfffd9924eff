"""Recording real protocols through ``wstape record --mode reverse:ws://...``: the client
completes its flow through the proxy, the recorder stops cleanly on SIGINT, and the
cassette has the protocol's shape (subprotocol, path, messages each way, heartbeats).

Each session (server x client) is recorded once per test run by the ``cycles`` fixture
(conftest.py), which also replays it for test_replay.py.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from tests.protocols import harness
from tests.protocols.conftest import session_params
from wstape.cassettes import read_cassette
from wstape.core.model import Message, Opcode, Open, Side

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Shape:
    path: str
    """The recorded request path (and query) starts with this."""
    opcode: Opcode
    min_client: int
    min_server: int


SHAPES: dict[str, Shape] = {
    # 40, 42 hello, 3 x "3" (pongs); 0 open, welcome, 40 sid, ack, news, 3 x "2" (pings).
    "socketio/python-socketio": Shape("/socket.io/?", Opcode.TEXT, 5, 8),
    "socketio/socket.io-client": Shape("/socket.io/?", Opcode.TEXT, 5, 8),
    # connection_init, subscribe x 2; connection_ack, next, complete, next x 4, complete.
    "graphql-ws/graphql-ws": Shape("/graphql", Opcode.TEXT, 3, 8),
    # MQTT.js writes every field of a packet as a message of its own.
    "mqtt/mqtt.js": Shape("/mqtt", Opcode.BINARY, 20, 8),
    # CONNECT, SUBSCRIBE, PUBLISH, PUBACK, 3 x PINGREQ, UNSUBSCRIBE, DISCONNECT.
    "mqtt/paho-mqtt": Shape("/mqtt", Opcode.BINARY, 9, 8),
    "json-rpc/rpc-websockets": Shape("/", Opcode.TEXT, 6, 8),
    # CONNECT, SUBSCRIBE, SEND, 3 x "\n", DISCONNECT; CONNECTED, MESSAGE, RECEIPT.
    "stomp/stompjs": Shape("/stomp", Opcode.TEXT, 7, 3),
    # CONNECT, SUBSCRIBE, SEND, DISCONNECT; CONNECTED, MESSAGE, 3 x "\n", RECEIPT.
    "stomp/stompjs server-beats": Shape("/stomp", Opcode.TEXT, 4, 6),
    "uuid-json/websockets uuid-json": Shape("/rpc", Opcode.TEXT, 4, 4),
}
TESTED = [s for s in harness.PRIMARY if s.id in SHAPES]
assert len(TESTED) == len(SHAPES), "every primary session needs a Shape"

pytestmark = pytest.mark.slow


def cassette_of(cycle: harness.Cycle) -> tuple[Open, list[Message]]:
    _, records = read_cassette(cycle.recording.cassette)
    [opening] = [r for r in records if isinstance(r, Open)]
    return opening, [r for r in records if isinstance(r, Message)]


def texts(messages: list[Message], side: Side) -> list[str]:
    return [m.payload.decode() for m in messages if m.side == side and m.opcode == Opcode.TEXT]


@pytest.mark.parametrize("sid", session_params(TESTED))
def test_record_shape(sid: str, cycle: harness.Cycle) -> None:
    rec = cycle.recording
    live = rec.live
    assert live.ok, f"client through the proxy: {live.result}\n{live.stderr[-2000:]}"
    assert rec.recorder_exit == 0, rec.recorder_output
    [conn] = rec.connections  # one WebSocket connection per flow
    shape = SHAPES[sid]
    spec = cycle.session.server_spec
    assert conn["status"] == 101
    assert conn["subprotocol"] == spec.subprotocol
    path = "/" + conn["url"].split("/", 3)[3]
    assert path.startswith(shape.path), path
    assert conn["messages"]["client"] >= shape.min_client, conn
    assert conn["messages"]["server"] >= shape.min_server, conn
    assert conn["close"] is not None, conn
    if cycle.session.server == "mqtt":
        # MQTT.js and paho write DISCONNECT and drop their socket; mosquitto drops TCP on
        # DISCONNECT: either end is first, from run to run.
        assert conn["close"]["by"] in ("client", "server"), conn
    else:
        assert conn["close"]["by"] == "client", conn
    _, messages = cassette_of(cycle)
    assert {m.opcode for m in messages} == {shape.opcode}


# -- what each protocol's recording says, as the notes describe it ----------------------------


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "socketio"))
def test_socketio_heartbeats_are_server_pings(sid: str, cycle: harness.Cycle) -> None:
    """Engine.IO v4: the server speaks first (open packet with pingInterval 1000), the
    client connects the namespace, and the server's "2" pings are answered with "3"."""
    opening, messages = cassette_of(cycle)
    assert "EIO=4" in opening.target and "transport=websocket" in opening.target
    if cycle.session.client.startswith("python"):
        assert "&t=" in opening.target or "?t=" in opening.target  # a timestamp per connection
    else:
        assert not any(p.startswith("t=") for p in opening.target.split("?", 1)[1].split("&"))
    assert messages[0].side == Side.SERVER
    handshake = json.loads(messages[0].payload.decode()[1:])
    assert (handshake["pingInterval"], handshake["pingTimeout"]) == (1000, 1000)
    server, client = texts(messages, Side.SERVER), texts(messages, Side.CLIENT)
    assert server.count("2") >= 2 and client.count("3") == server.count("2")
    assert client[0] in ("40", "40{}")
    assert any(t.startswith('421["hello"') or t.startswith('420["hello"') for t in client)
    assert cycle.recording.live.result["pings"] == server.count("2")


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "graphql-ws"))
def test_graphql_ws_ids_are_uuids(sid: str, cycle: harness.Cycle) -> None:
    _, messages = cassette_of(cycle)
    client = [json.loads(t) for t in texts(messages, Side.CLIENT)]
    assert client[0] == {"type": "connection_init"}
    ids = [m["id"] for m in client if m["type"] == "subscribe"]
    assert len(ids) == 2 and all(UUID.fullmatch(i) for i in ids), ids
    server = [json.loads(t) for t in texts(messages, Side.SERVER)]
    assert [m["type"] for m in server].count("complete") == 2
    assert {m["id"] for m in server if "id" in m} == set(ids)


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "mqtt"))
def test_mqtt_keepalive_is_pingreq(sid: str, cycle: harness.Cycle) -> None:
    """PINGREQ (0xc0 0x00) from the client, PINGRESP (0xd0 0x00) from mosquitto, at the
    1 s keepalive; MQTT.js splits packets into one message per field, paho does not."""
    _, messages = cassette_of(cycle)
    client = [m.payload for m in messages if m.side == Side.CLIENT]
    server = [m.payload for m in messages if m.side == Side.SERVER]
    assert client.count(b"\xc0\x00") >= 2
    assert server.count(b"\xd0\x00") == client.count(b"\xc0\x00")
    if cycle.session.client == "mqtt.js":
        assert client[0] == b"\x10"  # the CONNECT fixed header alone
        client_id = next(p for p in client if p.startswith(b"mqttjs_"))
        assert cycle.recording.live.result["clientId"] == client_id.decode()
    else:
        assert client[0][0] == 0x10 and client[0].endswith(b"\x00\x00")  # empty client id
    if cycle.session.client == "mqtt.js":
        assert client[-2:] == [b"\xe0", b"\x00"]  # DISCONNECT, split too
    else:
        assert client[-1] == b"\xe0\x00"  # DISCONNECT


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "json-rpc"))
def test_json_rpc_uuid_ids_and_events(sid: str, cycle: harness.Cycle) -> None:
    _, messages = cassette_of(cycle)
    client = [json.loads(t) for t in texts(messages, Side.CLIENT)]
    calls = [m for m in client if "id" in m]
    assert all(UUID.fullmatch(m["id"]) for m in calls), calls
    assert [m["method"] for m in client] == [
        "sum", "echo", "log", "rpc.on", "startTicks", "rpc.off",
    ]  # fmt: skip
    assert "id" not in client[2]  # the notification
    server = [json.loads(t) for t in texts(messages, Side.SERVER)]
    # rpc-websockets' event notifications are not JSON-RPC 2.0 notifications.
    ticks = [m for m in server if "notification" in m]
    assert ticks == [{"notification": "tick", "params": {"n": n}} for n in (1, 2, 3)]
    assert {m["id"] for m in server if "id" in m} == {m["id"] for m in calls}


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "stomp"))
def test_stomp_heartbeats_one_way(sid: str, cycle: harness.Cycle) -> None:
    """stomp-broker-js answers STOMP 1.1 on subprotocol v12.stomp and grants heart-beats
    in one direction only: the client's by default, the broker's with --server-beats."""
    _, messages = cassette_of(cycle)
    client, server = texts(messages, Side.CLIENT), texts(messages, Side.SERVER)
    assert client[0].startswith("CONNECT\n") and "heart-beat:" in client[0]
    connected = server[0]
    assert connected.startswith("CONNECTED\n") and "version:1.1\n" in connected
    if cycle.session.client.endswith("server-beats"):
        assert "heart-beat:1000,0\n" in connected
        assert server.count("\n") >= 2 and client.count("\n") == 0
    else:
        assert "heart-beat:0,1000\n" in connected
        assert client.count("\n") >= 2 and server.count("\n") == 0
    assert client[-1].startswith("DISCONNECT\nreceipt:")
    assert server[-1].startswith("RECEIPT\nreceipt-id:")


@pytest.mark.parametrize("sid", session_params(s for s in TESTED if s.server == "uuid-json"))
def test_uuid_json_ids_echoed(sid: str, cycle: harness.Cycle) -> None:
    _, messages = cassette_of(cycle)
    requests = [json.loads(t) for t in texts(messages, Side.CLIENT)]
    replies = [json.loads(t) for t in texts(messages, Side.SERVER)]
    assert all(uuid.UUID(r["id"]).version == 4 for r in requests)
    assert sorted(r["id"] for r in replies) == sorted(r["id"] for r in requests)
    # the slow request in flight is answered after the fast one sent after it
    assert replies[-1]["id"] == requests[-2]["id"]


# -- the negative clients complete against the real servers ----------------------------------


@pytest.mark.parametrize("sid", session_params(TESTED))
def test_negative_clients_complete_on_the_real_server(
    sid: str, variant_runs: dict[str, Any]
) -> None:
    """``--variant different`` (another event / query / topic / method / destination) and
    ``--variant quit-early`` (half the flow, then a clean leave) complete against the real
    server, observing something else than the normal flow: so a replay that fails them
    fails them for the difference, not because the flow cannot work."""
    runs = variant_runs[sid]
    if isinstance(runs, BaseException):
        raise runs
    normal, different, early = runs["normal"], runs["different"], runs["quit-early"]
    for run in (normal, different, early):
        assert run.ok, f"{run.variant}: {run.result}\n{run.stderr[-2000:]}"
    assert different.result["events"] != normal.result["events"]
    assert "quit early" in early.result["events"]
    observed = [e for e in early.result["events"] if e != "quit early"]
    assert len(observed) < len(normal.result["events"])
