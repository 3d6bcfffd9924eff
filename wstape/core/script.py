"""The replay script: what the replay server does with a client, decided without I/O.

Three layers, each driven by the one below it in ``wstape.replay.server`` with bytes and
a clock (``now``, monotonic seconds), never with sockets:

- :class:`Script` walks the recorded events of one connection: which server message is
  due and when, which client message is expected next, how a live message is matched,
  which request/reply pairs are heartbeats answered whenever they arrive, how it ends.
- :class:`LiveConnection` is one client connection: the HTTP upgrade, every frame through
  the rules, reassembly, ping/pong, the closing handshake, failing the connection as
  RFC 6455 says when the client breaks the protocol. Bytes in (:meth:`receive_data`),
  bytes out (:meth:`data_to_send`), a deadline (:meth:`next_deadline`).
- :class:`ReplaySession` is one run: connection selection, session rules (socket limit,
  reconnect backoff, reused keys), the violations and the report.

Timing (DESIGN.md "Replay semantics"): a recorded server message at offset ``t`` is due
at ``anchor_live + (t - anchor_recorded) / speed`` (no delay at all for speed 0), where the
anchor is the connection's open or the arrival of the client message that preceded it in
the recording; so it is never sent before that client message has arrived, and recorded
gaps are kept without drift. A recorded client message is awaited until ``max(now, due) + timeout``.

Heartbeats: a client message that the recording answers with the same reply every time,
at least twice (``{"type":"ping"}`` -> ``{"type":"pong"}``), is a heartbeat. A live
heartbeat is answered whenever it arrives; recorded heartbeat steps are optional: matched
if the client sends them in place, skipped when something else comes (or nothing, within
the timeout), and consumed by a heartbeat the client sent early.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from wstape.core.closecodes import CloseCode, describe
from wstape.core.frames import (
    DEFAULT_MAX_FRAME_SIZE,
    Frame,
    FrameError,
    FrameParser,
    OpCode,
    encode_close_body,
    encode_frame,
    split_close_body,
)
from wstape.core.handshake import (
    HttpError,
    RequestParser,
    Response,
    accept_response,
    answered,
    error_response,
    recorded_refusal,
    refusal_for,
)
from wstape.core.lint import client_group
from wstape.core.matchers import MATCHERS, match, matcher_names, parse_path
from wstape.core.model import Close, Message, Opcode, Open, Side, TlsInfo
from wstape.core.report import CloseResult, ConnectionResult, Report, build_report
from wstape.core.rules import (
    FrameState,
    ReconnectEpisode,
    RuleConfig,
    Severity,
    Utf8Stream,
    Violation,
    check_client_close,
    check_close_changed,
    check_close_handshake,
    check_connect_timeout,
    check_early_data,
    check_frame,
    check_pong,
    check_request,
    check_response,
    check_socket_limit,
    check_subprotocol_change,
    check_text,
    client_silent,
    message_json,
    message_mismatch,
    send_type,
    unmatched_connection,
    unplayed,
    violation,
)

# A client frame breaking one of these rules fails the connection with this close code
# (RFC 6455 §7.1.7 "Fail the WebSocket Connection"; 1007 for bad UTF-8, §8.1). Only
# violations that were reported count: ``--ignore RULE`` makes the server tolerant.
FAIL_CODES: dict[str, int] = {
    "RFC-FRAME-MASK": 1002,
    "RFC-FRAME-RSV": 1002,
    "RFC-FRAME-OPCODE": 1002,
    "RFC-FRAME-CONTROL": 1002,
    "RFC-FRAME-FRAGMENTS": 1002,
    "RFC-CLOSE-PAYLOAD": 1002,
    "RFC-CLOSE-CODE": 1002,
    "RFC-CLOSE-REASON-LENGTH": 1002,
    "RFC-TEXT-UTF8": 1007,
    "RFC-CLOSE-REASON-UTF8": 1007,
}

SEND_BUDGET = 256
"""Server messages sent per wake-up before yielding to other connections: a long burst at
``--speed 0`` must not starve the others or fill the socket buffer unchecked."""

HEARTBEAT_MAX_PAYLOAD = 512
"""Longer messages are never heartbeats (keeps the index small for huge cassettes)."""
HEARTBEAT_MAX_CANDIDATES = 4096
HEARTBEAT_MIN_REPEATS = 2


@dataclass(frozen=True)
class ScriptOptions:
    """How a recording is replayed (the ``wstape replay`` options that are not rules).

    Raises ValueError for an unknown matcher, a malformed ignore path or a negative
    speed or timeout.
    """

    match: str = "exact"
    """``exact``, ``json``, ``type`` or ``any`` (see :mod:`wstape.core.matchers`)."""
    ignore_json_paths: tuple[str, ...] = ()
    speed: float = 1.0
    """1 = recorded timing, 2 = twice as fast, 0.5 = half as fast, 0 = no delays."""
    timeout: float = 10.0
    """Seconds to wait for an expected client message or Close."""
    ignore_query: bool = False
    """Select recorded connections by path only."""
    loop: bool = False
    """Replay recorded connections again once all of a path have been played."""
    ping_interval: float = 0.0
    """Send a Ping every this many seconds while open (0 = never)."""
    fragment_size: int = 0
    """Send server messages longer than this in fragments, with a Ping after the first
    fragment (0 = never fragment)."""
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    max_message_size: int = DEFAULT_MAX_FRAME_SIZE
    handshake_delay: float = 0.0
    """Hold the 101 back this many seconds, to see when the client gives up
    (WX-CONNECT-TIMEOUT); 0 = answer at once."""
    connect_timeout: float = 60.0
    """The handshake timeout the client promises (wx.connectSocket's ``timeout``, 60 s
    unless the app's ``networkTimeout.connectSocket`` says otherwise)."""

    def __post_init__(self) -> None:
        if self.match not in MATCHERS:
            raise ValueError(
                f"unknown matcher {self.match!r}; choose one of {', '.join(matcher_names())}"
            )
        for path in self.ignore_json_paths:
            parse_path(path)
        if self.speed < 0:
            raise ValueError(f"speed must be 0 or more: {self.speed}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive: {self.timeout}")
        if self.ping_interval < 0 or self.fragment_size < 0:
            raise ValueError("ping interval and fragment size must be 0 or more")
        if self.handshake_delay < 0 or self.connect_timeout <= 0:
            raise ValueError("handshake delay must be 0 or more, connect timeout positive")


# -- what the index knows about a recorded connection ---------------------------------


MessageKey = tuple[Opcode, bytes]


@dataclass(frozen=True)
class RecordedConnection:
    """One recorded connection, as known before replaying it (from one pass of indexing).

    ``heartbeats`` maps a heartbeat request to its reply; ``messages_expected`` counts
    the client messages that must be matched, heartbeats excluded.
    """

    open: Open
    close: Close | None = None
    messages_client: int = 0
    messages_server: int = 0
    heartbeats: dict[MessageKey, MessageKey] = field(default_factory=dict, hash=False)
    messages_expected: int = 0

    @property
    def conn(self) -> int:
        return self.open.conn


@dataclass(slots=True)
class _Candidate:
    occurrences: int = 0
    pairs: int = 0
    reply: MessageKey | None = None
    consistent: bool = True


class HeartbeatFinder:
    """Find the heartbeat pairs of one connection while its messages stream past.

    A heartbeat is a client message followed, at least :data:`HEARTBEAT_MIN_REPEATS`
    times, by the same server reply, and never by another one. Memory is bounded: only
    messages up to :data:`HEARTBEAT_MAX_PAYLOAD` bytes are candidates, and at most
    :data:`HEARTBEAT_MAX_CANDIDATES` distinct ones are tracked.
    """

    def __init__(self) -> None:
        self._candidates: dict[MessageKey, _Candidate] = {}
        self._pending: _Candidate | None = None
        self.client_messages = 0
        self.server_messages = 0

    def add(self, message: Message) -> None:
        if message.side is Side.CLIENT:
            self.client_messages += 1
            self._pending = None
            if len(message.payload) > HEARTBEAT_MAX_PAYLOAD:
                return
            key = (message.opcode, message.payload)
            entry = self._candidates.get(key)
            if entry is None:
                if len(self._candidates) >= HEARTBEAT_MAX_CANDIDATES:
                    return
                entry = self._candidates[key] = _Candidate()
            entry.occurrences += 1
            self._pending = entry
            return
        self.server_messages += 1
        entry = self._pending
        if entry is None:
            return
        self._pending = None
        reply = (message.opcode, message.payload)
        if entry.reply is None:
            entry.reply = reply
        elif entry.reply != reply:
            entry.consistent = False
        entry.pairs += 1

    def table(self) -> dict[MessageKey, MessageKey]:
        """Heartbeat request -> reply."""
        return {
            key: c.reply
            for key, c in self._candidates.items()
            if c.consistent and c.reply is not None and c.pairs >= HEARTBEAT_MIN_REPEATS
        }

    def summarise(self, op: Open, close: Close | None) -> RecordedConnection:
        table = self.table()
        heartbeat_messages = sum(self._candidates[k].occurrences for k in table)
        return RecordedConnection(
            open=op,
            close=close,
            messages_client=self.client_messages,
            messages_server=self.server_messages,
            heartbeats=table,
            messages_expected=self.client_messages - heartbeat_messages,
        )


# -- the script of one connection ------------------------------------------------------


@dataclass(frozen=True)
class SendMessage:
    opcode: Opcode
    payload: bytes


@dataclass(frozen=True)
class SendClose:
    """Send a Close frame: ``code`` None for an empty body (the client sees 1005)."""

    code: int | None
    reason: str = ""


@dataclass(frozen=True)
class Drop:
    """Drop TCP without a Close frame (a recorded 1006 or 1015)."""

    code: int


Action = SendMessage | SendClose | Drop


class Step(Enum):
    RUNNING = "running"
    AWAIT_CLOSE = "await-close"
    """The recording ends with the client's Close: wait for it."""
    IDLE = "idle"
    """The recording stopped while the connection was open: wait, then go away."""
    DONE = "done"


class Script:
    """Walk the recorded events of one connection against a live client.

    The caller feeds live client messages (:meth:`on_message`) and the clock
    (:meth:`poll`), executes the returned actions, and wakes it again at :attr:`deadline`.
    Violations (mismatch, wrong type, silence) are appended to :attr:`violations`.
    """

    def __init__(
        self,
        recorded: RecordedConnection,
        events: Iterable[Message | Close],
        cfg: RuleConfig,
        options: ScriptOptions,
        now: float,
    ) -> None:
        self.recorded = recorded
        self.conn = recorded.conn
        self.cfg = cfg
        self.options = options
        self.opened_at = now
        self._events = iter(events)
        self._ahead: deque[Message | Close] = deque()
        self._anchor_live = now
        self._anchor_rec = 0.0
        self._queue: deque[tuple[Opcode, bytes, float]] = deque()
        self._credits: Counter[MessageKey] = Counter()
        self._wait_since: float | None = None
        self.state = Step.RUNNING
        self.deadline: float | None = None
        self.matched = 0
        self.heartbeats_answered = 0
        self.violations: list[Violation] = []
        self.expected_close: Close | None = None
        self.silent = False

    # -- event stream -------------------------------------------------------------

    def _peek(self, i: int = 0) -> Message | Close | None:
        while len(self._ahead) <= i:
            event = next(self._events, None)
            if event is None:
                return None
            self._ahead.append(event)
        return self._ahead[i]

    def _pop(self) -> Message | Close:
        self._peek()
        return self._ahead.popleft()

    def _is_heartbeat(self, event: Message) -> bool:
        return (event.opcode, event.payload) in self.recorded.heartbeats

    def _due(self, t: float) -> float:
        speed = self.options.speed
        if speed == 0:
            return self._anchor_live
        return self._anchor_live + max(0.0, t - self._anchor_rec) / speed

    def _t(self, now: float) -> float:
        return round(now - self.opened_at, 6)

    @property
    def messages_expected(self) -> int:
        """The client messages to match (heartbeats excluded), for the report."""
        return self.recorded.messages_expected

    # -- input ----------------------------------------------------------------------

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> list[Action]:
        """A complete client message arrived."""
        actions: list[Action] = []
        key = (opcode, payload)
        reply = self.recorded.heartbeats.get(key)
        if reply is not None and not self._awaiting_exactly(key):
            # Out of order: answer now; a recorded step for it later is then already done.
            actions.append(SendMessage(*reply))
            self._credits[key] += 1
            self.heartbeats_answered += 1
            return actions
        if self.state is Step.IDLE:
            return actions  # the recording stopped here; what follows was never recorded
        if self.state is not Step.RUNNING:
            self._unexpected(opcode, payload, now)
            return actions
        self._queue.append((opcode, payload, now))
        actions += self.poll(now)
        return actions

    def _awaiting_exactly(self, key: MessageKey) -> bool:
        if self._queue or self.state is not Step.RUNNING:
            return False
        event = self._peek()
        return (
            isinstance(event, Message)
            and event.side is Side.CLIENT
            and (event.opcode, event.payload) == key
        )

    def poll(self, now: float) -> list[Action]:
        """Advance as far as the clock and the client's messages allow."""
        actions: list[Action] = []
        if self.state is not Step.RUNNING:
            return actions
        self.deadline = None
        budget = SEND_BUDGET
        while self.state is Step.RUNNING:
            if budget <= 0:
                self.deadline = now  # more is due: come back after the others had a turn
                break
            event = self._peek()
            if event is None:
                self._flush_unexpected(now)
                self.state = Step.IDLE
                self.deadline = now + self.options.timeout
                break
            if isinstance(event, Close):
                if not self._at_close(event, now, actions):
                    break
                continue
            if event.side is Side.SERVER:
                due = self._due(event.t)
                if due > now:
                    self.deadline = due
                    break
                self._pop()
                actions.append(SendMessage(event.opcode, event.payload))
                budget -= 1
                continue
            if not self._at_client_message(event, now, actions):
                break
        return actions

    def _at_client_message(self, event: Message, now: float, actions: list[Action]) -> bool:
        """Handle the expected client ``event``; False to wait for the client."""
        key = (event.opcode, event.payload)
        if self._is_heartbeat(event):
            if self._credits[key] > 0:
                self._credits[key] -= 1
                self._skip_heartbeat(event)
                return True
            if self._queue:
                opcode, payload, arrived = self._queue[0]
                if (opcode, payload) == key:
                    self._queue.popleft()
                    self._pop()
                    self._anchor(arrived, event.t)
                    self.heartbeats_answered += 1
                else:
                    self._skip_heartbeat(event)
                return True
            return self._wait(event, now, heartbeat=True)
        if not self._queue:
            return self._wait(event, now, heartbeat=False)
        opcode, payload, arrived = self._queue.popleft()
        self._pop()
        self._wait_since = None
        self._anchor(arrived, event.t)
        self._judge(event, opcode, payload, arrived)
        return True

    def _wait(self, event: Message, now: float, *, heartbeat: bool) -> bool:
        if self._wait_since is None:
            self._wait_since = now
        if heartbeat:
            # Heartbeats are answered whenever they come; in place, they hold the script
            # back only until their recorded time.
            limit = self._due(event.t)
        else:
            limit = max(self._wait_since, self._due(event.t)) + self.options.timeout
        if now < limit:
            self.deadline = limit
            return False
        self._wait_since = None
        if heartbeat:
            self._skip_heartbeat(event)
            return True
        self.violations += client_silent(
            self.conn, event, self.options.timeout, self.cfg, self._t(now)
        )
        self.silent = True
        self.state = Step.DONE
        return False

    def _skip_heartbeat(self, event: Message) -> None:
        """Drop a recorded heartbeat request and the reply that follows it."""
        self._pop()
        self._wait_since = None
        reply = self.recorded.heartbeats[(event.opcode, event.payload)]
        nxt = self._peek()
        if (
            isinstance(nxt, Message)
            and nxt.side is Side.SERVER
            and (nxt.opcode, nxt.payload) == reply
        ):
            self._pop()

    def _anchor(self, live: float, recorded_t: float) -> None:
        self._anchor_live = live
        self._anchor_rec = recorded_t

    def _judge(self, expected: Message, opcode: Opcode, payload: bytes, arrived: float) -> None:
        t = self._t(arrived)
        found: list[Violation] = []
        if opcode is not expected.opcode:
            found += send_type(self.conn, expected, opcode, self.cfg, t)
        # A changed type is WX-SEND-TYPE alone; the matcher then judges the payload.
        result = match(
            self.options.match, expected, expected.opcode, payload, self.options.ignore_json_paths
        )
        if not result.ok:
            found += message_mismatch(
                self.conn, expected, opcode, payload, result.diff, self.cfg, t
            )
        elif opcode is expected.opcode:
            self.matched += 1
        self.violations += found

    def _at_close(self, close: Close, now: float, actions: list[Action]) -> bool:
        """Reach the recorded end; False while it is not due yet."""
        if close.by is Side.CLIENT:
            self._flush_unexpected(now)
            self._pop()
            self.expected_close = close
            self.state = Step.AWAIT_CLOSE
            self.deadline = max(now, self._due(close.t)) + self.options.timeout
            return False
        due = self._due(close.t)
        if due > now:
            self.deadline = due
            return False
        self._flush_unexpected(now)
        self._pop()
        if close.by is None:
            self.state = Step.IDLE
            self.deadline = now + self.options.timeout
            return False
        self.state = Step.DONE
        if close.code in (CloseCode.ABNORMAL_CLOSURE, CloseCode.TLS_HANDSHAKE):
            actions.append(Drop(close.code))
        elif close.code is None or close.code == CloseCode.NO_STATUS_RCVD:
            actions.append(SendClose(None))
        else:
            actions.append(SendClose(close.code, close.reason))
        return False

    def _flush_unexpected(self, now: float) -> None:
        while self._queue:
            opcode, payload, arrived = self._queue.popleft()
            self._unexpected(opcode, payload, arrived)

    def _unexpected(self, opcode: Opcode, payload: bytes, now: float) -> None:
        found = violation(
            "REPLAY-MESSAGE-MISMATCH",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client sent a {opcode.value} message the recording does not have at this "
            "point; expected no more client messages",
            expected=None,
            actual=message_json(opcode, payload),
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)

    def give_up(self, now: float) -> None:
        """The client did not close when the recording says it did: report it once."""
        close = self.expected_close
        found = violation(
            "REPLAY-CLIENT-SILENT",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client did not close within {self.options.timeout:g} s; expected its Close "
            f"with {describe(close.code if close else None, close.reason if close else '')}",
            expected={"close": close.code if close else None},
            actual=None,
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)
        self.silent = True
        self.state = Step.DONE

    def unplayed_messages(self) -> int:
        """Count the recorded messages never reached (heartbeats excepted), consuming them."""
        count = 0
        for event in itertools.chain(self._ahead, self._events):
            if isinstance(event, Message) and not (
                self._is_heartbeat(event)
                or (
                    event.side is Side.SERVER
                    and (event.opcode, event.payload) in self.recorded.heartbeats.values()
                )
            ):
                count += 1
        self._ahead.clear()
        return count


# -- one live connection ---------------------------------------------------------------


class Phase(Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"
    """We sent a Close and wait for the client's."""
    CLOSED = "closed"


@dataclass
class CloseInfo:
    """How a live connection ended, for the report."""

    by: Side | None = None
    code: int | None = None
    reason: str = ""


EventSource = Callable[[int], Iterator[Message | Close]]
"""Gives the recorded events (messages and close, in order) of a recorded connection."""


class LiveConnection:
    """One client connection, from its first byte to the end of TCP, without I/O."""

    def __init__(
        self,
        session: ReplaySession,
        *,
        client: str,
        scheme: str,
        tls: TlsInfo | None,
        now: float,
        wall: float,
    ) -> None:
        self.session = session
        self.cfg = session.cfg
        self.options = session.options
        self.client = client
        self.started = now
        self.phase = Phase.HANDSHAKE
        self.request: Open | None = None
        self.recorded: RecordedConnection | None = None
        self.script: Script | None = None
        self.close = CloseInfo()
        self.failed = False
        self.close_after_flush = False
        """The transport should be closed once :meth:`data_to_send` is written."""
        self.closed = False
        self._out: list[bytes] = []
        self._parser = RequestParser(scheme=scheme, client=client, tls=tls, started_at=wall)
        self._frames = FrameParser(self.options.max_frame_size)
        self._state = FrameState()
        self._msg_opcode: int | None = None
        self._msg_parts: list[bytes] = []
        self._msg_size = 0
        self._msg_utf8: Utf8Stream | None = None
        """Validates the text message in progress fragment by fragment (fail fast, §8.1)."""
        self._server_close: int | None = None
        self._server_close_sent = False
        self._client_close_seen = False
        self._close_deadline: float | None = None
        self._pings: deque[tuple[bytes, float]] = deque()
        self._ping_count = 0
        self._next_ping: float | None = None
        self._abnormal = True
        self.upgraded = False
        self.serial = 0
        self.stopping = False
        self.played = False
        """A recorded connection was claimed for this client (answered 101 or its refusal)."""
        self.status: int | None = None
        """The HTTP status answered (101, or a refusal)."""
        self._accept_at: float | None = None
        """When a held-back 101 is due (``handshake_delay``)."""
        self._held: list[bytes] = []
        """Bytes the client sent while its 101 was held back."""

    @property
    def conn(self) -> int | None:
        return self.recorded.conn if self.recorded is not None else None

    @property
    def path(self) -> str:
        if self.request is not None:
            return self.request.path
        return ""

    def _t(self, now: float) -> float:
        return round(now - self.started, 6)

    def _report(self, found: Iterable[Violation | None]) -> None:
        for v in found:
            if v is not None:
                self.session.add_violation(v)

    # -- output ---------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Bytes to write now (possibly empty)."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_deadline(self) -> float | None:
        times = [
            t
            for t in (
                self._close_deadline,
                self._accept_at
                if self._accept_at is not None
                else self.started + self.options.timeout
                if self.phase is Phase.HANDSHAKE
                else None,
                self.script.deadline
                if self.script is not None and self.phase is Phase.OPEN
                else None,
                self._next_ping,
                self._pings[0][1] if self._pings else None,
            )
            if t is not None
        ]
        return min(times) if times else None

    def _send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self._out.append(encode_frame(opcode, payload, fin=fin))

    # -- input ----------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the client."""
        if self.closed or self.close_after_flush:
            return
        if self._accept_at is not None:
            self._held.append(data)  # early data: judged when the 101 goes out
            return
        if self.phase is Phase.HANDSHAKE:
            result = self._parser.feed(data)
            if result is None:
                return
            self._handshake(result, now)
            if not self.upgraded:
                return
            data = self._parser.leftover
            if not data:
                return
        self._feed_frames(data, now)

    def _feed_frames(self, data: bytes, now: float) -> None:
        for item in self._frames.feed(data):
            if self.closed:
                break
            if self.close_after_flush:
                # Frames that came with (after) the client's Close are still judged, e.g.
                # RFC-DATA-AFTER-CLOSE, but nothing is done with them.
                if not self._client_close_seen or self.failed or isinstance(item, FrameError):
                    break
            if isinstance(item, FrameError):
                self._fail(item.code, item.reason, now)
                # The stream cannot be read any more, so the client's Close could never
                # be seen: hang up right after ours (§7.1.7).
                self.close_after_flush = True
                break
            self._frame(item, now)

    def receive_eof(self, now: float) -> None:
        """The client closed its side of TCP (or the connection broke)."""
        self.connection_lost(now)

    def tick(self, now: float) -> None:
        """The clock reached :meth:`next_deadline` (calling early is harmless)."""
        if self.closed or self.close_after_flush:
            return
        if self._accept_at is not None:
            if now >= self._accept_at:
                self._accept_at = None
                self._report(
                    check_connect_timeout(
                        self.options.handshake_delay,
                        None,
                        self.cfg,
                        self.conn,
                        timeout=self.options.connect_timeout,
                    )
                )
                self._accept(now)
            return
        if self.phase is Phase.HANDSHAKE:
            if now >= self.started + self.options.timeout:
                # No complete request in time (a probe, a preconnect): hang up quietly.
                self.close_after_flush = True
            return
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            if self.phase is Phase.CLOSING:
                # The client never answered our Close.
                if not self.failed:
                    self._report(check_close_handshake(True, False, self.cfg, self.conn))
                self.close_after_flush = True
                return
        while self._pings and now >= self._pings[0][1]:
            payload, _ = self._pings.popleft()
            self._report(check_pong(payload, None, self.cfg, self.conn, self._t(now)))
        if self.phase is not Phase.OPEN:
            return
        if self._next_ping is not None and now >= self._next_ping:
            self._ping(now)
            self._next_ping = now + self.options.ping_interval
        self._run_script(now, None)

    # -- handshake ------------------------------------------------------------------

    def _handshake(self, result: Open | HttpError, now: float) -> None:
        session = self.session
        if isinstance(result, HttpError):
            self._report(
                [
                    violation(
                        "RFC-HS-METHOD",
                        Severity.ERROR,
                        self.cfg,
                        None,
                        f"not a WebSocket upgrade request ({result.message}); expected "
                        "GET over HTTP/1.1",
                        expected="GET HTTP/1.1",
                        actual=result.message,
                    )
                ]
            )
            self._respond(error_response(result.status, result.message), now)
            return
        req = result
        candidate = session.select(req)
        conn = candidate.conn if candidate is not None else 0
        req = replace(req, conn=conn)
        self.request = req
        self.recorded = candidate
        found = check_request(req, self.cfg, seen_keys=session.seen_keys(req))
        found += check_early_data(len(self._parser.leftover), self.cfg, conn)
        if candidate is not None:
            found += check_subprotocol_change(req, candidate.open, self.cfg)
        else:
            found += unmatched_connection(
                req.target if not self.options.ignore_query else req.path,
                self.cfg,
                None,
                known_paths=session.known_paths(),
            )
        if candidate is None:
            found = [replace(v, conn=None) for v in found]
        self._report(found)
        session.connecting(self, req, now)

        refusal = refusal_for(req)
        if refusal is not None:
            self._respond(refusal, now)
            return
        if candidate is None:
            self._respond(error_response(404, f"no recorded connection for {req.target}"), now)
            return
        session.claim(candidate)
        self.played = True
        if not candidate.open.accepted:
            self._respond(recorded_refusal(candidate.open), now)
            return
        if self.options.handshake_delay > 0:
            self._accept_at = now + self.options.handshake_delay
            leftover = self._parser.leftover
            if leftover:
                self._held.append(leftover)
            return
        self._accept(now)

    def _accept(self, now: float) -> None:
        """Answer 101 and start the script."""
        req, candidate, session = self.request, self.recorded, self.session
        assert req is not None and candidate is not None
        response = accept_response(req, candidate.open)
        self._report(check_response(answered(req, response), self.cfg))
        self._out.append(response.to_bytes())
        self.status = 101
        self.phase = Phase.OPEN
        self.upgraded = True
        self.started = now
        session.opened(self, now)
        if self.options.ping_interval > 0:
            self._next_ping = now + self.options.ping_interval
        self.script = session.new_script(candidate, now)
        self._run_script(now, None)
        if self._held:
            held = b"".join(self._held)
            self._held = []
            self._report(check_early_data(len(held), self.cfg, self.conn))
            self._feed_frames(held, now)

    def _respond(self, response: Response, now: float) -> None:
        self.status = response.status
        self._out.append(response.to_bytes())
        self.close_after_flush = True

    # -- frames ---------------------------------------------------------------------

    def _frame(self, frame: Frame, now: float) -> None:
        t = self._t(now)
        self._state, found = check_frame(frame, self._state, self.cfg, self.conn, t)
        opcode = frame.opcode
        if opcode == OpCode.CLOSE:
            self._close_frame(frame.payload, found, now)
            return
        self._report(found)
        if self._client_close_seen:
            return  # judged above; the connection is closing, nothing more is done with it
        if self._fail_for(found, now):
            return
        if opcode == OpCode.PING:
            if self.phase is Phase.OPEN:
                self._send_frame(OpCode.PONG, frame.payload)
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
            self._msg_opcode = opcode
            self._msg_parts = []
            self._msg_size = 0
            self._msg_utf8 = Utf8Stream() if opcode == OpCode.TEXT else None
        self._msg_size += len(frame.payload)
        if self._msg_size > self.options.max_message_size:
            self._fail(1009, f"message over {self.options.max_message_size} bytes", now)
            return
        self._msg_parts.append(frame.payload)
        utf8 = self._msg_utf8
        if utf8 is not None and not utf8.feed(frame.payload, final=frame.fin):
            # Invalid (or cut) UTF-8: judged now, not at the end of a long message.
            self._msg_utf8 = None
            bad = check_text(b"".join(self._msg_parts), self.cfg, self.conn, t)
            self._report(bad)
            if self._fail_for(bad, now):
                self._msg_opcode = None
                self._msg_parts = []
                return
        if not frame.fin:
            return
        payload = self._msg_parts[0] if len(self._msg_parts) == 1 else b"".join(self._msg_parts)
        kind = Opcode.TEXT if self._msg_opcode == OpCode.TEXT else Opcode.BINARY
        self._msg_opcode = None
        self._msg_parts = []
        self._msg_utf8 = None
        if self.phase is Phase.OPEN:
            self._run_script(now, (kind, payload))

    def _fail_for(self, found: list[Violation], now: float) -> bool:
        codes = [
            FAIL_CODES[v.rule]
            for v in found
            if v.severity is Severity.ERROR and v.rule in FAIL_CODES
        ]
        if not codes:
            return False
        code = 1002 if 1002 in codes else codes[0]
        rule = next(v.rule for v in found if FAIL_CODES.get(v.rule) == code)
        self._fail(code, rule, now)
        return True

    def _fail(self, code: int, reason: str, now: float) -> None:
        """Fail the WebSocket connection (§7.1.7): Close with ``code``, then hang up."""
        self.failed = True
        self.session.log(self, f"failing the connection: {describe(code, reason)}")
        if self.phase is Phase.OPEN:
            # A Close reason is at most 123 bytes (§5.5); cut on a character boundary.
            short = reason.encode("utf-8")[:123].decode("utf-8", "ignore")
            self._send_close(code, short, now)
        if self._client_close_seen or self.phase is not Phase.CLOSING:
            self.close_after_flush = True

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
        self._report(check_pong(latest, payload, self.cfg, self.conn, self._t(now)))

    def _ping(self, now: float) -> None:
        self._ping_count += 1
        payload = f"wstape {self._ping_count}".encode()
        self._send_frame(OpCode.PING, payload)
        self._pings.append((payload, now + self.options.timeout))

    # -- closing --------------------------------------------------------------------

    def _close_frame(self, body: bytes, frame_found: list[Violation], now: float) -> None:
        if self._client_close_seen:
            self._report(frame_found)
            return
        self._client_close_seen = True
        self._pings.clear()
        t = self._t(now)
        started_by_client = not self._server_close_sent
        found = frame_found + check_client_close(
            body,
            self.cfg,
            conn=self.conn,
            started_by_client=started_by_client,
            server_code=self._server_close,
            t=t,
        )
        code, raw_reason = split_close_body(body)
        reason = raw_reason.decode("utf-8", "replace")
        script = self.script
        if started_by_client and script is not None and not self.failed:
            expected = script.recorded.close
            if expected is not None and expected.by is Side.CLIENT:
                found += check_close_changed(expected, code, reason, self.cfg, self.conn)
            self._note_unplayed(script)
        self._report(found)
        if self.phase is Phase.CLOSING:
            # The client's answer to our Close: the closing handshake is complete.
            self._abnormal = self.failed
            self.close_after_flush = True
            return
        self.close = CloseInfo(Side.CLIENT, code if code is not None else 1005, reason)
        self._abnormal = False
        if self._fail_for(found, now):
            return
        # Echo the code (§5.5.1); an empty Close gets an empty Close.
        self._out.append(encode_frame(OpCode.CLOSE, encode_close_body(code) if code else b""))
        self._server_close_sent = True
        self.phase = Phase.CLOSING
        self.close_after_flush = True

    def _note_unplayed(self, script: Script) -> None:
        if script.silent or script.state in (Step.DONE, Step.IDLE):
            return
        left = script.unplayed_messages()
        if left:
            self._report(unplayed(self.conn, f"{left} recorded message(s)", self.cfg))

    def _send_close(self, code: int | None, reason: str, now: float) -> None:
        self._out.append(encode_frame(OpCode.CLOSE, encode_close_body(code, reason)))
        self._server_close = code
        self._server_close_sent = True
        self._pings.clear()
        if self.close.by is None:
            self.close = CloseInfo(Side.SERVER, code if code is not None else 1005, reason)
        self.phase = Phase.CLOSING
        self._close_deadline = now + self.options.timeout

    def _run_script(self, now: float, message: tuple[Opcode, bytes] | None) -> None:
        script = self.script
        if script is None:
            return
        before = len(script.violations)
        if message is not None:
            actions = script.on_message(message[0], message[1], now)
        else:
            actions = script.poll(now)
        for action in actions:
            if isinstance(action, SendMessage):
                self._send_message(action, now)
            elif isinstance(action, SendClose):
                self._send_close(action.code, action.reason, now)
            else:
                self.close = CloseInfo(Side.SERVER, action.code, "")
                self.phase = Phase.CLOSED
                self._abnormal = True
                self.close_after_flush = True
        self._report(script.violations[before:])
        if self.phase is not Phase.OPEN:
            return
        if script.silent and script.state is Step.DONE:
            self._send_close(1000, "wstape: timed out waiting for the client", now)
        elif (
            script.state is Step.AWAIT_CLOSE
            and script.deadline is not None
            and now >= script.deadline
        ):
            script.give_up(now)
            self._report(script.violations[-1:])
            self._send_close(1000, "wstape: timed out waiting for the client's Close", now)
        elif script.state is Step.IDLE and script.deadline is not None and now >= script.deadline:
            # The recording stopped with the connection open; end it politely.
            script.state = Step.DONE
            self._send_close(1001, "wstape: end of recording", now)

    def _send_message(self, action: SendMessage, now: float) -> None:
        opcode = OpCode.TEXT if action.opcode is Opcode.TEXT else OpCode.BINARY
        size = self.options.fragment_size
        payload = action.payload
        if not size or len(payload) <= size:
            self._send_frame(opcode, payload)
            return
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
        for i, chunk in enumerate(chunks):
            self._send_frame(
                opcode if i == 0 else OpCode.CONTINUATION, chunk, fin=i == len(chunks) - 1
            )
            if i == 0:
                self._ping(now)

    def result(self) -> ConnectionResult | None:
        """This connection's line in the report, or None if it played no recording."""
        if not self.played or self.recorded is None or self.request is None:
            return None
        c = self.close
        return ConnectionResult(
            conn=self.recorded.conn,
            path=self.request.path,
            client=self.client,
            messages_expected=self.script.messages_expected
            if self.script is not None
            else self.recorded.messages_expected,
            messages_matched=self.script.matched if self.script is not None else 0,
            close=CloseResult(c.by.value if c.by is not None else None, c.code, c.reason),
        )

    def shutdown(self, now: float) -> None:
        """The server is stopping: say goodbye (1001) and hang up without judging the client."""
        if self.closed:
            return
        self.stopping = True
        if self.phase is Phase.OPEN:
            self._send_close(1001, "wstape: server stopping", now)
        self.close_after_flush = True

    def connection_lost(self, now: float) -> None:
        """TCP is gone. Settles the close checks and tells the session."""
        if self.closed:
            return
        self.closed = True
        if self._accept_at is not None:
            # The client gave up while its 101 was held back.
            self._accept_at = None
            self._report(
                check_connect_timeout(
                    self.options.handshake_delay,
                    now - self.started,
                    self.cfg,
                    self.conn,
                    timeout=self.options.connect_timeout,
                )
            )
        if self.upgraded and not self._client_close_seen and not self.failed and not self.stopping:
            if self.close.by is Side.SERVER and self.close.code in (1006, 1015):
                pass  # we dropped it on purpose, as recorded
            else:
                self._report(
                    check_close_handshake(self._server_close_sent, False, self.cfg, self.conn)
                )
                script = self.script
                if not self._server_close_sent:
                    self.close = CloseInfo(Side.CLIENT, 1006, "")
                    if script is not None:
                        expected = script.recorded.close
                        if expected is not None and expected.by is Side.CLIENT:
                            self._report(
                                check_close_changed(expected, 1006, "", self.cfg, self.conn)
                            )
                        self._note_unplayed(script)
        self.phase = Phase.CLOSED
        self._frames = FrameParser(0)
        self._msg_parts = []
        self.session.ended(self, now, abnormal=self._abnormal)


# -- the session ---------------------------------------------------------------------


class ReplaySession:
    """One replay run over a set of recorded connections.

    ``events`` gives a recorded connection's events on demand (the replay server streams
    them from the cassette). ``on_violation`` and ``on_log`` are called as things happen,
    for live human output.
    """

    def __init__(
        self,
        recorded: Sequence[RecordedConnection],
        events: EventSource,
        cfg: RuleConfig,
        options: ScriptOptions,
        *,
        on_violation: Callable[[Violation], None] | None = None,
        on_log: Callable[[LiveConnection, str], None] | None = None,
    ) -> None:
        self.recorded = list(recorded)
        self.events = events
        self.cfg = cfg
        self.options = options
        self.on_violation = on_violation
        self.on_log = on_log
        self.violations: list[Violation] = []
        self.connections: dict[int, LiveConnection] = {}
        """Connections still open; ended ones leave only their report line behind."""
        self._results: list[tuple[int, ConnectionResult]] = []
        self._serial = itertools.count()
        self._claimed: set[int] = set()
        self._played: set[int] = set()
        self._keys: set[str] = set()
        self._open: dict[tuple[str, ...], int] = {}
        self._limit_reported: dict[tuple[str, ...], set[Severity]] = {}
        self._episodes: dict[tuple[str, ...], ReconnectEpisode] = {}
        self._live_count = 0
        self.finished = False

    # -- connections ----------------------------------------------------------------

    def connect(
        self, *, client: str, scheme: str, tls: TlsInfo | None, now: float, wall: float
    ) -> LiveConnection:
        """A TCP (or TLS) connection was accepted."""
        live = LiveConnection(self, client=client, scheme=scheme, tls=tls, now=now, wall=wall)
        live.serial = next(self._serial)
        self.connections[live.serial] = live
        self._live_count += 1
        return live

    def _matches(self, rec: RecordedConnection, req: Open) -> bool:
        if self.options.ignore_query:
            return rec.open.path == req.path
        return rec.open.target == req.target

    def select(self, req: Open) -> RecordedConnection | None:
        """The first unplayed recorded connection for ``req``'s path (not claimed yet)."""
        candidates = [rec for rec in self.recorded if self._matches(rec, req)]
        for rec in candidates:
            if rec.conn not in self._claimed:
                return rec
        if self.options.loop and candidates:
            for rec in candidates:
                self._claimed.discard(rec.conn)
            return candidates[0]
        return None

    def claim(self, rec: RecordedConnection) -> None:
        self._claimed.add(rec.conn)

    def new_script(self, rec: RecordedConnection, now: float) -> Script:
        """The script a connection that was answered with ``rec``'s 101 plays."""
        return Script(rec, self.events(rec.conn), self.cfg, self.options, now)

    def known_paths(self) -> list[str]:
        return sorted({rec.open.target for rec in self.recorded})

    def seen_keys(self, req: Open) -> frozenset[str]:
        key = (req.request_header("Sec-WebSocket-Key") or "").strip()
        seen = frozenset({key}) if key in self._keys else frozenset()
        if key:
            self._keys.add(key)
        return seen

    def connecting(self, live: LiveConnection, req: Open, now: float) -> None:
        """A request was read: track reconnects after an abnormal close."""
        group = client_group(req)
        episode = self._episodes.get(group)
        if episode is None:
            return
        for v in episode.reconnected(now, self.cfg, live.conn):
            self.add_violation(v)

    def opened(self, live: LiveConnection, now: float) -> None:
        """The 101 went out: count the client's open sockets."""
        assert live.request is not None
        group = client_group(live.request)
        self._open[group] = self._open.get(group, 0) + 1
        reported = self._limit_reported.setdefault(group, set())
        for v in check_socket_limit(self._open[group], self.cfg, live.conn, 0.0):
            if v.severity not in reported:
                reported.add(v.severity)
                self.add_violation(v)
        self.log(live, f"open {live.path} from {live.client}")

    def ended(self, live: LiveConnection, now: float, *, abnormal: bool) -> None:
        self._live_count -= 1
        self.connections.pop(live.serial, None)
        result = live.result()
        if result is not None:
            self._results.append((live.serial, result))
        if live.recorded is not None and live.request is not None:
            if live.upgraded:
                group = client_group(live.request)
                self._open[group] = max(0, self._open.get(group, 0) - 1)
            if live.recorded.conn in self._claimed:
                self._played.add(live.recorded.conn)
        if live.request is not None:
            group = client_group(live.request)
            if abnormal:
                self._episodes.setdefault(group, ReconnectEpisode())
            else:
                self._episodes.pop(group, None)
        if live.upgraded:
            c = live.close
            what = describe(c.code, c.reason) if c.code is not None else "no close"
            who = c.by.value if c.by is not None else "nobody"
            self.log(live, f"closed by {who}: {what}")
        elif live.request is not None:
            self.log(live, f"refused {live.request.target} with {live.status}")

    def add_violation(self, v: Violation) -> None:
        self.violations.append(v)
        if self.on_violation is not None:
            self.on_violation(v)

    def log(self, live: LiveConnection, text: str) -> None:
        if self.on_log is not None:
            self.on_log(live, text)

    # -- the end ------------------------------------------------------------------------

    def all_played(self) -> bool:
        """Every recorded connection was played and no client is still connected."""
        if self.options.loop:
            return False
        return self._live_count == 0 and all(rec.conn in self._played for rec in self.recorded)

    def report(self, cassette: str) -> Report:
        """The report so far (connections still open are included as they stand)."""
        rows = list(self._results)
        for live in self.connections.values():
            result = live.result()
            if result is not None:
                rows.append((live.serial, result))
        rows.sort(key=lambda row: row[0])
        return build_report(self.cfg.profile.value, cassette, (r for _, r in rows), self.violations)

    def finish(self) -> None:
        """End of the run: report what was never reached. Idempotent."""
        if self.finished:
            return
        self.finished = True
        for rec in self.recorded:
            if rec.conn not in self._claimed and rec.conn not in self._played:
                for v in unplayed(
                    rec.conn, f"recorded connection {rec.conn} ({rec.open.target})", self.cfg
                ):
                    self.add_violation(v)


__all__ = [
    "FAIL_CODES",
    "Action",
    "CloseInfo",
    "Drop",
    "EventSource",
    "HeartbeatFinder",
    "LiveConnection",
    "RecordedConnection",
    "ReplaySession",
    "Script",
    "ScriptOptions",
    "SendClose",
    "SendMessage",
    "Step",
]
