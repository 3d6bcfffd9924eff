"""Reading wstape's JSONL export back: exact round trips, plain exports, bad lines."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.records import interleave, sessions, write
from wstape.cassettes import CassetteReader, read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side, TlsInfo
from wstape.interchange import jsonl_import
from wstape.interchange.errors import InterchangeError
from wstape.interchange.importer import import_file
from wstape.interchange.jsonl import iter_jsonl, write_jsonl
from wstape.interchange.jsonl_import import read_jsonl

DATA = Path(__file__).parent.parent / "data"
V1 = DATA / "cassette-v1.msgpack"
SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def export(src: Path, out: Path, **options: bool) -> None:
    reader = CassetteReader(src)
    with open(out, "w", encoding="utf-8") as f:
        write_jsonl(reader, f, header=reader.header, **options)


@given(groups=sessions(), seed=st.integers())
@SETTINGS
def test_exact_round_trip_gives_the_same_cassette(
    tmp_path: Path, groups: list[list[Record]], seed: int
) -> None:
    records = groups[0] + interleave(groups[1:], seed)
    src, jsonl, back = tmp_path / "a.msgpack", tmp_path / "a.jsonl", tmp_path / "b.msgpack"
    write(src, records, started_at=1_790_000_000.123456789)
    export(src, jsonl, exact=True)
    result = import_file(jsonl, back)
    header, again = read_cassette(back)
    assert again == records
    assert (header.creator, header.started_at) == ("test", 1_790_000_000.123456789)
    assert result.format.value == "jsonl"


def _carried(record: Record) -> tuple[object, ...]:
    """What a plain JSONL export says about a record."""
    if isinstance(record, Open):
        return (record.conn, record.url, record.method, record.status, record.subprotocols)
    if isinstance(record, Message):
        return (record.conn, round(record.t, 6), record.side, record.opcode, record.payload)
    if isinstance(record, Close):
        return (record.conn, round(record.t, 6), record.by, record.code, record.reason)
    return (record.conn, record.text, record.t)


@given(groups=sessions(), seed=st.integers(), notes=st.booleans())
@SETTINGS
def test_plain_export_imports_to_what_its_keys_say(
    tmp_path: Path, groups: list[list[Record]], seed: int, notes: bool
) -> None:
    records = interleave(groups[1:], seed)
    src, jsonl, back = tmp_path / "a.msgpack", tmp_path / "a.jsonl", tmp_path / "b.msgpack"
    write(src, records)
    export(src, jsonl, notes=notes)
    import_file(jsonl, back)
    again = read_cassette(back)[1]
    kept = [r for r in records if notes or not isinstance(r, Note)]
    assert [_carried(r) for r in again] == [_carried(r) for r in kept]
    # and the export of the import is the export itself
    lines = jsonl.read_text(encoding="utf-8").split("\n")[:-1]  # not splitlines: U+0085
    assert list(iter_jsonl(again, notes=notes)) == lines


def test_plain_export_of_the_frozen_sample(tmp_path: Path) -> None:
    jsonl, back = tmp_path / "v1.jsonl", tmp_path / "v1.msgpack"
    export(V1, jsonl)
    imported = read_jsonl(jsonl)
    assert imported.creator.endswith("(imported from a JSONL export)") and not imported.exact
    records = list(imported.records())
    chat = records[0]
    assert isinstance(chat, Open)
    assert (chat.scheme, chat.host, chat.port, chat.target) == (
        "wss",
        "chat.example.com",
        443,
        "/chat?room=1",
    )
    # what the keys do not carry stays unknown, or what every upgrade has
    assert chat.tls == TlsInfo() and chat.client is None and chat.http_version == "HTTP/1.1"
    assert imported.started_at == chat.started_at
    import_file(jsonl, back)
    assert [type(r) for r in read_cassette(back)[1]] == [type(r) for r in records]


def test_a_reused_connection_id_is_renumbered(tmp_path: Path) -> None:
    lines = [
        {
            "type": "connection",
            "conn": 1,
            "url": "ws://h/a",
            "method": "GET",
            "status": 101,
            "subprotocols_offered": [],
            "subprotocol": None,
            "request_headers": [],
            "response_headers": [],
            "started_at": "2026-01-01T00:00:00Z",
        },
        {"type": "message", "conn": 1, "t": 0.5, "from": "client", "opcode": "text", "text": "a"},
    ]
    path = tmp_path / "reused.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in [*lines, *lines]), encoding="utf-8")
    records = list(read_jsonl(path).records())
    assert [(type(r).__name__, r.conn) for r in records] == [
        ("Open", 1),
        ("Message", 1),
        ("Open", 2),
        ("Note", 2),
        ("Message", 2),
    ]
    assert isinstance(records[3], Note) and "opened on an earlier line" in records[3].text
    assert records[4] == Message(2, 0.5, Side.CLIENT, Opcode.TEXT, b"a")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not a JSON line"),
        ("[1]", "line 2: must be a JSON object"),
        ('{"type": "bogus"}', "line 2: type 'bogus' is not \"connection\""),
        ('{"type": "header", "creator": "x"}', "line 2: a header line must be the first"),
        ('{"type": "message", "conn": -1}', "line 2: conn -1 is not a connection id"),
        (
            '{"type": "message", "conn": 1, "t": NaN, "from": "client", "opcode": "text"}',
            "NaN is not a number JSON allows",
        ),
        (
            '{"type": "message", "conn": 1, "t": 1e400, "from": "client", "opcode": "text", '
            '"text": ""}',
            "t must be a finite number",
        ),
        (
            '{"type": "message", "conn": 1, "t": -1, "from": "client", "opcode": "text", '
            '"text": ""}',
            "message time -1.0 is not from 0 to 10 years",
        ),
        (
            '{"type": "message", "conn": 1, "t": 0, "from": "x", "opcode": "text"}',
            'from must be "client" or "server"',
        ),
        (
            '{"type": "message", "conn": 1, "t": 0, "from": "client", "opcode": "binary", '
            '"base64": "%%"}',
            "base64 is not valid base64",
        ),
        (
            '{"type": "message", "conn": 1, "t": 0, "from": "client", "opcode": "text", '
            '"text": "\\ud800"}',
            "text is not valid Unicode",
        ),
        (
            '{"type": "close", "conn": 1, "t": 0, "by": null, "code": 70000, "on_wire": true}',
            "code 70000 is not a close code",
        ),
        (
            '{"type": "connection", "conn": 2, "url": "ws://h:99999/", "status": 101, '
            '"started_at": "2026-01-01T00:00:00Z"}',
            "no valid port",
        ),
        (
            '{"type": "connection", "conn": 2, "url": "ftp://h/", "status": 101, '
            '"started_at": "2026-01-01T00:00:00Z"}',
            "is not a ws or wss URL",
        ),
        (
            '{"type": "connection", "conn": 2, "url": "ws://h/", '
            '"status": 10000000000000000000000, "started_at": "2026-01-01T00:00:00Z"}',
            "status 10000000000000000000000 is not an HTTP status",
        ),
        (
            '{"type": "connection", "conn": 2, "url": "ws://h/", "status": 101, '
            '"started_at": "2400-01-01T00:00:00Z"}',
            "is not a date",
        ),
        ("\udcff", "line 2: not UTF-8 text"),
    ],
)
def test_a_bad_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    first = '{"type": "note", "conn": null, "t": null, "text": "first"}\n'
    path.write_bytes(first.encode() + line.encode("utf-8", "surrogateescape") + b"\n")
    with pytest.raises(InterchangeError) as e:
        list(read_jsonl(path).records())
    assert str(e.value).startswith(f"{path}, line ")
    assert message in str(e.value)


def test_a_long_line_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text('{"type": "note", "text": "' + "x" * 5000 + '"}\n', encoding="utf-8")
    with (
        patch.object(jsonl_import, "MAX_LINE", 1000),
        pytest.raises(InterchangeError, match="line 1: longer than 1000 bytes"),
    ):
        read_jsonl(path)


def test_an_empty_export_is_an_empty_cassette(tmp_path: Path) -> None:
    path, out = tmp_path / "empty.jsonl", tmp_path / "empty.msgpack"
    path.write_bytes(b"")
    result = import_file(path, out)
    assert (result.connections, result.messages) == (0, 0)
    assert read_cassette(out)[1] == []
