"""Close codes against RFC 6455 §7.4 and the IANA WebSocket Close Code Number Registry."""

from __future__ import annotations

import pytest

from wstape.core.closecodes import (
    CLOSE_CODE_EXPLANATIONS,
    NEVER_ON_WIRE,
    CloseCode,
    describe,
    explain,
    is_browser_closable,
    is_sendable,
)

# The IANA registry, written out by hand (not derived from the module under test).
IANA = {
    1000: "NORMAL_CLOSURE",
    1001: "GOING_AWAY",
    1002: "PROTOCOL_ERROR",
    1003: "UNSUPPORTED_DATA",
    1004: "RESERVED",
    1005: "NO_STATUS_RCVD",
    1006: "ABNORMAL_CLOSURE",
    1007: "INVALID_DATA",
    1008: "POLICY_VIOLATION",
    1009: "MESSAGE_TOO_BIG",
    1010: "MANDATORY_EXTENSION",
    1011: "INTERNAL_ERROR",
    1012: "SERVICE_RESTART",
    1013: "TRY_AGAIN_LATER",
    1014: "BAD_GATEWAY",
    1015: "TLS_HANDSHAKE",
}


@pytest.mark.parametrize(("code", "name"), sorted(IANA.items()))
def test_every_registered_code_is_named(code: int, name: str) -> None:
    assert CloseCode(code).name == name
    assert CLOSE_CODE_EXPLANATIONS[code]


def test_enum_has_exactly_the_registered_protocol_codes() -> None:
    assert {int(c) for c in CloseCode} == set(IANA)


@pytest.mark.parametrize(
    ("code", "sendable"),
    [
        (1000, True),
        (1001, True),
        (1002, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1008, True),
        (1009, True),
        (1010, True),
        (1011, True),
        (1012, True),  # registered after RFC 6455, valid
        (1013, True),
        (1014, True),  # wsproto wrongly rejects this one
        (1015, False),
        (1016, False),
        (1999, False),
        (2000, False),
        (2999, False),
        (3000, True),
        (3999, True),
        (4000, True),
        (4001, True),
        (4999, True),
        (5000, False),
        (65535, False),
        (999, False),
        (0, False),
        (-1, False),
    ],
)
def test_is_sendable(code: int, sendable: bool) -> None:
    assert is_sendable(code) is sendable


def test_is_sendable_over_the_whole_16_bit_range() -> None:
    # RULES.md: "sendable on the wire are 1000-1003, 1007-1014 and 3000-4999".
    for code in range(65536):
        wanted = 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
        assert is_sendable(code) is wanted, code


def test_never_on_wire() -> None:
    assert frozenset({1004, 1005, 1006, 1015}) == NEVER_ON_WIRE
    assert not any(is_sendable(c) for c in NEVER_ON_WIRE)


@pytest.mark.parametrize(
    ("code", "closable"),
    [
        (1000, True),
        (1001, False),
        (1005, False),
        (1006, False),
        (1011, False),
        (2999, False),
        (3000, True),
        (4001, True),
        (4999, True),
        (5000, False),
    ],
)
def test_is_browser_closable(code: int, closable: bool) -> None:
    # WHATWG close(): "neither an integer equal to 1000 nor ... in the range 3000 to 4999".
    assert is_browser_closable(code) is closable


@pytest.mark.parametrize(
    ("code", "reason", "text"),
    [
        (1011, "db down", "1011 (internal error) db down"),
        (1000, "", "1000 (normal closure)"),
        (1014, "", "1014 (bad gateway)"),
        (4001, "用户主动退出登录", "4001 (application) 用户主动退出登录"),
        (3003, "forbidden", "3003 (registered) forbidden"),
        (2999, "", "2999 (invalid)"),
        (999, "", "999 (invalid)"),
        (5000, "x", "5000 (invalid) x"),
        (1004, "", "1004 (reserved)"),
        (None, "", "no code (peer reports 1005)"),
        (4000, "a\nb", "4000 (application) a\\nb"),
    ],
)
def test_describe(code: int | None, reason: str, text: str) -> None:
    assert describe(code, reason) == text


def test_explain_covers_ranges() -> None:
    assert explain(1005) == "no status received"
    assert explain(3500) == "registered"
    assert explain(4500) == "application"
    assert explain(1500) == "invalid"
