"""One client connection of a replay, from its first byte to the end of TCP, without I/O.

A :class:`LiveConnection` reads the HTTP upgrade, picks the recorded connection to play
(through its :class:`Session`), answers with the recorded handshake or refusal, then
hands the open WebSocket to a :class:`~wstape.core.replay.protocol.ServerProtocol`
(frames, ping/pong, closing) and plays the recorded connection's
:class:`~wstape.core.replay.script.Script` over it: messages from the client go to the
script, the script's actions become frames.

Bytes in (:meth:`LiveConnection.receive_data`), bytes out
(:meth:`LiveConnection.data_to_send`), a deadline (:meth:`LiveConnection.next_deadline`),
and flow control: the driver says when its transport is full
(:meth:`LiveConnection.pause_output` / :meth:`LiveConnection.resume_output`) and reads
from the client only while :attr:`LiveConnection.wants_input` holds.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from enum import Enum
from typing import Protocol

from wstape.core.closecodes import CloseCode, describe
from wstape.core.deflate import negotiate, recorded_params
from wstape.core.handshake import (
    BadRequest,
    RequestParser,
    Response,
    accept_response,
    answered,
    error_response,
    judge_request,
    recorded_refusal,
)
from wstape.core.model import Opcode, Open, Side, TlsInfo
from wstape.core.replay.faults import (
    ENDING_FAULTS,
    HANDSHAKE_FAULTS,
    Fault,
    FaultBook,
    FaultEvent,
    FaultKind,
    FaultTrack,
    Throttle,
)
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.protocol import CloseInfo, MessageRoom, ServerProtocol, State
from wstape.core.replay.recorded import RecordedConnection
from wstape.core.replay.script import Drop, Script, SendClose, SendMessage, Step
from wstape.core.report import CloseResult, ConnectionResult
from wstape.core.rules import (
    RuleConfig,
    Severity,
    Violation,
    check_close_changed,
    check_connect_timeout,
    check_early_data,
    check_response,
    check_subprotocol_change,
    client_stalled,
    not_a_websocket_request,
    protocol_misfit,
    unmatched_connection,
    unplayed,
    violation,
)

HELD_LIMIT = 64 * 1024
"""Bytes kept from a client while its 101 is held back; past them it is not read."""
THROTTLE_HIGH = 256 * 1024
"""Bytes held by the throttle fault past which the client is not read (and so the script
is not asked for more)."""
QUEUE_LIMIT = 1024 * 1024
QUEUE_MESSAGES = 1024
"""Bytes and messages a client may send ahead of the recording (its script queues them
to match in turn); past either, it is not read until the script has caught up."""


class Session(Protocol):
    """What a connection needs from the run it belongs to (:mod:`.session`)."""

    cfg: RuleConfig
    options: PlayOptions
    room: MessageRoom
    """What the unfinished messages of all the run's connections may hold together."""

    def select(self, req: Open) -> RecordedConnection | None:
        """The recorded connection to play for ``req`` (None: no such path)."""

    def claim(self, rec: RecordedConnection) -> None:
        """``rec`` is being played now."""

    def new_script(self, rec: RecordedConnection, now: float, *, setup: int = 0) -> Script:
        """The script to play ``rec`` (``setup``: a reconnect's units to check as its setup)."""

    def seen_keys(self, req: Open) -> frozenset[str]:
        """The ``Sec-WebSocket-Key`` of ``req`` if an earlier connection used it."""

    def known_paths(self) -> list[str]: ...

    def connecting(self, live: LiveConnection, req: Open, now: float) -> None:
        """A request was read."""

    def opened(self, live: LiveConnection, now: float) -> None:
        """The 101 went out."""

    def ended(self, live: LiveConnection, now: float, *, abnormal: bool) -> None:
        """TCP is gone."""

    def add_violation(self, v: Violation) -> None: ...

    def log(self, live: LiveConnection, text: str) -> None: ...

    @property
    def faults(self) -> FaultBook:
        """The run's faults (``--fault``, ``inject``)."""

    def fault_happened(
        self, live: LiveConnection, fault: Fault, what: str, now: float
    ) -> FaultEvent:
        """``fault`` struck ``live``: remember it for the report and for the reconnect."""

    def holding(self, live: LiveConnection) -> None:
        """``live``'s upgrade is held back (a stall): its socket counts as open."""


class Phase(Enum):
    """Where a connection is; once ``UPGRADED``, :attr:`LiveConnection.protocol` says more."""

    HANDSHAKE = "handshake"
    """Reading the upgrade request."""
    HELD = "held"
    """The 101 is held back (``handshake_delay``)."""
    UPGRADED = "upgraded"
    """101 sent: the WebSocket is open or closing."""
    ANSWERED = "answered"
    """Refused (or a probe that never sent a request): hang up once the answer is written."""
    GONE = "gone"
    """TCP is closed."""


LISTED = 100
"""Violations of one rule a connection lists in the report; the rest are counted."""


class LiveConnection:
    """One client connection. Also the :class:`~.protocol.Handler` of its WebSocket."""

    def __init__(
        self,
        session: Session,
        *,
        serial: int,
        client: str,
        scheme: str,
        tls: TlsInfo | None,
        now: float,
        wall: float,
    ) -> None:
        self.session = session
        self.cfg = session.cfg
        self.options = session.options
        self.serial = serial
        """Order of arrival in the run (report rows are sorted by it)."""
        self.found: dict[Severity, int] = {}
        """Violations this connection reported, by severity (one play of a recording)."""
        self._listed: dict[str, int] = {}
        """Violations of each rule passed on to the session (at most :data:`LISTED`)."""
        self._unlisted: dict[tuple[str, Severity], int] = {}
        """Those past :data:`LISTED`, counted only: :meth:`unlisted` sums them up."""
        self.client = client
        self.started = now
        self.phase = Phase.HANDSHAKE
        self.request: Open | None = None
        self.recorded: RecordedConnection | None = None
        self.played = False
        """A recorded connection was claimed for this client (answered 101 or its refusal)."""
        self.status: int | None = None
        """The HTTP status answered (101, or a refusal)."""
        self.protocol: ServerProtocol | None = None
        self.script: Script | None = None
        self._out: list[bytes] = []
        self._parser = RequestParser(scheme=scheme, client=client, tls=tls, started_at=wall)
        self._accept_at: float | None = None
        self._held: list[bytes] = []
        """Bytes the client sent while its 101 was held back."""
        self._held_size = 0
        self._stall: Fault | None = None
        """The stall fault holding the 101 back (``--handshake-delay`` is one)."""
        self.faults: FaultTrack | None = None
        self.fault_event: FaultEvent | None = None
        """The last fault that struck this connection (its ``then`` says what came next)."""
        self.broken_by: Fault | None = None
        """The fault that ended this connection (drop, close, blackhole), if one did."""
        self.blackholed = False
        self._before_blackhole = b""
        self._blackhole_until: float | None = None
        """When the server gives up on a blackholed connection (drops it, no Close)."""
        self.is_reconnect = False
        """This client came back after a fault broke its connection."""
        self.setup = 0
        """For a reconnect: the client units it must start with (its setup)."""
        self.setup_done = 0
        """Client units judged before the first fault that broke this connection struck
        (what a reconnect must repeat)."""
        self._broke = False
        self._idle_mute: Fault | None = None
        """A mute-heartbeats fault that found nothing of the recording's to mute: it
        strikes at the first WebSocket Ping it leaves unanswered, if one comes; else the
        report notes that it tested nothing (:meth:`notes`)."""
        self._throttle: Throttle | None = None
        self._fragment = 0

    @property
    def conn(self) -> int | None:
        return self.recorded.conn if self.recorded is not None else None

    @property
    def path(self) -> str:
        return self.request.path if self.request is not None else ""

    @property
    def upgraded(self) -> bool:
        """The 101 went out."""
        return self.protocol is not None

    @property
    def hangup(self) -> bool:
        """Close the transport once :meth:`data_to_send` has been written."""
        if self._throttle is not None and self._throttle.pending and not self.blackholed:
            return False  # the throttled bytes go first (a drop after them, a Close)
        if self.phase is Phase.UPGRADED:
            return self.protocol is not None and self.protocol.hangup
        return self.phase is Phase.ANSWERED

    @property
    def waiting_for_request(self) -> bool:
        """No complete request has come yet (a server at its connection limit may drop
        such a connection to make room)."""
        return self.phase is Phase.HANDSHAKE

    @property
    def close(self) -> CloseInfo:
        return self.protocol.close if self.protocol is not None else CloseInfo()

    # -- the Handler of the WebSocket --------------------------------------------------

    def report(self, found: Iterable[Violation | None]) -> None:
        """Count each violation; pass on at most :data:`LISTED` of each rule, so a client
        that floods the server with faults cannot grow the report without bound."""
        for v in found:
            if v is not None:
                self.found[v.severity] = self.found.get(v.severity, 0) + 1
                listed = self._listed.get(v.rule, 0)
                if listed < LISTED:
                    self._listed[v.rule] = listed + 1
                    self.session.add_violation(v)
                else:
                    key = (v.rule, v.severity)
                    self._unlisted[key] = self._unlisted.get(key, 0) + 1

    def _take(self, script: Script) -> None:
        """Report what the script found since it was last asked, and empty its outbox."""
        if script.violations:
            self.report(script.violations)
            script.violations.clear()

    def unlisted(self) -> list[Violation]:
        """One violation per rule and severity that went past :data:`LISTED`, saying how
        many more there were (the same rule and severity, so the verdict stands)."""
        conn = self.recorded.conn if self.recorded is not None else None
        return [
            Violation(
                rule,
                severity,
                conn,
                f"{n:,} more {rule} on this connection, not listed (a connection lists "
                f"at most {LISTED} of each rule)",
                actual=n,
            )
            for (rule, severity), n in self._unlisted.items()
        ]

    def log(self, text: str) -> None:
        self.session.log(self, text)

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> None:
        self._run_script(now, opcode, payload)

    def on_client_gone(self, code: int, reason: str, now: float) -> None:
        script = self.script
        if script is None:
            return
        if self.protocol is not None and self.protocol.failure is None:
            script.client_left(now)
            self._take(script)
        expected = script.recorded.close
        if expected is not None and expected.by is Side.CLIENT:
            self.report(check_close_changed(expected, code, reason, self.cfg, self.conn))
        self._note_unplayed(script, "the client left")
        throttle = self._throttle
        if throttle is not None and throttle.pending and not script.running:
            # The script sent everything, but the throttle still held some of it: the
            # client left before it had the whole recording.
            what = (
                f"recorded server messages ({len(throttle.pending)} bytes the throttle "
                "still held when the client left)"
            )
            self.report(
                unplayed(self.conn, what, self.cfg, allow_partial=self.options.allow_partial)
            )

    def _note_unplayed(self, script: Script, why: str) -> None:
        if script.silent or script.state in (Step.DONE, Step.IDLE):
            return
        if script.heartbeat_dead:
            return  # it gave up on a dead heartbeat (mute-heartbeats), as it should
        left, first = script.unplayed_messages()
        if left:
            what = f"{left} recorded message{'s' if left != 1 else ''} ({why})"
            self.report(
                unplayed(
                    self.conn,
                    what,
                    self.cfg,
                    allow_partial=self.options.allow_partial,
                    first=first,
                    decoded=None if first is None else script.summary(first),
                )
            )

    # -- output -----------------------------------------------------------------------

    def data_to_send(self, now: float | None = None) -> bytes:
        """Bytes to write now (possibly empty); ``now`` paces the throttle fault."""
        if self.protocol is not None:
            if not (self._out or self.blackholed or self._throttle is not None):
                return self.protocol.data_to_send()  # the open WebSocket's frames, as they are
            self._out.append(self.protocol.data_to_send())
        data = b"".join(self._out)
        self._out.clear()
        if self.blackholed:
            # A dead path: what was sent before the fault still goes, nothing after.
            sent, self._before_blackhole = self._before_blackhole, b""
            return sent
        throttle = self._throttle
        if throttle is not None:
            at = now if now is not None else throttle_clock(throttle)
            data = throttle.take(data, at)
            if throttle.pending and self.script is not None:
                self.script.postpone(throttle.drained_at(at))
        return data

    def next_deadline(self) -> float | None:
        if self.phase is Phase.HELD:
            return self._accept_at
        if self.phase is Phase.HANDSHAKE:
            return self.started + self.options.timeout
        if self.blackholed:
            return self._blackhole_until if self.phase is Phase.UPGRADED else None
        if self.phase is not Phase.UPGRADED or self.protocol is None:
            return None
        protocol = self.protocol
        at = protocol.next_deadline()
        script = self.script
        if script is not None and protocol.state is State.OPEN:
            at = _earlier(at, script.deadline)
            if self.faults is not None:
                at = _earlier(at, self.faults.next_deadline())
        throttle = self._throttle
        if throttle is not None and throttle.pending:
            at = _earlier(at, throttle.next_deadline(throttle_clock(throttle)))
        return at

    # -- flow control ---------------------------------------------------------------------

    @property
    def wants_input(self) -> bool:
        """Read from the client now? False while its frames wait for the output to drain
        (:attr:`ServerProtocol.backlogged`, or the transport is full) and once
        :data:`HELD_LIMIT` bytes came while the 101 is held back."""
        if self.phase is Phase.HELD:
            return self._held_size < HELD_LIMIT
        if self.blackholed:
            return False
        throttle = self._throttle
        if throttle is not None and len(throttle.pending) > THROTTLE_HIGH:
            return False
        protocol = self.protocol
        if protocol is not None:
            return protocol.taking and not protocol.backlogged
        return True

    @property
    def backlogged(self) -> bool:
        """Frames wait that can be taken now: call :meth:`receive_data` with no bytes."""
        protocol = self.protocol
        return protocol is not None and protocol.backlogged and protocol.taking

    def pause_output(self) -> None:
        """The transport's buffer is full: take no more frames, send nothing new."""
        if self.protocol is not None:
            self.protocol.pause_output()

    def resume_output(self, now: float) -> None:
        """The transport drained: take the frames that waited."""
        if self.protocol is not None:
            self.protocol.resume_output(now)

    def stalled(self, now: float, buffered: int) -> None:
        """The client has read nothing for ``--timeout`` with ``buffered`` bytes waiting:
        report it (REPLAY-CLIENT-STALLED) and hang up; the driver aborts the transport."""
        protocol = self.protocol
        if protocol is None or not protocol.stalled(now):
            return
        t = round(now - self.started, 6)
        self.report(client_stalled(self.conn, self.options.timeout, buffered, self.cfg, t))
        self.log(f"the client read nothing for {self.options.timeout:g} s: dropping it")

    # -- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Bytes from the client (none: go on with frames that waited, see
        :attr:`backlogged`). ``data`` may be a view of the driver's read buffer: what is
        kept of it is copied before this returns."""
        phase = self.phase
        if phase is Phase.UPGRADED:
            protocol = self.protocol
            if protocol is not None and not self.blackholed:
                script = self.script
                if script is not None:
                    script.visible = script.emitted  # (sent before this read: it went out)
                protocol.receive_data(data, now)
        elif phase is Phase.HELD:
            if data:
                self._held.append(bytes(data))  # early data: judged when the 101 goes out
                self._held_size += len(data)
        elif phase is Phase.HANDSHAKE:
            result = self._parser.feed(data)
            if result is not None:
                self._handshake(result, now)
                if self.upgraded and self._parser.leftover:
                    self._feed(self._parser.leftover, now)

    def _feed(self, data: bytes | bytearray | memoryview, now: float) -> None:
        assert self.protocol is not None
        self.protocol.receive_data(data, now)

    def receive_eof(self, now: float) -> None:
        """The client closed its side of TCP (or the connection broke)."""
        self.connection_lost(now)

    def tick(self, now: float) -> None:
        """The clock reached :meth:`next_deadline` (calling early is harmless)."""
        if self.phase is Phase.HELD:
            if self._accept_at is not None and now >= self._accept_at:
                self._accept_at = None
                self.report(
                    check_connect_timeout(
                        self._stall_seconds,
                        None,
                        self.cfg,
                        self.conn,
                        timeout=self.options.connect_timeout,
                    )
                )
                self._accept(now)
        elif self.phase is Phase.HANDSHAKE:
            if now >= self.started + self.options.timeout:
                # No complete request in time (a probe, a preconnect): hang up quietly.
                self.phase = Phase.ANSWERED
        elif self.phase is Phase.UPGRADED and self.protocol is not None:
            if not self.blackholed:
                self.protocol.tick(now)
                self._run_script(now)
            elif _due(self._blackhole_until, now) and not self.protocol.hangup:
                # The server's side of the dead path gives up too: TCP goes, no Close.
                self.log("dropping the blackholed connection")
                self.protocol.drop(CloseCode.ABNORMAL_CLOSURE)

    # -- handshake ----------------------------------------------------------------------

    def _handshake(self, result: Open | BadRequest, now: float) -> None:
        session = self.session
        if isinstance(result, BadRequest):
            self.report(
                [
                    violation(
                        result.rule,
                        Severity.ERROR,
                        self.cfg,
                        None,
                        f"not a WebSocket upgrade request ({result.message}); expected "
                        f"{result.expected}",
                        expected=result.expected,
                        actual=result.message,
                    )
                ]
            )
            self._respond(error_response(result.status, result.message))
            return
        if result.request_header("Upgrade") is None and (
            result.request_header("Sec-WebSocket-Key") is None
        ):
            # Plain HTTP (Engine.IO long-polling, a health check): another transport, not
            # a broken upgrade; one finding, not every handshake rule.
            self.report(
                not_a_websocket_request(result.method, result.target, result.query, self.cfg)
            )
            self._respond(error_response(400, "wstape replays WebSocket upgrades only"))
            return
        candidate = session.select(result)
        conn = candidate.conn if candidate is not None else 0
        req = replace(result, conn=conn)
        self.request = req
        self.recorded = candidate
        verdict = judge_request(req, self.cfg, seen_keys=session.seen_keys(req))
        found = verdict.violations
        if verdict.refusal is None:  # (bytes after a refused request await no 101)
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
            found = [replace(v, conn=None) for v in found]
        self.report(found)
        session.connecting(self, req, now)

        if verdict.refusal is not None:
            self._respond(verdict.refusal)
            return
        if candidate is None:
            self._respond(error_response(404, f"no recorded connection for {req.target}"))
            return
        fault = session.faults.handshake(candidate.conn, req.path) if session.faults else None
        if fault is not None and fault.kind is FaultKind.REFUSE:
            # Not claimed: the client's retry gets the same recorded connection.
            self._respond(error_response(fault.status, f"wstape: injected fault {fault.spec}"))
            self.fault_event = session.fault_happened(
                self, fault, f"refused the upgrade with {fault.status}", now
            )
            return
        if not candidate.open.accepted:
            session.claim(candidate)
            self.played = True
            self._respond(recorded_refusal(candidate.open))
            return
        self.played = True
        if fault is not None:  # a stall: hold the 101 back, claim the recording at accept
            self._stall = fault
            self.phase = Phase.HELD
            self._accept_at = now + fault.seconds if fault.seconds else None
            held = f"{fault.seconds:g} s" if fault.seconds else "for good"
            self.fault_event = session.fault_happened(
                self, fault, f"held the upgrade back {held}", now
            )
            session.holding(self)
            if self._parser.leftover:
                self._held.append(self._parser.leftover)
            return
        session.claim(candidate)
        self._accept(now)

    @property
    def stall(self) -> Fault | None:
        """The stall fault that held this connection's 101 back, if one did."""
        return self._stall

    @property
    def _stall_seconds(self) -> float:
        stall = self._stall
        return math.inf if stall is None or not stall.seconds else stall.seconds

    def _accept(self, now: float) -> None:
        """Answer 101, open the WebSocket and start the script."""
        req, candidate = self.request, self.recorded
        assert req is not None and candidate is not None
        if self._stall is not None:
            self.session.claim(candidate)
        agreed = negotiate(
            req.extensions,
            recorded_params(candidate.open.response_headers),
            self.options.compression_mode,
        )
        response = accept_response(
            req, candidate.open, extensions=agreed.header if agreed is not None else None
        )
        self.report(check_response(answered(req, response), self.cfg))
        if candidate.misfit is not None:
            self.report(protocol_misfit(candidate.conn, candidate.misfit, self.cfg))
        self._out.append(response.to_bytes())
        self.status = 101
        self.phase = Phase.UPGRADED
        self.started = now
        options = self.options
        self.protocol = ServerProtocol(
            self,
            self.cfg,
            conn=candidate.conn,
            now=now,
            close_timeout=options.timeout,
            max_frame_size=options.max_size,
            max_message_size=options.max_size,
            max_fragments=options.max_fragments,
            ping_interval=options.ping_interval,
            deflate=agreed.deflate if agreed is not None else None,
            room=self.session.room,
        )
        self.session.opened(self, now)
        self.script = self.session.new_script(candidate, now, setup=self.setup)
        if self.session.faults:
            self.faults = FaultTrack(self.session.faults.arm(candidate.conn, req.path), now)
        self._run_script(now)
        if self._held:
            held = b"".join(self._held)
            self._held = []
            self._held_size = 0
            self.report(check_early_data(len(held), self.cfg, self.conn))
            self._feed(held, now)

    def _respond(self, response: Response) -> None:
        self.status = response.status
        self._out.append(response.to_bytes())
        self.phase = Phase.ANSWERED

    # -- the script ---------------------------------------------------------------------

    def _run_script(self, now: float, opcode: Opcode | None = None, payload: bytes = b"") -> None:
        """Let the script go on (``opcode``: with the client message that came)."""
        script, protocol = self.script, self.protocol
        if script is None or protocol is None or protocol.failure is not None:
            return  # (a failed connection only awaits the client's Close: §7.1.7)
        self._take(script)
        faults = self.faults
        if faults is not None and faults.armed:
            self._fire(faults.due(now), now)
            if self.blackholed or protocol.state is not State.OPEN:
                self._take(script)
                return
        script.unfinished = protocol.unfinished
        if opcode is not None:
            if faults is not None:
                faults.client_received += 1
            actions = script.on_message(opcode, payload, now)
            if faults is not None and faults.armed:
                # after-client=N strikes right after the Nth client message, before any
                # reply to it goes out: the same at every --speed (at 0 the reply was due
                # at once, and went out first).
                self._fire(faults.due(now), now)
                if self.blackholed or protocol.state is not State.OPEN:
                    self._take(script)
                    return
        else:
            actions = script.poll(now)
        for action in actions:
            if isinstance(action, SendMessage):
                protocol.send_message(action.opcode, action.payload, now, fragment=self._fragment)
                if faults is not None:
                    faults.server_sent += 1
                    if faults.armed:
                        fired = faults.due(now)
                        if fired:
                            self._fire(fired, now)
                            if self.blackholed or protocol.state is not State.OPEN:
                                break
            elif isinstance(action, SendClose):
                protocol.send_close(action.code, action.reason, now)
            elif isinstance(action, Drop):
                protocol.drop(action.code)
        if faults is not None and faults.armed and opcode is not None:
            self._fire(faults.due(now), now)
        self._take(script)
        full = script.queued_bytes > QUEUE_LIMIT or script.queued_messages > QUEUE_MESSAGES
        if full != protocol.input_held:
            if full:
                protocol.hold_input()
            else:
                protocol.release_input()
        if protocol.state is not State.OPEN or script.state is Step.RUNNING:
            return  # running: nothing below applies
        if script.silent and script.state is Step.DONE:
            protocol.send_close(
                CloseCode.NORMAL_CLOSURE, "wstape: timed out waiting for the client", now
            )
        elif script.state is Step.AWAIT_CLOSE and _due(script.ends_at, now):
            script.give_up(now)
            self._take(script)
            protocol.send_close(
                CloseCode.NORMAL_CLOSURE, "wstape: timed out waiting for the client's Close", now
            )
        elif script.state is Step.IDLE and _due(script.ends_at, now):
            # The recording stopped with the connection open; end it politely.
            script.state = Step.DONE
            protocol.send_close(CloseCode.GOING_AWAY, "wstape: end of recording", now)

    # -- faults -------------------------------------------------------------------------

    def aimed_at_by(self, fault: Fault) -> bool:
        """Would ``fault``, injected now, strike this open connection?"""
        if self.phase is not Phase.UPGRADED or self.recorded is None or self.script is None:
            return False
        if self.protocol is None or self.protocol.state is not State.OPEN:
            return False
        return fault.kind not in HANDSHAKE_FAULTS and fault.aims_at(self.recorded.conn, self.path)

    def arm(self, fault: Fault, now: float) -> None:
        """A fault injected while this connection is open (:meth:`aimed_at_by`): its
        point counts from ``now``. It fires on the next :meth:`tick` (the driver wakes
        the connection after an injection)."""
        if not self.aimed_at_by(fault):
            return
        if self.faults is None:  # opened before the run had any fault
            self.faults = FaultTrack([], self.started)
        self.faults.add(fault, now)

    def _fire(self, faults: list[Fault], now: float) -> None:
        """Make each fault happen to this open connection (docs/faults.md)."""
        protocol, script = self.protocol, self.script
        assert protocol is not None and script is not None
        for fault in faults:
            kind = fault.kind
            if kind is FaultKind.DROP:
                what = "dropped TCP with no Close"
                protocol.drop(CloseCode.ABNORMAL_CLOSURE)
            elif kind is FaultKind.CLOSE:
                what = f"closed with {describe(fault.code, fault.reason)}"
                protocol.send_close(fault.code, fault.reason, now)
            elif kind is FaultKind.BLACKHOLE:
                what = "stopped sending and reading (TCP left open)"
                self._out.append(protocol.data_to_send())
                self._before_blackhole = b"".join(self._out)
                self._out.clear()
                self.blackholed = True
                wait = self.options.expect_reconnect or self.options.timeout
                self._blackhole_until = now + wait
            elif kind is FaultKind.MUTE_HEARTBEATS:
                script.muted = True
                protocol.mute_pings = True
                protocol.on_muted_ping = self._ping_muted
                if not script.plan.client_pings and not script.server_heartbeats:
                    # Nothing of the recording's to mute: only a WebSocket Ping the client
                    # sends from now on would go unanswered (then it strikes).
                    self._idle_mute = fault
                    protocol.on_muted_ping = self._mute_struck
                    self.log(
                        f"fault {fault.spec}: {self._nothing_to_mute()}; it strikes at the "
                        "client's first WebSocket Ping, if one comes"
                    )
                    continue
                what = "stopped answering the client's heartbeats"
                if script.server_heartbeats:
                    what = "stopped sending the server's heartbeats" + (
                        " and answering the client's" if script.plan.client_pings else ""
                    )
            elif kind is FaultKind.DELAY:
                what = f"held every server message back {fault.ms:g} ms"
                script.extra_delay = _fixed(fault.ms / 1000)
            elif kind is FaultKind.JITTER:
                what = f"held every server message back 0-{fault.ms:g} ms"
                rng = random.Random(fault.seed * 1_000_003 + self.serial)
                script.extra_delay = functools.partial(rng.uniform, 0.0, fault.ms / 1000)
            elif kind is FaultKind.THROTTLE:
                what = f"throttled the server to {fault.rate} bytes/s"
                self._throttle = Throttle(fault.rate, now)
            else:
                what = f"fragmented server messages into {fault.size}-byte frames"
                self._fragment = fault.size
            if (kind in ENDING_FAULTS or kind is FaultKind.MUTE_HEARTBEATS) and not self._broke:
                self._broke = True
                self.setup_done = script.judged
            if kind in ENDING_FAULTS:
                self.broken_by = fault
                script.state = Step.DONE
            self.fault_event = self.session.fault_happened(self, fault, what, now)
            self.log(f"fault {fault.spec}: {what}")
            if kind in ENDING_FAULTS:
                break

    def _nothing_to_mute(self) -> str:
        script = self.script
        assert script is not None
        if script.plan.empty:
            why = "the recording has no heartbeats (none declared, detected or of its protocol)"
        else:
            why = "the recording's only heartbeats are the client's keep-alives, never answered"
        return f"nothing to mute: {why}"

    def _ping_muted(self, now: float) -> None:
        """The mute-heartbeats fault left a WebSocket Ping of the client's unanswered: a
        client that gives up on the connection now is expected back, not blamed."""
        if self.script is not None:
            self.script.pings_muted = True
        if self.protocol is not None:
            self.protocol.on_muted_ping = None

    def _mute_struck(self, now: float) -> None:
        """The mute-heartbeats fault that had nothing of the recording's to mute left a
        WebSocket Ping unanswered: now it struck."""
        fault, self._idle_mute = self._idle_mute, None
        self._ping_muted(now)
        if fault is None or self.script is None:
            return
        what = "stopped answering the client's WebSocket Pings"
        if not self._broke:
            self._broke = True
            self.setup_done = self.script.judged
        self.fault_event = self.session.fault_happened(self, fault, what, now)
        self.log(f"fault {fault.spec}: {what}")

    @property
    def untested_fault(self) -> str | None:
        """The spec of the fault that had nothing to mute here (its own note says so)."""
        return None if self._idle_mute is None else self._idle_mute.spec

    def notes(self) -> list[str]:
        """Lines for the report's notes: a fault that tested nothing on this connection."""
        fault = self._idle_mute
        if fault is None:
            return []
        return [
            f"fault {fault.spec} on conn {self.conn} had {self._nothing_to_mute()}, and "
            "the client sent no WebSocket Ping; it tested nothing"
        ]

    # -- the end ------------------------------------------------------------------------

    def result(self) -> ConnectionResult | None:
        """This connection's line in the report, or None if it played no recording."""
        if not self.played or self.recorded is None or self.request is None:
            return None
        c = self.close
        script = self.script
        return ConnectionResult(
            conn=self.recorded.conn,
            path=self.request.path,
            client=self.client,
            messages_expected=script.messages_expected
            if script is not None
            else self.recorded.messages_expected,
            messages_matched=script.matched if script is not None else 0,
            close=CloseResult(c.by.value if c.by is not None else None, c.code, c.reason),
            protocol=self.recorded.codec.name if self.recorded.codec is not None else None,
            heartbeats=script.beats.to_dict() if script is not None else None,
            correlated=script.correlator.substituted if script is not None else 0,
            errors=self.found.get(Severity.ERROR, 0),
            warnings=self.found.get(Severity.WARN, 0),
        )

    def shutdown(self, now: float) -> None:
        """The server is stopping: say goodbye (1001) and hang up without judging the client."""
        if self.phase is Phase.GONE:
            return
        if self.script is not None:
            self._note_unplayed(self.script, "the server stopped first")
        if self.protocol is not None:
            self.protocol.stop(now)
        else:
            self.phase = Phase.ANSWERED

    def connection_lost(self, now: float) -> None:
        """TCP is gone. Settles the close checks and tells the session."""
        if self.phase is Phase.GONE:
            return
        if self.phase is Phase.HELD:
            # The client gave up while its 101 was held back.
            self._accept_at = None
            self.report(
                check_connect_timeout(
                    self._stall_seconds,
                    now - self.started,
                    self.cfg,
                    self.conn,
                    timeout=self.options.connect_timeout,
                )
            )
        protocol = self.protocol
        if protocol is not None:
            protocol.connection_lost(now)
        self.phase = Phase.GONE
        self.session.ended(self, now, abnormal=protocol.abnormal if protocol else True)

    def describe_close(self) -> str:
        c = self.close
        what = describe(c.code, c.reason) if c.code is not None else "no close"
        who = c.by.value if c.by is not None else "nobody"
        return f"closed by {who}: {what}"


def throttle_clock(throttle: Throttle) -> float:
    """The throttle's own last time: data asked for without a clock goes at that pace."""
    return throttle.at


def _fixed(seconds: float) -> Callable[[], float]:
    return lambda: seconds


def _earlier(a: float | None, b: float | None) -> float | None:
    """The earlier of two deadlines, None standing for none."""
    if a is None:
        return b
    return a if b is None or a <= b else b


def _due(deadline: float | None, now: float) -> bool:
    return deadline is not None and now >= deadline


__all__ = ["LiveConnection", "Phase", "Session"]
