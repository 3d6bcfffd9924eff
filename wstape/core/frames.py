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


DATA_OPCODES = frozenset({OpCode.CONTINUATION, OpCode.TEXT, OpCode.BINARY})
CONTROL_OPCODES = frozenset({OpCode.CLOSE, OpCode.PING, OpCode.PONG})


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
