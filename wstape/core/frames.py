"""WebSocket frames (RFC 6455 §5.2), as data.

The replay server parses client bytes into :class:`Frame` objects here, without I/O, so
the rules can look at every bit the client sent: mask, RSV bits, opcode, FIN and the raw
payload of control frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class OpCode(IntEnum):
    """Frame opcodes (RFC 6455 §5.2). Other values are reserved."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class Frame(NamedTuple):
    """One frame as it was on the wire (payload already unmasked).

    A named tuple rather than a frozen dataclass: the replay server makes one for every
    frame a client sends, and a tuple is built in a quarter of the time.
    """

    opcode: int
    """The raw 4-bit opcode; may be a reserved value."""
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False
    masked: bool = True
    minimal_length: bool = True
    """The payload length was encoded in the fewest bytes (§5.2 "the minimal number of
    bytes MUST be used"); False for, say, 5 bytes announced with a 16-bit length."""

    @property
    def is_control(self) -> bool:
        return self.opcode >= 0x8


# -- parsing and encoding (RFC 6455 §5.2) ------------------------------------------------

DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024
"""Largest frame payload :class:`FrameParser` accepts unless told otherwise."""

DEFAULT_MAX_FRAGMENTS = 100_000
"""Frames one client message may have, unless told otherwise (the replay server's
``--max-fragments``; Autobahn 9.3.1 and 9.4.1 send 65,536)."""

_new_tuple = tuple.__new__

_MASK_CHUNK = 64 * 1024
"""Masked payloads longer than this are unmasked in pieces of this size (a multiple of 4),
so a 64 MiB frame costs a few 64 KiB temporaries instead of several copies of itself."""


@dataclass(frozen=True)
class StreamFailure:
    """What :class:`FrameParser` yields when the bytes cannot be read as frames any more
    (not an exception: the parser never raises on client input). Fail the connection.

    ``code`` is the close code to fail with (1002 protocol error, 1009 message too big),
    ``reason`` a short text for the Close frame, ``rule`` the rule the bytes broke
    (RFC-FRAME-LENGTH for a length with the top bit set, RFC-MESSAGE-TOO-BIG for a frame
    over the limit) and ``length`` the payload length the frame header announced.
    """

    code: int
    reason: str
    rule: str
    length: int = 0


def apply_mask(data: bytes | bytearray | memoryview, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (RFC 6455 §5.3); its own inverse."""
    n = len(data)
    if n == 0:
        return b""
    if n > _MASK_CHUNK:
        buf = bytearray(data)
        _unmask_in_place(buf, 0, n, key)
        return bytes(buf)
    repeated = (key * (n // 4 + 1))[:n]
    # One big-integer XOR is far faster in CPython than a byte loop.
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def _unmask_in_place(buf: bytearray, start: int, n: int, key: bytes) -> None:
    """XOR ``buf[start:start + n]`` with ``key`` in place, :data:`_MASK_CHUNK` at a time."""
    full = int.from_bytes(key * (_MASK_CHUNK // 4), "big")
    end = start + n
    for pos in range(start, end, _MASK_CHUNK):
        size = min(_MASK_CHUNK, end - pos)
        mask = full if size == _MASK_CHUNK else full >> (8 * (_MASK_CHUNK - size))
        piece = int.from_bytes(buf[pos : pos + size], "big") ^ mask
        buf[pos : pos + size] = piece.to_bytes(size, "big")


class FrameParser:
    """Turn a byte stream into :class:`Frame` objects, without I/O.

    Give it whatever arrived (any split, one byte at a time or many frames at once) with
    :meth:`receive` and take complete frames one at a time with :meth:`next_frame`, or do
    both with :meth:`feed`. It never raises on bad input: a frame it cannot read (a
    64-bit length with the top bit set, a payload over ``max_frame_size``) ends the
    stream with one :class:`StreamFailure`, after which the parser ignores further bytes.
    Everything else the rules judge (mask, RSV bits, reserved opcodes, oversized or
    fragmented control frames, a length not in its minimal form) is parsed and passed on.

    Memory: the bytes not parsed yet, in one buffer; a completed frame's payload is
    unmasked in that buffer and copied out once.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.max_frame_size = max_frame_size
        self._buf = bytearray()
        self._pos = 0
        """Where the unparsed bytes start in ``_buf``."""
        self._need = 2
        """Unparsed bytes needed before parsing is worth trying again."""
        self.failed: StreamFailure | None = None

    @property
    def buffered(self) -> int:
        """Bytes held back: not parsed yet, or not completing a frame yet."""
        return len(self._buf) - self._pos

    def receive(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data`` (a copy: a view may change once this returns); then take the
        frames it completed with :meth:`next_frame`."""
        if self.failed is not None or not data:
            return
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame | StreamFailure]:
        """:meth:`receive` ``data`` and return every frame completed so far."""
        self.receive(data)
        out: list[Frame | StreamFailure] = []
        while (item := self.next_frame()) is not None:
            out.append(item)
            if isinstance(item, StreamFailure):
                break
        return out

    def next_frame(self) -> Frame | StreamFailure | None:
        """The next complete frame, a :class:`StreamFailure`, or None until more bytes
        come (always None after a failure)."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < self._need or self.failed is not None:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        length = b1 & 0x7F
        masked = b1 & 0x80
        if length < 126:  # the common case: a short frame, its length in the first bytes
            start = pos + (6 if masked else 2)
            minimal = True
        else:
            avail = len(buf) - pos
            if length == 126:
                if avail < 4:
                    self._need = 4
                    return None
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
                minimal = length >= 126
            else:
                if avail < 10:
                    self._need = 10
                    return None
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
                minimal = length >= 1 << 16
                if length >> 63:
                    # §5.2: "the most significant bit MUST be 0".
                    return self._fail(
                        1002,
                        "64-bit payload length with the top bit set",
                        "RFC-FRAME-LENGTH",
                        length,
                    )
            start = pos + head + (4 if masked else 0)
        if length > self.max_frame_size:
            return self._fail(
                1009,
                f"frame of {length} bytes is over the limit of {self.max_frame_size}",
                "RFC-MESSAGE-TOO-BIG",
                length,
            )
        end = start + length
        if len(buf) < end:
            self._need = end - pos
            return None
        if length > _MASK_CHUNK:
            if masked:
                _unmask_in_place(buf, start, length, bytes(buf[start - 4 : start]))
            with memoryview(buf) as view:
                payload = bytes(view[start:end])
        elif masked and length:
            # One big-integer XOR (see apply_mask), without a call per frame.
            key = buf[start - 4 : start] * (length // 4 + 1)
            data = int.from_bytes(buf[start:end], "big") ^ int.from_bytes(key[:length], "big")
            payload = data.to_bytes(length, "big")
        else:
            payload = bytes(buf[start:end])
        if end == len(buf):
            buf.clear()  # frees a big frame's buffer at once
            self._pos = 0
        else:
            self._pos = end
        self._need = 2
        # tuple.__new__ straight away: Frame(...) would run the named tuple's own
        # __new__, a Python function, for every frame.
        return _new_tuple(
            Frame,
            (
                b0 & 0x0F,
                payload,
                (b0 & 0x80) != 0,
                (b0 & 0x40) != 0,
                (b0 & 0x20) != 0,
                (b0 & 0x10) != 0,
                masked != 0,
                minimal,
            ),
        )

    def _fail(self, code: int, reason: str, rule: str, length: int) -> StreamFailure:
        self.failed = StreamFailure(code, reason, rule, length)
        self._buf = bytearray()
        self._pos = 0
        return self.failed


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
    n = len(payload)
    if mask_key is None and n < 126 and fin and not (rsv1 or rsv2 or rsv3):
        return bytes((0x80 | (opcode & 0x0F), n)) + payload  # what a server sends most
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | (0x20 if rsv2 else 0)
    b0 |= (0x10 if rsv3 else 0) | (opcode & 0x0F)
    mask_bit = 0x80 if mask_key is not None else 0
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
