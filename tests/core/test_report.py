"""The report model: the JSON shape is a contract, JUnit XML must parse."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from wstape.core.report import CloseResult, ConnectionResult, Report, junit_xml, to_json
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
