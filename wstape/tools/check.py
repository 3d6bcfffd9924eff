"""``wstape check``: the rule catalogue over a recorded cassette, without a server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from wstape.cassettes.reader import CassetteReader
from wstape.core.connections import CASSETTE, ConnectionTracker, Strays
from wstape.core.lint import iter_violations
from wstape.core.model import ConnectionSummary, Open, Record
from wstape.core.report import CloseResult, ConnectionResult, Report, build_report
from wstape.core.rules import RuleConfig


def check_file(reader: CassetteReader, cfg: RuleConfig) -> Report:
    """Stream the cassette once, running the rules and counting each connection.

    Raises CassetteError (TruncatedCassette only when the reader does not allow it).
    """
    return check_reader(reader, cfg)[0]


def check_reader(reader: CassetteReader, cfg: RuleConfig) -> tuple[Report, Strays]:
    """:func:`check_file`, and the records that belong to no connection
    (:mod:`wstape.core.connections`), which are not checked."""
    tracker = ConnectionTracker()
    summaries: list[ConnectionSummary] = []

    def counted() -> Iterator[Record]:
        for record in reader:
            slot = tracker.route(record)
            if slot >= 0:
                if isinstance(record, Open):
                    summaries.append(ConnectionSummary(open=record))
                else:
                    summaries[slot].add(record)
            elif slot != CASSETTE:
                continue
            yield record

    violations = list(iter_violations(counted(), cfg))
    report = build_report(
        cfg.profile.value,
        str(reader.path),
        (_result(s) for s in summaries),
        violations,
    )
    return report, tracker.strays


def _result(s: ConnectionSummary) -> ConnectionResult:
    # As in a replay report: the client messages the recording expects (all of them
    # "matched", the recording being its own client).
    total = s.messages_client
    close = s.close
    return ConnectionResult(
        conn=s.open.conn,
        path=s.open.path,
        client=None,
        messages_expected=total,
        messages_matched=total,
        close=CloseResult()
        if close is None
        else CloseResult(
            by=None if close.by is None else close.by.value, code=close.code, reason=close.reason
        ),
    )


def check_cassette(path: str | Path, rules: RuleConfig | None = None) -> Report:
    """``wstape check`` from Python: the rules over a recorded cassette, without a server.

    Raises CassetteError for an unreadable file (TruncatedCassette for a cut-off one).
    """
    return check_file(CassetteReader(path), rules or RuleConfig())
