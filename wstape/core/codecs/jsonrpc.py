"""JSON-RPC 2.0 over WebSocket (subprotocol ``jsonrpc`` / ``json-rpc``, or detected by
``"jsonrpc": "2.0"`` in the first messages).

Each message is one JSON-RPC object or a batch (an array of them):

- a request ``{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}``,
- a notification (a request without ``id``), which gets no answer,
- a response ``{"jsonrpc": "2.0", "result": 19, "id": 1}`` or an error response
  ``{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1}``.

The decoded value is the JSON itself; the kind is ``request``, ``notification``,
``response``, ``error`` or ``batch``. Either side may send requests (rpc-websockets'
server sends notifications for subscribed events).

Correlation: a client's request id is its own (incrementing integers or UUIDs), path
``("id",)`` or ``(i, "id")`` in a batch; the server's responses echo it at the same paths,
and end its use (the client may then use the id again).
Ids the server makes up for its own requests come back in the client's responses
unchanged, so they are neither generated nor echoed. No heartbeats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from wstape.core.codecs import jsontext
from wstape.core.codecs.base import Codec, Decoded, Path, Scalar, registered
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


def classify(obj: Any) -> str | None:
    """The kind of one JSON-RPC 2.0 object, or None when it is not one."""
    if not isinstance(obj, dict) or obj.get("jsonrpc") != "2.0":
        return None
    if "method" in obj:
        if not isinstance(obj["method"], str):
            return None
        if "params" in obj and not isinstance(obj["params"], list | dict):
            return None
        if "id" in obj:
            return "request" if _valid_id(obj["id"]) else None
        return "notification"
    if "id" not in obj or not _valid_id(obj["id"]):
        return None
    if "result" in obj and "error" not in obj:
        return "response"
    if "error" in obj and "result" not in obj:
        return "error"
    return None


def _valid_id(value: object) -> bool:
    return value is None or isinstance(value, str) or _is_number(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _correlates(obj: dict[str, Any]) -> bool:
    """Whether this object carries an id worth correlating (a null id does not)."""
    return obj.get("id") is not None


def _one(obj: dict[str, Any], kind: str) -> str:
    ident = show_id(obj["id"]) if "id" in obj else ""
    if kind in ("request", "notification"):
        parts = [kind, ident, printable(obj["method"])]
        if "params" in obj:
            parts.append(short_json(obj["params"], 60))
        return " ".join(p for p in parts if p)
    if kind == "response":
        return f"response {ident} {short_json(obj['result'], 60)}"
    error = obj["error"]
    if isinstance(error, dict):
        code = short_json(error.get("code"), 12)
        message = error.get("message")
        text = printable(message) if isinstance(message, str) else short_json(message, 40)
        return f"error {ident} {code} {text}"
    return f"error {ident} {short_json(error, 60)}"


def summarize(value: Any) -> str:
    """One line for a decoded message or batch."""
    if isinstance(value, list):
        items = []
        for obj in value:
            kind = classify(obj)
            if kind is None:
                items.append("invalid")
            elif kind in ("request", "notification"):
                items.append(" ".join(filter(None, [kind, _id_of(obj), printable(obj["method"])])))
            else:
                items.append(f"{kind} {_id_of(obj)}")
        return line(f"batch of {len(value)}: " + ", ".join(items))
    kind = classify(value)
    return line(_one(value, kind) if kind else "invalid")


def _id_of(obj: dict[str, Any]) -> str:
    return show_id(obj["id"]) if "id" in obj else ""


def _says_jsonrpc(payload: bytes) -> bool:
    """Whether a payload is a JSON object with ``"jsonrpc": "2.0"``, or an array holding one."""
    if not may_be_container(payload):
        return False
    value = payload_json(payload)
    objects = value if isinstance(value, list) else [value]
    return any(isinstance(o, dict) and o.get("jsonrpc") == "2.0" for o in objects)


says_jsonrpc = by_payload(_says_jsonrpc)
""":func:`_says_jsonrpc`, kept for small payloads."""


@registered
class JsonRpcCodec(Codec):
    """JSON-RPC 2.0: requests, notifications, responses and batches."""

    name = "jsonrpc"
    title = "JSON-RPC 2.0"
    subprotocols = ("jsonrpc", "json-rpc")
    json_root = ()
    client_replies = MappingProxyType(
        {"response": frozenset({"request", "batch"}), "error": frozenset({"request", "batch"})}
    )
    """The client's answer to a request of the server's (or to one in a batch)."""

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        if super().detect(open_, first):
            return True
        return any(map(says_jsonrpc, (message.payload for message in first)))

    def answers(self, reply: Decoded, server: Decoded) -> bool:
        if not super().answers(reply, server):
            return False
        requests = server.value if server.kind == "batch" else [server.value]
        ident = reply.value.get("id")
        return any(isinstance(r, dict) and r.get("id") == ident for r in requests)

    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        value = _load(payload)
        paths: list[Path] = []
        wanted = ("request",) if side is Side.CLIENT else ("response", "error")
        if isinstance(value, list):
            kinds = [classify(obj) for obj in value]
            if not any(kinds):
                return None
            kind = "batch"
            for i, (obj, k) in enumerate(zip(value, kinds, strict=True)):
                if k in wanted and _correlates(obj):
                    paths.append((i, "id"))
        else:
            found = classify(value)
            if found is None:
                return None
            kind = found
            if kind in wanted and _correlates(value):
                paths.append(("id",))
        return Decoded(
            kind=kind,
            value=value,
            summary=summarize(value),
            generated=tuple(paths) if side is Side.CLIENT else (),
            echoes=tuple(paths) if side is Side.SERVER else (),
            releases=tuple(paths) if side is Side.SERVER else (),  # a response ends it
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
        try:
            return jsontext.replace(payload.decode("utf-8"), replacements).encode("utf-8")
        except ValueError:  # pragma: no cover - decode parsed it
            return payload


def _load(payload: bytes) -> Any:
    text = utf8(payload)
    return None if text is None else load_json(text)


__all__ = ["JsonRpcCodec", "classify", "summarize"]
