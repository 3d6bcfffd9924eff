"""What a protocol codec tells replay about the messages of one application protocol.

A WebSocket carries an application protocol (Socket.IO, graphql-ws, MQTT, STOMP,
JSON-RPC, ...). Replay needs to know four things about it, and a :class:`Codec` answers
them without I/O, for one protocol each (one module per protocol in this package,
registered in :data:`CODECS` as the matchers are):

1. **What a message means.** :meth:`Codec.decode` turns the payload of one protocol
   *unit* into a :class:`Decoded`: a short ``kind`` (``EVENT``, ``SUBSCRIBE``, ``next``),
   a JSON-like ``value`` that matchers compare and ``show`` prints, and a one-line
   ``summary``. A payload that does not decode is data, never an error: ``decode``
   returns None and replay falls back to the plain matcher. ``decode`` never raises.
2. **Which values change every session.** ``Decoded.generated`` names the paths (into
   ``value``) of fields the *client* makes up per session (graphql operation ids, MQTT
   packet identifiers and client ids, JSON-RPC ids from a UUID generator); they are not
   compared. ``Decoded.echoes`` names the paths of a *server* unit that may carry such a
   value back (graphql ``next.id``, MQTT ``SUBACK.packet_id``, STOMP ``receipt-id``).
   Replay learns ``recorded value -> live value`` from each matched client unit and
   rewrites later server units with :meth:`Codec.substitute` (the correlation).
   While a value is in use, later client units must carry the same live value for it
   and no other recorded value may take that live value; ``Decoded.releases`` names
   the paths of a unit that end a value's use (an MQTT PUBACK, a graphql ``complete``,
   a JSON-RPC response), after which both may be used afresh.
3. **Which messages are heartbeats**, in which direction, and whether a timer sends them
   (``Decoded.heartbeat``): Engine.IO's server ``2`` (a ping on the server's timer) and
   the client's ``3`` (its reply), MQTT ``PINGREQ``/``PINGRESP``, STOMP's bare EOL
   heart-beats, graphql ``ping``/``pong`` and legacy ``ka`` keep-alives.
4. **How units are framed.** Most protocols put one unit in one WebSocket message. Some
   split a unit over several messages or pack several into one (MQTT.js sends each field
   of a packet as its own message): :meth:`Codec.reassembler` returns a stream
   reassembler for one direction, and replay matches units, not messages.

Paths are tuples of keys and indices (``("payload", "id")``, ``(0, "id")``), the same
steps as :func:`wstape.core.matchers.format_path` prints (``$.payload.id``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from wstape.core.model import Message, Opcode, Open, Side

Path = tuple[str | int, ...]
"""A path into a decoded value: dict keys and list indices."""

Scalar = str | int | float | bool | None
"""What a correlated field holds."""


class HeartbeatRole(StrEnum):
    """The part a heartbeat unit plays."""

    PING = "ping"
    """A request the other side must answer (Engine.IO server ``2``, MQTT PINGREQ)."""
    PONG = "pong"
    """The answer to a PING (Engine.IO client ``3``, MQTT PINGRESP)."""
    BEAT = "beat"
    """A one-way keep-alive nobody answers (STOMP EOL heart-beat, legacy graphql ``ka``)."""


@dataclass(frozen=True)
class Heartbeat:
    """A unit that only keeps the connection alive.

    ``timer`` is True when the sender sends it on a clock (every pingInterval,
    heart-beat interval) rather than in answer to something: replay then keeps its
    recorded spacing at every ``--speed``. ``name`` groups a PING with its PONG (one
    protocol may have several kinds).
    """

    role: HeartbeatRole
    name: str
    timer: bool = False


@dataclass(frozen=True)
class Decoded:
    """One protocol unit, understood.

    ``value`` is JSON-like (dict, list, str, int, float, bool, None; bytes only where
    the protocol carries opaque binary, e.g. an MQTT payload) and must be equal for two
    units that mean the same, whatever their encoding details.
    """

    kind: str
    """The unit's type, as the protocol names it (``EVENT``, ``SUBSCRIBE``, ``next``)."""
    value: Any
    summary: str
    """One line for ``show`` / ``view`` / mismatch reports, e.g. ``EVENT / "chat" [...]``."""
    generated: tuple[Path, ...] = ()
    """Client units: paths of values the client makes up per session (not compared)."""
    echoes: tuple[Path, ...] = ()
    """Server units: paths that may carry a value a client generated (substituted)."""
    releases: tuple[Path, ...] = ()
    """Paths (among ``generated`` or ``echoes``) whose value's use ends with this unit:
    the MQTT packet identifier in a PUBACK, the graphql id in a ``complete``, the
    JSON-RPC id in a response. Until then a client value stays bound to its recorded
    one (the same live value each time, no other recorded value may take it)."""
    heartbeat: Heartbeat | None = None


class Reassembler(ABC):
    """Turns the WebSocket messages of one direction into protocol units.

    :meth:`feed` takes one complete WebSocket message and returns the units it
    completed (zero, one or several), each as ``(opcode, payload)``: bytes that
    :meth:`Codec.decode` reads as exactly one unit. Bytes that cannot begin a unit are
    returned as one unit of their own (replay then judges them byte for byte), so the
    stream never stalls and never grows without bound: at most ``max_buffer`` bytes
    are held back.
    """

    max_buffer: int = 16 * 1024 * 1024

    @abstractmethod
    def feed(self, opcode: Opcode, payload: bytes) -> list[tuple[Opcode, bytes]]: ...

    def pending(self) -> int:
        """Bytes held back for an unfinished unit."""
        return 0

    def flush(self) -> list[tuple[Opcode, bytes]]:
        """The bytes held back, as one unit of their own (none held: no unit): the
        client stopped, or went quiet, in the middle of a unit, and what it sent is
        judged as it is (a unit cut short), not lost."""
        return []


class Codec(ABC):
    """One application protocol over WebSocket. Stateless: safe to share."""

    name: str = ""
    """Registry name, used by ``--protocol NAME`` (``socketio``, ``mqtt``, ...)."""
    title: str = ""
    """Human name with version, e.g. ``Socket.IO v5 / Engine.IO v4``."""
    subprotocols: tuple[str, ...] = ()
    """``Sec-WebSocket-Protocol`` values that name this protocol (``mqtt``, ...)."""
    json_root: Path | None = None
    """Where in ``Decoded.value`` the JSON the application wrote is: ``()`` for a
    protocol of JSON messages (JSON-RPC, graphql), ``("data",)`` for a Socket.IO
    packet's payload, ``("body",)`` for a STOMP body that is JSON text; None when units
    carry no JSON of their own. Replay's JSON rules (UUIDs, ``--correlate`` paths) apply
    to it (:meth:`json_doc`), with paths relative to it, and :meth:`substitute` must
    accept paths under it."""
    session_query_params: frozenset[str] = frozenset()
    """Query parameters a client changes every connection (Engine.IO ``t``, ``sid``):
    ignored when a live connection is matched to a recorded one."""
    client_heartbeats: tuple[tuple[Opcode, bytes, tuple[Opcode, bytes] | None], ...] = ()
    """The protocol's own client heartbeats in their plain form, with the reply each
    gets (None: nobody answers): a client sends them on its own clock, so one may come
    that the recording never had (MQTT PINGREQ, graphql ``ping``, STOMP's EOL). Replay
    answers or takes them like recorded ones."""

    client_replies: Mapping[str, frozenset[str]] = {}
    """Client unit kinds that answer a unit of the server's, each with the server unit
    kinds it answers (MQTT PUBREL -> PUBREC, a Socket.IO ACK -> EVENT, a JSON-RPC
    response -> request, a STOMP ACK -> MESSAGE): the client's protocol stack sends one
    when the server's unit arrives, not where the application is in its own flow, so it
    reaches the wire before or after the requests the application sends meanwhile.
    Replay lets a reply and the requests recorded around it come in either order, never
    a reply before the server unit it answers (:meth:`answers`)."""

    client_waits_for: Mapping[str, tuple[str, str]] = {}
    """Client unit kinds a server of this protocol refuses until the client has had one
    of the server's: kind -> (the server unit's kind, what a server does then), e.g.
    graphql-transport-ws ``subscribe`` -> ``connection_ack`` (else 4401 Unauthorized).
    Replay holds the live client to it where the recording did."""

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        """Whether a recorded connection speaks this protocol.

        ``first`` holds its first few messages (both directions, in order). The default
        looks only at the chosen (else the first offered) subprotocol.
        """
        chosen = open_.subprotocol or (open_.subprotocols[0] if open_.subprotocols else None)
        if chosen is None:
            return False  # (most connections: no set of this codec's names made for them)
        return chosen.lower() in {p.lower() for p in self.subprotocols}

    def for_connection(self, open_: Open, first: Sequence[Message]) -> Codec:
        """This codec fixed to what one connection negotiated; the default is ``self``.

        For a protocol whose unit layout depends on the session (MQTT: the protocol level
        in CONNECT decides whether later packets carry properties, and a PUBLISH reads
        differently as 3.1.1 or 5.0). ``first`` is as for :meth:`detect`;
        :meth:`CodecRegistry.detect` returns the bound codec, and a codec chosen by name
        should be bound the same way before use. The result is stateless too.
        """
        return self

    def json_parts(self, decoded: Decoded) -> tuple[Any, Any] | None:
        """The JSON the application wrote in a unit (an object or array) and the rest of
        its decoded value, which must be equal besides; None when the unit carries none.

        ``--match json`` compares the first with the ignored paths (relative to it) and
        the second exactly. The default splits ``decoded.value`` at :attr:`json_root`
        (one key deep; ``()`` is the whole value, with no rest).
        """
        root = self.json_root
        value = decoded.value
        if root is None or len(root) > 1:
            return None
        if not root:
            return (value, None) if isinstance(value, dict | list) else None
        key = root[0]
        if not isinstance(value, dict) or not isinstance(value.get(key), dict | list):
            return None
        return value[key], {k: v for k, v in value.items() if k != key}

    def json_doc(self, decoded: Decoded) -> Any:
        """The JSON document at :attr:`json_root` in a unit, for replay's JSON rules;
        None when there is none. The default is the decoded value there; a codec whose
        JSON is text inside the unit (a STOMP body, an MQTT payload) parses it."""
        value: Any = decoded.value
        if self.json_root is None:
            return None
        for key in self.json_root:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def answers(self, reply: Decoded, server: Decoded) -> bool:
        """Whether the client's ``reply`` (a kind of :attr:`client_replies`) may be the
        answer to the server's unit ``server``. The default: any server unit of a kind it
        answers; a codec compares the ids that tie the two (an MQTT packet identifier)."""
        return server.kind in self.client_replies.get(reply.kind, ())

    def line(self, side: Side, opcode: Opcode, payload: bytes) -> str | None:
        """A unit in one line, as ``wstape show`` prints it (``mqtt PUBREL id=2``), or
        None when it does not decode."""
        decoded = self.decode(side, opcode, payload)
        return None if decoded is None else f"{self.name} {decoded.summary}"

    def reassembler(self, side: Side) -> Reassembler | None:
        """A reassembler for units sent by ``side``, or None when one message is one unit."""
        return None

    @abstractmethod
    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        """The unit ``side`` sent, understood; None when it is not this protocol. Never raises."""

    @abstractmethod
    def substitute(
        self,
        side: Side,
        opcode: Opcode,
        payload: bytes,
        replacements: Mapping[Path, Scalar],
    ) -> bytes:
        """``payload`` with the value at each path replaced, encoded as the protocol does.

        Paths come from ``decode(...).echoes`` or ``.generated``; the result decodes to
        the same value with those fields changed. Bytes not touched by a replacement are
        kept as they were (JSON whitespace, key order, other fields). A payload that does
        not decode, or a path it does not have, is returned unchanged.
        """


@dataclass
class CodecRegistry:
    """Codecs by name, in detection order."""

    codecs: dict[str, Codec] = field(default_factory=dict)

    def register(self, codec: Codec) -> Codec:
        if not codec.name:
            raise ValueError("a codec needs a name")
        self.codecs[codec.name] = codec
        return codec

    def names(self) -> list[str]:
        return list(self.codecs)

    def get(self, name: str) -> Codec:
        """The codec called ``name``; ValueError naming the choices for an unknown one.

        Unbound: for a recorded connection use ``get(name).for_connection(open_, first)``.
        """
        try:
            return self.codecs[name]
        except KeyError:
            raise ValueError(
                f"unknown protocol {name!r}; choose one of auto, none, {', '.join(self.codecs)}"
            ) from None

    def choose(self, protocol: str, open_: Open, first: Sequence[Message]) -> Codec | None:
        """The codec of a recorded connection for ``--protocol``: ``auto`` (detect it),
        ``none``, or a name (bound to the connection). ValueError for an unknown name."""
        if protocol == "none":
            return None
        if protocol == "auto":
            return self.detect(open_, first)
        return self.get(protocol).for_connection(open_, first)

    def misfit(self, protocol: str, open_: Open, first: Sequence[Message]) -> str | None:
        """Why ``--protocol`` names a codec that does not fit a recorded connection, or
        None. It does not fit when its first messages are not that protocol's and are
        another codec's (what auto recognises): naming a protocol auto cannot recognise
        at all is what the option is for, and says nothing against it."""
        if protocol in ("auto", "none") or not first or protocol not in self.codecs:
            return None
        if self.codecs[protocol].detect(open_, first):
            return None
        found = self.detect(open_, first)
        if found is None or found.name == protocol:
            return None
        return (
            f"--protocol {protocol} does not fit: its first messages are not {protocol} "
            f"but {found.name} (what auto recognises); they are taken as {protocol} anyway"
        )

    def detect(self, open_: Open, first: Sequence[Message]) -> Codec | None:
        """The first registered codec that recognises the connection, bound to it
        (:meth:`Codec.for_connection`), or None."""
        for codec in self.codecs.values():
            if codec.detect(open_, first):
                return codec.for_connection(open_, first)
        return None


CODECS = CodecRegistry()
"""Every known codec; each protocol module registers its codec on import."""


_CodecT = TypeVar("_CodecT", bound=Codec)


def registered(cls: type[_CodecT]) -> type[_CodecT]:
    """Class decorator: instantiate the codec and add it to :data:`CODECS`.

    Typed as returning the class itself, so a decorated class can still be
    instantiated with arguments (``MqttCodec(version=5)``) under mypy.
    """
    CODECS.register(cls())
    return cls


__all__ = [
    "CODECS",
    "Codec",
    "CodecRegistry",
    "Decoded",
    "Heartbeat",
    "HeartbeatRole",
    "Path",
    "Reassembler",
    "Scalar",
    "registered",
]
