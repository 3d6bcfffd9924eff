"""WebSocket close codes (RFC 6455 §7.4, IANA "WebSocket Close Code Number Registry").

Modelled on ``websockets.frames``: an :class:`~enum.IntEnum` of the registered codes, an
explanation table, and predicates for the sets the rules need.

Ranges (§7.4.2):

- 0-999: not used, invalid on the wire.
- 1000-2999: reserved for the protocol and its extensions. Only 1000-1003 and 1007-1014
  may be sent; 1004 is reserved, and 1005, 1006 and 1015 are only ever *reported* locally
  (no code, no Close at all, TLS failure). 1016-2999 are unassigned, so invalid.
- 3000-3999: registered with IANA by libraries, frameworks and applications.
- 4000-4999: private use by applications.
- 5000 and up: invalid.

1012-1014 were registered after RFC 6455 and are valid on the wire; wsproto (used by
mitmproxy) still rejects 1014 because its enum stops at 1013, so a recording made through
mitmproxy may show a 1002 where the client actually sent 1014.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Close codes registered with IANA in the protocol range (RFC 6455 §7.4.1)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    RESERVED = 1004
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Wording follows the IANA registry's "Meaning" column, lower-cased like websockets does.
CLOSE_CODE_EXPLANATIONS: dict[int, str] = {
    CloseCode.NORMAL_CLOSURE: "normal closure",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.PROTOCOL_ERROR: "protocol error",
    CloseCode.UNSUPPORTED_DATA: "unsupported data",
    CloseCode.RESERVED: "reserved",
    CloseCode.NO_STATUS_RCVD: "no status received",
    CloseCode.ABNORMAL_CLOSURE: "abnormal closure",
    CloseCode.INVALID_DATA: "invalid frame payload data",
    CloseCode.POLICY_VIOLATION: "policy violation",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.MANDATORY_EXTENSION: "mandatory extension",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.SERVICE_RESTART: "service restart",
    CloseCode.TRY_AGAIN_LATER: "try again later",
    CloseCode.BAD_GATEWAY: "bad gateway",
    CloseCode.TLS_HANDSHAKE: "TLS handshake failure",
}

# Protocol-range codes an endpoint may put in a Close frame (§7.4.1 plus the later IANA
# registrations 1012-1014).
SENDABLE_PROTOCOL_CODES: frozenset[int] = frozenset(
    {
        CloseCode.NORMAL_CLOSURE,
        CloseCode.GOING_AWAY,
        CloseCode.PROTOCOL_ERROR,
        CloseCode.UNSUPPORTED_DATA,
        CloseCode.INVALID_DATA,
        CloseCode.POLICY_VIOLATION,
        CloseCode.MESSAGE_TOO_BIG,
        CloseCode.MANDATORY_EXTENSION,
        CloseCode.INTERNAL_ERROR,
        CloseCode.SERVICE_RESTART,
        CloseCode.TRY_AGAIN_LATER,
        CloseCode.BAD_GATEWAY,
    }
)

# §7.4.1: 1005, 1006 and 1015 "MUST NOT be set as a status code in a Close control frame";
# 1004 is reserved with no meaning, so it cannot be sent either.
NEVER_ON_WIRE: frozenset[int] = frozenset(
    {
        CloseCode.RESERVED,
        CloseCode.NO_STATUS_RCVD,
        CloseCode.ABNORMAL_CLOSURE,
        CloseCode.TLS_HANDSHAKE,
    }
)

SENDABLE_RANGES_TEXT = "1000-1003, 1007-1014 or 3000-4999"
BROWSER_RANGES_TEXT = "1000 or 3000-4999"


def is_sendable(code: int) -> bool:
    """True if ``code`` may appear in a Close frame (RFC 6455 §7.4, IANA registry)."""
    return code in SENDABLE_PROTOCOL_CODES or 3000 <= code <= 4999


def is_browser_closable(code: int) -> bool:
    """True if ``WebSocket.close(code)`` accepts ``code``.

    The WHATWG WebSockets Standard, ``close()`` step 1: "If code is present, but is
    neither an integer equal to 1000 nor an integer in the range 3000 to 4999, inclusive,
    throw an InvalidAccessError". WeChat DevTools and PC WeChat enforce the same.
    """
    return code == CloseCode.NORMAL_CLOSURE or 3000 <= code <= 4999


def explain(code: int) -> str:
    """The short meaning of ``code``: its registry name, its range, or ``invalid``."""
    if code in CLOSE_CODE_EXPLANATIONS:
        return CLOSE_CODE_EXPLANATIONS[code]
    if 3000 <= code <= 3999:
        return "registered"
    if 4000 <= code <= 4999:
        return "application"
    return "invalid"


def describe(code: int | None, reason: str = "") -> str:
    """Render a close code and reason for one-line messages.

    >>> describe(1011, "db down")
    '1011 (internal error) db down'
    >>> describe(2999)
    '2999 (invalid)'

    ``None`` (a Close without a code) reads as 1005, which is what the peer reports.
    Line breaks in the reason are escaped so the result stays on one line.
    """
    if code is None:
        text = "no code (peer reports 1005)"
    else:
        text = f"{code} ({explain(code)})"
    if reason:
        text = f"{text} {_one_line(reason)}"
    return text


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")
