"""The server end of an open WebSocket (RFC 6455 §5-§7), as a state machine without I/O.

:class:`ServerProtocol` takes the client's bytes after the 101 and turns them into
complete messages for its :class:`Handler`; it answers Pings, sends our Pings and checks
the Pongs, runs the closing handshake from either side, and fails the connection as
§7.1.7 says when the client breaks the protocol. Every client frame goes through the
frame rules; violations go to the handler. It knows nothing of recordings: what to do
with a message is the handler's business (:mod:`.connection` plays a script with it).

One state, :class:`State`, decides what incoming bytes still mean::

    OPEN ──our Close──▶ CLOSING ──client's Close / timeout──▶ CLOSED
      │                                                         ▲
      └──client's Close (echoed) / fail / drop ─────────────────┘

In ``CLOSED`` the transport is to be closed once :meth:`ServerProtocol.data_to_send` has
been written (:attr:`ServerProtocol.hangup`). Frames that came in the same read as the
client's Close are still judged (RFC-DATA-AFTER-CLOSE) but do nothing.

Flow control: one :meth:`~ServerProtocol.receive_data` call stops taking frames once it
has produced :attr:`~ServerProtocol.output_limit` bytes of output (Pongs, and whatever
the handler sends for the messages), and takes none while the driver says its
transport is full (:meth:`~ServerProtocol.pause_output`); the frames left wait in the
parser (:attr:`~ServerProtocol.backlogged`) until the output is written or resumed. So a
client that sends without reading makes the driver stop reading from it, never grows
the output without bound. A message being reassembled lives in one buffer, bounded by
``max_message_size`` bytes and ``max_fragments`` frames, and by what is left of a
:class:`MessageRoom` the server's connections share (past it: 1013).

permessage-deflate (RFC 7692), when the handshake negotiated it, is a
:class:`~wstape.core.deflate.Deflate` (:attr:`ServerProtocol.deflate`, None otherwise): the
frame rules see the client's frames as sent (RSV1 on a compressed message's first frame),
the message is inflated fragment by fragment within what is left of ``max_message_size``
(a compression bomb fails with 1009 before it grows), and the handler gets it inflated; our
data messages are deflated as they go out. The zlib state goes with the connection's end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from wstape.core.closecodes import CloseCode, describe, is_sendable
from wstape.core.deflate import Deflate, DeflateError, TooBig
from wstape.core.frames import (
    DEFAULT_MAX_FRAGMENTS,
    Frame,
    FrameParser,
    OpCode,
    StreamFailure,
    encode_close_body,
    encode_frame,
    split_close_body,
)
from wstape.core.model import Opcode, Side
from wstape.core.rules import (
    FrameState,
    RuleConfig,
    Severity,
    Utf8Stream,
    Violation,
    check_client_close,
    check_close_handshake,
    check_frame,
    check_pong,
    check_server_close,
    check_stream_failure,
    check_text,
    deflate_failure,
    message_too_big,
)

FAIL_CODES: dict[str, CloseCode] = {
    "RFC-FRAME-MASK": CloseCode.PROTOCOL_ERROR,
    "RFC-FRAME-RSV": CloseCode.PROTOCOL_ERROR,
    "RFC-FRAME-OPCODE": CloseCode.PROTOCOL_ERROR,
    "RFC-FRAME-CONTROL": CloseCode.PROTOCOL_ERROR,
    "RFC-FRAME-FRAGMENTS": CloseCode.PROTOCOL_ERROR,
    "RFC-FRAME-LENGTH": CloseCode.PROTOCOL_ERROR,
    "RFC-CLOSE-PAYLOAD": CloseCode.PROTOCOL_ERROR,
    "RFC-CLOSE-CODE": CloseCode.PROTOCOL_ERROR,
    "RFC-CLOSE-REASON-LENGTH": CloseCode.PROTOCOL_ERROR,
    "RFC-TEXT-UTF8": CloseCode.INVALID_DATA,
    "RFC-CLOSE-REASON-UTF8": CloseCode.INVALID_DATA,
    "RFC-DEFLATE-DATA": CloseCode.PROTOCOL_ERROR,
}
"""A client frame breaking one of these rules fails the connection with this code
(§7.1.7 "Fail the WebSocket Connection"; 1007 for bad UTF-8, §8.1). Only violations that
were reported count: ``--ignore RULE`` makes the server tolerant."""

MAX_CLOSE_REASON = 123
"""A Close reason is at most 123 bytes (§5.5: a control frame carries at most 125)."""

MAX_CONTROL_PAYLOAD = 125
"""A control frame carries at most 125 bytes (§5.5): a longer Ping is never answered."""

OUTPUT_LIMIT = 256 * 1024
"""Bytes of output one :meth:`ServerProtocol.receive_data` call produces at most before
it leaves the remaining frames in the parser (a little more: the frame that crosses it)."""


class State(Enum):
    OPEN = "open"
    CLOSING = "closing"
    """We sent a Close and wait for the client's."""
    CLOSED = "closed"
    """Nothing more is read or sent: hang up once the output is written."""


@dataclass(frozen=True)
class CloseInfo:
    """How a connection ended, for the report: who closed, the code the other saw, the reason."""

    by: Side | None = None
    code: int | None = None
    reason: str = ""


class Handler(Protocol):
    """What the endpoint tells the one who drives it (the replay connection)."""

    def report(self, found: Iterable[Violation]) -> None:
        """Violations found in the client's frames, as they happen."""

    def log(self, text: str) -> None:
        """One human line (the connection is failed, ...)."""

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> None:
        """A complete data message arrived while the connection was open."""

    def on_client_gone(self, code: int, reason: str, now: float) -> None:
        """The client ended the connection on its own: a Close it started (``code`` as
        received, 1005 for none) or a TCP drop before any Close (1006)."""


def cut_reason(reason: str) -> str:
    """``reason`` as valid UTF-8 of at most :data:`MAX_CLOSE_REASON` bytes: cut on a
    character boundary, anything that is not encodable (a lone surrogate) replaced."""
    raw = reason.encode("utf-8", "replace")
    if len(raw) <= MAX_CLOSE_REASON and raw.decode("utf-8") == reason:
        return reason
    return raw[:MAX_CLOSE_REASON].decode("utf-8", "ignore")


class MessageRoom:
    """What the unfinished messages of all a server's connections may hold together (4 x
    ``--max-size``): each is bounded by ``--max-size`` on its own, but a thousand
    connections that each start a message and never finish it (a few KiB of compressed
    fragments can inflate to 64 MiB) would hold a thousand times that. A fragment that
    would go past it fails its connection with 1013 (Try Again Later, RFC 6455 §7.4.1)."""

    __slots__ = ("held", "limit")

    PER_MAX_SIZE = 4
    """The room, in messages of ``--max-size``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @classmethod
    def for_max_size(cls, max_size: int) -> MessageRoom:
        return cls(cls.PER_MAX_SIZE * max_size)


class ServerProtocol:
    """The server end of one open connection. Bytes in, bytes out, a deadline.

    ``conn`` names the recorded connection in violations; ``close_timeout`` is how long
    the client has to answer our Close (and a Ping); ``ping_interval`` > 0 sends a Ping
    that often; ``deflate`` is the permessage-deflate state the handshake agreed on.
    """

    def __init__(
        self,
        handler: Handler,
        cfg: RuleConfig,
        *,
        conn: int | None,
        now: float,
        close_timeout: float,
        max_frame_size: int,
        max_message_size: int,
        max_fragments: int = DEFAULT_MAX_FRAGMENTS,
        ping_interval: float = 0.0,
        output_limit: int = OUTPUT_LIMIT,
        deflate: Deflate | None = None,
        room: MessageRoom | None = None,
    ) -> None:
        self.handler = handler
        self.cfg = cfg
        self.conn = conn
        self.opened_at = now
        self.close_timeout = close_timeout
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.ping_interval = ping_interval
        self.output_limit = output_limit
        self.state = State.OPEN
        self.close = CloseInfo()
        """How it ended (or is ending)."""
        self.failure: CloseCode | None = None
        """The code we failed the connection with (§7.1.7), if we did."""
        self.abnormal = True
        """No clean closing handshake (so far): the client may reconnect in a burst."""
        self.judging = True
        """False once the server is stopping: how the client ends is not its fault."""
        self.hangup = False
        """Close the transport once :meth:`data_to_send` has been written."""
        self.mute_pings = False
        """Leave the client's Pings unanswered (the ``mute-heartbeats`` fault)."""
        self.on_muted_ping: Callable[[float], None] | None = None
        """Called (with the time) for each client Ping :attr:`mute_pings` leaves
        unanswered."""
        self.output_paused = False
        """The driver's transport is full (:meth:`pause_output`): take no frames."""
        self.input_held = False
        """The handler has too much waiting (:meth:`hold_input`): take no frames."""
        self.backlogged = False
        """Frames wait in the parser because the output is full or paused: call
        :meth:`receive_data` (with no bytes) again once it was written or resumed."""
        self._out: list[bytes] = []
        self._out_size = 0
        self._frames = FrameParser(max_frame_size)
        self.deflate = deflate
        """permessage-deflate was negotiated (None: it was not); dropped at the end."""
        self._frame_state = FrameState(deflate=deflate is not None)
        self._msg_opcode: int | None = None
        self._msg_first: bytes | None = None
        """The message's only fragment so far (no copy for an unfragmented message)."""
        self._msg_buf: bytearray | None = None
        """The message so far, once it has two fragments."""
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_utf8: Utf8Stream | None = None
        """Validates the text message in progress fragment by fragment (fail fast, §8.1)."""
        self._room = room
        self._msg_held = 0
        """Bytes of the message in progress taken from :attr:`_room`."""
        self._client_close: bytes | None = None
        """The body of the client's Close, once seen."""
        self._server_close: int | None = None
        self._server_close_sent = False
        self._close_deadline: float | None = None
        self._pings: deque[tuple[bytes, float]] = deque()
        self._ping_count = 0
        self._next_ping = now + ping_interval if ping_interval > 0 else None

    def _t(self, now: float) -> float:
        return round(now - self.opened_at, 6)

    @property
    def closed(self) -> bool:
        """Nothing more is read or sent (:attr:`State.CLOSED`)."""
        return self.state is State.CLOSED

    # -- output -------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        self._out_size = 0
        return data

    def pause_output(self) -> None:
        """The driver's transport is full: take no more frames until :meth:`resume_output`."""
        self.output_paused = True

    def resume_output(self, now: float) -> None:
        """The transport drained: go on with the frames that waited."""
        self.output_paused = False
        if self.backlogged:
            self.receive_data(b"", now)

    def hold_input(self) -> None:
        """Take no more frames until :meth:`release_input` (the handler is full)."""
        self.input_held = True

    def release_input(self) -> None:
        """Frames may be taken again; the driver goes on with those that waited
        (:attr:`backlogged`): this may be called while a frame is being handled."""
        self.input_held = False

    @property
    def taking(self) -> bool:
        """Frames are taken now: neither the output nor the handler is full."""
        return not (self.output_paused or self.input_held)

    def _emit(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def next_deadline(self) -> float | None:
        at = self._close_deadline
        ping = self._next_ping
        if ping is not None and self.state is State.OPEN and (at is None or ping < at):
            at = ping
        if self._pings:
            pong = self._pings[0][1]
            if at is None or pong < at:
                at = pong
        return at

    def _frame_out(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self._emit(encode_frame(opcode, payload, fin=fin))

    def send_message(
        self, opcode: Opcode, payload: bytes, now: float, *, fragment: int = 0
    ) -> None:
        """Send a data message; longer than ``fragment`` bytes it goes in fragments of that
        size with one of our Pings after the first (RULES.md scenario 2)."""
        if self.state is not State.OPEN:
            return
        op = OpCode.TEXT if opcode is Opcode.TEXT else OpCode.BINARY
        deflate = self.deflate
        if not fragment or len(payload) <= fragment:
            if deflate is None:  # _frame_out and _emit inlined: every message goes here
                data = encode_frame(op, payload)
                self._out.append(data)
                self._out_size += len(data)
            else:
                data, rsv1 = deflate.encode(op, payload, True)
                self._emit(encode_frame(op, data, rsv1=rsv1))
            return
        last = (len(payload) - 1) // fragment
        for i in range(last + 1):
            chunk = payload[i * fragment : (i + 1) * fragment]
            frame_op = op if i == 0 else OpCode.CONTINUATION
            if deflate is None:
                self._frame_out(frame_op, chunk, fin=i == last)
            else:
                data, rsv1 = deflate.encode(frame_op, chunk, i == last)
                self._emit(encode_frame(frame_op, data, fin=i == last, rsv1=rsv1))
            if i == 0:
                self._ping(now)

    def send_close(self, code: int | None, reason: str, now: float) -> None:
        """Start the closing handshake with ``code`` (None: an empty Close, seen as 1005).

        Only a valid Close goes on the wire: a code that may not be sent (1005, 1006,
        70000, a recording's -1) becomes an empty Close and a reason is cut to 123 bytes
        of UTF-8; either is reported (RFC-SRV-CLOSE-CODE, RFC-SRV-CLOSE-REASON).
        """
        if self.state is not State.OPEN:
            return
        self.handler.report(check_server_close(code, self.cfg, self.conn, reason))
        if code is not None and not is_sendable(code):
            code, reason = None, ""
        reason = cut_reason(reason)
        self.input_held = False  # the client's answer must be read; no message is taken now
        self._emit(encode_frame(OpCode.CLOSE, encode_close_body(code, reason)))
        self._server_close = code
        self._server_close_sent = True
        self._pings.clear()
        if self.close.by is None:
            shown = code if code is not None else CloseCode.NO_STATUS_RCVD
            self.close = CloseInfo(Side.SERVER, int(shown), reason)
        self.state = State.CLOSING
        self._close_deadline = now + self.close_timeout

    def drop(self, code: int) -> None:
        """Hang up without a Close frame (a recorded 1006): the client sees ``code``."""
        self.close = CloseInfo(Side.SERVER, code, "")
        self.abnormal = True
        self._end()

    def stalled(self, now: float) -> bool:
        """The client read nothing for ``close_timeout`` while our output waited: hang up
        without a Close (it would never be read). True if the connection was open and
        judged (the caller reports REPLAY-CLIENT-STALLED); while closing it counts as no
        answer to our Close (RFC-CLOSE-HANDSHAKE)."""
        if self.state is State.CLOSED:
            return False
        was_open, judging = self.state is State.OPEN, self.judging and self.failure is None
        if not was_open and judging:
            self._no_answer()
        if was_open:
            self.close = CloseInfo(Side.SERVER, CloseCode.ABNORMAL_CLOSURE, "")
        self.judging = False
        self.abnormal = True
        self._end()
        return was_open and judging

    def stop(self, now: float) -> None:
        """The server is stopping: say goodbye (1001) and do not judge how the client ends."""
        self.judging = False
        if self.state is State.OPEN:
            self.send_close(CloseCode.GOING_AWAY, "wstape: server stopping", now)
        self._end()

    def fail(self, code: CloseCode, reason: str, now: float, *, hangup: bool = False) -> None:
        """Fail the connection (§7.1.7): Close with ``code``, then hang up — at once with
        ``hangup`` (the stream cannot be read any more), else once the client answers."""
        self.failure = code
        self.handler.log(f"failing the connection: {describe(code, reason)}")
        if self.state is State.OPEN:
            self.send_close(code, reason, now)
        if hangup or self._client_close is not None or self.state is not State.CLOSING:
            self._end()

    def _end(self) -> None:
        self.state = State.CLOSED
        self._close_deadline = None
        self._next_ping = None
        self.hangup = True
        self.deflate = None  # its zlib streams: nothing more is inflated or sent
        self._give_back()

    def _give_back(self) -> None:
        """Return what the message in progress took from the shared room."""
        if self._msg_held:
            assert self._room is not None
            self._room.held -= self._msg_held
            self._msg_held = 0

    @property
    def unfinished(self) -> tuple[int, int] | None:
        """The message the client has begun and not finished (no final frame yet): its
        frames and bytes so far; None when there is none."""
        if self._msg_opcode is None:
            return None
        return self._msg_frames, self._msg_size

    # -- input --------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the client (none: go on with the frames that waited); copied."""
        if self.state is State.CLOSED:
            return
        frames = self._frames
        frames.receive(data)
        self.backlogged = False
        while True:
            if self.output_paused or self.input_held or self._out_size >= self.output_limit:
                self.backlogged = frames.buffered > 0
                return
            item = frames.next_frame()
            if item is None:
                return
            if isinstance(item, StreamFailure):
                if not self.closed:
                    self.handler.report(
                        check_stream_failure(item, self.cfg, self.conn, self._t(now))
                    )
                    self.fail(CloseCode(item.code), item.rule, now, hangup=True)
                return
            if self.closed and (self._client_close is None or self.failure):
                return  # after a failure nothing more is read
            if self.failure is not None:
                # Failed, our Close sent (§7.1.7): nothing more is judged; the client's
                # Close, awaited to hang up, is all that is read of what follows.
                if item.opcode == OpCode.CLOSE:
                    self._end()
                    return
                continue
            if not self._whole_message(item, now):
                self._frame(item, now)

    def tick(self, now: float) -> None:
        """The clock reached :meth:`next_deadline` (calling early is harmless)."""
        if self.state is State.CLOSED:
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            if self.state is State.CLOSING:
                # The client never answered our Close.
                if self.failure is None and self.judging:
                    self._no_answer()
                self._end()
                return
        while self._pings and now >= self._pings[0][1]:
            payload, _ = self._pings.popleft()
            self.handler.report(check_pong(payload, None, self.cfg, self.conn, self._t(now)))
        if self.state is State.OPEN and self._next_ping is not None and now >= self._next_ping:
            self._ping(now)
            self._next_ping = now + self.ping_interval

    def _no_answer(self) -> None:
        """RFC-CLOSE-HANDSHAKE: our Close went unanswered for ``close_timeout`` and we
        hang up. Judged once: the TCP end that follows is ours, not the client's."""
        self.handler.report(
            check_close_handshake(True, False, self.cfg, self.conn, waited=self.close_timeout)
        )
        self.judging = False

    def connection_lost(self, now: float) -> None:
        """TCP is gone: settle the closing checks."""
        closed_cleanly = self._client_close is not None
        if (
            not closed_cleanly
            and self.failure is None
            and self.judging
            and not (self.close.by is Side.SERVER and self.close.code in (1006, 1015))
        ):
            self.handler.report(
                check_close_handshake(self._server_close_sent, False, self.cfg, self.conn)
            )
            if not self._server_close_sent:
                self.close = CloseInfo(Side.CLIENT, CloseCode.ABNORMAL_CLOSURE, "")
                self.handler.on_client_gone(CloseCode.ABNORMAL_CLOSURE, "", now)
        self._end()
        self._frames = FrameParser(0)
        self._reset_message()
        self._pings.clear()

    # -- frames -------------------------------------------------------------------

    def _report_and_fail(self, found: list[Violation], now: float) -> bool:
        """Report ``found``; fail the connection if one of them calls for it."""
        self.handler.report(found)
        return self._fail_for(found, now)

    def _fail_for(self, found: list[Violation], now: float) -> bool:
        """Fail the connection if a reported error in ``found`` calls for it (FAIL_CODES)."""
        codes = [
            FAIL_CODES[v.rule]
            for v in found
            if v.severity is Severity.ERROR and v.rule in FAIL_CODES
        ]
        if not codes:
            return False
        code = CloseCode.PROTOCOL_ERROR if CloseCode.PROTOCOL_ERROR in codes else codes[0]
        rule = next(v.rule for v in found if FAIL_CODES.get(v.rule) == code)
        self.fail(code, rule, now)
        return True

    def _frame(self, frame: Frame, now: float) -> None:
        """Any frame, judged in full (after :meth:`_whole_message` declined it)."""
        t = self._t(now)
        self._frame_state, found = check_frame(frame, self._frame_state, self.cfg, self.conn, t)
        opcode = frame.opcode
        if opcode == OpCode.CLOSE:
            self._close_frame(frame.payload, found, now)
            return
        if self._client_close is not None:
            self.handler.report(found)  # judged; the connection is closing, nothing more
            return
        if self._report_and_fail(found, now):
            return
        if opcode == OpCode.PING:
            # A Ping over 125 bytes (RFC-FRAME-CONTROL under --ignore) cannot be echoed
            # in a valid Pong: it goes unanswered.
            if self.state is State.OPEN and len(frame.payload) <= MAX_CONTROL_PAYLOAD:
                if self.mute_pings:
                    if self.on_muted_ping is not None:
                        self.on_muted_ping(now)
                else:
                    self._frame_out(OpCode.PONG, frame.payload)
            return
        if opcode == OpCode.PONG:
            self._pong(frame.payload, now)
            return
        if opcode not in (OpCode.TEXT, OpCode.BINARY, OpCode.CONTINUATION):
            return  # a reserved opcode someone told us to --ignore
        if opcode == OpCode.CONTINUATION:
            if self._msg_opcode is None:
                return
        else:
            self._reset_message()
            self._msg_opcode = opcode
            self._msg_utf8 = Utf8Stream() if opcode == OpCode.TEXT else None
        payload = frame.payload
        if self.deflate is not None:
            inflated = self._inflate(frame, now, t)
            if inflated is None:
                return
            payload = inflated
        if not self._add_fragment(payload, now, t):
            return
        utf8 = self._msg_utf8
        if utf8 is not None and not utf8.feed(payload, final=frame.fin):
            # Invalid (or cut) UTF-8: judged now, not at the end of a long message.
            self._msg_utf8 = None
            if self._report_and_fail(
                check_text(self._message_so_far(), self.cfg, self.conn, t), now
            ):
                self._reset_message()
                return
        if not frame.fin:
            return
        payload = self._message_so_far()
        kind = Opcode.TEXT if self._msg_opcode == OpCode.TEXT else Opcode.BINARY
        self._reset_message()
        if self.state is State.OPEN:
            self.handler.on_message(kind, payload, now)

    def _whole_message(self, frame: Frame, now: float) -> bool:
        """The frame nearly every message is, handled at the least cost: a whole text or
        binary message in which the frame rules find nothing (:meth:`FrameState.plain`),
        within the limits, valid UTF-8 if text, on an open connection with nothing
        extension-specific to do. False (nothing done) for anything else: :meth:`_frame`
        judges it in full, the same rules with their violations."""
        state = self._frame_state
        if (
            not state.plain(frame)
            or state.deflate
            or self.state is not State.OPEN
            or self._client_close is not None
            or self._msg_opcode is not None
            or len(frame.payload) > self.max_message_size
            or self.max_fragments < 1
        ):
            return False
        payload = frame.payload
        if frame.opcode == OpCode.TEXT:
            if not payload.isascii():  # ASCII is UTF-8, and isascii() copies nothing
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    return False
            self.handler.on_message(Opcode.TEXT, payload, now)
        else:
            self.handler.on_message(Opcode.BINARY, payload, now)
        return True

    def _inflate(self, frame: Frame, now: float, t: float) -> bytes | None:
        """The frame's payload inflated (as is if its message is not compressed), at most
        one byte more than the message may still grow (so :meth:`_add_fragment` sees it
        is over); None once the connection is failed: 1009 for a message that inflates
        past ``max_message_size`` (RFC-MESSAGE-TOO-BIG), 1002 for data that is not
        DEFLATE (RFC-DEFLATE-DATA)."""
        assert self.deflate is not None
        budget = self.max_message_size - self._msg_size + 1
        try:
            return self.deflate.decode(frame, budget)
        except DeflateError as e:
            self._reset_message()
            if isinstance(e, TooBig):
                self.handler.report(
                    message_too_big(
                        "bytes inflated",
                        self.max_message_size + 1,
                        self.max_message_size,
                        "--max-size",
                        self.cfg,
                        self.conn,
                        t,
                    )
                )
                self.fail(CloseCode.MESSAGE_TOO_BIG, "RFC-MESSAGE-TOO-BIG", now)
            else:
                found = deflate_failure(str(e), self.cfg, self.conn, t)
                if not self._report_and_fail(found, now):
                    # --ignore RFC-DEFLATE-DATA: the message cannot be read all the same.
                    self.fail(CloseCode.PROTOCOL_ERROR, "RFC-DEFLATE-DATA", now)
            self.deflate = None  # its stream is broken; what still comes is not used
            return None

    def _add_fragment(self, payload: bytes, now: float, t: float) -> bool:
        """Add a frame's payload to the message in progress; False (and the connection
        failed with 1009, §7.4.1) once the message is over --max-size bytes or
        --max-fragments frames. The limits hold whether or not the rule is reported."""
        self._msg_frames += 1
        self._msg_size += len(payload)
        if self._msg_size > self.max_message_size:
            found = message_too_big(
                "bytes", self._msg_size, self.max_message_size, "--max-size", self.cfg, self.conn, t
            )
        elif self._msg_frames > self.max_fragments:
            found = message_too_big(
                "fragments",
                self._msg_frames,
                self.max_fragments,
                "--max-fragments",
                self.cfg,
                self.conn,
                t,
            )
        elif (room := self._room) is not None and room.held + len(payload) > room.limit:
            self.handler.log(
                f"refusing the rest of a message: the unfinished messages of all "
                f"connections hold {room.held:,} bytes, {room.limit:,} at most "
                f"({MessageRoom.PER_MAX_SIZE} x --max-size)"
            )
            self._reset_message()
            self.fail(CloseCode.TRY_AGAIN_LATER, "wstape: server busy", now)
            return False
        else:
            if room is not None:
                room.held += len(payload)
                self._msg_held += len(payload)
            if self._msg_buf is not None:
                self._msg_buf += payload
            elif self._msg_first is None:
                self._msg_first = payload
            else:
                self._msg_buf = bytearray(self._msg_first)
                self._msg_buf += payload
                self._msg_first = None
            return True
        self.handler.report(found)
        self._reset_message()
        self.fail(CloseCode.MESSAGE_TOO_BIG, "RFC-MESSAGE-TOO-BIG", now)
        return False

    def _message_so_far(self) -> bytes:
        if self._msg_buf is not None:
            return bytes(self._msg_buf)
        return self._msg_first if self._msg_first is not None else b""

    def _reset_message(self) -> None:
        self._give_back()
        self._msg_opcode = None
        self._msg_first = None
        self._msg_buf = None
        self._msg_size = 0
        self._msg_frames = 0
        self._msg_utf8 = None

    def _pong(self, payload: bytes, now: float) -> None:
        if not self._pings:
            return  # unsolicited Pongs are allowed (§5.5.3)
        for i, (expected, _) in enumerate(self._pings):
            if payload == expected:
                # Answering the latest Ping only is allowed; older ones are settled too.
                for _ in range(i + 1):
                    self._pings.popleft()
                return
        latest, _ = self._pings.pop()
        self._pings.clear()
        self.handler.report(check_pong(latest, payload, self.cfg, self.conn, self._t(now)))

    def _ping(self, now: float) -> None:
        self._ping_count += 1
        payload = f"wstape {self._ping_count}".encode()
        self._frame_out(OpCode.PING, payload)
        self._pings.append((payload, now + self.close_timeout))

    # -- closing ------------------------------------------------------------------

    def _close_frame(self, body: bytes, frame_found: list[Violation], now: float) -> None:
        if self._client_close is not None:
            self.handler.report(frame_found)
            return
        self._client_close = body
        self._pings.clear()
        started_by_client = not self._server_close_sent
        found = frame_found + check_client_close(
            body,
            self.cfg,
            conn=self.conn,
            started_by_client=started_by_client,
            server_code=self._server_close,
            t=self._t(now),
        )
        code, raw_reason = split_close_body(body)
        reason = raw_reason.decode("utf-8", "replace")
        self.handler.report(found)
        if started_by_client and self.failure is None:
            self.handler.on_client_gone(
                code if code is not None else CloseCode.NO_STATUS_RCVD, reason, now
            )
        if self.state is State.CLOSING:
            # The client's answer to our Close: the closing handshake is complete.
            self.abnormal = self.failure is not None
            self._end()
            return
        self.close = CloseInfo(
            Side.CLIENT, code if code is not None else CloseCode.NO_STATUS_RCVD, reason
        )
        self.abnormal = False
        if self._fail_for(found, now):
            return
        # Echo the code (§5.5.1); an empty Close gets an empty Close, and so does a code
        # that may not be sent (a rule about it under --ignore let it through).
        echo = code if code is not None and is_sendable(code) else None
        self._emit(encode_frame(OpCode.CLOSE, encode_close_body(echo)))
        self._server_close_sent = True
        self._end()


__all__ = [
    "FAIL_CODES",
    "OUTPUT_LIMIT",
    "CloseInfo",
    "Handler",
    "MessageRoom",
    "ServerProtocol",
    "State",
    "cut_reason",
]
