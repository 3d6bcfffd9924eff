"""Faults on demand: one small grammar for what can go wrong, and where.

A fault spec is ``KIND`` or ``KIND@key=value,key=value``::

    refuse@status=503,times=2        the first 2 upgrades get a 503, then they are accepted
    stall@times=1                    the first upgrade is never answered (TCP stays open)
    stall@for=5s                     every upgrade is answered 5 s late
    drop@conn=1,after=3              after the 3rd server message of recorded connection 1:
                                     TCP is closed with no Close frame (the client sees 1006)
    close@code=1012,reason=restart,after=2s
    mute-heartbeats@after=10s        stop answering the client's heartbeats, the rest goes on
    blackhole@path=/chat,after=5     stop sending and reading; TCP stays open (a dead NAT)
    delay@ms=200   jitter@ms=100,seed=7   throttle@rate=2048   fragment@size=16

Where: ``conn=ID`` (a recorded connection) or ``path=/p`` (its path, ``*`` wildcards),
default every connection; when: ``after=N`` (after the Nth server message sent),
``after=Ns`` / ``after=250ms`` (time since the upgrade), ``after-client=N`` (after the Nth
client message received), default at once. ``times=K`` makes a fault happen on the first
K connections it aims at (refuse and stall count upgrades), default every time for the
per-message faults and once for the others. Specs are checked when they are parsed:
one :class:`~wstape.core.errors.ConfigError` line naming the spec and what is wrong.

Faults are deterministic: ``jitter`` draws from a generator seeded by ``seed`` (default 0)
and the connection's serial number, so the same spec on the same recording gives the same
run.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from wstape.core.closecodes import CloseCode, is_sendable
from wstape.core.errors import ConfigError
from wstape.core.report import KEEP


class FaultKind(StrEnum):
    REFUSE = "refuse"
    """Answer the upgrade with ``status`` (default 503) instead of a 101."""
    STALL = "stall"
    """Accept TCP and never answer the upgrade (or answer it ``for`` seconds late)."""
    DROP = "drop"
    """Close TCP without a Close frame."""
    CLOSE = "close"
    """Send a Close with ``code`` (default 1001) and ``reason``, then end as usual."""
    MUTE_HEARTBEATS = "mute-heartbeats"
    """Stop answering the client's heartbeat pings (recorded or detected ones)."""
    BLACKHOLE = "blackhole"
    """Stop sending and stop reading; TCP stays open."""
    DELAY = "delay"
    """Hold every server message back ``ms`` milliseconds more."""
    JITTER = "jitter"
    """Hold every server message back a random 0..``ms`` milliseconds more."""
    THROTTLE = "throttle"
    """Send at most ``rate`` bytes per second."""
    FRAGMENT = "fragment"
    """Send server messages longer than ``size`` bytes in fragments of that size."""


HANDSHAKE_FAULTS = frozenset({FaultKind.REFUSE, FaultKind.STALL})
"""Faults that act on the upgrade, before any message."""
ONGOING_FAULTS = frozenset(
    {FaultKind.DELAY, FaultKind.JITTER, FaultKind.THROTTLE, FaultKind.FRAGMENT}
)
"""Faults that change every server message from their point on."""
ENDING_FAULTS = frozenset({FaultKind.DROP, FaultKind.CLOSE, FaultKind.BLACKHOLE})
"""Faults after which the recording is not played on."""

_KEYS: dict[FaultKind, frozenset[str]] = {
    FaultKind.REFUSE: frozenset({"status", "times"}),
    FaultKind.STALL: frozenset({"times", "for"}),
    FaultKind.DROP: frozenset({"times"}),
    FaultKind.CLOSE: frozenset({"code", "reason", "times"}),
    FaultKind.MUTE_HEARTBEATS: frozenset({"times"}),
    FaultKind.BLACKHOLE: frozenset({"times"}),
    FaultKind.DELAY: frozenset({"ms", "times"}),
    FaultKind.JITTER: frozenset({"ms", "seed", "times"}),
    FaultKind.THROTTLE: frozenset({"rate", "times"}),
    FaultKind.FRAGMENT: frozenset({"size", "times"}),
}
_WHERE = frozenset({"conn", "path"})
_WHEN = frozenset({"after", "after-client"})
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")


@dataclass(frozen=True)
class Point:
    """When a fault happens in a connection."""

    server_messages: int | None = None
    """After this many server messages were sent."""
    client_messages: int | None = None
    """After this many client messages were received."""
    seconds: float | None = None
    """This long after the upgrade."""

    @property
    def at_once(self) -> bool:
        return self.server_messages is None and self.client_messages is None and not self.seconds

    def describe(self) -> str:
        if self.server_messages is not None:
            return f"after server message {self.server_messages}"
        if self.client_messages is not None:
            return f"after client message {self.client_messages}"
        if self.seconds:
            return f"{self.seconds:g} s after the upgrade"
        return "at once"


@dataclass(frozen=True)
class Fault:
    """One parsed ``--fault`` spec."""

    kind: FaultKind
    spec: str
    """The spec as written, for reports."""
    conn: int | None = None
    path: str | None = None
    point: Point = Point()
    times: int | None = None
    """On the first ``times`` connections it aims at (None: see :func:`parse_fault`)."""
    status: int = 503
    code: int = CloseCode.GOING_AWAY
    reason: str = ""
    seconds: float | None = None
    """``stall``: answer this late (None: never)."""
    ms: float = 0.0
    seed: int = 0
    rate: int = 0
    size: int = 0

    def aims_at(self, conn: int | None, path: str) -> bool:
        if self.conn is not None and conn != self.conn:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


def check_aims(faults: Iterable[Fault], recorded: Iterable[tuple[int, str]]) -> None:
    """Raise ConfigError for a fault aimed at no recorded connection (``conn=`` and
    ``path=`` against the cassette's ``(conn, path)`` pairs): it could never happen, and
    the run would pass as if the client had weathered it."""
    pairs = list(recorded)
    for fault in faults:
        if fault.conn is None and fault.path is None:
            continue
        if any(fault.aims_at(conn, path) for conn, path in pairs):
            continue
        conns = {conn for conn, _ in pairs}
        if fault.conn is not None and fault.conn not in conns:
            known = ", ".join(str(c) for c in sorted(conns)[:10]) or "none"
            more = ", ..." if len(conns) > 10 else ""
            why = f"the cassette has no connection {fault.conn} (it has {known}{more})"
        else:
            mine = fault.conn is not None
            paths = sorted({path for conn, path in pairs if not mine or conn == fault.conn})
            shown = ", ".join(paths[:5]) + (", ..." if len(paths) > 5 else "")
            if mine:
                why = f"path={fault.path} does not match connection {fault.conn}'s path ({shown})"
            else:
                why = f"path={fault.path} matches none of the recorded paths ({shown or 'none'})"
        raise ConfigError(f"{fault.spec!r}: {why}; it would never happen", option="faults")


def _int(spec: str, key: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(
            f"{spec!r}: {key}={text!r} is not a whole number", option="faults"
        ) from None
    if not low <= value <= high:
        raise ConfigError(f"{spec!r}: {key}={value} is not in {low}..{high}", option="faults")
    return value


def _seconds(spec: str, key: str, text: str) -> float:
    found = _DURATION.match(text)
    if found is None:
        raise ConfigError(
            f"{spec!r}: {key}={text!r} is not a duration (e.g. 5s, 250ms)", option="faults"
        )
    value = float(found.group(1))
    return value / 1000 if found.group(2) == "ms" else value


def parse_fault(spec: str) -> Fault:
    """``KIND[@key=value,...]`` (see the module docstring). Raises ConfigError."""
    kind_text, at, args = spec.strip().partition("@")
    if at and not args.strip():
        raise ConfigError(f"{spec!r}: nothing after @ (e.g. {kind_text}@conn=1)", option="faults")
    if kind_text != kind_text.strip() or args != args.lstrip():
        raise ConfigError(f"{spec!r}: no spaces around @ (e.g. drop@after=3)", option="faults")
    try:
        kind = FaultKind(kind_text.strip())
    except ValueError:
        raise ConfigError(
            f"{spec!r}: unknown fault {kind_text!r}; choose one of {', '.join(FaultKind)}",
            option="faults",
        ) from None
    values: dict[str, str] = {}
    for item in args.split(",") if args else ():
        if not item:
            raise ConfigError(f"{spec!r}: an empty item between commas", option="faults")
        key, eq, value = item.partition("=")
        if not eq or not value.strip():
            raise ConfigError(f"{spec!r}: {item!r} is not key=value", option="faults")
        if key != key.strip() or value != value.strip():
            raise ConfigError(f"{spec!r}: no spaces around = or , in {item!r}", option="faults")
        allowed = _KEYS[kind] | _WHERE | (_WHEN if kind not in HANDSHAKE_FAULTS else set())
        if key not in allowed:
            raise ConfigError(
                f"{spec!r}: {kind.value} takes {', '.join(sorted(allowed))}, not {key!r}",
                option="faults",
            )
        if key in values:
            raise ConfigError(f"{spec!r}: {key} given twice", option="faults")
        values[key] = value.strip()
    if "after" in values and "after-client" in values:
        raise ConfigError(f"{spec!r}: after and after-client exclude each other", option="faults")
    point = Point()
    if "after" in values:
        text = values["after"]
        if text.isdigit():
            point = Point(server_messages=_int(spec, "after", text, 0, 2**31))
        elif _DURATION.match(text) is None:
            raise ConfigError(
                f"{spec!r}: after={text!r} is neither a count of server messages (e.g. 3) nor "
                "a duration (e.g. 5s, 250ms)",
                option="faults",
            )
        else:
            point = Point(seconds=_seconds(spec, "after", text))
    elif "after-client" in values:
        point = Point(client_messages=_int(spec, "after-client", values["after-client"], 0, 2**31))
    fault = Fault(
        kind=kind,
        spec=spec.strip(),
        conn=_int(spec, "conn", values["conn"], 0, 2**53) if "conn" in values else None,
        path=values.get("path"),
        point=point,
        times=_int(spec, "times", values["times"], 1, 2**31) if "times" in values else None,
        status=_int(spec, "status", values.get("status", "503"), 100, 599),
        code=_int(spec, "code", values.get("code", "1001"), 1000, 4999),
        reason=values.get("reason", ""),
        seconds=_seconds(spec, "for", values["for"]) if "for" in values else None,
        ms=float(_int(spec, "ms", values.get("ms", "0"), 0, 3_600_000)),
        seed=_int(spec, "seed", values.get("seed", "0"), 0, 2**31),
        rate=_int(spec, "rate", values.get("rate", "0"), 0, 2**40),
        size=_int(spec, "size", values.get("size", "0"), 0, 2**31),
    )
    final = 200 <= fault.status <= 599 and fault.status not in (204, 304)
    if kind is FaultKind.REFUSE and not final:
        # (1xx is interim and carries no body, nor do 204 and 304: RFC 9110 §15)
        raise ConfigError(
            f"{spec!r}: a refusal is a final status with a body: 200-599, not 204 or 304",
            option="faults",
        )
    if kind is FaultKind.CLOSE and not is_sendable(fault.code):
        raise ConfigError(
            f"{spec!r}: close code {fault.code} cannot go on the wire", option="faults"
        )
    if kind is FaultKind.CLOSE and fault.code == CloseCode.MANDATORY_EXTENSION:
        raise ConfigError(
            f"{spec!r}: close code 1010 is sent by clients only (RFC 6455 §7.4.1)",
            option="faults",
        )
    if kind is FaultKind.CLOSE and len(fault.reason.encode("utf-8")) > 123:
        raise ConfigError(f"{spec!r}: a close reason is at most 123 bytes", option="faults")
    if kind in (FaultKind.DELAY, FaultKind.JITTER) and fault.ms <= 0:
        raise ConfigError(f"{spec!r}: {kind.value} needs ms=N (milliseconds)", option="faults")
    if kind is FaultKind.THROTTLE and fault.rate <= 0:
        raise ConfigError(f"{spec!r}: throttle needs rate=N (bytes per second)", option="faults")
    if kind is FaultKind.FRAGMENT and fault.size <= 0:
        raise ConfigError(f"{spec!r}: fragment needs size=N (bytes)", option="faults")
    return fault


# -- where faults happen: one book per run, one track per connection -----------------------


@dataclass
class FaultEvent:
    """A fault that happened, and what the client did next (for the report and ``view``)."""

    spec: str
    conn: int | None
    at: float
    """Seconds since the run started."""
    t: float | None
    """Seconds since the connection's upgrade (None for a refused or stalled handshake)."""
    what: str
    then: str = "nothing yet"
    """What the client did next: reconnected after N s, closed, kept sending, ..."""

    def to_dict(self) -> dict[str, object]:
        return {
            "spec": self.spec,
            "conn": self.conn,
            "at": round(self.at, 3),
            "t": None if self.t is None else round(self.t, 3),
            "what": self.what,
            "then": self.then,
        }


class FaultBook:
    """The run's faults, and how often each has struck (``times``)."""

    def __init__(self, faults: tuple[Fault, ...] = ()) -> None:
        self.faults: list[Fault] = list(faults)
        self._hits: list[int] = [0] * len(self.faults)
        self.events: list[FaultEvent] = []
        """What struck, the first :data:`~wstape.core.report.KEEP` times (a ``--loop`` run
        may never end); the rest are counted in ``unlisted``."""
        self.unlisted = 0
        self.struck: set[str] = set()
        """The specs of the faults that struck."""

    def __bool__(self) -> bool:
        return bool(self.faults)

    def inject(self, fault: Fault) -> int:
        """Add a fault (``ReplayServer.inject``): it aims at connections from now on.
        Returns its index, for :meth:`take_open`."""
        self.faults.append(fault)
        self._hits.append(0)
        return len(self.faults) - 1

    def take_open(self, i: int) -> bool:
        """An open connection the injected fault ``i`` aims at: may it strike there?
        (It counts against ``times``, as a new connection would.)"""
        fault = self.faults[i]
        if fault.kind in HANDSHAKE_FAULTS:
            return False
        return self._take(i, None if fault.kind in ONGOING_FAULTS else 1)

    def _take(self, i: int, default_times: int | None) -> bool:
        limit = self.faults[i].times if self.faults[i].times is not None else default_times
        if limit is not None and self._hits[i] >= limit:
            return False
        self._hits[i] += 1
        return True

    def handshake(self, conn: int | None, path: str) -> Fault | None:
        """The refuse or stall fault the next upgrade to ``path`` gets, if any."""
        for i, fault in enumerate(self.faults):
            if fault.kind in HANDSHAKE_FAULTS and fault.aims_at(conn, path):
                if self._take(i, None if fault.kind is FaultKind.STALL and fault.seconds else 1):
                    return fault
        return None

    def arm(self, conn: int, path: str) -> list[Fault]:
        """The in-connection faults a new connection to recorded ``conn`` gets."""
        out = []
        for i, fault in enumerate(self.faults):
            if fault.kind in HANDSHAKE_FAULTS or not fault.aims_at(conn, path):
                continue
            if self._take(i, None if fault.kind in ONGOING_FAULTS else 1):
                out.append(fault)
        return out

    def record(self, event: FaultEvent) -> FaultEvent:
        self.struck.add(event.spec)
        if len(self.events) < KEEP:
            self.events.append(event)
        else:
            self.unlisted += 1
        return event


class FaultTrack:
    """The armed faults of one connection, fired as their points are reached."""

    def __init__(self, faults: list[Fault], opened_at: float) -> None:
        self.opened_at = opened_at
        self.server_sent = 0
        self.client_received = 0
        self._waiting: list[tuple[Fault, int, int, float]] = [(f, 0, 0, opened_at) for f in faults]
        """Each fault with where its point counts from (server messages sent, client
        messages received, time)."""

    @property
    def armed(self) -> bool:
        return bool(self._waiting)

    def add(self, fault: Fault, now: float) -> None:
        """Arm one more fault, injected live: its point counts from now (``after=1`` is
        after the next server message, ``after=2s`` two seconds from now)."""
        self._waiting.append((fault, self.server_sent, self.client_received, now))

    def due(self, now: float) -> list[Fault]:
        """The faults whose point was reached (each fires once)."""
        fired = [w for w in self._waiting if self._reached(w, now)]
        if fired:
            self._waiting = [w for w in self._waiting if w not in fired]
        return [w[0] for w in fired]

    def _reached(self, waiting: tuple[Fault, int, int, float], now: float) -> bool:
        fault, sent, received, since = waiting
        point = fault.point
        if point.server_messages is not None:
            return self.server_sent - sent >= point.server_messages
        if point.client_messages is not None:
            return self.client_received - received >= point.client_messages
        if point.seconds:
            return now >= since + point.seconds
        return True

    def next_deadline(self) -> float | None:
        """When a time point is reached (a fault armed to strike at once: when armed)."""
        times = [
            since + (f.point.seconds or 0.0)
            for f, _, _, since in self._waiting
            if f.point.seconds or f.point.at_once
        ]
        return min(times) if times else None


THROTTLE_STEPS = 20
"""Wake-ups per second of a throttled connection (at most)."""


class Throttle:
    """At most ``rate`` bytes per second out: a token bucket with a one-second burst."""

    def __init__(self, rate: int, now: float) -> None:
        self.rate = rate
        self._tokens = float(rate)
        self.at = now
        """When tokens were last counted."""
        self.pending = bytearray()

    def take(self, data: bytes, now: float) -> bytes:
        """Queue ``data``; the bytes that may go now."""
        self.pending += data
        self._tokens = min(float(self.rate), self._tokens + (now - self.at) * self.rate)
        self.at = now
        n = min(len(self.pending), int(self._tokens))
        if n <= 0:
            return b""
        self._tokens -= n
        out = bytes(self.pending[:n])
        del self.pending[:n]
        return out

    def next_deadline(self, now: float) -> float | None:
        """When the next chunk may go: 1/:data:`THROTTLE_STEPS` of a second's worth
        (at least a byte), so the output is paced, not sent in bursts once a second."""
        if not self.pending:
            return None
        chunk = min(len(self.pending), max(1, self.rate // THROTTLE_STEPS))
        need = max(1.0, chunk - self._tokens)
        return now + need / self.rate

    def drained_at(self, now: float) -> float:
        """When the bytes held now will all have gone."""
        return now + max(0.0, len(self.pending) - self._tokens) / self.rate


__all__ = [
    "ENDING_FAULTS",
    "HANDSHAKE_FAULTS",
    "ONGOING_FAULTS",
    "Fault",
    "FaultBook",
    "FaultEvent",
    "FaultKind",
    "FaultTrack",
    "Point",
    "Throttle",
    "parse_fault",
]
