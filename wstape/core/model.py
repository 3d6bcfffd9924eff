"""The data model of a recorded WebSocket session.

Everything here is a frozen dataclass with no I/O. A cassette on disk is a header
followed by records (:class:`Open`, :class:`Message`, :class:`Close`, :class:`Note`), each
tagged with the connection id it belongs to. The ``cassettes`` layer turns bytes into these
objects and back; ``replay`` and the rules only ever see these.

Payloads are bytes plus an opcode, never decoded text: a text message that is not valid
UTF-8 must survive a round trip so the rules can report it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from enum import StrEnum

Headers = tuple[tuple[bytes, bytes], ...]


class Side(StrEnum):
    """Who sent a message or started a close."""

    CLIENT = "client"
    SERVER = "server"


class Opcode(StrEnum):
    """The type of a data message (RFC 6455 §5.6)."""

    TEXT = "text"
    BINARY = "binary"


@dataclass(frozen=True)
class Header:
    """Record 0 of every cassette."""

    version: int
    creator: str
    started_at: float
    """Wall-clock time (seconds since the epoch, UTC) when recording started."""


@dataclass(frozen=True)
class TlsInfo:
    """TLS facts of the client side of a recorded connection."""

    version: str | None = None
    """Negotiated protocol, e.g. ``TLSv1.3``."""
    sni: str | None = None
    alpn: str | None = None


@dataclass(frozen=True)
class Open:
    """A WebSocket upgrade: the client's request and the server's answer.

    A refused upgrade (status other than 101) is an ``Open`` with that status and body, and
    no messages or close follow it.
    """

    conn: int
    started_at: float
    """Wall-clock time of the upgrade (epoch seconds); message times are offsets from it."""
    method: str
    scheme: str
    """``ws`` or ``wss``."""
    host: str
    port: int
    target: str
    """Path plus query, as sent in the request line."""
    http_version: str
    request_headers: Headers
    status: int
    response_headers: Headers
    subprotocols: tuple[str, ...] = ()
    """Subprotocols the client offered, in order."""
    extensions: tuple[str, ...] = ()
    """Extensions the client offered (each offer as sent, e.g. ``permessage-deflate``)."""
    subprotocol: str | None = None
    """The subprotocol the server chose."""
    client: str | None = None
    """Client address as ``host:port``, when known."""
    tls: TlsInfo | None = None
    reason: str = ""
    """HTTP reason phrase of the response."""
    body: bytes = b""
    """Response body of a refused upgrade."""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    @property
    def url(self) -> str:
        default = 443 if self.scheme == "wss" else 80
        hostport = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host and not self.host.startswith("["):
            hostport = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{self.scheme}://{hostport}{self.target}"

    @property
    def accepted(self) -> bool:
        return self.status == 101

    def request_header(self, name: str) -> str | None:
        """The first request header called ``name`` (case-insensitive), decoded."""
        return _get_header(self.request_headers, name)

    def response_header(self, name: str) -> str | None:
        return _get_header(self.response_headers, name)


@dataclass(frozen=True)
class Message:
    """One complete data message (fragments already reassembled)."""

    conn: int
    t: float
    """Seconds since the connection's ``Open.started_at``."""
    side: Side
    opcode: Opcode
    payload: bytes

    @property
    def size(self) -> int:
        return len(self.payload)

    def text(self) -> str | None:
        """The payload decoded as UTF-8, or None for binary or invalid text."""
        if self.opcode is not Opcode.TEXT:
            return None
        try:
            return self.payload.decode("utf-8")
        except UnicodeDecodeError:
            return None


@dataclass(frozen=True)
class Close:
    """How a connection ended.

    ``code`` is what the side that did not close observed: 1005 for a Close frame without a
    code, 1006 for a connection dropped with no Close frame. Those codes are never on the
    wire, so ``on_wire`` is False for them. ``by`` is None when nobody closed (recording
    stopped while the connection was open).
    """

    conn: int
    t: float
    by: Side | None
    code: int | None
    reason: str = ""
    on_wire: bool = True


@dataclass(frozen=True)
class Note:
    """Free text attached to the cassette or to a connection."""

    conn: int | None
    text: str
    t: float | None = None


Record = Open | Message | Close | Note


@dataclass
class ConnectionSummary:
    """Running totals for one connection, built while streaming a cassette."""

    open: Open
    messages_client: int = 0
    messages_server: int = 0
    bytes_client: int = 0
    bytes_server: int = 0
    last_t: float = 0.0
    close: Close | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, record: Record) -> None:
        if isinstance(record, Message):
            if record.side is Side.CLIENT:
                self.messages_client += 1
                self.bytes_client += record.size
            else:
                self.messages_server += 1
                self.bytes_server += record.size
            self.last_t = max(self.last_t, record.t)
        elif isinstance(record, Close):
            self.close = record
            self.last_t = max(self.last_t, record.t)
        elif isinstance(record, Note):
            self.notes.append(record.text)

    @property
    def duration(self) -> float:
        return self.last_t


def decode_header_value(value: bytes) -> str:
    """Header bytes as text: UTF-8 when valid, else Latin-1 (lossless either way)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def headers_as_text(headers: Headers) -> list[list[str]]:
    return [[decode_header_value(k), decode_header_value(v)] for k, v in headers]


def _get_header(headers: Headers, name: str) -> str | None:
    wanted = name.lower().encode("ascii")
    n = len(wanted)
    for k, v in headers:
        if len(k) == n and k.lower() == wanted:
            return decode_header_value(v)
    return None


def split_header_list(value: str | None) -> tuple[str, ...]:
    """Split a comma-separated header value (``a, b,c``) into stripped items."""
    if not value:
        return ()
    return tuple(item.strip() for item in value.split(",") if item.strip())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
