"""A client's replies racing its requests (Codec.client_replies, Script._from_burst): the
relaxation lets a right client's reply come sooner or later than recorded; these pin
that a wrong one still fails, with the finding it deserves and the counts right."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from tests.core.replay.test_session import (
    MASK,
    MQTT_BURST,
    MQTT_LATE_PUBREL,
    FakeClient,
    _mqtt_ack,
    _mqtt_connect,
    _mqtt_publish,
    c,
    opening,
    rules,
    s,
    session_for,
)
from wstape.core.frames import OpCode, encode_close_body, encode_frame
from wstape.core.model import Close, Message, Opcode, Side
from wstape.core.replay.session import ReplaySession

B = Opcode.BINARY
MISMATCH, UNPLAYED = "REPLAY-MESSAGE-MISMATCH", "REPLAY-UNPLAYED"

Step = bytes | str | float
"""A unit the fake client sends (bytes in a binary message, text in a text one), or the
seconds it waits."""


def play(
    records: Sequence[object], target: str, steps: Sequence[Step], *extra: bytes, speed: float = 0
) -> tuple[ReplaySession, tuple[int, int]]:
    """Play ``steps`` against ``records``, close, end the run: the session, and the
    report's messages_expected and messages_matched."""
    session = session_for(records, speed=speed, timeout=2)
    client = FakeClient(session)
    assert client.handshake(target, *extra) == 101
    for step in steps:
        if isinstance(step, float):
            client.wait(step)
        else:
            client.send(step, OpCode.BINARY if isinstance(step, bytes) else OpCode.TEXT)
    client.wait(1.0)
    client.close(encode_close_body(1000, ""))
    client.wait(5.0)
    session.finish()
    [row] = session.report("replies").to_dict()["connections"]
    return session, (row["messages_expected"], row["messages_matched"])


def client_units(records: Sequence[object]) -> int:
    return sum(1 for r in records if isinstance(r, Message) and r.side is Side.CLIENT)


# -- MQTT ----------------------------------------------------------------------------------

MQTT = (b"Sec-WebSocket-Protocol: mqtt",)
P, A = _mqtt_publish, _mqtt_ack
M0 = [_mqtt_connect(60), P(12, "m0", 2)]  # (live packet ids: the recorded ones + 10)
M1, M2, M3 = P(13, "m1", 1), P(14, "m2", 1), P(15, "m3", 1)
REL, DISCONNECT = A("PUBREL", 12), b"\xe0\x00"


@pytest.mark.parametrize(
    ("records", "sent", "expected", "matched"),
    [
        # MQTT_BURST: m0 (QoS 2), PUBREC, m1, PUBREL, m2, PUBACK, PUBCOMP, PUBACK, DISCONNECT
        (MQTT_BURST, [M1, M2, DISCONNECT], [MISMATCH, UNPLAYED], 4),
        (MQTT_BURST, [M1, M2], [UNPLAYED], 4),
        (MQTT_BURST, [M1, A("PUBREL", 13), M2, DISCONNECT], [MISMATCH], 5),
        (MQTT_BURST, [A("PUBREL", 99), M1, M2, DISCONNECT], [MISMATCH], 4),
        (MQTT_BURST, [M1, M2, A("PUBREL", 99), DISCONNECT], [MISMATCH], 5),
        (MQTT_BURST, [REL, REL, M1, M2, DISCONNECT], [MISMATCH], 3),
        (MQTT_BURST, [M1, REL, REL, M2, DISCONNECT], [MISMATCH], 4),
        (MQTT_BURST, [M1, A("PUBACK", 12), M2, DISCONNECT], [MISMATCH], 5),
        (MQTT_BURST, [M1, A("PUBCOMP", 12), M2, DISCONNECT], [MISMATCH], 5),
        (MQTT_BURST, [P(13, "m1", 0), REL, M2, DISCONNECT], [MISMATCH], 5),
        (MQTT_BURST, [M1, REL, DISCONNECT, M2], [MISMATCH], 4),
        # MQTT_LATE_PUBREL: ..., m1, m2, PUBACKs, m3, PUBREL, ..., DISCONNECT; the end of
        # the recording: the PUBREL never comes, or what follows it does not.
        (MQTT_LATE_PUBREL, [M1, M2, M3], [UNPLAYED], 5),
        (MQTT_LATE_PUBREL, [M1, M2, M3, DISCONNECT], [MISMATCH, UNPLAYED], 5),
        (MQTT_LATE_PUBREL, [M1, M2, M3, REL], [UNPLAYED], 6),
        (MQTT_LATE_PUBREL, [REL, M1, M2, M3], [UNPLAYED], 6),
        (MQTT_LATE_PUBREL, [REL, REL, M1, M2, M3, DISCONNECT], [MISMATCH], 3),
    ],
    ids=[
        "no-pubrel",
        "no-pubrel-nor-disconnect",
        "pubrel-of-another-publish",
        "pubrel-of-an-id-never-used-sooner",
        "pubrel-of-an-id-never-used-later",
        "pubrel-sooner-twice",
        "pubrel-twice",
        "puback-for-pubrel",
        "pubcomp-for-pubrel",
        "qos-0-for-qos-1",
        "disconnect-before-a-request",
        "late-no-pubrel-nor-disconnect",
        "late-no-pubrel",
        "late-no-disconnect",
        "late-sooner-no-disconnect",
        "late-pubrel-twice",
    ],
)
def test_a_wrong_mqtt_reply_still_fails(
    records: list[object], sent: list[bytes], expected: list[str], matched: int
) -> None:
    session, row = play(records, "/mqtt", [*M0, *sent], *MQTT)
    assert rules(session) == expected
    assert row == (client_units(records), matched)


MQTT_TWO_REPLIES = [  # a PUBREL and a PUBACK (to the broker's PUBLISH 7), in that order
    opening(1, "/mqtt", subprotocols=("mqtt",), subprotocol="mqtt"),
    c(1, 0.01, _mqtt_connect(60), B),
    s(1, 0.02, b"\x20\x02\x00\x00", B),
    c(1, 0.03, P(2, "m0", 2), B),
    s(1, 0.031, A("PUBREC", 2), B),
    s(1, 0.032, P(7, "news", 1), B),
    c(1, 0.033, P(3, "m1", 1), B),
    c(1, 0.034, A("PUBREL", 2), B),
    c(1, 0.035, A("PUBACK", 7), B),
    c(1, 0.036, P(4, "m2", 1), B),
    s(1, 0.037, A("PUBACK", 3), B),
    s(1, 0.038, A("PUBCOMP", 2), B),
    s(1, 0.039, A("PUBACK", 4), B),
    c(1, 0.04, DISCONNECT, B),
    Close(1, 0.05, Side.CLIENT, 1000, ""),
]


@pytest.mark.parametrize(
    ("sent", "expected", "matched"),
    [
        ([M1, REL, A("PUBACK", 7), M2, DISCONNECT], [], 7),
        ([REL, A("PUBACK", 7), M1, M2, DISCONNECT], [], 7),
        ([M1, M2, REL, A("PUBACK", 7), DISCONNECT], [], 7),
        ([M1, A("PUBACK", 7), REL, M2, DISCONNECT], [MISMATCH], 5),
        ([A("PUBACK", 7), REL, M1, M2, DISCONNECT], [MISMATCH], 5),
        ([M1, REL, M2, DISCONNECT], [MISMATCH, UNPLAYED], 5),
        ([M1, REL, A("PUBACK", 17), M2, DISCONNECT], [MISMATCH], 6),
        ([M1, REL, A("PUBREC", 7), M2, DISCONNECT], [MISMATCH], 6),
    ],
    ids=[
        "as-recorded",
        "replies-sooner",
        "replies-later",
        "replies-swapped",
        "replies-swapped-sooner",
        "no-puback",
        "puback-wrong-id",
        "pubrec-for-puback",
    ],
)
def test_two_replies_keep_their_order_and_their_ids(
    sent: list[bytes], expected: list[str], matched: int
) -> None:
    """A PUBACK's packet identifier is the broker's: echoed as it is, never correlated."""
    session, row = play(MQTT_TWO_REPLIES, "/mqtt", [*M0, *sent], *MQTT)
    assert rules(session) == expected
    assert row == (7, matched)


def _mqtt_window(between: int) -> list[object]:
    """m0 (QoS 2), its PUBREC, ``between`` QoS 1 PUBLISHes, then the PUBREL."""
    return [
        opening(1, "/mqtt", subprotocols=("mqtt",), subprotocol="mqtt"),
        c(1, 0.01, _mqtt_connect(60), B),
        s(1, 0.02, b"\x20\x02\x00\x00", B),
        c(1, 0.03, P(2, "m0", 2), B),
        s(1, 0.031, A("PUBREC", 2), B),
        *[c(1, 0.04 + i / 1000, P(3 + i, f"m{i + 1}", 1), B) for i in range(between)],
        c(1, 0.2, A("PUBREL", 2), B),
        s(1, 0.21, A("PUBCOMP", 2), B),
        c(1, 0.3, DISCONNECT, B),
        Close(1, 0.4, Side.CLIENT, 1000, ""),
    ]


@pytest.mark.parametrize(("between", "expected"), [(64, []), (65, [MISMATCH])])
def test_a_reply_passes_at_most_the_next_64_units(between: int, expected: list[str]) -> None:
    """The PUBREL sent right after its PUBREC though recorded ``between`` PUBLISHes later:
    the window is the 64 recorded units after the one due (a reply further on is judged
    in its turn: a mismatch, never a pass of something else)."""
    sent = [P(13 + i, f"m{i + 1}", 1) for i in range(between)]
    session, row = play(_mqtt_window(between), "/mqtt", [*M0, REL, *sent, DISCONNECT], *MQTT)
    assert rules(session) == expected
    assert row == (between + 4, between + 4) if not expected else row[1] < row[0]


def test_a_request_passes_no_server_unit_without_a_reply_between() -> None:
    """m2 is recorded after the broker's PUBACK of m1 (no reply of the client's between):
    sent before m1 it is the concurrent-requests rule's (no server unit between), which
    this is not; REPLAY-MESSAGE-MISMATCH."""
    records = [
        opening(1, "/mqtt", subprotocols=("mqtt",), subprotocol="mqtt"),
        c(1, 0.01, _mqtt_connect(60), B),
        s(1, 0.02, b"\x20\x02\x00\x00", B),
        c(1, 0.03, P(3, "m1", 1), B),
        s(1, 0.031, A("PUBACK", 3), B),
        c(1, 0.032, P(4, "m2", 1), B),
        s(1, 0.033, A("PUBACK", 4), B),
        c(1, 0.04, DISCONNECT, B),
        Close(1, 0.05, Side.CLIENT, 1000, ""),
    ]
    session, row = play(records, "/mqtt", [_mqtt_connect(60), M2, M1, DISCONNECT], *MQTT)
    assert MISMATCH in rules(session)
    assert row[1] < row[0]


# -- Socket.IO, JSON-RPC, STOMP --------------------------------------------------------------

SIO_TARGET = "/socket.io/?EIO=4&transport=websocket&t=1"
SIO = [  # the server asks (ack id 7) while the client emits b, c with acks of its own
    opening(1, "/socket.io/?EIO=4&transport=websocket&t=111"),
    s(1, 0.001, '0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'),
    c(1, 0.002, "40"),
    s(1, 0.003, '40{"sid":"y"}'),
    c(1, 0.01, '421["a"]'),
    s(1, 0.5, '427["question"]'),
    c(1, 0.6, '422["b"]'),
    c(1, 0.61, '437["ok"]'),
    c(1, 0.62, '423["c"]'),
    s(1, 0.63, "431[1]"),
    s(1, 0.64, "432[2]"),
    s(1, 0.65, "433[3]"),
    c(1, 0.7, "41"),
    Close(1, 0.8, Side.CLIENT, 1000, ""),
]
SIO_START: list[Step] = ["40", '421["a"]', 0.6]


def _rpc(method: str, ident: object) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": [], "id": ident})


def _result(ident: object, result: object) -> str:
    return json.dumps({"jsonrpc": "2.0", "result": result, "id": ident})


RPC_TARGET = "/rpc"
RPC = [  # the server calls ask (id s1) while the client calls b, c
    opening(1, "/rpc", subprotocols=("jsonrpc",), subprotocol="jsonrpc"),
    c(1, 0.01, _rpc("a", 1)),
    s(1, 0.02, _result(1, "A")),
    s(1, 0.5, _rpc("ask", "s1")),
    c(1, 0.6, _rpc("b", 2)),
    c(1, 0.61, _result("s1", "yes")),
    c(1, 0.62, _rpc("c", 3)),
    s(1, 0.63, _result(2, "B")),
    s(1, 0.64, _result(3, "C")),
    Close(1, 0.8, Side.CLIENT, 1000, ""),
]
RPC_START: list[Step] = [_rpc("a", 1), 0.6]


def _stomp(command: str, *headers: str, body: str = "") -> str:
    return command + "\n" + "".join(h + "\n" for h in headers) + "\n" + body + "\x00"


STOMP_TARGET = "/stomp"
STOMP = [  # a MESSAGE to ack (ack:a1) while the client sends two SENDs with receipts
    opening(1, "/stomp", subprotocols=("v12.stomp",), subprotocol="v12.stomp"),
    c(1, 0.01, _stomp("CONNECT", "accept-version:1.2", "host:/")),
    s(1, 0.02, _stomp("CONNECTED", "version:1.2")),
    c(1, 0.03, _stomp("SUBSCRIBE", "id:sub-0", "destination:/q", "ack:client-individual")),
    s(1, 0.5, _stomp("MESSAGE", "subscription:sub-0", "message-id:m1", "ack:a1", body="x")),
    c(1, 0.6, _stomp("SEND", "destination:/r", "receipt:r1", body="1")),
    c(1, 0.61, _stomp("ACK", "id:a1")),
    c(1, 0.62, _stomp("SEND", "destination:/r", "receipt:r2", body="2")),
    s(1, 0.63, _stomp("RECEIPT", "receipt-id:r1")),
    s(1, 0.64, _stomp("RECEIPT", "receipt-id:r2")),
    c(1, 0.7, _stomp("DISCONNECT")),
    Close(1, 0.8, Side.CLIENT, 1000, ""),
]
STOMP_START: list[Step] = [
    _stomp("CONNECT", "accept-version:1.2", "host:/"),
    _stomp("SUBSCRIBE", "id:sub-0", "destination:/q", "ack:client-individual"),
    0.6,
]
SEND1 = _stomp("SEND", "destination:/r", "receipt:r1", body="1")
SEND2 = _stomp("SEND", "destination:/r", "receipt:r2", body="2")

PROTOCOLS = {  # records, target, headers, start, the two requests, the reply, the end
    "socketio": (SIO, SIO_TARGET, (), SIO_START, '422["b"]', '423["c"]', '437["ok"]', ["41"]),
    "jsonrpc": (
        RPC,
        RPC_TARGET,
        (b"Sec-WebSocket-Protocol: jsonrpc",),
        RPC_START,
        _rpc("b", 2),
        _rpc("c", 3),
        _result("s1", "yes"),
        [],
    ),
    "stomp": (
        STOMP,
        STOMP_TARGET,
        (b"Sec-WebSocket-Protocol: v12.stomp",),
        STOMP_START,
        SEND1,
        SEND2,
        _stomp("ACK", "id:a1"),
        [_stomp("DISCONNECT")],
    ),
}
WRONG = {  # a reply to another unit of the server's, and one of another kind
    "socketio": ('438["ok"]', '467["ok"]'),
    "jsonrpc": (
        _result("s2", "yes"),
        json.dumps({"jsonrpc": "2.0", "error": {"code": 1, "message": "no"}, "id": "s1"}),
    ),
    "stomp": (_stomp("ACK", "id:a2"), _stomp("NACK", "id:a1")),
}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
@pytest.mark.parametrize("order", ["as-recorded", "sooner", "later"])
def test_a_right_reply_passes_either_way(name: str, order: str) -> None:
    records, target, extra, start, one, two, reply, end = PROTOCOLS[name]
    sent = {"as-recorded": [one, reply, two], "sooner": [reply, one, two]}.get(
        order, [one, two, reply]
    )
    session, row = play(records, target, [*start, *sent, *end], *extra, speed=1)
    assert rules(session) == []
    assert row == (client_units(records), client_units(records))


@pytest.mark.parametrize(
    ("name", "case"),
    [
        (name, case)
        for name in sorted(PROTOCOLS)
        for case in ("no-reply", "twice", "wrong-id", "wrong-kind", "after-the-end")
        if PROTOCOLS[name][-1] or case != "after-the-end"
    ],
)
def test_a_wrong_reply_still_fails(name: str, case: str) -> None:
    """Socket.IO: an ACK of another ack id, a BINARY_ACK for an ACK; JSON-RPC: the
    response to a request the server never sent, an error for a result; STOMP: an ACK
    of another message, a NACK for an ACK. And a reply never sent, sent twice, or sent
    after the client's last unit (a Socket.IO DISCONNECT, a STOMP DISCONNECT; JSON-RPC
    has none: its reply then is its later order, a right client)."""
    records, target, extra, start, one, two, reply, end = PROTOCOLS[name]
    wrong_id, wrong_kind = WRONG[name]
    sent = {
        "no-reply": [one, two, *end],
        "twice": [one, reply, reply, two, *end],
        "wrong-id": [one, wrong_id, two, *end],
        "wrong-kind": [one, wrong_kind, two, *end],
        "after-the-end": [one, two, *end, reply],
    }[case]
    session, (expected, matched) = play(records, target, [*start, *sent], *extra, speed=1)
    found = rules(session)
    assert MISMATCH in found or UNPLAYED in found, found
    assert matched < expected


# -- a reply before what it answers could reach the client --------------------------------


MQTT_SLOW = [  # the broker's PUBREC 0.47 s after the PUBLISH it answers
    opening(1, "/mqtt", subprotocols=("mqtt",), subprotocol="mqtt"),
    c(1, 0.01, _mqtt_connect(60), B),
    s(1, 0.02, b"\x20\x02\x00\x00", B),
    c(1, 0.03, P(2, "m0", 2), B),
    s(1, 0.5, A("PUBREC", 2), B),
    c(1, 0.6, P(3, "m1", 1), B),
    c(1, 0.61, A("PUBREL", 2), B),
    s(1, 0.62, A("PUBACK", 3), B),
    s(1, 0.63, A("PUBCOMP", 2), B),
    c(1, 0.7, DISCONNECT, B),
    Close(1, 0.8, Side.CLIENT, 1000, ""),
]
MQTT_SLOW_IN_ORDER = [*MQTT_SLOW[:5], MQTT_SLOW[6], MQTT_SLOW[5], *MQTT_SLOW[7:]]


@pytest.mark.parametrize(
    ("records", "sent", "expected"),
    [
        (MQTT_SLOW, [*M0, 0.6, M1, REL, DISCONNECT], []),
        (MQTT_SLOW, [*M0, 0.6, REL, M1, DISCONNECT], []),
        (MQTT_SLOW_IN_ORDER, [*M0, 0.6, REL, M1, DISCONNECT], []),
        (MQTT_SLOW, [*M0, REL, 0.6, M1, DISCONNECT], [MISMATCH]),
        (MQTT_SLOW, [*M0, REL, M1, DISCONNECT], [MISMATCH]),
        (MQTT_SLOW_IN_ORDER, [*M0, REL, 0.6, M1, DISCONNECT], [MISMATCH]),
    ],
    ids=["after", "after-sooner", "after-in-order", "before", "all-before", "before-in-order"],
)
def test_an_mqtt_reply_before_what_it_answers_went_out_fails(
    records: list[object], sent: list[Step], expected: list[str]
) -> None:
    """A PUBREL sent before the broker's PUBREC (it came early, was queued, and matched
    once the PUBREC went out) answers nothing the client had: REPLAY-MESSAGE-MISMATCH,
    whether the recording has it before or after the next PUBLISH, and it is not counted
    matched."""
    session, row = play(records, "/mqtt", sent, *MQTT, speed=1)
    assert rules(session) == expected
    assert row == (5, 5 - len(expected))
    if expected:
        [found] = [v for v in session.violations if v.rule == MISMATCH]
        assert found.message == (
            "client sent mqtt PUBREL id=12 before the server's mqtt PUBREC id=12, which it "
            "answers, could reach it"
        )
        assert found.expected == "mqtt PUBREL id=2 after the server's PUBREC"


def test_a_reply_in_the_read_that_brought_what_it_answers_fails() -> None:
    """At --speed 0 the PUBREC goes out as the PUBLISH arrives; a PUBREL in the same read
    as that PUBLISH was written before the PUBREC could reach the client."""
    session = session_for(MQTT_BURST, speed=0)
    client = FakeClient(session)
    client.handshake("/mqtt", *MQTT)
    client.send(_mqtt_connect(60), OpCode.BINARY)
    client.write(
        encode_frame(OpCode.BINARY, P(12, "m0", 2), mask_key=MASK)
        + encode_frame(OpCode.BINARY, REL, mask_key=MASK)
    )
    for unit in (M1, M2, DISCONNECT):
        client.send(unit, OpCode.BINARY)
    client.close(encode_close_body(1000, ""))
    assert rules(session) == [MISMATCH]
    [row] = session.report("replies").to_dict()["connections"]
    assert (row["messages_expected"], row["messages_matched"]) == (6, 5)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
@pytest.mark.parametrize("wait", [False, True], ids=["all-at-once", "then-waits"])
def test_a_reply_before_the_server_unit_it_answers_went_out_fails(name: str, wait: bool) -> None:
    """A Socket.IO ACK before the server's EVENT with that ack id, a JSON-RPC response
    before the server's request, a STOMP ACK before its MESSAGE (each 0.5 s after the
    client's previous unit): the client's stack cannot have had it."""
    records, target, extra, start, one, two, reply, end = PROTOCOLS[name]
    setup = [step for step in start if not isinstance(step, float)]
    steps = [*setup, reply, *([0.6] if wait else []), one, two, *end]
    session, (expected, matched) = play(records, target, steps, *extra, speed=1)
    assert rules(session) == [MISMATCH]
    assert matched == expected - 1
    [found] = [v for v in session.violations if v.rule == MISMATCH]
    assert "which it answers, could reach it" in found.message
