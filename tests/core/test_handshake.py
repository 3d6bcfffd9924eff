"""The sans-I/O opening handshake: request parsing and the answers a server gives."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstape.core.handshake import (
    BadRequest,
    RequestParser,
    Response,
    accept_response,
    answered,
    chosen_subprotocol,
    error_response,
    judge_request,
    recorded_refusal,
)
from wstape.core.model import Open, TlsInfo
from wstape.core.rules import RuleConfig, check_response

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
REQUEST = (
    b"GET /chat?room=1 HTTP/1.1\r\n"
    b"Host: chat.example.com:8443\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\n"
    b"Sec-WebSocket-Key: " + KEY.encode() + b"\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: chat.v1, chat.v2\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"Referer: https://servicewechat.com/wx0123456789abcdef/0/page-frame.html\r\n"
    b"\r\n"
)


HOST = b"Host: chat.example.com:8443\r\n"


def parse(data: bytes, **kw: object) -> Open:
    result = RequestParser(**kw).feed(data)  # type: ignore[arg-type]
    assert isinstance(result, Open), result
    return result


def recorded(**changes: object) -> Open:
    base = Open(
        conn=7,
        started_at=1.0,
        method="GET",
        scheme="wss",
        host="chat.example.com",
        port=443,
        target="/chat?room=1",
        http_version="HTTP/1.1",
        request_headers=(),
        status=101,
        response_headers=(
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", b"copied-from-the-recording"),
            (b"Sec-WebSocket-Protocol", b"chat.v1"),
            (b"Sec-WebSocket-Extensions", b"permessage-deflate"),
            (b"Set-Cookie", b"sid=1"),
            (b"X-Server", b"backend-3"),
            (b"X-Evil", b"a\r\nInjected: 1"),
        ),
        subprotocol="chat.v1",
    )
    return Open(**{**base.__dict__, **changes})


def test_parses_a_request_into_an_open_with_status_0() -> None:
    req = parse(REQUEST, scheme="wss", client="10.0.0.2:5000", tls=TlsInfo("TLSv1.3"))
    assert (req.method, req.target, req.http_version) == ("GET", "/chat?room=1", "HTTP/1.1")
    assert (req.host, req.port, req.scheme, req.status) == ("chat.example.com", 8443, "wss", 0)
    assert req.subprotocols == ("chat.v1", "chat.v2")
    assert req.extensions == ("permessage-deflate; client_max_window_bits",)
    assert req.client == "10.0.0.2:5000" and req.tls == TlsInfo("TLSv1.3")
    assert req.request_header("sec-websocket-key") == KEY


def test_incremental_and_leftover_early_data() -> None:
    parser = RequestParser()
    wire = REQUEST + b"\x81\x80abcd"
    for i in range(len(REQUEST) - 1):
        assert parser.feed(wire[i : i + 1]) is None
    result = parser.feed(wire[len(REQUEST) - 1 :])
    assert isinstance(result, Open)
    assert parser.leftover == b"\x81\x80abcd"
    assert parser.feed(b"more") is None


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        (b"\x16\x03\x01\x02\x00\x01", 400),  # a TLS ClientHello on the plain port
        (b"\x81\x85\x37\xfa", 400),  # frames with no handshake
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", 400),
        (b"GET chat HTTP/1.1\r\n\r\n", 400),
        (b"GET / HTTP/one\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 20000, 431),
    ],
)
def test_garbage_is_an_http_error(wire: bytes, status: int) -> None:
    result = RequestParser().feed(wire)
    assert isinstance(result, BadRequest) and result.status == status


@pytest.mark.parametrize(
    ("wire", "rule"),
    [
        (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", "RFC-HS-HEADER-SYNTAX"),
        (b"GET / HTTP/1.1\r\nUpgrade : websocket\r\n\r\n", "RFC-HS-HEADER-SYNTAX"),
        (b"GET / HTTP/1.1\r\nX: 1\r\n folded\r\n\r\n", "RFC-HS-HEADER-SYNTAX"),
        (b"GET /\r\n\r\n", "RFC-HS-METHOD"),
        (b"\x16\x03\x01\x02\x00\x01", "RFC-HS-METHOD"),
    ],
)
def test_a_bad_request_names_the_rule_it_broke(wire: bytes, rule: str) -> None:
    result = RequestParser().feed(wire)
    assert isinstance(result, BadRequest) and result.rule == rule


@pytest.mark.parametrize("value", [b"a\x00b", b"a\rb", b"\x1b[1m", b"\x7f"])
def test_a_control_character_in_a_header_value_is_refused_under_its_rule(value: bytes) -> None:
    """RFC 7230 §3.2 (QA: a NUL in a header value got a 101)."""
    req = parse(REQUEST.replace(b"\r\n\r\n", b"\r\nX-A: " + value + b"\r\n\r\n"))
    verdict = judge_request(req, RuleConfig())
    assert verdict.refusal is not None and verdict.refusal.status == 400
    assert verdict.refusal.body == b"a header value holds a control character\n"
    assert [v.rule for v in verdict.violations] == ["RFC-HS-HEADER-SYNTAX"]


def test_htab_and_obs_text_in_a_header_value_are_accepted() -> None:
    req = parse(REQUEST.replace(b"\r\n\r\n", b"\r\nX-A: a\tb caf\xe9\r\n\r\n"))
    verdict = judge_request(req, RuleConfig())
    assert verdict.refusal is None and verdict.violations == []


@given(st.binary(max_size=300))
def test_random_bytes_never_crash(data: bytes) -> None:
    result = RequestParser(max_size=200).feed(data)
    assert result is None or isinstance(result, Open | BadRequest)


def test_absolute_form_target_and_ipv6_host() -> None:
    req = parse(
        REQUEST.replace(b"GET /chat?room=1", b"GET ws://h/x?y=1").replace(
            b"Host: chat.example.com:8443", b"Host: [::1]:9000"
        )
    )
    assert req.target == "/x?y=1" and (req.host, req.port) == ("::1", 9000)


def test_accept_response_is_fresh_and_filters_headers() -> None:
    req = parse(REQUEST)
    resp = accept_response(req, recorded())
    text = resp.to_bytes().decode()
    assert text.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    assert resp.header("Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert resp.header("Sec-WebSocket-Protocol") == "chat.v1"
    assert resp.header("Sec-WebSocket-Extensions") is None  # only what core.deflate agreed
    assert resp.header("Set-Cookie") == "sid=1" and resp.header("X-Server") == "backend-3"
    assert "copied-from-the-recording" not in text and "Injected" not in text
    assert text.count("Upgrade: websocket") == 1
    assert check_response(answered(req, resp), RuleConfig(profile="browser")) == []


def test_accept_response_carries_the_agreed_extension_never_the_recorded_one() -> None:
    req = parse(REQUEST)
    rec = replace(
        recorded(),
        response_headers=(
            *recorded().response_headers,
            (b"Sec-WebSocket-Extensions", b"permessage-deflate; server_max_window_bits=10"),
        ),
    )
    assert accept_response(req, rec).header("Sec-WebSocket-Extensions") is None
    agreed = "permessage-deflate; server_no_context_takeover"
    resp = accept_response(req, rec, extensions=agreed)
    assert [v for k, v in resp.headers if k.lower() == b"sec-websocket-extensions"] == [
        agreed.encode()
    ]


def test_recorded_subprotocol_only_if_offered() -> None:
    req = parse(REQUEST.replace(b"chat.v1, chat.v2", b"chat.v2"))
    resp = accept_response(req, recorded())
    assert resp.header("Sec-WebSocket-Protocol") is None
    rules = [v.rule for v in check_response(answered(req, resp), RuleConfig(profile="browser"))]
    assert rules == ["BROWSER-SRV-SUBPROTOCOL-ECHO"]


@pytest.mark.parametrize(
    ("offer", "recorded_offers", "recorded_choice", "chosen"),
    [
        # The server chose a token the client offered, recorded redacted: the live token
        # at the same position is chosen, so the client sees its own offer echoed.
        (b"access_token, T0K3N-live", ("access_token", "<redacted>"), "<redacted>", "T0K3N-live"),
        (
            b"chat.v1, bearer.T0K3N",
            ("chat.v1", "bearer.<redacted>"),
            "bearer.<redacted>",
            "bearer.T0K3N",
        ),
        # A non-secret choice next to a redacted token is chosen as before.
        (
            b"chat.v1, access_token, T0K3N-live",
            ("chat.v1", "access_token", "<redacted>"),
            "chat.v1",
            "chat.v1",
        ),
        (b"chat.v2", ("chat.v1", "<redacted>"), "<redacted>", "chat.v2"),
        (b"chat.v2", ("chat.v1", "bearer.<redacted>"), "bearer.<redacted>", None),
    ],
)
def test_a_redacted_recorded_subprotocol_stands_for_the_live_offer(
    offer: bytes, recorded_offers: tuple[str, ...], recorded_choice: str, chosen: str | None
) -> None:
    req = parse(REQUEST.replace(b"chat.v1, chat.v2", offer))
    rec = recorded(subprotocols=recorded_offers, subprotocol=recorded_choice)
    assert chosen_subprotocol(req, rec) == chosen
    resp = accept_response(req, rec)
    assert resp.header("Sec-WebSocket-Protocol") == chosen
    if chosen is not None:
        assert check_response(answered(req, resp), RuleConfig(profile="browser")) == []


@pytest.mark.parametrize(
    ("old", "new", "status"),
    [
        (b"GET /chat", b"POST /chat", 405),
        (b"HTTP/1.1\r\nHost", b"HTTP/1.0\r\nHost", 400),
        (b"Upgrade: websocket", b"Upgrade: h2c", 400),
        (b"Connection: keep-alive, Upgrade", b"Connection: keep-alive", 400),
        (b"Version: 13", b"Version: 12", 426),
        (KEY.encode(), b"AAAAAAAAAAAAAAAAAAAA", 400),  # 15 bytes
        (HOST, b"", 400),  # RFC 7230 §5.4
        (HOST, b"Host:\r\n", 400),
        (HOST, HOST + b"Host: evil.example\r\n", 400),
        (HOST, HOST + HOST.lower(), 400),  # two Hosts, even equal ones
    ],
)
def test_refusals_a_server_must_give(old: bytes, new: bytes, status: int) -> None:
    verdict = judge_request(parse(REQUEST.replace(old, new)), RuleConfig())
    refusal = verdict.refusal
    assert refusal is not None and refusal.status == status
    if status == 426:
        assert refusal.header("Sec-WebSocket-Version") == "13"
    # Never a refusal without the rule that says why.
    assert [v.severity.value for v in verdict.violations] == ["error"]


@pytest.mark.parametrize(
    ("new", "said"),
    [
        (b"", "no Host header"),
        (HOST + b"Host: evil.example\r\n", "more than one Host header"),
        (b"Host: \r\n", "an empty Host header"),
    ],
)
def test_a_request_without_one_host_is_refused_under_its_rule(new: bytes, said: str) -> None:
    verdict = judge_request(parse(REQUEST.replace(HOST, new)), RuleConfig())
    assert verdict.refusal is not None and verdict.refusal.status == 400
    assert verdict.refusal.body == f"{said}; a request needs exactly one\n".encode()
    assert [v.rule for v in verdict.violations] == ["RFC-HS-HOST"]


def test_duplicate_subprotocols_are_not_refused() -> None:
    verdict = judge_request(parse(REQUEST.replace(b"chat.v1, chat.v2", b"a, a")), RuleConfig())
    assert verdict.refusal is None
    assert [v.rule for v in verdict.violations] == ["RFC-HS-SUBPROTOCOL-SYNTAX"]


def test_upgrade_with_a_protocol_version_is_accepted_as_the_rule_says() -> None:
    # RFC 7230 §6.7: an upgrade token may carry a version ("websocket/13"). The rule
    # passes it, so the server must accept it too (it used to answer 400 with no rule).
    verdict = judge_request(
        parse(REQUEST.replace(b"Upgrade: websocket", b"Upgrade: websocket/13")), RuleConfig()
    )
    assert verdict.refusal is None and verdict.violations == []


def test_an_ignored_rule_still_refuses_but_is_not_reported() -> None:
    req = parse(REQUEST.replace(b"Version: 13", b"Version: 12"))
    verdict = judge_request(req, RuleConfig(ignore=frozenset({"RFC-HS-VERSION"})))
    assert verdict.refusal is not None and verdict.refusal.status == 426
    assert verdict.violations == []


def test_recorded_refusal_replays_status_and_body() -> None:
    rec = recorded(
        status=403,
        reason="Forbidden",
        response_headers=(
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"999"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Content-Encoding", b"gzip"),
        ),
        body=b'{"error":"banned"}',
    )
    resp = recorded_refusal(rec)
    wire = resp.to_bytes()
    assert wire.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert wire.endswith(b'\r\n\r\n{"error":"banned"}')
    assert resp.header("Content-Length") == "18" and resp.header("Transfer-Encoding") is None
    assert resp.header("Content-Encoding") is None  # body is not gzip
    assert recorded_refusal(recorded(status=418, reason="")).reason == "I'm a Teapot"


@pytest.mark.parametrize(
    "reason",
    [
        "Forbidden\r\nSet-Cookie: injected=1",
        "Forbidden\nSet-Cookie: injected=1",
        "Forbidden\rSet-Cookie: injected=1",
        "Forbidden\r\n\r\n<html>",
        "Forbidden\x00\x0bSet-Cookie: injected=1",
    ],
)
def test_a_recorded_reason_phrase_cannot_add_a_header(reason: str) -> None:
    # A HAR statusText reaches Open.reason through `wstape import`.
    rec = recorded(status=403, reason=reason, response_headers=(), body=b"no")
    wire = recorded_refusal(rec).to_bytes()
    head, _, body = wire.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 403 Forbidden ") and b"\n" not in lines[0]
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert not any(line.lower().startswith(b"set-cookie") for line in lines[1:])
    assert [line.split(b":")[0] for line in lines[1:]] == [b"Content-Length", b"Connection"]
    assert body == b"no"


def test_any_response_drops_header_lines_it_could_not_send() -> None:
    resp = Response(
        403,
        "Forbidden",
        ((b"X-Ok", b"a\tb"), (b"X-Bad", b"a\rb"), (b"Bad Name", b"v"), (b"X-Nul", b"\x00")),
    )
    assert resp.to_bytes() == b"HTTP/1.1 403 Forbidden\r\nX-Ok: a\tb\r\n\r\n"


def test_error_response() -> None:
    resp = error_response(404, "no recorded connection for /x")
    assert isinstance(resp, Response) and resp.body == b"no recorded connection for /x\n"
    assert resp.to_bytes().startswith(b"HTTP/1.1 404 Not Found\r\n")
