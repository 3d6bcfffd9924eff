"""Rules on how the client closes (RFC 6455 §5.5.1, §7.4; WHATWG close(); wx close())."""

from __future__ import annotations

from wstape.core.closecodes import (
    BROWSER_RANGES_TEXT,
    SENDABLE_RANGES_TEXT,
    CloseCode,
    describe,
    is_browser_closable,
    is_sendable,
)
from wstape.core.frames import encode_close_body, split_close_body
from wstape.core.model import Close
from wstape.core.rules.catalogue import Profile, RuleConfig, Severity, Violation
from wstape.core.rules.helpers import Report, preview, utf8_error

MAX_REASON_BYTES = 123
"""§5.5: a control payload is at most 125 bytes, two of which are the code."""


def close_body(code: int | None, reason: str = "") -> bytes:
    """The Close frame body for ``code`` and ``reason``: :func:`.frames.encode_close_body`."""
    return encode_close_body(code, reason)


def parse_close_body(body: bytes) -> tuple[int | None, bytes]:
    """Split a Close body into code and raw reason. Raises ``ValueError`` for 1 byte."""
    if len(body) == 1:
        raise ValueError("a Close body of 1 byte has no complete code")
    return split_close_body(body)


def _browser_close_severity(cfg: RuleConfig) -> Severity:
    # DevTools and PC WeChat run Chromium's close(), which throws InvalidAccessError; on
    # phones WeChat's own socket stack is used, so the same code is suspicious, not fatal.
    if cfg.profile is Profile.WECHAT and cfg.platform == "device":
        return Severity.WARN
    return Severity.ERROR


def check_client_close(
    body: bytes,
    cfg: RuleConfig,
    *,
    conn: int | None = None,
    started_by_client: bool = True,
    server_code: int | None = None,
    t: float | None = None,
) -> list[Violation]:
    """The raw body of the client's Close frame.

    Rules: RFC-CLOSE-PAYLOAD (§5.5.1), RFC-CLOSE-CODE (§7.4), RFC-CLOSE-REASON-LENGTH
    (§5.5), RFC-CLOSE-REASON-UTF8 (§5.5.1), BROWSER-CLOSE-CODE (WHATWG ``close()`` step 1)
    and WX-CLOSE-DEFAULT (``SocketTask.close`` defaults to 1000).

    ``started_by_client`` False with ``server_code`` set means this Close answers the
    server's: echoing the server's code is what §5.5.1 asks for, not a ``close()`` call,
    so BROWSER-CLOSE-CODE does not apply to that echo.
    """
    report = Report(cfg, conn, t)
    if not body:
        report.add(
            "WX-CLOSE-DEFAULT",
            Severity.WARN,
            "client sent a Close without a code (the server sees 1005); expected 1000, "
            "SocketTask.close()'s default",
            expected=CloseCode.NORMAL_CLOSURE.value,
            actual=None,
        )
        return report.items
    if len(body) == 1:
        report.add(
            "RFC-CLOSE-PAYLOAD",
            Severity.ERROR,
            f"client Close body is 1 byte ({body.hex()}); expected empty or a 2-byte code "
            "plus reason",
            expected="0 or >= 2 bytes",
            actual=len(body),
        )
        return report.items

    code, raw_reason = split_close_body(body)
    assert code is not None  # 2 bytes or more
    reason_text = raw_reason.decode("utf-8", "replace")
    shown = describe(code, reason_text if len(reason_text) <= 40 else reason_text[:40] + "...")

    if not is_sendable(code):
        never = " (never sent on the wire)" if 1000 <= code <= 1015 else ""
        report.add(
            "RFC-CLOSE-CODE",
            Severity.ERROR,
            f"client closed with {shown}{never}; expected {SENDABLE_RANGES_TEXT}",
            expected=SENDABLE_RANGES_TEXT,
            actual=code,
        )
    if len(raw_reason) > MAX_REASON_BYTES:
        report.add(
            "RFC-CLOSE-REASON-LENGTH",
            Severity.ERROR,
            f"close reason is {len(raw_reason)} bytes of UTF-8 ({len(reason_text)} "
            f"characters); expected at most {MAX_REASON_BYTES} bytes",
            expected=MAX_REASON_BYTES,
            actual=len(raw_reason),
        )
    problem = utf8_error(raw_reason)
    if problem is not None:
        report.add(
            "RFC-CLOSE-REASON-UTF8",
            Severity.ERROR,
            f"close reason {preview(raw_reason)} is not valid UTF-8 ({problem}); expected "
            "UTF-8 text",
            expected="valid UTF-8",
            actual=raw_reason,
        )

    echo = not started_by_client and server_code is not None and code == server_code
    if not echo and not is_browser_closable(code):
        who = "a close the client started" if started_by_client else "the client's reply"
        report.add(
            "BROWSER-CLOSE-CODE",
            _browser_close_severity(cfg),
            f"{who} uses {describe(code)}; expected {BROWSER_RANGES_TEXT} (close() throws "
            "InvalidAccessError for other codes in browsers, WeChat DevTools and PC WeChat)",
            expected=BROWSER_RANGES_TEXT,
            actual=code,
        )
    return report.items


# What wsproto (mitmproxy's WebSocket engine) says when it refuses a peer's frame: it then
# reports a Close of its own with this code and reason, as if that peer had sent it, and
# sends it to both peers (wsproto.frame_protocol.ParseFailed; mitmproxy's websocket layer).
# Each reason is paired with the code it comes with and the rule the refused frame broke.
_PROXY_REFUSALS: tuple[tuple[int, str, str, Severity], ...] = (
    (1002, "CLOSE with 1 byte payload", "RFC-CLOSE-PAYLOAD", Severity.ERROR),
    (1002, "CLOSE with invalid code", "RFC-CLOSE-CODE", Severity.ERROR),
    (1002, "remote CLOSE with local-only reason", "RFC-CLOSE-CODE", Severity.ERROR),
    # 1004, 1016-2999, but also 1014, which RFC 6455 allows and wsproto does not know:
    (1002, "CLOSE with unknown reserved code", "RFC-CLOSE-CODE", Severity.WARN),
    (1007, "Error decoding CLOSE reason: ", "RFC-CLOSE-REASON-UTF8", Severity.ERROR),
    (1002, "Control frame with payload len > 125", "RFC-FRAME-CONTROL", Severity.ERROR),
    (1002, "Invalid attempt to fragment control frame", "RFC-FRAME-CONTROL", Severity.ERROR),
    (1002, "server received unexpected unmasked frame", "RFC-FRAME-MASK", Severity.ERROR),
    (1002, "client received unexpected masked frame", "RFC-FRAME-MASK", Severity.ERROR),
    (1002, "Reserved bit set unexpectedly", "RFC-FRAME-RSV", Severity.ERROR),
    (1002, "Invalid opcode ", "RFC-FRAME-OPCODE", Severity.ERROR),
    (1002, "unexpected CONTINUATION", "RFC-FRAME-FRAGMENTS", Severity.ERROR),
    (1002, "expected CONTINUATION, got ", "RFC-FRAME-FRAGMENTS", Severity.ERROR),
    (1002, "Payload length used ", "RFC-FRAME-LENGTH", Severity.ERROR),
    (1002, "8-byte payload length with non-zero MSB", "RFC-FRAME-LENGTH", Severity.ERROR),
    (1007, "'utf-8' codec can't decode", "RFC-TEXT-UTF8", Severity.ERROR),
    (1002, "error in extension", "RFC-DEFLATE-DATA", Severity.ERROR),
)


def proxy_refusal(code: int | None, reason: str) -> tuple[str, Severity] | None:
    """The rule a peer's frame broke when a recorded close is the recording proxy's own
    verdict on it, not a Close that peer sent: (rule ID, severity), or None.

    mitmproxy's wsproto refuses a frame it cannot parse (a 1-byte Close body, a close
    reason cut inside a character, an unmasked client frame, ...) and closes both sides
    with its own code and reason, which mitmproxy reports as the refused peer's close. The
    reason is wsproto's fixed wording, so the pair (code, reason) tells the two apart.
    """
    if code not in _REFUSAL_CODES:
        return None  # (most closes: no reason compared with each wording)
    for want, start, rule, severity in _PROXY_REFUSALS:
        if code == want and reason.startswith(start):
            return rule, severity
    return None


_REFUSAL_CODES = frozenset(code for code, _, _, _ in _PROXY_REFUSALS)


def proxy_refusal_note(side: str, code: int, reason: str) -> str:
    """The note the recorder writes after a close that is the proxy's verdict."""
    return (
        f"mitmproxy refused a frame from the {side} ({reason}) and closed both sides with "
        f"{code} itself: the recorded close is its verdict; the {side}'s own frame is not "
        "in the cassette"
    )


def check_refused_close(
    code: int | None,
    reason: str,
    cfg: RuleConfig,
    conn: int | None = None,
    t: float | None = None,
) -> list[Violation]:
    """The rule a client frame broke that the recording proxy refused (see
    :func:`proxy_refusal`), for ``wstape check``; nothing if the close is not a refusal."""
    report = Report(cfg, conn, t)
    found = proxy_refusal(code, reason)
    if found is not None:
        rule, severity = found
        report.add(
            rule,
            severity,
            f"the recording proxy refused a client frame ({preview(reason, 100)}) and closed "
            f"with {code} itself; expected a frame it could relay",
            expected="a valid frame",
            actual=reason,
        )
    return report.items


def check_close_handshake(
    server_closed: bool,
    client_sent_close: bool,
    cfg: RuleConfig,
    conn: int | None = None,
    *,
    waited: float | None = None,
) -> list[Violation]:
    """RFC-CLOSE-HANDSHAKE: the client ends with a Close frame, not a bare TCP drop.

    §5.5.1: an endpoint that receives a Close "MUST send a Close frame in response"; a
    client that drops TCP on its own leaves the app with 1006 (§7.1.5) and the server
    unable to tell a crash from a goodbye. ``waited``: the server gave up after that
    many seconds with no answer to its Close and hung up itself (the client dropped
    nothing).
    """
    report = Report(cfg, conn)
    if client_sent_close:
        return report.items
    if waited is not None:
        message = (
            f"client did not answer the server's Close within {waited:g} s "
            "(the server hung up); expected a Close in reply"
        )
    elif server_closed:
        message = "client dropped TCP after the server's Close; expected a Close in reply"
    else:
        message = "client dropped TCP without a Close (the app sees 1006); expected a Close"
    report.add("RFC-CLOSE-HANDSHAKE", Severity.WARN, message, expected="Close", actual=None)
    return report.items


def check_close_changed(
    expected: Close, code: int | None, reason: str, cfg: RuleConfig, conn: int | None = None
) -> list[Violation]:
    """REPLAY-CLOSE-CHANGED: the client closed with another code or reason than recorded.

    A code of None (empty Close) and a recorded 1005 are the same thing.
    """
    report = Report(cfg, expected.conn if conn is None else conn)
    want = None if expected.code == CloseCode.NO_STATUS_RCVD else expected.code
    got = None if code == CloseCode.NO_STATUS_RCVD else code
    if (want, expected.reason) != (got, reason):
        report.add(
            "REPLAY-CLOSE-CHANGED",
            Severity.WARN,
            f"client closed with {describe(got, reason)}; the recording closed with "
            f"{describe(want, expected.reason)}",
            expected={"code": want, "reason": expected.reason},
            actual={"code": got, "reason": reason},
        )
    return report.items


__all__ = [
    "MAX_REASON_BYTES",
    "check_client_close",
    "check_close_changed",
    "check_close_handshake",
    "check_refused_close",
    "close_body",
    "parse_close_body",
    "proxy_refusal",
    "proxy_refusal_note",
]
