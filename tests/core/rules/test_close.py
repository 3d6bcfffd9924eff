"""Client close rules: check_client_close per profile, the close handshake, changed closes."""

from __future__ import annotations

import pytest

from wstape.core.model import Close, Side
from wstape.core.rules import (
    Profile,
    RuleConfig,
    Severity,
    Violation,
    check_client_close,
    check_close_changed,
    check_close_handshake,
    close_body,
    parse_close_body,
)

RFC = RuleConfig()
BROWSER = RuleConfig(profile=Profile.BROWSER)
DEVICE = RuleConfig(profile=Profile.WECHAT)
DEVTOOLS = RuleConfig(profile=Profile.WECHAT, platform="devtools")
E, W = "error", "warn"


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.rule, v.severity.value) for v in violations}


BAD = "RFC-CLOSE-CODE"
BCC = "BROWSER-CLOSE-CODE"

CODE_CASES: list[tuple[int, RuleConfig, set[tuple[str, str]]]] = [
    (1000, RFC, set()),
    (1000, BROWSER, set()),
    (1000, DEVTOOLS, set()),
    (4001, DEVTOOLS, set()),
    (3000, BROWSER, set()),
    (4999, BROWSER, set()),
    (1001, RFC, set()),
    (1001, BROWSER, {(BCC, E)}),
    (1001, DEVICE, {(BCC, W)}),
    (1001, DEVTOOLS, {(BCC, E)}),
    (1011, BROWSER, {(BCC, E)}),
    (1014, RFC, set()),  # valid on the wire, though wsproto rejects it
    (1014, DEVICE, {(BCC, W)}),
    (1004, RFC, {(BAD, E)}),
    (1005, RFC, {(BAD, E)}),
    (1006, RFC, {(BAD, E)}),
    (1015, RFC, {(BAD, E)}),
    (1016, RFC, {(BAD, E)}),
    (2999, RFC, {(BAD, E)}),
    (999, RFC, {(BAD, E)}),
    (0, RFC, {(BAD, E)}),
    (5000, RFC, {(BAD, E)}),
    (65535, RFC, {(BAD, E)}),
    (1006, BROWSER, {(BAD, E), (BCC, E)}),
    (1006, DEVICE, {(BAD, E), (BCC, W)}),
    (2999, DEVTOOLS, {(BAD, E), (BCC, E)}),
]


@pytest.mark.parametrize(
    ("code", "cfg", "expected"),
    [pytest.param(c, cfg, e, id=f"{c}-{cfg.profile}-{cfg.platform}") for c, cfg, e in CODE_CASES],
)
def test_client_close_codes(code: int, cfg: RuleConfig, expected: set[tuple[str, str]]) -> None:
    assert found(check_client_close(close_body(code, "bye"), cfg, conn=1)) == expected


def test_code_violation_message_describes_the_code() -> None:
    (v,) = check_client_close(close_body(2999, "x"), RFC)
    assert "2999 (invalid) x" in v.message
    assert "1000-1003, 1007-1014 or 3000-4999" in v.message
    (v,) = check_client_close(close_body(1005), RFC)
    assert "1005 (no status received)" in v.message and "never sent on the wire" in v.message


@pytest.mark.parametrize(
    ("body", "cfg", "expected"),
    [
        (b"", RFC, set()),
        (b"", BROWSER, set()),
        (b"", DEVICE, {("WX-CLOSE-DEFAULT", W)}),
        (b"", DEVTOOLS, {("WX-CLOSE-DEFAULT", W)}),
        (b"\x03", RFC, {("RFC-CLOSE-PAYLOAD", E)}),
        (b"\x03", DEVICE, {("RFC-CLOSE-PAYLOAD", E)}),
        (b"\x03\xe8", DEVICE, set()),
    ],
)
def test_close_body_shapes(body: bytes, cfg: RuleConfig, expected: set[tuple[str, str]]) -> None:
    assert found(check_client_close(body, cfg)) == expected


REASON_CASES: list[tuple[str, bytes, set[str]]] = [
    # RULES.md scenario 3: 41 characters, exactly 123 bytes: the largest legal reason.
    ("41 chars, 123 bytes", ("用户主动退出登录" * 5 + "谢").encode(), set()),
    (
        "42 chars, 126 bytes",
        ("用户主动退出登录" * 5 + "谢谢").encode(),
        {"RFC-CLOSE-REASON-LENGTH"},
    ),
    ("emoji, 123 bytes", ("😀" * 30 + "abc").encode(), set()),
    ("emoji, 124 bytes", ("😀" * 30 + "abcd").encode(), {"RFC-CLOSE-REASON-LENGTH"}),
    ("ascii 123", b"a" * 123, set()),
    ("ascii 124", b"a" * 124, {"RFC-CLOSE-REASON-LENGTH"}),
    ("cut inside a character", "再见".encode()[:4], {"RFC-CLOSE-REASON-UTF8"}),
    ("invalid byte", b"bye\xff", {"RFC-CLOSE-REASON-UTF8"}),
    (
        "too long and cut",
        ("谢" * 42).encode()[:125],
        {"RFC-CLOSE-REASON-LENGTH", "RFC-CLOSE-REASON-UTF8"},
    ),
]


@pytest.mark.parametrize(
    ("reason", "expected"),
    [pytest.param(r, e, id=name) for name, r, e in REASON_CASES],
)
def test_close_reasons(reason: bytes, expected: set[str]) -> None:
    body = (4001).to_bytes(2, "big") + reason
    for cfg in (RFC, BROWSER, DEVICE):
        result = check_client_close(body, cfg)
        assert {v.rule for v in result} == expected
        assert all(v.severity is Severity.ERROR for v in result)


def test_reason_length_counts_bytes_not_characters() -> None:
    reason = "用户主动退出登录" * 5 + "谢谢"
    assert len(reason) == 42
    (v,) = check_client_close(close_body(4001, reason), RFC)
    assert (v.expected, v.actual) == (123, 126)
    assert "126 bytes" in v.message and "42 characters" in v.message


def test_echo_of_the_server_code_is_not_client_started() -> None:
    # The server closed with 1013; the client's Close echoes it (RFC 6455 §5.5.1).
    body = close_body(1013, "")
    assert check_client_close(body, BROWSER, started_by_client=False, server_code=1013) == []
    # A client-started 1013 is what close() would have refused.
    assert found(check_client_close(body, BROWSER)) == {(BCC, E)}
    # Replying with a code other than the server's is not an echo.
    reply = check_client_close(
        close_body(1001), DEVTOOLS, started_by_client=False, server_code=4003
    )
    assert found(reply) == {(BCC, E)}
    assert "reply" in reply[0].message


def test_close_violations_carry_conn_and_time() -> None:
    (v,) = check_client_close(b"\x00", RFC, conn=7, t=3.5)
    assert (v.conn, v.t) == (7, 3.5)


def test_close_body_round_trip() -> None:
    assert close_body(None) == b""
    assert close_body(1000, "") == b"\x03\xe8"
    assert parse_close_body(close_body(4001, "再见")) == (4001, "再见".encode())
    assert parse_close_body(b"") == (None, b"")
    with pytest.raises(ValueError):
        parse_close_body(b"\x03")
    # A reason decoded with surrogateescape gets its original invalid bytes back.
    assert close_body(4000, b"a\xff".decode("utf-8", "surrogateescape")) == b"\x0f\xa0a\xff"


@pytest.mark.parametrize(
    ("server_closed", "client_sent_close", "expected"),
    [
        (True, True, None),
        (False, True, None),
        (True, False, "after the server's Close"),
        (False, False, "1006"),
    ],
)
def test_close_handshake(
    server_closed: bool, client_sent_close: bool, expected: str | None
) -> None:
    result = check_close_handshake(server_closed, client_sent_close, RFC, conn=2)
    if expected is None:
        assert result == []
    else:
        (v,) = result
        assert (v.rule, v.severity, v.conn) == ("RFC-CLOSE-HANDSHAKE", Severity.WARN, 2)
        assert expected in v.message


def test_close_handshake_unanswered_close() -> None:
    (v,) = check_close_handshake(True, False, RFC, conn=2, waited=2.5)
    assert "did not answer the server's Close within 2.5 s" in v.message
    assert check_close_handshake(True, True, RFC, conn=2, waited=2.5) == []


def test_close_changed() -> None:
    recorded = Close(conn=4, t=9.0, by=Side.CLIENT, code=1000, reason="bye")
    assert check_close_changed(recorded, 1000, "bye", RFC) == []
    (v,) = check_close_changed(recorded, 1001, "bye", RFC)
    assert (v.rule, v.severity, v.conn) == ("REPLAY-CLOSE-CHANGED", Severity.WARN, 4)
    assert "1001 (going away) bye" in v.message and "1000 (normal closure) bye" in v.message
    assert v.expected == {"code": 1000, "reason": "bye"}
    assert check_close_changed(recorded, 1000, "later", RFC, conn=8)[0].conn == 8
    empty = Close(conn=4, t=9.0, by=Side.CLIENT, code=1005, on_wire=False)
    assert check_close_changed(empty, None, "", RFC) == []
    assert check_close_changed(empty, 1000, "", RFC) != []
