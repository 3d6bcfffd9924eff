"""The RFC 6455 endpoint alone (no script, no I/O) against hostile input: limits,
flow control, and the frames it refuses to send."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from wstape.core.frames import Frame, FrameParser, OpCode, encode_close_body, encode_frame
from wstape.core.model import Opcode
from wstape.core.replay.protocol import OUTPUT_LIMIT, ServerProtocol, State
from wstape.core.rules import RuleConfig, Violation

MASK = b"\x11\x22\x33\x44"


class Handler:
    def __init__(self) -> None:
        self.violations: list[Violation] = []
        self.messages: list[tuple[Opcode, bytes]] = []
        self.lines: list[str] = []

    def report(self, found: Iterable[Violation | None]) -> None:
        self.violations += [v for v in found if v is not None]

    def log(self, text: str) -> None:
        self.lines.append(text)

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> None:
        self.messages.append((opcode, payload))

    def on_client_gone(self, code: int, reason: str, now: float) -> None:
        pass

    @property
    def rules(self) -> list[str]:
        return [v.rule for v in self.violations]


def endpoint(cfg: RuleConfig | None = None, **kw: int) -> tuple[ServerProtocol, Handler]:
    handler = Handler()
    options: dict[str, int] = {"max_frame_size": 1 << 20, "max_message_size": 1 << 20}
    options.update(kw)
    proto = ServerProtocol(
        handler, cfg or RuleConfig(), conn=1, now=0.0, close_timeout=5.0, **options
    )
    return proto, handler


def frame(opcode: int, payload: bytes = b"", **kw: bool) -> bytes:
    return encode_frame(opcode, payload, mask_key=MASK, **kw)


def sent(proto: ServerProtocol) -> list[Frame]:
    out = FrameParser(1 << 40).feed(proto.data_to_send())
    assert all(isinstance(f, Frame) for f in out), out
    return [f for f in out if isinstance(f, Frame)]


def close_of(frames: list[Frame]) -> tuple[int | None, bytes]:
    [close] = [f for f in frames if f.opcode == OpCode.CLOSE]
    assert len(close.payload) <= 125
    if not close.payload:
        return None, b""
    return int.from_bytes(close.payload[:2], "big"), close.payload[2:]


# -- fragments ---------------------------------------------------------------------------


def test_many_small_fragments_make_one_message() -> None:
    proto, handler = endpoint()
    parts = [bytes([65 + i % 26]) * 2 for i in range(5000)]
    wire = frame(OpCode.TEXT, parts[0], fin=False)
    wire += b"".join(frame(OpCode.CONTINUATION, p, fin=False) for p in parts[1:-1])
    wire += frame(OpCode.CONTINUATION, parts[-1])
    for i in range(0, len(wire), 4096):
        proto.receive_data(wire[i : i + 4096], 0.0)
    assert handler.messages == [(Opcode.TEXT, b"".join(parts))]
    assert handler.violations == []


def test_too_many_fragments_is_1009_under_a_rule() -> None:
    proto, handler = endpoint(max_fragments=100)
    wire = frame(OpCode.BINARY, b"", fin=False) + frame(OpCode.CONTINUATION, fin=False) * 200
    proto.receive_data(wire, 0.0)
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]
    assert handler.violations[0].actual == 101 and handler.violations[0].expected == 100
    assert close_of(sent(proto)) == (1009, b"RFC-MESSAGE-TOO-BIG")
    assert handler.messages == []
    # More of the same is ignored while the client has time to answer the Close.
    proto.receive_data(frame(OpCode.CONTINUATION, b"x" * 1000, fin=False) * 100, 0.0)
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"] and proto.state is State.CLOSING


def test_message_over_max_size_is_1009_even_with_the_rule_ignored() -> None:
    cfg = RuleConfig(ignore=frozenset({"RFC-MESSAGE-TOO-BIG"}))
    proto, handler = endpoint(cfg, max_message_size=1000)
    proto.receive_data(frame(OpCode.BINARY, b"x" * 600, fin=False), 0.0)
    proto.receive_data(frame(OpCode.CONTINUATION, b"x" * 600), 0.0)
    assert handler.violations == []  # silenced, but the limit holds
    assert close_of(sent(proto))[0] == 1009


@pytest.mark.parametrize(
    ("header", "rule", "code"),
    [
        (bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big"), "RFC-FRAME-LENGTH", 1002),
        (bytes((0x82, 0xFF)) + ((1 << 64) - 1).to_bytes(8, "big"), "RFC-FRAME-LENGTH", 1002),
        (bytes((0x82, 0xFF)) + ((1 << 63) - 1).to_bytes(8, "big"), "RFC-MESSAGE-TOO-BIG", 1009),
        (bytes((0x82, 0xFF)) + ((1 << 20) + 1).to_bytes(8, "big"), "RFC-MESSAGE-TOO-BIG", 1009),
    ],
    ids=["top-bit", "all-ones", "2^63-1", "over-max-size"],
)
def test_unreadable_frame_headers_are_reported_and_hang_up(
    header: bytes, rule: str, code: int
) -> None:
    proto, handler = endpoint()
    proto.receive_data(header + MASK, 0.0)
    assert handler.rules == [rule]
    assert close_of(sent(proto)) == (code, rule.encode())
    assert proto.hangup and proto.state is State.CLOSED


def test_non_minimal_length_is_reported_and_fails_unless_ignored() -> None:
    wire = bytes((0x81, 0x80 | 126)) + (2).to_bytes(2, "big") + MASK
    wire += bytes(a ^ b for a, b in zip(b"hi", MASK, strict=False))
    proto, handler = endpoint()
    proto.receive_data(wire, 0.0)
    assert handler.rules == ["RFC-FRAME-LENGTH"] and close_of(sent(proto))[0] == 1002
    proto, handler = endpoint(RuleConfig(ignore=frozenset({"RFC-FRAME-LENGTH"})))
    proto.receive_data(wire, 0.0)
    assert handler.violations == [] and handler.messages == [(Opcode.TEXT, b"hi")]


def test_after_a_failure_nothing_more_is_judged_and_the_close_ends_it() -> None:
    # An unmasked frame fails the connection (1002) and our Close goes out; what the
    # client sends next, bad UTF-8, more unmasked frames or a Ping, is neither judged nor
    # answered (RFC 6455 7.1.7): one violation, one "failing" line, however long it goes on.
    proto, handler = endpoint()
    proto.receive_data(encode_frame(OpCode.TEXT, b"a"), 0.0)
    assert handler.rules == ["RFC-FRAME-MASK"] and close_of(sent(proto))[0] == 1002
    assert proto.state is State.CLOSING
    after = frame(OpCode.TEXT, b"\xff\xfe") + encode_frame(OpCode.TEXT, b"b")
    for _ in range(200):
        proto.receive_data(after + frame(OpCode.PING, b"p"), 1.0)
    assert handler.rules == ["RFC-FRAME-MASK"] and handler.messages == []
    assert sum("failing" in line for line in handler.lines) == 1
    assert proto.data_to_send() == b"" and proto.state is State.CLOSING
    proto.receive_data(frame(OpCode.CLOSE, encode_close_body(1002, "")), 2.0)
    assert proto.hangup and proto.state is State.CLOSED
    assert handler.rules == ["RFC-FRAME-MASK"]


# -- flow control --------------------------------------------------------------------------


def test_one_call_produces_a_bounded_output_and_the_rest_waits() -> None:
    proto, handler = endpoint()
    pings = 20_000
    proto.receive_data(frame(OpCode.PING, b"p" * 100) * pings, 0.0)
    first = proto.data_to_send()
    assert OUTPUT_LIMIT <= len(first) < OUTPUT_LIMIT + 200
    assert proto.backlogged
    answered = first.count(b"\x8a\x64")
    while proto.backlogged:
        proto.receive_data(b"", 0.0)
        answered += proto.data_to_send().count(b"\x8a\x64")
    assert answered == pings and handler.violations == []


def test_nothing_is_taken_while_the_output_is_paused() -> None:
    proto, handler = endpoint()
    proto.pause_output()
    proto.receive_data(frame(OpCode.TEXT, b"one") + frame(OpCode.PING, b"x"), 0.0)
    assert handler.messages == [] and proto.data_to_send() == b"" and proto.backlogged
    proto.resume_output(0.0)
    assert handler.messages == [(Opcode.TEXT, b"one")]
    assert [f.opcode for f in sent(proto)] == [OpCode.PONG] and not proto.backlogged


def test_stalled_client_is_dropped_without_a_close() -> None:
    proto, handler = endpoint()
    assert proto.stalled(3.0)
    assert proto.hangup and proto.close.code == 1006 and proto.data_to_send() == b""
    proto.connection_lost(3.5)
    assert handler.violations == []  # the caller reports REPLAY-CLIENT-STALLED itself
    closing, handler = endpoint()
    closing.send_close(1000, "bye", 0.0)
    assert not closing.stalled(6.0)
    closing.connection_lost(6.0)
    assert handler.rules == ["RFC-CLOSE-HANDSHAKE"]  # once: no answer to our Close


def test_unanswered_close_is_judged_once_as_no_answer() -> None:
    """The close deadline passes: one warning that says the client did not answer; the
    TCP end that follows is the server's own hang-up, not the client dropping TCP."""
    proto, handler = endpoint()
    proto.send_close(1000, "bye", 0.0)
    proto.tick(5.0)
    assert proto.hangup and proto.state is State.CLOSED
    proto.connection_lost(5.1)
    (v,) = handler.violations
    assert v.rule == "RFC-CLOSE-HANDSHAKE"
    assert "did not answer the server's Close within 5 s" in v.message
    assert "dropped" not in v.message


# -- what goes on the wire ------------------------------------------------------------------


@pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 0, 999, 2999, 5000, 65535, 70000, -1])
def test_an_unsendable_close_code_is_sent_as_an_empty_close(code: int) -> None:
    proto, handler = endpoint()
    proto.send_close(code, "recorded", 0.0)
    assert close_of(sent(proto)) == (None, b"")
    assert handler.rules == ["RFC-SRV-CLOSE-CODE"]
    assert proto.close.code == 1005


@pytest.mark.parametrize("size", [124, 200, 1_000_000])
def test_a_long_close_reason_is_cut_to_123_bytes(size: int) -> None:
    proto, handler = endpoint()
    reason = "é" * (size // 2) + "x" * (size % 2)  # cut in the middle of a character
    proto.send_close(4000, reason, 0.0)
    code, raw = close_of(sent(proto))
    assert code == 4000 and len(raw) <= 123 and raw.decode("utf-8") == "é" * 61
    assert handler.rules == ["RFC-SRV-CLOSE-REASON"]
    assert proto.close.reason == "é" * 61


def test_a_reason_that_is_not_utf8_never_goes_on_the_wire() -> None:
    proto, _ = endpoint()
    proto.send_close(4000, "bad \udcff", 0.0)
    _, raw = close_of(sent(proto))
    assert raw.decode("utf-8") == "bad ?"


def test_an_invalid_client_code_is_never_echoed() -> None:
    cfg = RuleConfig(ignore=frozenset({"RFC-CLOSE-CODE"}))
    proto, _ = endpoint(cfg)
    proto.receive_data(frame(OpCode.CLOSE, encode_close_body(1005)), 0.0)
    assert close_of(sent(proto)) == (None, b"")


def test_an_oversized_ping_is_not_answered() -> None:
    proto, _ = endpoint(RuleConfig(ignore=frozenset({"RFC-FRAME-CONTROL"})))
    proto.receive_data(frame(OpCode.PING, b"x" * 126) + frame(OpCode.PING, b"ok"), 0.0)
    assert [(f.opcode, f.payload) for f in sent(proto)] == [(OpCode.PONG, b"ok")]
