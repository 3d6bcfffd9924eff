"""``wstape check``: the rule catalogue over a recorded cassette, without a server."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import compress
from pathlib import Path
from typing import cast

from wstape.cassettes.reader import CassetteReader
from wstape.core.codecs import CODECS
from wstape.core.connections import (
    CASSETTE,
    ConnectionTracker,
    MessageFields,
    MessageRun,
    Strays,
    add_run_to_summary,
    add_to_summary,
    slim_open,
)
from wstape.core.lint import Linter
from wstape.core.model import Close, ConnectionSummary, Message, Opcode, Open, Record, Side
from wstape.core.replay.recorded import FIRST_MESSAGES
from wstape.core.report import CloseResult, ConnectionResult, Report, build_report
from wstape.core.rules import RuleConfig, Violation, protocol_misfit


def check_file(reader: CassetteReader, cfg: RuleConfig) -> Report:
    """Stream the cassette once, running the rules and counting each connection.

    Raises CassetteError (TruncatedCassette only when the reader does not allow it).
    """
    return check_reader(reader, cfg)[0]


def check_reader(
    reader: CassetteReader, cfg: RuleConfig, *, protocol: str = "none"
) -> tuple[Report, Strays]:
    """:func:`check_file`, and the records that belong to no connection
    (:mod:`wstape.core.connections`), which are not checked. ``protocol`` (``auto``, a
    codec's name, or ``none``) names each connection's protocol in the report, recognised
    as replay recognises it (``wstape check --protocol``)."""
    tracker = ConnectionTracker()
    route = tracker.route
    live_slots = tracker.live_slots
    states: list[ConnectionSummary | ConnectionResult] = []
    """Per slot: the connection's summary while it lasts, then its result (a cassette of
    many connections keeps a result per connection, not a summary and its open)."""
    names: dict[int, str | None] = {}
    """Slot -> the protocol named for it, until its result is made."""
    firsts: dict[int, tuple[Open, list[Message]]] = {}
    """Slot -> its open and first messages, while its protocol is still to be named."""
    linter = Linter(cfg)
    violations: list[Violation] = []
    closes = _Closes()

    def name(slot: int) -> None:
        op, first = firsts.pop(slot)
        codec = CODECS.choose(protocol, op, first)
        names[slot] = None if codec is None else codec.name
        why = CODECS.misfit(protocol, op, first)
        if why is not None:
            violations.extend(protocol_misfit(op.conn, why, cfg))

    def finish(slot: int) -> None:
        s = states[slot]
        assert type(s) is ConnectionSummary
        if slot in firsts:
            name(slot)
        states[slot] = _result(s, names.pop(slot, None), closes)
        ends = reader.end_check  # (``check_ends``: the end records are held to this)
        if ends is not None:
            ends.connection(
                s.open.conn,
                s.messages_client,
                s.messages_server,
                s.bytes_client,
                s.bytes_server,
                s.last_t,
            )

    position = -1
    for item in reader.iter_runs():
        if isinstance(item, MessageRun):  # (a few hundred messages: of one live connection,
            conn = item.one_conn()  # mostly, and counted in one go)
            live = None if conn is None else live_slots(conn)
            if live and live[-1] not in firsts:
                s = states[live[-1]]
                assert type(s) is ConnectionSummary
                if _add_run(s, item):
                    position += len(item.conns)
                    continue
            records: Iterable[Record | MessageFields] = item.fields()
        else:
            records = (item,)
        for record in records:
            position += 1
            if isinstance(record, tuple):
                live = live_slots(record[0])
                if live:  # a message of a live connection: the common case, in this loop
                    slot = live[-1]
                    conn, t, side, opcode, payload = record
                    s = states[slot]
                    assert type(s) is ConnectionSummary
                    if side is Side.CLIENT:
                        s.messages_client += 1
                        s.bytes_client += len(payload)
                        if opcode is Opcode.TEXT and not payload.isascii():
                            violations += linter.message(conn, t, side, opcode, payload)
                    else:
                        s.messages_server += 1
                        s.bytes_server += len(payload)
                    if t > s.last_t:
                        s.last_t = t
                    if slot in firsts:
                        first = firsts[slot][1]
                        first.append(Message(*record))
                        if len(first) >= FIRST_MESSAGES:
                            name(slot)
                    continue
            tracker.position = position
            slot = route(record)
            if slot >= 0:
                if type(record) is Open:
                    states.append(ConnectionSummary(open=slim_open(record)))
                    if protocol != "none":
                        firsts[slot] = (record, [])
                    violations += linter.open(record)
                    if not record.accepted:
                        finish(slot)  # (nothing follows a refused upgrade)
                    continue
                state = states[slot]
                if type(state) is ConnectionSummary and not isinstance(record, Open):
                    add_to_summary(state, record)
                    if type(record) is Close:
                        finish(slot)
                        violations += linter.close(record)
                        continue
            elif slot != CASSETTE:
                continue
            violations += linter.feed(record)
    for slot, state in enumerate(states):
        if type(state) is ConnectionSummary:
            finish(slot)
    results = cast(list[ConnectionResult], states)  # (each one finished above)
    return build_report(cfg.profile.value, str(reader.path), results, violations), tracker.strays


class _Closes:
    """One CloseResult for each way connections closed (most close alike)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, int | None, str], CloseResult] = {}

    def get(self, close: Close | None) -> CloseResult:
        if close is None:
            return CloseResult()
        key = (None if close.by is None else close.by.value, close.code, close.reason)
        got = self._seen.get(key)
        if got is None:
            if len(self._seen) >= 4096:  # (many reasons: keep the memo small)
                self._seen.clear()
            got = self._seen[key] = CloseResult(*key)
        return got


def _add_run(s: ConnectionSummary, run: MessageRun) -> bool:
    """Count a run of messages of the live connection ``s`` in one go, unless a client text
    message in it is for the UTF-8 rule (not all ASCII): then False, nothing counted, and
    the run's messages go one by one."""
    kinds, payloads = run.kinds, run.payloads
    if not all(map(bytes.isascii, compress(payloads, map((0).__eq__, kinds)))):
        return False
    add_run_to_summary(s, run)
    return True


def _result(s: ConnectionSummary, protocol: str | None, closes: _Closes) -> ConnectionResult:
    # As in a replay report: the client messages the recording expects (all of them
    # "matched", the recording being its own client).
    total = s.messages_client
    return ConnectionResult(
        conn=s.open.conn,
        path=s.open.path,
        client=None,
        messages_expected=total,
        messages_matched=total,
        close=closes.get(s.close),
        protocol=protocol,
    )


def check_cassette(path: str | Path, rules: RuleConfig | None = None) -> Report:
    """``wstape check`` from Python: the rules over a recorded cassette, without a server.

    Raises CassetteError for an unreadable file (TruncatedCassette for a cut-off one).
    """
    return check_file(CassetteReader(path), rules or RuleConfig())
