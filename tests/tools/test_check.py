"""``wstape check``'s fold (tools/check.py): runs of messages counted in one go give the
report that counting them one by one gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import opened
from tests.helpers.records import write
from wstape.cassettes import CassetteReader
from wstape.cassettes import reader as reader_module
from wstape.core.connections import MessageRun
from wstape.core.model import Close, Message, Opcode, Record, Side
from wstape.core.rules import RuleConfig
from wstape.tools.check import check_reader


def _cassette(path: Path) -> None:
    records: list[Record] = [opened(1), opened(2)]
    for i in range(3000):
        side = Side.SERVER if i % 4 == 0 else Side.CLIENT
        opcode = Opcode.BINARY if i % 5 == 0 else Opcode.TEXT
        payload = b"\xff\xfe bad" if i in (7, 1201, 1500, 1803, 2999) else "é".encode() * (i % 9)
        records.append(Message(1, 0.01 * i, side, opcode, payload))
        if i % 1000 == 999:
            records.append(Message(2, 0.01 * i, Side.CLIENT, Opcode.TEXT, b"\xc3"))
    records += [Close(1, 40.0, Side.CLIENT, 1000), Close(2, 40.0, Side.CLIENT, 1000)]
    write(path, records)


@pytest.mark.parametrize("protocol", ["none", "auto"])
def test_runs_give_the_report_of_one_message_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str
) -> None:
    monkeypatch.setattr(reader_module, "FEED", 2048)  # (a small cassette, in many chunks)
    path = tmp_path / "c.msgpack"
    _cassette(path)
    assert any(isinstance(item, MessageRun) for item in CassetteReader(path).iter_runs())
    report, strays = check_reader(CassetteReader(path), RuleConfig(), protocol=protocol)
    monkeypatch.setattr(CassetteReader, "iter_runs", CassetteReader.iter_fields)
    one_by_one, strays_one_by_one = check_reader(
        CassetteReader(path), RuleConfig(), protocol=protocol
    )
    assert report.to_dict() == one_by_one.to_dict()
    assert strays.count == strays_one_by_one.count == 0
    # The invalid client text messages, each named once: 7, 1201, 1803 and 2999 (1500 is the
    # server's), and connection 2's three.
    bad = [v for v in report.violations if v.rule == "RFC-TEXT-UTF8"]
    assert (
        sorted((v.conn, v.actual) for v in bad) == [(1, b"\xff\xfe bad")] * 4 + [(2, b"\xc3")] * 3
    )
    first = report.to_dict()["connections"][0]
    assert first["messages_expected"] == sum(1 for i in range(3000) if i % 4)
