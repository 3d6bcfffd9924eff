"""The detection shortcuts (a first-byte test before a JSON parse, facts kept per small
payload) agree with parsing each payload as detection did before them."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tests.helpers.records import make_open
from wstape.core.codecs import CODECS
from wstape.core.codecs.graphql import message_type
from wstape.core.codecs.jsonrpc import says_jsonrpc
from wstape.core.codecs.textutil import (
    SMALL_PAYLOAD_BYTES,
    by_payload,
    may_be_container,
    payload_json,
)
from wstape.core.model import Message, Opcode, Open, Side

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
objects = st.dictionaries(
    st.sampled_from(["type", "jsonrpc", "id", "method", "x"]),
    st.sampled_from(["2.0", "connection_init", "start", "subscribe", 2.0, 2, None, [], {}])
    | json_values,
)
whitespace = st.text(alphabet=" \t\n\r", max_size=3) | st.text(
    alphabet=" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\ufeff", max_size=2
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """JSON (objects, arrays, scalars) with odd whitespace before and after, cut JSON,
    bytes that are not UTF-8, and payloads on both sides of the kept size."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=SMALL_PAYLOAD_BYTES + 40))
    value: Any = draw(objects | st.lists(objects, max_size=3) | json_values)
    text = draw(whitespace) + json.dumps(value) + draw(whitespace)
    raw = text.encode("utf-8")
    if kind == 1:
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif kind == 2:
        raw = raw + b" " * draw(st.integers(0, 2 * SMALL_PAYLOAD_BYTES))
    elif kind == 3:
        raw = draw(st.binary(max_size=2)) + raw
    return raw


def old_message_type(payload: bytes) -> str | None:
    value = payload_json(payload)
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value["type"]  # type: ignore[no-any-return]
    return None


def old_says_jsonrpc(payload: bytes) -> bool:
    value = payload_json(payload)
    objs = value if isinstance(value, list) else [value]
    return any(isinstance(o, dict) and o.get("jsonrpc") == "2.0" for o in objs)


ODD = [
    b"\r{}",
    b"\n\t [1]",
    b"\x0c{}",
    b"\xef\xbb\xbf{}",
    b"\xc2\xa0{}",
    b" ",
    b"",
    b"{",
    b"\xff{}",
]


@given(payloads())
@example(ODD[0])
@example(ODD[1])
@example(ODD[2])
@example(ODD[3])
@example(ODD[4])
@example(ODD[8])
def test_a_payload_that_cannot_be_a_container_parses_to_none(payload: bytes) -> None:
    parsed = payload_json(payload)
    if isinstance(parsed, dict | list):
        assert may_be_container(payload)
    if not may_be_container(payload):
        assert not isinstance(parsed, dict | list)


@given(payloads())
@example(b'\r\n{"type":"connection_init","jsonrpc":"2.0"}')
@example(b'[{"jsonrpc":"2.0"}, 1]')
@example(b'"{\\"type\\":\\"x\\"}"')
@example(b'\x0c{"type":"x"}')
def test_the_kept_facts_are_what_parsing_says(payload: bytes) -> None:
    for _ in range(2):  # (asked anew, then kept)
        assert message_type(payload) == old_message_type(payload)
        assert says_jsonrpc(payload) == old_says_jsonrpc(payload)
        copy = bytes(bytearray(payload))  # equal bytes, another object
        assert message_type(copy) == old_message_type(payload)
        assert says_jsonrpc(copy) == old_says_jsonrpc(payload)


def test_by_payload_keeps_small_payloads_only_and_a_bounded_number() -> None:
    asked: list[bytes] = []

    def fact(payload: bytes) -> int:
        asked.append(payload)
        return len(payload)

    get = by_payload(fact, kept=4)
    small = b"x" * SMALL_PAYLOAD_BYTES
    assert get(small) == get(bytes(bytearray(small))) == SMALL_PAYLOAD_BYTES
    assert len(asked) == 1  # equal bytes: asked once
    big = small + b"x"
    assert get(big) == get(big) == SMALL_PAYLOAD_BYTES + 1
    assert len(asked) == 3  # a longer payload is never kept
    view = bytearray(b"ab")
    assert get(view) == get(view) == 2  # type: ignore[arg-type]
    assert len(asked) == 5  # nor one that is not bytes (a bytearray can change)
    for i in range(5):
        get(bytes([i]))
    asked.clear()
    get(bytes([0]))
    assert asked == [bytes([0])]  # pushed out by the four after it: asked again


class _Weird(bytes):
    def __hash__(self) -> int:
        return 0


def test_by_payload_asks_of_a_bytes_subclass_each_time() -> None:
    asked: list[bytes] = []
    get = by_payload(lambda p: asked.append(p) or len(p))
    get(_Weird(b'{"type":"x"}'))
    get(_Weird(b'{"type":"x"}'))
    assert len(asked) == 2
    assert message_type(_Weird(b'{"type":"x"}')) == "x"


def old_graphql_detect(name: str, open_: Open, first: list[Message]) -> bool:
    codec = CODECS.get(name)
    chosen = open_.subprotocol or (open_.subprotocols[0] if open_.subprotocols else None)
    if chosen is not None and chosen.lower() in {p.lower() for p in codec.subprotocols}:
        return True
    if open_.subprotocol or open_.subprotocols:
        return False
    seen = {t for t in map(old_message_type, (m.payload for m in first)) if t is not None}
    distinctive: frozenset[str] = codec.distinctive
    return "connection_init" in seen and bool(seen & distinctive)


subprotocols = st.lists(
    st.sampled_from(["", "graphql-ws", "GRAPHQL-TRANSPORT-WS", "jsonrpc", "mqtt", "x"]),
    max_size=2,
)
typed = st.sampled_from(
    ["connection_init", "start", "subscribe", "next", "ka", "ping", "other"]
).map(lambda t: json.dumps({"type": t}).encode())


@given(
    subprotocols,
    st.none() | st.sampled_from(["", "graphql-ws", "jsonrpc", "x"]),
    st.lists(st.tuples(st.sampled_from(Side), st.sampled_from(Opcode), payloads() | typed)),
)
def test_detection_agrees_with_parsing_each_payload(
    offered: list[str], chosen: str | None, sent: list[tuple[Side, Opcode, bytes]]
) -> None:
    op = make_open(1, "/graphql", subprotocols=tuple(offered), subprotocol=chosen)
    first = [Message(1, 0.0, side, opcode, payload) for side, opcode, payload in sent]
    for name in ("graphql-transport-ws", "graphql-ws"):
        assert CODECS.get(name).detect(op, first) == old_graphql_detect(name, op, first)
    rpc = CODECS.get("jsonrpc")
    negotiated = rpc.detect(op, []) if (op.subprotocol or op.subprotocols) else False
    assert rpc.detect(op, first) == (negotiated or any(old_says_jsonrpc(m.payload) for m in first))
