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

from wstape.core.lint import client_group
from wstape.core.model import Close, Message, Open, TlsInfo
from wstape.core.redaction import matches_redacted
from wstape.core.replay.connection import LiveConnection
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.recorded import RecordedConnection
from wstape.core.replay.script import Script
from wstape.core.report import ConnectionResult, Report, build_report
from wstape.core.rules import (
    ReconnectEpisode,
    RuleConfig,
    Severity,
    Violation,
    check_socket_limit,
    no_client,
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

    def __init__(
        self,
        recorded: Sequence[RecordedConnection],
        events: EventSource,
        cfg: RuleConfig,
        options: PlayOptions,
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
        self._connected = 0
        """TCP connections accepted during the run."""
        self.finished = False

    # -- connections ----------------------------------------------------------------

    def connect(
        self, *, client: str, scheme: str, tls: TlsInfo | None, now: float, wall: float
    ) -> LiveConnection:
        """A TCP (or TLS) connection was accepted."""
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
        if not ignored:
            # A value redacted at recording (``token=<redacted>``) matches any live one.
            return matches_redacted(rec.open.query, req.query)
        return matches_redacted(
            "&".join(_query_without(rec.open.query, ignored)),
            "&".join(_query_without(req.query, ignored)),
        )

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
        return Script(
            rec,
            self.events(rec.conn),
            self.cfg,
            self.options,
            now,
            timer_events=lambda: self.events(rec.conn),
        )

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

    def forget(self, live: LiveConnection) -> None:
        """Drop a connection whose handling failed (a wstape bug, reported by the caller),
        so the run can still end."""
        if self.connections.pop(live.serial, None) is not None:
            self._live_count -= 1
        if live.recorded is not None:
            self._played.add(live.recorded.conn)

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
        if self._connected == 0 and self.recorded:
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


def _query_without(query: str, names: set[str]) -> list[str]:
    """The query's ``name=value`` items without the ``names`` (kept in order)."""
    return [item for item in query.split("&") if item and item.split("=", 1)[0] not in names]


__all__ = ["EventSource", "ReplaySession"]
