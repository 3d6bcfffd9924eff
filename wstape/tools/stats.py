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

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import mul, sub
from typing import IO, Any

from wstape.core.connections import (
    ConnectionTracker,
    MessageFields,
    MessageRun,
    Strays,
    slim_open,
)
from wstape.core.model import Close, Message, Open, Record, Side
from wstape.interchange.jsonl import (
    close_fields,
    close_json,
    iso_utc,
    plain_float,
    quote,
    spaced,
)

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

    def add_many(self, values: list[int]) -> None:
        """:meth:`add` each of ``values`` (counted in C: a stats pass adds thousands)."""
        if not values:
            return
        low = min(values)
        if low < 0:
            values = [max(0, v) for v in values]
        for key, count in Counter(values).items():
            self._count(key, count)
        self.n += len(values)
        high = max(values)
        if self.max is None or high > self.max:
            self.max = high

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


def exact_percentiles(values: list[int], *ps: float) -> tuple[list[int | None], int | None]:
    """What a :class:`Histogram` of ``values`` (a few thousand at most: it is still exact)
    gives for ``percentiles(*ps)`` and ``max``, from the sorted values themselves, with no
    histogram built (a short connection's figures)."""
    if not values:
        return [None for _ in ps], None
    ordered = sorted(values)
    if ordered[0] < 0:
        ordered = [max(0, v) for v in ordered]
    n = len(ordered)
    return [ordered[int(max(1, -(-n * p // 100))) - 1] for p in ps], ordered[-1]


def _short_sizes_json(values: list[int]) -> dict[str, int | None]:
    (p50, p90, p99), high = exact_percentiles(values, 50, 90, 99)
    return {"p50": p50, "p90": p90, "p99": p99, "max": high}


def _short_gaps_json(values: list[int]) -> dict[str, float | None]:
    (p50,), high = exact_percentiles(values, 50)
    return {"p50": _seconds(p50), "max": _seconds(high)}


_NO_SIZES = '{"p50": null, "p90": null, "p99": null, "max": null}'
_NO_GAPS = '{"p50": null, "max": null}'


def _short_sizes_text(values: list[int]) -> str:
    """``spaced(_short_sizes_json(values))`` for ``values`` of ints."""
    (p50, p90, p99), high = exact_percentiles(values, 50, 90, 99)
    if high is None:
        return _NO_SIZES
    return f'{{"p50": {p50}, "p90": {p90}, "p99": {p99}, "max": {high}}}'


def _short_gaps_text(values: list[int]) -> str:
    """``spaced(_short_gaps_json(values))`` for ``values`` of ints (microseconds)."""
    (p50,), high = exact_percentiles(values, 50)
    if p50 is None or high is None:
        return _NO_GAPS
    # (an int's microseconds in seconds: a finite float, written as float.__repr__)
    return f'{{"p50": {round(p50 / 1e6, 6)!r}, "max": {round(high / 1e6, 6)!r}}}'


def _seconds(us: int | None) -> float | None:
    return None if us is None else round(us / 1e6, 6)


def _gaps_json(h: Histogram) -> dict[str, float | None]:
    (p50,) = h.percentiles(50)
    return {"p50": _seconds(p50), "max": _seconds(h.max)}


_CLIENT = Side.CLIENT
_SERVER = Side.SERVER
_PENDING = 4096
"""Values a connection collects before they go into its histograms at once (in C)."""


class ConnectionStats:
    """One connection's figures, built message by message. ``open`` is its open record
    without headers and body: a cassette of many connections costs a few hundred bytes
    per connection."""

    __slots__ = (
        "_bytes_client",
        "_bytes_server",
        "_gaps",
        "_messages_client",
        "_messages_server",
        "_pending",
        "_sizes",
        "close",
        "last_message_t",
        "last_t",
        "open",
    )

    def __init__(self, open: Open) -> None:
        self.open = slim_open(open)
        self._messages_client = self._messages_server = 0
        self._bytes_client = self._bytes_server = 0
        """Messages and bytes already flushed (the properties add what waits)."""
        self.last_message_t: float | None = None
        self.last_t = 0.0
        self.close: Close | None = None
        self._pending: tuple[list[int], list[int], list[float]] | None = None
        """Sizes of client and server messages and times of messages not yet in a
        histogram."""
        self._sizes: tuple[Histogram, Histogram] | None = None
        self._gaps: Histogram | None = None

    def add(self, record: Record | MessageFields) -> None:
        if isinstance(record, tuple):
            t, side, size = record[1], record[2], len(record[4])
        elif isinstance(record, Message):
            t, side, size = record.t, record.side, len(record.payload)
        else:
            if isinstance(record, Close):
                self.close = record
                self.last_t = max(self.last_t, record.t)
            return
        pending = self.pending()
        pending[side is not _CLIENT].append(size)  # (counted, summed and binned in batches)
        times = pending[2]
        times.append(t)
        if len(times) >= _PENDING:
            self.flush()

    def add_run(self, run: MessageRun) -> None:
        """:meth:`add` each message of ``run`` (all of this connection), in a few calls made
        in C. (The figures do not depend on where the values were flushed: a connection
        keeps plain lists only while it has fewer than ``_PENDING`` messages, either way.)"""
        client, server, times = self.pending()
        sizes = list(map(len, run.payloads))
        kinds = run.kinds
        client.extend(compress(sizes, map((2).__gt__, kinds)))
        server.extend(compress(sizes, map((1).__lt__, kinds)))
        times.extend(run.ts)
        if len(times) >= _PENDING:
            self.flush()

    def pending(self) -> tuple[list[int], list[int], list[float]]:
        """The sizes of client and server messages and the times of messages waiting to go
        into the histograms (:meth:`flush` them once there are ``_PENDING`` times)."""
        if self._pending is None:
            self._pending = ([], [], [])
        return self._pending

    def _gaps_of(self, times: list[float]) -> list[int]:
        """Microseconds between consecutive messages, the first from the last flushed one."""
        before = self.last_message_t
        previous = times[:-1] if before is None else [before, *times[:-1]]
        start = 1 if before is None else 0
        return list(map(round, map(mul, map(sub, times[start:], previous), repeat(1e6))))

    def flush(self) -> None:
        """Put the waiting values into the histograms."""
        if self._pending is None:
            return
        client, server, times = self._pending
        if self._sizes is None:
            self._sizes = (Histogram(), Histogram())
            self._gaps = Histogram()
        assert self._gaps is not None
        self._messages_client += len(client)
        self._messages_server += len(server)
        self._bytes_client += sum(client)
        self._bytes_server += sum(server)
        self._sizes[0].add_many(client)
        self._sizes[1].add_many(server)
        if times:
            self._gaps.add_many(self._gaps_of(times))
            self.last_message_t = times[-1]
            self.last_t = max(self.last_t, max(times))
        client.clear()
        server.clear()
        times.clear()

    def _pending_of(self, side: int) -> list[int]:
        if self._pending is None:
            return []
        return self._pending[1] if side else self._pending[0]

    @property
    def messages_client(self) -> int:
        return self._messages_client + len(self._pending_of(0))

    @property
    def messages_server(self) -> int:
        return self._messages_server + len(self._pending_of(1))

    @property
    def bytes_client(self) -> int:
        return self._bytes_client + sum(self._pending_of(0))

    @property
    def bytes_server(self) -> int:
        return self._bytes_server + sum(self._pending_of(1))

    @property
    def messages(self) -> dict[Side, int]:
        return {Side.CLIENT: self.messages_client, Side.SERVER: self.messages_server}

    @property
    def bytes(self) -> dict[Side, int]:
        return {Side.CLIENT: self.bytes_client, Side.SERVER: self.bytes_server}

    def histograms(self) -> tuple[Histogram, Histogram, Histogram]:
        """Client message sizes, server message sizes and gaps. A connection with fewer
        than a few thousand messages keeps none (its values wait in plain lists): these are
        then built afresh on each call."""
        if self._sizes is not None:
            self.flush()
            assert self._gaps is not None
            return self._sizes[0], self._sizes[1], self._gaps
        built = (Histogram(), Histogram(), Histogram())
        if self._pending is not None:
            client, server, times = self._pending
            built[0].add_many(client)
            built[1].add_many(server)
            built[2].add_many(self._gaps_of(times))
        return built

    @property
    def sizes(self) -> dict[Side, Histogram]:
        client, server, _ = self.histograms()
        return {Side.CLIENT: client, Side.SERVER: server}

    @property
    def gaps(self) -> Histogram:
        return self.histograms()[2]

    @property
    def duration(self) -> float:
        if self._pending is not None and self._pending[2]:
            return max(self.last_t, max(self._pending[2]))
        return self.last_t

    def short_values(self) -> tuple[list[int], list[int], list[int]] | None:
        """A connection whose values all still wait in plain lists (a few thousand at
        most, no histogram yet): the sizes of its client and server messages and the gaps
        between its messages, in microseconds; else None."""
        if self._sizes is not None:
            return None
        client, server, times = self._pending or ([], [], [])
        return client, server, self._gaps_of(times)

    def json_text(self, short: tuple[list[int], list[int], list[int]] | None) -> str:
        """``spaced(self.to_json())``, the connection's object encoded; ``short`` is
        :meth:`short_values`. A short connection of plain values (its open's ints ints,
        its duration a finite float) is built as one string, the rest by the encoder."""
        o = self.open
        conn, status = o.conn, o.status
        duration = plain_float(round(self.duration, 6))
        if short is None or duration is None or type(conn) is not int or type(status) is not int:
            return spaced(self.to_json())
        client, server, gaps = short
        # (sizes are len()s and gaps round()s: ints, as _short_sizes_json has them)
        return (
            f'{{"conn": {conn}, "url": {quote(o.url)}, "status": {status}, '
            f'"started_at": {quote(iso_utc(o.started_at))}, "duration": {duration}, '
            f'"messages": {{"client": {len(client)}, "server": {len(server)}}}, '
            f'"bytes": {{"client": {sum(client)}, "server": {sum(server)}}}, '
            f'"size": {{"client": {_short_sizes_text(client)}, '
            f'"server": {_short_sizes_text(server)}}}, '
            f'"gap": {_short_gaps_text(gaps)}, "close": {close_json(self.close)}}}'
        )

    def to_json(self) -> dict[str, Any]:
        """The connection's object of ``wstape stats --json``."""
        short = self.short_values()
        if short is not None:  # (the same figures, from the sorted values)
            size = {"client": _short_sizes_json(short[0]), "server": _short_sizes_json(short[1])}
            gap = _short_gaps_json(short[2])
        else:
            client, server, gaps = self.histograms()
            size = {"client": _sizes_json(client), "server": _sizes_json(server)}
            gap = _gaps_json(gaps)
        return {
            "conn": self.open.conn,
            "url": self.open.url,
            "status": self.open.status,
            "started_at": iso_utc(self.open.started_at),
            "duration": round(self.duration, 6),
            "messages": {"client": self.messages_client, "server": self.messages_server},
            "bytes": {"client": self.bytes_client, "server": self.bytes_server},
            "size": size,
            "gap": gap,
            "close": None if self.close is None else close_fields(self.close),
        }


class _Totals:
    """The cassette's totals, each connection added once it is over."""

    def __init__(self) -> None:
        self._sizes = {Side.CLIENT: Histogram(), Side.SERVER: Histogram()}
        self._gaps = Histogram()
        self._pending: tuple[list[int], list[int], list[int]] = ([], [], [])
        """Short connections' client sizes, server sizes and gaps, not yet in the
        histograms (added in C, :data:`_PENDING` at a time: a histogram's counts do not
        depend on how its values were batched)."""
        self.codes: dict[str, int] = {}
        self.first: float | None = None
        self.last: float | None = None
        self.unclosed = 0
        self.connections = self.accepted = 0
        self.messages = {Side.CLIENT: 0, Side.SERVER: 0}
        self.bytes = {Side.CLIENT: 0, Side.SERVER: 0}

    def add(
        self, c: ConnectionStats, short: tuple[list[int], list[int], list[int]] | None = None
    ) -> None:
        """Add connection ``c``, over (``short``: its :meth:`~ConnectionStats.short_values`,
        when the caller has them)."""
        if short is None:
            short = c.short_values()
        if short is not None:  # (its values straight into the totals: no histogram built)
            client_sizes, server_sizes, gaps = short
            pending = self._pending
            pending[0].extend(client_sizes)
            pending[1].extend(server_sizes)
            pending[2].extend(gaps)
            if len(pending[0]) + len(pending[1]) >= _PENDING or len(pending[2]) >= _PENDING:
                self._flush()
            # (what c's properties add up: a short connection has flushed nothing)
            counts = (len(client_sizes), len(server_sizes), sum(client_sizes), sum(server_sizes))
        else:
            client, server, gap = c.histograms()
            self._sizes[Side.CLIENT].merge(client)
            self._sizes[Side.SERVER].merge(server)
            self._gaps.merge(gap)
            counts = (c.messages_client, c.messages_server, c.bytes_client, c.bytes_server)
        o = c.open
        start = o.started_at
        end = start + c.duration
        self.first = start if self.first is None else min(self.first, start)
        self.last = end if self.last is None else max(self.last, end)
        self.connections += 1
        if o.accepted:
            self.accepted += 1
            close = c.close
            if close is None:
                self.unclosed += 1
            else:
                key = "none" if close.code is None else str(close.code)
                self.codes[key] = self.codes.get(key, 0) + 1
        messages, bytes_ = self.messages, self.bytes
        messages[_CLIENT] += counts[0]
        messages[_SERVER] += counts[1]
        bytes_[_CLIENT] += counts[2]
        bytes_[_SERVER] += counts[3]

    def _flush(self) -> None:
        client, server, gaps = self._pending
        self._sizes[Side.CLIENT].add_many(client)
        self._sizes[Side.SERVER].add_many(server)
        self._gaps.add_many(gaps)
        client.clear()
        server.clear()
        gaps.clear()

    @property
    def sizes(self) -> dict[Side, Histogram]:
        """Every connection's message sizes, per side."""
        self._flush()
        return self._sizes

    @property
    def gaps(self) -> Histogram:
        """Every connection's gaps between messages, in microseconds."""
        self._flush()
        return self._gaps

    def to_json(self) -> dict[str, Any]:
        first, last = self.first, self.last
        sizes, gaps = self.sizes, self.gaps
        return {
            "connections": self.connections,
            "accepted": self.accepted,
            "refused": self.connections - self.accepted,
            "messages": {s.value: self.messages[s] for s in Side},
            "bytes": {s.value: self.bytes[s] for s in Side},
            "size": {s.value: _sizes_json(sizes[s]) for s in Side},
            "gap": _gaps_json(gaps),
            "duration": 0.0 if first is None or last is None else round(last - first, 6),
            "close_codes": dict(sorted(self.codes.items())),
            "unclosed": self.unclosed,
        }


class SpoolFailed(Exception):
    """The spool of :func:`compute_stats` could not be written (a full disk): the caller
    computes again without one (the texts in memory, as without a temporary file)."""


def _spool_write(spool: IO[str], lines: list[str]) -> None:
    try:
        spool.write("\n".join(lines))
        spool.flush()  # (a full disk shows here, not in a later read of the texts)
    except OSError as e:
        raise SpoolFailed(str(e)) from e


@dataclass
class CassetteStats:
    """What :func:`compute_stats` found. A connection is kept as its JSON object, encoded,
    from the moment it is over (its figures can no longer change): some 400 bytes per
    connection, where its :class:`ConnectionStats` would cost several times that."""

    connections: list[str] = field(default_factory=list)
    """Each connection's object of ``wstape stats --json``, encoded, in opening order
    (none when they went to a ``spool``)."""
    totals: _Totals = field(default_factory=_Totals)
    strays: Strays = field(default_factory=Strays)
    """Records that belong to no connection (left out of every figure)."""
    spool: IO[str] | None = None
    """Where the texts went instead, one a line, in opening order (:func:`compute_stats`'s
    ``spool``)."""

    def texts(self) -> Iterator[str]:
        """Each connection's object, encoded, in opening order (read back from the spool,
        if there is one)."""
        if self.spool is None:
            return iter(self.connections)
        self.spool.seek(0)
        return (line[:-1] for line in self.spool)  # (an encoded object has no raw newline)

    def finish(self, c: ConnectionStats) -> str:
        """``c``, over: added to the totals, and its JSON text (to keep in its place)."""
        short = c.short_values()
        self.totals.add(c, short)
        return c.json_text(short)

    def connection_docs(self) -> Iterator[dict[str, Any]]:
        """Each connection's object of ``wstape stats --json``, in opening order."""
        return map(json.loads, self.texts())

    def total_json(self) -> dict[str, Any]:
        return self.totals.to_json()

    def write_json(self, out: IO[str]) -> None:
        """:meth:`to_json` as ``json.dump`` writes it, one connection at a time (the whole
        document of a cassette of many connections would not fit in memory)."""
        out.write('{"connections": [')
        batch: list[str] = []
        for i, text in enumerate(self.texts()):
            batch.append(", " + text if i else text)
            if len(batch) >= 256:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch))
        out.write('], "total": ' + spaced(self.total_json()) + "}")

    def to_json(self) -> dict[str, Any]:
        """The ``wstape stats --json`` document (docs/interchange.md)."""
        return {"connections": list(self.connection_docs()), "total": self.total_json()}


def compute_stats(
    records: Iterable[Record | MessageFields | MessageRun],
    over: Callable[[ConnectionStats], object] | None = None,
    *,
    spool: IO[str] | None = None,
) -> CassetteStats:
    """Statistics of every connection, streaming the records once; ``over`` is handed each
    connection's figures once it is over (``wstape stats`` holds the end records to them).

    ``spool`` (a file open for writing and reading, ``newline="\\n"``): each connection's
    text is written there, one a line, as soon as it and every connection opened before it
    are over, instead of being kept (``stats --json`` of 200,000 connections: memory for
    the connections still going, not a text per connection). Raises SpoolFailed when it
    cannot be written.

    :func:`~wstape.core.connections.fold_connections` with :meth:`ConnectionStats.add`, a
    message of a live connection added in the loop itself (a big cassette is mostly that),
    a :class:`~wstape.core.connections.MessageRun` of one in one go (the reader's
    ``iter_runs``);
    each connection is finished (:meth:`CassetteStats.finish`) at its close, a refused
    upgrade at once, the rest when the records end.
    """
    tracker = ConnectionTracker()
    route = tracker.route
    live_slots = tracker.live_slots
    result = CassetteStats()

    def told(state: ConnectionStats) -> str:
        assert over is not None
        over(state)
        return result.finish(state)

    finish: Callable[[ConnectionStats], str] = result.finish if over is None else told
    states: list[Any] = []
    """Per slot: its ConnectionStats while the connection lasts, then its JSON text."""
    waiting: list[tuple[list[int], list[int], list[float]] | None] = []
    """Each connection's values waiting for its histograms (ConnectionStats._pending)."""
    spooled = 0
    """Slots whose text went to the spool (the first ones: they go in opening order)."""
    lines: list[str] = []

    def to_spool() -> None:
        """Spool the texts of the slots from ``spooled`` on that are over."""
        nonlocal spooled
        assert spool is not None
        while spooled < len(states) and type(states[spooled]) is str:
            lines.append(states[spooled])
            states[spooled] = None
            spooled += 1
        if len(lines) >= 256:
            lines.append("")
            _spool_write(spool, lines)
            lines.clear()

    position = -1
    for item in records:
        if isinstance(item, MessageRun):  # (a few hundred messages, of one live connection
            conn = item.one_conn()  # mostly: added in one go)
            live = None if conn is None else live_slots(conn)
            if live:
                states[live[-1]].add_run(item)
                position += len(item.conns)
                continue
            batch: Iterable[Record | MessageFields] = item.fields()
        else:
            batch = (item,)
        for record in batch:
            position += 1
            if isinstance(record, tuple):
                live = live_slots(record[0])
                if live:
                    slot = live[-1]
                    pending = waiting[slot]
                    if pending is None:
                        pending = waiting[slot] = states[slot].pending()
                    pending[record[2] is not _CLIENT].append(len(record[4]))
                    times = pending[2]
                    times.append(record[1])
                    if len(times) >= _PENDING:
                        states[slot].flush()
                    continue
            tracker.position = position
            slot = route(record)
            if slot >= 0:
                if type(record) is Open:
                    state = ConnectionStats(record)
                    waiting.append(None)
                    if record.accepted:
                        states.append(state)
                        continue
                    states.append(finish(state))
                    if spool is not None and slot == spooled:
                        to_spool()
                    continue
                state = states[slot]
                if type(state) is ConnectionStats:
                    if type(record) is Close:  # (state.add(record), inlined)
                        state.close = record
                        if record.t > state.last_t:  # (max(state.last_t, record.t))
                            state.last_t = record.t
                        states[slot] = finish(state)
                        waiting[slot] = None
                        if spool is not None and slot == spooled:
                            to_spool()
                    else:
                        state.add(record)
    for slot, state in enumerate(states):
        if type(state) is ConnectionStats:
            states[slot] = finish(state)
    result.strays = tracker.strays
    if spool is None:
        result.connections = states
        return result
    to_spool()
    lines.append("")
    _spool_write(spool, lines)
    result.spool = spool
    return result
