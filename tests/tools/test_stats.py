"""Statistics: bounded histograms and per-connection totals."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cli.helpers import opened
from tests.helpers.records import write
from wstape.cassettes import CassetteReader
from wstape.core.connections import MessageRun
from wstape.core.model import Close, Message, Opcode, Open, Record, Side
from wstape.tools.stats import Histogram, compute_stats, exact_percentiles

V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"


def nearest_rank(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]


@given(values=st.lists(st.integers(0, 2**40), min_size=1, max_size=300))
@settings(max_examples=200, deadline=None)
def test_percentiles_are_exact_for_few_distinct_values(values: list[int]) -> None:
    h = Histogram()
    for v in values:
        h.add(v)
    assert h.percentiles(50, 90, 99, 100) == [nearest_rank(values, p) for p in (50, 90, 99, 100)]
    assert h.max == max(values) and h.n == len(values)


def test_many_distinct_values_stay_bounded_and_close() -> None:
    h = Histogram()
    values = [(i * 7919) % 10_000_000 for i in range(50_000)]
    for v in values:
        h.add(v)
    assert not h.exact and len(h.counts) < 10_000
    for p, got in zip((50, 90, 99), h.percentiles(50, 90, 99), strict=True):
        want = nearest_rank(values, p)
        assert got is not None and want * 0.998 <= got <= want
    assert h.max == max(values)


def test_merge_and_empty() -> None:
    a, b = Histogram(), Histogram()
    assert a.percentiles(50) == [None] and a.max is None
    a.add(1)
    b.add(5)
    b.add(9)
    a.merge(b)
    assert a.percentiles(50, 100) == [5, 9] and a.n == 3


def test_frozen_sample() -> None:
    doc = compute_stats(CassetteReader(V1)).to_json()
    chat, refused, feed = doc["connections"]
    assert chat["messages"] == {"client": 1, "server": 2}
    assert chat["bytes"] == {"client": 32, "server": 274}
    assert chat["size"]["server"] == {"p50": 18, "p90": 256, "p99": 256, "max": 256}
    assert chat["gap"] == {"p50": 0.01, "max": 0.48}
    assert chat["duration"] == 1.0 and chat["close"]["code"] == 4001
    assert refused["close"] is None and refused["size"]["client"]["max"] is None
    assert feed["gap"] == {"p50": None, "max": None}
    total = doc["total"]
    assert (total["connections"], total["accepted"], total["refused"]) == (3, 2, 1)
    assert total["close_codes"] == {"1006": 1, "4001": 1}
    assert total["duration"] == 4.25  # from the first open to the end of the last
    assert total["unclosed"] == 0


def test_gaps_span_both_directions_and_unclosed_connections() -> None:
    o = Open(1, 0.0, "GET", "ws", "h", 80, "/", "HTTP/1.1", (), 101, ())
    records: list[Record] = [
        o,
        Message(1, 1.0, Side.CLIENT, Opcode.TEXT, b"a"),
        Message(1, 1.5, Side.SERVER, Opcode.TEXT, b"bb"),
        Message(1, 4.5, Side.CLIENT, Opcode.TEXT, b"ccc"),
        Close(2, 9.0, None, None),  # a close of an unknown connection is ignored
    ]
    doc = compute_stats(records).to_json()
    c = doc["connections"][0]
    assert c["gap"] == {"p50": 0.5, "max": 3.0}
    assert c["size"]["client"] == {"p50": 1, "p90": 3, "p99": 3, "max": 3}
    assert c["duration"] == 4.5 and c["close"] is None
    assert doc["total"]["unclosed"] == 1 and doc["total"]["close_codes"] == {}


def test_many_messages_in_batches_give_the_exact_figures(tmp_path: Path) -> None:
    # Over _PENDING messages the values go into the histograms a batch at a time; the
    # figures are those of the whole list, on the fast pass and on Message objects alike.
    sizes = [(i * 37) % 3000 for i in range(10_000)]
    times = [i * 0.001 + (i % 7) * 1e-5 for i in range(10_000)]
    records: list[Record] = [opened(1)]
    for i, (size, t) in enumerate(zip(sizes, times, strict=True)):
        side = Side.CLIENT if i % 3 else Side.SERVER
        records.append(Message(1, t, side, Opcode.BINARY, bytes(size)))
    write(tmp_path / "c.msgpack", records)
    reader = CassetteReader(tmp_path / "c.msgpack")
    fast, slow = compute_stats(reader.iter_fields()).to_json(), compute_stats(reader).to_json()
    assert fast == slow
    client = [s for i, s in enumerate(sizes) if i % 3]
    conn = fast["connections"][0]
    assert conn["messages"] == {"client": len(client), "server": len(sizes) - len(client)}
    assert conn["bytes"]["client"] == sum(client)
    assert conn["size"]["client"]["p50"] == nearest_rank(client, 50)
    assert conn["size"]["client"]["max"] == max(client)
    gaps = [round((b - a) * 1e6) for a, b in itertools.pairwise(times)]
    assert conn["gap"]["max"] == round(max(gaps) / 1e6, 6)
    assert conn["duration"] == round(times[-1], 6)


@given(values=st.lists(st.integers(-5, 10_000), max_size=300))
def test_a_short_connections_figures_are_its_histograms(values: list[int]) -> None:
    # A short connection's percentiles come from its sorted values (no histogram built):
    # the very figures a Histogram of them gives.
    h = Histogram()
    h.add_many(values)
    ps = (0, 1, 50, 90, 99, 99.9, 100)
    assert exact_percentiles(values, *ps) == (h.percentiles(*ps), h.max)


def test_the_totals_of_many_short_connections_are_one_histogram_of_them_all(
    tmp_path: Path,
) -> None:
    # Short connections' values reach the totals' histograms a batch at a time, mixed
    # with a long connection's merged histograms: the totals are those of every value at
    # once, past the point where the histograms turn to buckets (over 4096 sizes) too.
    records: list[Record] = []
    everything: list[int] = []
    for conn in range(1, 1201):
        records.append(opened(conn))
        n = 5000 if conn == 600 else conn % 9
        for i in range(n):
            size = (conn * 7919 + i * 104729) % 20_000
            everything.append(size)
            records.append(Message(conn, i * 0.01, Side.CLIENT, Opcode.BINARY, bytes(size)))
    write(tmp_path / "c.msgpack", records)
    total = compute_stats(CassetteReader(tmp_path / "c.msgpack").iter_fields()).total_json()
    h = Histogram()
    h.add_many(everything)
    assert not h.exact
    p50, p90, p99 = h.percentiles(50, 90, 99)
    assert total["size"]["client"] == {"p50": p50, "p90": p90, "p99": p99, "max": h.max}
    assert total["messages"]["client"] == len(everything)


def _stats_of_each_pass(path: Path) -> list[dict[str, object]]:
    reader = CassetteReader(path)
    return [
        compute_stats(reader.iter_runs()).to_json(),
        compute_stats(reader.iter_fields()).to_json(),
        compute_stats(reader).to_json(),
    ]


def test_runs_of_messages_give_the_figures_of_one_by_one(tmp_path: Path) -> None:
    # Long stretches of one connection's messages come as runs, added in one go (on both
    # sides of the 4096 values a connection keeps in plain lists), and the stretches where
    # two connections interleave one by one.
    records: list[Record] = [opened(1), opened(2), opened(3)]
    for i in range(4090):
        records.append(
            Message(
                1,
                i * 0.003 + (i % 11) * 1e-6,
                Side(("client", "server")[i % 3 == 0]),
                Opcode.TEXT,
                b"x" * (i % 700),
            )
        )
    for i in range(3000):
        conn = 1 + i % 2
        records.append(Message(conn, 20 + i * 0.01, Side.SERVER, Opcode.BINARY, bytes(i % 90)))
    for i in range(9000):
        records.append(Message(3, i * 0.5, Side.CLIENT, Opcode.BINARY, bytes(i % 5000)))
    records += [Close(1, 99.0, Side.CLIENT, 1000), Close(2, 99.0, Side.SERVER, 1001)]
    write(tmp_path / "c.msgpack", records)
    runs = sum(
        isinstance(item, MessageRun) for item in CassetteReader(tmp_path / "c.msgpack").iter_runs()
    )
    assert runs > 100
    by_runs, by_fields, by_messages = _stats_of_each_pass(tmp_path / "c.msgpack")
    assert by_runs == by_fields == by_messages
    conns = by_runs["connections"]
    assert isinstance(conns, list)
    assert conns[0]["messages"]["client"] + conns[0]["messages"]["server"] == 4090 + 1500
