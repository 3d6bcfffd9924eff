"""A cassette seen through its protocol codecs, for ``show``, ``view``, ``diff`` and ``check``.

``--protocol`` means what it means for ``wstape replay``: ``auto`` recognises each
connection's protocol from its handshake and first messages (:func:`protocol_view` reads
them first, so the decoded view is known before the first line is printed), ``none``
shows plain messages, a codec name forces one. A message the codec cannot read is shown
plain.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from wstape.core.codecs import CODECS, Codec, Decoded, Reassembler
from wstape.core.model import Message, Open, Record, Side
from wstape.core.replay.recorded import FIRST_MESSAGES


@dataclass
class ProtocolView:
    """Each connection's codec (None: plain), and the decoded view of its messages.

    :meth:`line` is for reading a cassette in order (``show``): it puts units split over
    messages back together, as replay does. The other methods look at one message alone.
    """

    protocol: str = "none"
    codecs: dict[int, Codec | None] = field(default_factory=dict)
    _reassemblers: dict[tuple[int, Side], Reassembler | None] = field(default_factory=dict)

    def line(self, message: Message) -> str | None:
        """The decoded view of ``message`` read in order: the units it completes (``MQTT
        CONNECT ...; SUBSCRIBE ...``), ``(part of a packet)`` when it completes none, None
        for a plain message."""
        codec = self.codecs.get(message.conn)
        if codec is None:
            return None
        key = (message.conn, message.side)
        if key not in self._reassemblers:
            self._reassemblers[key] = codec.reassembler(message.side)
        reassembler = self._reassemblers[key]
        if reassembler is None:
            return self.summary(message)
        pieces = reassembler.feed(message.opcode, message.payload)
        if not pieces:
            held = reassembler.pending()
            return f"{codec.name} (part of a unit, {held} byte{'s' if held != 1 else ''} so far)"
        shown = []
        for opcode, payload in pieces:
            decoded = codec.decode(message.side, opcode, payload)
            shown.append(decoded.summary if decoded is not None else f"({len(payload)} bytes)")
        return f"{codec.name} " + "; ".join(shown)

    def codec(self, conn: int) -> Codec | None:
        return self.codecs.get(conn)

    def decode(self, message: Message) -> Decoded | None:
        codec = self.codecs.get(message.conn)
        if codec is None:
            return None
        return codec.decode(message.side, message.opcode, message.payload)

    def summary(self, message: Message) -> str | None:
        """``MQTT SUBSCRIBE id=17 a/b (qos 1)``-style line, or None for a plain message."""
        codec = self.codecs.get(message.conn)
        if codec is None:
            return None
        return codec.line(message.side, message.opcode, message.payload)

    def value(self, message: Message) -> Any:
        """The decoded value (what the codec compares), or None when it does not decode."""
        decoded = self.decode(message)
        return None if decoded is None else decoded.value

    def name(self, conn: int) -> str | None:
        codec = self.codecs.get(conn)
        return codec.name if codec is not None else None


def protocol_view(
    records: Iterable[Record], protocol: str, *, limit: int | None = None
) -> ProtocolView:
    """Read ``records`` far enough to decide each connection's codec.

    With ``limit`` only that many records are looked at (``show --limit`` prints no more).
    ``protocol`` ``none`` reads nothing. Raises what reading the records raises.
    """
    view = ProtocolView(protocol)
    if protocol == "none":
        return view
    opens: dict[int, Open] = {}
    firsts: dict[int, list[Message]] = {}
    for i, record in enumerate(records):
        if limit is not None and i >= limit:
            break
        if isinstance(record, Open):
            opens[record.conn] = record
            firsts[record.conn] = []
        elif isinstance(record, Message):
            first = firsts.get(record.conn)
            if first is not None and len(first) < FIRST_MESSAGES:
                first.append(record)
    for conn, op in opens.items():
        view.codecs[conn] = CODECS.choose(protocol, op, firsts[conn])
    return view


__all__ = ["ProtocolView", "protocol_view"]
