"""The report of a replay (or check) run, as data, JSON and JUnit XML. Pure functions.

The JSON shape is a contract (issue 3; an acceptance check reads it)::

    {"passed": bool, "profile": str, "cassette": str,
     "connections": [{"conn", "path", "client", "messages_expected", "messages_matched",
                      "close": {"by", "code", "reason"}}],
     "violations": [{"rule", "severity", "conn", "message", "expected", "actual"}]}

``client`` is left out of a connection when it is None (``wstape check`` has no live
client). ``internal_errors`` (a list of strings) is added only when wstape itself failed
during the run: a wstape bug never reads as a pass. ``notes`` (a list of strings) is added
only when an option changed nothing in the run (a ``--correlate`` path no recorded client
message has, a ``mute-heartbeats`` fault on a connection with nothing to mute); notes do
not fail the run. ``passed`` is False exactly when some
violation has severity ``error`` or an internal error happened.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from wstape.core.rules import Severity, Violation


@dataclass(frozen=True, slots=True)
class CloseResult:
    """How a connection ended: who closed, the code the other side saw, the reason."""

    by: str | None = None
    """``client``, ``server`` or None (nobody closed)."""
    code: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"by": self.by, "code": self.code, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ConnectionResult:
    """One played connection."""

    conn: int
    """The recorded connection id."""
    path: str
    client: str | None
    """``host:port`` of the live client, None for ``wstape check``."""
    messages_expected: int
    messages_matched: int
    close: CloseResult = field(default_factory=CloseResult)
    protocol: str | None = None
    """The application protocol replay recognised (None: plain messages)."""
    heartbeats: dict[str, int] | None = None
    """What the heartbeats did (replay only): answered, pings_sent, pongs, unanswered, ..."""
    correlated: int = 0
    """Values the client generated that were put into server messages."""
    errors: int | None = field(default=None, compare=False)
    warnings: int | None = field(default=None, compare=False)
    """Violations this play of the connection reported itself (replay only; not in the
    JSON, whose violations name the recorded id): the summary's counts when a recording
    is played more than once (``--loop``, reconnects)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"conn": self.conn, "path": self.path}
        if self.client is not None:
            out["client"] = self.client
        out["messages_expected"] = self.messages_expected
        out["messages_matched"] = self.messages_matched
        out["close"] = self.close.to_dict()
        if self.heartbeats is not None:
            out["protocol"] = self.protocol
            out["heartbeats"] = dict(self.heartbeats)
            out["correlated"] = self.correlated
        elif self.protocol is not None:  # wstape check --protocol
            out["protocol"] = self.protocol
        return out


KEEP = 10_000
"""The connections, and the violations, a run's report lists: past as many of either, a
run (``replay --loop`` serves for as long as it runs) counts them instead, and still lists
a violation whose rule and severity is not listed yet. The report's memory stays bounded;
its verdict does not change."""


@dataclass(frozen=True, slots=True)
class LeftOut:
    """What a report counts without listing (:class:`ReportBook`)."""

    connections: int = 0
    errors: int = 0
    warnings: int = 0
    info: int = 0

    def __bool__(self) -> bool:
        return any((self.connections, self.errors, self.warnings, self.info))

    def count(self, severity: Severity) -> int:
        if severity is Severity.ERROR:
            return self.errors
        return self.warnings if severity is Severity.WARN else self.info

    def to_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "violations": {"error": self.errors, "warn": self.warnings, "info": self.info},
        }

    def note(self, keep: int) -> str:
        """The report note that says what was counted, not listed."""
        counted = self.errors + self.warnings + self.info
        return (
            f"the report lists the first {keep:,} connections and violations; "
            f"{self.connections:,} more connections and {counted:,} more violations "
            f"({self.errors:,} errors, {self.warnings:,} warnings, {self.info:,} info) of "
            "rules already listed are counted only"
        )


class ReportBook:
    """The connection lines and violations of a run that may never end, bounded: the
    first ``keep`` of each are listed, the rest counted (:data:`KEEP`)."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self.rows: list[tuple[int, ConnectionResult]] = []
        """``(serial, line)``: the live connection's serial orders the lines."""
        self.violations: list[Violation] = []
        self._kinds: set[tuple[str, Severity]] = set()
        self._rows_left = 0
        self._violations_left: Counter[Severity] = Counter()

    def add_row(self, serial: int, row: ConnectionResult) -> None:
        if len(self.rows) < self.keep:
            self.rows.append((serial, row))
        else:
            self._rows_left += 1

    def add_violation(self, v: Violation) -> None:
        """List ``v``, or count it once ``keep`` are listed and its kind is among them."""
        kind = (v.rule, v.severity)
        if len(self.violations) < self.keep or kind not in self._kinds:
            self.violations.append(v)
            self._kinds.add(kind)
        else:
            self._violations_left[v.severity] += 1

    @property
    def left_out(self) -> LeftOut:
        left = self._violations_left
        return LeftOut(
            self._rows_left, left[Severity.ERROR], left[Severity.WARN], left[Severity.INFO]
        )


def failing(v: Violation, strict: bool = False) -> bool:
    """Whether ``v`` fails a run: an error does; a warning too under ``--strict``."""
    return v.severity is Severity.ERROR or (strict and v.severity is Severity.WARN)


@dataclass(frozen=True)
class Report:
    """Everything a run found."""

    profile: str
    cassette: str
    connections: tuple[ConnectionResult, ...] = ()
    violations: tuple[Violation, ...] = ()
    internal_errors: tuple[str, ...] = ()
    """wstape bugs caught during the run (each fails it)."""
    faults: tuple[dict[str, object], ...] = ()
    """Faults injected during the run, each with what the client did next (docs/faults.md)."""
    notes: tuple[str, ...] = ()
    """Options that changed nothing in the run, one line each (they do not fail it)."""
    strict: bool = False
    """Warnings fail the run too (``--strict``)."""
    left_out: LeftOut = LeftOut()
    """Connections and violations counted, not listed (:class:`ReportBook`)."""

    @property
    def passed(self) -> bool:
        if self.internal_errors:
            return False
        return not any(failing(v, self.strict) for v in self.violations)

    def count(self, severity: Severity) -> int:
        listed = sum(1 for v in self.violations if v.severity is severity)
        return listed + self.left_out.count(severity)

    @property
    def played(self) -> int:
        """The connections played, listed or not."""
        return len(self.connections) + self.left_out.connections

    def rule_ids(self) -> list[str]:
        """The distinct rule IDs reported, in first-seen order."""
        return list(dict.fromkeys(v.rule for v in self.violations))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"passed": self.passed}
        if self.strict:
            out["strict"] = True
        out |= {
            "profile": self.profile,
            "cassette": self.cassette,
            "connections": [c.to_dict() for c in self.connections],
            "violations": [violation_dict(v) for v in self.violations],
        }
        if self.faults:
            out["faults"] = [dict(f) for f in self.faults]
        if self.notes:
            out["notes"] = list(self.notes)
        if self.left_out:
            out["left_out"] = self.left_out.to_dict()
        if self.internal_errors:
            out["internal_errors"] = list(self.internal_errors)
        return out


def violation_dict(v: Violation) -> dict[str, Any]:
    """Exactly the report keys of a violation, JSON-safe."""
    data = v.to_json()
    return {k: data.get(k) for k in ("rule", "severity", "conn", "message", "expected", "actual")}


def _short_json(value: object, limit: int) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def violation_line(v: Violation, *, limit: int = 100) -> str:
    """One human line for ``v``: severity, rule, connection, message, and the expected and
    actual values as JSON (each cut to ``limit`` characters)."""
    data = violation_dict(v)
    conn = "-" if v.conn is None else str(v.conn)
    line = f"{v.severity.value:5} {v.rule} conn {conn}: {v.message}"
    extra = [
        f"{key} {_short_json(data[key], limit)}"
        for key in ("expected", "actual")
        if data[key] is not None
    ]
    return line + (f" ({', '.join(extra)})" if extra else "")


def build_report(
    profile: str,
    cassette: str,
    connections: Iterable[ConnectionResult],
    violations: Iterable[Violation],
) -> Report:
    return Report(profile, cassette, tuple(connections), tuple(violations))


def to_json(report: Report, *, indent: int | None = 2) -> str:
    """The report as JSON text (UTF-8 kept readable, not escaped)."""
    if indent is None:
        return json.dumps(report.to_dict(), ensure_ascii=False)
    return "".join(iter_json(report, indent=indent))


def iter_json(report: Report, *, indent: int = 2) -> Iterator[str]:
    """:func:`to_json`'s text in pieces, a connection or a violation at a time: the text
    ``json.dumps(report.to_dict(), indent=indent)`` makes, without the whole document (a
    report of 200,000 connections) built first."""
    pad = " " * indent

    def dumps(value: object) -> str:
        return json.dumps(value, indent=indent, ensure_ascii=False)

    lists: list[tuple[str, Iterable[object] | dict[str, Any]]] = [
        ("connections", (c.to_dict() for c in report.connections)),
        ("violations", map(violation_dict, report.violations)),
    ]
    if report.faults:
        lists.append(("faults", [dict(f) for f in report.faults]))
    if report.notes:
        lists.append(("notes", list(report.notes)))
    if report.left_out:
        lists.append(("left_out", report.left_out.to_dict()))
    if report.internal_errors:
        lists.append(("internal_errors", list(report.internal_errors)))
    yield "{\n" + pad + '"passed": ' + dumps(report.passed)
    if report.strict:
        yield ",\n" + pad + '"strict": true'
    yield ",\n" + pad + '"profile": ' + dumps(report.profile)
    yield ",\n" + pad + '"cassette": ' + dumps(report.cassette)
    inner = "\n" + pad + pad
    for key, items in lists:
        if isinstance(items, dict):
            yield ",\n" + pad + dumps(key) + ": " + dumps(items).replace("\n", "\n" + pad)
            continue
        yield ",\n" + pad + dumps(key) + ": ["
        empty = True
        for item in items:
            # (json's indentation is by depth alone: an item one level down is its own
            # text with every line two pads in; no string holds a raw line break)
            yield ("," if not empty else "") + inner + dumps(item).replace("\n", inner)
            empty = False
        yield "]" if empty else "\n" + pad + "]"
    yield "\n}"


class ReportFormatError(ValueError):
    """A file given as a wstape report that is not one (one line saying why)."""


def read_report_json(text: str) -> tuple[list[Violation], list[dict[str, Any]]]:
    """The violations and faults of a JSON report (``wstape replay --report``, ``check
    --report``), for ``wstape view --report``. Raises ReportFormatError."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ReportFormatError(f"not JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("violations"), list):
        raise ReportFormatError('not a wstape report (no "violations" list)')
    violations = []
    for i, v in enumerate(doc["violations"]):
        try:
            conn = v["conn"]
            if conn is not None and type(conn) is not int:
                raise TypeError("conn")
            violations.append(
                Violation(
                    str(v["rule"]),
                    Severity(v["severity"]),
                    conn,
                    str(v["message"]),
                    v.get("expected"),
                    v.get("actual"),
                )
            )
        except (KeyError, TypeError, ValueError):
            raise ReportFormatError(f"violation {i} is not rule/severity/conn/message") from None
    faults = doc.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
        raise ReportFormatError('"faults" is not a list of objects')
    return violations, faults


def junit_xml(report: Report, *, name: str = "wstape") -> str:
    """The report as JUnit XML: one test case per connection, plus one for the session.

    Error violations are ``<failure>`` elements (type = rule ID); warnings and info go to
    ``<system-out>`` so CI shows them without failing.
    """
    by_conn: dict[int | None, list[Violation]] = {}
    for v in report.violations:
        by_conn.setdefault(v.conn, []).append(v)
    cases: list[tuple[str, Sequence[Violation]]] = []
    for c in report.connections:
        cases.append((f"conn {c.conn} {c.path}", by_conn.pop(c.conn, [])))
    session = by_conn.pop(None, [])
    for conn, rest in sorted(by_conn.items(), key=lambda kv: kv[0] or 0):
        cases.append((f"conn {conn}", rest))
    # Always a session case, last: the run as a whole (rules about no connection, faults,
    # wstape's own errors), so a CI dashboard has a stable test to follow.
    cases.append(("session", session))

    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(cases)),
        failures=str(sum(1 for _, f in cases if _errors(f, report.strict))),
        errors="1" if report.internal_errors else "0",
        skipped="0",
    )
    suite.set("cassette", report.cassette)
    suite.set("profile", report.profile)
    for case_name, found in cases:
        case = ET.SubElement(
            suite, "testcase", classname=f"{name}.{report.profile}", name=case_name
        )
        lines = []
        if case_name == "session":
            lines = [
                f"fault {f['spec']} on conn {f['conn']} at {f['at']} s: {f['what']}; "
                f"then {f['then']}"
                for f in report.faults
            ] + [f"note: {text}" for text in report.notes]
        if case_name == "session" and report.internal_errors:
            error = ET.SubElement(
                case,
                "error",
                type="wstape-internal-error",
                message="wstape failed during the run (a wstape bug)",
            )
            error.text = _clean("\n".join(report.internal_errors))
        for v in _errors(found, report.strict):
            failure = ET.SubElement(case, "failure", type=v.rule, message=_clean(v.message))
            failure.text = _clean(_details(v))
        lines += [
            f"{v.severity.value}: {v.rule}: {v.message}"
            for v in found
            if not failing(v, report.strict)
        ]
        if lines:
            ET.SubElement(case, "system-out").text = _clean("\n".join(lines))
    root = ET.Element("testsuites", name=name)
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _errors(found: Sequence[Violation], strict: bool) -> list[Violation]:
    return [v for v in found if failing(v, strict)]


def _details(v: Violation) -> str:
    data = violation_dict(v)
    return (
        f"{v.rule} (conn {v.conn}): {v.message}\n"
        f"expected: {json.dumps(data['expected'], ensure_ascii=False)}\n"
        f"actual: {json.dumps(data['actual'], ensure_ascii=False)}"
    )


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control bytes from hostile payloads)."""
    return "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or (" " <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ("\U00010000" <= ch <= "\U0010ffff")
    )


__all__ = [
    "CloseResult",
    "ConnectionResult",
    "Report",
    "build_report",
    "junit_xml",
    "to_json",
    "violation_dict",
    "violation_line",
]
