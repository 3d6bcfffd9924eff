"""The codec registry: detection over realistic recorded connections, and what every codec
promises (decode and substitute never raise, summaries are one printable line)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control, make_open, msg
from wstape.core.codecs import CODECS, Codec
from wstape.core.codecs.mqtt import MqttCodec
from wstape.core.model import Message, Opcode, Open, Side

C, S = Side.CLIENT, Side.SERVER

HANDSHAKE = '0{"sid":"Lbo5JLzTotvW3g2LAAAA","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
MQTT_CONNECT = bytes.fromhex("10 10 00044d515454 04 02 003c 000474657374")
MQTT5_CONNECT = bytes.fromhex("10 11 00044d515454 05 02 003c 00 000474657374")

CASES: list[tuple[str, Open, list[Message], str | None]] = [
    # socket.io-client with transports: ['websocket']; the python client adds t=
    (
        "socket.io-client",
        make_open("/socket.io/?EIO=4&transport=websocket"),
        [msg(S, HANDSHAKE), msg(C, "40"), msg(S, '40{"sid":"x"}')],
        "socketio",
    ),
    (
        "python-socketio",
        make_open("/socket.io/?transport=websocket&EIO=4&t=1733079833.1"),
        [msg(S, HANDSHAKE)],
        "socketio",
    ),
    ("custom socket.io path", make_open("/rt/?EIO=3&transport=websocket"), [], "socketio"),
    ("EIO spelled with an escape", make_open("/rt/?transport=websocket&E%49O=4"), [], "socketio"),
    ("EIO as a value, not a key", make_open("/rt/?v=EIO&e=%45"), [], None),
    ("Engine.IO open on any path", make_open("/live"), [msg(S, HANDSHAKE)], "socketio"),
    (
        "graphql-ws library",
        make_open("/graphql", ("graphql-transport-ws",), "graphql-transport-ws"),
        [msg(C, '{"type":"connection_init"}'), msg(S, '{"type":"connection_ack"}')],
        "graphql-transport-ws",
    ),
    (
        "Apollo subscriptions-transport-ws",
        make_open("/graphql", ("graphql-ws",), "graphql-ws"),
        [msg(C, '{"type":"connection_init","payload":{}}'), msg(S, '{"type":"connection_ack"}')],
        "graphql-ws",
    ),
    (
        "client offering both graphql protocols, server choosing the legacy one",
        make_open("/graphql", ("graphql-transport-ws", "graphql-ws"), "graphql-ws"),
        [],
        "graphql-ws",
    ),
    (
        "graphql without a subprotocol, by its messages",
        make_open("/graphql"),
        [
            msg(C, '{"type":"connection_init"}'),
            msg(S, '{"type":"connection_ack"}'),
            msg(S, '{"type":"ka"}'),
        ],
        "graphql-ws",
    ),
    ("MQTT.js", make_open("/mqtt", ("mqtt",), "mqtt"), [msg(C, MQTT_CONNECT[:1])], "mqtt"),
    ("paho-mqtt", make_open("/mqtt", ("mqttv3.1",), "mqttv3.1"), [msg(C, MQTT_CONNECT)], "mqtt"),
    ("MQTT without a subprotocol", make_open("/"), [msg(C, MQTT_CONNECT)], "mqtt"),
    (
        "stompjs",
        make_open("/ws", ("v12.stomp", "v11.stomp", "v10.stomp"), "v12.stomp"),
        [msg(C, "CONNECT\naccept-version:1.2,1.1,1.0\nheart-beat:10000,10000\n\n\0")],
        "stomp",
    ),
    ("STOMP without a subprotocol", make_open("/stomp"), [msg(C, "STOMP\nhost:/\n\n\0")], "stomp"),
    (
        "rpc-websockets",
        make_open("/"),
        [msg(C, '{"jsonrpc":"2.0","method":"sum","params":[5,3],"id":1}')],
        "jsonrpc",
    ),
    ("JSON-RPC by subprotocol", make_open("/rpc", ("jsonrpc",), "jsonrpc"), [], "jsonrpc"),
    ("an echo server", make_open("/echo"), [msg(C, "hello"), msg(S, "hello")], None),
    ("a JSON feed", make_open("/feed"), [msg(S, '{"type":"tick","price":1}')], None),
    ("an unknown subprotocol", make_open("/x", ("chat",), "chat"), [msg(C, "hi")], None),
    ("nothing yet", make_open("/"), [], None),
]


@pytest.mark.parametrize(("label", "opened", "first", "expected"), CASES, ids=[c[0] for c in CASES])
def test_detect(label: str, opened: Open, first: list[Message], expected: str | None) -> None:
    codec = CODECS.detect(opened, first)
    assert (codec.name if codec else None) == expected


def test_detection_order_most_specific_first() -> None:
    assert CODECS.names() == [
        "socketio",
        "graphql-transport-ws",
        "graphql-ws",
        "mqtt",
        "stomp",
        "jsonrpc",
    ]
    # a Socket.IO connection that happens to carry JSON-RPC in its events is Socket.IO
    opened = make_open("/socket.io/?EIO=4&transport=websocket")
    first = [msg(S, HANDSHAKE), msg(C, '42["rpc",{"jsonrpc":"2.0","method":"a","id":1}]')]
    assert CODECS.detect(opened, first) is CODECS.get("socketio")


def test_detect_binds_mqtt_to_the_connect_level() -> None:
    codec = CODECS.detect(make_open("/mqtt", ("mqtt",), "mqtt"), [msg(C, MQTT5_CONNECT)])
    assert isinstance(codec, MqttCodec) and codec.version == 5
    # without a CONNECT in the first messages the codec stays unbound
    codec = CODECS.detect(make_open("/mqtt", ("mqtt",), "mqtt"), [])
    assert codec is CODECS.get("mqtt")


def test_get_names_the_choices() -> None:
    with pytest.raises(
        ValueError, match="choose one of auto, none, socketio, graphql-transport-ws"
    ):
        CODECS.get("websocket")


def test_socketio_session_query_params() -> None:
    assert CODECS.get("socketio").session_query_params == frozenset({"t", "sid"})
    assert all(not c.session_query_params for n, c in CODECS.codecs.items() if n != "socketio")


ALL: list[Codec] = [*CODECS.codecs.values(), MqttCodec(4), MqttCodec(5)]


@given(
    st.binary(max_size=40)
    | st.text(max_size=30).map(str.encode)
    | st.sampled_from(["42", "0{", "{", "[", "CONNECT\n", "\x10", "\x82"]).flatmap(
        lambda head: st.binary(max_size=20).map(lambda tail: head.encode() + tail)
    ),
    st.sampled_from([C, S]),
    st.sampled_from([Opcode.TEXT, Opcode.BINARY]),
)
def test_no_codec_raises(payload: bytes, side: Side, opcode: Opcode) -> None:
    for codec in ALL:
        decoded = codec.decode(side, opcode, payload)
        if decoded is not None:
            assert decoded.summary and not has_control(decoded.summary)
            assert len(decoded.summary) <= 120
            paths = decoded.generated + decoded.echoes
            out = codec.substitute(side, opcode, payload, dict.fromkeys(paths, 1))
            assert isinstance(out, bytes)
        else:
            assert codec.substitute(side, opcode, payload, {("id",): 1}) == payload
        reassembler = codec.reassembler(side)
        if reassembler is not None:
            units = reassembler.feed(opcode, payload)
            assert sum(len(u) for _, u in units) + reassembler.pending() == len(payload)


@given(st.lists(st.text(max_size=10), max_size=4), st.sampled_from(["/", "/socket.io/", "/mqtt"]))
def test_detect_never_raises(texts: list[str], path: str) -> None:
    first = [msg(S if i % 2 else C, t) for i, t in enumerate(texts)]
    first += [msg(C, t.encode("utf-8", "replace")) for t in texts]
    CODECS.detect(make_open(path), first)


def test_a_named_protocol_that_another_codec_recognises_is_a_misfit() -> None:
    """--protocol mqtt on a graphql connection: a misfit, named with what auto sees. A
    name auto cannot confirm but nothing contradicts (what the option is for), auto and
    none are not."""
    gql = make_open("/graphql", subprotocols=("graphql-transport-ws",))
    first = [msg(C, '{"type":"connection_init"}'), msg(S, '{"type":"connection_ack"}')]
    why = CODECS.misfit("mqtt", gql, first)
    assert why is not None and "not mqtt but graphql-transport-ws" in why
    assert CODECS.misfit("graphql-transport-ws", gql, first) is None
    assert CODECS.misfit("auto", gql, first) is None and CODECS.misfit("none", gql, first) is None
    plain = make_open("/feed")
    assert CODECS.misfit("stomp", plain, [msg(S, "tick 1"), msg(S, "tick 2")]) is None
    assert CODECS.misfit("mqtt", gql, []) is None
