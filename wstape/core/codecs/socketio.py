"""Socket.IO v5 over Engine.IO v4 on a WebSocket (and the v3 / Socket.IO v4 variants).

Every WebSocket message is one Engine.IO packet: a type digit and its data.

======  ========  =====================================================================
 digit   type      notes
======  ========  =====================================================================
 ``0``   open      server's handshake, ``0{"sid":…,"pingInterval":…,"pingTimeout":…}``
 ``1``   close
 ``2``   ping      v4: the server's, every pingInterval; v3: the client's. ``2probe``
                   is the upgrade probe (not a heartbeat)
 ``3``   pong      the answer; ``3probe`` answers the probe
 ``4``   message   carries one Socket.IO packet (below), else plain Engine.IO data
 ``5``   upgrade
 ``6``   noop
======  ========  =====================================================================

A Socket.IO packet is
``<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]``: ``40``,
``40/admin,{"token":"1"}``, ``42["chat",{"text":"hi"}]``, ``42/chat,7["x"]``,
``437["ok"]``, ``451-["upload",{"_placeholder":true,"num":0}]``. A BINARY_EVENT or
BINARY_ACK is followed by its attachments as binary messages, decoded here as kind
``attachment`` (they are not joined back into the event).

Decoded value, e.g. ``{"engineio": "message", "socketio": "EVENT", "nsp": "/", "id": 1,
"data": ["chat", {"text": "hi"}]}``; ``id`` and ``data`` appear only when the packet has
them, ``attachments`` only for the binary types.

Correlation: the ack id of a client EVENT / BINARY_EVENT is generated (``("id",)``), and
a server ACK / BINARY_ACK echoes it (and ends its use). Replacing ``("id",)`` rewrites
the digits; replacing a ``("data", …)`` path rewrites that JSON value only.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

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
    NOT_JSON,
    line,
    load_json,
    preview,
    printable,
    short_json,
    utf8,
)
from wstape.core.model import Message, Opcode, Open, Side

ENGINEIO_TYPES = ("open", "close", "ping", "pong", "message", "upgrade", "noop")
SOCKETIO_TYPES = (
    "CONNECT",
    "DISCONNECT",
    "EVENT",
    "ACK",
    "CONNECT_ERROR",
    "BINARY_EVENT",
    "BINARY_ACK",
)
_DIGITS = frozenset("0123456789")
_MAX_ID_DIGITS = 16
"""Longer ack ids are not a number JavaScript's ``Number`` keeps exact: not Socket.IO."""

_PING = Heartbeat(HeartbeatRole.PING, "engineio", timer=True)
_CLIENT_PING = Heartbeat(HeartbeatRole.PING, "engineio")
_PONG = Heartbeat(HeartbeatRole.PONG, "engineio")


@dataclass(frozen=True)
class _Packet:
    """One parsed Engine.IO packet, with where its editable parts are in the text."""

    value: dict[str, Any]
    json_start: int | None = None
    """Offset of the JSON payload (``data``) in the text, when there is one."""
    id_span: tuple[int, int] | None = None
    """Offsets of the ack id digits."""


def parse(text: str) -> _Packet | None:
    """The Engine.IO packet ``text`` (one WebSocket text message), or None."""
    if not text:
        return None
    if text.startswith("b4"):  # v3: a binary message as base64 text (``b4AQID``)
        try:
            data = base64.b64decode(text[2:], validate=True)
        except (binascii.Error, ValueError):
            return None
        return _Packet({"engineio": "message", "socketio": "attachment", "data": data})
    if text[0] not in "0123456":
        return None
    etype = ENGINEIO_TYPES[int(text[0])]
    rest = text[1:]
    if etype == "open":
        handshake = load_json(rest)
        if not isinstance(handshake, dict) or not isinstance(handshake.get("sid"), str):
            return None
        return _Packet({"engineio": "open", "data": handshake}, json_start=1)
    if etype == "message":
        packet = _parse_socketio(text, 1)
        if packet is not None:
            return packet
    value: dict[str, Any] = {"engineio": etype}
    if rest:
        value["data"] = rest
    return _Packet(value)


def _parse_socketio(text: str, pos: int) -> _Packet | None:
    """The Socket.IO packet at ``text[pos:]`` (as socket.io-parser reads it), or None."""
    n = len(text)
    if pos >= n or text[pos] not in "0123456":
        return None
    stype = SOCKETIO_TYPES[int(text[pos])]
    pos += 1
    value: dict[str, Any] = {"engineio": "message", "socketio": stype}
    if stype in ("BINARY_EVENT", "BINARY_ACK"):
        dash = text.find("-", pos)
        count = text[pos:dash]
        if dash < 0 or not count or not set(count) <= _DIGITS or len(count) > _MAX_ID_DIGITS:
            return None
        value["attachments"] = int(count)
        pos = dash + 1
    nsp = "/"
    if pos < n and text[pos] == "/":
        comma = text.find(",", pos)
        end = n if comma < 0 else comma
        nsp = text[pos:end]
        pos = n if comma < 0 else comma + 1
    value["nsp"] = nsp
    id_span = None
    start = pos
    while pos < n and text[pos] in _DIGITS:
        pos += 1
    if pos > start:
        if pos - start > _MAX_ID_DIGITS:
            return None
        value["id"] = int(text[start:pos])
        id_span = (start, pos)
    json_start = None
    if pos < n:
        data = load_json(text[pos:])
        if data is NOT_JSON:
            return None
        value["data"] = data
        json_start = pos
    if not _payload_valid(stype, value):
        return None
    return _Packet(value, json_start=json_start, id_span=id_span)


def _payload_valid(stype: str, value: dict[str, Any]) -> bool:
    """socket.io-parser's ``isPayloadValid`` (an absent payload is valid only where it
    may be absent)."""
    has = "data" in value
    data = value.get("data")
    if stype == "CONNECT":
        return not has or isinstance(data, dict)
    if stype == "DISCONNECT":
        return not has
    if stype == "CONNECT_ERROR":
        return has and isinstance(data, str | dict)
    if stype in ("EVENT", "BINARY_EVENT"):
        if not (isinstance(data, list) and data):
            return False
        name = data[0]
        return isinstance(name, str) or (isinstance(name, int | float) and type(name) is not bool)
    return isinstance(data, list)  # ACK, BINARY_ACK


def summarize(value: dict[str, Any]) -> str:
    """One line for a decoded packet."""
    stype = value.get("socketio")
    if stype is None:
        etype = str(value["engineio"])
        if etype == "open":
            hs = value["data"]
            parts = [f"open sid={printable(str(hs.get('sid')))}"]
            for key in ("pingInterval", "pingTimeout"):
                if key in hs:
                    parts.append(f"{key}={short_json(hs[key], 20)}")
            return line(" ".join(parts))
        if "data" in value:
            return line(f"{etype} {short_json(value['data'], 80)}")
        return etype
    if stype == "attachment":
        return f"attachment {preview(value['data'])}"
    parts = [stype, printable(value["nsp"])]
    if "id" in value:
        parts.append(f"id={value['id']}")
    data = value.get("data")
    if stype in ("EVENT", "BINARY_EVENT") and isinstance(data, list) and data:
        parts.append(short_json(data[0], 40))
        parts.append(short_json([_placeholder(a) for a in data[1:]], 80))
    elif stype in ("ACK", "BINARY_ACK") and isinstance(data, list):
        parts.append(short_json([_placeholder(a) for a in data], 80))
    elif stype == "CONNECT" and isinstance(data, dict) and set(data) == {"sid"}:
        parts.append(f"sid={printable(str(data['sid']))}")
    elif stype == "CONNECT_ERROR" and isinstance(data, dict) and "message" in data:
        parts.append(short_json(data["message"], 80))
    elif "data" in value:
        parts.append(short_json(data, 80))
    if "attachments" in value:
        count = value["attachments"]
        parts.append(f"(+{count} attachment{'' if count == 1 else 's'})")
    return line(" ".join(parts))


def _placeholder(arg: Any) -> Any:
    """``{"_placeholder":true,"num":0}`` shown as ``<attachment 0>``."""
    if isinstance(arg, dict) and arg.get("_placeholder") is True and "num" in arg:
        return f"<attachment {arg['num']}>"
    return arg


def _heartbeat(side: Side, value: dict[str, Any]) -> Heartbeat | None:
    etype = value.get("engineio")
    if "data" in value or value.get("socketio") is not None:
        return None  # 2probe / 3probe belong to the upgrade, not the heartbeat
    if etype == "ping":
        return _PING if side is Side.SERVER else _CLIENT_PING
    if etype == "pong":
        return _PONG
    return None


@registered
class SocketIOCodec(Codec):
    """Socket.IO v5 / Engine.IO v4 (and v3 heartbeats: client ``2``, server ``3``)."""

    name = "socketio"
    title = "Socket.IO v5 / Engine.IO v4"
    session_query_params = frozenset({"t", "sid"})
    json_root = ("data",)
    client_replies = MappingProxyType({"ACK": frozenset({"EVENT", "BINARY_EVENT"})})
    """The client's answer to a server event with an ack id (a BINARY_ACK is left out:
    its attachments follow it)."""

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        path = open_.path
        if "/socket.io/" in path or path.endswith("/socket.io"):
            return True
        query = open_.query
        # (a key that decodes to EIO is spelled EIO or has a %-escape: only then parse)
        if ("EIO" in query or "%" in query) and any(
            key == "EIO" for key, _ in parse_qsl(query, keep_blank_values=True)
        ):
            return True
        for message in first:
            if message.side is Side.SERVER:
                decoded = self.decode(message.side, message.opcode, message.payload)
                return decoded is not None and decoded.kind == "open"
        return False

    def answers(self, reply: Decoded, server: Decoded) -> bool:
        ours, theirs = reply.value, server.value
        return (
            super().answers(reply, server)
            and ours.get("id") == theirs.get("id")
            and ours.get("nsp") == theirs.get("nsp")
        )

    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        if opcode is Opcode.BINARY:
            value: dict[str, Any] = {
                "engineio": "message",
                "socketio": "attachment",
                "data": payload,
            }
            return Decoded("attachment", value, summarize(value))
        text = utf8(payload)
        packet = None if text is None else parse(text)
        if packet is None:
            return None
        value = packet.value
        stype = value.get("socketio")
        generated: tuple[Path, ...] = ()
        echoes: tuple[Path, ...] = ()
        if "id" in value:
            if side is Side.CLIENT and stype in ("EVENT", "BINARY_EVENT"):
                generated = (("id",),)
            elif side is Side.SERVER and stype in ("ACK", "BINARY_ACK"):
                echoes = (("id",),)  # and the ack ends the id's use
        return Decoded(
            kind=stype or value["engineio"],
            value=value,
            summary=summarize(value),
            generated=generated,
            echoes=echoes,
            releases=echoes,
            heartbeat=_heartbeat(side, value),
        )

    def substitute(
        self,
        side: Side,
        opcode: Opcode,
        payload: bytes,
        replacements: Mapping[Path, Scalar],
    ) -> bytes:
        if opcode is not Opcode.TEXT or not replacements:
            return payload
        text = utf8(payload)
        packet = None if text is None else parse(text)
        if text is None or packet is None:
            return payload
        changes: list[tuple[int, int, str]] = []
        data_paths: dict[Path, Scalar] = {}
        for path, new in replacements.items():
            if path == ("id",) and packet.id_span is not None:
                if isinstance(new, int) and not isinstance(new, bool) and new >= 0:
                    changes.append((*packet.id_span, str(new)))
            elif path[:1] == ("data",) and packet.json_start is not None:
                data_paths[path[1:]] = new
        if data_paths and packet.json_start is not None:
            try:
                changes.extend(jsontext.edits(text, data_paths, packet.json_start))
            except ValueError:  # pragma: no cover - json.loads accepted it
                return payload
        if not changes:
            return payload
        return jsontext.apply_edits(text, changes).encode("utf-8")


__all__ = ["ENGINEIO_TYPES", "SOCKETIO_TYPES", "SocketIOCodec", "parse", "summarize"]
