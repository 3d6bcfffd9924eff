"""The script of one recorded connection, walked against a live client without I/O.

The caller feeds live client messages (:meth:`Script.on_message`) and the clock
(:meth:`Script.poll`), executes the returned actions (:class:`SendMessage`,
:class:`SendClose`, :class:`Drop`) and wakes it again at :attr:`Script.deadline`.

Timing (DESIGN.md "Replay semantics"): a recorded server message at offset ``t`` is due
at ``anchor_live + (t - anchor_recorded) / speed`` (no delay at all for speed 0), where the
anchor is the connection's open or the arrival of the client message that preceded it in
the recording; so it is never sent before that client message has arrived, and recorded
gaps are kept without drift. A recorded client message is awaited until
``max(now, due) + timeout``.

Units: the script walks the protocol's units (:func:`~.recorded.units`): one per message
for most protocols, whole MQTT packets however MQTT.js split them. Heartbeats
(:mod:`.heartbeats`) are not part of the ordered walk: a client ping is answered with its
recorded reply whenever it comes, a client pong or keep-alive is taken whenever it comes,
and the server's pings and keep-alives go out on their recorded clock, at every speed.
Values the client generates (:mod:`.correlate`) are put back to the recorded ones before
a client unit is matched, and the live ones into the server units that echo them.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from wstape.core.closecodes import CloseCode, describe
from wstape.core.codecs import Codec, Decoded
from wstape.core.matchers import MatchResult, match_all, match_unit, parse_path
from wstape.core.model import Close, Message, Opcode, Side
from wstape.core.replay.correlate import Correlator
from wstape.core.replay.heartbeats import HeartbeatPlan
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.recorded import RecordedConnection, live_units, units
from wstape.core.rules import (
    RuleConfig,
    Severity,
    Violation,
    client_silent,
    heartbeat_dead,
    heartbeat_unanswered,
    message_json,
    message_mismatch,
    reconnect_setup,
    send_type,
    violation,
)

SEND_BUDGET = 256
"""Server messages sent per wake-up before yielding to other connections: a long burst at
``--speed 0`` must not starve the others or fill the socket buffer unchecked."""
SEND_BYTES = 256 * 1024
"""Payload bytes sent per wake-up, likewise (the message that crosses it still goes): a
burst of big messages to a client that reads slowly must not pile up in memory."""


SENT_LOG = 256
"""The last recorded server units sent, among which the one a client reply answers is
looked for: it must have gone out before the reply's read began (one further back, after
that many more went out while the reply waited its turn, is not checked)."""

MAX_BURST = 64
"""Client units recorded one after another (no server unit between) within which a live
unit may come out of turn: concurrent requests reach the wire in either order."""


class SendMessage(NamedTuple):
    """Send a data message. A named tuple: one is made for every message sent, and a
    tuple is built in a fraction of a frozen dataclass's time."""

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
    """Where a :class:`Script` is."""

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
    Violations (mismatch, wrong type, silence, an unanswered server ping) are appended to
    :attr:`violations`, an outbox: the caller takes them out as they come (a client that
    sends a million unrecorded messages must not keep a million violations here).

    ``timer_events`` opens a second stream of the same recorded events, from which the
    server's heartbeats are sent on their own clock (:mod:`.heartbeats`); it is only
    opened when the recording has some.
    """

    def __init__(
        self,
        recorded: RecordedConnection,
        events: Iterable[Message | Close],
        cfg: RuleConfig,
        options: PlayOptions,
        now: float,
        *,
        timer_events: Callable[[], Iterable[Message | Close]] | None = None,
    ) -> None:
        self.recorded = recorded
        self.conn = recorded.conn
        self.cfg = cfg
        self.options = options
        self.opened_at = now
        self.plan = recorded.heartbeats
        self._no_heartbeats = self.plan.empty
        """The plan never changes: whether it has any heartbeat is asked once."""
        codec = recorded.codec
        self._events = self._ordered(units(events, codec))
        self._live = live_units(codec)
        self.correlator = Correlator(
            codec,
            paths=tuple(parse_path(p) for p in options.correlate),
            uuids=options.correlate_uuids,
        )
        self._ahead: Message | Close | None = None
        """The next recorded unit, once peeked at."""
        self._anchor_live = now
        self._anchor_rec = 0.0
        self._queue: deque[tuple[Opcode, bytes, float, int]] = deque()
        """The client units that came and wait their turn: each with its arrival and
        :attr:`visible` then (the server units it can have seen)."""
        self.queued_bytes = 0
        """Payload bytes of the client messages that came early and wait their turn (the
        connection stops reading from a client that piles up too many)."""
        self._wait_since: float | None = None
        self._beats_at_wait = 0
        """The client's heartbeats counted when the current wait began."""
        self.state = Step.RUNNING
        self.deadline: float | None = None
        """When to call :meth:`poll` next (a message due, a timeout, a heartbeat)."""
        self.ends_at: float | None = None
        """In ``AWAIT_CLOSE`` / ``IDLE``: when waiting for the client's end is over."""
        self.matched = 0
        self.violations: list[Violation] = []
        self.unfinished: tuple[int, int] | None = None
        """The frames and bytes of a message the client has begun and not finished, as its
        connection last said (what a silence is then reported as)."""
        self.expected_close: Close | None = None
        self.silent = False
        self.beats = HeartbeatCounts()
        self._timers: _Timers | None = None
        if timer_events is not None and (self.plan.server_pings or self.plan.server_beats):
            self._timers = _Timers(
                self.plan,
                units(timer_events(), codec),
                now,
                self.plan.ping_timeout or options.heartbeat_wait,
            )
        self._unanswered_reported = False
        self.muted = False
        """The ``mute-heartbeats`` fault: from now on client pings go unanswered and the
        server's own heartbeats (pings, keep-alives) are not sent."""
        self.pings_muted = False
        """With heartbeats muted, a WebSocket Ping of the client's went unanswered: a
        client that gives up then did right (nothing says how soon it must: its own ping
        timeout is not in the recording)."""
        self._dead_at: float | None = None
        """When the first ping went unanswered (or the first server heartbeat was left
        out) while muted."""
        self._dead_wait = options.heartbeat_wait
        """How long after ``_dead_at`` the client has to give up on the connection."""
        self._dead_server = False
        """It was the server's heartbeats that stopped (not the client's pings unanswered)."""
        self._dead_sent = 0
        self._dead_reported = False
        self.setup = 0
        """The client reconnected after a fault: its first ``setup`` units must be the
        recorded ones (its authentication, its subscriptions; REPLAY-RECONNECT-SETUP)."""
        self._setup_reported = False
        self._judged = 0
        self.extra_delay: Callable[[], float] | None = None
        """The ``delay`` / ``jitter`` faults: seconds more for each server message."""
        self._extra: tuple[int, float] | None = None
        self._announce = self.plan.source == "detected"
        """Detection took recorded units as heartbeats: say so once (an info finding)."""
        self._limit = self.plan.client_limit
        """The longest the client may send nothing (its protocol's keep-alive), or None."""
        self._heard = now
        """When the client last sent something."""
        self._replies = codec is not None and bool(codec.client_replies)
        """The protocol has client units that answer server units (:meth:`_from_burst`)."""
        self._gates = codec.client_waits_for if codec is not None else {}
        """Client unit kinds that must wait for a server unit (:attr:`Codec.client_waits_for`)."""
        self._gate_kinds = {kind for kind, _ in self._gates.values()}
        self.emitted = 0
        """Recorded server units sent (counted when the protocol has gates or replies)."""
        self.visible = 0
        """:attr:`emitted` when the client's current read began: what it can have seen (the
        connection sets it; what was sent in the same read had not gone out yet)."""
        self._gate_at: dict[str, int] = {}
        """The server unit kinds the gates wait for: :attr:`emitted` once the first went."""
        self._sent: deque[tuple[int, Message, bytes]] = deque(maxlen=SENT_LOG)
        """With replies: the last recorded server units sent, each with its :attr:`emitted`
        count and its payload as sent (what a client reply answers must have gone out
        before the reply came)."""

    # -- event stream -------------------------------------------------------------

    def _ordered(self, events: Iterator[Message | Close]) -> Iterator[Message | Close]:
        """The recorded units the script plays in order (heartbeats are played apart)."""
        plan = self.plan
        if plan.empty:
            return events  # as they are: no generator in between for every unit

        def without_heartbeats() -> Iterator[Message | Close]:
            for event in events:
                if isinstance(event, Message) and plan.skipped(
                    event.side, (event.opcode, event.payload)
                ):
                    continue
                yield event

        return without_heartbeats()

    def _peek(self) -> Message | Close | None:
        event = self._ahead
        if event is None:
            event = self._ahead = next(self._events, None)
        return event

    def _pop(self) -> Message | Close:
        event = self._peek()
        assert event is not None, "popped past the end"
        self._ahead = None
        return event

    def _due(self, t: float) -> float:
        speed = self.options.speed
        if speed == 0:
            return self._anchor_live
        return self._anchor_live + max(0.0, t - self._anchor_rec) / speed

    def _t(self, now: float) -> float:
        return round(now - self.opened_at, 6)

    @property
    def queued_messages(self) -> int:
        """Client messages that came early and wait their turn to be matched."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        """Recorded events are still ahead (it has not reached its end)."""
        return self.state is Step.RUNNING

    @property
    def messages_expected(self) -> int:
        """The client units to match (heartbeats excluded), for the report."""
        return self.recorded.messages_expected

    @property
    def heartbeats_answered(self) -> int:
        return self.beats.answered

    @property
    def judged(self) -> int:
        """Client units compared with the recording so far."""
        return self._judged

    @property
    def server_heartbeats(self) -> bool:
        """The server sends heartbeats of its own on this connection (on its clock)."""
        return self._timers is not None

    @property
    def heartbeat_dead(self) -> bool:
        """With heartbeats muted, a client ping went unanswered (one of the recording's
        heartbeats, or a WebSocket Ping: :attr:`pings_muted`): the client has reason to
        give up on the connection."""
        return self._dead_at is not None or self.pings_muted

    def postpone(self, until: float) -> None:
        """Output the client has not been able to read yet (a throttled link) leaves at
        ``until``: the waits for the client's next message or Close count from then."""
        if self._wait_since is not None and self._wait_since < until:
            self._wait_since = until
        if self.state in (Step.AWAIT_CLOSE, Step.IDLE) and self.ends_at is not None:
            self.ends_at = max(self.ends_at, until + self.options.timeout)
            if self.deadline is not None and self.deadline < self.ends_at:
                self.deadline = self.ends_at

    # -- input ----------------------------------------------------------------------

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> list[Action]:
        """A complete client message arrived."""
        if self._announce:
            self._announce_detected(now)
        self._heard = now
        if self._live.whole:
            return self._on_unit(opcode, payload, now)
        actions: list[Action] = []
        for unit_opcode, unit in self._live.feed(opcode, payload):
            actions += self._on_unit(unit_opcode, unit, now)
        return actions

    def _on_unit(self, opcode: Opcode, payload: bytes, now: float) -> list[Action]:
        if not self._no_heartbeats:
            key = (opcode, payload)
            plan = self.plan
            reply = plan.client_pings.get(key)
            if reply is not None:
                if self.muted:
                    self.beats.muted += 1
                    if self._dead_at is None:
                        self._dead_at = now
                        limit = now + self._dead_wait
                        if self.deadline is None or limit < self.deadline:
                            self.deadline = limit
                    return self._after_dead(now)
                self.beats.answered += 1
                return [SendMessage(*reply)]
            if key in plan.client_pongs:
                self.beats.pongs += 1
                if self._timers is not None:
                    self._timers.answered(now)
                return []
            if key in plan.client_beats:
                self.beats.client_beats += 1
                return []
        if self._dead_at is not None and now >= self._dead_at + self._dead_wait:
            self._dead_sent += 1  # sending into a connection whose heartbeat is dead
        if self._gates and self.state is Step.RUNNING:
            self._check_gate(opcode, payload, now)
        if self.state is Step.IDLE:
            return []  # the recording stopped here; what follows was never recorded
        if self.state is not Step.RUNNING:
            self._unexpected(opcode, payload, now)
            return []
        self._queue.append((opcode, payload, now, self.visible))
        self.queued_bytes += len(payload)
        return self.poll(now)

    def _note_gate(self, opcode: Opcode, payload: bytes) -> None:
        """A recorded server unit goes out: note when the first of each kind a gate waits
        for went (:attr:`Codec.client_waits_for`)."""
        self.emitted += 1
        codec = self.recorded.codec
        decoded = codec.decode(Side.SERVER, opcode, payload) if codec is not None else None
        if decoded is not None and decoded.kind in self._gate_kinds:
            self._gate_at.setdefault(decoded.kind, self.emitted)

    def _check_gate(self, opcode: Opcode, payload: bytes, now: float) -> None:
        """A client unit of a kind its protocol makes wait for a server unit (graphql
        ``subscribe`` for ``connection_ack``) came before that unit could have reached
        the client: it was sent in the same read, or is still due in the recording. A
        real server refuses it; one REPLAY-MESSAGE-MISMATCH (the walk goes on)."""
        codec = self.recorded.codec
        decoded = codec.decode(Side.CLIENT, opcode, payload) if codec is not None else None
        gate = self._gates.get(decoded.kind) if decoded is not None else None
        if decoded is None or gate is None:
            return
        waited, refusal = gate
        went = self._gate_at.get(waited)
        if went is None:
            ahead = self._peek()
            if type(ahead) is not Message or ahead.side is not Side.SERVER:
                return  # the recording has it before that unit too (or has none)
            due = codec.decode(Side.SERVER, ahead.opcode, ahead.payload) if codec else None
            if due is None or due.kind != waited:
                return
        elif went <= self.visible:
            return
        found = violation(
            "REPLAY-MESSAGE-MISMATCH",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client sent {decoded.summary} before the server's {waited} could reach it; "
            f"the recording waited for it, and {refusal}",
            expected=f"{decoded.kind} after {waited}",
            actual=message_json(opcode, payload),
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)

    def _announce_detected(self, now: float) -> None:
        """REPLAY-HEARTBEAT-DETECTED (info): which recorded units detection took as
        heartbeats, so a run that passes does not hide what it did not check."""
        self._announce = False
        lines = self.plan.describe()
        shown = "; ".join(lines[:4]) + (f"; and {len(lines) - 4} more" if len(lines) > 4 else "")
        found = violation(
            "REPLAY-HEARTBEAT-DETECTED",
            Severity.INFO,
            self.cfg,
            self.conn,
            f"taken as heartbeats (detected from the recording, played apart, not checked "
            f"in order): {shown}; declare them with --heartbeat, or check them as data "
            "with --no-heartbeats",
            expected=lines,
            actual=None,
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)

    def _check_keepalive(self, now: float) -> None:
        """REPLAY-HEARTBEAT-MISSED: the client sent nothing for longer than its protocol's
        negotiated keep-alive allows (reported once; the limit then stops counting)."""
        limit = self._limit
        if limit is None or now < self._heard + limit:
            return
        self._limit = None
        found = violation(
            "REPLAY-HEARTBEAT-MISSED",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client sent nothing for {limit:g} s (since t={self._t(self._heard):.3f}s); the "
            f"recording negotiated {self.plan.negotiated}, so a real server drops it",
            expected=f"a message or heartbeat at least every {limit:g} s",
            actual={"silent_for": round(now - self._heard, 3)},
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)

    def _after_dead(self, now: float) -> list[Action]:
        """With heartbeats muted: the client had ``_dead_wait`` to give up; report once
        when it did not (REPLAY-HEARTBEAT-DEAD)."""
        dead = self._dead_at
        if dead is None or self._dead_reported or now < dead + self._dead_wait:
            return []
        self._dead_reported = True
        if not self._dead_server:
            self.violations += heartbeat_dead(
                self.conn, self._dead_wait, self._dead_sent, self.cfg, self._t(now)
            )
            return []
        sent = self._dead_sent
        more = f", and sent {sent} message{'s' if sent != 1 else ''} into it" if sent else ""
        found = violation(
            "REPLAY-HEARTBEAT-DEAD",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client kept the connection open {self._dead_wait:g} s after the server's "
            f"heartbeats stopped{more}; expected it to close or reconnect"
            + (f" ({self.plan.negotiated})" if self.plan.ping_timeout is not None else ""),
            expected=f"close or reconnect within {self._dead_wait:g} s",
            actual={"open": True, "messages_sent_after": sent},
            t=self._t(now),
        )
        if found is not None:
            self.violations.append(found)
        return []

    def poll(self, now: float) -> list[Action]:
        """Advance as far as the clock and the client's messages allow."""
        actions: list[Action] = []
        if self._announce:
            self._announce_detected(now)
        if self._dead_at is not None:
            self._after_dead(now)
        if self._limit is not None and self.state is not Step.DONE:
            self._check_keepalive(now)
        timers = self._timers
        if timers is not None and self.state is not Step.DONE:
            actions += self._heartbeats(timers, now)
        if self.state is not Step.RUNNING:
            self._add_timer_deadline()
            return actions
        self.deadline = None
        budget, budget_bytes = SEND_BUDGET, SEND_BYTES
        # Every message goes through here: the peek, the due time at speed 0, the send
        # and the expected client message are done in place, not in a helper per event.
        events, queue = self._events, self._queue
        at_once = self.options.speed == 0
        gated = bool(self._gates)
        replies = self._replies
        while self.state is Step.RUNNING:
            if budget <= 0 or budget_bytes <= 0:
                self.deadline = now  # more is due: come back after the others had a turn
                break
            event = self._ahead
            if event is None:
                event = self._ahead = next(events, None)
                if event is None:
                    self._flush_unexpected(now)
                    self.state = Step.IDLE
                    self.ends_at = self.deadline = now + self.options.timeout
                    break
            if isinstance(event, Close):
                if not self._at_close(event, now, actions):
                    break
                continue
            if event.side is Side.SERVER:
                due = self._anchor_live if at_once else self._due(event.t)
                if self.extra_delay is not None:
                    due += self._extra_for(event)
                if due > now:
                    self.deadline = due
                    break
                self._ahead = None  # popped: it was the one peeked at
                opcode = event.opcode
                payload = event.payload
                if gated:
                    self._note_gate(opcode, payload)  # (counts it in emitted)
                elif replies:
                    self.emitted += 1
                live = self.correlator.rewrite(opcode, payload)
                if replies:
                    self._sent.append((self.emitted, event, live))
                actions.append(SendMessage(opcode, live))
                budget -= 1
                budget_bytes -= len(payload)
                continue
            if not queue:
                if self._wait(event, now):
                    continue  # the client's unfinished unit came due as it is
                break
            # The client message it expects: the one that came first.
            opcode, payload, arrived, seen = queue.popleft()
            self.queued_bytes -= len(payload)
            self._ahead = None
            self._wait_since = None
            following = self._peek()
            if type(following) is Message and (following.side is Side.CLIENT or replies):
                # One of a burst the client sent: it may come in another order (concurrent
                # requests; a reply racing the requests), so it is matched within it.
                event = self._from_burst(event, opcode, payload)
                events = self._events
            self._anchor_live = arrived
            self._anchor_rec = event.t
            self._judge(event, opcode, payload, arrived, seen)
        if (
            self.state is not Step.RUNNING
            or self._dead_at is not None
            or self._timers is not None
            or self._limit is not None
        ):
            self._add_timer_deadline()  # (it adds nothing to a plain running walk's)
        return actions

    def _extra_for(self, event: Message) -> float:
        """The delay fault's extra seconds for the server message ahead (drawn once)."""
        if self.extra_delay is None:
            return 0.0
        if self._extra is None or self._extra[0] != id(event):
            self._extra = (id(event), self.extra_delay())
        return self._extra[1]

    def _add_timer_deadline(self) -> None:
        if self.state is not Step.RUNNING:
            self.deadline = self.ends_at
        dead = self._dead_at
        if dead is not None and not self._dead_reported:
            limit = dead + self._dead_wait
            if self.deadline is None or limit < self.deadline:
                self.deadline = limit
        quiet = self._limit
        if quiet is not None and self.state is not Step.DONE:
            late = self._heard + quiet
            if self.deadline is None or late < self.deadline:
                self.deadline = late
        timers = self._timers
        if timers is None or self.state is Step.DONE:
            return
        due = timers.next_due()
        if due is not None and (self.deadline is None or due < self.deadline):
            self.deadline = due

    def _heartbeats(self, timers: _Timers, now: float) -> list[Action]:
        if self.muted:
            # mute-heartbeats: the server's clock goes on, but nothing is sent; the client
            # has its protocol's own limit (Engine.IO: pingTimeout after a missed ping)
            # and --heartbeat-timeout more to give up on the connection.
            left_out = len(timers.due(now, send=False))
            if left_out:
                self.beats.muted += left_out
                if self._dead_at is None:
                    self._dead_at, self._dead_server = now, True
                    self._dead_wait = (self.plan.ping_timeout or 0.0) + self.options.heartbeat_wait
            actions: list[Action] = []
        else:
            actions = [self._send(unit) for unit in timers.due(now)]
        self.beats.pings_sent = timers.pings_sent
        self.beats.server_beats = timers.beats_sent
        late = timers.expired(now)
        if late:
            self.beats.unanswered += late
            if not self._unanswered_reported:
                self._unanswered_reported = True
                self.violations += heartbeat_unanswered(
                    self.conn, timers.timeout, self.cfg, self._t(now)
                )
        return actions

    def _send(self, event: Message) -> SendMessage:
        payload = self.correlator.rewrite(event.opcode, event.payload)
        return SendMessage(event.opcode, payload)

    def _wait(self, event: Message, now: float) -> bool:
        """Wait for the expected client ``event`` (its client's message has not come):
        until the deadline set, after which the client is silent. True: it was not
        silent, it stopped in the middle of a unit, which is now queued as it is."""
        if self._wait_since is None:
            self._wait_since = now
            self._beats_at_wait = self.beats.from_client
        limit = max(self._wait_since, self._due(event.t)) + self.options.timeout
        if now < limit:
            self.deadline = limit
            return False
        self._wait_since = None
        if self._hold_cut_short(now):
            return True
        if self._judged < self.setup and not self._setup_reported:
            self._setup_reported = True
            self.violations += reconnect_setup(self.conn, event, None, None, self.cfg, self._t(now))
        gap = event.t - self._anchor_rec  # (the recording's own wait, in real time)
        self.violations += client_silent(
            self.conn,
            event,
            self.options.timeout,
            self.cfg,
            self._t(now),
            self.unfinished,
            decoded=self.summary(event),
            heartbeats=self.beats.from_client - self._beats_at_wait,
            recorded_gap=gap if gap > limit - self._anchor_live else None,
        )
        self.silent = True
        self.state = Step.DONE
        return False

    def _hold_cut_short(self, now: float) -> bool:
        """Queue the unit the client left unfinished (a STOMP body shorter than its
        content-length, an MQTT packet shorter than its remaining length), as it is."""
        held = self._live.flush()
        for opcode, unit in held:
            self._queue.append((opcode, unit, now, self.visible))
            self.queued_bytes += len(unit)
        return bool(held)

    def client_left(self, now: float) -> None:
        """The client closed: a unit it left unfinished is judged as it is (a mismatch,
        or a message the recording does not have), not read as a client that went
        quiet."""
        if self.state in (Step.RUNNING, Step.AWAIT_CLOSE) and self._live.pending():
            if self.state is Step.AWAIT_CLOSE:
                for opcode, unit in self._live.flush():
                    self._unexpected(opcode, unit, now)
            elif self._hold_cut_short(now):
                self.poll(now)  # (what it would send goes nowhere: the client is gone)

    def summary(self, unit: Message) -> str | None:
        """A recorded unit as its protocol decodes it (``mqtt PUBREL id=2``, as ``wstape
        show`` prints it), for a report; None without a codec, or when it does not
        decode."""
        codec = self.recorded.codec
        return None if codec is None else codec.line(unit.side, unit.opcode, unit.payload)

    def _from_burst(self, expected: Message, opcode: Opcode, payload: bytes) -> Message:
        """The recorded unit the live one stands for, among ``expected`` and the units
        recorded right after it (at most :data:`MAX_BURST`; the first is peeked at):
        ``expected`` if it matches, else the first later client unit that does and may
        come before the ones it passes, which is taken out of turn while ``expected`` and
        the rest wait in their order; ``expected`` (to be judged a mismatch) if none does.
        Trying leaves the correlator as it was.

        What may pass what (:func:`_may_overtake`): a request passes requests of its own
        kind with only client units between (concurrent calls); a reply the client's
        protocol stack sends to a server unit (:attr:`Codec.client_replies`: an MQTT
        PUBREL, a Socket.IO ACK) and a request pass each other either way, as the stack
        and the application race to the wire. Past server units, only a reply sent sooner
        than recorded (never sooner than the server unit it answers,
        :meth:`Codec.answers`), or a request sent before replies recorded ahead of it and
        the server units held back for them."""
        codec = self.recorded.codec
        if codec is None:
            return expected  # (plain messages keep their recorded order)
        replies = bool(codec.client_replies)
        ahead = self._peek()
        if type(ahead) is Message and ahead.side is Side.SERVER:
            # Only a reply passes server units: with none, the burst is expected alone.
            live = codec.decode(Side.CLIENT, opcode, payload)
            if live is None or live.kind not in codec.client_replies:
                return expected
        if self._fits(expected, opcode, payload):
            return expected
        first = _role(codec, expected)
        if first == (None, False):
            return expected  # (nothing may pass it)
        window: list[Message] = []
        tail: list[Message | Close] = []
        while len(window) < MAX_BURST:
            following = self._peek()
            if following is None:
                break
            if type(following) is not Message or (following.side is Side.SERVER and not replies):
                tail.append(self._pop())  # (put back below, in front of the rest)
                break
            self._pop()
            window.append(following)
        chosen = None
        passed = [first]  # the client units a later one would pass
        servers: list[Decoded | None] = []  # and the server units
        for i, m in enumerate(window):
            if m.side is Side.SERVER:
                servers.append(codec.decode(Side.SERVER, m.opcode, m.payload))
                continue
            role = _role(codec, m)
            if self._may_pass(codec, m, role, passed, servers) and self._fits(m, opcode, payload):
                chosen = i
                break
            passed.append(role)  # (a later unit may still pass this one: keep looking)
        if chosen is None:
            waiting: list[Message | Close] = [*window, *tail]
        else:
            unit = window.pop(chosen)
            waiting = [expected, *window, *tail]
            expected = unit
        self._events = itertools.chain(waiting, self._events)
        return expected

    @staticmethod
    def _may_pass(
        codec: Codec,
        unit: Message,
        role: tuple[str | None, bool],
        passed: list[tuple[str | None, bool]],
        servers: list[Decoded | None],
    ) -> bool:
        """Whether the recorded client ``unit`` may come before the client units and the
        server units recorded ahead of it in the burst (``passed``, ``servers``)."""
        if not all(_may_overtake(role, other) for other in passed):
            return False
        if not servers:
            return True
        if role[1]:  # a reply sent sooner: after the server unit it answers, though
            reply = codec.decode(Side.CLIENT, unit.opcode, unit.payload)
            return reply is not None and all(
                s is not None and not codec.answers(reply, s) for s in servers
            )
        # A request sent before replies recorded ahead of it, and the server units the
        # recording sent after them (held back until the client sends them).
        return all(reply for _, reply in passed)

    def _fits(self, expected: Message, opcode: Opcode, payload: bytes) -> bool:
        """Would the live unit match ``expected`` (the correlator left as it was)?"""
        if opcode is not expected.opcode:
            return False
        correlator = self.correlator
        saved = correlator.snapshot()
        try:
            compared = correlator.learn(expected, opcode, payload)
            if correlator.conflicts:
                return False
            codec, paths = self.recorded.codec, self.options.ignore_json_paths
            return match_unit(
                self.options.match, codec, expected, expected.opcode, compared, paths
            ).ok
        finally:
            correlator.restore(saved)

    def _judge(
        self, expected: Message, opcode: Opcode, payload: bytes, arrived: float, seen: int
    ) -> None:
        # A changed type is WX-SEND-TYPE alone; the matcher then judges the payload, with
        # the values the client generates put back to the recorded ones.
        compared = self.correlator.learn(expected, opcode, payload)
        paths = self.options.ignore_json_paths
        codec = self.recorded.codec
        result = match_unit(self.options.match, codec, expected, expected.opcode, compared, paths)
        conflicts = self.correlator.conflicts
        if conflicts:  # ids inconsistent with the connection so far: whatever the matcher
            result = _with_conflicts(result, conflicts)
        self._judged += 1
        if result.ok and opcode is expected.opcode:
            if seen < self.emitted and self._replies:
                answered = self._not_seen(expected, seen)
                if answered is not None:
                    self._reply_too_soon(expected, answered, opcode, payload, arrived)
                    return
            self.matched += 1  # the common case: nothing to report
            return
        t = self._t(arrived)
        found: list[Violation] = []
        if opcode is not expected.opcode:
            found += send_type(self.conn, expected, opcode, self.cfg, t)
        if not result.ok and self._judged <= self.setup and not self._setup_reported:
            self._setup_reported = True
            found += reconnect_setup(self.conn, expected, opcode, payload, self.cfg, t)
        if not result.ok:
            verdicts = match_all(expected, opcode, compared, paths)
            verdicts["json"] = match_unit("json", codec, expected, opcode, compared, paths)
            found += message_mismatch(
                self.conn,
                expected,
                opcode,
                payload,
                result.diff,
                self.cfg,
                t,
                verdicts={name: v.ok and not conflicts for name, v in verdicts.items()},
                decoded=_summaries(self.summary(expected), codec, opcode, payload)
                if result.of_bytes
                else None,
            )
        self.violations += found

    def _not_seen(self, expected: Message, seen: int) -> Decoded | None:
        """The server unit the recorded client reply ``expected`` answers (:attr:`Codec.
        client_replies`, :meth:`Codec.answers`), as it was sent, when it went out only
        after the live unit's read began (``seen``: :attr:`visible` then); else None (not
        a reply, or what it answers had gone out)."""
        codec = self.recorded.codec
        if codec is None:
            return None
        reply = codec.decode(Side.CLIENT, expected.opcode, expected.payload)
        if reply is None or reply.kind not in codec.client_replies:
            return None
        for emitted, unit, sent in reversed(self._sent):
            if emitted <= seen:
                return None  # (older ones went out before the client's read began)
            server = codec.decode(Side.SERVER, unit.opcode, unit.payload)
            if server is not None and codec.answers(reply, server):
                return codec.decode(Side.SERVER, unit.opcode, sent) or server
        return None

    def _reply_too_soon(
        self, expected: Message, answered: Decoded, opcode: Opcode, payload: bytes, arrived: float
    ) -> None:
        """REPLAY-MESSAGE-MISMATCH: the client's reply came before the server unit it
        answers could reach the client (it was queued early, or came in the same read):
        no client stack answers what it has not had. The unit is not counted matched."""
        codec = self.recorded.codec
        assert codec is not None
        reply = codec.decode(Side.CLIENT, opcode, payload)
        shown = reply.summary if reply is not None else opcode.value
        found = violation(
            "REPLAY-MESSAGE-MISMATCH",
            Severity.ERROR,
            self.cfg,
            self.conn,
            f"client sent {codec.name} {shown} before the server's {codec.name} "
            f"{answered.summary}, which it answers, could reach it",
            expected=f"{self.summary(expected) or expected.opcode.value} after the "
            f"server's {answered.kind}",
            actual=message_json(opcode, payload),
            t=self._t(arrived),
        )
        if found is not None:
            self.violations.append(found)

    def _at_close(self, close: Close, now: float, actions: list[Action]) -> bool:
        """Reach the recorded end; False while it is not due yet."""
        if close.by is Side.CLIENT:
            self._flush_unexpected(now)
            self._pop()
            self.expected_close = close
            self.state = Step.AWAIT_CLOSE
            self.ends_at = self.deadline = max(now, self._due(close.t)) + self.options.timeout
            return False
        due = self._due(close.t)
        if due > now:
            self.deadline = due
            return False
        self._flush_unexpected(now)
        self._pop()
        if close.by is None:
            self.state = Step.IDLE
            self.ends_at = self.deadline = now + self.options.timeout
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
            opcode, payload, arrived, _ = self._queue.popleft()
            self.queued_bytes -= len(payload)
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

    def unplayed_messages(self) -> tuple[int, Message | None]:
        """Count the recorded units never reached (heartbeats excepted), consuming them;
        and the first of them."""
        count = 0
        first: Message | None = None
        for event in itertools.chain([self._ahead], self._events):
            if isinstance(event, Message):
                count += 1
                first = first or event
        self._ahead = None
        return count, first


def _role(codec: Codec, unit: Message) -> tuple[str | None, bool]:
    """A recorded client unit's part in a burst: the codec's kind when it carries an id
    the client makes (a request, a subscribe; else None), and whether it answers a
    server unit (:attr:`Codec.client_replies`)."""
    decoded = codec.decode(Side.CLIENT, unit.opcode, unit.payload)
    if decoded is None:
        return None, False
    reply = decoded.kind in codec.client_replies
    return (decoded.kind if decoded.generated else None), reply


def _may_overtake(unit: tuple[str | None, bool], other: tuple[str | None, bool]) -> bool:
    """Whether a client unit recorded after ``other`` (in one burst) may reach the wire
    before it: a reply and a request with an id of its own race (the protocol stack
    answers the server while the application sends), and so do two requests of one kind
    (concurrent calls). Two replies keep the order of the server units they answer, and
    a unit that is neither (a CONNECT, a DISCONNECT, a QoS 0 PUBLISH) keeps its place."""
    (kind, reply), (other_kind, other_reply) = unit, other
    if reply != other_reply:
        return (other_kind if reply else kind) is not None
    return not reply and kind is not None and kind == other_kind


def _summaries(
    recorded: str | None, codec: Codec | None, opcode: Opcode, payload: bytes
) -> tuple[str, str] | None:
    """The protocol's one-line view of the recorded unit and of the live one as the
    client sent it (``mqtt PUBREL id=2``, as ``wstape show`` prints them), for a
    mismatch; None unless both decode."""
    if recorded is None or codec is None:
        return None
    new = codec.line(Side.CLIENT, opcode, payload)
    return None if new is None else (recorded, new)


def _with_conflicts(result: MatchResult, conflicts: list[str]) -> MatchResult:
    """A failed verdict naming the inconsistent ids first, then the matcher's own diff
    (a unified diff only as one line: its lines are not differences to count)."""
    lines = list(conflicts)
    if not result.ok and result.diff:
        if result.diff.startswith("--- "):
            lines.append("and the payload differs otherwise too")
        else:
            lines += result.diff.splitlines()
    return MatchResult(False, "\n".join(lines))


@dataclass
class HeartbeatCounts:
    """What one connection's heartbeats did, for the report."""

    answered: int = 0
    """Client pings answered."""
    pings_sent: int = 0
    """Server pings sent on the server's clock."""
    pongs: int = 0
    """Client answers to them."""
    unanswered: int = 0
    """Server pings the client did not answer in time."""
    server_beats: int = 0
    client_beats: int = 0
    muted: int = 0
    """Client pings left unanswered and server heartbeats left out on purpose (the
    ``mute-heartbeats`` fault)."""

    @property
    def from_client(self) -> int:
        """Heartbeats the client sent: its pings (answered or muted), pongs, keep-alives."""
        return self.answered + self.muted + self.pongs + self.client_beats

    def to_dict(self) -> dict[str, int]:
        out = {
            "answered": self.answered,
            "pings_sent": self.pings_sent,
            "pongs": self.pongs,
            "unanswered": self.unanswered,
            "server_beats": self.server_beats,
            "client_beats": self.client_beats,
        }
        if self.muted:
            out["muted"] = self.muted
        return out


class _Timers:
    """The server's heartbeats of one connection, sent on the recorded clock.

    The first is due at its recorded offset from the connection's open, each next one at
    the recorded spacing after the previous one was sent, whatever ``--speed`` says; past
    the last recorded one the last spacing is kept while the connection lives. A ping
    sent is outstanding until the client answers (:meth:`answered`) or ``timeout``
    passes (:meth:`expired`).
    """

    def __init__(
        self,
        plan: HeartbeatPlan,
        events: Iterable[Message | Close],
        opened_at: float,
        timeout: float,
    ) -> None:
        self.plan = plan
        self._events = (
            e
            for e in events
            if isinstance(e, Message)
            and e.side is Side.SERVER
            and plan.timer((e.opcode, e.payload))
        )
        self.timeout = timeout
        self._next: Message | None = next(self._events, None)
        self._last: Message | None = None
        self._due = opened_at + self._next.t if self._next is not None else None
        self._gap: float | None = None
        self._outstanding: deque[float] = deque()
        self.pings_sent = 0
        self.beats_sent = 0

    def next_due(self) -> float | None:
        due = self._due
        if self._outstanding:
            late = self._outstanding[0] + self.timeout
            due = late if due is None else min(due, late)
        return due

    def due(self, now: float, *, send: bool = True) -> list[Message]:
        """The heartbeats due by ``now`` (``send`` False: left out, neither counted as
        sent nor awaited, while the clock goes on)."""
        out: list[Message] = []
        while self._due is not None and self._due <= now and len(out) < SEND_BUDGET:
            unit = self._next if self._next is not None else self._last
            assert unit is not None
            out.append(unit)
            if not send:
                pass
            elif (unit.opcode, unit.payload) in self.plan.server_pings:
                self.pings_sent += 1
                self._outstanding.append(now)
            else:
                self.beats_sent += 1
            sent_at, recorded_t = self._due, unit.t
            self._last = unit
            following = next(self._events, None) if self._next is not None else None
            if following is not None:
                self._gap = max(0.0, following.t - recorded_t)
                self._next = following
            else:
                self._next = None
            if self._gap is None or self._gap <= 0:
                self._due = None  # one heartbeat recorded: nothing to keep a clock by
            else:
                self._due = sent_at + self._gap
        return out

    def answered(self, now: float) -> None:
        if self._outstanding:
            self._outstanding.popleft()

    def expired(self, now: float) -> int:
        late = 0
        while self._outstanding and self._outstanding[0] + self.timeout <= now:
            self._outstanding.popleft()
            late += 1
        return late


__all__ = [
    "SEND_BUDGET",
    "Action",
    "Drop",
    "HeartbeatCounts",
    "Script",
    "SendClose",
    "SendMessage",
    "Step",
]
