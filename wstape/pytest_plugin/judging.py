"""When a replayed test fails, and how the failure reads.

A test fails when its replay found an error-severity violation, or when a connection the
test opened did not reach all of its recorded messages (REPLAY-UNPLAYED; the marker's
``allow_unplayed=True`` accepts that). Recorded connections the test never opened are not
a failure. WX-URL-HOST findings about the fixture's own address are dropped: the test
connects where ``url`` says, 127.0.0.1, which is the fixture's choice, not the client's.
"""

from __future__ import annotations

from dataclasses import replace

from wstape.core.report import Report, violation_line
from wstape.core.rules import Severity

FIXTURE_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""Hosts the fixture hands out: WX-URL-HOST does not judge them (see docs/pytest.md)."""

ALLOW_HINT = " [allow_unplayed=True accepts this]"


def without_fixture_host(report: Report) -> Report:
    """``report`` without WX-URL-HOST findings about the fixture's own address.

    A client that connects by the recorded name (``hostnames=``) still has its host checked.
    """
    kept = tuple(
        v
        for v in report.violations
        if not (v.rule == "WX-URL-HOST" and str(v.actual).lower() in FIXTURE_HOSTS)
    )
    if len(kept) == len(report.violations):
        return report
    return replace(report, violations=kept)


def problems(report: Report, *, since: int, allow_unplayed: bool) -> list[str]:
    """Lines for the violations from index ``since`` on that fail the test.

    REPLAY-UNPLAYED counts only for a connection the test opened (a recorded connection
    the test never opened, or a test that opened none, is the test's business).
    """
    opened = {c.conn for c in report.connections}
    lines = [f"error internal {text}" for text in report.internal_errors] if since == 0 else []
    for v in report.violations[since:]:
        if v.rule == "REPLAY-UNPLAYED":
            if v.conn in opened and not allow_unplayed:
                lines.append(violation_line(v, limit=160) + ALLOW_HINT)
        elif v.severity is Severity.ERROR:
            lines.append(violation_line(v, limit=160))
    return lines


def still_open_lines(conns: list[int]) -> list[str]:
    """Lines for connections still open at the end of the test mid-recording."""
    return [
        f"warn  REPLAY-UNPLAYED conn {conn}: still open at the end of the test with recorded "
        f"messages never reached{ALLOW_HINT}"
        for conn in conns
    ]


def failure_text(cassette: str, profile: str, lines: list[str]) -> str:
    n = len(lines)
    head = f"wstape: {n} problem{'s' if n != 1 else ''} replaying {cassette} (profile {profile}):"
    return "\n".join([head, *(f"  {line}" for line in lines)])


__all__ = [
    "FIXTURE_HOSTS",
    "failure_text",
    "problems",
    "still_open_lines",
    "without_fixture_host",
]
