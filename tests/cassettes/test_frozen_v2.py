"""tests/data/cassette-v2.msgpack is frozen: written once by format version 2 (the records
of the v1 sample, then a second writer appending one connection, each writer ending with
its end record), never regenerated. Every later wstape must still read it to exactly these
records, and still see a cut at any of its record boundaries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import msgpack

from tests.cassettes.test_frozen_v1 import V1
from wstape.cassettes import CassetteReader, UnendedCassette, read_cassette
from wstape.cassettes.v2 import ConnCount
from wstape.core.model import Close, Message, Note, Opcode, Open, Side

V2 = Path(__file__).parent.parent / "data" / "cassette-v2.msgpack"


def test_reads_frozen_v2_sample() -> None:
    header, recs = read_cassette(V2)
    assert header.version == 2
    assert header.creator == "wstape 0.1.0"
    assert header.started_at == 1795590000.0
    _, v1_recs = read_cassette(V1)
    assert recs[:9] == v1_recs  # the first writer: the v1 sample's records, as they were
    again = recs[9]
    assert isinstance(again, Open)
    assert again == replace(
        v1_recs[0], conn=4, started_at=v1_recs[0].started_at + 10, target="/chat?room=2"
    )
    assert recs[10:] == [
        Message(4, 0.125, Side.SERVER, Opcode.BINARY, b""),
        Message(4, 70000.5, Side.CLIENT, Opcode.TEXT, "再见".encode()),
        Close(4, 70001.0, None, None, "", False),
        Note(4, "recording stopped while the connection was open", 70001.0),
    ]


def test_frozen_v2_layout() -> None:
    # Messages are arrays, the other records maps, and two end records: one per writer.
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(V2.read_bytes())
    objs = list(unpacker)
    assert [o["type"] if isinstance(o, dict) else "array" for o in objs] == [
        "header",
        "open",
        "array",
        "array",
        "array",
        "note",
        "open",
        "close",
        "open",
        "close",
        "end",
        "open",
        "array",
        "array",
        "close",
        "note",
        "end",
    ]
    assert objs[2] == [1, 0.01, 0, '{"type":"hello","name":"小明"}'.encode()]
    assert objs[4] == [1, 0.5, 3, bytes(range(256))]
    assert objs[10] == {
        "type": "end",
        "records": 9,
        "conns": [[1, 6], [2, 1], [3, 2]],
        "size": 45,
    }
    end = CassetteReader(V2).end_summary()
    assert end is not None and end.records == 5 and end.size == 39
    assert end.conns == (ConnCount(4, 5),)


def test_every_cut_at_a_record_boundary_of_the_frozen_v2_sample_is_reported(
    tmp_path: Path,
) -> None:
    # All but one: cut just after the first writer's end record, the file is what it was
    # before the second writer appended, a complete cassette (docs/cassette-format.md).
    data = V2.read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    unpacker.skip()
    cut = tmp_path / "cut.msgpack"
    complete = []
    while unpacker.tell() < len(data):
        cut.write_bytes(data[: unpacker.tell()])
        try:
            list(CassetteReader(cut))
            complete.append(unpacker.tell())
        except UnendedCassette:
            pass
        unpacker.skip()
    assert complete == [2083]  # (where the first end record ends)
