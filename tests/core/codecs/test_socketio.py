"""Socket.IO v5 / Engine.IO v4: examples from the socket.io-protocol and engine.io-protocol docs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control
from wstape.core.codecs import CODECS
from wstape.core.codecs.base import Heartbeat, HeartbeatRole
from wstape.core.codecs.socketio import SocketIOCodec
from wstape.core.model import Opcode, Side

CODEC = CODECS.get("socketio")
C, S = Side.CLIENT, Side.SERVER


def decode(side: Side, text: str) -> Any:
    return CODEC.decode(side, Opcode.TEXT, text.encode("utf-8"))


def value(side: Side, text: str) -> Any:
    decoded = decode(side, text)
    assert decoded is not None, text
    return decoded.value


HANDSHAKE = (
    '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
    '"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}'
)


def test_engineio_open() -> None:
    decoded = decode(S, HANDSHAKE)
    assert decoded is not None
    assert decoded.kind == "open"
    assert decoded.value == {"engineio": "open", "data": json.loads(HANDSHAKE[1:])}
    assert decoded.summary == "open sid=lv_VI97HAXpY6yYWAAAC pingInterval=25000 pingTimeout=5000"
    assert decoded.generated == decoded.echoes == ()


@pytest.mark.parametrize(
    ("side", "text", "expected"),
    [
        # socket.io-protocol v5, "Packet encoding" examples (prefixed by Engine.IO's 4)
        (C, "40", {"socketio": "CONNECT", "nsp": "/"}),
        (
            S,
            '40/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
            {"socketio": "CONNECT", "nsp": "/admin", "data": {"sid": "oSO0OpakMV_3jnilAAAA"}},
        ),
        (
            C,
            '40/admin,{"token":"123"}',
            {"socketio": "CONNECT", "nsp": "/admin", "data": {"token": "123"}},
        ),
        (
            S,
            '44{"message":"Not authorized"}',
            {"socketio": "CONNECT_ERROR", "nsp": "/", "data": {"message": "Not authorized"}},
        ),
        (C, '42["foo"]', {"socketio": "EVENT", "nsp": "/", "data": ["foo"]}),
        (S, '42/admin,["bar"]', {"socketio": "EVENT", "nsp": "/admin", "data": ["bar"]}),
        (
            C,
            '451-["baz",{"_placeholder":true,"num":0}]',
            {
                "socketio": "BINARY_EVENT",
                "nsp": "/",
                "attachments": 1,
                "data": ["baz", {"_placeholder": True, "num": 0}],
            },
        ),
        (
            C,
            '452-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
            {
                "socketio": "BINARY_EVENT",
                "nsp": "/admin",
                "attachments": 2,
                "data": ["baz", {"_placeholder": True, "num": 0}, {"_placeholder": True, "num": 1}],
            },
        ),
        (C, '4212["foo"]', {"socketio": "EVENT", "nsp": "/", "id": 12, "data": ["foo"]}),
        (S, '43/admin,13["bar"]', {"socketio": "ACK", "nsp": "/admin", "id": 13, "data": ["bar"]}),
        (
            S,
            '461-15["bar",{"_placeholder":true,"num":0}]',
            {
                "socketio": "BINARY_ACK",
                "nsp": "/",
                "attachments": 1,
                "id": 15,
                "data": ["bar", {"_placeholder": True, "num": 0}],
            },
        ),
        (C, "41", {"socketio": "DISCONNECT", "nsp": "/"}),
        (C, "41/admin,", {"socketio": "DISCONNECT", "nsp": "/admin"}),
        (C, "40/admin", {"socketio": "CONNECT", "nsp": "/admin"}),
        # an event name may be a number (socket.io-parser's isPayloadValid)
        (S, "42[1,2]", {"socketio": "EVENT", "nsp": "/", "data": [1, 2]}),
        (S, "430[]", {"socketio": "ACK", "nsp": "/", "id": 0, "data": []}),
    ],
)
def test_socketio_packets(side: Side, text: str, expected: dict[str, Any]) -> None:
    assert value(side, text) == {"engineio": "message", **expected}


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        ('42["chat",{"text":"hi"}]', 'EVENT / "chat" [{"text":"hi"}]'),
        ('42["chat","hi"]', 'EVENT / "chat" ["hi"]'),
        ('42/chat,7["x"]', 'EVENT /chat id=7 "x" []'),
        ('437["ok"]', 'ACK / id=7 ["ok"]'),
        (
            '451-["up",{"_placeholder":true,"num":0}]',
            'BINARY_EVENT / "up" ["<attachment 0>"] (+1 attachment)',
        ),
        ('40{"sid":"wZX3oN0bSVIhsaknAAAI"}', "CONNECT / sid=wZX3oN0bSVIhsaknAAAI"),
        ('44{"message":"Not authorized"}', 'CONNECT_ERROR / "Not authorized"'),
        ("41/admin,", "DISCONNECT /admin"),
        ("2", "ping"),
        ("3probe", 'pong "probe"'),
        ('42["a\\u0007b","\\u009b[2J"]', 'EVENT / "a\\u0007b" ["\\x9b[2J"]'),
    ],
)
def test_summaries(text: str, summary: str) -> None:
    decoded = decode(S, text)
    assert decoded is not None
    assert decoded.summary == summary


@pytest.mark.parametrize(
    ("side", "text", "kind", "heartbeat"),
    [
        # Engine.IO v4: the server pings on its timer, the client answers
        (S, "2", "ping", Heartbeat(HeartbeatRole.PING, "engineio", timer=True)),
        (C, "3", "pong", Heartbeat(HeartbeatRole.PONG, "engineio")),
        # Engine.IO v3: the client pings, the server answers
        (C, "2", "ping", Heartbeat(HeartbeatRole.PING, "engineio")),
        (S, "3", "pong", Heartbeat(HeartbeatRole.PONG, "engineio")),
        # the upgrade probe is part of the handshake, not a heartbeat
        (C, "2probe", "ping", None),
        (S, "3probe", "pong", None),
        (C, "5", "upgrade", None),
        (S, "6", "noop", None),
        (S, "1", "close", None),
        (C, '42["x"]', "EVENT", None),
    ],
)
def test_engineio_packets_and_heartbeats(
    side: Side, text: str, kind: str, heartbeat: Heartbeat | None
) -> None:
    decoded = decode(side, text)
    assert decoded is not None
    assert decoded.kind == kind
    assert decoded.heartbeat == heartbeat


def test_probe_value() -> None:
    assert value(C, "2probe") == {"engineio": "ping", "data": "probe"}


def test_attachments_are_binary_messages() -> None:
    decoded = CODEC.decode(S, Opcode.BINARY, b"\x01\x02\x03\x04")
    assert decoded is not None
    assert decoded.kind == "attachment"
    assert decoded.value == {
        "engineio": "message",
        "socketio": "attachment",
        "data": b"\x01\x02\x03\x04",
    }
    assert decoded.summary == "attachment <4 bytes>"
    # Engine.IO v3 sends binary as base64 text when the transport cannot do binary
    assert value(S, "b4AQIDBA==")["data"] == b"\x01\x02\x03\x04"


def test_engineio_message_that_is_not_socketio() -> None:
    # a plain Engine.IO app (no Socket.IO), or a packet socket.io-parser rejects
    assert decode(C, "4hello").value == {"engineio": "message", "data": "hello"}  # type: ignore[union-attr]
    assert decode(C, "42").value == {"engineio": "message", "data": "2"}  # type: ignore[union-attr]
    assert decode(C, '42{"a":1}').kind == "message"  # type: ignore[union-attr]
    assert decode(C, '41["x"]').kind == "message"  # type: ignore[union-attr]  # DISCONNECT with data
    assert decode(C, "42[]").kind == "message"  # type: ignore[union-attr]  # EVENT needs a name


@pytest.mark.parametrize(
    "text", ["", "hello", "7", "9x", "0", "0{}", '0{"sid":1}', "0[1]", "b4***"]
)
def test_not_engineio(text: str) -> None:
    assert decode(S, text) is None


def test_invalid_utf8_text_is_not_engineio() -> None:
    assert CODEC.decode(C, Opcode.TEXT, b"42\xff") is None


def test_generated_and_echoed_ack_ids() -> None:
    assert decode(C, '4212["foo"]').generated == (("id",),)  # type: ignore[union-attr]
    # the attachment count comes first: 12 attachments, no ack id
    assert decode(C, '4512-["foo",{"_placeholder":true,"num":0}]').generated == ()  # type: ignore[union-attr]
    assert decode(C, '451-12["foo",{"_placeholder":true,"num":0}]').generated == (("id",),)  # type: ignore[union-attr]
    assert decode(S, '4312["bar"]').echoes == (("id",),)  # type: ignore[union-attr]
    assert decode(S, '461-15["bar",{"_placeholder":true,"num":0}]').echoes == (("id",),)  # type: ignore[union-attr]
    # the server asking the client for an ack: its own id, which the client echoes as is
    assert decode(S, '4213["foo"]').echoes == ()  # type: ignore[union-attr]
    assert decode(C, '4313["bar"]').generated == ()  # type: ignore[union-attr]
    assert decode(C, '42["foo"]').generated == ()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "replacements", "expected"),
    [
        ('4312["bar"]', {("id",): 99}, '4399["bar"]'),
        ('43/admin,13["bar"]', {("id",): 7}, '43/admin,7["bar"]'),
        (
            '461-15["bar",{"_placeholder":true,"num":0}]',
            {("id",): 1500},
            '461-1500["bar",{"_placeholder":true,"num":0}]',
        ),
        (
            '43/a,1[ {"id" : "x", "n":1} ]',
            {("data", 0, "id"): "yz"},
            '43/a,1[ {"id" : "yz", "n":1} ]',
        ),
        (
            '0{"sid":"abc", "pingInterval":25000}',
            {("data", "sid"): "zz"},
            '0{"sid":"zz", "pingInterval":25000}',
        ),
        # what cannot be written is left alone
        ('4312["bar"]', {("id",): "x"}, '4312["bar"]'),
        ('4312["bar"]', {("id",): -1}, '4312["bar"]'),
        ('43["bar"]', {("id",): 5}, '43["bar"]'),
        ('4312["bar"]', {("data", 3): 1}, '4312["bar"]'),
        ("hello", {("id",): 5}, "hello"),
        ("4hello", {("data",): "x"}, "4hello"),
    ],
)
def test_substitute(text: str, replacements: dict[Any, Any], expected: str) -> None:
    out = CODEC.substitute(S, Opcode.TEXT, text.encode("utf-8"), replacements)
    assert out.decode("utf-8") == expected


# -- properties --------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5)
json_args = st.lists(
    json_scalars | st.dictionaries(st.text(max_size=3), json_scalars, max_size=3), max_size=3
)
namespaces = st.sampled_from(["/", "/admin", "/chat-2"])
ack_ids = st.none() | st.integers(0, 10**9)


def encode_packet(ptype: int, nsp: str, ack: int | None, data: Any, attachments: int = 0) -> str:
    """A Socket.IO packet as socket.io-parser's Encoder writes it, inside Engine.IO ``4``."""
    out = f"4{ptype}"
    if ptype in (5, 6):
        out += f"{attachments}-"
    if nsp != "/":
        out += nsp + ","
    if ack is not None:
        out += str(ack)
    if data is not None:
        out += json.dumps(data, separators=(",", ":"))
    return out


@given(
    st.sampled_from([2, 3, 5, 6]),
    namespaces,
    ack_ids,
    st.text(min_size=1, max_size=6),
    json_args,
    st.integers(0, 3),
)
def test_hand_built_events_and_acks_decode(
    ptype: int, nsp: str, ack: int | None, name: str, args: list[Any], attachments: int
) -> None:
    data = [name, *args] if ptype in (2, 5) else args
    text = encode_packet(ptype, nsp, ack, data, attachments)
    expected: dict[str, Any] = {
        "engineio": "message",
        "socketio": [
            "CONNECT",
            "DISCONNECT",
            "EVENT",
            "ACK",
            "CONNECT_ERROR",
            "BINARY_EVENT",
            "BINARY_ACK",
        ][ptype],
        "nsp": nsp,
        "data": data,
    }
    if ptype in (5, 6):
        expected["attachments"] = attachments
    if ack is not None:
        expected["id"] = ack
    assert value(C, text) == expected


@given(st.sampled_from([3, 6]), namespaces, st.integers(0, 10**6), json_args, st.integers(0, 10**9))
def test_substituted_ack_id_decodes(
    ptype: int, nsp: str, ack: int, args: list[Any], new: int
) -> None:
    text = encode_packet(ptype, nsp, ack, args, 1)
    decoded = decode(S, text)
    assert decoded is not None
    assert decoded.echoes == (("id",),)
    out = CODEC.substitute(S, Opcode.TEXT, text.encode("utf-8"), {("id",): new})
    again = CODEC.decode(S, Opcode.TEXT, out)
    assert again is not None
    assert again.value == {**decoded.value, "id": new}


@given(st.text(alphabet='0123456789-/,[]{}"a:b4 \x00\x1b', max_size=20), st.sampled_from([C, S]))
def test_decode_never_raises_on_text(text: str, side: Side) -> None:
    decoded = CODEC.decode(side, Opcode.TEXT, text.encode("utf-8"))
    if decoded is not None:
        assert not has_control(decoded.summary)
        CODEC.substitute(side, Opcode.TEXT, text.encode("utf-8"), {("id",): 1, ("data", 0): "x"})


def test_bound_codec_is_itself() -> None:
    assert isinstance(CODEC, SocketIOCodec)
    assert CODEC.for_connection(None, []) is CODEC  # type: ignore[arg-type]
