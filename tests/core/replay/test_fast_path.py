"""The replay hot path's shortcuts decide exactly what the full paths decide: same
violations, same state, same messages, same bytes out (issue 12: every rule still runs on
every frame, cheaply)."""

from __future__ import annotations

import itertools
from dataclasses import asdict

import pytest

from tests.core.replay.test_protocol import MASK, endpoint, frame
from wstape.core.frames import Frame, OpCode, apply_mask
from wstape.core.replay.protocol import ServerProtocol
from wstape.core.rules import FrameState, RuleConfig, check_frame

OPCODES = [*range(16)]


def _full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FrameState, "plain", lambda self, frame: False)


def _states() -> list[FrameState]:
    out = []
    for in_message, close_sent, deflate in itertools.product([False, True], repeat=3):
        for op in [None, OpCode.TEXT, OpCode.BINARY] if in_message else [None]:
            out.append(FrameState(in_message, op, close_sent, deflate))
    return out


def test_plain_frames_are_exactly_those_check_frame_passes_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = RuleConfig()
    cases = []
    for opcode, *bits in itertools.product(OPCODES, *[[False, True]] * 6):
        fin, rsv1, rsv2, rsv3, masked, minimal = bits
        f = Frame(opcode, b"x", fin, rsv1, rsv2, rsv3, masked, minimal)
        cases += [(f, state) for state in _states()]
    fast = [(s.plain(f), check_frame(f, s, cfg, 1, 0.5)) for f, s in cases]
    _full(monkeypatch)
    for (f, s), (plain, result) in zip(cases, fast, strict=True):
        full = check_frame(f, s, cfg, 1, 0.5)
        assert result == full, (f, s)
        if plain:
            assert full == (s, []), (f, s)


WIRE = {
    "ascii text": frame(OpCode.TEXT, b'{"seq":1}'),
    "utf-8 text": frame(OpCode.TEXT, "héllo, 世界".encode()),
    "invalid utf-8": frame(OpCode.TEXT, b"ok \xff\xfe"),
    "cut utf-8": frame(OpCode.TEXT, "世".encode()[:2]),
    "surrogate": frame(OpCode.TEXT, b"\xed\xa0\x80"),
    "binary": frame(OpCode.BINARY, bytes(range(256))),
    "empty text": frame(OpCode.TEXT, b""),
    "unmasked": b"\x81\x02hi",
    "rsv1": frame(OpCode.TEXT, b"hi", rsv1=True),
    "long length": b"\x81\xfe\x00\x02" + MASK + apply_mask(b"hi", MASK),
    "fragment": frame(OpCode.TEXT, b"he", fin=False),
    "continuation": frame(OpCode.CONTINUATION, b"llo"),
    "ping": frame(OpCode.PING, b"p"),
    "close": frame(OpCode.CLOSE, b"\x03\xe8bye"),
    "big": frame(OpCode.BINARY, b"z" * 300),
}

SEQUENCES = [
    ["ascii text", "utf-8 text", "binary", "empty text"],
    ["invalid utf-8", "ascii text"],
    ["cut utf-8"],
    ["surrogate"],
    ["unmasked", "ascii text"],
    ["rsv1", "ascii text"],
    ["long length", "ascii text"],
    ["fragment", "ascii text", "continuation", "binary"],
    ["fragment", "continuation", "ascii text"],
    ["ping", "ascii text", "close", "ascii text", "binary"],
    ["big", "ascii text"],
    ["close", "utf-8 text"],
]


def _run(names: list[str], cfg: RuleConfig, **kw: int) -> tuple[object, ...]:
    proto, handler = endpoint(cfg, **kw)
    for name in names:
        proto.receive_data(WIRE[name], 1.0)
    return (
        handler.messages,
        [asdict(v) for v in handler.violations],
        handler.lines,
        proto.data_to_send(),
        proto.state,
        proto.close,
        proto.failure,
    )


@pytest.mark.parametrize("names", SEQUENCES, ids=[",".join(s) for s in SEQUENCES])
@pytest.mark.parametrize(
    ("cfg", "limits"),
    [
        (RuleConfig(), {}),
        (RuleConfig(ignore=frozenset({"RFC-FRAME-MASK", "RFC-TEXT-UTF8"})), {}),
        (RuleConfig(), {"max_message_size": 200}),
        (RuleConfig(), {"max_fragments": 0}),
    ],
    ids=["default", "ignoring", "max-size", "no-fragments"],
)
def test_whole_messages_take_the_same_verdicts_as_the_full_path(
    monkeypatch: pytest.MonkeyPatch, names: list[str], cfg: RuleConfig, limits: dict[str, int]
) -> None:
    fast = _run(names, cfg, **limits)
    _full(monkeypatch)
    monkeypatch.setattr(ServerProtocol, "_whole_message", lambda self, frame, now: False)
    assert fast == _run(names, cfg, **limits)
