"""One replay run: which recorded connection each client gets, and the session rules.

:class:`ReplaySession` implements the :class:`~wstape.core.replay.connection.Session`
that every :class:`~wstape.core.replay.connection.LiveConnection` of the run talks to:
connection selection (first unplayed recorded connection of the path), the rules that
span connections (socket limit, reconnect backoff, reused keys), the violations and the
report.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from wstape.core.lint import client_group
from wstape.core.model import Close, Message, Open, TlsInfo
from wstape.core.redaction import matches_redacted
from wstape.core.replay.connection import LiveConnection
from wstape.core.replay.faults import Fault, FaultBook, FaultEvent, FaultKind
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.protocol import MessageRoom
from wstape.core.replay.recorded import RecordedConnection
from wstape.core.replay.script import Script
from wstape.core.report import KEEP, Report, ReportBook, build_report
from wstape.core.rules import (
    ReconnectEpisode,
    RuleConfig,
    Severity,
    Violation,
    check_socket_limit,
    no_client,
    no_reconnect,
    reconnect_too_soon,
    unplayed,
)

EventSource = Callable[[int], Iterator[Message | Close]]
"""Gives the recorded events (messages and close, in order) of a recorded connection."""


class ReplaySession:
    """One replay run over a set of recorded connections.

    ``events`` gives a recorded connection's events on demand (the replay server streams
    them from the cassette). ``on_violation`` and ``on_log`` are called as things happen,
    for live human output.
    """

    serves_cassette = True
    """A run nobody connected to proves nothing, even over a cassette of no connection
    (False for echo mode, which has no recording to play)."""

    def __init__(
        self,
        recorded: Sequence[RecordedConnection],
        events: EventSource,
        cfg: RuleConfig,
        options: PlayOptions,
        *,
        on_violation: Callable[[Violation], None] | None = None,
        on_log: Callable[[LiveConnection, str], None] | None = None,
        keep: int = KEEP,
    ) -> None:
        self.recorded = list(recorded)
        self.events = events
        self.cfg = cfg
        self.options = options
        self.on_violation = on_violation
        self.on_log = on_log
        self._book = ReportBook(keep)
        self.violations: list[Violation] = self._book.violations
        """The violations listed (past :data:`~wstape.core.report.KEEP`, only the first of
        each rule and severity; the rest are counted)."""
        self.room = MessageRoom.for_max_size(options.max_size)
        """What the unfinished messages of all connections may hold together."""
        self.connections: dict[int, LiveConnection] = {}
        """Connections still open; ended ones leave only their report line behind."""
        self._serial = itertools.count()
        self._claimed: set[int] = set()
        self._played: set[int] = set()
        self._keys: dict[str, None] = {}
        """The last :data:`RECENT_KEYS` Sec-WebSocket-Keys (RFC-HS-KEY-REUSED), oldest first."""
        self._open: dict[tuple[str, ...], int] = {}
        self._limit_reported: dict[tuple[str, ...], set[Severity]] = {}
        self._episodes: dict[tuple[str, ...], ReconnectEpisode] = {}
        self._live_count = 0
        self._connected = 0
        """TCP connections accepted during the run."""
        self.finished = False
        self._faults = FaultBook(options.fault_list())
        self._started: float | None = None
        self._again: set[int] = set()
        """Recorded connections a fault broke: a reconnect plays them again."""
        self._watches: list[_Watch] = []
        """Reconnects expected after faults."""
        self._counted: set[int] = set()
        """Live connections (serials) counted as open sockets of their client."""
        self._notes: dict[str, None] = {}
        """Report notes of the connections that ended (:meth:`LiveConnection.notes`)."""
        self._untested: set[str] = set()
        """Specs of faults that had nothing to mute on a connection that ended (noted)."""
        self._unseen: frozenset[int] | None = None
        """The ``--correlate`` paths (by index) no ended connection's recorded client
        units had; None until a connection that played its recording ended."""

    # -- connections ----------------------------------------------------------------

    @property
    def faults(self) -> FaultBook:
        return self._faults

    def inject(self, fault: Fault, now: float) -> list[LiveConnection]:
        """Add a fault while the run goes on (``ReplayServer.inject``): it strikes the
        open connections it aims at (as many as its ``times`` allow, oldest first; its
        point counts from ``now``) and the ones to come. Returns the connections armed:
        the driver wakes them (:meth:`LiveConnection.tick`) so that it fires."""
        i = self._faults.inject(fault)
        armed = []
        for live in sorted(self.connections.values(), key=lambda live: live.serial):
            if live.aimed_at_by(fault) and self._faults.take_open(i):
                live.arm(fault, now)
                armed.append(live)
        return armed

    def fault_happened(
        self, live: LiveConnection, fault: Fault, what: str, now: float
    ) -> FaultEvent:
        start = self._started if self._started is not None else now
        earlier = live.fault_event
        if earlier is not None and earlier.then == "nothing yet":
            # (QA: it stayed "nothing yet" in the final report: the next fault took over)
            later = now - start - earlier.at
            earlier.then = f"nothing before {fault.spec} struck {later:.3f} s later"
        event = self._faults.record(
            FaultEvent(
                spec=fault.spec,
                conn=live.conn,
                at=now - start,
                t=now - live.started if live.upgraded else None,
                what=what,
            )
        )
        if fault.kind is FaultKind.BLACKHOLE and live.request is not None:
            # The path is dead from here on, but the server never learns when the client
            # gives up on it (nothing is read): expect it back now, and serve its
            # recording again while the dead connection is still open. (The dead
            # connection is dropped at the watch's deadline, and its end wakes the
            # driver's session timer.)
            self._expect_back(live, event, now, code=None)
        return event

    def connect(
        self, *, client: str, scheme: str, tls: TlsInfo | None, now: float, wall: float
    ) -> LiveConnection:
        """A TCP (or TLS) connection was accepted."""
        if self._started is None:
            self._started = now
        live = LiveConnection(
            self,
            serial=next(self._serial),
            client=client,
            scheme=scheme,
            tls=tls,
            now=now,
            wall=wall,
        )
        self.connections[live.serial] = live
        self._live_count += 1
        self._connected += 1
        return live

    def _matches(self, rec: RecordedConnection, req: Open) -> bool:
        if rec.open.path != req.path:
            return False
        if self.options.ignore_query:
            return True
        ignored = set(self.options.ignore_query_params)
        if rec.codec is not None:
            ignored |= rec.codec.session_query_params
        if rec.open.query == req.query:
            return True
        # In any order of its parameters (python-socketio sends ``transport=websocket&EIO=4``
        # where a browser sent ``EIO=4&transport=websocket``); a value redacted at recording
        # (``token=<redacted>``) matches any live one.
        recorded, live = _query_items(rec.open.query, ignored), _query_items(req.query, ignored)
        return len(recorded) == len(live) and all(
            matches_redacted(a, b) for a, b in zip(recorded, live, strict=True)
        )

    def select(self, req: Open) -> RecordedConnection | None:
        """The first unplayed recorded connection for ``req``'s path (not claimed yet)."""
        candidates = [rec for rec in self.recorded if self._matches(rec, req)]
        for rec in candidates:
            if rec.conn not in self._claimed:
                return rec
        for rec in candidates:
            if rec.conn in self._again:
                # A reconnect after a fault: the same recording again, from its start.
                self._again.discard(rec.conn)
                self._claimed.discard(rec.conn)
                return rec
        if self.options.loop and candidates:
            for rec in candidates:
                self._claimed.discard(rec.conn)
            return candidates[0]
        return None

    def claim(self, rec: RecordedConnection) -> None:
        self._claimed.add(rec.conn)

    def new_script(self, rec: RecordedConnection, now: float, *, setup: int = 0) -> Script:
        """The script a connection that was answered with ``rec``'s 101 plays (``setup``:
        a reconnect after a fault, whose first ``setup`` client units are checked as its
        setup)."""
        script = Script(
            rec,
            self.events(rec.conn),
            self.cfg,
            self.options,
            now,
            timer_events=lambda: self.events(rec.conn),
        )
        script.setup = setup
        return script

    def known_paths(self) -> list[str]:
        return sorted({rec.open.target for rec in self.recorded})

    def seen_keys(self, req: Open) -> frozenset[str]:
        key = (req.request_header("Sec-WebSocket-Key") or "").strip()
        seen = frozenset({key}) if key in self._keys else frozenset()
        if key and not seen:
            self._keys[key] = None
            if len(self._keys) > RECENT_KEYS:
                del self._keys[next(iter(self._keys))]
        return seen

    def connecting(self, live: LiveConnection, req: Open, now: float) -> None:
        """A request was read: track reconnects after an abnormal close or a fault."""
        group = client_group(req)
        for watch in self._watches:
            if watch.group == group and watch.path == req.path:
                self._watches.remove(watch)
                after = now - watch.since
                watch.event.then = f"reconnected after {after:.3f} s"
                live.is_reconnect = True
                live.setup = watch.setup
                if watch.code in WAIT_CODES and after < self.options.reconnect_delay:
                    for v in reconnect_too_soon(
                        live.conn, watch.code, after, self.options.reconnect_delay, self.cfg
                    ):
                        self.add_violation(v)
                break
        episode = self._episodes.get(group)
        if episode is None:
            return
        for v in episode.reconnected(now, self.cfg, live.conn):
            self.add_violation(v)

    def holding(self, live: LiveConnection) -> None:
        """``live``'s upgrade is held back: its socket counts as open (WX-SOCKET-LIMIT)."""
        self._count_open(live)

    def _count_open(self, live: LiveConnection) -> None:
        if live.serial in self._counted or live.request is None:
            return
        self._counted.add(live.serial)
        group = client_group(live.request)
        self._open[group] = self._open.get(group, 0) + 1
        for v in check_socket_limit(self._open[group], self.cfg, live.conn, 0.0):
            reported = self._limit_reported.setdefault(group, set())
            if v.severity not in reported:
                reported.add(v.severity)
                self.add_violation(v)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to settle (a reconnect that may not come)."""
        return min((w.deadline for w in self._watches), default=None)

    def tick(self, now: float) -> None:
        """Settle the reconnects that did not come in time."""
        for watch in [w for w in self._watches if w.deadline <= now]:
            self._watches.remove(watch)
            if watch.required:
                self._missed(watch, stopped=False)

    def _missed(self, watch: _Watch, *, stopped: bool) -> None:
        if watch.event.conn is not None:
            # Its client is not coming back: the run can end (a refused or stalled
            # upgrade never played its recording; the finding says why).
            self._played.add(watch.event.conn)
        wait = self.options.expect_reconnect
        watch.event.then = "no reconnect" + (
            " before the server stopped" if stopped else f" within {wait:g} s"
        )
        event = watch.event
        for v in no_reconnect(
            event.conn, event.spec, wait, self.cfg, stopped=stopped, did=event.what
        ):
            self.add_violation(v)

    def opened(self, live: LiveConnection, now: float) -> None:
        """The 101 went out: count the client's open sockets."""
        assert live.request is not None
        self._count_open(live)
        self.log(live, f"open {live.path} from {live.client}")

    def ended(self, live: LiveConnection, now: float, *, abnormal: bool) -> None:
        self._live_count -= 1
        self.connections.pop(live.serial, None)
        for v in live.unlisted():
            self.add_violation(v)
        result = live.result()
        if result is not None:
            self._book.add_row(live.serial, result)
        for note in live.notes():
            if len(self._notes) < self._book.keep:
                self._notes[note] = None
        if live.untested_fault is not None:
            self._untested.add(live.untested_fault)
        self._unseen = _unseen_by(self._unseen, live)
        if live.request is not None and live.serial in self._counted:
            self._counted.discard(live.serial)
            group = client_group(live.request)
            left = self._open.pop(group, 0) - 1
            if left > 0:
                self._open[group] = left
        if live.recorded is not None and live.request is not None:
            if live.recorded.conn in self._claimed:
                self._played.add(live.recorded.conn)
        if live.request is not None and live.fault_event is not None:
            self._after_fault(live, now)
        if live.request is not None:
            group = client_group(live.request)
            if abnormal:
                self._episodes.setdefault(group, ReconnectEpisode())
                if len(self._episodes) > RECENT_KEYS:  # clients that never came back
                    del self._episodes[next(iter(self._episodes))]
            else:
                self._episodes.pop(group, None)
        if live.upgraded:
            self.log(live, live.describe_close())
        elif live.request is not None:
            if live.status is not None:
                self.log(live, f"refused {live.request.target} with {live.status}")
            else:
                self.log(live, f"left {live.request.target} before it was answered")

    def unfinished(self) -> list[int]:
        """Recorded connections being played now whose script has not reached its end."""
        return [
            live.conn
            for live in self.connections.values()
            if live.conn is not None and live.script is not None and live.script.running
        ]

    def _after_fault(self, live: LiveConnection, now: float) -> None:
        """A connection a fault struck has ended: expect the client back (a drop, an
        abnormal close, a refusal, a stall it gave up on), replay its recording again."""
        assert live.request is not None and live.fault_event is not None
        event = live.fault_event
        broken = live.broken_by
        held = live.status is None or live.status != 101
        kind = broken.kind if broken is not None else None
        code = broken.code if kind is FaultKind.CLOSE and broken is not None else None
        if event.then == "nothing yet":
            c = live.close
            event.then = (
                f"closed by {c.by.value} with {c.code} after {now - live.started:.3f} s"
                if c.by is not None and not held
                else f"gave up after {now - live.started:.3f} s"
            )
        if kind is FaultKind.BLACKHOLE:
            return  # expected back since the fault (fault_happened)
        stall = live.stall
        if held and stall is not None and stall.seconds and stall.times is None:
            # Every upgrade is held back (``stall@for=S``, ``--handshake-delay``): when the
            # client gives up is WX-CONNECT-TIMEOUT's business, a retry would wait again.
            # The recording had its client (a retry still gets it).
            if live.recorded is not None:
                self._played.add(live.recorded.conn)
            return
        # A client that gave up (before the recorded end) on a connection whose heartbeat
        # the mute-heartbeats fault killed did right: it is expected back, to its
        # recording from the start.
        script = live.script
        dead = script is not None and script.heartbeat_dead and script.running
        if broken is not None or held or dead:
            self._expect_back(live, event, now, code=code)

    def _expect_back(
        self, live: LiveConnection, event: FaultEvent, now: float, *, code: int | None
    ) -> None:
        """A fault broke ``live``: its recording is played again to the client's
        reconnect, which must come within ``expect_reconnect`` (after a drop, a
        blackhole, a refusal, a stall, a dead heartbeat, or a close with one of
        :data:`RECONNECT_CODES`) and not before ``reconnect_delay`` (after a close with
        one of :data:`WAIT_CODES`)."""
        assert live.request is not None
        if live.recorded is not None:
            self._again.add(live.recorded.conn)
        required = code is None or code in RECONNECT_CODES
        options = self.options
        if required and options.expect_reconnect > 0:
            wait = options.expect_reconnect
        elif code in WAIT_CODES and options.reconnect_delay > 0:
            # Not expected back (1008), but one that comes is judged: until the delay is
            # over (later, there is nothing to judge, and the run need not wait).
            required, wait = False, options.reconnect_delay
        else:
            return
        self._watches.append(
            _Watch(
                client_group(live.request),
                live.request.path,
                now,
                now + wait,
                event,
                code,
                required=required,
                setup=max(1, live.setup, live.setup_done),
            )
        )

    def forget(self, live: LiveConnection) -> None:
        """Drop a connection whose handling failed (a wstape bug, reported by the caller),
        so the run can still end."""
        if self.connections.pop(live.serial, None) is not None:
            self._live_count -= 1
        if live.recorded is not None:
            self._played.add(live.recorded.conn)

    def add_violation(self, v: Violation) -> None:
        self._book.add_violation(v)
        if self.on_violation is not None:
            self.on_violation(v)

    def log(self, live: LiveConnection, text: str) -> None:
        if self.on_log is not None:
            self.on_log(live, text)

    # -- the end ------------------------------------------------------------------------

    def all_played(self) -> bool:
        """Every recorded connection was played, no client is still connected and no
        reconnect is expected after a fault."""
        if self.options.loop or self._watches:
            return False
        return self._live_count == 0 and all(rec.conn in self._played for rec in self.recorded)

    def report(self, cassette: str) -> Report:
        """The report so far (connections still open are included as they stand)."""
        rows = list(self._book.rows)
        violations = list(self.violations)
        notes = list(self._notes)
        untested = set(self._untested)
        unseen = self._unseen
        for live in self.connections.values():
            result = live.result()
            if result is not None:
                rows.append((live.serial, result))
            violations += live.unlisted()
            notes += live.notes()
            if live.untested_fault is not None:
                untested.add(live.untested_fault)
            unseen = _unseen_by(unseen, live)
        for i in sorted(unseen or ()):
            # A typo in a --correlate path would otherwise go unnoticed: it does nothing.
            notes.append(
                f"--correlate {self.options.correlate[i]} matched no value in the recorded "
                "client messages played, so it changed nothing"
            )
        if self.finished:
            notes += self._faults_that_never_struck(untested)
        rows.sort(key=lambda row: row[0])
        report = build_report(self.cfg.profile.value, cassette, (r for _, r in rows), violations)
        if self._faults.events:
            report = replace(report, faults=tuple(e.to_dict() for e in self._faults.events))
        if self._faults.unlisted:
            notes.append(
                f"the report lists the first {len(self._faults.events):,} faults that struck; "
                f"{self._faults.unlisted:,} more are counted only"
            )
        left_out = self._book.left_out
        if left_out:
            notes.append(left_out.note(self._book.keep))
            report = replace(report, left_out=left_out)
        if notes:
            report = replace(report, notes=tuple(notes))
        return report

    def _faults_that_never_struck(self, untested: set[str]) -> list[str]:
        """A note for each fault that never struck in the run (its point never reached on
        any connection it aims at, ``drop@after=50`` on a recording of 8 server messages):
        the run passed without it, so it tested nothing (a fault that cannot strike on the
        cassette at all is a usage error before the run; one in ``untested``, a mute with
        nothing to mute, has its own note)."""
        done = self._faults.struck | untested
        found = []
        for fault in dict.fromkeys(f.spec for f in self._faults.faults):
            if fault in done:
                continue
            found.append(
                f"fault {fault} never struck: no connection it aims at reached its point; "
                "it tested nothing"
            )
        return found

    def finish(self) -> None:
        """End of the run: report what was never reached. Idempotent."""
        if self.finished:
            return
        self.finished = True
        for watch in self._watches:
            if watch.required:
                self._missed(watch, stopped=True)
        self._watches = []
        if self._connected == 0 and (self.recorded or self.serves_cassette):
            for v in no_client(len(self.recorded), self.cfg):
                self.add_violation(v)
            return
        for rec in self.recorded:
            if rec.conn not in self._claimed and rec.conn not in self._played:
                for v in unplayed(
                    rec.conn,
                    f"recorded connection {rec.conn} ({rec.open.target})",
                    self.cfg,
                    allow_partial=self.options.allow_partial,
                ):
                    self.add_violation(v)


RECENT_KEYS = 65_536
"""How many of the last Sec-WebSocket-Keys a run remembers to tell a reused one: a client
that sends the same key again does so within its next few connections, and a ``--loop``
run's memory stays bounded."""

WAIT_CODES = frozenset({1008, 1011, 1013})
"""Close codes after which a client waits before reconnecting (1013: try again later)."""
RECONNECT_CODES = frozenset({1001, 1011, 1012, 1013, 1014})
"""Close codes after which a client is expected to reconnect (going away, an error on the
server, a restart, try again later, a bad gateway)."""


@dataclass
class _Watch:
    """A reconnect expected after a fault."""

    group: tuple[str, ...]
    path: str
    since: float
    deadline: float
    event: FaultEvent
    code: int | None
    required: bool = True
    """False: only judged if it comes (REPLAY-RECONNECT-TOO-SOON), not missed if not."""
    setup: int = 1
    """The client units the reconnect must start with (what the broken connection had
    sent before the fault struck, at least its first)."""


def _unseen_by(unseen: frozenset[int] | None, live: LiveConnection) -> frozenset[int] | None:
    """The ``--correlate`` paths still unseen once ``live``'s played recording counts."""
    script = live.script
    if script is None:
        return unseen
    mine = script.correlator.unmatched_paths
    return mine if unseen is None else unseen & mine


def _query_items(query: str, names: set[str]) -> list[str]:
    """The query's ``name=value`` items without the ``names``, by name (a name given more
    than once keeps the order of its values)."""
    items = [item for item in query.split("&") if item and item.split("=", 1)[0] not in names]
    return sorted(items, key=lambda item: item.split("=", 1)[0])


__all__ = ["EventSource", "ReplaySession"]
