"""Codec.client_replies and Codec.answers: which client units answer which server units
(replay lets a reply race the client's requests, never come before what it answers)."""

from __future__ import annotations

import pytest

from wstape.core.codecs import CODECS
from wstape.core.model import Opcode, Side


def _stomp(command: str, *headers: str) -> bytes:
    return (command + "\n" + "".join(h + "\n" for h in headers) + "\n\x00").encode()


CASES = [
    # (codec, reply, server unit, answers)
    ("mqtt", b"\x62\x02\x00\x02", b"\x50\x02\x00\x02", True),  # PUBREL 2 <- PUBREC 2
    ("mqtt", b"\x62\x02\x00\x02", b"\x50\x02\x00\x04", False),  # PUBREC 4
    ("mqtt", b"\x62\x02\x00\x02", b"\x40\x02\x00\x02", False),  # a PUBACK is not its trigger
    ("mqtt", b"\x40\x02\x00\x07", b"\x32\x07\x00\x01a\x00\x07hi", True),  # PUBACK <- PUBLISH
    ("mqtt", b"\x70\x02\x00\x03", b"\x62\x02\x00\x03", True),  # PUBCOMP <- PUBREL
    ("socketio", b'433["ok"]', b'423["question"]', True),
    ("socketio", b'433["ok"]', b'424["question"]', False),
    ("socketio", b'43/admin,3["ok"]', b'423["question"]', False),  # another namespace
    (
        "jsonrpc",
        b'{"jsonrpc":"2.0","result":5,"id":"s1"}',
        b'{"jsonrpc":"2.0","method":"add","params":[2,3],"id":"s1"}',
        True,
    ),
    (
        "jsonrpc",
        b'{"jsonrpc":"2.0","result":5,"id":"s1"}',
        b'{"jsonrpc":"2.0","method":"add","params":[2,3],"id":"s2"}',
        False,
    ),
    (
        "jsonrpc",
        b'{"jsonrpc":"2.0","result":5,"id":"s1"}',
        b'[{"jsonrpc":"2.0","method":"a","id":"s1"}]',
        True,
    ),
    (
        "jsonrpc",
        b'{"jsonrpc":"2.0","result":5,"id":"s1"}',
        b'{"jsonrpc":"2.0","result":5,"id":"s1"}',
        False,
    ),
    (
        "stomp",
        _stomp("ACK", "id:a1"),
        _stomp("MESSAGE", "subscription:0", "message-id:1", "ack:a1"),
        True,
    ),
    (
        "stomp",
        _stomp("ACK", "id:a1"),
        _stomp("MESSAGE", "subscription:0", "message-id:2", "ack:a2"),
        False,
    ),
    (
        "stomp",
        _stomp("NACK", "message-id:2", "subscription:0"),
        _stomp("MESSAGE", "subscription:0", "message-id:2"),
        True,
    ),
    ("stomp", _stomp("ACK", "id:a1"), _stomp("RECEIPT", "receipt-id:a1"), False),
]


@pytest.mark.parametrize(("name", "reply", "server", "answers"), CASES)
def test_a_reply_answers_its_own_server_unit_only(
    name: str, reply: bytes, server: bytes, answers: bool
) -> None:
    codec = CODECS.get(name)
    opcode = Opcode.BINARY if name == "mqtt" else Opcode.TEXT
    ours = codec.decode(Side.CLIENT, opcode, reply)
    theirs = codec.decode(Side.SERVER, opcode, server)
    assert ours is not None and theirs is not None
    assert ours.kind in codec.client_replies
    assert codec.answers(ours, theirs) is answers


@pytest.mark.parametrize("name", ["graphql-transport-ws", "graphql-ws"])
def test_graphql_has_no_client_replies(name: str) -> None:
    assert not CODECS.get(name).client_replies
