"""Format version 3: the end record of a cassette one writer wrote start to finish lists
its connections, and ``ls`` reads them from there. What it lists is what a pass folds,
for any records; whenever the listing could be wrong (another writer, a stray, a reused
id, too many connections, a hostile end record) there is none, and ``ls`` reads the file."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.cassettes.test_frozen_v2 import V2
from tests.cli.helpers import invoke, ok
from tests.helpers.hostile import close, end_v2, header, message_v2, open_, pack
from tests.helpers.records import (
    interleave,
    make_open,
    records,
    sessions,
    write,
)
from wstape.cassettes import CassetteError, CassetteReader, CassetteWriter, WriteMode, v2
from wstape.cassettes.schema import FORMAT_VERSION
from wstape.cli.inspect import _json_text, _listed_texts
from wstape.core.connections import summarize_connections
from wstape.core.model import Close, Message, Opcode, Record, Side


def listing(path: Path) -> tuple[v2.ListedConn, ...] | None:
    end = CassetteReader(path).end_summary()
    assert end is not None
    return end.listing


def by_pass(path: Path) -> list[str]:
    """``ls --json``'s objects, from a pass over every record."""
    return summarize_connections(CassetteReader(path).iter_fields(), _json_text).connections


def from_end(path: Path) -> list[str] | None:
    """The same, from the end record's listing; None when there is none."""
    listed = CassetteReader(path).listed()
    return None if listed is None else _listed_texts(listed, None, path, _json_text)


def test_one_writer_lists_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "c.msgpack"
    write(
        path,
        [
            make_open(1),
            Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b"hello"),
            make_open(2, status=403),
            Message(1, 0.25, Side.SERVER, Opcode.BINARY, b"\x00" * 300),
            make_open(3),
            Close(1, 2.0, Side.CLIENT, 1000, "bye"),
            Message(3, 7.5, Side.SERVER, Opcode.TEXT, b"still open"),
        ],
    )
    assert CassetteReader(path).header.version == FORMAT_VERSION == 3
    one, two, three = listing(path) or ()
    assert one[0] == 1 and one[2] is not None and one[3:] == (1, 1, 5, 300, 2.0)
    assert two[0] == 2 and two[2] is None and two[3:] == (0, 0, 0, 0, 0.0)
    assert three[0] == 3 and three[2] is None and three[3:] == (0, 1, 0, 10, 7.5)
    assert from_end(path) == by_pass(path)
    assert ok("ls", path) == ok_by_pass("ls", path)


def ok_by_pass(*args: str | Path) -> str:
    """``ok(*args)`` with the listing ignored (what ls printed before format 3)."""
    listed = CassetteReader.listed
    try:
        CassetteReader.listed = lambda self: None  # type: ignore[method-assign]
        return ok(*args)
    finally:
        CassetteReader.listed = listed  # type: ignore[method-assign]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sessions(), st.integers(0, 1000))
def test_the_listing_is_what_a_pass_folds(
    tmp_path: Path, groups: list[list[Record]], seed: int
) -> None:
    path = tmp_path / "s.msgpack"
    write(path, interleave(groups, seed))
    assert listing(path) is not None  # (well-formed: one writer lists them all)
    assert from_end(path) == by_pass(path)


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(records, max_size=12))
def test_any_records_list_as_a_pass_folds_them_or_not_at_all(
    tmp_path: Path, written: list[Record]
) -> None:
    # Records in any order: strays, reused ids, messages after a close. The writer lists
    # no connection when a pass would leave a record out or refuse the file.
    path = tmp_path / "any.msgpack"
    write(path, written)
    listed = from_end(path)
    try:
        folded = summarize_connections(CassetteReader(path).iter_fields(), _json_text)
    except CassetteError:  # (a reused id: the reader refuses the file)
        assert listed is None
        return
    if folded.strays.count:
        assert listed is None
    else:
        assert listed == folded.connections


def test_a_message_of_no_open_connection_gives_no_listing(tmp_path: Path) -> None:
    path = tmp_path / "stray.msgpack"
    write(
        path,
        [
            make_open(1),
            Close(1, 1.0, Side.CLIENT, 1000),
            Message(1, 2.0, Side.CLIENT, Opcode.TEXT, b"late"),
        ],
    )
    assert listing(path) is None
    shown = invoke("ls", path)
    assert "left out" in shown.stderr  # type: ignore[attr-defined]


def test_a_second_writer_lists_nothing(tmp_path: Path) -> None:
    path = tmp_path / "two.msgpack"
    write(path, [make_open(1)])
    assert listing(path) is not None
    with CassetteWriter(path, mode=WriteMode.APPEND) as w:
        w.write(make_open(w.new_conn_id()))
    assert listing(path) is None  # (the last end record: the appender's)
    assert [json.loads(t)["conn"] for t in by_pass(path)] == [1, 2]
    assert ok("ls", path, "--json") == ok_by_pass("ls", path, "--json")


def test_a_writer_another_wrote_beside_lists_nothing(tmp_path: Path) -> None:
    # Two writers at once (pytest-xdist workers on one cassette): the first one's offsets
    # no longer hold once the other wrote, whether or not it looked.
    path = tmp_path / "both.msgpack"
    first = CassetteWriter(path, mode=WriteMode.APPEND)
    first.write(make_open(1))
    with CassetteWriter(path, mode=WriteMode.APPEND) as other:
        other.write(make_open(2))
    first.write(Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b"after the other"))
    first.close()
    assert listing(path) is None
    first = CassetteWriter(tmp_path / "looked.msgpack", mode=WriteMode.APPEND)
    first.write(make_open(1))
    with CassetteWriter(tmp_path / "looked.msgpack", mode=WriteMode.APPEND) as other:
        other.write(make_open(2))
    first.write(make_open(first.new_conn_id()))  # (it reads what the other wrote)
    first.close()
    assert listing(tmp_path / "looked.msgpack") is None


def test_too_many_connections_list_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v2, "MAX_LISTED", 3)
    path = tmp_path / "many.msgpack"
    write(path, [make_open(c) for c in range(1, 4)])
    assert listing(path) is not None
    write(path, [make_open(c) for c in range(1, 5)])
    assert listing(path) is None
    assert len(by_pass(path)) == 4


def test_the_longest_listing_is_a_record_the_reader_takes(tmp_path: Path) -> None:
    path = tmp_path / "most.msgpack"
    opens = [make_open(c) for c in range(2**40, 2**40 + v2.MAX_LISTED)]  # (9-byte ids)
    write(path, [*opens, *(Close(o.conn, 1e6, Side.SERVER, 1000) for o in opens)])
    assert len(listing(path) or ()) == v2.MAX_LISTED
    assert len(list(CassetteReader(path))) == 2 * v2.MAX_LISTED  # (the end record is taken)
    write(path, [*opens, make_open(1)])
    assert listing(path) is None and len(list(CassetteReader(path))) == v2.MAX_LISTED + 1


def test_appending_onto_a_v2_cassette_keeps_it_v2(tmp_path: Path) -> None:
    path = tmp_path / "old.msgpack"
    path.write_bytes(V2.read_bytes())
    before = by_pass(path)
    with CassetteWriter(path, mode=WriteMode.APPEND) as w:
        conn = w.new_conn_id()
        w.write(make_open(conn))
        w.write(Close(conn, 1.0, Side.SERVER, 1000))
    reader = CassetteReader(path)
    assert reader.header.version == 2 and listing(path) is None
    assert by_pass(path)[:-1] == before and len(by_pass(path)) == len(before) + 1


def end_with(path: Path, fields: dict[str, object]) -> None:
    """Replace the last end record of ``path`` by one with ``fields`` (sized right)."""
    end = CassetteReader(path).end_summary()
    assert end is not None
    data = path.read_bytes()[: -end.size]
    body = msgpack.packb({"type": "end", **fields}, use_bin_type=True)
    size = len(body) + len(v2.SIZE_TRAILER) + 4
    record = bytes([body[0] + 1]) + body[1:] + v2.SIZE_TRAILER + struct.pack(">I", size)
    path.write_bytes(data + record)


def test_a_listing_that_does_not_hold_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "lie.msgpack"
    write(path, [make_open(1), Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b"x"), make_open(2)])
    truth = by_pass(path)
    listed = listing(path)
    assert listed is not None
    one, two = listed
    records = 3
    conns = [[1, 2], [2, 1]]
    lies = [
        [list(one._replace(open_at=two.open_at)), list(two)],  # (the other's open)
        [list(one._replace(open_at=one.open_at + 1)), list(two)],  # (inside a record)
        [list(one._replace(close_at=one.open_at)), list(two)],  # (an open, not a close)
        [list(one._replace(open_at=10**9)), list(two)],  # (past the end)
        [list(one), list(one)],  # (one connection twice)
    ]
    for lie in lies:
        end_with(path, {"records": records, "conns": conns, "listing": lie})
        assert CassetteReader(path).end_summary() is not None
        assert from_end(path) is None, lie
        assert ok("ls", path, "--json") == ok_by_pass("ls", path, "--json")
        assert by_pass(path) == truth
    # Counts are the writer's word: a listing that holds is shown as it says.
    end_with(
        path,
        {
            "records": records,
            "conns": conns,
            "listing": [list(one._replace(bytes_client=7)), list(two)],
        },
    )
    shown = from_end(path)
    assert shown is not None and json.loads(shown[0])["bytes"]["client"] == 7
    # ... but not one that counts more records than its conns do.
    end_with(
        path,
        {
            "records": records,
            "conns": conns,
            "listing": [list(one._replace(messages_client=7)), list(two)],
        },
    )
    assert from_end(path) is None


@pytest.mark.parametrize(
    ("listing_value", "needle"),
    [
        ("all", "field 'listing' must be nil or a list"),
        ([[1, 2, 3]], "each item must be [conn, open_at"),
        ([[1, 0, None, 0, 0, 0, 0, 0.0]], "open_at must be a byte offset"),
        ([[1, 5, -1, 0, 0, 0, 0, 0.0]], "close_at must be a byte offset"),
        ([[1, 5, None, -1, 0, 0, 0, 0.0]], "a message count"),
        ([[1, 5, None, 0, 0, 0, 2**60, 0.0]], "a byte count"),
        ([[1, 5, None, 0, 0, 0, 0, float("nan")]], "last_t must be a number"),
        ([[True, 5, None, 0, 0, 0, 0, 0.0]], "connection id"),
    ],
)
def test_a_hostile_listing_is_one_clear_error(
    tmp_path: Path, listing_value: object, needle: str
) -> None:
    path = tmp_path / "hostile.msgpack"
    write(path, [make_open(1)])
    end_with(path, {"records": 1, "conns": [[1, 1]], "listing": listing_value})
    assert CassetteReader(path).end_summary() is None  # (ls then reads the file...)
    with pytest.raises(CassetteError) as e:
        list(CassetteReader(path))  # (... and names what is wrong)
    assert needle in str(e.value)
    result = invoke("ls", path)
    assert result.exit_code == 3 and needle in result.stderr  # type: ignore[attr-defined]


def test_a_listing_in_a_v2_cassette_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "v2.msgpack"
    path.write_bytes(V2.read_bytes())
    end = CassetteReader(path).end_summary()
    assert end is not None
    end_with(
        path, {"records": end.records, "conns": [list(c) for c in end.conns or ()], "listing": []}
    )
    assert CassetteReader(path).end_summary() is None
    with pytest.raises(CassetteError, match="unknown field 'listing' in an end record"):
        list(CassetteReader(path))


def test_ls_from_the_end_reads_no_message(tmp_path: Path) -> None:
    # What ls gives up for its speed: a message it does not read is not checked
    # (``wstape check`` reads every record).
    path = tmp_path / "c.msgpack"
    write(
        path,
        [
            make_open(1),
            Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b"x" * 40),
            Close(1, 1.0, Side.CLIENT, 1000),
        ],
    )
    data = bytearray(path.read_bytes())
    at = data.index(b"x" * 40)
    data[at - 3] = 0xC1  # (the message's kind: a byte msgpack never uses)
    path.write_bytes(bytes(data))
    assert "1 / 0" in ok("ls", path)
    assert invoke("check", path).exit_code == 3  # type: ignore[attr-defined]


# -- a listing is held to the file at a few reads per connection (QA: a crafted or
# bit-flipped end record changed what ls printed) --------------------------------------


def ls_warns(path: Path) -> str:
    """``ls --json`` (as a pass prints it), and the one warning line that says the
    listing was not used."""
    result = invoke("ls", path, "--json")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert result.stdout == ok_by_pass("ls", path, "--json")  # type: ignore[attr-defined]
    lines = result.stderr.splitlines()  # type: ignore[attr-defined]
    warned = [line for line in lines if "listing does not hold" in line]
    assert len(warned) == 1, lines
    assert warned[0].startswith(f"wstape: warning: {path}: the end record's listing")
    return warned[0]


def test_a_listing_whose_figures_do_not_fit_the_file_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "lie.msgpack"
    write(
        path,
        [
            make_open(1),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"hi"),
            Message(1, 0.2, Side.SERVER, Opcode.TEXT, b"hi"),
            Close(1, 0.3, Side.CLIENT, 1000, "bye"),
        ],
    )
    (one,) = listing(path) or ()
    fields = {"records": 4, "conns": [[1, 4]]}
    for lie, why in [
        (one._replace(bytes_client=999, bytes_server=12345), "do not fit the file"),
        (one._replace(messages_client=2, messages_server=0, bytes_client=0), "0 messages"),
        (
            one._replace(
                last_t=77.0, messages_client=0, messages_server=0, bytes_client=0, bytes_server=0
            ),
            "last_t is not the time of a record",
        ),
        (one._replace(last_t=0.1), "last_t is before its close"),
    ]:
        end_with(path, {**fields, "listing": [list(lie)]})
        assert from_end(path) is None, lie
        assert why in ls_warns(path)
    end_with(path, {**fields, "listing": [list(one)]})  # (the truth is still used)
    assert from_end(path) == by_pass(path)


def test_a_listing_in_another_order_than_the_opens_is_not_used(tmp_path: Path) -> None:
    path = tmp_path / "order.msgpack"
    write(path, [make_open(1), make_open(2, "/feed"), Close(2, 0.5, Side.SERVER, 1000, "")])
    one, two = listing(path) or ()
    end_with(path, {"records": 3, "conns": [[2, 2], [1, 1]], "listing": [list(two), list(one)]})
    assert from_end(path) is None  # (it was used: ls listed connection 2 first)
    assert "order the connections opened" in ls_warns(path)


def _payload_hiding(records: list[bytes]) -> tuple[bytes, list[int]]:
    """A version-3 cassette of ``records`` (packed), and where each starts."""
    data = pack(header(version=3))
    offsets = []
    for r in records:
        offsets.append(len(data))
        data += r
    return data, offsets


def test_a_listing_of_records_inside_payloads_is_not_used(tmp_path: Path) -> None:
    # /tmp/qa1/repro_hidden.py: the listing points at an open and a close that are the
    # payloads of two messages; each is that connection's open or close, taken alone.
    fake_open, fake_close = pack(open_(1, target="/evil")), pack(close(1, 0.3, code=4999))
    records = [
        pack(open_(1, target="/chat")),
        pack(message_v2(1, 0.1, 1, fake_open)),
        pack(message_v2(1, 0.2, 3, fake_close)),
        pack(close(1, 0.3, reason="bye!")),  # (as long as the fake one)
    ]
    data, _ = _payload_hiding(records)
    hidden_open, hidden_close = data.index(fake_open), data.index(fake_close)
    entry = [1, hidden_open, hidden_close, 1, 1, len(fake_open), len(fake_close), 0.3]
    path = tmp_path / "hidden.msgpack"
    path.write_bytes(data + end_v2(4, [[1, 4]], listing=[entry]))
    assert from_end(path) is None  # (it was used: ls listed /evil, closed 4999)
    assert "before the first open" in ls_warns(path)
    assert "/chat" in ok("ls", path) and "/evil" not in ok("ls", path)


def test_a_fake_end_record_in_the_last_payload_does_not_end_the_cassette(
    tmp_path: Path,
) -> None:
    # A cassette that did not end cleanly (the recorder was killed) whose last message's
    # payload ends with the bytes of an end record listing its real open: from its end,
    # the file looks complete.
    records = [pack(open_(1)), pack(message_v2(1, 0.1, 0, b"hi"))]
    data, offsets = _payload_hiding(records)
    entry = [1, offsets[0], None, 2, 0, 2, 0, 0.2]
    path = tmp_path / "unended.msgpack"
    for fake in (
        end_v2(3, [[1, 3]], listing=[entry]),
        # (the fake end and a fake close of connection 1 before it, both in the payload)
        None,
    ):
        if fake is None:
            fake_close = pack(close(1, 0.2))
            at = len(data) + len(pack(message_v2(1, 0.2, 0, b"x" * 300))) - 300
            closing = [1, offsets[0], at, 2, 0, 2, 0, 0.2]
            fake = fake_close + end_v2(3, [[1, 3]], listing=[closing])
        last = pack(message_v2(1, 0.2, 0, fake.rjust(300, b" ")))
        path.write_bytes(data + last)
        reader = CassetteReader(path)
        assert reader.end_summary() is not None  # (the hint is fooled)
        assert reader.listed() is None, fake
        result = invoke("ls", path)
        assert result.exit_code == 0  # type: ignore[attr-defined]
        assert "did not end cleanly" in result.stderr  # type: ignore[attr-defined]
