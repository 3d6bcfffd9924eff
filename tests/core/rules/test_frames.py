"""Client frame rules: check_frame's state machine, check_text and check_pong."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from wstape.core.frames import Frame, OpCode, StreamFailure
from wstape.core.rules import (
    FrameState,
    Profile,
    RuleConfig,
    Severity,
    check_frame,
    check_pong,
    check_stream_failure,
    check_text,
    message_too_big,
)

CFG = RuleConfig()
C, T, B, X, PI, PO = (
    OpCode.CONTINUATION,
    OpCode.TEXT,
    OpCode.BINARY,
    OpCode.CLOSE,
    OpCode.PING,
    OpCode.PONG,
)


START = FrameState()


def run(frames: Sequence[Frame], state: FrameState = START) -> tuple[FrameState, list[str]]:
    """Feed frames in order; return the final state and every rule ID reported."""
    rules: list[str] = []
    for frame in frames:
        state, found = check_frame(frame, state, CFG, conn=1, t=0.5)
        rules += [v.rule for v in found]
        assert all(v.severity is Severity.ERROR and v.conn == 1 and v.t == 0.5 for v in found)
    return state, rules


def f(opcode: int, payload: bytes = b"x", **kw: bool) -> Frame:
    return Frame(opcode=opcode, payload=payload, **kw)


DEFLATE = FrameState(deflate=True)

FRAME_CASES: list[tuple[str, list[Frame], FrameState, list[str]]] = [
    ("masked text", [f(T)], FrameState(), []),
    ("unmasked text", [f(T, masked=False)], FrameState(), ["RFC-FRAME-MASK"]),
    ("unmasked pong", [f(PO, masked=False)], FrameState(), ["RFC-FRAME-MASK"]),
    ("RSV1 without extension", [f(T, rsv1=True)], FrameState(), ["RFC-FRAME-RSV"]),
    ("RSV1 with deflate, first frame", [f(T, rsv1=True)], DEFLATE, []),
    (
        "RSV1 with deflate, fragmented",
        [f(B, rsv1=True, fin=False), f(C, fin=False), f(C)],
        DEFLATE,
        [],
    ),
    (
        "RSV1 on a continuation",
        [f(T, rsv1=True, fin=False), f(C, rsv1=True)],
        DEFLATE,
        ["RFC-FRAME-RSV"],
    ),
    ("RSV1 on a ping", [f(PI, rsv1=True)], DEFLATE, ["RFC-FRAME-RSV"]),
    ("length not minimal", [f(T, minimal_length=False)], FrameState(), ["RFC-FRAME-LENGTH"]),
    ("ping length not minimal", [f(PI, minimal_length=False)], FrameState(), ["RFC-FRAME-LENGTH"]),
    ("RSV2", [f(T, rsv2=True)], DEFLATE, ["RFC-FRAME-RSV"]),
    ("RSV3", [f(B, rsv3=True)], FrameState(), ["RFC-FRAME-RSV"]),
    ("reserved data opcode", [f(0x3)], FrameState(), ["RFC-FRAME-OPCODE"]),
    ("reserved control opcode", [f(0xB)], FrameState(), ["RFC-FRAME-OPCODE"]),
    ("125-byte ping", [f(PI, b"p" * 125)], FrameState(), []),
    ("126-byte ping", [f(PI, b"p" * 126)], FrameState(), ["RFC-FRAME-CONTROL"]),
    ("126-byte close", [f(X, b"\x03\xe8" + b"r" * 124)], FrameState(), ["RFC-FRAME-CONTROL"]),
    ("fragmented ping", [f(PI, fin=False)], FrameState(), ["RFC-FRAME-CONTROL"]),
    ("fragmented message", [f(T, fin=False), f(C, fin=False), f(C)], FrameState(), []),
    (
        "ping between fragments",
        [f(B, fin=False), f(PO, b"hb"), f(PI), f(C)],
        FrameState(),
        [],
    ),
    ("lone continuation", [f(C)], FrameState(), ["RFC-FRAME-FRAGMENTS"]),
    (
        "continuation after a finished message",
        [f(T), f(C)],
        FrameState(),
        ["RFC-FRAME-FRAGMENTS"],
    ),
    (
        "new message inside a fragmented one",
        [f(T, fin=False), f(B)],
        FrameState(),
        ["RFC-FRAME-FRAGMENTS"],
    ),
    ("data after close", [f(X, b"\x03\xe8"), f(T)], FrameState(), ["RFC-DATA-AFTER-CLOSE"]),
    (
        "continuation after close",
        [f(T, fin=False), f(X, b""), f(C)],
        FrameState(),
        ["RFC-DATA-AFTER-CLOSE"],
    ),
    ("ping after close is not data", [f(X, b""), f(PI)], FrameState(), []),
    ("1 MiB binary message", [f(B, b"\x00" * (1 << 20))], FrameState(), []),
]


@pytest.mark.parametrize(
    ("frames", "state", "expected"),
    [pytest.param(fr, s, e, id=name) for name, fr, s, e in FRAME_CASES],
)
def test_check_frame(frames: list[Frame], state: FrameState, expected: list[str]) -> None:
    assert run(frames, state)[1] == expected


def test_state_transitions() -> None:
    s, _ = check_frame(f(T, fin=False), FrameState(), CFG)
    assert s == FrameState(in_message=True, message_opcode=T)
    s, _ = check_frame(f(PI), s, CFG)
    assert s.in_message and s.message_opcode == T
    s, _ = check_frame(f(C), s, CFG)
    assert s == FrameState()
    s, _ = check_frame(f(X, b""), s, CFG)
    assert s.close_sent


def test_reserved_opcode_leaves_state_alone() -> None:
    start = FrameState(in_message=True, message_opcode=B)
    state, found = check_frame(f(0x7), start, CFG)
    assert state == start
    assert [v.rule for v in found] == ["RFC-FRAME-OPCODE"]
    assert "0x7" in found[0].message


def test_state_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        FrameState().close_sent = True  # type: ignore[misc]


def test_a_broken_fragment_sequence_is_reported_once() -> None:
    # After the error the new message is tracked, so its own continuation is fine.
    _, rules = run([f(T, fin=False), f(B, fin=False), f(C)])
    assert rules == ["RFC-FRAME-FRAGMENTS"]


def test_frame_rules_run_in_every_profile_and_obey_ignore() -> None:
    frame = f(T, masked=False)
    for profile in Profile:
        _, found = check_frame(frame, FrameState(), RuleConfig(profile=profile))
        assert [v.rule for v in found] == ["RFC-FRAME-MASK"]
    _, found = check_frame(frame, FrameState(), RuleConfig(ignore=frozenset({"RFC-FRAME-MASK"})))
    assert found == []


# -- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "ok"),
    [
        (b"", True),
        (b'{"type":"ping"}', True),
        ("用户主动退出登录😀".encode(), True),
        (b"\xff", False),
        ("谢".encode()[:2], False),  # cut inside a character
        (b"ok" + "谢".encode()[:1] + b"ok", False),
        (b"\xed\xa0\x80", False),  # UTF-16 surrogate, forbidden by RFC 3629
        (b"\xc0\xaf", False),  # overlong "/"
        (b"\xf4\x90\x80\x80", False),  # above U+10FFFF
    ],
)
def test_check_text(payload: bytes, ok: bool) -> None:
    found = check_text(payload, CFG, conn=2, t=1.0)
    assert (found == []) is ok
    if not ok:
        (v,) = found
        assert (v.rule, v.severity, v.conn, v.t) == ("RFC-TEXT-UTF8", Severity.ERROR, 2, 1.0)


def test_cut_text_is_named_as_cut() -> None:
    (v,) = check_text(b"abc" + "谢".encode()[:2], CFG)
    assert "cut inside a character at byte 3" in v.message


# -- pong -------------------------------------------------------------------------------------


def test_check_pong() -> None:
    assert check_pong(b"hb-1", b"hb-1", CFG) == []
    (v,) = check_pong(b"hb-1", b"hb-2", CFG, conn=5)
    assert (v.rule, v.severity, v.expected, v.actual) == (
        "RFC-PONG-ECHO",
        Severity.ERROR,
        b"hb-1",
        b"hb-2",
    )
    assert "'hb-2'" in v.message and "'hb-1'" in v.message
    (v,) = check_pong(b"hb-1", None, CFG)
    assert v.severity is Severity.WARN
    (v,) = check_pong(b"", b"\x00", CFG)
    assert v.severity is Severity.ERROR


def test_stream_failures_and_limits_name_their_rule() -> None:
    top = StreamFailure(
        1002, "64-bit payload length with the top bit set", "RFC-FRAME-LENGTH", 1 << 63
    )
    [v] = check_stream_failure(top, CFG, conn=3, t=1.0)
    assert (v.rule, v.severity, v.conn, v.actual) == (
        "RFC-FRAME-LENGTH",
        Severity.ERROR,
        3,
        1 << 63,
    )
    big = StreamFailure(
        1009, "frame of 99 bytes is over the limit of 10", "RFC-MESSAGE-TOO-BIG", 99
    )
    [v] = check_stream_failure(big, CFG, conn=3)
    assert v.rule == "RFC-MESSAGE-TOO-BIG" and "99 bytes" in v.message
    [v] = message_too_big("fragments", 101, 100, "--max-fragments", CFG, conn=3)
    assert "101 fragments" in v.message and "--max-fragments" in v.message
    ignoring = RuleConfig(ignore=frozenset({"RFC-MESSAGE-TOO-BIG"}))
    assert message_too_big("bytes", 2, 1, "--max-size", ignoring) == []
