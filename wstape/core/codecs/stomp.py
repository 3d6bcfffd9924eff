"""STOMP 1.0 / 1.1 / 1.2 over WebSocket (subprotocols ``v12.stomp``, ``v11.stomp``,
``v10.stomp``, ``stomp``).

A frame is ``COMMAND EOL (name:value EOL)* EOL body NUL`` where EOL is ``\\n`` or
``\\r\\n``. The body ends at the first NUL, or after ``content-length`` bytes when that
header is there (the body may then hold NULs). Header names and values escape ``\\r``,
``\\n``, ``:`` and ``\\`` as ``\\r \\n \\c \\\\`` except in CONNECT and CONNECTED
frames; an undefined escape is a malformed frame. When a header repeats, the first one
counts. A bare EOL between frames is a heart-beat, sent on a timer by either side.

One WebSocket message usually holds one frame (stompjs) but may hold several, heart-beats
after a frame, or part of a frame (stompjs' ``splitLargeFrames``): the
:class:`StompReassembler` cuts the stream into frames and heart-beats.

Decoded value: ``{"command": "SEND", "headers": {"destination": "/queue/a"},
"body": "hello"}``, the body a str when it is UTF-8 and bytes otherwise; a heart-beat is
``{"heart-beat": True}``, kind ``heart-beat``.

Correlation: the client makes up ``receipt`` (any frame), the ``id`` of SUBSCRIBE and
UNSUBSCRIBE, and ``transaction`` names; the server echoes them in RECEIPT and ERROR
``receipt-id`` and MESSAGE ``subscription``. A receipt is in use until its RECEIPT (or
ERROR), a subscription id until UNSUBSCRIBE, a transaction until COMMIT or ABORT. Server
values such as ``message-id``, ``ack`` or ``session`` are the server's own and stay as
recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from wstape.core.codecs import jsontext
from wstape.core.codecs.base import (
    Codec,
    Decoded,
    Heartbeat,
    HeartbeatRole,
    Path,
    Reassembler,
    Scalar,
    registered,
)
from wstape.core.codecs.textutil import line, load_json, printable, short_json, utf8
from wstape.core.model import Message, Opcode, Open, Side

CLIENT_COMMANDS = frozenset(
    {
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
    }
)
SERVER_COMMANDS = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})
COMMANDS = CLIENT_COMMANDS | SERVER_COMMANDS
_RAW_HEADERS = frozenset({"CONNECT", "CONNECTED"})
"""Frames whose headers are not escaped (STOMP 1.2, "Value Encoding")."""
_MAX_COMMAND = max(len(c) for c in COMMANDS)
_ENDS = {"UNSUBSCRIBE": "id", "COMMIT": "transaction", "ABORT": "transaction"}
"""Client frames that end the use of a value they carry (the header's name)."""

HEARTBEAT = Heartbeat(HeartbeatRole.BEAT, "stomp", timer=True)
_UNESCAPE = {"r": "\r", "n": "\n", "c": ":", "\\": "\\"}
_ESCAPE = {"\r": "\\r", "\n": "\\n", ":": "\\c", "\\": "\\\\"}


class Malformed(ValueError):
    """Bytes that are not one STOMP frame."""


@dataclass(frozen=True)
class Frame:
    """A parsed frame, with where each header's value is in the bytes."""

    command: str
    headers: dict[str, str]
    body: bytes
    value_spans: dict[str, tuple[int, int]]
    """Byte offsets of the value of each header's first occurrence."""
    body_at: int = 0
    """Byte offset of the body."""


def unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _UNESCAPE:
                raise Malformed(f"undefined escape in header {text!r}")
            out.append(_UNESCAPE[text[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape(text: str) -> str:
    return "".join(_ESCAPE.get(ch, ch) for ch in text)


def _line_end(data: bytes, pos: int) -> tuple[int, int] | None:
    """``(end of line content, start of next line)`` for the line at ``pos``."""
    nl = data.find(b"\n", pos)
    if nl < 0:
        return None
    return (nl - 1 if nl > pos and data[nl - 1] == 0x0D else nl), nl + 1


def parse_frame(data: bytes) -> Frame:
    """``data`` as one frame (EOLs after its NUL allowed); raises :class:`Malformed`."""
    first = _line_end(data, 0)
    if first is None:
        raise Malformed("no command line")
    command = data[: first[0]].decode("latin-1")
    if command not in COMMANDS:
        raise Malformed(f"unknown command {printable(command)!r}")
    raw = command in _RAW_HEADERS
    headers: dict[str, str] = {}
    spans: dict[str, tuple[int, int]] = {}
    pos = first[1]
    while True:
        bounds = _line_end(data, pos)
        if bounds is None:
            raise Malformed("headers not ended by an empty line")
        end, after = bounds
        if end == pos:
            pos = after
            break
        colon = data.find(b":", pos, end)
        if colon < 0:
            raise Malformed("header line without ':'")
        try:
            name = data[pos:colon].decode("utf-8")
            value = data[colon + 1 : end].decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("header is not UTF-8") from None
        if not raw:
            name, value = unescape(name), unescape(value)
        if name not in headers:
            headers[name] = value
            spans[name] = (colon + 1, end)
        pos = after
    length = headers.get("content-length")
    if length is not None:
        if not length.isascii() or not length.isdigit():
            raise Malformed(f"content-length {length!r}")
        body_end = pos + int(length)
        if body_end >= len(data) or data[body_end] != 0:
            raise Malformed("body not followed by NUL at content-length")
    else:
        body_end = data.find(b"\0", pos)
        if body_end < 0:
            raise Malformed("frame not ended by NUL")
    if data[body_end + 1 :].strip(b"\r\n"):
        raise Malformed("bytes after the frame")
    return Frame(command, headers, data[pos:body_end], spans, pos)


def _is_heartbeat(data: bytes) -> bool:
    return bool(data) and not data.strip(b"\r\n") and b"\n" in data


def summarize(value: Mapping[str, Any]) -> str:
    """One line: command, destination, the correlating headers, body size."""
    if value.get("heart-beat"):
        return "heart-beat"
    command, headers, body = value["command"], value["headers"], value["body"]
    parts = [command]
    if command in ("CONNECT", "STOMP"):
        for key in ("accept-version", "host", "login", "heart-beat"):
            if key in headers:
                parts.append(f"{key}={printable(headers[key])}")
        if "passcode" in headers:
            parts.append("passcode=present")
    elif command == "CONNECTED":
        for key in ("version", "heart-beat", "session", "server"):
            if key in headers:
                parts.append(f"{key}={printable(headers[key])}")
    else:
        if "id" in headers and command in ("SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK"):
            parts.append(f"id={printable(headers['id'])}")
        if "destination" in headers:
            parts.append(printable(headers["destination"]))
        for key in ("subscription", "transaction", "receipt", "receipt-id"):
            if key in headers:
                parts.append(f"{key}={printable(headers[key])}")
        if command == "ERROR" and "message" in headers:
            parts.append(short_json(headers["message"], 60))
    if body:
        size = len(body.encode("utf-8") if isinstance(body, str) else body)
        parts.append(f"({size} byte{'' if size == 1 else 's'})")
    return line(" ".join(parts))


class StompReassembler(Reassembler):
    """Frames and heart-beats from the messages of one direction."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._opcode = Opcode.TEXT

    def pending(self) -> int:
        return len(self._buf)

    def flush(self) -> list[tuple[Opcode, bytes]]:
        if not self._buf:
            return []
        held = bytes(self._buf)
        self._buf.clear()
        return [(self._opcode, held)]

    def feed(self, opcode: Opcode, payload: bytes) -> list[tuple[Opcode, bytes]]:
        if not self._buf:
            self._opcode = opcode
        self._buf += payload
        out: list[tuple[Opcode, bytes]] = []
        buf = self._buf
        pos = 0
        while pos < len(buf):
            size = self._unit(buf, pos)
            if size == 0:
                if len(buf) - pos > self.max_buffer:
                    size = len(buf) - pos
                else:
                    break
            out.append((self._opcode, bytes(buf[pos : pos + size])))
            pos += size
            self._opcode = opcode
        del buf[:pos]
        return out

    def _unit(self, buf: bytearray, pos: int) -> int:
        """Length of the frame or heart-beat at ``pos``; 0 when more bytes are needed."""
        if buf[pos] == 0x0A:
            return 1
        if buf[pos] == 0x0D:
            if pos + 1 >= len(buf):
                return 0
            return 2 if buf[pos + 1] == 0x0A else 1  # a stray CR: a unit of its own
        first = _line_end(bytes(buf[pos : pos + _MAX_COMMAND + 2]), 0)
        if first is None:
            head = buf[pos : pos + _MAX_COMMAND + 1].rstrip(b"\r").decode("latin-1")
            if len(head) <= _MAX_COMMAND and any(c.startswith(head) for c in COMMANDS):
                return 0
            return _junk(buf, pos)
        if buf[pos : pos + first[0]].decode("latin-1") not in COMMANDS:
            return _junk(buf, pos)
        # find the empty line that ends the headers, noting content-length on the way
        line_start = pos + first[1]
        length: int | None = None
        while True:
            nl = buf.find(b"\n", line_start)
            if nl < 0:
                return 0
            content = buf[line_start:nl].rstrip(b"\r")
            if not content:
                body = nl + 1
                break
            if length is None and content.startswith(b"content-length:"):
                digits = content[len(b"content-length:") :]
                length = int(digits) if digits.isdigit() else -1
            line_start = nl + 1
        if length is not None and length >= 0:
            if body + length - pos >= self.max_buffer:
                return len(buf) - pos  # a body that can never be held: a unit as it is
            if len(buf) <= body + length:
                return 0
            return body + length + 1 - pos
        nul = buf.find(b"\0", body)
        return 0 if nul < 0 else nul + 1 - pos


def _body_changes(
    frame: Frame, replacements: Mapping[Path, Scalar]
) -> list[tuple[int, int, bytes]]:
    """The edits that put ``replacements`` (paths in a JSON body) into a frame's body,
    with its ``content-length`` (when it has one) made to fit; none when the body is
    not JSON text or its length cannot be written."""
    text = utf8(frame.body)
    if text is None:
        return []
    try:
        new = jsontext.replace(text, replacements).encode("utf-8")
    except (ValueError, RecursionError):
        return []
    start = frame.body_at
    changes = [(start, start + len(frame.body), new)]
    if "content-length" in frame.headers:
        at = frame.value_spans["content-length"]
        if frame.headers["content-length"] != str(len(frame.body)):
            return []  # (a length parse_frame read otherwise: leave the frame as it is)
        changes.append((*at, str(len(new)).encode("ascii")))
    return changes


def _junk(buf: bytearray, pos: int) -> int:
    """Bytes that cannot start a frame: up to and including the next NUL, else all."""
    nul = buf.find(b"\0", pos)
    return len(buf) - pos if nul < 0 else nul + 1 - pos


@registered
class StompCodec(Codec):
    """STOMP 1.2 (and 1.0 / 1.1 frames)."""

    name = "stomp"
    title = "STOMP 1.2"
    subprotocols = ("v12.stomp", "v11.stomp", "v10.stomp", "stomp")
    client_heartbeats = tuple(
        (opcode, eol, None) for opcode in (Opcode.TEXT, Opcode.BINARY) for eol in (b"\n", b"\r\n")
    )
    client_replies = MappingProxyType(
        {"ACK": frozenset({"MESSAGE"}), "NACK": frozenset({"MESSAGE"})}
    )
    """The client's answer to a MESSAGE of a subscription with ``ack:client`` or
    ``client-individual``."""

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        if super().detect(open_, first):
            return True
        for message in first:
            if message.side is Side.CLIENT:
                return message.payload.startswith(
                    (b"CONNECT\n", b"CONNECT\r\n", b"STOMP\n", b"STOMP\r\n")
                )
        return False

    def reassembler(self, side: Side) -> Reassembler:
        return StompReassembler()

    json_root = ("body",)

    def json_doc(self, decoded: Decoded) -> Any:
        """A body that is JSON text (an object or array), parsed."""
        body = decoded.value.get("body")
        doc = load_json(body) if isinstance(body, str) else None
        return doc if isinstance(doc, dict | list) else None

    def json_parts(self, decoded: Decoded) -> tuple[Any, Any] | None:
        """A JSON body (an object or array), and the command and headers (but
        ``content-length``, which follows the body)."""
        body = self.json_doc(decoded)
        if body is None:
            return None
        value = decoded.value
        headers = {k: v for k, v in value["headers"].items() if k != "content-length"}
        return body, {"command": value["command"], "headers": headers}

    def answers(self, reply: Decoded, server: Decoded) -> bool:
        if not super().answers(reply, server):
            return False
        ours: dict[str, str] = reply.value["headers"]
        theirs: dict[str, str] = server.value["headers"]
        if "id" in ours:  # 1.2: the MESSAGE's ack header
            return theirs.get("ack") == ours["id"]
        if "message-id" in ours:  # 1.0 / 1.1
            return theirs.get("message-id") == ours["message-id"]
        return True

    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        if _is_heartbeat(payload):
            return Decoded("heart-beat", {"heart-beat": True}, "heart-beat", heartbeat=HEARTBEAT)
        try:
            frame = parse_frame(payload)
        except Malformed:
            return None
        text = utf8(frame.body)
        value = {
            "command": frame.command,
            "headers": frame.headers,
            "body": frame.body if text is None else text,
        }
        generated: tuple[Path, ...] = ()
        echoes: tuple[Path, ...] = ()
        releases: tuple[Path, ...] = ()
        headers = frame.headers
        if side is Side.CLIENT:
            names = ["receipt", "transaction"]
            if frame.command in ("SUBSCRIBE", "UNSUBSCRIBE"):
                names.append("id")
            generated = tuple(("headers", n) for n in names if n in headers)
            ended = _ENDS.get(frame.command)
            if ended is not None and ended in headers:
                releases = (("headers", ended),)
        else:
            names = {"RECEIPT": ["receipt-id"], "ERROR": ["receipt-id"]}.get(frame.command, [])
            if frame.command == "MESSAGE":
                names = ["subscription"]
            echoes = tuple(("headers", n) for n in names if n in headers)
            releases = tuple(p for p in echoes if p[1] == "receipt-id")
        return Decoded(
            kind=frame.command,
            value=value,
            summary=summarize(value),
            generated=generated,
            echoes=echoes,
            releases=releases,
        )

    def substitute(
        self,
        side: Side,
        opcode: Opcode,
        payload: bytes,
        replacements: Mapping[Path, Scalar],
    ) -> bytes:
        if not replacements:
            return payload
        try:
            frame = parse_frame(payload)
        except Malformed:
            return payload
        changes: list[tuple[int, int, bytes]] = []
        body = {p[1:]: v for p, v in replacements.items() if len(p) > 1 and p[0] == "body"}
        if body:
            changes += _body_changes(frame, body)
        for path, new in replacements.items():
            if len(path) != 2 or path[0] != "headers" or path[1] not in frame.value_spans:
                continue
            if isinstance(new, bool) or new is None:
                continue
            text = new if isinstance(new, str) else str(new)
            if frame.command not in _RAW_HEADERS:
                text = escape(text)
            elif "\n" in text or "\r" in text:
                continue  # cannot be written in an unescaped header
            changes.append((*frame.value_spans[str(path[1])], text.encode("utf-8")))
        out = bytearray(payload)
        for start, end, new_bytes in sorted(changes, reverse=True):
            out[start:end] = new_bytes
        return bytes(out)


__all__ = [
    "COMMANDS",
    "HEARTBEAT",
    "Frame",
    "Malformed",
    "StompCodec",
    "StompReassembler",
    "escape",
    "parse_frame",
    "summarize",
    "unescape",
]
