"""Per-connection and total statistics of a cassette, streaming in bounded memory.

Message sizes and the gaps between messages go into :class:`Histogram` s, whose memory is
bounded whatever the number of messages: they count every distinct value exactly until
they have seen 4096 different ones; then values of 2048 and above (bytes, or microseconds
for gaps) go into buckets 1/512 wide in relative terms, so such a percentile may be
reported up to 0.2 % low. ``max`` is always exact.
Percentiles use the nearest-rank method (p50 is a value that was actually seen, up to the
bucket rounding).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wstape.core.connections import Strays, fold_connections
from wstape.core.model import Close, Message, Open, Record, Side
from wstape.interchange.jsonl import close_fields, iso_utc

_EXACT_BELOW = 2048
_MANTISSA_BITS = 10
_MAX_EXACT_KEYS = 4096


def _bucket(value: int) -> int:
    if value < _EXACT_BELOW:
        return value
    shift = value.bit_length() - _MANTISSA_BITS
    return (value >> shift) << shift


class Histogram:
    """Counts of non-negative integers in bounded memory (see the module docstring)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.exact = True
        self.n = 0
        self.max: int | None = None

    def _count(self, key: int, count: int) -> None:
        if not self.exact:
            key = _bucket(key)
        self.counts[key] = self.counts.get(key, 0) + count
        if self.exact and len(self.counts) > _MAX_EXACT_KEYS:
            self.exact = False
            exact, self.counts = self.counts, {}
            for k, c in exact.items():
                self._count(k, c)

    def add(self, value: int) -> None:
        value = max(0, value)
        self._count(value, 1)
        self.n += 1
        if self.max is None or value > self.max:
            self.max = value

    def merge(self, other: Histogram) -> None:
        for key, count in other.counts.items():
            self._count(key, count)
        self.n += other.n
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def percentiles(self, *ps: float) -> list[int | None]:
        """Nearest-rank percentiles (``ps`` in 0..100); None for an empty histogram."""
        if self.n == 0:
            return [None for _ in ps]
        ranks = [max(1, -(-self.n * p // 100)) for p in ps]  # ceil(n * p / 100)
        out: list[int | None] = [None] * len(ps)
        seen = 0
        keys = sorted(self.counts)
        order = sorted(range(len(ps)), key=lambda i: ranks[i])
        k = 0
        for key in keys:
            seen += self.counts[key]
            while k < len(order) and ranks[order[k]] <= seen:
                out[order[k]] = key
                k += 1
            if k == len(order):
                break
        return out


def _sizes_json(h: Histogram) -> dict[str, int | None]:
    p50, p90, p99 = h.percentiles(50, 90, 99)
    return {"p50": p50, "p90": p90, "p99": p99, "max": h.max}


def _seconds(us: int | None) -> float | None:
    return None if us is None else round(us / 1e6, 6)


def _gaps_json(h: Histogram) -> dict[str, float | None]:
    (p50,) = h.percentiles(50)
    return {"p50": _seconds(p50), "max": _seconds(h.max)}


@dataclass
class ConnectionStats:
    open: Open
    messages: dict[Side, int] = field(default_factory=lambda: {Side.CLIENT: 0, Side.SERVER: 0})
    bytes: dict[Side, int] = field(default_factory=lambda: {Side.CLIENT: 0, Side.SERVER: 0})
    sizes: dict[Side, Histogram] = field(
        default_factory=lambda: {Side.CLIENT: Histogram(), Side.SERVER: Histogram()}
    )
    gaps: Histogram = field(default_factory=Histogram)
    last_message_t: float | None = None
    last_t: float = 0.0
    close: Close | None = None

    def add(self, record: Record) -> None:
        if isinstance(record, Message):
            self.messages[record.side] += 1
            self.bytes[record.side] += record.size
            self.sizes[record.side].add(record.size)
            if self.last_message_t is not None:
                self.gaps.add(round((record.t - self.last_message_t) * 1e6))
            self.last_message_t = record.t
            self.last_t = max(self.last_t, record.t)
        elif isinstance(record, Close):
            self.close = record
            self.last_t = max(self.last_t, record.t)

    @property
    def duration(self) -> float:
        return self.last_t

    def to_json(self) -> dict[str, Any]:
        return {
            "conn": self.open.conn,
            "url": self.open.url,
            "status": self.open.status,
            "started_at": iso_utc(self.open.started_at),
            "duration": round(self.duration, 6),
            "messages": {s.value: self.messages[s] for s in Side},
            "bytes": {s.value: self.bytes[s] for s in Side},
            "size": {s.value: _sizes_json(self.sizes[s]) for s in Side},
            "gap": _gaps_json(self.gaps),
            "close": None if self.close is None else close_fields(self.close),
        }


@dataclass
class CassetteStats:
    connections: list[ConnectionStats] = field(default_factory=list)
    strays: Strays = field(default_factory=Strays)
    """Records that belong to no connection (left out of every figure)."""

    def total_json(self) -> dict[str, Any]:
        sizes = {Side.CLIENT: Histogram(), Side.SERVER: Histogram()}
        gaps = Histogram()
        codes: dict[str, int] = {}
        first: float | None = None
        last: float | None = None
        unclosed = 0
        for c in self.connections:
            for s in Side:
                sizes[s].merge(c.sizes[s])
            gaps.merge(c.gaps)
            start = c.open.started_at
            end = start + c.duration
            first = start if first is None else min(first, start)
            last = end if last is None else max(last, end)
            if c.open.accepted:
                if c.close is None:
                    unclosed += 1
                else:
                    key = "none" if c.close.code is None else str(c.close.code)
                    codes[key] = codes.get(key, 0) + 1
        accepted = sum(1 for c in self.connections if c.open.accepted)
        return {
            "connections": len(self.connections),
            "accepted": accepted,
            "refused": len(self.connections) - accepted,
            "messages": {s.value: sum(c.messages[s] for c in self.connections) for s in Side},
            "bytes": {s.value: sum(c.bytes[s] for c in self.connections) for s in Side},
            "size": {s.value: _sizes_json(sizes[s]) for s in Side},
            "gap": _gaps_json(gaps),
            "duration": 0.0 if first is None or last is None else round(last - first, 6),
            "close_codes": dict(sorted(codes.items())),
            "unclosed": unclosed,
        }

    def to_json(self) -> dict[str, Any]:
        """The ``wstape stats --json`` document (docs/interchange.md)."""
        return {
            "connections": [c.to_json() for c in self.connections],
            "total": self.total_json(),
        }


def compute_stats(records: Iterable[Record]) -> CassetteStats:
    """Statistics of every connection, streaming the records once."""
    folded = fold_connections(records, ConnectionStats, ConnectionStats.add)
    return CassetteStats(folded.connections, folded.strays)
