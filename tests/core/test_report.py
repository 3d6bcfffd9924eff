"""The report model: the JSON shape is a contract, JUnit XML must parse."""

from __future__ import annotations

import json
from dataclasses import replace
from xml.etree import ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from wstape.core.report import (
    CloseResult,
    ConnectionResult,
    Report,
    iter_json,
    junit_xml,
    to_json,
)
from wstape.core.rules import Severity, Violation

ROW = ConnectionResult(
    conn=3,
    path="/chat",
    client="127.0.0.1:5555",
    messages_expected=4,
    messages_matched=3,
    close=CloseResult("client", 4001, "再见"),
)
MISMATCH = Violation(
    "REPLAY-MESSAGE-MISMATCH",
    Severity.ERROR,
    3,
    "client text message differs",
    expected={"payload": b"\x00\xff"},
    actual={"payload": b"hi"},
    t=1.5,
)
WARN = Violation("REPLAY-UNPLAYED", Severity.WARN, None, "connection 4 never reached <&>\x01")


def test_json_has_exactly_the_contract_keys() -> None:
    data = json.loads(to_json(Report("wechat", "chat.msgpack", (ROW,), (MISMATCH, WARN))))
    assert list(data) == ["passed", "profile", "cassette", "connections", "violations"]
    assert data["passed"] is False and data["profile"] == "wechat"
    assert data["connections"] == [
        {
            "conn": 3,
            "path": "/chat",
            "client": "127.0.0.1:5555",
            "messages_expected": 4,
            "messages_matched": 3,
            "close": {"by": "client", "code": 4001, "reason": "再见"},
        }
    ]
    first = data["violations"][0]
    assert list(first) == ["rule", "severity", "conn", "message", "expected", "actual"]
    assert first["expected"] == {"payload": "00ff"} and first["actual"] == {"payload": "hi"}


def test_passed_with_warnings_only_and_check_rows_without_client() -> None:
    row = ConnectionResult(1, "/", None, 0, 0)
    report = Report("rfc6455", "c", (row,), (WARN,))
    data = report.to_dict()
    assert data["passed"] is True
    assert "client" not in data["connections"][0]
    assert data["connections"][0]["close"] == {"by": None, "code": None, "reason": ""}
    assert report.rule_ids() == ["REPLAY-UNPLAYED"]


def test_junit_xml_parses_and_fails_only_on_errors() -> None:
    text = junit_xml(Report("browser", "chat.msgpack", (ROW,), (MISMATCH, WARN)))
    root = ET.fromstring(text.encode())
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["conn 3 /chat", "session"]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("type") == "REPLAY-MESSAGE-MISMATCH"
    out = cases[1].find("system-out")
    assert out is not None and "REPLAY-UNPLAYED" in (out.text or "")
    assert "\x01" not in text


def test_junit_xml_empty_report() -> None:
    root = ET.fromstring(junit_xml(Report("rfc6455", "c")).encode())
    assert root.find("testsuite/testcase") is not None


_texts = st.text(max_size=12)
_results = st.builds(
    ConnectionResult,
    conn=st.integers(0, 2**31),
    path=_texts,
    client=st.none() | _texts,
    messages_expected=st.integers(0, 99),
    messages_matched=st.integers(0, 99),
    close=st.builds(CloseResult, st.none() | _texts, st.none() | st.integers(0, 4999), _texts),
    protocol=st.none() | _texts,
    heartbeats=st.none() | st.dictionaries(_texts, st.integers(0, 9), max_size=3),
)
_violations = st.builds(
    Violation,
    _texts,
    st.sampled_from(list(Severity)),
    st.none() | st.integers(0, 99),
    _texts,
    expected=st.none() | _texts | st.binary(max_size=6),
    actual=st.none() | st.lists(_texts, max_size=2),
)


@given(
    connections=st.lists(_results, max_size=4),
    violations=st.lists(_violations, max_size=4),
    faults=st.lists(st.dictionaries(_texts, _texts, max_size=2), max_size=2),
    errors=st.lists(_texts, max_size=2),
)
def test_the_json_written_in_pieces_is_json_dumps_text(
    connections: list[ConnectionResult],
    violations: list[Violation],
    faults: list[dict[str, object]],
    errors: list[str],
) -> None:
    report = Report("rfc6455", "c\n.msgpack", tuple(connections), tuple(violations))
    report = replace(report, faults=tuple(faults), internal_errors=tuple(errors))
    for indent in (2, 4):
        want = json.dumps(report.to_dict(), indent=indent, ensure_ascii=False)
        assert "".join(iter_json(report, indent=indent)) == want
        assert to_json(report, indent=indent) == want
    assert to_json(report, indent=None) == json.dumps(report.to_dict(), ensure_ascii=False)
