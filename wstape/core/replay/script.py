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

Heartbeats: a client message that the recording answers with the same reply every time,
at least twice (``{"type":"ping"}`` -> ``{"type":"pong"}``), is a heartbeat. A live
heartbeat is answered whenever it arrives; recorded heartbeat steps are optional: matched
if the client sends them in place, skipped when something else comes (or nothing, within
the timeout), and consumed by a heartbeat the client sent early.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from wstape.core.closecodes import CloseCode, describe
from wstape.core.matchers import match
from wstape.core.model import Close, Message, Opcode, Side
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.recorded import MessageKey, RecordedConnection
from wstape.core.rules import (
    RuleConfig,
    Severity,
    Violation,
    client_silent,
    message_json,
    message_mismatch,
    send_type,
    violation,
)

SEND_BUDGET = 256
"""Server messages sent per wake-up before yielding to other connections: a long burst at
``--speed 0`` must not starve the others or fill the socket buffer unchecked."""
SEND_BYTES = 256 * 1024
"""Payload bytes sent per wake-up, likewise (the message that crosses it still goes): a
burst of big messages to a client that reads slowly must not pile up in memory."""


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
    Violations (mismatch, wrong type, silence) are appended to :attr:`violations`.
    """

    def __init__(
        self,
        recorded: RecordedConnection,
        events: Iterable[Message | Close],
        cfg: RuleConfig,
        options: PlayOptions,
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
        self.queued_bytes = 0
        """Payload bytes of the client messages that came early and wait their turn (the
        connection stops reading from a client that piles up too many)."""
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
    def queued_messages(self) -> int:
        """Client messages that came early and wait their turn to be matched."""
        return len(self._queue)

    @property
    def running(self) -> bool:
        """Recorded events are still ahead (it has not reached its end)."""
        return self.state is Step.RUNNING

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
        self.queued_bytes += len(payload)
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
        budget, budget_bytes = SEND_BUDGET, SEND_BYTES
        while self.state is Step.RUNNING:
            if budget <= 0 or budget_bytes <= 0:
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
                budget_bytes -= len(event.payload)
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
                    self.queued_bytes -= len(payload)
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
        self.queued_bytes -= len(payload)
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


__all__ = ["SEND_BUDGET", "Action", "Drop", "Script", "SendClose", "SendMessage", "Step"]
