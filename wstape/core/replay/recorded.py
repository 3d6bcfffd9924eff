"""What replay knows about a recorded connection before any client connects.

:class:`RecordedConnection` is built in one pass over the cassette (the replay server's
index feeds each connection's messages through a :class:`HeartbeatFinder`), so a
connection of millions of messages is summarised in constant memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wstape.core.model import Close, Message, Opcode, Open, Side

HEARTBEAT_MAX_PAYLOAD = 512
"""Longer messages are never heartbeats (keeps the index small for huge cassettes)."""
HEARTBEAT_MAX_CANDIDATES = 4096
HEARTBEAT_MIN_REPEATS = 2


MessageKey = tuple[Opcode, bytes]


@dataclass(frozen=True)
class RecordedConnection:
    """One recorded connection, as known before replaying it (from one pass of indexing).

    ``heartbeats`` maps a heartbeat request to its reply; ``messages_expected`` counts
    the client messages that must be matched, heartbeats excluded.
    """

    open: Open
    close: Close | None = None
    messages_client: int = 0
    messages_server: int = 0
    heartbeats: dict[MessageKey, MessageKey] = field(default_factory=dict, hash=False)
    messages_expected: int = 0

    @property
    def conn(self) -> int:
        return self.open.conn


@dataclass(slots=True)
class _Candidate:
    occurrences: int = 0
    pairs: int = 0
    reply: MessageKey | None = None
    consistent: bool = True


class HeartbeatFinder:
    """Find the heartbeat pairs of one connection while its messages stream past.

    A heartbeat is a client message followed, at least :data:`HEARTBEAT_MIN_REPEATS`
    times, by the same server reply, and never by another one. Memory is bounded: only
    messages up to :data:`HEARTBEAT_MAX_PAYLOAD` bytes are candidates, and at most
    :data:`HEARTBEAT_MAX_CANDIDATES` distinct ones are tracked.
    """

    def __init__(self) -> None:
        self._candidates: dict[MessageKey, _Candidate] = {}
        self._pending: _Candidate | None = None
        self.client_messages = 0
        self.server_messages = 0

    def add(self, message: Message) -> None:
        if message.side is Side.CLIENT:
            self.client_messages += 1
            self._pending = None
            if len(message.payload) > HEARTBEAT_MAX_PAYLOAD:
                return
            key = (message.opcode, message.payload)
            entry = self._candidates.get(key)
            if entry is None:
                if len(self._candidates) >= HEARTBEAT_MAX_CANDIDATES:
                    return
                entry = self._candidates[key] = _Candidate()
            entry.occurrences += 1
            self._pending = entry
            return
        self.server_messages += 1
        entry = self._pending
        if entry is None:
            return
        self._pending = None
        reply = (message.opcode, message.payload)
        if entry.reply is None:
            entry.reply = reply
        elif entry.reply != reply:
            entry.consistent = False
        entry.pairs += 1

    def table(self) -> dict[MessageKey, MessageKey]:
        """Heartbeat request -> reply."""
        return {
            key: c.reply
            for key, c in self._candidates.items()
            if c.consistent and c.reply is not None and c.pairs >= HEARTBEAT_MIN_REPEATS
        }

    def summarise(self, op: Open, close: Close | None) -> RecordedConnection:
        table = self.table()
        heartbeat_messages = sum(self._candidates[k].occurrences for k in table)
        return RecordedConnection(
            open=op,
            close=close,
            messages_client=self.client_messages,
            messages_server=self.server_messages,
            heartbeats=table,
            messages_expected=self.client_messages - heartbeat_messages,
        )


__all__ = [
    "HEARTBEAT_MAX_CANDIDATES",
    "HEARTBEAT_MAX_PAYLOAD",
    "HEARTBEAT_MIN_REPEATS",
    "HeartbeatFinder",
    "MessageKey",
    "RecordedConnection",
]
