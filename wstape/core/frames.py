"""WebSocket frames (RFC 6455 §5.2), as data.

The replay server parses client bytes into :class:`Frame` objects here, without I/O, so
the rules can look at every bit the client sent: mask, RSV bits, opcode, FIN and the raw
payload of control frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class OpCode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2). Other values are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


@dataclass(frozen=True)
class Frame:
    """One frame as it was on the wire (payload already unmasked)."""

    opcode: int
    """The raw 4-bit opcode; may be a reserved value."""
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    masked: bool = True

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8


# -- parsing and encoding (RFC 6455 §5.2) ------------------------------------------------

DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
"""Largest frame payload :class:`FrameParser` accepts unless told otherwise."""


@dataclass(frozen=True)
class StreamFailure:
    """What :class:`FrameParser` yields when the bytes cannot be read as frames any more
    (not an exception: the parser never raises on client input). Fail the connection.

    ``code`` is the close code to fail with (1002 protocol error, 1009 message too big) and
    ``reason`` a short text for the Close frame and the report.
    """

    code: int
    reason: str


def apply_mask(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (RFC 6455 §5.3); its own inverse."""
    n = len(data)
    if n == 0:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    # One big-integer XOR is far faster in CPython than a byte loop.
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


class FrameParser:
    """Turn a byte stream into :class:`Frame` objects, without I/O.

    Feed it whatever arrived (any split, one byte at a time or many frames at once);
    :meth:`feed` returns the frames completed so far. It never raises on bad input: a
    frame it cannot read (a 64-bit length with the top bit set, a payload over
    ``max_frame_size``) ends the stream with one :class:`StreamFailure`, after which the
    parser ignores further bytes. Everything else the rules judge (mask, RSV bits,
    reserved opcodes, oversized or fragmented control frames) is parsed and passed on.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._need = 2
        """Buffered bytes needed before parsing is worth trying again."""
        self.failed: StreamFailure | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back because they do not complete a frame yet."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | StreamFailure]:
        if self.failed is not None:
            return []
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                # A big frame arriving in pieces: don't re-copy it on every read.
                return []
            buf = bytes(self._buf)
        else:
            buf = bytes(data)
        out: list[Frame | StreamFailure] = []
        pos = 0
        end = len(buf)
        need = 2
        while True:
            if end - pos < 2:
                need = 2
                break
            b0 = buf[pos]
            b1 = buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - pos < 4:
                    need = 4
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if end - pos < 10:
                    need = 10
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
                if length >> 63:
                    # §5.2: "the most significant bit MUST be 0".
                    self._fail(out, 1002, "64-bit payload length with the top bit set")
                    return out
            if length > self.max_frame_size:
                self._fail(
                    out, 1009, f"frame of {length} bytes is over the limit of {self.max_frame_size}"
                )
                return out
            masked = b1 & 0x80
            start = pos + head + (4 if masked else 0)
            if end - start < length:
                need = start + length - pos
                break
            payload = buf[start : start + length]
            if masked:
                payload = apply_mask(payload, buf[start - 4 : start])
            out.append(
                Frame(
                    opcode=b0 & 0x0F,
                    payload=payload,
                    fin=bool(b0 & 0x80),
                    rsv1=bool(b0 & 0x40),
                    rsv2=bool(b0 & 0x20),
                    rsv3=bool(b0 & 0x10),
                    masked=bool(masked),
                )
            )
            pos = start + length
        self._buf = bytearray(buf[pos:]) if pos < end else bytearray()
        self._need = need
        return out

    def _fail(self, out: list[Frame | StreamFailure], code: int, reason: str) -> None:
        self.failed = StreamFailure(code, reason)
        out.append(self.failed)
        self._buf = bytearray()


def encode_frame(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv1: bool = False,
    rsv2: bool = False,
    rsv3: bool = False,
    mask_key: bytes | None = None,
) -> bytes:
    """One frame as bytes. Servers send unmasked frames (``mask_key=None``, §5.1).

    Nothing is validated, so tests can build frames no library would send (reserved
    opcodes, oversized control frames, RSV bits); a ``mask_key`` must be 4 bytes.
    """
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= (0x10 if rsv3 else 0) | (opcode & 0x0F)
    mask_bit = 0x80 if mask_key is not None else 0
    n = len(payload)
    if n < 126:
        head = bytes((b0, mask_bit | n))
    elif n < 1 << 16:
        head = bytes((b0, mask_bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((b0, mask_bit | 127)) + n.to_bytes(8, "big")
    if mask_key is None:
        return head + payload
    if len(mask_key) != 4:
        raise ValueError("a masking key is 4 bytes")
    return head + mask_key + apply_mask(payload, mask_key)


def encode_close_body(code: int | None, reason: str | bytes = b"") -> bytes:
    """The payload of a Close frame (§5.5.1): empty for ``None``, else the code and reason.

    Any code in 0-65535 is encoded as given (a test client may want to send 1005 on the
    wire); others raise ValueError. A ``str`` reason is encoded as UTF-8, with lone
    surrogates (a decoder's ``surrogateescape`` of invalid bytes) turned back into the
    bytes they stood for, so an invalid reason stays invalid.
    """
    if code is None:
        return b""
    if not 0 <= code <= 0xFFFF:
        raise ValueError(f"a close code is 2 bytes: {code} cannot be encoded")
    return code.to_bytes(2, "big") + (_reason_bytes(reason) if isinstance(reason, str) else reason)


def _reason_bytes(reason: str) -> bytes:
    try:
        return reason.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return reason.encode("utf-8", "surrogatepass")


def split_close_body(body: bytes) -> tuple[int | None, bytes]:
    """The code and raw reason of a Close payload (§5.5.1).

    An empty body has no code (the peer reports 1005). A 1-byte body is malformed and
    also yields ``(None, b"")``; the rules report it (RFC-CLOSE-PAYLOAD).
    """
    if len(body) < 2:
        return None, b""
    return int.from_bytes(body[:2], "big"), body[2:]
