"""The reader's fast decode (cassettes/decode.py) is a shortcut, never a second opinion: for
any map it returns exactly what the full schema check returns, or None (take the long way).
"""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cassettes.test_reader_writer import sample_open
from tests.helpers.records import records
from wstape.cassettes import CassetteError, CassetteReader, CassetteWriter, WriteMode
from wstape.cassettes import reader as reader_module
from wstape.cassettes.decode import (
    decode_v1,
    decode_v1_fields,
    decode_v2_fields,
    v1_run,
    v2_run,
)
from wstape.cassettes.schema import (
    MAX_CONN,
    MAX_OFFSET,
    SchemaError,
    record_from_dict,
    record_to_dict,
)
from wstape.core.connections import MessageRun
from wstape.core.model import Message, Opcode, Record, Side

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.lists(st.binary(max_size=4), max_size=3),
    st.lists(st.lists(st.binary(max_size=4), max_size=3), max_size=3),
    st.dictionaries(st.text(max_size=6), st.none() | st.text(max_size=4), max_size=4),
)


def built(d: Any, *, use_list: bool = False) -> Any:
    """``d`` as msgpack builds it back from its bytes: arrays as tuples, as the reader's
    fast way builds them (``use_list=True``: as lists, as the long way builds them)."""
    packed = msgpack.packb(d, use_bin_type=True)
    return msgpack.unpackb(packed, raw=False, strict_map_key=False, use_list=use_list)


def slow(d: Any) -> Record | None:
    try:
        return record_from_dict(d)
    except SchemaError:
        return None


def check_same(d: Any) -> None:
    want = slow(built(d, use_list=True))
    d = built(d)
    got = decode_v1(d)
    assert got is None or got == want, (d, got, want)
    fields = decode_v1_fields(d)
    if isinstance(fields, tuple):
        assert Message(*fields) == want
    else:
        assert fields == got


@given(record=records)
@SETTINGS
def test_every_record_the_writer_writes_takes_the_fast_way(record: Record) -> None:
    d = built(record_to_dict(record))
    assert decode_v1(d) == record
    fields = decode_v1_fields(d)
    assert (Message(*fields) if isinstance(fields, tuple) else fields) == record


@given(record=records, data=st.data())
@SETTINGS
def test_a_changed_record_is_the_full_checks_answer_or_none(record: Record, data: Any) -> None:
    d = built(record_to_dict(record))
    keys = sorted(d)
    change = data.draw(st.sampled_from(["set", "drop", "add"]))
    if change == "set":
        d[data.draw(st.sampled_from(keys))] = data.draw(values)
    elif change == "drop":
        del d[data.draw(st.sampled_from(keys))]
    else:
        d[data.draw(st.text(max_size=12))] = data.draw(values)
    check_same(d)


@given(value=values)
def test_anything_else_is_none_or_the_full_checks_answer(value: Any) -> None:
    check_same(value)


@given(recs=st.lists(records, max_size=30), cut=st.integers(0, 40))
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_fields_pass_is_the_same_records(tmp_path: Path, recs: list[Record], cut: int) -> None:
    path = tmp_path / "c.msgpack"
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0) as w:
        for r in recs:
            w.write(r)
    reader = CassetteReader(path, allow_reused_ids=True)
    fields = [Message(*r) if isinstance(r, tuple) else r for r in reader.iter_fields()]
    assert fields == list(reader) == recs


def test_a_record_over_the_fast_size_takes_the_long_way(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    big = Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b"x" * (reader_module.MAX_FAST_BYTES + 10))
    small = Message(1, 0.6, Side.CLIENT, Opcode.TEXT, b"y")
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0) as w:
        for r in (sample_open(1), small, big, small, big, big, small):
            w.write(r)
    reader = CassetteReader(path)
    assert [r.payload for r in reader if isinstance(r, Message)] == [
        b"y",
        big.payload,
        b"y",
        big.payload,
        big.payload,
        b"y",
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"\xdc\x01\x00" * 60_000,  # arrays of 256 items, nested: each allocates before it fills
        b"\x81\xa1a" * 40_000,  # maps nested 40,000 deep
        b"\x9f" * 100_000,  # 100,000 arrays of 15
        b"\x86" + b"\xa1a\xdc\x0f\xff" * 6,  # a record of long lists, too long for the fast way
    ],
)
def test_what_the_fast_way_builds_of_hostile_bytes_is_bounded(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "c.msgpack"
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0):
        pass
    header = path.read_bytes()[: CassetteReader(path)._body_offset]  # (not the end record)
    path.write_bytes(header + body)
    tracemalloc.start()
    try:
        with pytest.raises(CassetteError, match="record 1, byte"):
            list(CassetteReader(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024


message_items = st.tuples(
    st.one_of(st.integers(-2, 2**32), st.booleans(), st.floats(0, 5), st.none()),
    st.one_of(st.floats(), st.integers(0, 5), st.just(-0.0), st.just(MAX_OFFSET)),
    st.one_of(st.integers(-1, 5), st.booleans(), st.floats(0, 3)),
    st.one_of(st.binary(max_size=6), st.text(max_size=3), st.none()),
)
valid_items = st.tuples(
    st.integers(0, MAX_CONN),
    st.floats(0, MAX_OFFSET),
    st.integers(0, 3),
    st.binary(max_size=6),
)
objects = st.one_of(
    valid_items,
    message_items,
    st.lists(valid_items.map(list), max_size=1).map(tuple),  # (arity, nesting)
    st.tuples(st.integers(0, 9)),
    values,
)


@given(objs=st.lists(st.one_of(valid_items, valid_items, objects), max_size=40))
@SETTINGS
def test_a_run_is_exactly_the_messages_decode_takes(objs: list[Any]) -> None:
    # v2_run's column tests are decode_v2_fields's tests, a column at a time: a run when it
    # takes every record as a message, with the same fields; None when it takes any other.
    one_by_one = [decode_v2_fields(o) for o in objs]
    run = v2_run(objs)
    if objs and all(type(f) is tuple for f in one_by_one):
        assert run is not None and run.fields() == one_by_one
    else:
        assert run is None


@pytest.mark.parametrize(
    "bad",
    [
        (1, math.nan, 0, b""),
        (1, math.inf, 0, b""),
        (1, -1e-9, 0, b""),
        (True, 0.5, 0, b""),
        (1, 0.5, 4, b""),
        (MAX_CONN + 1, 0.5, 0, b""),
        (1, 0.5, 0, "text"),
        (1, 0.5, 0, b"", None),
        [1, 0.5, 0, b""],
    ],
)
def test_one_bad_message_anywhere_in_a_run_makes_it_none(bad: Any) -> None:
    good = (1, 0.5, 0, b"x")
    for at in (0, 3, 7):
        objs: list[Any] = [good] * 7
        objs.insert(at, bad)
        assert v2_run(objs) is None


@given(
    recs=st.lists(records, max_size=40),
    runs=st.lists(st.integers(1, 700), max_size=3),
    feed=st.sampled_from([64, 300, 4096]),
)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_run_pass_is_the_same_records(
    tmp_path: Path, recs: list[Record], runs: list[int], feed: int, monkeypatch: Any
) -> None:
    # Runs of messages (a chunk of messages only) and the records between them, whatever
    # the chunk size: the records iter_fields hands out, in order, and the same checks.
    monkeypatch.setattr(reader_module, "FEED", feed)
    path = tmp_path / "c.msgpack"
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, started_at=1.0) as w:
        for i, r in enumerate(recs):
            w.write(r)
            if i < len(runs):
                for k in range(runs[i]):
                    w.write(
                        Message(
                            7, k * 0.5, Side(("client", "server")[k % 2]), Opcode.TEXT, b"m%d" % k
                        )
                    )
    reader = CassetteReader(path, allow_reused_ids=True)
    expanded: list[Any] = []
    for item in reader.iter_runs():
        expanded.extend(item.fields() if isinstance(item, MessageRun) else [item])
    assert expanded == list(reader.iter_fields())


v1_message_maps = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "message", "close", b"message"]),
        "conn": st.one_of(st.integers(-2, MAX_CONN + 1), st.booleans(), st.floats(0, 5)),
        "t": st.one_of(st.floats(), st.integers(0, 5), st.just(MAX_OFFSET)),
        "from": st.sampled_from(["client", "server", "Client", "", b"client"]),
        "opcode": st.sampled_from(["text", "binary", "ping", b"text"]),
        "data": st.one_of(st.binary(max_size=6), st.text(max_size=3), st.none()),
    }
)
valid_v1_maps = st.fixed_dictionaries(
    {
        "type": st.just("message"),
        "conn": st.integers(0, MAX_CONN),
        "t": st.floats(0, MAX_OFFSET),
        "from": st.sampled_from(["client", "server"]),
        "opcode": st.sampled_from(["text", "binary"]),
        "data": st.binary(max_size=6),
    }
)
v1_objects = st.one_of(
    valid_v1_maps,
    v1_message_maps,
    # a field more, a field fewer, another field in place of one, the fields in another order
    valid_v1_maps.map(lambda d: {**d, "extra": 1}),
    valid_v1_maps.map(lambda d: {k: v for k, v in d.items() if k != "data"}),
    valid_v1_maps.map(lambda d: {**{k: v for k, v in d.items() if k != "t"}, "x": 0.5}),
    valid_v1_maps.map(lambda d: dict(reversed(d.items()))),
    valid_v1_maps.map(lambda d: {**d, "from": ["client"]}),  # (unhashable)
    valid_items,
    values,
)


@given(objs=st.lists(st.one_of(valid_v1_maps, valid_v1_maps, v1_objects), max_size=40))
@SETTINGS
def test_a_v1_run_is_exactly_the_messages_decode_takes(objs: list[Any]) -> None:
    # v1_run is decode_v1_fields a column at a time, as v2_run is decode_v2_fields.
    objs = [built(o) for o in objs]
    one_by_one = [decode_v1_fields(o) for o in objs]
    run = v1_run(objs)
    if objs and all(type(f) is tuple for f in one_by_one):
        assert run is not None and run.fields() == one_by_one
    else:
        assert run is None


@pytest.mark.parametrize(
    "change",
    [
        {"t": math.nan},
        {"t": -1e-9},
        {"conn": True},
        {"conn": MAX_CONN + 1},
        {"from": "both"},
        {"opcode": "close"},
        {"data": "text"},
        {"type": "note"},
        {"extra": None},
    ],
)
def test_one_bad_v1_message_anywhere_in_a_run_makes_it_none(change: dict[str, Any]) -> None:
    good = {
        "type": "message",
        "conn": 1,
        "t": 0.5,
        "from": "client",
        "opcode": "text",
        "data": b"x",
    }
    for at in (0, 3, 7):
        objs: list[Any] = [good] * 7
        objs.insert(at, {**good, **change})
        assert v1_run(objs) is None


@given(
    recs=st.lists(records, max_size=30),
    runs=st.lists(st.integers(1, 700), max_size=3),
    feed=st.sampled_from([64, 300, 4096]),
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_the_run_pass_of_a_v1_file_is_the_same_records(
    tmp_path: Path, recs: list[Record], runs: list[int], feed: int, monkeypatch: Any
) -> None:
    from tests.cassettes.test_reader_writer import write_v1

    monkeypatch.setattr(reader_module, "FEED", feed)
    all_records: list[Record] = []
    for i, r in enumerate(recs):
        all_records.append(r)
        if i < len(runs):
            all_records.extend(
                Message(7, k * 0.5, Side(("client", "server")[k % 2]), Opcode.BINARY, b"m%d" % k)
                for k in range(runs[i])
            )
    path = tmp_path / "c.msgpack"
    write_v1(path, all_records)
    reader = CassetteReader(path, allow_reused_ids=True)
    expanded: list[Any] = []
    got_runs = 0
    for item in reader.iter_runs():
        if isinstance(item, MessageRun):
            got_runs += 1
            expanded.extend(item.fields())
        else:
            expanded.append(item)
    assert expanded == list(reader.iter_fields())
    if sum(runs[: len(recs)]) > 600 and feed == 4096:
        assert got_runs  # (a v1 file's messages do come as runs)
