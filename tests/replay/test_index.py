"""The cassette index: a connection's events come out the same whether the indexing pass
kept them in memory or they are streamed from the file, and the memory kept is bounded."""

from __future__ import annotations

import pytest
import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, s
from wstape.core.model import Note, Record, Side
from wstape.replay import index as index_module
from wstape.replay.index import KEPT_BYTES, KEPT_OVERHEAD, CassetteIndex


def interleaved() -> list[Record]:
    """Three connections interleaved, a refused one, strays and notes between them."""
    records: list[Record] = [
        opening(1, "/a"),
        Note(None, "cassette note"),
        opening(2, "/b"),
        c(9, 0.0, "stray: never opened"),
        opening(3, "/refused", status=403),
        c(3, 0.1, "stray: refused"),
    ]
    for i in range(40):
        records += [c(1, i * 0.01, f"a{i}"), s(2, i * 0.01, f"b{i}" * i, binary=True)]
        if i % 7 == 0:
            records += [Note(1, f"note {i}"), s(1, i * 0.01 + 0.001, f"ra{i}")]
    records += [close(1, 1.0, Side.CLIENT, 1000), c(1, 1.1, "stray: after close")]
    records += [close(2, 1.2, Side.SERVER, 4001, "bye")]
    return records


def events_by_conn(index: CassetteIndex) -> dict[int, list[object]]:
    return {rec.conn: list(index.events(rec.conn)) for rec in index.connections}


@pytest.mark.parametrize("kept_bytes", [0, 300, 15_000, KEPT_BYTES])
def test_kept_and_streamed_events_are_the_same(
    make_cassette: CassetteFactory, monkeypatch: pytest.MonkeyPatch, kept_bytes: int
) -> None:
    path = make_cassette(interleaved())
    monkeypatch.setattr(index_module, "BATCH_FEED", 64)  # many batches, many segments
    monkeypatch.setattr(index_module, "SEGMENT_GAP", 64)
    monkeypatch.setattr(index_module, "KEPT_BYTES", 0)
    streamed = CassetteIndex.build(path)
    assert [streamed.streams(rec.conn) for rec in streamed.connections] == [True, True, False]
    monkeypatch.setattr(index_module, "KEPT_BYTES", kept_bytes)
    index = CassetteIndex.build(path)
    assert events_by_conn(index) == events_by_conn(streamed)
    assert [len(e) for e in events_by_conn(index).values()] == [47, 41, 0]
    kept = [rec.conn for rec in index.connections if not index.streams(rec.conn)]
    cost = sum(
        len(getattr(e, "payload", b"")) + KEPT_OVERHEAD for conn in kept for e in index.events(conn)
    )
    assert cost <= kept_bytes
    if kept_bytes == KEPT_BYTES:
        assert kept == [1, 2, 3]  # a small cassette is replayed from memory
    if kept_bytes == 15_000:
        # Each fits alone, not both: the one that outgrew the room is streamed and its
        # room goes back to the other.
        assert len({1, 2} & set(kept)) == 1


async def test_a_streamed_connection_replays(
    make_cassette: CassetteFactory, monkeypatch: pytest.MonkeyPatch, serve: Serve
) -> None:
    records: list[Record] = [opening(1, "/pairs")]
    for i in range(600):
        records += [c(1, i * 0.001, f"q{i}"), s(1, i * 0.001, f"r{i}")]
    records.append(close(1, 1.0, Side.CLIENT, 1000))
    monkeypatch.setattr(index_module, "KEPT_BYTES", 0)
    server = await serve(make_cassette(records))
    assert server.index is not None and server.index.streams(1)
    async with websockets.connect(
        f"{server.url}/pairs", compression=None, ping_interval=None, proxy=None
    ) as ws:
        for i in range(600):
            await ws.send(f"q{i}")
            assert await ws.recv() == f"r{i}"
        await ws.close(1000)
    assert await server.wait_played(5)
    await server.stop()
    report = server.report()
    assert report.passed, report.violations
