"""JSON-RPC 2.0: the examples of the JSON-RPC 2.0 specification, section 7."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control
from wstape.core.codecs import CODECS
from wstape.core.model import Opcode, Side

CODEC = CODECS.get("jsonrpc")
C, S = Side.CLIENT, Side.SERVER


def decode(side: Side, text: str) -> Any:
    return CODEC.decode(side, Opcode.TEXT, text.encode("utf-8"))


@pytest.mark.parametrize(
    ("side", "text", "kind", "summary", "generated", "echoes"),
    [
        # rpc call with positional parameters
        (
            C,
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            "request",
            "request 1 subtract [42,23]",
            (("id",),),
            (),
        ),
        (
            S,
            '{"jsonrpc": "2.0", "result": 19, "id": 1}',
            "response",
            "response 1 19",
            (),
            (("id",),),
        ),
        # rpc call with named parameters
        (
            C,
            '{"jsonrpc": "2.0", "method": "subtract", '
            '"params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
            "request",
            'request 3 subtract {"subtrahend":23,"minuend":42}',
            (("id",),),
            (),
        ),
        # a notification
        (
            C,
            '{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}',
            "notification",
            "notification update [1,2,3,4,5]",
            (),
            (),
        ),
        (
            C,
            '{"jsonrpc": "2.0", "method": "foobar"}',
            "notification",
            "notification foobar",
            (),
            (),
        ),
        # rpc call of non-existent method
        (
            S,
            '{"jsonrpc": "2.0", '
            '"error": {"code": -32601, "message": "Method not found"}, "id": "1"}',
            "error",
            "error 1 -32601 Method not found",
            (),
            (("id",),),
        ),
        # rpc call with invalid JSON: the error has a null id, nothing to correlate
        (
            S,
            '{"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": null}',
            "error",
            "error null -32700 Parse error",
            (),
            (),
        ),
        # a server that calls the client: its id, which the client's response echoes as is
        (
            S,
            '{"jsonrpc": "2.0", "method": "ping", "id": "s-1"}',
            "request",
            "request s-1 ping",
            (),
            (),
        ),
        (
            C,
            '{"jsonrpc": "2.0", "result": "pong", "id": "s-1"}',
            "response",
            'response s-1 "pong"',
            (),
            (),
        ),
        # rpc-websockets' event notification from the server
        (
            S,
            '{"jsonrpc":"2.0","notification":"feedUpdated","method":"feedUpdated","params":[1]}',
            "notification",
            "notification feedUpdated [1]",
            (),
            (),
        ),
    ],
)
def test_spec_examples(
    side: Side, text: str, kind: str, summary: str, generated: Any, echoes: Any
) -> None:
    decoded = decode(side, text)
    assert decoded is not None
    assert decoded.kind == kind
    assert decoded.value == json.loads(text)
    assert decoded.summary == summary
    assert (decoded.generated, decoded.echoes) == (generated, echoes)
    assert decoded.heartbeat is None


BATCH = """[
    {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
    {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
    {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
    {"foo": "boo"},
    {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
    {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
]"""
BATCH_REPLY = """[
    {"jsonrpc": "2.0", "result": 7, "id": "1"},
    {"jsonrpc": "2.0", "result": 19, "id": "2"},
    {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": null},
    {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
    {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
]"""


def test_spec_batch() -> None:
    decoded = decode(C, BATCH)
    assert decoded is not None
    assert decoded.kind == "batch"
    assert decoded.generated == ((0, "id"), (2, "id"), (4, "id"), (5, "id"))
    assert decoded.summary == (
        "batch of 6: request 1 sum, notification notify_hello, request 2 subtract, invalid, "
        "request 5 foo.get, request 9 get_data"
    )
    reply = decode(S, BATCH_REPLY)
    assert reply is not None
    assert reply.kind == "batch"
    assert reply.echoes == ((0, "id"), (1, "id"), (3, "id"), (4, "id"))


def test_batch_of_notifications_has_nothing_to_correlate() -> None:
    decoded = decode(
        C,
        '[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},'
        '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
    )
    assert decoded is not None
    assert decoded.kind == "batch"
    assert decoded.generated == ()


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',  # invalid JSON
        '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',  # invalid Request object
        '{"jsonrpc": "2.0", "method": "x", "params": "bar"}',  # params neither array nor object
        "[]",  # an empty batch
        "[1]",
        "[1,2,3]",
        '{"method": "subtract", "params": [42, 23], "id": 1}',  # JSON-RPC 1.0
        '{"jsonrpc": "2.0", "result": 1}',  # a response needs an id
        '{"jsonrpc": "2.0", "result": 1, "error": {}, "id": 1}',
        '{"jsonrpc": "2.0", "method": "m", "id": [1]}',
        '"2.0"',
        "",
    ],
)
def test_not_jsonrpc(text: str) -> None:
    assert decode(C, text) is None


def test_substitute_keeps_everything_but_the_id() -> None:
    recorded = b'{"jsonrpc": "2.0",  "result": {"id": 1}, "id": 1}'
    out = CODEC.substitute(S, Opcode.TEXT, recorded, {("id",): "9b2f"})
    assert out == b'{"jsonrpc": "2.0",  "result": {"id": 1}, "id": "9b2f"}'
    batch = BATCH_REPLY.encode()
    out = CODEC.substitute(S, Opcode.TEXT, batch, {(0, "id"): 100, (4, "id"): 101})
    assert out == batch.replace(b'"id": "1"}', b'"id": 100}').replace(b'"id": "9"}', b'"id": 101}')
    assert CODEC.substitute(S, Opcode.TEXT, b"[1]", {(0, "id"): 1}) == b"[1]"


def test_detection_by_content_or_subprotocol() -> None:
    from tests.core.codecs.helpers import make_open, msg

    assert CODEC.detect(make_open("/rpc"), [msg(C, '{"jsonrpc":"2.0","method":"a","id":1}')])
    assert CODEC.detect(make_open("/rpc"), [msg(C, '[{"jsonrpc":"2.0","method":"a","id":1}]')])
    assert CODEC.detect(make_open("/rpc", ("json-rpc",), "json-rpc"), [])
    assert CODEC.detect(make_open("/rpc", ("jsonrpc",)), [])
    assert not CODEC.detect(make_open("/rpc"), [msg(C, '{"method":"a","id":1}'), msg(S, "hi")])


ids = st.none() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
params = st.lists(st.integers() | st.text(max_size=4), max_size=3)


@given(st.text(max_size=8), params, ids, ids)
def test_hand_built_requests_and_substitution(
    method: str, args: list[Any], rid: Any, new: Any
) -> None:
    request = {"jsonrpc": "2.0", "method": method, "params": args, "id": rid}
    decoded = CODEC.decode(C, Opcode.TEXT, json.dumps(request).encode())
    assert decoded is not None
    assert decoded.kind == "request"
    assert decoded.value == request
    assert decoded.generated == ((("id",),) if rid is not None else ())
    assert not has_control(decoded.summary)
    response = json.dumps({"jsonrpc": "2.0", "result": args, "id": rid}, indent=1).encode()
    out = CODEC.substitute(S, Opcode.TEXT, response, {("id",): new})
    again = CODEC.decode(S, Opcode.TEXT, out)
    assert again is not None and again.value["id"] == new


@given(
    st.binary(max_size=30)
    | st.text(alphabet='[]{}",:0123456789jsonrpc.-2 ', max_size=30).map(str.encode)
)
def test_decode_never_raises(payload: bytes) -> None:
    for side in (C, S):
        decoded = CODEC.decode(side, Opcode.TEXT, payload)
        assert decoded is None or not has_control(decoded.summary)
        CODEC.substitute(side, Opcode.TEXT, payload, {("id",): 1, (0, "id"): 2})
