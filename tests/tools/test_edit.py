"""cut (keep some connections) and repair (keep the complete part)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.records import cut_last_record, interleave, make_open, sessions, write
from wstape.cassettes import (
    FORMAT_VERSION,
    CassetteReader,
    DuplicateConnection,
    TruncatedCassette,
    read_cassette,
)
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.tools.edit import (
    REPAIR_NOTE,
    NothingKept,
    Selection,
    cut_cassette,
    repair_cassette,
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"


def opened(conn: int, target: str, status: int = 101) -> Open:
    return make_open(conn, target, status=status, started_at=100.0 + conn)


@given(groups=sessions(), seed=st.integers(), data=st.data())
@SETTINGS
def test_cut_keeps_exactly_the_chosen_connections(
    tmp_path: Path, groups: list[list[Record]], seed: int, data: st.DataObject
) -> None:
    records = [*groups[0], *interleave(groups[1:], seed)]
    ids = [g[0].conn for g in groups[1:]]
    chosen = set(data.draw(st.lists(st.sampled_from(ids), max_size=3))) if ids else set()
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    if not chosen:  # (nothing kept: nothing written, an earlier output left as it was)
        before = out.read_bytes() if out.exists() else None
        with pytest.raises(NothingKept):
            cut_cassette(CassetteReader(src), out, Selection(conns={-1}))
        assert (out.read_bytes() if out.exists() else None) == before
        return
    result = cut_cassette(CassetteReader(src), out, Selection(conns=chosen))
    header, back = read_cassette(out)
    assert header == read_cassette(src)[0]
    assert back == [r for r in records if r.conn is None or r.conn in chosen]
    assert result.connections == [
        r.conn for r in records if isinstance(r, Open) and r.conn in chosen
    ]
    assert result.records == len(back)


@pytest.mark.parametrize(
    ("paths", "conns", "kept"),
    [
        (["/chat"], [], [1, 3]),
        (["/chat", "/feed"], [], [1, 2, 3]),
        (["/ch*"], [], [1, 3]),
        (["*"], [], [1, 2, 3, 4]),
        (["/chat?room=2"], [], [3]),
        (["/chat?room=*"], [], [1, 3]),
        (["/chat"], [3, 2], [3]),
        ([], [2, 4], [2, 4]),
        (["/nothing"], [], []),
    ],
)
def test_selection(paths: list[str], conns: list[int], kept: list[int]) -> None:
    records = [
        opened(1, "/chat?room=1"),
        opened(2, "/feed"),
        opened(3, "/chat?room=2"),
        opened(4, "/admin", 403),
    ]
    keep = Selection(conns, paths)
    assert [o.conn for o in records if keep(o)] == kept


def test_cut_keeps_notes_of_kept_connections_and_of_the_cassette(tmp_path: Path) -> None:
    records: list[Record] = [
        Note(None, "cassette note"),
        opened(1, "/a"),
        opened(2, "/b"),
        Message(2, 0.1, Side.CLIENT, Opcode.TEXT, b"x"),
        Note(1, "about 1", 0.2),
        Note(2, "about 2", 0.2),
        Close(1, 0.3, Side.CLIENT, 1000),
    ]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    result = cut_cassette(CassetteReader(src), out, Selection(paths=["/a"]))
    assert read_cassette(out)[1] == [records[0], records[1], records[4], records[6]]
    assert (result.connections, result.messages) == ([1], 0)


def test_cut_refuses_a_reused_connection_id(tmp_path: Path) -> None:
    records: list[Record] = [
        opened(1, "/a"),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"a"),
        opened(1, "/b"),
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"b"),
    ]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    with pytest.raises(
        DuplicateConnection, match=r"record 3, byte \d+: connection id 1 .*record 1"
    ):
        cut_cassette(CassetteReader(src), out, Selection(paths=["/b"]))
    assert not out.exists()


def test_cut_refuses_a_truncated_cassette(tmp_path: Path) -> None:
    src = tmp_path / "cut.msgpack"
    src.write_bytes(V1.read_bytes()[:-5])
    with pytest.raises(TruncatedCassette):
        cut_cassette(CassetteReader(src), tmp_path / "out.msgpack", Selection([1]))
    assert not (tmp_path / "out.msgpack").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind


# -- repair ----------------------------------------------------------------------------


@given(groups=sessions(), seed=st.integers(), cut=st.integers(1, 40))
@SETTINGS
def test_repair_keeps_every_complete_record(
    tmp_path: Path, groups: list[list[Record]], seed: int, cut: int
) -> None:
    records = [*groups[0], *interleave(groups[1:], seed)]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    data = src.read_bytes()
    src.write_bytes(data[: max(len(data) - cut, 0)])
    try:
        reader = CassetteReader(src, allow_truncated=True)
    except TruncatedCassette:
        return  # the cut went into the header: nothing to repair
    complete = list(reader)
    truncated_at = reader.truncated_at  # None when the cut fell on a record boundary
    result = repair_cassette(CassetteReader(src, allow_truncated=True), out)
    _header, back = read_cassette(out)  # reads without allow_truncated: the output is whole
    assert back[: len(complete)] == complete
    assert result.records == len(complete)
    assert result.truncated_at == truncated_at
    assert result.dropped_bytes == (0 if truncated_at is None else len(data) - cut - truncated_at)
    extra = back[len(complete) :]
    assert len(extra) == 2 * len(result.closed)
    for close, note in zip(extra[::2], extra[1::2], strict=True):
        assert isinstance(close, Close) and isinstance(note, Note)
        assert (close.by, close.code, close.on_wire) == (None, None, False)
        assert note.text == REPAIR_NOTE and note.conn == close.conn
    # every accepted connection now has a close
    closed = {r.conn for r in back if isinstance(r, Close)}
    assert all(r.conn in closed for r in back if isinstance(r, Open) and r.accepted)


def test_repair_of_a_complete_cassette_is_a_copy(tmp_path: Path) -> None:
    out = tmp_path / "out.msgpack"
    result = repair_cassette(CassetteReader(V1, allow_truncated=True), out)
    (header, records), (v1_header, v1_records) = read_cassette(out), read_cassette(V1)
    assert records == v1_records  # the same records, in the current format version
    assert (header.version, replace(header, version=1)) == (FORMAT_VERSION, v1_header)
    assert result.truncated_at is None and result.closed == []


def test_repair_closes_a_connection_at_its_last_time(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(
        src,
        [
            opened(5, "/a"),
            Message(5, 2.5, Side.SERVER, Opcode.BINARY, b"\x00" * 300),
            Message(5, 3.0, Side.SERVER, Opcode.BINARY, b"\x01" * 300),
        ],
    )
    cut_last_record(src, 10)
    result = repair_cassette(CassetteReader(src, allow_truncated=True), out)
    back = read_cassette(out)[1]
    assert back[-2:] == [
        Close(5, 2.5, None, None, "", False),
        Note(5, REPAIR_NOTE, 2.5),
    ]
    assert result.closed == [5]
    assert replace(back[1]) == Message(5, 2.5, Side.SERVER, Opcode.BINARY, b"\x00" * 300)


def test_repair_gives_a_reused_id_a_fresh_one_above_every_id(tmp_path: Path) -> None:
    records: list[Record] = [
        opened(5, "/a"),
        opened(5, "/b"),  # record 2: the id again; fresh ids start above 9
        Message(5, 0.1, Side.CLIENT, Opcode.TEXT, b"b"),
        opened(9, "/c"),
        Message(9, 0.2, Side.CLIENT, Opcode.TEXT, b"c"),
        Close(5, 0.3, Side.CLIENT, 1000),  # ends /b
        Message(5, 0.4, Side.CLIENT, Opcode.TEXT, b"a"),  # /a again; it never closes
        Close(9, 0.5, Side.CLIENT, 1000),
        Message(9, 0.6, Side.CLIENT, Opcode.TEXT, b"stray"),  # after its close: dropped
    ]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    result = repair_cassette(CassetteReader(src, allow_truncated=True, allow_reused_ids=True), out)
    assert result.renumbered == [(5, 10, 2)]
    assert result.closed == [5] and result.strays.count == 1
    _, back = read_cassette(out)
    what = [(r.conn, getattr(r, "target", None) or getattr(r, "payload", None)) for r in back]
    assert what[:7] == [
        (5, "/a"),
        (10, "/b"),
        (10, b"b"),
        (9, "/c"),
        (9, b"c"),
        (10, None),
        (5, b"a"),
    ]
    assert back[-2] == Close(5, 0.4, None, None, "", False)
