"""graphql-transport-ws (graphql-ws PROTOCOL.md) and the legacy graphql-ws protocol."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control
from wstape.core.codecs import CODECS
from wstape.core.codecs.base import Heartbeat, HeartbeatRole
from wstape.core.model import Opcode, Side

NEW = CODECS.get("graphql-transport-ws")
OLD = CODECS.get("graphql-ws")
C, S = Side.CLIENT, Side.SERVER
UUID = "8f3c2a1b-6d2e-4c7a-9b1f-0e5d4c3b2a10"


def enc(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode("utf-8")


@pytest.mark.parametrize(
    ("side", "message", "summary", "generated", "echoes"),
    [
        (C, {"type": "connection_init"}, "connection_init", (), ()),
        (
            C,
            {"type": "connection_init", "payload": {"token": "s3cret"}},
            "connection_init {token}",
            (),
            (),
        ),
        (S, {"type": "connection_ack"}, "connection_ack", (), ()),
        (
            C,
            {"id": UUID, "type": "subscribe", "payload": {"query": "subscription {\n  hello\n}"}},
            "subscribe id=8f3c2a1b… subscription { hello }",
            (("id",),),
            (),
        ),
        (
            C,
            {
                "id": "1",
                "type": "subscribe",
                "payload": {"query": "{ hello }", "variables": {"a": 1}},
            },
            'subscribe id=1 { hello } {"a":1}',
            (("id",),),
            (),
        ),
        (
            S,
            {"id": "1", "type": "next", "payload": {"data": {"hello": "world"}}},
            'next id=1 {"data":{"hello":"world"}}',
            (),
            (("id",),),
        ),
        (
            S,
            {"id": "1", "type": "error", "payload": [{"message": "Cannot query field"}]},
            'error id=1 "Cannot query field"',
            (),
            (("id",),),
        ),
        (S, {"id": "1", "type": "complete"}, "complete id=1", (), (("id",),)),
        (C, {"id": "1", "type": "complete"}, "complete id=1", (("id",),), ()),
        (C, {"type": "ping"}, "ping", (), ()),
        (S, {"type": "pong", "payload": {"t": 1}}, "pong {t}", (), ()),
    ],
)
def test_graphql_transport_ws(
    side: Side,
    message: dict[str, Any],
    summary: str,
    generated: tuple[Any, ...],
    echoes: tuple[Any, ...],
) -> None:
    decoded = NEW.decode(side, Opcode.TEXT, enc(message))
    assert decoded is not None
    assert decoded.kind == message["type"]
    assert decoded.value == message
    assert decoded.summary == summary
    assert decoded.generated == generated
    assert decoded.echoes == echoes


def test_transport_ws_heartbeats_either_way() -> None:
    for side in (C, S):
        ping = NEW.decode(side, Opcode.TEXT, b'{"type":"ping"}')
        pong = NEW.decode(side, Opcode.TEXT, b'{"type":"pong"}')
        assert ping is not None and pong is not None
        assert ping.heartbeat == Heartbeat(HeartbeatRole.PING, "graphql")
        assert pong.heartbeat == Heartbeat(HeartbeatRole.PONG, "graphql")
    assert NEW.decode(S, Opcode.TEXT, b'{"type":"connection_ack"}').heartbeat is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("side", "message", "generated", "echoes"),
    [
        (C, {"type": "connection_init", "payload": {}}, (), ()),
        (S, {"type": "connection_ack"}, (), ()),
        (S, {"type": "connection_error", "payload": {"message": "no"}}, (), ()),
        (
            C,
            {"id": "1", "type": "start", "payload": {"query": "subscription { x }"}},
            (("id",),),
            (),
        ),
        (S, {"id": "1", "type": "data", "payload": {"data": {"x": 1}}}, (), (("id",),)),
        (S, {"id": "1", "type": "error", "payload": {"message": "bad"}}, (), (("id",),)),
        (S, {"id": "1", "type": "complete"}, (), (("id",),)),
        (C, {"id": "1", "type": "stop"}, (("id",),), ()),
        (C, {"type": "connection_terminate"}, (), ()),
        (C, {"id": 3, "type": "start", "payload": {"query": "{ x }"}}, (("id",),), ()),
    ],
)
def test_legacy_graphql_ws(
    side: Side, message: dict[str, Any], generated: tuple[Any, ...], echoes: tuple[Any, ...]
) -> None:
    decoded = OLD.decode(side, Opcode.TEXT, enc(message))
    assert decoded is not None
    assert (decoded.kind, decoded.value, decoded.generated, decoded.echoes) == (
        message["type"],
        message,
        generated,
        echoes,
    )
    assert decoded.heartbeat is None


def test_legacy_keep_alive_is_a_timer_beat() -> None:
    decoded = OLD.decode(S, Opcode.TEXT, b'{"type":"ka"}')
    assert decoded is not None
    assert decoded.heartbeat == Heartbeat(HeartbeatRole.BEAT, "graphql-ws", timer=True)
    assert decoded.summary == "ka"


@pytest.mark.parametrize(
    ("codec_name", "payload"),
    [
        ("graphql-transport-ws", b'{"type":"start","id":"1"}'),  # legacy only
        ("graphql-transport-ws", b'{"type":"ka"}'),
        ("graphql-ws", b'{"type":"subscribe","id":"1"}'),  # new only
        ("graphql-ws", b'{"type":"ping"}'),
        ("graphql-ws", b'{"type":"next","id":"1"}'),
        ("graphql-transport-ws", b'{"kind":"next"}'),
        ("graphql-transport-ws", b'{"type":5}'),
        ("graphql-transport-ws", b'["next"]'),
        ("graphql-transport-ws", b"not json"),
        ("graphql-transport-ws", b'{"type":"next"'),
        ("graphql-transport-ws", b'\xff{"type":"ping"}'),
    ],
)
def test_not_the_protocol(codec_name: str, payload: bytes) -> None:
    assert CODECS.get(codec_name).decode(S, Opcode.TEXT, payload) is None


def test_substitute_keeps_the_bytes_around_the_id() -> None:
    recorded = b'{"id": "1a2b",  "type":"next","payload":{"data":{"id":"1a2b"}}}'
    out = NEW.substitute(S, Opcode.TEXT, recorded, {("id",): UUID})
    assert out == recorded.replace(b'"1a2b",', f'"{UUID}",'.encode(), 1)
    decoded = NEW.decode(S, Opcode.TEXT, out)
    assert decoded is not None and decoded.value["id"] == UUID
    assert decoded.value["payload"] == {"data": {"id": "1a2b"}}  # only the correlated path


def test_substitute_leaves_what_it_cannot_read() -> None:
    assert NEW.substitute(S, Opcode.TEXT, b"nope", {("id",): "x"}) == b"nope"
    assert (
        NEW.substitute(S, Opcode.TEXT, b'{"type":"x","id":1}', {("id",): "x"})
        == b'{"type":"x","id":1}'
    )
    same = b'{"type":"next","id":"1"}'
    assert NEW.substitute(S, Opcode.TEXT, same, {("payload", "x"): 1}) == same


def test_non_ascii_survives_substitution() -> None:
    recorded = '{"type":"next","id":"1","payload":{"data":{"msg":"héllo 你好"}}}'.encode()
    out = NEW.substitute(S, Opcode.TEXT, recorded, {("id",): "ü"})
    assert out == '{"type":"next","id":"ü","payload":{"data":{"msg":"héllo 你好"}}}'.encode()


ids = st.text(max_size=10) | st.integers(0, 10**6)


@given(st.sampled_from(["next", "error", "complete"]), ids, ids)
def test_substituted_id_decodes(mtype: str, old: Any, new: Any) -> None:
    recorded = enc({"type": mtype, "id": old, "payload": {"data": {"n": 1}}})
    out = NEW.substitute(S, Opcode.TEXT, recorded, {("id",): new})
    decoded = NEW.decode(S, Opcode.TEXT, out)
    assert decoded is not None and decoded.value["id"] == new


@given(
    st.binary(max_size=40), st.sampled_from([C, S]), st.sampled_from([Opcode.TEXT, Opcode.BINARY])
)
def test_decode_never_raises(payload: bytes, side: Side, opcode: Opcode) -> None:
    for codec in (NEW, OLD):
        decoded = codec.decode(side, opcode, payload)
        assert decoded is None or not has_control(decoded.summary)
        codec.substitute(side, opcode, payload, {("id",): "x"})


@given(
    st.sampled_from(["subscribe", "start", "next", "data", "error", "connection_init", "ping"]),
    st.text(max_size=12),
)
def test_summaries_never_hold_control_characters(mtype: str, text: str) -> None:
    message = {"type": mtype, "id": text, "payload": {"query": text, text: text}}
    for codec in (NEW, OLD):
        decoded = codec.decode(C, Opcode.TEXT, enc(message))
        if decoded is not None:
            assert not has_control(decoded.summary)
            assert len(decoded.summary) <= 120
