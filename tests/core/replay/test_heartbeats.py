"""Heartbeat plans: declared, from the codec, and detected from the recording's timing."""

from __future__ import annotations

import pytest

from wstape.core.codecs import CODECS
from wstape.core.errors import ConfigError
from wstape.core.model import Message, Opcode, Side
from wstape.core.replay.heartbeats import (
    HeartbeatAnalysis,
    HeartbeatPlan,
    ack_shaped,
    heartbeat_shaped,
    parse_heartbeat,
)

T = Opcode.TEXT


def msg(t: float, side: Side, payload: str | bytes, opcode: Opcode = T) -> Message:
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(1, t, side, opcode, data)


def c(t: float, payload: str | bytes, opcode: Opcode = T) -> Message:
    return msg(t, Side.CLIENT, payload, opcode)


def s(t: float, payload: str | bytes, opcode: Opcode = T) -> Message:
    return msg(t, Side.SERVER, payload, opcode)


def plan_of(messages: list[Message], **kw: object) -> HeartbeatPlan:
    analysis = HeartbeatAnalysis(**kw)  # type: ignore[arg-type]
    for m in messages:
        analysis.add(m)
    return analysis.plan()


ENGINEIO = [
    s(0.0, '0{"sid":"a","pingInterval":1000,"pingTimeout":1000}'),
    c(0.01, "40"),
    s(0.02, '40{"sid":"b"}'),
    s(1.0, "2"),
    c(1.002, "3"),
    s(2.0, "2"),
    c(2.001, "3"),
    s(3.0, "2"),
    c(3.003, "3"),
]


def test_a_reply_one_interval_later_is_the_other_sides_timer() -> None:
    # The client's '3' is always followed by the server's next '2', a second later: that is
    # the server's clock, not an answer. The server's '2' is answered within milliseconds.
    plan = plan_of(ENGINEIO)
    assert plan.source == "detected"
    assert plan.server_pings == {(T, b"2")}
    assert plan.client_pongs == {(T, b"3")}
    assert plan.client_pings == {} and plan.client_beats == frozenset()
    assert plan.skipped(Side.SERVER, (T, b"2")) and plan.timer((T, b"2"))
    assert plan.skipped(Side.CLIENT, (T, b"3"))
    assert not plan.skipped(Side.CLIENT, (T, b"40"))


def test_the_codec_says_the_same_for_socketio() -> None:
    from wstape.core.model import Open

    op = Open(1, 0.0, "GET", "ws", "h", 80, "/socket.io/?EIO=4&transport=websocket",
              "HTTP/1.1", (), 101, ())  # fmt: skip
    codec = CODECS.detect(op, ENGINEIO)
    assert codec is not None and codec.name == "socketio"
    plan = plan_of(ENGINEIO, codec=codec)
    assert plan.source == "socketio"
    assert plan.server_pings == {(T, b"2")} and plan.client_pongs == {(T, b"3")}


def test_a_client_ping_answered_at_once_is_a_request() -> None:
    messages = [
        c(0.0, '{"type":"hello"}'),
        s(0.01, '{"type":"welcome"}'),
        c(30.0, '{"type":"ping"}'),
        s(30.01, '{"type":"pong"}'),
        c(60.0, '{"type":"ping"}'),
        s(60.02, '{"type":"pong"}'),
    ]
    plan = plan_of(messages)
    assert plan.client_pings == {(T, b'{"type":"ping"}'): (T, b'{"type":"pong"}')}
    assert plan.server_replies == {(T, b'{"type":"pong"}')}
    assert plan.server_pings == frozenset()


def test_a_steady_unanswered_beat_is_a_keepalive() -> None:
    # STOMP server heart-beats: a bare EOL every second, nobody answers.
    messages = [c(0.0, "CONNECT\n\n\x00"), s(0.01, "CONNECTED\n\n\x00")]
    messages += [s(1.0 * i, "\n") for i in range(1, 6)]
    plan = plan_of(messages)
    assert plan.server_beats == {(T, b"\n")}
    assert plan.timer((T, b"\n"))


def test_data_is_not_a_heartbeat() -> None:
    # Different replies to the same request; irregular repeats; big repeated messages.
    messages = [c(0, "t"), s(0.01, "1"), c(1, "t"), s(1.01, "2")]
    messages += [s(t, "tick") for t in (2.0, 2.1, 5.0, 9.0)]
    messages += [s(10.0 + i, "x" * 100) for i in range(5)]
    assert plan_of(messages).empty


def test_detection_can_be_turned_off() -> None:
    assert plan_of(ENGINEIO, detect=False).empty


@pytest.mark.parametrize(
    ("spec", "side", "unit", "reply"),
    [
        ("client:ping=>pong", Side.CLIENT, (T, b"ping"), (T, b"pong")),
        ("server:2=>3", Side.SERVER, (T, b"2"), (T, b"3")),
        ("server:\\n", Side.SERVER, (T, b"\n"), None),
        ("client:hex:c000=>hex:d000", Side.CLIENT, (Opcode.BINARY, b"\xc0\x00"),
         (Opcode.BINARY, b"\xd0\x00")),
    ],
)  # fmt: skip
def test_declared_heartbeats(
    spec: str, side: Side, unit: tuple[Opcode, bytes], reply: tuple[Opcode, bytes] | None
) -> None:
    declared = parse_heartbeat(spec)
    assert (declared.side, declared.unit, declared.reply) == (side, unit, reply)
    plan = plan_of([], declared=[declared])
    assert plan.source == "declared"
    assert plan.skipped(side, unit)


@pytest.mark.parametrize("spec", ["ping", "browser:ping", "client:", "client:a=>", "server:hex:zz"])
def test_a_bad_declaration_is_one_config_error(spec: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_heartbeat(spec)
    assert e.value.option == "heartbeats"


def test_memory_is_bounded_by_distinct_small_units() -> None:
    analysis = HeartbeatAnalysis()
    for i in range(20_000):
        analysis.add(c(i * 0.001, f"msg {i}"))
    assert len(analysis._candidates) <= 4096


# -- detection takes only what looks like a heartbeat (QA: repeated data was "heartbeats")


def test_a_repeated_request_and_its_reply_are_data() -> None:
    # login, four transfers answered within 10 ms a second apart, logout: all data.
    transfer, done = '{"cmd":"transfer","to":"alice","amount":100}', '{"status":"done"}'
    messages = [c(0.01, '{"cmd":"login","user":"bob"}'), s(0.02, '{"ok":true}')]
    for i in range(1, 5):
        messages += [c(i + 0.02, transfer), s(i + 0.03, done)]
    messages += [c(4.52, '{"cmd":"logout"}'), s(4.53, '{"bye":true}')]
    assert plan_of(messages).empty


def test_a_repeated_unanswered_event_is_not_a_keepalive() -> None:
    messages = [c(0.01, '{"hello":1}'), s(0.02, '{"hi":1}')]
    messages += [c(float(k), '{"door":"open"}') for k in range(1, 5)]
    assert plan_of(messages).empty
    # ... while the same timing with a keep-alive's shape is one
    beats = [c(0.01, '{"hello":1}'), s(0.02, '{"hi":1}')]
    beats += [c(float(k), '{"type":"keepalive"}') for k in range(1, 5)]
    assert plan_of(beats).client_beats == {(T, b'{"type":"keepalive"}')}


def test_a_ping_whose_reply_is_data_is_not_a_heartbeat() -> None:
    messages = []
    for i in range(1, 5):
        messages += [c(float(i), "ping"), s(i + 0.01, '{"balance":100}')]
    assert plan_of(messages).empty


@pytest.mark.parametrize(
    "ack", ['{"status":"ok"}', '{"code":0}', '{"errcode":0,"errmsg":"ok"}', "ok", '"ACK"',
            '{"jsonrpc":"2.0","result":"pong","id":7}'],
)  # fmt: skip
def test_a_ping_answered_with_a_bare_acknowledgement_is_a_heartbeat(ack: str) -> None:
    """Many backends answer a keep-alive with a status, not a pong: still a heartbeat."""
    messages = [c(0.01, '{"hello":1}'), s(0.02, '{"hi":1}')]
    for i in range(1, 5):
        messages += [c(float(i), '{"type":"heartbeat"}'), s(i + 0.01, ack)]
    plan = plan_of(messages)
    assert plan.client_pings == {(T, b'{"type":"heartbeat"}'): (T, ack.encode())}
    assert ack_shaped(T, ack.encode()) and not heartbeat_shaped(T, b'{"balance":100}')
    assert not ack_shaped(T, b'{"balance":100}') and not ack_shaped(T, b'{"ok":[1,2]}')


@pytest.mark.parametrize(
    "payload",
    ["2", "3", "\n", "\r\n", "", "{}", "[]", "ping", '"pong"', "keep-alive", "Heartbeat",
     '{"type":"ping"}', '{"type":"pong","ts":1700000000000}', '{"op":"heartbeat","seq":3}',
     '{"event":"pusher:ping","data":{}}', '{"ping":1700000000}', '{"type":"clientPing"}',
     '["ping"]', '{"type":"ka"}', "42"],
)  # fmt: skip
def test_heartbeat_shapes(payload: str) -> None:
    assert heartbeat_shaped(T, payload.encode())


@pytest.mark.parametrize(
    "payload",
    ['{"status":"done"}', '{"cmd":"transfer","to":"alice","amount":100}', '{"door":"open"}',
     "tick", "hello", '{"type":"shipping"}', '{"type":"say","text":"ping"}', "null", "true",
     '{"a":1,"b":2,"c":3,"d":4,"ping":5}', '{"type":"ping","x":"' + "y" * 200 + '"}'],
)  # fmt: skip
def test_data_shapes(payload: str) -> None:
    assert not heartbeat_shaped(T, payload.encode())


def test_binary_heartbeats_are_tiny() -> None:
    assert heartbeat_shaped(Opcode.BINARY, b"\xc0\x00")
    assert not heartbeat_shaped(Opcode.BINARY, b"\x30\x0c\x00\x09door/open1")


def test_a_detected_plan_describes_itself() -> None:
    plan = plan_of(ENGINEIO)
    assert plan.describe() == ["server ping '2'", "client pong '3'"]
