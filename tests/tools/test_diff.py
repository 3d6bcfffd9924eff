"""diff: alignment, JSON-aware and byte-level explanations, connection pairing."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.records import make_open, write
from wstape.cassettes import CassetteReader
from wstape.core.model import Close, Message, Opcode, Open, Record, Side
from wstape.tools.diff import (
    CassetteDiff,
    align,
    bytes_change,
    diff_cassettes,
    json_changes,
    message_details,
)

V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"
MIB = 1024 * 1024


def opened(conn: int, target: str = "/chat", **over: object) -> Open:
    headers = ((b"Host", b"h"), (b"Sec-WebSocket-Key", f"k{conn}".encode()))
    return make_open(
        conn, target, request_headers=headers, client=f"127.0.0.1:{5000 + conn}", **over
    )


def text(conn: int, t: float, body: str, side: Side = Side.CLIENT) -> Message:
    return Message(conn, t, side, Opcode.TEXT, body.encode())


def run(tmp_path: Path, a: list[Record], b: list[Record], **kw: object) -> CassetteDiff:
    pa, pb = tmp_path / "a.msgpack", tmp_path / "b.msgpack"
    write(pa, a)
    write(pb, b)
    return diff_cassettes(CassetteReader(pa), CassetteReader(pb), **kw)  # type: ignore[arg-type]


@given(
    a=st.lists(st.integers(0, 5), max_size=40),
    b=st.lists(st.integers(0, 5), max_size=40),
    max_align=st.sampled_from([0, 3, 1000]),
)
@settings(max_examples=300, deadline=None)
def test_align_turns_a_into_b(a: list[int], b: list[int], max_align: int) -> None:
    rebuilt: list[int] = []
    ai = bi = 0
    for tag, i1, i2, j1, j2 in align(a, b, max_align=max_align):
        assert (i1, j1) == (ai, bi)
        if tag == "equal":
            assert a[i1:i2] == b[j1:j2]
        rebuilt.extend(b[j1:j2])
        ai, bi = i2, j2
    assert (ai, bi) == (len(a), len(b)) and rebuilt == b


def test_identical_cassettes(tmp_path: Path) -> None:
    d = diff_cassettes(CassetteReader(V1), CassetteReader(V1))
    assert d.same
    doc = d.to_json()
    assert doc["same"] is True and [c["status"] for c in doc["connections"]] == ["same"] * 3


def test_times_addresses_and_keys_are_not_compared(tmp_path: Path) -> None:
    a: list[Record] = [opened(1), text(1, 0.1, "x"), Close(1, 1.0, Side.CLIENT, 1000)]
    b: list[Record] = [
        replace(opened(7), started_at=999.0),
        text(7, 0.7, "x"),
        Close(7, 3.0, Side.CLIENT, 1000),
    ]
    assert run(tmp_path, a, b).same
    d = run(tmp_path, a, b, compare_volatile=True)
    assert not d.same
    assert d.connections[0].open == [
        {"field": "request header", "name": "sec-websocket-key", "a": ["k1"], "b": ["k7"]}
    ]


def test_one_changed_byte_in_a_mebibyte(tmp_path: Path) -> None:
    payload = os.urandom(MIB)
    changed = bytearray(payload)
    changed[654_321] ^= 0x01
    a: list[Record] = [opened(1), Message(1, 0.5, Side.SERVER, Opcode.BINARY, payload)]
    b: list[Record] = [opened(1), Message(1, 0.5, Side.SERVER, Opcode.BINARY, bytes(changed))]
    d = run(tmp_path, a, b)
    assert not d.same
    conn = d.connections[0]
    assert conn.counts == {"a": 1, "b": 1, "same": 0, "changed": 1, "added": 0, "removed": 0}
    (change,) = conn.changes
    assert change["change"] == "changed" and change["size"] == {"a": MIB, "b": MIB}
    (detail,) = change["details"]
    assert detail["kind"] == "bytes" and detail["offset"] == 654_321
    assert detail["differing"] == 1
    assert detail["a"] == f"{payload[654_321]:02x}" and detail["b"] == f"{changed[654_321]:02x}"
    assert "size_a" not in detail


def test_a_changed_json_field(tmp_path: Path) -> None:
    a: list[Record] = [opened(1), text(1, 0.1, '{"type":"hello","user":{"name":"小明","age":7}}')]
    b: list[Record] = [
        opened(1),
        text(1, 0.1, '{"user": {"age": 7, "name": "小红"}, "type": "hello"}'),
    ]
    d = run(tmp_path, a, b)
    (change,) = d.connections[0].changes
    assert change["details"] == [
        {"kind": "json", "path": "$.user.name", "change": "changed", "a": "小明", "b": "小红"}
    ]


def test_same_json_different_text_is_still_a_difference() -> None:
    a = text(1, 0, '{"a":1}')
    b = text(1, 0, '{"a": 1}')
    (detail,) = message_details(a, b)
    assert detail["kind"] == "text" and detail["same_json"] is True and detail["offset"] == 5


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 1.0}, [("$.a", "changed")]),
        ({"a": True}, {"a": 1}, [("$.a", "changed")]),
        ({"a": 1}, {"b": 1}, [("$.a", "removed"), ("$.b", "added")]),
        ([1, 2], [1, 2, 3], [("$[2]", "added")]),
        ({"x y": [{"k": None}]}, {"x y": [{"k": 0}]}, [('$["x y"][0].k', "changed")]),
        ({"a": {"b": 1}}, {"a": [1]}, [("$.a", "changed")]),
    ],
)
def test_json_changes(a: object, b: object, expected: list[tuple[str, str]]) -> None:
    assert [(c["path"], c["change"]) for c in json_changes(a, b)] == expected


def test_two_long_strings_are_shown_around_their_first_difference() -> None:
    # QA: both sides read "<value of 5000002 characters>": the change could not be seen.
    a = {"blob": "x" * 5_000_000 + "A" + "y" * 100}
    b = {"blob": "x" * 5_000_000 + "B" + "y" * 100}
    (change,) = json_changes(a, b)
    assert change["path"] == "$.blob" and change["offset"] == 5_000_000
    assert change["a"] == "..." + "x" * 40 + "A" + "y" * 79 + "..."
    assert change["b"] == "..." + "x" * 40 + "B" + "y" * 79 + "..."
    assert change["lengths"] == [5_000_101, 5_000_101]
    (short,) = json_changes({"s": "ab"}, {"s": "abc"})
    assert short == {"kind": "json", "path": "$.s", "change": "changed", "a": "ab", "b": "abc"}
    (longer,) = json_changes({"s": "z" * 300}, {"s": "z" * 301})
    assert longer["offset"] == 300 and longer["a"] == "..." + "z" * 40
    assert longer["b"] == "..." + "z" * 41


def test_nan_is_the_same_as_nan() -> None:
    assert json_changes({"a": float("nan")}, {"a": float("nan")}) == []
    assert [c["path"] for c in json_changes({"a": float("nan")}, {"a": 1.0})] == ["$.a"]


def test_bytes_change_with_different_sizes() -> None:
    change = bytes_change(b"abcdef", b"abcXefgh")
    assert change is not None
    assert (change["offset"], change["differing"], change["size_a"], change["size_b"]) == (
        3,
        3,
        6,
        8,
    )
    assert bytes_change(b"ab", b"abc") == {
        "kind": "bytes",
        "offset": 2,
        "a": None,
        "b": "63",
        "differing": 1,
        "context_a": "61 62",
        "context_b": "61 62 63",
        "size_a": 2,
        "size_b": 3,
    }
    assert bytes_change(b"x", b"x") is None


def test_inserted_and_removed_messages_are_aligned(tmp_path: Path) -> None:
    common = [text(1, i, f"m{i}") for i in range(10)]
    a: list[Record] = [opened(1), *common]
    b: list[Record] = [
        opened(1),
        *common[:3],
        text(1, 3.5, "new", Side.SERVER),
        *common[3:7],
        *common[8:],
    ]
    conn = run(tmp_path, a, b).connections[0]
    assert conn.counts == {"a": 10, "b": 10, "same": 9, "changed": 0, "added": 1, "removed": 1}
    added = next(c for c in conn.changes if c["change"] == "added")
    removed = next(c for c in conn.changes if c["change"] == "removed")
    assert added == {
        "change": "added",
        "b_index": 4,
        "from": "server",
        "opcode": "text",
        "size": 3,
        "preview": "new",
    }
    assert removed["a_index"] == 8 and removed["preview"] == "m7"


def test_connections_pair_by_path(tmp_path: Path) -> None:
    a: list[Record] = [opened(1, "/chat"), opened(2, "/feed"), opened(3, "/chat?room=2")]
    b: list[Record] = [opened(1, "/feed"), opened(2, "/chat"), opened(3, "/admin", status=403)]
    d = run(tmp_path, a, b)
    rows = [(c.status, c.a and c.a.open.conn, c.b and c.b.open.conn) for c in d.connections]
    assert rows == [
        ("same", 1, 2),
        ("same", 2, 1),
        ("removed", 3, None),
        ("added", None, 3),
    ]


def test_open_and_close_changes(tmp_path: Path) -> None:
    a: list[Record] = [opened(1), Close(1, 1.0, Side.CLIENT, 1000, "bye")]
    b: list[Record] = [opened(1, subprotocol="v2"), Close(1, 1.0, Side.SERVER, 1011, "bye")]
    conn = run(tmp_path, a, b).connections[0]
    assert conn.status == "changed"
    assert conn.open == [{"field": "subprotocol", "a": None, "b": "v2"}]
    assert conn.close == [
        {"field": "by", "a": "client", "b": "server"},
        {"field": "code", "a": 1000, "b": 1011},
    ]
    conn2 = run(tmp_path, a, a[:1]).connections[0]
    assert conn2.close == [
        {
            "field": "close",
            "a": {"by": "client", "code": 1000, "reason": "bye", "on_wire": True},
            "b": None,
        }
    ]


def test_details_are_capped_but_counted(tmp_path: Path) -> None:
    a: list[Record] = [opened(1), *(text(1, i, f"a{i}") for i in range(30))]
    b: list[Record] = [opened(1), *(text(1, i, f"b{i}") for i in range(30))]
    conn = run(tmp_path, a, b, max_details=5).connections[0]
    assert len(conn.changes) == 5 and conn.left_out == 25
    assert conn.counts["changed"] == 30
    doc = conn.to_json()
    assert doc["changes_left_out"] == 25 and doc["messages"]["changed"] == 30
