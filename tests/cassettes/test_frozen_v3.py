"""tests/data/cassette-v3.msgpack is frozen: written once by format version 3 (the records
of the v1 sample, by one writer, so its end record lists the connections), never
regenerated. Every later wstape must still read it to exactly these records, list it from
its end as a pass lists it, and still see a cut at any of its record boundaries."""

from __future__ import annotations

from pathlib import Path

import msgpack

from tests.cassettes.test_frozen_v1 import V1
from tests.cassettes.test_listing import by_pass, from_end
from wstape.cassettes import CassetteReader, UnendedCassette, read_cassette
from wstape.cassettes.v2 import ConnCount, ListedConn

V3 = Path(__file__).parent.parent / "data" / "cassette-v3.msgpack"


def test_reads_frozen_v3_sample() -> None:
    header, recs = read_cassette(V3)
    assert header.version == 3
    assert header.creator == "wstape 0.1.0"
    assert header.started_at == 1796000000.0
    assert recs == read_cassette(V1)[1]


def test_frozen_v3_layout() -> None:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(V3.read_bytes())
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
    ]
    assert objs[10] == {
        "type": "end",
        "records": 9,
        "conns": [[1, 6], [2, 1], [3, 2]],
        "listing": [
            [1, 86, 1535, 1, 2, 32, 274, 1.0],
            [2, 1243, None, 0, 0, 0, 0, 0.0],
            [3, 1723, 1974, 0, 0, 0, 0, 2.5],
        ],
        "size": 115,
    }
    end = CassetteReader(V3).end_summary()
    assert end is not None and end.records == 9 and end.size == 115
    assert end.conns == (ConnCount(1, 6), ConnCount(2, 1), ConnCount(3, 2))
    assert end.listing is not None and end.listing[1] == ListedConn(2, 1243, None, 0, 0, 0, 0, 0.0)


def test_frozen_v3_lists_from_its_end_as_a_pass_lists_it() -> None:
    assert from_end(V3) == by_pass(V3) == by_pass(V1)


def test_every_cut_at_a_record_boundary_of_the_frozen_v3_sample_is_reported(
    tmp_path: Path,
) -> None:
    data = V3.read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    unpacker.skip()
    cut = tmp_path / "cut.msgpack"
    while unpacker.tell() < len(data):
        cut.write_bytes(data[: unpacker.tell()])
        try:
            list(CassetteReader(cut))
            raise AssertionError(f"a cut at byte {unpacker.tell()} reads as complete")
        except UnendedCassette:
            pass
        assert CassetteReader(cut).listed() is None  # (no end record: no listing)
        unpacker.skip()
