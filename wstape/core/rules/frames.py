"""Rules on the client's frames (RFC 6455 §5): masking, RSV bits, opcodes, fragmentation.

The frame checks are a small state machine: :class:`FrameState` is frozen and
:func:`check_frame` returns the next state with the violations, so the replay server keeps
one state per connection and nothing here holds on to anything.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, replace

from wstape.core.frames import Frame, OpCode, StreamFailure
from wstape.core.rules.catalogue import RuleConfig, Severity, Violation
from wstape.core.rules.helpers import Report, preview, utf8_error

MAX_CONTROL_PAYLOAD = 125
"""RFC 6455 §5.5: "All control frames MUST have a payload length of 125 bytes or less"."""

_KNOWN_OPCODES = frozenset(int(op) for op in OpCode)


@dataclass(frozen=True)
class FrameState:
    """What the frame checks remember about one connection's client frames."""

    in_message: bool = False
    """A fragmented data message is in progress (its last frame had FIN clear)."""
    message_opcode: int | None = None
    """The opcode of the message in progress (text or binary)."""
    close_sent: bool = False
    """The client has sent a Close frame."""
    deflate: bool = False
    """permessage-deflate (RFC 7692) was negotiated, so RSV1 marks compressed messages."""

    def plain(self, frame: Frame) -> bool:
        """True when :func:`check_frame` finds nothing in ``frame`` and keeps this state:
        a whole (FIN) text or binary frame, masked, RSV bits clear, its length in the
        fewest bytes, no fragmented message in progress and no Close sent before.

        The replay server's fast path for the frame nearly every message is: the same
        rules, decided with a few attribute tests.
        """
        return (
            frame.fin
            and frame.masked
            and frame.minimal_length
            and not (frame.rsv1 or frame.rsv2 or frame.rsv3)
            and (frame.opcode == OpCode.TEXT or frame.opcode == OpCode.BINARY)
            and not (self.in_message or self.close_sent)
        )


def _name(opcode: int) -> str:
    return OpCode(opcode).name.lower() if opcode in _KNOWN_OPCODES else f"0x{opcode:X}"


def check_frame(
    frame: Frame,
    state: FrameState,
    cfg: RuleConfig,
    conn: int | None = None,
    t: float | None = None,
) -> tuple[FrameState, list[Violation]]:
    """Check one client frame; return the connection's next state and the violations.

    Rules: RFC-FRAME-MASK (§5.1, §5.3), RFC-FRAME-RSV (§5.2, RFC 7692 §6),
    RFC-FRAME-LENGTH (§5.2), RFC-FRAME-OPCODE (§5.2), RFC-FRAME-CONTROL (§5.5),
    RFC-FRAME-FRAGMENTS (§5.4) and RFC-DATA-AFTER-CLOSE (§5.5.1). A frame with a reserved
    opcode leaves the state alone: whether it would have been data or control is
    unknowable.
    """
    if state.plain(frame):
        return state, []
    report = Report(cfg, conn, t)
    opcode = frame.opcode

    if not frame.masked:
        report.add(
            "RFC-FRAME-MASK",
            Severity.ERROR,
            f"client sent an unmasked {_name(opcode)} frame; expected every client frame masked",
            expected=True,
            actual=False,
        )

    if frame.rsv2 or frame.rsv3:
        bits = [n for n, on in (("RSV2", frame.rsv2), ("RSV3", frame.rsv3)) if on]
        report.add(
            "RFC-FRAME-RSV",
            Severity.ERROR,
            f"{' and '.join(bits)} set on a {_name(opcode)} frame; expected 0 (no "
            "negotiated extension defines them)",
            expected=0,
            actual=bits,
        )
    if frame.rsv1:
        if not state.deflate:
            report.add(
                "RFC-FRAME-RSV",
                Severity.ERROR,
                f"RSV1 set on a {_name(opcode)} frame without a negotiated extension; expected 0",
                expected=0,
                actual=["RSV1"],
            )
        elif opcode not in (OpCode.TEXT, OpCode.BINARY):
            # RFC 7692 §6: the "Per-Message Compressed" bit belongs to the first frame of a
            # message only; continuation and control frames must keep RSV1 clear.
            report.add(
                "RFC-FRAME-RSV",
                Severity.ERROR,
                f"RSV1 set on a {_name(opcode)} frame; permessage-deflate allows it only on "
                "the first frame of a data message",
                expected=0,
                actual=["RSV1"],
            )

    if not frame.minimal_length:
        report.add(
            "RFC-FRAME-LENGTH",
            Severity.ERROR,
            f"{_name(opcode)} frame announces its {len(frame.payload)} bytes with a longer "
            "length field than needed; expected the minimal encoding",
            expected="minimal length encoding",
            actual=len(frame.payload),
        )

    if opcode not in _KNOWN_OPCODES:
        report.add(
            "RFC-FRAME-OPCODE",
            Severity.ERROR,
            f"client sent reserved opcode 0x{opcode:X}; expected continuation, text, "
            "binary, close, ping or pong",
            expected=[int(op) for op in OpCode],
            actual=opcode,
        )
        return state, report.items

    if frame.is_control:
        if len(frame.payload) > MAX_CONTROL_PAYLOAD:
            report.add(
                "RFC-FRAME-CONTROL",
                Severity.ERROR,
                f"{_name(opcode)} frame carries {len(frame.payload)} bytes; expected at most "
                f"{MAX_CONTROL_PAYLOAD}",
                expected=MAX_CONTROL_PAYLOAD,
                actual=len(frame.payload),
            )
        if not frame.fin:
            report.add(
                "RFC-FRAME-CONTROL",
                Severity.ERROR,
                f"{_name(opcode)} frame has FIN clear; expected control frames unfragmented",
                expected=True,
                actual=False,
            )
        if opcode == OpCode.CLOSE:
            state = replace(state, close_sent=True)
        return state, report.items

    if state.close_sent:
        report.add(
            "RFC-DATA-AFTER-CLOSE",
            Severity.ERROR,
            f"client sent a {_name(opcode)} frame after its Close; expected no data frames",
            expected=None,
            actual=_name(opcode),
        )

    if opcode == OpCode.CONTINUATION:
        if not state.in_message:
            report.add(
                "RFC-FRAME-FRAGMENTS",
                Severity.ERROR,
                "continuation frame with no fragmented message in progress; expected a "
                "text or binary frame first",
                expected="text or binary",
                actual="continuation",
            )
        elif frame.fin:
            state = replace(state, in_message=False, message_opcode=None)
        return state, report.items

    if state.in_message:
        current = _name(state.message_opcode) if state.message_opcode is not None else "data"
        report.add(
            "RFC-FRAME-FRAGMENTS",
            Severity.ERROR,
            f"new {_name(opcode)} message started before the fragmented {current} message "
            "finished; expected a continuation frame",
            expected="continuation",
            actual=_name(opcode),
        )
    # Resynchronise on the new message so one mistake is reported once, not on every
    # following frame.
    if frame.fin:
        state = replace(state, in_message=False, message_opcode=None)
    else:
        state = replace(state, in_message=True, message_opcode=opcode)
    return state, report.items


def check_stream_failure(
    failure: StreamFailure, cfg: RuleConfig, conn: int | None = None, t: float | None = None
) -> list[Violation]:
    """The rule a frame header broke when the stream cannot be read further: a 64-bit
    length with the top bit set (RFC-FRAME-LENGTH, §5.2) or a frame over the server's
    limit (RFC-MESSAGE-TOO-BIG, §10.4)."""
    report = Report(cfg, conn, t)
    if failure.rule == "RFC-FRAME-LENGTH":
        report.add(
            "RFC-FRAME-LENGTH",
            Severity.ERROR,
            f"frame length {failure.length} has the most significant bit set; expected it "
            "clear (a length below 2^63)",
            expected="below 2^63",
            actual=failure.length,
        )
    else:
        report.add(
            failure.rule,
            Severity.ERROR,
            f"client {failure.reason}; expected at most the server's --max-size",
            expected="--max-size",
            actual=failure.length,
        )
    return report.items


def message_too_big(
    what: str,
    actual: int,
    limit: int,
    option: str,
    cfg: RuleConfig,
    conn: int | None = None,
    t: float | None = None,
) -> list[Violation]:
    """RFC-MESSAGE-TOO-BIG: a message grew past a server limit (§10.4): ``what`` names the
    measure (``bytes``, ``fragments``), ``option`` the flag that sets ``limit``."""
    report = Report(cfg, conn, t)
    report.add(
        "RFC-MESSAGE-TOO-BIG",
        Severity.ERROR,
        f"client message reached {actual} {what}; expected at most {limit} ({option})",
        expected=limit,
        actual=actual,
    )
    return report.items


def deflate_failure(
    why: str, cfg: RuleConfig, conn: int | None = None, t: float | None = None
) -> list[Violation]:
    """RFC-DEFLATE-DATA: a compressed message (RSV1 with permessage-deflate) whose
    payload does not inflate as DEFLATE data (RFC 7692 §6.2, §7.2.2)."""
    report = Report(cfg, conn, t)
    report.add(
        "RFC-DEFLATE-DATA",
        Severity.ERROR,
        f"client sent a compressed message that does not inflate ({why}); expected "
        "DEFLATE data (permessage-deflate)",
        expected="DEFLATE data",
        actual=why,
    )
    return report.items


def check_text(
    payload: bytes, cfg: RuleConfig, conn: int | None = None, t: float | None = None
) -> list[Violation]:
    """RFC-TEXT-UTF8: a complete (reassembled, decompressed) text message (§5.6, §8.1)."""
    report = Report(cfg, conn, t)
    problem = utf8_error(payload)
    if problem is not None:
        report.add(
            "RFC-TEXT-UTF8",
            Severity.ERROR,
            f"text message is not valid UTF-8 ({problem}); expected UTF-8 text "
            "(send binary data as an ArrayBuffer)",
            expected="valid UTF-8",
            actual=payload[:64],
        )
    return report.items


class Utf8Stream:
    """Incremental UTF-8 validation of one text message, fragment by fragment.

    §8.1 lets an endpoint fail the connection as soon as the byte stream cannot become
    valid UTF-8, not only at the end of the message (Autobahn 6.4.x checks exactly that).
    :meth:`feed` returns False at the first fragment that makes the message invalid
    (then :func:`check_text` on the bytes so far names the problem); ``final=True`` also
    rejects a message cut inside a character. Linear in the message size.
    """

    __slots__ = ("_decoder", "valid")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.valid = True

    def feed(self, data: bytes, final: bool = False) -> bool:
        if not self.valid:
            return False
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            self.valid = False
            return False
        if not final:
            pending, _ = self._decoder.getstate()
            # CPython waits for the third byte of ED A0..BF (a UTF-16 surrogate, never
            # valid in UTF-8, RFC 3629 §3); every other hopeless prefix fails at once.
            if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                self.valid = False
        return self.valid


def check_pong(
    expected: bytes,
    actual: bytes | None,
    cfg: RuleConfig,
    conn: int | None = None,
    t: float | None = None,
) -> list[Violation]:
    """RFC-PONG-ECHO: the Pong answering our Ping echoes its payload (§5.5.2, §5.5.3).

    ``actual`` None means no Pong came: a warning, since §5.5.3 lets an endpoint answer
    only the most recent of several Pings, and some stacks answer late.
    """
    report = Report(cfg, conn, t)
    if actual is None:
        report.add(
            "RFC-PONG-ECHO",
            Severity.WARN,
            f"no Pong answered our Ping {preview(expected)}; expected a Pong with the same payload",
            expected=expected,
            actual=None,
        )
    elif actual != expected:
        report.add(
            "RFC-PONG-ECHO",
            Severity.ERROR,
            f"Pong carries {preview(actual)}; expected the Ping's payload {preview(expected)}",
            expected=expected,
            actual=actual,
        )
    return report.items


__all__ = [
    "MAX_CONTROL_PAYLOAD",
    "FrameState",
    "Utf8Stream",
    "check_frame",
    "check_pong",
    "check_stream_failure",
    "check_text",
    "deflate_failure",
    "message_too_big",
]
