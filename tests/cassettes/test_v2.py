"""Format version 2: message arrays, the end record, and what a reader makes of a cassette
that did not end cleanly (a recorder killed, several appenders, a cut at a record boundary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cassettes.test_reader_writer import sample_open, write, write_v1
from tests.helpers.records import make_open, records
from tests.helpers.records import write as write_records
from wstape.cassettes import (
    CassetteError,
    CassetteReader,
    CassetteWriter,
    DuplicateConnection,
    OlderCassette,
    TruncatedCassette,
    UnendedAppend,
    UnendedCassette,
    WriteMode,
    read_cassette,
    v2,
)
from wstape.cassettes.schema import FORMAT_VERSION
from wstape.core.model import Close, Message, Note, Opcode, Record, Side

CHAT: list[Record] = [
    sample_open(1),
    Message(1, 0.01, Side.CLIENT, Opcode.TEXT, b"x" * 100),
    Message(1, 0.02, Side.SERVER, Opcode.BINARY, b"\x00" * 100),
    Note(conn=None, text="about the whole cassette"),
    sample_open(2),
    Message(2, 0.5, Side.SERVER, Opcode.TEXT, b"hi"),
    Close(1, 1.0, Side.CLIENT, 1000, "bye"),
    Note(conn=2, text="a note", t=0.6),
    Close(2, 2.0, Side.SERVER, 1006, "", False),
]


def boundaries(path: Path) -> list[int]:
    """Byte offsets where each record after the header starts, and the file's end."""
    reader = CassetteReader(path)
    data = path.read_bytes()
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    unpacker.skip()
    out = []
    while unpacker.tell() < len(data):
        out.append(unpacker.tell())
        unpacker.skip()
    assert reader.size == len(data)
    return [*out, len(data)]


def test_a_message_costs_its_payload_and_14_bytes(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(path, [sample_open()])
    before = path.stat().st_size
    write(path, [sample_open(), Message(1, 0.25, Side.CLIENT, Opcode.TEXT, b"x" * 100)])
    assert path.stat().st_size - before == 100 + 14
    data = path.read_bytes()
    assert b"\x94\x01\xcb\x3f\xd0" + bytes(6) + b"\x00\xc4\x64" + b"x" * 100 in data


def test_records_round_trip_and_the_end_record_is_not_handed_out(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(path, CHAT)
    header, records = read_cassette(path)
    assert header.version == FORMAT_VERSION and records == CHAT
    end = CassetteReader(path).end_summary()
    assert end is not None and end.records == len(CHAT)
    assert end.conns == (v2.ConnCount(1, 4), v2.ConnCount(2, 4))
    assert end.size == path.stat().st_size - boundaries(path)[-2]


def test_every_cut_at_a_record_boundary_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(path, CHAT)
    full = path.read_bytes()
    cuts = boundaries(path)[:-1]
    assert len(cuts) == len(CHAT) + 1  # every record and the end record
    for cut in cuts:
        path.write_bytes(full[:cut])
        with pytest.raises(UnendedCassette, match="did not end cleanly") as info:
            list(CassetteReader(path))
        assert info.value.offset == cut
        reader = CassetteReader(path, allow_truncated=True)
        assert list(reader) == CHAT[: cuts.index(cut)]
        assert reader.truncated_at == cut and reader.incomplete is not None
        assert reader.end_summary() is None
    for cut in range(boundaries(path)[0], len(full)):  # and every other cut
        path.write_bytes(full[:cut])
        with pytest.raises(TruncatedCassette):
            list(CassetteReader(path))


def test_a_writer_that_fails_or_is_aborted_writes_no_end_record(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    with pytest.raises(RuntimeError), CassetteWriter(path) as w:
        w.write(sample_open())
        raise RuntimeError("a tool failed half way")
    with pytest.raises(UnendedCassette):
        read_cassette(path)
    w = CassetteWriter(path, mode=WriteMode.OVERWRITE)
    w.write(sample_open())
    w.abort()
    assert CassetteReader(path).end_summary() is None
    empty = tmp_path / "empty.msgpack"
    CassetteWriter(empty).close()  # the writer that made the file ends it, even empty
    assert read_cassette(empty)[1] == []


def test_appenders_each_end_what_they_wrote(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    a = CassetteWriter(path, mode=WriteMode.APPEND)
    b = CassetteWriter(path, mode=WriteMode.APPEND)
    with a.reserve_conn() as one:
        a.write(sample_open(one))
    with b.reserve_conn() as two:
        b.write(sample_open(two))
    a.write(Close(one, 1.0, Side.CLIENT, 1000, ""))
    a.close()
    # b is still recording: the file ends with a's end record, but b's open is not
    # accounted for yet
    with pytest.raises(UnendedCassette, match="1 records are counted by no end record"):
        read_cassette(path)
    b.write(Message(two, 0.5, Side.CLIENT, Opcode.TEXT, b"still going"))
    with pytest.raises(UnendedCassette, match="no end record after the last record"):
        read_cassette(path)
    b.close()
    assert [type(r).__name__ for r in read_cassette(path)[1]] == [
        "Open",
        "Open",
        "Close",
        "Message",
    ]
    # A third writer appends nothing: no end record, the file stays complete
    CassetteWriter(path, mode=WriteMode.APPEND).close()
    read_cassette(path)
    c = CassetteWriter(path, mode=WriteMode.APPEND)
    c.write(Note(conn=None, text="appended after the others ended"))
    with CassetteWriter(path, mode=WriteMode.APPEND) as d:  # (c is still writing)
        with d.reserve_conn() as three:
            assert three == 3
            d.write(sample_open(three))
    c.abort()  # a killed recorder: reading says so, and nobody may append to it now
    with pytest.raises(UnendedCassette, match="1 records are counted by no end record"):
        read_cassette(path)
    with pytest.raises(UnendedAppend):
        CassetteWriter(path, mode=WriteMode.APPEND)


def test_an_end_record_that_claims_too_much_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(path, CHAT)
    cuts = boundaries(path)
    data = path.read_bytes()
    # drop a message from the middle: the end record now claims more than the file holds
    path.write_bytes(data[: cuts[1]] + data[cuts[2] :])
    with pytest.raises(
        CassetteError, match="count 9 records, the file has 8: records were removed"
    ):
        list(CassetteReader(path, allow_truncated=True))
    with open(path, "ab") as f:  # an end record out of nowhere
        f.write(v2.pack_end(50, None))
    with pytest.raises(CassetteError, match="records were removed"):
        list(CassetteReader(path, allow_truncated=True))


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ([1, 0.5, 0], "an array is a message of 4 items, not 3"),
        ([1, 0.5, 4, b""], "item 3 \\(kind\\) must be 0 to 3"),
        ([1, 0.5, True, b""], "item 3 \\(kind\\) must be 0 to 3"),
        ([1, -0.5, 0, b""], "item 2 \\(t\\) must be a number of seconds"),
        ([1, float("nan"), 0, b""], "item 2 \\(t\\) must be a number of seconds"),
        ([1, "soon", 0, b""], "item 2 \\(t\\) must be a number of seconds"),
        ([-1, 0.5, 0, b""], "item 1 \\(conn\\) must be a connection id"),
        ([2**60, 0.5, 0, b""], "item 1 \\(conn\\) must be a connection id"),
        ([1, 0.5, 0, "text"], "item 4 \\(data\\) must be bytes, not str"),
        (
            {
                "type": "message",
                "conn": 1,
                "t": 0.5,
                "from": "client",
                "opcode": "text",
                "data": b"",
            },
            "a message record of format version 2 is an array",
        ),
        ({"type": "end", "records": -1, "conns": None, "size": 40}, "field 'records'"),
        ({"type": "end", "records": 1, "conns": [[1, 2, 3]], "size": 40}, "each item must be"),
        ({"type": "end", "records": 1, "size": 40}, "missing field 'conns'"),
        ({"type": "end", "records": 1, "conns": None, "size": 4, "x": 1}, "unknown field"),
        ({"type": "end", "records": 1, "conns": None, "size": 4}, "must be its length, 32, not 4"),
    ],
)
def test_bad_v2_records_name_the_item(tmp_path: Path, record: object, needle: str) -> None:
    path = tmp_path / "bad.msgpack"
    write(path, [sample_open()])
    with open(path, "ab") as f:
        f.write(msgpack.packb(record, use_bin_type=True))
    with pytest.raises(CassetteError, match=rf"record 3, byte \d+: .*{needle}"):
        list(CassetteReader(path))


def test_an_integer_time_is_read_as_a_float(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(path, [sample_open()])
    with open(path, "ab") as f:
        f.write(msgpack.packb([1, 2, 3, b"x"], use_bin_type=True))
        f.write(v2.pack_end(1, {1: 1}))
    records = read_cassette(path)[1]
    assert records[1] == Message(1, 2.0, Side.SERVER, Opcode.BINARY, b"x")
    assert type(records[1].t) is float


def test_v1_reads_as_before_and_has_no_end_record(tmp_path: Path) -> None:
    path = tmp_path / "v1.msgpack"
    write_v1(path, CHAT)
    header, records = read_cassette(path)
    assert header.version == 1 and records == CHAT
    reader = CassetteReader(path)
    assert reader.end_summary() is None
    with open(path, "ab") as f:  # a cut at a record boundary of v1 stays undetectable,
        f.write(v2.pack_end(len(CHAT), None))  # and v1 has no end record
    with pytest.raises(CassetteError, match="unknown record type 'end'"):
        list(CassetteReader(path))


def test_appending_to_v1_is_refused_with_the_upgrade_command(tmp_path: Path) -> None:
    path = tmp_path / "v1.msgpack"
    write_v1(path, CHAT)
    before = path.read_bytes()
    with pytest.raises(OlderCassette, match=r"format version 1 .*`wstape upgrade .*v1.msgpack -o"):
        CassetteWriter(path, mode=WriteMode.APPEND)
    assert path.read_bytes() == before


def test_big_messages_are_built_item_by_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wstape.cassettes import reader as reader_module

    monkeypatch.setattr(reader_module, "BIG_RECORD", 1000)
    monkeypatch.setattr(reader_module, "DIRECT_READ", 100)
    recs: list[Record] = [
        sample_open(),
        Message(1, 0.5, Side.SERVER, Opcode.BINARY, bytes(range(256)) * 20),
        Message(1, 0.6, Side.CLIENT, Opcode.TEXT, b"small"),
    ]
    path = tmp_path / "big.msgpack"
    write(path, recs)
    assert read_cassette(path)[1] == recs


def test_convert_1_2_turns_a_message_map_into_the_array_and_keeps_the_rest() -> None:
    from wstape.cassettes import compat
    from wstape.cassettes.schema import SchemaError, record_to_dict

    message = Message(3, 0.5, Side.SERVER, Opcode.TEXT, b"hi")
    assert compat.convert_1_2(record_to_dict(message)) == [3, 0.5, 2, b"hi"]
    opened = record_to_dict(sample_open())
    assert compat.convert_1_2(opened) is opened
    assert compat.migrate(record_to_dict(message), 1) == [3, 0.5, 2, b"hi"]
    assert compat.migrate([3, 0.5, 2, b"hi"], 2) == [3, 0.5, 2, b"hi"]
    with pytest.raises(SchemaError, match="field 'from' must be"):
        compat.convert_1_2({**record_to_dict(message), "from": "nobody"})


def test_the_writer_refuses_a_message_the_reader_would_with_the_field(tmp_path: Path) -> None:
    from wstape.cassettes import UnreadableRecord

    with CassetteWriter(tmp_path / "c.msgpack") as w:
        with pytest.raises(UnreadableRecord, match="field 't' must be a number"):
            w.write(Message(1, -1.0, Side.CLIENT, Opcode.TEXT, b""))
        with pytest.raises(UnreadableRecord, match="field 'from'"):
            w.write(Message(1, 0.0, "sideways", Opcode.TEXT, b""))  # type: ignore[arg-type]
        w.write(Message(1, 2, Side.CLIENT, Opcode.TEXT, bytearray(b"ok")))  # type: ignore[arg-type]
    assert read_cassette(tmp_path / "c.msgpack")[1] == [
        Message(1, 2.0, Side.CLIENT, Opcode.TEXT, b"ok")
    ]


HEAD_SIZES = [0, 1, 0xFF, 0x100, 0xFFFF, 0x10000, v2.BIG_PAYLOAD - 1, v2.BIG_PAYLOAD, 1 << 20]


@pytest.mark.parametrize("size", HEAD_SIZES)
@pytest.mark.parametrize(
    ("conn", "t", "kind"), [(1, 0.0, 0), (127, 0.25, 3), (128, 1e6, 1), (2**53, 315576000.0, 2)]
)
def test_a_message_head_is_what_packing_writes_before_the_payload(
    size: int, conn: int, t: float, kind: int
) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    items = [conn, t, kind, payload]
    pack = msgpack.Packer(use_bin_type=True, datetime=False).pack
    assert v2.pack_message_head(pack, items) + payload == msgpack.packb(items, use_bin_type=True)


@pytest.mark.parametrize("size", [v2.BIG_PAYLOAD - 1, v2.BIG_PAYLOAD, 0x10000, 1 << 20])
def test_a_big_message_is_written_with_its_payload_as_it_is(tmp_path: Path, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"\x01" * (size % 256)
    recs: list[Record] = [
        sample_open(),
        Message(1, 0.5, Side.SERVER, Opcode.BINARY, payload),
        Message(1, 0.75, Side.CLIENT, Opcode.TEXT, b"small"),
    ]
    path = tmp_path / "big.msgpack"
    write(path, recs)
    assert read_cassette(path)[1] == recs
    packed = msgpack.packb([1, 0.5, 3, payload], use_bin_type=True)
    assert packed in path.read_bytes()


# -- a whole pass held to its end records per connection (check_ends) ------------------


def _disagreement(path: Path) -> tuple[str | None, str | None]:
    """What ``check`` and ``stats`` find wrong with ``path``'s end records."""
    from wstape.core.rules import RuleConfig
    from wstape.tools.check import check_reader
    from wstape.tools.stats import compute_stats

    reader = CassetteReader(path, check_ends=True, allow_truncated=True)
    _, strays = check_reader(reader, RuleConfig())
    by_check = reader.ends_disagree(strays.count)
    reader = CassetteReader(path, check_ends=True, allow_truncated=True)

    def over(c: Any) -> None:
        assert reader.end_check is not None
        reader.end_check.connection(
            c.open.conn,
            c.messages_client,
            c.messages_server,
            c.bytes_client,
            c.bytes_server,
            c.duration,
        )

    result = compute_stats(reader.iter_fields(), over)
    return by_check, reader.ends_disagree(result.strays.count)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, max_size=14), st.integers(0, 14))
def test_what_writers_write_always_matches_its_end_records(
    tmp_path: Path, written: list[Record], split: int
) -> None:
    # Any records (strays, notes, refused upgrades), one writer or two appending.
    path = tmp_path / "any.msgpack"
    path.unlink(missing_ok=True)
    first, second = written[:split], written[split:]
    write_records(path, first)
    try:
        if second:
            # (an appending writer reads the file first: a reused id in the first part is
            # refused there, as every reader refuses it)
            with CassetteWriter(path, mode=WriteMode.APPEND) as w:
                for r in second:
                    w.write(r)
        assert _disagreement(path) == (None, None)
    except DuplicateConnection:
        pass  # (a reused id: every reader refuses the file)


def test_end_records_that_do_not_match_the_records_are_named(tmp_path: Path) -> None:
    from tests.cassettes.test_listing import end_with, listing

    path = tmp_path / "lie.msgpack"
    write_records(
        path,
        [
            make_open(1),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"hi"),
            Message(1, 0.2, Side.SERVER, Opcode.TEXT, b"hi"),
            Close(1, 0.3, Side.CLIENT, 1000, "bye"),
            make_open(2),
        ],
    )
    assert _disagreement(path) == (None, None)
    one, two = listing(path) or ()
    good = {"records": 5, "conns": [[1, 4], [2, 1]]}
    for fields, needle in [
        (
            {**good, "conns": [[1, 99], [7, 3]]},
            "connection 1 has 4 records, the end records count 99",
        ),
        (
            {**good, "conns": [[1, 3], [2, 2]]},
            "connection 1 has 4 records, the end records count 3",
        ),
        (
            {**good, "listing": [list(one._replace(bytes_client=3)), list(two)]},
            "connection 1's bytes_client is 3 in the end record's listing, 2 in the file",
        ),
        (
            {**good, "listing": [list(one._replace(close_at=None)), list(two)]},
            "connection 1's close_at is None",
        ),
        ({**good, "listing": [list(one)]}, "lists 1 connections, the file has 2"),
    ]:
        end_with(path, fields)
        found = _disagreement(path)
        assert found[0] is not None and needle in found[0], (fields, found)
        assert found[1] == found[0]
    end_with(path, {**good, "listing": [list(one), list(two)]})
    assert _disagreement(path) == (None, None)
