"""The scenarios of RULES.md ("Scenarios every profile must be tested against"), offline.

Each scenario runs under rfc6455, browser, wechat on a device and wechat with
``--platform devtools``, with the violations each profile must (and must not) report.
Scenarios 1, 5, 6 and 7 are whole sessions and run through the cassette lint; the others
go straight to the rule functions. Nothing here needs a network.
"""

from __future__ import annotations

import pytest

from tests.core.rules.test_handshake import make_open
from wstape.core.frames import Frame, OpCode
from wstape.core.lint import check_records
from wstape.core.model import Close, Message, Opcode, Open, Record, Side
from wstape.core.rules import (
    FrameState,
    Profile,
    RuleConfig,
    Violation,
    check_client_close,
    check_frame,
    check_pong,
    check_request,
    check_response,
    close_body,
)

PROFILES = {
    "rfc6455": RuleConfig(),
    "browser": RuleConfig(profile=Profile.BROWSER),
    "wechat": RuleConfig(profile=Profile.WECHAT),
    "devtools": RuleConfig(profile=Profile.WECHAT, platform="devtools"),
}
ALL = list(PROFILES)


def found(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.rule, v.severity.value) for v in violations}


def frames_clean(frames: list[Frame], cfg: RuleConfig) -> list[Violation]:
    state, out = FrameState(), []
    for frame in frames:
        state, found_now = check_frame(frame, state, cfg)
        out += found_now
    return out


# -- 1. chat -------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL)
def test_1_chat(profile: str) -> None:
    cfg = PROFILES[profile]
    records: list[Record] = [
        make_open(),  # wss, wx Referer, chat.v1 offered and echoed
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b'{"type":"join","room":"r1"}'),
        Message(1, 0.2, Side.SERVER, Opcode.TEXT, b'{"type":"joined"}'),
        Message(1, 5.0, Side.CLIENT, Opcode.TEXT, b'{"type":"ping"}'),
        Message(1, 5.0, Side.SERVER, Opcode.TEXT, b'{"type":"pong"}'),
        Close(1, 6.0, Side.CLIENT, 1000, ""),
    ]
    assert check_records(records, cfg) == []
    frames = [Frame(OpCode.TEXT, b'{"type":"ping"}'), Frame(OpCode.CLOSE, close_body(1000))]
    assert frames_clean(frames, cfg) == []


# -- 2. binary stream, server Ping between fragments, Pong echo --------------------------------


@pytest.mark.parametrize("profile", ALL)
def test_2_binary_stream_and_pong_echo(profile: str) -> None:
    cfg = PROFILES[profile]
    ping = b"\x00\x01hb"
    # While the server's fragmented message is in flight it sends a Ping; the client keeps
    # sending ArrayBuffers and answers the Ping with the same payload.
    frames = [
        Frame(OpCode.BINARY, b"\x10" * 300),
        Frame(OpCode.PONG, ping),
        Frame(OpCode.BINARY, b"\x11" * 10, fin=False),
        Frame(OpCode.CONTINUATION, b"\x12" * 10),
    ]
    assert frames_clean(frames, cfg) == []
    assert check_pong(ping, ping, cfg) == []
    assert found(check_pong(ping, b"\x00\x01", cfg)) == {("RFC-PONG-ECHO", "error")}
    records: list[Record] = [
        make_open(),
        Message(1, 0.1, Side.SERVER, Opcode.BINARY, b"\x00" * 70000),
        Message(1, 0.2, Side.CLIENT, Opcode.BINARY, b"\xff\xfe\x00"),  # not UTF-8: fine
    ]
    assert check_records(records, cfg) == []


# -- 3. close reasons at the 123-byte limit ---------------------------------------------------

REASONS = [
    ("用户主动退出登录" * 5 + "谢").encode(),  # 41 characters, 123 bytes
    ("用户主动退出登录" * 5 + "谢谢").encode(),  # 126 bytes
    ("😀" * 30 + "abc").encode(),  # 123 bytes
    "再见朋友".encode()[:-1],  # cut inside the last character
]


@pytest.mark.parametrize("profile", ALL)
def test_3_close_reasons(profile: str) -> None:
    cfg = PROFILES[profile]
    assert len(REASONS[0]) == 123 and len(close_body(4001, REASONS[0].decode())) == 125
    assert len(REASONS[1]) == 126 and len(REASONS[2]) == 123

    def check(reason: bytes) -> set[tuple[str, str]]:
        return found(check_client_close((4001).to_bytes(2, "big") + reason, cfg))

    assert check(REASONS[0]) == set()
    assert check(REASONS[1]) == {("RFC-CLOSE-REASON-LENGTH", "error")}
    assert check(REASONS[2]) == set()
    assert check(REASONS[3]) == {("RFC-CLOSE-REASON-UTF8", "error")}


# -- 4. client close codes -------------------------------------------------------------------

BCC = "BROWSER-CLOSE-CODE"
CODE = "RFC-CLOSE-CODE"
SCENARIO_4: dict[object, dict[str, set[tuple[str, str]]]] = {
    1001: {
        "rfc6455": set(),
        "browser": {(BCC, "error")},
        "wechat": {(BCC, "warn")},
        "devtools": {(BCC, "error")},
    },
    **{
        code: {
            "rfc6455": {(CODE, "error")},
            "browser": {(CODE, "error"), (BCC, "error")},
            "wechat": {(CODE, "error"), (BCC, "warn")},
            "devtools": {(CODE, "error"), (BCC, "error")},
        }
        for code in (1005, 1006, 1015, 1004, 2999, 999, 5000)
    },
    "1-byte body": {p: {("RFC-CLOSE-PAYLOAD", "error")} for p in ALL},
    "empty body": {
        "rfc6455": set(),
        "browser": set(),
        "wechat": {("WX-CLOSE-DEFAULT", "warn")},
        "devtools": {("WX-CLOSE-DEFAULT", "warn")},
    },
}


@pytest.mark.parametrize("profile", ALL)
@pytest.mark.parametrize("case", list(SCENARIO_4), ids=str)
def test_4_close_codes(case: object, profile: str) -> None:
    if case == "1-byte body":
        body = b"\x03"
    elif case == "empty body":
        body = b""
    else:
        assert isinstance(case, int)
        body = close_body(case, "")
    assert found(check_client_close(body, PROFILES[profile])) == SCENARIO_4[case][profile]


# -- 5. server-initiated close; the client answers -------------------------------------------


@pytest.mark.parametrize("profile", ALL)
@pytest.mark.parametrize(("code", "reason"), [(4003, "kicked"), (1013, "")])
def test_5_server_close(profile: str, code: int, reason: str) -> None:
    cfg = PROFILES[profile]
    records: list[Record] = [make_open(), Close(1, 2.0, Side.SERVER, code, reason)]
    assert check_records(records, cfg) == []
    # The client's answer echoes the server's code: not a client-started close.
    echo = close_body(code, "")
    assert check_client_close(echo, cfg, started_by_client=False, server_code=code) == []


# -- 6. server drops TCP; the client reconnects with backoff ---------------------------------

RECONNECT_KEYS = [f"{chr(65 + i)}QIDBAUGBwgJCgsMDQ4PEA==" for i in range(8)]


def dropped_then(times: list[float], cfg: RuleConfig) -> list[Violation]:
    records: list[Open | Close] = [
        make_open(conn=1, started_at=0.0),
        Close(1, 5.0, Side.SERVER, 1006, "", on_wire=False),
    ]
    for i, at in enumerate(times):
        records.append(make_open(conn=i + 2, started_at=at, key=RECONNECT_KEYS[i], status=502))
    return check_records(records, cfg)


@pytest.mark.parametrize("profile", ALL)
def test_6_reconnect_backoff(profile: str) -> None:
    cfg = PROFILES[profile]
    assert dropped_then([6.0, 8.0, 12.0, 20.0, 36.0], cfg) == []
    storm = dropped_then([5.1, 5.2, 5.3, 5.4, 5.5], cfg)
    assert found(storm) == {("RFC-RECONNECT-BACKOFF", "warn")}


# -- 7. six sockets at once ----------------------------------------------------------------


@pytest.mark.parametrize("profile", ALL)
def test_7_six_sockets(profile: str) -> None:
    cfg = PROFILES[profile]
    records = [make_open(conn=i + 1, started_at=float(i), key=RECONNECT_KEYS[i]) for i in range(6)]
    result = [(v.rule, v.severity.value, v.conn) for v in check_records(records, cfg)]
    if profile in ("wechat", "devtools"):
        assert result[-1] == ("WX-SOCKET-LIMIT", "error", 6)
        assert [r for r in result if r[1] == "error"] == [("WX-SOCKET-LIMIT", "error", 6)]
    else:
        assert result == []


# -- 8. handshake negatives ------------------------------------------------------------------

WX_ONLY = {"rfc6455": False, "browser": False, "wechat": True, "devtools": True}
EVERYWHERE = dict.fromkeys(ALL, True)

SCENARIO_8: list[tuple[str, dict[str, object], str, dict[str, bool]]] = [
    ("ws:// under wechat", {"scheme": "ws", "tls": None}, "WX-URL-SCHEME", WX_ONLY),
    ("IP-literal host", {"host": "198.51.100.7"}, "WX-URL-HOST", WX_ONLY),
    (
        "spoofed Referer",
        {"set_headers": {"Referer": "https://servicewechat.com.evil.cn/x/0/page-frame.html"}},
        "WX-HS-REFERER",
        WX_ONLY,
    ),
    ("POST", {"method": "POST"}, "RFC-HS-METHOD", EVERYWHERE),
    ("version 12", {"set_headers": {"Sec-WebSocket-Version": "12"}}, "RFC-HS-VERSION", EVERYWHERE),
    ("15-byte key", {"key": "AAECAwQFBgcICQoLDA0O"}, "RFC-HS-KEY", EVERYWHERE),
    (
        "duplicate subprotocols",
        {"set_headers": {"Sec-WebSocket-Protocol": "chat.v1, chat.v1"}},
        "RFC-HS-SUBPROTOCOL-SYNTAX",
        EVERYWHERE,
    ),
]


@pytest.mark.parametrize("profile", ALL)
@pytest.mark.parametrize(
    ("changes", "rule", "where"),
    [pytest.param(c, r, w, id=name) for name, c, r, w in SCENARIO_8],
)
def test_8_handshake_negatives(
    changes: dict[str, object], rule: str, where: dict[str, bool], profile: str
) -> None:
    result = check_request(make_open(**changes), PROFILES[profile])  # type: ignore[arg-type]
    if where[profile]:
        assert found(result) == {(rule, "error")}
    else:
        assert result == []


@pytest.mark.parametrize("profile", ALL)
def test_8_server_picks_a_subprotocol_not_offered(profile: str) -> None:
    op = make_open(set_response={"Sec-WebSocket-Protocol": "chat.v9"})
    assert found(check_response(op, PROFILES[profile])) == {("RFC-SRV-SUBPROTOCOL", "error")}


# -- 9. a 1 MiB binary message and a 125-byte Ping -------------------------------------------


@pytest.mark.parametrize("profile", ALL)
def test_9_big_message_and_largest_ping(profile: str) -> None:
    cfg = PROFILES[profile]
    mib = b"\xa5" * (1 << 20)
    fragments = [mib[i : i + 65536] for i in range(0, len(mib), 65536)]
    frames = [
        Frame(OpCode.BINARY, mib),
        Frame(OpCode.BINARY, fragments[0], fin=False),
        *[Frame(OpCode.CONTINUATION, part, fin=False) for part in fragments[1:-1]],
        Frame(OpCode.CONTINUATION, fragments[-1]),
        Frame(OpCode.PING, b"p" * 125),
        Frame(OpCode.PONG, b"p" * 125),
    ]
    assert frames_clean(frames, cfg) == []
    assert check_pong(b"p" * 125, b"p" * 125, cfg) == []
    records: list[Record] = [make_open(), Message(1, 0.5, Side.CLIENT, Opcode.BINARY, mib)]
    assert check_records(records, cfg) == []
    # One byte more and the Ping breaks §5.5.
    assert found(frames_clean([Frame(OpCode.PING, b"p" * 126)], cfg)) == {
        ("RFC-FRAME-CONTROL", "error")
    }
