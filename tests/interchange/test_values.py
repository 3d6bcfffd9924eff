"""The import checks agree with the cassette reader: what they accept reads back."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.records import write
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.interchange import values
from wstape.interchange.values import (
    MAX_CONN,
    MAX_EPOCH,
    MAX_ITEMS,
    MAX_OFFSET,
    MAX_TEXT_BYTES,
    percent_escape,
    record_problem,
    repair_text,
)

OPEN = Open(1, 1_790_000_000.0, "GET", "ws", "h", 80, "/", "HTTP/1.1", (), 101, ())

ACCEPTED: list[Record] = [
    replace(OPEN, conn=0),
    replace(OPEN, conn=MAX_CONN),
    replace(OPEN, port=0),
    replace(OPEN, port=65535),
    replace(OPEN, status=100),
    replace(OPEN, status=999),
    replace(OPEN, started_at=0.0),
    replace(OPEN, started_at=MAX_EPOCH - 1),
    replace(OPEN, request_headers=((b"x", b"v" * MAX_TEXT_BYTES),)),
    replace(OPEN, subprotocols=("p",) * MAX_ITEMS),
    replace(OPEN, reason="é" * (MAX_TEXT_BYTES // 2)),
    Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b""),
    Message(1, MAX_OFFSET, Side.SERVER, Opcode.BINARY, b"\xff"),
    Close(1, 0.0, None, None, "", False),
    Close(1, MAX_OFFSET, Side.CLIENT, 0, "", True),
    Close(1, 1.0, Side.SERVER, 0xFFFF, "r", True),
    Note(None, "n", None),
    Note(1, "n", MAX_OFFSET),
]

REFUSED: list[tuple[Record, str]] = [
    (replace(OPEN, conn=-1), "connection id"),
    (replace(OPEN, conn=MAX_CONN + 1), "connection id"),
    (replace(OPEN, port=65536), "port"),
    (replace(OPEN, port=2**70), "port"),
    (replace(OPEN, status=99), "status"),
    (replace(OPEN, status=10**40), "status"),
    (replace(OPEN, started_at=-1.0), "started_at"),
    (replace(OPEN, started_at=MAX_EPOCH), "started_at"),
    (replace(OPEN, started_at=float("inf")), "started_at"),
    (replace(OPEN, request_headers=((b"x", b"v" * (MAX_TEXT_BYTES + 1)),)), "header"),
    (replace(OPEN, subprotocols=("p",) * (MAX_ITEMS + 1)), "subprotocols"),
    (replace(OPEN, host="h\udcff"), "host"),
    (replace(OPEN, reason="x" * (MAX_TEXT_BYTES + 1)), "reason"),
    (Message(1, -0.5, Side.CLIENT, Opcode.TEXT, b""), "message time"),
    (Message(1, MAX_OFFSET * 2, Side.CLIENT, Opcode.TEXT, b""), "message time"),
    (Message(1, float("nan"), Side.CLIENT, Opcode.TEXT, b""), "message time"),
    (Message(2**60, 0.0, Side.CLIENT, Opcode.TEXT, b""), "connection id"),
    (Close(1, 1.0, Side.CLIENT, 70000, "", True), "code"),
    (Close(1, 1.0, Side.CLIENT, -1, "", True), "code"),
    (Close(1, float("inf"), Side.CLIENT, 1000, "", True), "time"),
    (Note(1, "n", -1.0), "time"),
    (Note(1, "\ud800", None), "note"),
]


@pytest.mark.parametrize("record", ACCEPTED, ids=lambda r: type(r).__name__)
def test_what_the_checks_accept_reads_back(tmp_path: Path, record: Record) -> None:
    assert record_problem(record) is None
    path = tmp_path / "ok.msgpack"
    write(path, [record])
    assert read_cassette(path)[1] == [record]


@pytest.mark.parametrize(("record", "what"), REFUSED, ids=lambda x: getattr(x, "__name__", ""))
def test_what_the_checks_refuse_is_named(record: Record, what: str) -> None:
    problem = record_problem(record)
    assert problem is not None and what in problem


def test_text_repairs() -> None:
    raw = b"/chat\xff\xfe?x=\xc3&y=\xc3\xa9"
    decoded = raw.decode("utf-8", "surrogateescape")
    assert percent_escape(decoded) == "/chat%FF%FE?x=%C3&y=é"
    assert repair_text(decoded) == "/chat\ufffd\ufffd?x=\ufffd&y=é"
    assert repair_text("\ud800") == "\ufffd\ufffd\ufffd"
    assert percent_escape("/ok") == "/ok" and repair_text("ok") == "ok"


def test_numbers() -> None:
    assert values.is_number(1) and values.is_number(1.5)
    for bad in (True, float("inf"), float("nan"), 10**400, "1", None):
        assert not values.is_number(bad)
    assert values.is_epoch(0) and not values.is_epoch(-1e-9)
