"""Handshake and server-side rules: check_request, check_response, check_server_close.

``make_open`` builds a correct WeChat chat handshake (scenario 1 of RULES.md); each case
changes one thing and names the violations that must appear, so every row can fail.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import fields as fields_of
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wstape.core.model import Headers, Open, TlsInfo
from wstape.core.rules import (
    READ_HEADERS,
    SHAPE_FIELDS,
    HandshakeChecks,
    Profile,
    RuleConfig,
    Severity,
    Violation,
    accept_key,
    check_early_data,
    check_request,
    check_response,
    check_server_close,
    check_subprotocol_change,
    has_control,
    is_ip_literal,
    key_problem,
    request_host,
    wechat_platform,
)

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
APPID = "wx0123456789abcdef"
REFERER = f"https://servicewechat.com/{APPID}/0/page-frame.html"
UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
    "MMWEBSDK/20240301 MMWEBID/1234 MicroMessenger/8.0.49.2600(0x28003133) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64 MiniProgramEnv/android"
)

TLS13 = TlsInfo(version="TLSv1.3")
RFC = RuleConfig()
BROWSER = RuleConfig(profile=Profile.BROWSER)
WECHAT = RuleConfig(profile=Profile.WECHAT)


def make_open(
    *,
    conn: int = 1,
    started_at: float = 1000.0,
    method: str = "GET",
    scheme: str = "wss",
    host: str = "chat.example.com",
    port: int = 443,
    http_version: str = "HTTP/1.1",
    set_headers: dict[str, str | None] | None = None,
    add_headers: Sequence[tuple[str, str]] = (),
    status: int = 101,
    set_response: dict[str, str | None] | None = None,
    tls: TlsInfo | None = TLS13,
    client: str = "10.0.0.7:50000",
    key: str = KEY,
) -> Open:
    """A wechat-correct upgrade (wss, Referer, UA, chat.v1 offered and echoed), changed.

    ``set_headers`` replaces a request header (None removes it); ``add_headers`` appends
    repeats; ``set_response`` does the same for the response.
    """
    request: dict[str, str | None] = {
        "Host": host if port == 443 else f"{host}:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "chat.v1",
        "Referer": REFERER,
        "User-Agent": UA,
    }
    request.update(set_headers or {})
    response: dict[str, str | None] = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Accept": accept_key(key),
        "Sec-WebSocket-Protocol": "chat.v1",
    }
    response.update(set_response or {})
    req_headers = [(k.encode(), v.encode()) for k, v in request.items() if v is not None]
    req_headers += [(k.encode(), v.encode()) for k, v in add_headers]
    return Open(
        conn=conn,
        started_at=started_at,
        method=method,
        scheme=scheme,
        host=host,
        port=port,
        target="/chat",
        http_version=http_version,
        request_headers=tuple(req_headers),
        status=status,
        response_headers=tuple(
            (k.encode(), v.encode()) for k, v in response.items() if v is not None
        ),
        client=client,
        tls=tls,
    )


def found(violations: Sequence[Violation]) -> set[tuple[str, str]]:
    """The (rule, severity) pairs of a check's result."""
    return {(v.rule, v.severity.value) for v in violations}


E, W, INF = "error", "warn", "info"


# -- self-tests ---------------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    # RFC 6455 §1.3 and §4.2.2 give this pair.
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_the_baseline_handshake_is_clean_in_every_profile() -> None:
    op = make_open()
    for cfg in (RFC, BROWSER, WECHAT):
        assert check_request(op, cfg) == []
        assert check_response(op, cfg) == []


# -- client request --------------------------------------------------------------------------

REQUEST_CASES: list[tuple[str, dict[str, object], RuleConfig, set[tuple[str, str]]]] = [
    # RFC-HS-METHOD
    ("POST", {"method": "POST"}, RFC, {("RFC-HS-METHOD", E)}),
    ("PUT under wechat", {"method": "PUT"}, WECHAT, {("RFC-HS-METHOD", E)}),
    ("lower-case get", {"method": "get"}, RFC, {("RFC-HS-METHOD", E)}),
    ("HTTP/1.0", {"http_version": "HTTP/1.0"}, RFC, {("RFC-HS-METHOD", E)}),
    ("HTTP/01.001", {"http_version": "HTTP/01.001"}, RFC, set()),
    ("HTTP/2", {"http_version": "HTTP/2"}, RFC, set()),
    (
        "a version of 5,000 digits",  # (no int of 5,000 digits: Python refuses to make one)
        {"http_version": "HTTP/" + "1" * 5000},
        RFC,
        {("RFC-HS-METHOD", E)},
    ),
    (
        "a minor version of 5,000 digits",
        {"http_version": "1." + "1" * 5000},
        RFC,
        {("RFC-HS-METHOD", E)},
    ),
    ("garbage version", {"http_version": "HTTX"}, RFC, {("RFC-HS-METHOD", E)}),
    ("HTTP/1.1 bare", {"http_version": "1.1"}, RFC, set()),
    # RFC-HS-HEADER-SYNTAX (RFC 7230 §3.2: no control character in a value but HTAB)
    ("NUL in a value", {"add_headers": [("X-A", "a\x00b")]}, RFC, {("RFC-HS-HEADER-SYNTAX", E)}),
    ("CR in a value", {"add_headers": [("Cookie", "a\rb")]}, RFC, {("RFC-HS-HEADER-SYNTAX", E)}),
    (
        "ESC in a read header under wechat",
        {"set_headers": {"User-Agent": UA + "\x1b[0m"}},
        WECHAT,
        {("RFC-HS-HEADER-SYNTAX", E)},
    ),
    ("DEL in a value", {"add_headers": [("X-A", "\x7f")]}, BROWSER, {("RFC-HS-HEADER-SYNTAX", E)}),
    ("HTAB in a value", {"add_headers": [("X-A", "a\tb")]}, RFC, set()),
    ("obs-text in a value", {"add_headers": [("X-A", "caf\xe9")]}, RFC, set()),
    # RFC-HS-HOST (RFC 7230 §5.4): every profile, as browsers and wx always send one
    ("no Host", {"set_headers": {"Host": None}}, RFC, {("RFC-HS-HOST", E)}),
    ("no Host under browser", {"set_headers": {"Host": None}}, BROWSER, {("RFC-HS-HOST", E)}),
    ("no Host under wechat", {"set_headers": {"Host": None}}, WECHAT, {("RFC-HS-HOST", E)}),
    ("empty Host", {"set_headers": {"Host": " "}}, RFC, {("RFC-HS-HOST", E)}),
    ("two Hosts", {"add_headers": [("Host", "evil.example")]}, RFC, {("RFC-HS-HOST", E)}),
    (
        "two equal Hosts",
        {"add_headers": [("host", "chat.example.com")]},
        RFC,
        {("RFC-HS-HOST", E)},
    ),
    (
        "two Hosts under wechat",
        {"add_headers": [("Host", "chat.example.com")]},
        WECHAT,
        {("RFC-HS-HOST", E)},
    ),
    ("Host with a port", {"port": 8443}, RFC, set()),
    # RFC-HS-UPGRADE
    ("no Upgrade", {"set_headers": {"Upgrade": None}}, RFC, {("RFC-HS-UPGRADE", E)}),
    ("Upgrade h2c", {"set_headers": {"Upgrade": "h2c"}}, RFC, {("RFC-HS-UPGRADE", E)}),
    ("Upgrade mixed case", {"set_headers": {"Upgrade": "WebSocket"}}, RFC, set()),
    ("no Connection", {"set_headers": {"Connection": None}}, RFC, {("RFC-HS-UPGRADE", E)}),
    (
        "Connection keep-alive only",
        {"set_headers": {"Connection": "keep-alive"}},
        RFC,
        {("RFC-HS-UPGRADE", E)},
    ),
    ("Connection list", {"set_headers": {"Connection": "keep-alive, Upgrade"}}, RFC, set()),
    # RFC-HS-KEY
    (
        "15-byte key",
        {"key": "AAAAAAAAAAAAAAAAAAAA"},  # base64 of 15 zero bytes
        RFC,
        {("RFC-HS-KEY", E)},
    ),
    ("17-byte key", {"key": "AAAAAAAAAAAAAAAAAAAAAAA="}, RFC, {("RFC-HS-KEY", E)}),
    ("not base64", {"key": "not a key at all!!!!!!=="}, RFC, {("RFC-HS-KEY", E)}),
    ("unpadded", {"key": "dGhlIHNhbXBsZSBub25jZQ"}, RFC, {("RFC-HS-KEY", E)}),
    ("non-canonical", {"key": "dGhlIHNhbXBsZSBub25jZR=="}, RFC, {("RFC-HS-KEY", E)}),
    ("missing key", {"set_headers": {"Sec-WebSocket-Key": None}}, RFC, {("RFC-HS-KEY", E)}),
    (
        "two keys",
        {"add_headers": [("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA==")]},
        RFC,
        {("RFC-HS-KEY", E)},
    ),
    # RFC-HS-VERSION
    (
        "version 12",
        {"set_headers": {"Sec-WebSocket-Version": "12"}},
        RFC,
        {("RFC-HS-VERSION", E)},
    ),
    (
        "no version",
        {"set_headers": {"Sec-WebSocket-Version": None}},
        RFC,
        {("RFC-HS-VERSION", E)},
    ),
    (
        "version list",
        {"set_headers": {"Sec-WebSocket-Version": "13, 8"}},
        RFC,
        {("RFC-HS-VERSION", E)},
    ),
    # RFC-HS-SUBPROTOCOL-SYNTAX
    (
        "duplicate in one header",
        {"set_headers": {"Sec-WebSocket-Protocol": "chat.v1, chat.v1"}},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "duplicate across headers",
        {"add_headers": [("Sec-WebSocket-Protocol", "chat.v1")]},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "empty entry",
        {"set_headers": {"Sec-WebSocket-Protocol": "chat.v1,,chat.v2"}},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "empty header",
        {"set_headers": {"Sec-WebSocket-Protocol": ""}},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "space inside",
        {"set_headers": {"Sec-WebSocket-Protocol": "chat v1"}},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "slash is not tchar",
        {"set_headers": {"Sec-WebSocket-Protocol": "chat/1"}},
        RFC,
        {("RFC-HS-SUBPROTOCOL-SYNTAX", E)},
    ),
    (
        "two distinct offers over two headers",
        {"add_headers": [("Sec-WebSocket-Protocol", "chat.v2")]},
        RFC,
        set(),
    ),
    ("no subprotocol at all", {"set_headers": {"Sec-WebSocket-Protocol": None}}, RFC, set()),
    # WX-URL-SCHEME
    ("ws to a public name", {"scheme": "ws", "tls": None}, WECHAT, {("WX-URL-SCHEME", E)}),
    (
        "ws to a LAN address",
        {"scheme": "ws", "tls": None, "host": "192.168.1.20", "port": 8080},
        WECHAT,
        {("WX-URL-SCHEME", W), ("WX-URL-HOST", E)},
    ),
    (
        "ws to loopback",
        {"scheme": "ws", "tls": None, "host": "127.0.0.1", "port": 8080},
        WECHAT,
        {("WX-URL-SCHEME", W), ("WX-URL-HOST", E)},
    ),
    ("ws under browser", {"scheme": "ws", "tls": None}, BROWSER, set()),
    # WX-URL-HOST
    ("IPv4 literal", {"host": "203.0.113.5"}, WECHAT, {("WX-URL-HOST", E)}),
    ("IPv6 literal", {"host": "[2001:db8::1]", "port": 8443}, WECHAT, {("WX-URL-HOST", E)}),
    ("integer IPv4", {"host": "2130706433"}, WECHAT, {("WX-URL-HOST", E)}),
    ("localhost", {"host": "localhost", "port": 8443}, WECHAT, {("WX-URL-HOST", E)}),
    ("api.weixin.qq.com", {"host": "api.weixin.qq.com"}, WECHAT, {("WX-URL-HOST", E)}),
    (
        "allowed exactly, other port",
        {"port": 8443},
        RuleConfig(profile=Profile.WECHAT, allow_hosts=("chat.example.com",)),
        set(),
    ),
    (
        "allowed entry written as a URL",
        {},
        RuleConfig(profile=Profile.WECHAT, allow_hosts=("wss://Chat.Example.com:443",)),
        set(),
    ),
    (
        "parent domain does not match",
        {},
        RuleConfig(profile=Profile.WECHAT, allow_hosts=("example.com",)),
        {("WX-URL-HOST", E)},
    ),
    (
        "Host header wins over the connect target",
        {"set_headers": {"Host": "10.1.2.3"}},
        WECHAT,
        {("WX-URL-HOST", E)},
    ),
    ("IP literal under rfc6455", {"host": "203.0.113.5"}, RFC, set()),
    # WX-TLS-VERSION
    ("TLS 1.1", {"tls": TlsInfo(version="TLSv1.1")}, WECHAT, {("WX-TLS-VERSION", E)}),
    ("TLS 1.0", {"tls": TlsInfo(version="TLSv1")}, WECHAT, {("WX-TLS-VERSION", E)}),
    ("SSLv3", {"tls": TlsInfo(version="SSLv3")}, WECHAT, {("WX-TLS-VERSION", E)}),
    ("TLS 1.2", {"tls": TlsInfo(version="TLSv1.2")}, WECHAT, set()),
    ("TLS version unknown", {"tls": TlsInfo()}, WECHAT, set()),
    # WX-HS-REFERER
    ("no Referer", {"set_headers": {"Referer": None}}, WECHAT, {("WX-HS-REFERER", INF)}),
    (
        "spoofed Referer",
        {
            "set_headers": {
                "Referer": "https://evil.example.com/wx0123456789abcdef/0/page-frame.html"
            }
        },
        WECHAT,
        {("WX-HS-REFERER", E)},
    ),
    (
        "short appid",
        {"set_headers": {"Referer": "https://servicewechat.com/wx1234/0/page-frame.html"}},
        WECHAT,
        {("WX-HS-REFERER", E)},
    ),
    (
        "plain http",
        {"set_headers": {"Referer": REFERER.replace("https:", "http:")}},
        WECHAT,
        {("WX-HS-REFERER", E)},
    ),
    (
        "trailing query",
        {"set_headers": {"Referer": REFERER + "?x=1"}},
        WECHAT,
        {("WX-HS-REFERER", E)},
    ),
    (
        "devtools version",
        {"set_headers": {"Referer": REFERER.replace("/0/", "/devtools/")}},
        WECHAT,
        set(),
    ),
    (
        "release version",
        {"set_headers": {"Referer": REFERER.replace("/0/", "/27/")}},
        WECHAT,
        set(),
    ),
    (
        "touristappid",
        {
            "set_headers": {
                "Referer": "https://servicewechat.com/touristappid/devtools/page-frame.html"
            }
        },
        WECHAT,
        set(),
    ),
    (
        "upper-case hex appid",
        {"set_headers": {"Referer": REFERER.replace("abcdef", "ABCDEF")}},
        WECHAT,
        set(),
    ),
    ("--appid matches", {}, RuleConfig(profile=Profile.WECHAT, appid=APPID), set()),
    (
        "--appid differs",
        {},
        RuleConfig(profile=Profile.WECHAT, appid="wxfedcba9876543210"),
        {("WX-HS-REFERER", E)},
    ),
    # WX-HS-USER-AGENT
    ("no User-Agent", {"set_headers": {"User-Agent": None}}, WECHAT, {("WX-HS-USER-AGENT", W)}),
    (
        "browser User-Agent",
        {"set_headers": {"User-Agent": "Mozilla/5.0 Chrome/156.0"}},
        WECHAT,
        {("WX-HS-USER-AGENT", W)},
    ),
    (
        "WeChat but not a mini-program",
        {"set_headers": {"User-Agent": "Mozilla/5.0 MicroMessenger/8.0.49"}},
        WECHAT,
        {("WX-HS-USER-AGENT", W)},
    ),
    (
        "lower-case tokens pass",
        {"set_headers": {"User-Agent": "x micromessenger/8.0 miniprogramenv/Windows"}},
        WECHAT,
        set(),
    ),
    (
        "browser User-Agent under browser profile",
        {"set_headers": {"User-Agent": "Mozilla/5.0 Chrome/156.0", "Referer": None}},
        BROWSER,
        set(),
    ),
]


@pytest.mark.parametrize(
    ("changes", "cfg", "expected"),
    [pytest.param(c, cfg, e, id=name) for name, c, cfg, e in REQUEST_CASES],
)
def test_check_request(
    changes: dict[str, object], cfg: RuleConfig, expected: set[tuple[str, str]]
) -> None:
    op = make_open(**changes)  # type: ignore[arg-type]
    assert found(check_request(op, cfg)) == expected


def test_repeated_key_is_a_warning() -> None:
    result = check_request(make_open(), RFC, seen_keys=frozenset({KEY}))
    assert found(result) == {("RFC-HS-KEY", W)}
    assert KEY in result[0].message
    assert check_request(make_open(), RFC, seen_keys=frozenset({"other"})) == []


def test_request_ignores_the_response_of_a_live_request() -> None:
    op = make_open(status=0, set_response={"Sec-WebSocket-Accept": None})
    assert check_request(op, WECHAT) == []


def test_request_violations_carry_conn_and_both_values() -> None:
    (v,) = check_request(make_open(conn=9, set_headers={"Sec-WebSocket-Version": "12"}), RFC)
    assert v.conn == 9
    assert v.expected == "13"
    assert v.actual == "12"
    assert "12" in v.message and "13" in v.message and "426" in v.message


def test_ignored_rule_is_not_reported() -> None:
    cfg = RuleConfig(ignore=frozenset({"rfc-hs-method"}))
    assert check_request(make_open(method="POST"), cfg) == []


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        (KEY, True),
        ("AQIDBAUGBwgJCgsMDQ4PEA==", True),
        ("AAAAAAAAAAAAAAAAAAAA", False),
        ("", False),
        ("dGhlIHNhbXBsZSBub25jZQ==\u00e9", False),
    ],
)
def test_key_problem(key: str, ok: bool) -> None:
    assert (key_problem(key) is None) is ok


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("1.2.3.4", True),
        ("::1", True),
        ("0x7f.1", True),
        ("10.1", True),
        ("example.com", False),
        ("example.123abc", False),
        ("chat-1.example.com", False),
    ],
)
def test_is_ip_literal(host: str, ip: bool) -> None:
    assert is_ip_literal(host) is ip


def test_request_host_strips_port_brackets_and_case() -> None:
    assert request_host(make_open(set_headers={"Host": "Chat.Example.COM.:8443"})) == (
        "chat.example.com"
    )
    assert request_host(make_open(set_headers={"Host": "[::1]:443"})) == "::1"
    assert request_host(make_open(set_headers={"Host": None}, host="fallback.example")) == (
        "fallback.example"
    )


def test_wechat_platform() -> None:
    assert wechat_platform(UA) == "android"
    assert wechat_platform("... MiniProgramEnv/Windows WindowsWechat") == "Windows"
    assert wechat_platform("Mozilla/5.0") is None
    assert wechat_platform(None) is None


# -- subprotocol change ----------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [RFC, BROWSER, WECHAT])
def test_subprotocol_change_is_a_warning_in_every_profile(cfg: RuleConfig) -> None:
    recorded = make_open()
    assert check_subprotocol_change(make_open(), recorded, cfg) == []
    live = make_open(set_headers={"Sec-WebSocket-Protocol": "chat.v2"})
    (v,) = check_subprotocol_change(live, recorded, cfg)
    assert (v.rule, v.severity) == ("WX-HS-SUBPROTOCOL-CHANGED", Severity.WARN)
    assert v.expected == ["chat.v1"] and v.actual == ["chat.v2"]


def test_a_redacted_recorded_offer_fits_any_live_token() -> None:
    recorded = make_open(set_headers={"Sec-WebSocket-Protocol": "access_token, <redacted>"})
    live = make_open(set_headers={"Sec-WebSocket-Protocol": "access_token, eyJhbGciOi.x.y"})
    assert check_subprotocol_change(live, recorded, RFC) == []
    fewer = make_open(set_headers={"Sec-WebSocket-Protocol": "access_token"})
    (v,) = check_subprotocol_change(fewer, recorded, RFC)
    assert v.rule == "WX-HS-SUBPROTOCOL-CHANGED"


def test_redacted_offers_are_not_syntax_errors() -> None:
    """A cassette whose subprotocol tokens were redacted still passes ``wstape check``."""
    op = make_open(set_headers={"Sec-WebSocket-Protocol": "<redacted>, <redacted>, chat.v1"})
    assert "RFC-HS-SUBPROTOCOL-SYNTAX" not in {v.rule for v in check_request(op, RFC)}


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        # QA: `Sec-WebSocket-Protocol: ,` was two identical violations, one per empty item.
        ([","], ["Sec-WebSocket-Protocol ',' has 2 empty entries;"]),
        (
            ["a b, c/d, , x, x, a b"],
            [
                "Sec-WebSocket-Protocol 'a b, c/d, , x, x, a b' has an empty entry, has "
                "entries that are not HTTP tokens ('a b', 'c/d') and offers 'x' again;"
            ],
        ),
        (["x, x, x, y, y"], ["Sec-WebSocket-Protocol 'x, x, x, y, y' offers 'x', 'y' again;"]),
        (
            ["chat.v1, ", "chat.v1", "chat.v2"],
            [
                "Sec-WebSocket-Protocol 'chat.v1,' has an empty entry;",
                "Sec-WebSocket-Protocol 'chat.v1' offers 'chat.v1' again;",
            ],
        ),
    ],
    ids=["empty-pair", "every-problem", "repeats", "two-headers"],
)
def test_subprotocol_syntax_is_one_violation_per_header(
    headers: list[str], said: list[str]
) -> None:
    """However many items of a header are wrong, the header is one violation naming them."""
    op = make_open(
        set_headers={"Sec-WebSocket-Protocol": headers[0]},
        add_headers=[("Sec-WebSocket-Protocol", h) for h in headers[1:]],
    )
    got = check_request(op, RFC)
    assert [v.rule for v in got] == ["RFC-HS-SUBPROTOCOL-SYNTAX"] * len(said)
    for v, start in zip(got, said, strict=True):
        assert v.message.startswith(start)
        assert "\n" not in v.message


def test_the_host_violation_names_every_host_sent() -> None:
    op = make_open(add_headers=[("Host", "evil.example"), ("HOST", "chat.example.com")])
    (v,) = check_request(op, RFC)
    assert v.message.startswith(
        "upgrade request has 3 Host headers ('chat.example.com', 'evil.example', "
        "'chat.example.com'); expected exactly one Host"
    )
    assert v.actual == ["chat.example.com", "evil.example", "chat.example.com"]
    (v,) = check_request(make_open(set_headers={"Host": None}), RFC)
    assert v.message.startswith("upgrade request has no Host header;") and v.actual is None


def test_has_control_is_rfc_7230_field_value() -> None:
    """Every byte but the CTLs (0x00-0x1f, 0x7f) is allowed, and HTAB among the CTLs."""
    for b in range(256):
        assert has_control(bytes([b])) is ((b < 0x20 and b != 0x09) or b == 0x7F), b
    assert not has_control(b"") and has_control(b"ok\r\nInjected: 1")


def test_control_characters_are_one_violation_naming_the_headers() -> None:
    op = make_open(add_headers=[("X-A", "a\x00"), ("Cookie", "\x01"), ("X-A", "\n")])
    (v,) = check_request(op, RFC)
    assert v.message == (
        "request headers 'X-A', 'Cookie' hold control characters (0x00 in the first); "
        "expected none in a header value but HTAB (a server answers 400)"
    )
    assert v.actual == ["X-A", "Cookie", "X-A"]
    (v,) = check_request(make_open(add_headers=[("X-B", "\x00")]), RFC)
    assert v.message.startswith("request header 'X-B' holds control character 0x00;")


def test_a_header_of_many_bad_entries_is_one_short_line() -> None:
    value = ", ".join(f"bad {n}" for n in range(10_000))
    (v,) = check_request(make_open(set_headers={"Sec-WebSocket-Protocol": value}), RFC)
    assert "('bad 0', 'bad 1', 'bad 2' and 9997 more)" in v.message
    assert len(v.message) < 400 and v.actual == value


def test_extension_change_is_reported() -> None:
    live = make_open(add_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")])
    (v,) = check_subprotocol_change(live, make_open(), RFC)
    assert "extensions" in v.message
    # Whitespace inside an offer is not a change.
    a = make_open(add_headers=[("Sec-WebSocket-Extensions", "permessage-deflate;x")])
    b = make_open(add_headers=[("Sec-WebSocket-Extensions", "permessage-deflate ; x")])
    assert check_subprotocol_change(a, b, RFC) == []


# -- server response -------------------------------------------------------------------------

RESPONSE_CASES: list[tuple[str, dict[str, object], RuleConfig, set[tuple[str, str]]]] = [
    (
        "accept copied from the recording",
        {"set_response": {"Sec-WebSocket-Accept": accept_key("AQIDBAUGBwgJCgsMDQ4PEA==")}},
        RFC,
        {("RFC-SRV-ACCEPT", E)},
    ),
    ("no accept header", {"set_response": {"Sec-WebSocket-Accept": None}}, RFC, set()),
    (
        "refusal is not checked",
        {
            "status": 403,
            "set_response": {"Sec-WebSocket-Accept": "x", "Sec-WebSocket-Protocol": "zz"},
        },
        RFC,
        set(),
    ),
    (
        "subprotocol not offered",
        {"set_response": {"Sec-WebSocket-Protocol": "chat.v2"}},
        RFC,
        {("RFC-SRV-SUBPROTOCOL", E)},
    ),
    (
        "subprotocol when none offered",
        {"set_headers": {"Sec-WebSocket-Protocol": None}},
        RFC,
        {("RFC-SRV-SUBPROTOCOL", E)},
    ),
    (
        "two subprotocols chosen",
        {
            "set_headers": {"Sec-WebSocket-Protocol": "chat.v1, chat.v2"},
            "set_response": {"Sec-WebSocket-Protocol": "chat.v1, chat.v2"},
        },
        RFC,
        {("RFC-SRV-SUBPROTOCOL", E)},
    ),
    ("none chosen, rfc6455", {"set_response": {"Sec-WebSocket-Protocol": None}}, RFC, set()),
    (
        "none chosen, browser",
        {"set_response": {"Sec-WebSocket-Protocol": None}},
        BROWSER,
        {("BROWSER-SRV-SUBPROTOCOL-ECHO", E)},
    ),
    (
        "none chosen, wechat",
        {"set_response": {"Sec-WebSocket-Protocol": None}},
        WECHAT,
        {("BROWSER-SRV-SUBPROTOCOL-ECHO", E)},
    ),
    (
        "none offered, none chosen",
        {
            "set_headers": {"Sec-WebSocket-Protocol": None},
            "set_response": {"Sec-WebSocket-Protocol": None},
        },
        WECHAT,
        set(),
    ),
]


@pytest.mark.parametrize(
    ("changes", "cfg", "expected"),
    [pytest.param(c, cfg, e, id=name) for name, c, cfg, e in RESPONSE_CASES],
)
def test_check_response(
    changes: dict[str, object], cfg: RuleConfig, expected: set[tuple[str, str]]
) -> None:
    assert found(check_response(make_open(**changes), cfg)) == expected  # type: ignore[arg-type]


def test_accept_violation_names_the_right_value() -> None:
    op = make_open(set_response={"Sec-WebSocket-Accept": "bogus="})
    (v,) = check_response(op, RFC)
    assert v.expected == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" and v.actual == "bogus="


# -- server close codes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (None, set()),
        (1000, set()),
        (1001, set()),
        (1011, set()),
        (1012, set()),
        (1013, set()),
        (1014, set()),
        (4003, set()),
        (3000, set()),
        (1010, {("RFC-SRV-CLOSE-CODE", W)}),
        (1004, {("RFC-SRV-CLOSE-CODE", E)}),
        (1005, {("RFC-SRV-CLOSE-CODE", E)}),
        (1006, {("RFC-SRV-CLOSE-CODE", E)}),
        (1015, {("RFC-SRV-CLOSE-CODE", E)}),
        (999, {("RFC-SRV-CLOSE-CODE", E)}),
        (2999, {("RFC-SRV-CLOSE-CODE", E)}),
        (5000, {("RFC-SRV-CLOSE-CODE", E)}),
    ],
)
def test_check_server_close(code: int | None, expected: set[tuple[str, str]]) -> None:
    result = check_server_close(code, RFC, conn=3)
    assert found(result) == expected
    assert all(v.conn == 3 and str(code) in v.message for v in result)


def test_early_data() -> None:
    assert check_early_data(0, RFC, conn=1) == []
    (v,) = check_early_data(6, WECHAT, conn=1)
    assert (v.rule, v.severity, v.actual) == ("RFC-HS-EARLY-DATA", Severity.ERROR, 6)
    assert "6 bytes" in v.message


def test_user_agent_warning_names_the_platform() -> None:
    op = make_open(set_headers={"User-Agent": "Mozilla/5.0 XWEB MiniProgramEnv/android"})
    [found] = [v for v in check_request(op, WECHAT) if v.rule == "WX-HS-USER-AGENT"]
    assert found.severity is Severity.WARN
    assert "MicroMessenger/" in found.message and "platform android" in found.message


# -- hostile header values --------------------------------------------------------------------


def test_a_long_header_value_is_clipped_in_the_message_and_kept_in_actual() -> None:
    long = "x" * 5000
    offer = ", ".join(f"p{i}" for i in range(2000))
    op = make_open(
        host="h" * 300,
        method="G" * 5000,
        http_version="HTTP/" + "1" * 5000,
        set_headers={
            "Upgrade": long,
            "Connection": long,
            "Sec-WebSocket-Key": long,
            "Sec-WebSocket-Version": long,
            "Sec-WebSocket-Protocol": offer + ", " + "a b" * 2000,
            "Referer": long,
        },
        set_response={"Sec-WebSocket-Accept": long, "Sec-WebSocket-Protocol": "z" * 5000},
        tls=TlsInfo(version=long),
    )
    violations = [*check_request(op, WECHAT), *check_response(op, WECHAT)]
    rules = {v.rule for v in violations}
    assert {
        "RFC-HS-METHOD",
        "RFC-HS-UPGRADE",
        "RFC-HS-KEY",
        "RFC-HS-VERSION",
        "RFC-HS-SUBPROTOCOL-SYNTAX",
        "WX-HS-REFERER",
        "WX-TLS-VERSION",
        "RFC-SRV-SUBPROTOCOL",
        "RFC-SRV-ACCEPT",
    } <= rules
    for v in violations:
        assert len(v.message) < 400, (v.rule, len(v.message))
    # The values themselves stay whole where a report keeps them (--json).
    assert any(v.rule == "RFC-SRV-ACCEPT" and v.actual == long for v in violations)
    assert any(v.rule == "RFC-HS-UPGRADE" and v.actual == long for v in violations)


def test_a_short_header_value_reads_as_before() -> None:
    (v,) = check_request(make_open(set_headers={"Upgrade": "h2c"}), RFC)
    assert v.message.startswith("Upgrade header is 'h2c'; expected")
    (v,) = check_request(make_open(tls=TlsInfo(version="TLSv1.1")), WECHAT)
    assert v.message.startswith("negotiated TLSv1.1; expected")
    (v,) = check_request(make_open(method="POST"), RFC)
    assert v.message.startswith("upgrade request is POST HTTP/1.1; expected")


# -- HandshakeChecks: the memo wstape check uses ----------------------------------------------


def _direct(op: Open, cfg: RuleConfig, seen: frozenset[str]) -> list[Violation]:
    return [*check_request(op, cfg, seen_keys=seen), *check_response(op, cfg)]


_KEYS = st.one_of(
    st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode()),
    st.sampled_from([KEY, f" {KEY}", "short", "", "<redacted>", "AAAAAAAAAAAAAAAAAAAAAB=="]),
)
_VALUES = st.sampled_from(["websocket", "Upgrade", "13", "8", "chat.v1", "a b", "", "x" * 70])
_NAMES = st.sampled_from(
    [
        "Upgrade",
        "connection",
        "Sec-WebSocket-Version",
        "Sec-WebSocket-Protocol",
        "sec-websocket-extensions",
        "Referer",
        "User-Agent",
        "Host",
        "Cookie",
        "Sec-WebSocket-Key",
    ]
)


@st.composite
def _base(draw: st.DrawFn) -> dict[str, object]:
    """What opens of one shape share."""
    return {
        "method": draw(st.sampled_from(["GET", "POST"])),
        "scheme": draw(st.sampled_from(["ws", "wss"])),
        "status": draw(st.sampled_from([101, 101, 403])),
        "set_headers": draw(st.dictionaries(_NAMES, st.none() | _VALUES, max_size=3)),
        "add_headers": draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=2)),
        "tls": draw(st.sampled_from([TLS13, None, TlsInfo(version="TLSv1.1")])),
    }


@st.composite
def _opens(draw: st.DrawFn) -> list[Open]:
    """Opens of a few shapes, each with its own key, accept, conn, client, time, target
    and cookie: what HandshakeChecks remembers a shape over, and what it must not."""
    bases = draw(st.lists(_base(), min_size=1, max_size=3))
    opens = []
    for _ in range(draw(st.integers(1, 12))):
        base = draw(st.sampled_from(bases))
        key = draw(_KEYS)
        accept = draw(st.sampled_from(["right", "right", "wrong", "missing", "twice"]))
        set_response: dict[str, str | None] = {
            "right": {"Sec-WebSocket-Accept": accept_key(key.strip())},
            "wrong": {"Sec-WebSocket-Accept": "bogus="},
            "missing": {"Sec-WebSocket-Accept": None},
            "twice": {},
        }[accept]
        # (a control character in a header no other rule reads: RFC-HS-HEADER-SYNTAX)
        cookie = draw(st.sampled_from(["", "a=1", "b=2", "c=\x00"]))
        op = make_open(
            conn=draw(st.integers(1, 9)),
            started_at=draw(st.floats(0, 1e6)),
            key=key,
            client=draw(st.sampled_from(["10.0.0.7:1", "10.0.0.8:2"])),
            set_response=set_response,
            **base,  # type: ignore[arg-type]
        )
        more = ((b"Cookie", cookie.encode()),) if cookie else ()
        op = replace(op, request_headers=op.request_headers + more)
        if accept == "twice":
            twice = ((b"Sec-WebSocket-Accept", b"bogus="),)
            op = replace(op, response_headers=op.response_headers + twice)
        op = replace(op, target=draw(st.sampled_from(["/chat", "/chat?t=1", "/a?b"])))
        # Now and then one more thing apart from the base: never the same shape.
        tweak = draw(st.sampled_from([{}, {}, *_TWEAKS]))
        opens.append(replace(op, **tweak))
    return opens


_TWEAKS: list[dict[str, object]] = [
    {"tls": TlsInfo(version="TLSv1.0")},
    {"tls": None},
    {"status": 403},
    {"host": "127.0.0.1"},
    {"port": 8443},
    {"http_version": "HTTP/1.0"},
    {"method": "PUT"},
    {"scheme": "ws"},
    {"subprotocol": "other"},
    {"subprotocols": ("a b",)},
    {"extensions": ("x",)},
    {"reason": "Nope"},
    {"body": b"denied"},
]


@settings(max_examples=300)
@given(
    opens=_opens(),
    cfg=st.sampled_from([RFC, BROWSER, WECHAT, RuleConfig(profile=Profile.WECHAT, appid=APPID)]),
)
def test_handshake_checks_give_what_the_rules_give(opens: list[Open], cfg: RuleConfig) -> None:
    memo = HandshakeChecks(cfg)
    seen: set[str] = set()
    for op in opens:
        key = (op.request_header("Sec-WebSocket-Key") or "").strip()
        repeated = frozenset({key}) if key in seen else frozenset()
        assert memo.check(op, repeated) == _direct(op, cfg, repeated)
        seen.add(key)


def test_handshake_checks_remember_a_shape_and_name_each_connection() -> None:
    memo = HandshakeChecks(WECHAT)
    first = make_open(conn=1, set_headers={"Referer": None})
    again = make_open(
        conn=2,
        key="AQIDBAUGBwgJCgsMDQ4PEA==",
        set_headers={"Referer": None, "Cookie": "s=2"},
        client="10.0.0.9:3",
    )
    got = memo.check(first)
    assert {v.rule for v in got} == {"WX-HS-REFERER"} and got[0].conn == 1
    assert memo._seen and memo.check(again) == _direct(again, WECHAT, frozenset())
    assert len(memo._seen) == 1  # (the second open was the first's shape)
    assert memo.check(again)[0].conn == 2


def test_handshake_checks_keep_no_big_shape_and_few_shapes() -> None:
    memo = HandshakeChecks(BROWSER)
    big = make_open(set_headers={"User-Agent": "x" * 5000, "Upgrade": "h2c"})
    assert memo.check(big) == _direct(big, BROWSER, frozenset()) and not memo._seen
    memo.MEMO = 2
    for n in range(5):
        op = make_open(conn=n, host=f"h{n}.example.com", set_headers={"Upgrade": "h2c"})
        assert memo.check(op) == _direct(op, BROWSER, frozenset())
        assert 1 <= len(memo._seen) <= 2


def test_the_rules_read_only_what_the_memo_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """HandshakeChecks is sound only while the rules read no field of an open but those
    its shape keeps, and no header but READ_HEADERS: a new rule that reads more must
    grow the shape."""
    import wstape.core.model as model
    import wstape.core.rules.handshake as handshake
    import wstape.core.rules.helpers as helpers

    names: set[bytes] = set()
    fields: set[str] = set()

    def spy(wrapped: Callable[[Headers, str], object]) -> Callable[[Headers, str], object]:
        def look(headers: Headers, name: str) -> object:
            names.add(name.lower().encode())
            return wrapped(headers, name)

        return look

    monkeypatch.setattr(model, "_get_header", spy(model._get_header))
    monkeypatch.setattr(helpers, "header_values", spy(helpers.header_values))
    monkeypatch.setattr(handshake, "header_values", spy(handshake.header_values))

    class Watched(Open):
        def __getattribute__(self, name: str) -> object:
            fields.add(name)
            return super().__getattribute__(name)

    cases = [
        make_open(),
        make_open(set_headers={"Sec-WebSocket-Key": None, "Referer": "x", "User-Agent": None}),
        make_open(key="short", http_version="HTTP/1.0", tls=TlsInfo(version="TLSv1.0")),
        make_open(set_response={"Sec-WebSocket-Protocol": "other", "Sec-WebSocket-Accept": "x"}),
        make_open(add_headers=[("Sec-WebSocket-Extensions", "permessage-deflate")]),
    ]
    for cfg in (RFC, BROWSER, WECHAT, RuleConfig(profile=Profile.WECHAT, appid=APPID)):
        for op in cases:
            watched = Watched(**{f.name: getattr(op, f.name) for f in fields_of(Open)})
            check_request(watched, cfg, seen_keys=frozenset({KEY}))
            check_response(watched, cfg)
    assert names and names <= READ_HEADERS
    headers = {"request_headers", "response_headers", "request_header", "response_header"}
    read = {f for f in fields if f in {g.name for g in fields_of(Open)}} - headers
    assert "tls" in read and read <= {*SHAPE_FIELDS, "conn"}
    assert not fields & {"target", "started_at", "client", "path", "query", "url"}


# -- HandshakeChecks: an open like the last one, but for its key and accept ------------------

_K2 = "AQIDBAUGBwgJCgsMDQ4PEA=="
_A2 = accept_key(_K2).encode()


def _with(
    op: Open,
    key: bytes | None = None,
    accept: bytes | None = None,
    accept_name: bytes | None = None,
    **fields: object,
) -> Open:
    """``op`` with its key's value, and its first accept's value or name, replaced (bytes
    as given; an open without an accept keeps none)."""
    request = tuple(
        (k, key) if key is not None and k.lower() == b"sec-websocket-key" else (k, v)
        for k, v in op.request_headers
    )
    response = list(op.response_headers)
    at = [j for j, (k, _) in enumerate(response) if k.lower() == b"sec-websocket-accept"]
    if at:
        name, value = response[at[0]]
        response[at[0]] = (accept_name or name, value if accept is None else accept)
    return replace(op, request_headers=request, response_headers=tuple(response), **fields)


_NEXT: list[dict[str, object]] = [
    {},  # the everyday one: the last open's shape
    {"key": b"\x0b" + _K2.encode()},  # strip() drops it, but a control character
    {"key": _K2.encode() + b" "},  # whitespace around: the long way, no violation
    {"key": b"\t" + _K2.encode()},
    {"key": _K2.encode()[:-3] + b"B==", "accept": accept_key(_K2[:-3] + "B==").encode()},
    {"key": _K2.encode() + b"="},
    {"key": "AQIDBAUGBwgJCgsMDQ4PEé==".encode()},
    {"key": KEY.encode(), "accept": accept_key(KEY).encode()},  # the last open's key again
    {"accept": b" " + _A2 + b" "},  # right, as the long way strips it
    {"accept": b"bogus="},
    {"accept": accept_key(KEY).encode()},  # the last open's accept
    {"accept": b"bogus=", "status": 403},
    {"accept_name": b"sec-websocket-accept"},
    {"accept_name": b"Sec-WebSocket-Protocol"},
    {"port": 444},
    {"tls": None},
    {"method": "POST"},
    {"scheme": "ws"},
    {"subprotocol": "other"},
    {"status": 403},
]


@pytest.mark.parametrize("cfg", [RFC, BROWSER, WECHAT])
@pytest.mark.parametrize("change", _NEXT)
def test_an_open_like_the_last_gets_what_the_rules_give(
    cfg: RuleConfig, change: dict[str, object]
) -> None:
    for first in (
        make_open(),
        make_open(set_headers={"Referer": None}, add_headers=[("Cookie", "a=1")]),
        make_open(set_response={"Sec-WebSocket-Accept": None}),
        make_open(add_headers=[("sec-websocket-accept", "x")]),  # (a request header no rule reads)
        make_open(set_response={"Sec-WebSocket-Protocol": None}),
        _reversed(make_open()),  # (the key last, the accept after the subprotocol)
    ):
        op = _with(first, **{"key": _K2.encode(), "accept": _A2, "conn": 2, **change})  # type: ignore[arg-type]
        response = (*op.response_headers, (b"Sec-WebSocket-Accept", b"bogus="))
        nexts = [op, replace(op, response_headers=response)]  # (a second accept, another value)
        for name, value in ((b"Sec-WebSocket-Protocol", b"other"), (b"Upgrade", b"h2c")):
            # (a header before or after the key or the accept)
            for side in ("request_headers", "response_headers"):
                changed = tuple((k, value if k == name else v) for k, v in getattr(op, side))
                nexts.append(replace(op, **{side: changed}))
        for after in nexts:
            key = (after.request_header("Sec-WebSocket-Key") or "").strip()
            for seen in (frozenset(), frozenset({key})):
                memo = HandshakeChecks(cfg)
                assert memo.check(first) == _direct(first, cfg, frozenset())
                assert memo.check(after, seen) == _direct(after, cfg, seen)


def _reversed(op: Open) -> Open:
    return replace(
        op,
        request_headers=op.request_headers[::-1],
        response_headers=op.response_headers[::-1],
    )


def test_an_open_like_the_last_is_told_without_taking_its_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import wstape.core.rules.handshake as handshake

    shaped: list[Open] = []
    shape = handshake._shape

    def spy(op: Open, seen: frozenset[str]) -> object:
        shaped.append(op)
        return shape(op, seen)

    monkeypatch.setattr(handshake, "_shape", spy)
    memo = HandshakeChecks(WECHAT)
    first = make_open(set_headers={"Referer": None})
    again = _with(first, key=_K2.encode(), accept=_A2, conn=2, started_at=5.0)
    assert [v.conn for v in memo.check(first)] == [1]
    assert [v.conn for v in memo.check(again)] == [2]
    assert shaped == [first]  # the second took the short way
    renamed = replace(
        again,
        request_headers=tuple(
            (b"sec-websocket-key" if k == b"Sec-WebSocket-Key" else k, v)
            for k, v in again.request_headers
        ),
    )
    assert memo.check(renamed) == _direct(renamed, WECHAT, frozenset())
    assert shaped == [first, renamed]  # another header name's spelling: its shape taken
    memo.MEMO = 1  # (another shape makes the memo forget: the short way must not answer)
    other = make_open(conn=4, set_headers={"Referer": None, "Upgrade": "h2c"})
    assert memo.check(other) == _direct(other, WECHAT, frozenset())
    later = _with(renamed, key=KEY.encode(), accept=accept_key(KEY).encode(), conn=3)
    assert memo.check(later) == _direct(later, WECHAT, frozenset())
    assert shaped == [first, renamed, other, later]
    assert len(memo._seen) == 1 and memo._cleared == 2


def _decoded_key_problem(key: str) -> str | None:
    """key_problem without its shortcut for a canonical key: the decode it stands for."""
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return "is not base64"
    if len(raw) != 16:
        return f"decodes to {len(raw)} bytes, not 16"
    if base64.b64encode(raw).decode("ascii") != key:
        return "is not canonical base64"
    return None


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


@given(
    st.binary(min_size=16, max_size=16).map(lambda b: base64.b64encode(b).decode())
    | st.text(alphabet=_B64 + "=", min_size=20, max_size=28)
    | st.text(alphabet=_B64, min_size=22, max_size=22).map(lambda t: t + "==")
    | st.text(max_size=30)
)
def test_a_canonical_key_is_told_as_decoding_it_tells(key: str) -> None:
    assert key_problem(key) == _decoded_key_problem(key)
    for odd in (f" {key}", f"{key}\n", key.upper(), f"{key}=", key[:-1]):
        assert key_problem(odd) == _decoded_key_problem(odd)
