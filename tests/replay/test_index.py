"""The cassette index: a connection's events come out the same whether the indexing pass
kept them in memory or they are streamed from the file, and the memory kept is bounded."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, s
from wstape.cassettes import CassetteError, CassetteReader
from wstape.core.model import Message, Note, Record, Side
from wstape.replay import ReplayServer
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


def conversations() -> list[Record]:
    """Three connections interleaved with notes and strays: two clean, one mismatched."""
    records: list[Record] = [opening(1, "/clean"), opening(2, "/bad"), Note(None, "note")]
    records += [opening(3, "/binary"), c(7, 0.0, "stray: never opened")]
    for i in range(30):
        t = i * 0.01
        records += [c(1, t, {"q": i}), s(1, t + 0.001, {"r": i, "pad": "x" * i})]
        records += [c(2, t, {"q": i}), s(2, t + 0.001, {"r": i})]
        records += [c(3, t, bytes([i]) * i, binary=True), s(3, t, bytes([i]) * 2 * i, binary=True)]
        if i % 9 == 0:
            records += [Note(1, f"note {i}"), s(3, t + 0.002, f"extra {i}")]
    for conn in (1, 2, 3):
        records.append(close(conn, 1.0, Side.CLIENT, 1000))
    return records


async def play(server: ReplayServer, path: str, *, wrong_at: int | None = None) -> None:
    """A client that plays its side of ``conversations()`` (``wrong_at``: one message off)."""
    async with websockets.connect(
        f"{server.url}{path}", compression=None, ping_interval=None, proxy=None
    ) as ws:
        for i in range(30):
            if path == "/binary":
                await ws.send(bytes([i]) * i)
                await ws.recv()
                if i % 9 == 0:
                    await ws.recv()
                continue
            q = i + 1000 if i == wrong_at else i
            await ws.send(json.dumps({"q": q}, separators=(",", ":")))
            await ws.recv()
        await ws.close(1000)


def verdict(server: ReplayServer) -> dict[str, Any]:
    """The report as JSON, less what differs from run to run (the client's port)."""
    data = server.report().to_dict()
    for conn in data["connections"]:
        conn.pop("client")
    return data


async def test_streamed_and_kept_connections_get_the_same_verdicts(
    make_cassette: CassetteFactory, monkeypatch: pytest.MonkeyPatch, serve: Serve
) -> None:
    path = make_cassette(conversations())
    verdicts = []
    for kept_bytes in (KEPT_BYTES, 0):
        monkeypatch.setattr(index_module, "KEPT_BYTES", kept_bytes)
        monkeypatch.setattr(index_module, "BATCH_FEED", 100)  # many batches
        server = await serve(path)
        assert server.index is not None
        assert [server.index.streams(conn) for conn in (1, 2, 3)] == [kept_bytes == 0] * 3
        await asyncio.gather(
            play(server, "/clean"), play(server, "/bad", wrong_at=17), play(server, "/binary")
        )
        assert await server.wait_played(5)
        await server.stop()
        verdicts.append(verdict(server))
    kept, streamed = verdicts
    assert streamed == kept
    assert not kept["passed"]
    assert [v["rule"] for v in kept["violations"]] == ["REPLAY-MESSAGE-MISMATCH"]
    assert [c["messages_matched"] for c in kept["connections"]] == [30, 29, 30]


def test_a_record_corrupted_after_indexing_fails_the_stream_as_a_pass_would(
    make_cassette: CassetteFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_cassette(conversations())
    monkeypatch.setattr(index_module, "KEPT_BYTES", 0)
    monkeypatch.setattr(index_module, "BATCH_FEED", 100)
    index = CassetteIndex.build(path)
    # Conn 1's 20th record changes under the server: a map where the array of a message was.
    offset, number = next(
        (offset, n)
        for n, offset, record in CassetteReader(path).iter_with_offsets()
        if isinstance(record, Message) and record.conn == 1 and record.payload == b'{"q":20}'
    )
    data = bytearray(path.read_bytes())
    assert data[offset] == 0x94  # fixarray of 4: [conn, t, kind, data]
    data[offset] = 0x84  # fixmap of 4
    path.write_bytes(bytes(data))
    with pytest.raises(CassetteError) as from_start:
        list(CassetteReader(path))
    events = index.events(1)
    got = [next(events) for _ in range(40)]  # the records before it come out whole
    assert got[-1] == s(1, 0.191, {"r": 19, "pad": "x" * 19})
    with pytest.raises(CassetteError) as streamed:
        list(events)
    assert str(streamed.value) == str(from_start.value)
    assert f"record {number}" in str(streamed.value) and "\n" not in str(streamed.value)
