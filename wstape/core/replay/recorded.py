"""What replay knows about a recorded connection before any client connects.

:class:`RecordedBuilder` reads one connection's messages once, in order (the replay
server's index feeds it while streaming the cassette), and makes the
:class:`RecordedConnection`: its protocol codec (chosen from the subprotocol, path and
first messages, or as ``--protocol`` says), its heartbeat plan, and counts, in memory
bounded whatever the connection's length.

:func:`units` turns the recorded messages into the protocol's units (one per message for
most protocols; MQTT packets split over messages are put back together), which is what
the script walks and matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from wstape.core.codecs import CODECS, Codec, Reassembler
from wstape.core.model import Close, Message, Opcode, Open, Side
from wstape.core.replay.heartbeats import (
    NO_HEARTBEATS,
    DeclaredHeartbeat,
    HeartbeatAnalysis,
    HeartbeatPlan,
    MessageKey,
)

FIRST_MESSAGES = 8
"""How many of a connection's first messages a codec sees to recognise its protocol."""
FIRST_MAX_BYTES = 4096
"""Only this much of each of those messages is kept for detection."""


@dataclass(frozen=True)
class RecordedConnection:
    """One recorded connection, as known before replaying it (from one pass of indexing).

    ``messages_expected`` counts the client units that must be matched (heartbeats
    excluded); ``codec`` is the connection's protocol (None: plain messages).
    """

    open: Open
    close: Close | None = None
    messages_client: int = 0
    messages_server: int = 0
    messages_expected: int = 0
    codec: Codec | None = field(default=None, compare=False)
    heartbeats: HeartbeatPlan = field(default=NO_HEARTBEATS, compare=False)
    misfit: str | None = field(default=None, compare=False)
    """Why the ``--protocol`` named does not fit it (REPLAY-PROTOCOL-MISFIT), or None."""

    @property
    def conn(self) -> int:
        return self.open.conn


class RecordedBuilder:
    """Make one :class:`RecordedConnection` from its messages, streamed in order."""

    def __init__(
        self,
        open_: Open,
        *,
        protocol: str = "auto",
        declared: Sequence[DeclaredHeartbeat] = (),
        detect_heartbeats: bool = True,
    ) -> None:
        self.open = open_
        self.protocol = protocol
        self.declared = tuple(declared)
        self.detect_heartbeats = detect_heartbeats
        self.close: Close | None = None
        self.messages_client = 0
        self.messages_server = 0
        self._first: list[Message] | None = []
        self._units: _Units | None = None
        self._analysis: HeartbeatAnalysis | None = None
        self._client_units = 0
        self.codec: Codec | None = None
        self.misfit: str | None = None

    def add(self, message: Message) -> None:
        if message.side is Side.CLIENT:
            self.messages_client += 1
        else:
            self.messages_server += 1
        first = self._first
        if first is not None:
            first.append(message)
            if len(first) < FIRST_MESSAGES:
                return
            self._decide()
            return
        self._feed(message)

    def _decide(self) -> None:
        first = self._first or []
        self._first = None
        sample = [replace(m, payload=m.payload[:FIRST_MAX_BYTES]) for m in first]
        self.codec = CODECS.choose(self.protocol, self.open, sample)
        self.misfit = CODECS.misfit(self.protocol, self.open, sample)
        self._units = _Units(self.codec)
        self._analysis = HeartbeatAnalysis(
            codec=self.codec, declared=self.declared, detect=self.detect_heartbeats
        )
        for message in first:
            self._feed(message)

    def _feed(self, message: Message) -> None:
        assert self._units is not None and self._analysis is not None
        for unit in self._units.feed(message):
            self._analysis.add(unit)
            if unit.side is Side.CLIENT:
                self._client_units += 1

    def finish(self, close: Close | None = None) -> RecordedConnection:
        if close is not None:
            self.close = close
        if self._first is not None:
            self._decide()
        assert self._analysis is not None
        plan = self._analysis.plan()
        return RecordedConnection(
            open=self.open,
            close=self.close,
            messages_client=self.messages_client,
            messages_server=self.messages_server,
            messages_expected=self._client_units - self._counted_heartbeats(plan),
            codec=self.codec,
            heartbeats=plan,
            misfit=self.misfit,
        )

    def _counted_heartbeats(self, plan: HeartbeatPlan) -> int:
        """The client units the script will not match in order (the plan is known only
        at the end, so the analysis counts small units by key)."""
        assert self._analysis is not None
        return self._analysis.client_count(plan)


class _Units:
    """Reassemble one connection's recorded messages into units, per side."""

    def __init__(self, codec: Codec | None) -> None:
        self._reassemblers: dict[Side, Reassembler | None] = {
            side: codec.reassembler(side) if codec is not None else None for side in Side
        }

    def feed(self, message: Message) -> list[Message]:
        reassembler = self._reassemblers[message.side]
        if reassembler is None:
            return [message]
        return [
            replace(message, opcode=opcode, payload=payload)
            for opcode, payload in reassembler.feed(message.opcode, message.payload)
        ]


def units(events: Iterable[Message | Close], codec: Codec | None) -> Iterator[Message | Close]:
    """The recorded events with each message turned into its protocol units (in order)."""
    if codec is None or all(codec.reassembler(side) is None for side in Side):
        return iter(events)  # one unit per message: no generator in between
    return _split(events, _Units(codec))


def _split(events: Iterable[Message | Close], splitter: _Units) -> Iterator[Message | Close]:
    for event in events:
        if isinstance(event, Close):
            yield event
        else:
            yield from splitter.feed(event)


def live_units(codec: Codec | None) -> LiveUnits:
    """A splitter for the live client's messages, as :func:`units` splits recorded ones."""
    return LiveUnits(codec.reassembler(Side.CLIENT) if codec is not None else None)


class LiveUnits:
    """The live client's messages as protocol units."""

    def __init__(self, reassembler: Reassembler | None) -> None:
        self._reassembler = reassembler
        self.whole = reassembler is None
        """Every message is one unit as it is (no protocol splits or joins them)."""

    def feed(self, opcode: Opcode, payload: bytes) -> list[tuple[Opcode, bytes]]:
        if self._reassembler is None:
            return [(opcode, payload)]
        return self._reassembler.feed(opcode, payload)

    def pending(self) -> int:
        """Bytes held back for a unit the client has not finished."""
        return 0 if self._reassembler is None else self._reassembler.pending()

    def flush(self) -> list[tuple[Opcode, bytes]]:
        """The unit the client left unfinished, as it is (:meth:`Reassembler.flush`)."""
        return [] if self._reassembler is None else self._reassembler.flush()


__all__ = [
    "FIRST_MESSAGES",
    "LiveUnits",
    "MessageKey",
    "RecordedBuilder",
    "RecordedConnection",
    "live_units",
    "units",
]
