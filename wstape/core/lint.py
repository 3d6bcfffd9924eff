"""``wstape check``: run the rule catalogue over a recorded cassette, offline.

The records stream through once and only per-connection state is kept (group, start time,
end time), so a multi-GB cassette is linted in memory proportional to the number of
connections, never to the number of messages.

What a recording can show: the handshake (request and response rules), every client text
message (UTF-8), how each connection ended (client and server close codes, a client that
dropped TCP), socket concurrency per client under ``wechat``, and reconnect bursts after
an abnormal close. Frame-level rules (mask, RSV, fragments) need the raw frames, which a
cassette does not keep, and the REPLAY-* rules need a live client; neither runs here.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from wstape.core.closecodes import CloseCode
from wstape.core.connections import MessageFields
from wstape.core.model import Close, Message, Note, Opcode, Open, Side, decode_header_value
from wstape.core.rules import (
    WX_REFERER,
    HandshakeChecks,
    ReconnectEpisode,
    RuleConfig,
    Violation,
    check_client_close,
    check_close_handshake,
    check_refused_close,
    check_server_close,
    check_socket_limit,
    check_text,
    close_body,
)
from wstape.core.rules.close import proxy_refusal

Group = tuple[str, ...]


@dataclass(slots=True)
class _Conn:
    conn: int
    group: Group
    started_at: float
    ended_at: float | None = None


@dataclass
class _OpenNow:
    """The accepted connections that have not ended yet, per client group (for the socket
    limit), kept so that each open and close costs O(log n), never a pass over them all."""

    conns: dict[int, _Conn] = field(default_factory=dict)
    per_group: dict[Group, int] = field(default_factory=dict)
    ends: list[tuple[float, int, _Conn]] = field(default_factory=list)
    """A heap of (end time, sequence, connection), one entry per close seen."""
    _seq: int = 0

    def _drop(self, state: _Conn) -> None:
        if self.conns.get(state.conn) is state:
            del self.conns[state.conn]
            left = self.per_group[state.group] - 1
            if left:
                self.per_group[state.group] = left
            else:
                del self.per_group[state.group]

    def forget_ended(self, before: float) -> None:
        """Forget the connections that ended at or before ``before``."""
        ends = self.ends
        while ends and ends[0][0] <= before:
            _, _, state = heapq.heappop(ends)
            if state.ended_at is not None and state.ended_at <= before:
                self._drop(state)

    def add(self, state: _Conn) -> int:
        """Count ``state`` in; how many of its group are open now, it included."""
        old = self.conns.get(state.conn)
        if old is not None:
            self._drop(old)
        self.conns[state.conn] = state
        count = self.per_group.get(state.group, 0) + 1
        self.per_group[state.group] = count
        return count

    def ended(self, state: _Conn, at: float) -> None:
        state.ended_at = at
        self._seq += 1
        heapq.heappush(self.ends, (at, self._seq, state))


def client_group(op: Open) -> Group:
    """Who a connection belongs to, for per-client limits (RULES.md WX-SOCKET-LIMIT).

    The appid in a wx Referer when there is one, else the client's address (without the
    ephemeral port) plus its User-Agent.
    """
    return _group(op, op.request_header("Referer"), op.request_header("User-Agent"))


def _group(op: Open, referer: str | None, user_agent: str | None) -> Group:
    """:func:`client_group` of ``op``, given its first Referer and User-Agent."""
    if referer:
        found = WX_REFERER.fullmatch(referer.strip())
        if found:
            return ("appid", found.group(1).lower())
    return ("client", _client_host(op.client), user_agent or "")


_KEY, _REFERER, _USER_AGENT = b"sec-websocket-key", b"referer", b"user-agent"
_OPEN_HEADERS = frozenset({_KEY, _REFERER, _USER_AGENT})


def _open_headers(op: Open) -> dict[bytes, str]:
    """The first of each of the request headers :func:`_on_open` reads, decoded, in one
    pass (as ``op.request_header`` gives each)."""
    found: dict[bytes, str] = {}
    for k, v in op.request_headers:
        name = k.lower()
        if name in _OPEN_HEADERS and name not in found:
            found[name] = decode_header_value(v)
    return found


def _client_host(client: str | None) -> str:
    if not client:
        return ""
    if client.startswith("["):
        return client[1:].split("]", 1)[0]
    return client.rsplit(":", 1)[0] if ":" in client else client


class Linter:
    """The rules over a recorded cassette's records, fed one at a time in record order
    (what :func:`iter_violations` does, for callers with a loop of their own)."""

    def __init__(self, cfg: RuleConfig) -> None:
        self.cfg = cfg
        self._conns = _OpenNow()
        self._seen_keys: set[str] = set()
        self._handshakes = HandshakeChecks(cfg)
        self._closes = CloseChecks(cfg)
        self._reconnects: dict[Group, ReconnectEpisode] = {}

    def feed(self, record: Open | Message | Close | Note | MessageFields) -> list[Violation]:
        """The violations ``record`` shows (a message may come as its fields,
        :data:`~wstape.core.connections.MessageFields`)."""
        if isinstance(record, tuple):
            return self.message(record[0], record[1], record[2], record[3], record[4])
        if isinstance(record, Open):
            return self.open(record)
        if isinstance(record, Message):
            return self.message(record.conn, record.t, record.side, record.opcode, record.payload)
        if isinstance(record, Close):
            return self.close(record)
        return []

    def open(self, op: Open) -> list[Violation]:
        """The violations of an open: its handshake, reconnects, the socket limit."""
        return _on_open(
            op, self.cfg, self._handshakes, self._conns, self._seen_keys, self._reconnects
        )

    def close(self, close: Close) -> list[Violation]:
        """The violations of how a connection ended (:func:`close_violations`)."""
        return _on_close(close, self._closes, self._conns, self._reconnects)

    def message(
        self, conn: int, t: float, side: Side, opcode: Opcode, payload: bytes
    ) -> list[Violation]:
        """The violations of one message: a client text message must be UTF-8."""
        if side is Side.CLIENT and opcode is Opcode.TEXT and not payload.isascii():
            return check_text(payload, self.cfg, conn, t)
        return []


def iter_violations(
    records: Iterable[Open | Message | Close | Note | MessageFields], cfg: RuleConfig
) -> Iterator[Violation]:
    """Yield the violations of a recorded cassette's records, in record order (a message
    may come as its fields, :data:`~wstape.core.connections.MessageFields`)."""
    feed = Linter(cfg).feed
    for record in records:
        yield from feed(record)


def check_records(
    records: Iterable[Open | Message | Close | Note], cfg: RuleConfig
) -> list[Violation]:
    """All violations of a recorded cassette (see :func:`iter_violations`)."""
    return list(iter_violations(records, cfg))


def _on_open(
    op: Open,
    cfg: RuleConfig,
    handshakes: HandshakeChecks,
    conns: _OpenNow,
    seen_keys: set[str],
    reconnects: dict[Group, ReconnectEpisode],
) -> list[Violation]:
    headers = _open_headers(op)
    key = headers.get(_KEY, "").strip()
    # Pass only the one key that matters: building a frozenset of every key seen so far on
    # each connection would make a long cassette quadratic.
    found = handshakes.check(op, frozenset({key}) if key in seen_keys else _NO_KEYS)
    if key:
        seen_keys.add(key)

    group = _group(op, headers.get(_REFERER), headers.get(_USER_AGENT))
    episode = reconnects.get(group)
    if episode is not None:
        found += episode.reconnected(op.started_at, cfg, op.conn)

    if not op.accepted:
        return found
    # Forget connections that ended before this one started; the rest are open now.
    conns.forget_ended(op.started_at)
    open_now = conns.add(_Conn(op.conn, group, op.started_at))
    found += check_socket_limit(open_now, cfg, op.conn)
    return found


_NO_KEYS: frozenset[str] = frozenset()


def _on_close(
    close: Close,
    closes: CloseChecks,
    conns: _OpenNow,
    reconnects: dict[Group, ReconnectEpisode],
) -> list[Violation]:
    state = conns.conns.get(close.conn)
    if state is not None:
        conns.ended(state, state.started_at + close.t)
    found = closes.check(close)
    if state is not None and close.by is not None:
        if close.code == CloseCode.ABNORMAL_CLOSURE:
            # Keep an episode already running: a reconnect that is dropped again is part
            # of the same burst.
            reconnects.setdefault(state.group, ReconnectEpisode())
        else:
            # A connection that ended normally closes the reconnect episode.
            reconnects.pop(state.group, None)
    return found


def close_violations(close: Close, cfg: RuleConfig) -> list[Violation]:
    """The violations of how a connection ended, as its recorded close shows them."""
    refused = proxy_refusal(close.code, close.reason) is not None
    if close.by is Side.CLIENT and refused:
        # The recorded close is mitmproxy's verdict on a client frame it refused, not a
        # Close the client sent: judge the frame it refused, not that code.
        return check_refused_close(close.code, close.reason, cfg, close.conn, close.t)
    if refused:
        return []  # the server's frame was refused: its recorded code is not the server's
    if close.by is Side.CLIENT:
        if close.on_wire or close.code == CloseCode.NO_STATUS_RCVD:
            # An empty Close frame is recorded as 1005 with nothing on the wire.
            code = close.code if close.on_wire else None
            return check_client_close(
                close_body(code, close.reason), cfg, conn=close.conn, t=close.t
            )
        if close.code == CloseCode.ABNORMAL_CLOSURE:
            return check_close_handshake(False, False, cfg, close.conn)
    elif close.by is Side.SERVER and close.on_wire:
        return check_server_close(close.code, cfg, close.conn, close.reason)
    return []


class CloseChecks:
    """:func:`close_violations` of one cassette's closes, for a run of one ``cfg``.

    Most connections of a cassette end alike (the client's 1000, a dropped 1006), and
    the close rules read of a close only who closed, the code, the reason and whether it
    was on the wire; its ``conn`` and ``t`` only to name them in a violation. So a close
    gets the violations of the first close alike in those four, remade for its own
    connection and time (tests/core/test_lint.py holds the two ways to each other). A
    close with a long reason, or a code that is not an int, is checked in full.
    """

    MEMO = 256
    """Ways of closing kept at most (forgotten all at once)."""
    MAX_REASON = 128
    """A close whose reason is longer than this (in characters) is never kept."""

    def __init__(self, cfg: RuleConfig) -> None:
        self.cfg = cfg
        self._seen: dict[tuple[object, ...], tuple[Violation, ...]] = {}

    def check(self, close: Close) -> list[Violation]:
        code, reason = close.code, close.reason
        if len(reason) > self.MAX_REASON or not (code is None or type(code) is int):
            return close_violations(close, self.cfg)
        key = (close.by, code, reason, close.on_wire)
        got = self._seen.get(key)
        if got is None:
            if len(self._seen) >= self.MEMO:
                self._seen.clear()
            # (conn 0 and t 0.0 stand in: never None, so a violation's t tells whether
            # its rule gives one)
            alike = Close(0, 0.0, close.by, code, reason, close.on_wire)
            got = self._seen[key] = tuple(close_violations(alike, self.cfg))
        if not got:
            return []
        conn, t = close.conn, close.t
        return [replace(v, conn=conn, t=None if v.t is None else t) for v in got]


__all__ = [
    "CloseChecks",
    "Linter",
    "check_records",
    "client_group",
    "close_violations",
    "iter_violations",
]
