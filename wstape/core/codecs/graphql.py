"""GraphQL over WebSocket: graphql-transport-ws (graphql-ws) and the legacy graphql-ws
(subscriptions-transport-ws).

Both send one JSON object per text message, ``{"type": …, "id": …, "payload": …}``; the
decoded value is that object and the kind its ``type``.

``graphql-transport-ws`` (subprotocol of the same name, the graphql-ws library):
``connection_init`` → ``connection_ack``; ``ping`` / ``pong`` either way; the client's
``subscribe`` (``id`` it generates, a UUID by default) is answered by ``next`` …,
``error`` or ``complete`` with that id; the client's ``complete`` stops it.

``graphql-ws`` (subprotocol ``graphql-ws``, Apollo's subscriptions-transport-ws):
``connection_init`` → ``connection_ack`` / ``connection_error``; the server's ``ka``
keep-alive on a timer; ``start`` (client id) → ``data`` … / ``error`` / ``complete``;
``stop``; ``connection_terminate``.

The two share message names (``connection_init``, ``error``, ``complete``) but not the
subprotocol, which is how a connection is told apart; without one, a distinctive message
type in the first messages decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from wstape.core.codecs import jsontext
from wstape.core.codecs.base import (
    Codec,
    Decoded,
    Heartbeat,
    HeartbeatRole,
    Path,
    Scalar,
    registered,
)
from wstape.core.codecs.textutil import (
    by_payload,
    line,
    load_json,
    may_be_container,
    payload_json,
    printable,
    short_json,
    show_id,
    utf8,
)
from wstape.core.model import Message, Opcode, Open, Side

_ID: tuple[Path, ...] = (("id",),)


class _GraphqlCodec(Codec):
    """A JSON ``{"type": …}`` protocol described by tables (the subclasses)."""

    json_root = ()

    types: frozenset[str] = frozenset()
    client_generated: frozenset[str] = frozenset()
    """Client message types whose ``id`` the client made up."""
    server_echoes: frozenset[str] = frozenset()
    """Server message types whose ``id`` is a client's."""
    ends: frozenset[str] = frozenset()
    """Message types (either side) after which their ``id`` is no longer in use."""
    heartbeats: Mapping[str, Heartbeat] = MappingProxyType({})
    distinctive: frozenset[str] = frozenset()
    """Types only this protocol has: a connection without a subprotocol that sends one
    of them early speaks it."""

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        if open_.subprotocol or open_.subprotocols:
            return super().detect(open_, first)
        seen = {message_type(message.payload) for message in first}
        return "connection_init" in seen and bool(seen & self.distinctive)

    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        value = _load(payload)
        if value is None:
            return None
        mtype = value.get("type")
        if not isinstance(mtype, str) or mtype not in self.types:
            return None
        has_id = "id" in value and _is_scalar(value["id"])
        generated = _ID if has_id and side is Side.CLIENT and mtype in self.client_generated else ()
        echoes = _ID if has_id and side is Side.SERVER and mtype in self.server_echoes else ()
        releases = (generated or echoes) if mtype in self.ends else ()
        return Decoded(
            kind=mtype,
            value=value,
            summary=summarize(value),
            generated=generated,
            echoes=echoes,
            releases=releases,
            heartbeat=self.heartbeats.get(mtype),
        )

    def substitute(
        self,
        side: Side,
        opcode: Opcode,
        payload: bytes,
        replacements: Mapping[Path, Scalar],
    ) -> bytes:
        if not replacements or self.decode(side, opcode, payload) is None:
            return payload
        text = payload.decode("utf-8")
        try:
            return jsontext.replace(text, replacements).encode("utf-8")
        except ValueError:  # pragma: no cover - decode parsed it
            return payload


def _message_type(payload: bytes) -> str | None:
    """The ``type`` of a payload that is a JSON object with a string ``type``, else None."""
    if not may_be_container(payload):
        return None
    value = payload_json(payload)
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


message_type = by_payload(_message_type)
""":func:`_message_type`, kept for small payloads (both codecs ask it of each message)."""


def _load(payload: bytes) -> dict[str, Any] | None:
    text = utf8(payload)
    value = None if text is None else load_json(text)
    return value if isinstance(value, dict) else None


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def summarize(value: dict[str, Any]) -> str:
    """One line: the type, the id, and what the payload is about."""
    mtype = value["type"]
    parts = [printable(mtype)]
    if "id" in value:
        parts.append(f"id={show_id(value['id'])}")
    payload = value.get("payload")
    if mtype in ("subscribe", "start") and isinstance(payload, dict):
        query = payload.get("query")
        if isinstance(query, str):
            parts.append(" ".join(query.split()))
        elif "extensions" in payload:  # persisted query: no text, a hash
            parts.append(short_json(payload["extensions"], 60))
        if isinstance(payload.get("variables"), dict) and payload["variables"]:
            parts.append(short_json(payload["variables"], 40))
    elif mtype in ("connection_init", "connection_ack", "ping", "pong") and payload:
        # connection_init often carries credentials: only say which keys it has
        if isinstance(payload, dict):
            parts.append("{" + ",".join(printable(str(k)) for k in payload) + "}")
        else:
            parts.append("(payload)")
    elif mtype == "error" and isinstance(payload, list) and payload:
        first = payload[0]
        message = first.get("message") if isinstance(first, dict) else first
        parts.append(short_json(message, 80))
        if len(payload) > 1:
            parts.append(f"(+{len(payload) - 1} more)")
    elif payload is not None:
        parts.append(short_json(payload, 80))
    return line(" ".join(parts))


@registered
class GraphqlTransportWsCodec(_GraphqlCodec):
    """The graphql-ws library's protocol (``graphql-transport-ws``)."""

    name = "graphql-transport-ws"
    title = "GraphQL over WebSocket (graphql-transport-ws)"
    subprotocols = ("graphql-transport-ws",)
    client_heartbeats = ((Opcode.TEXT, b'{"type":"ping"}', (Opcode.TEXT, b'{"type":"pong"}')),)
    types = frozenset(
        {
            "connection_init",
            "connection_ack",
            "ping",
            "pong",
            "subscribe",
            "next",
            "error",
            "complete",
        }
    )
    client_generated = frozenset({"subscribe", "complete"})
    server_echoes = frozenset({"next", "error", "complete"})
    ends = frozenset({"error", "complete"})
    client_waits_for = MappingProxyType(
        {
            "subscribe": (
                "connection_ack",
                "a graphql-transport-ws server closes the connection with 4401 Unauthorized",
            )
        }
    )
    heartbeats = MappingProxyType(
        {
            # Either side may ping; nothing in a ping says whether a timer sent it.
            "ping": Heartbeat(HeartbeatRole.PING, "graphql"),
            "pong": Heartbeat(HeartbeatRole.PONG, "graphql"),
        }
    )
    distinctive = frozenset({"subscribe", "next", "ping", "pong"})


@registered
class GraphqlWsCodec(_GraphqlCodec):
    """Apollo's legacy subscriptions-transport-ws (subprotocol ``graphql-ws``)."""

    name = "graphql-ws"
    title = "GraphQL over WebSocket (legacy subscriptions-transport-ws)"
    subprotocols = ("graphql-ws",)
    types = frozenset(
        {
            "connection_init",
            "connection_ack",
            "connection_error",
            "connection_terminate",
            "ka",
            "start",
            "data",
            "error",
            "complete",
            "stop",
        }
    )
    client_generated = frozenset({"start", "stop"})
    server_echoes = frozenset({"data", "error", "complete"})
    ends = frozenset({"stop", "error", "complete"})
    heartbeats = MappingProxyType({"ka": Heartbeat(HeartbeatRole.BEAT, "graphql-ws", timer=True)})
    distinctive = frozenset({"start", "data", "ka", "stop", "connection_terminate"})


__all__ = ["GraphqlTransportWsCodec", "GraphqlWsCodec", "summarize"]
