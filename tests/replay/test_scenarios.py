"""RULES.md's scenarios 1-9 against the replay server, with real clients on 127.0.0.1.

Each test asserts the exact rule IDs in the report; clean clients get ``passed: true``
and no violations at all.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from tests.helpers.rawclient import RawClient
from tests.replay.conftest import (
    HOST,
    REFERER,
    WX_UA,
    CassetteFactory,
    Serve,
    c,
    close,
    opening,
    rule_ids,
    s,
)
from wstape.core.frames import OpCode, encode_close_body
from wstape.core.model import Side
from wstape.replay import ReplayServer

PROFILES = ["rfc6455", "browser", "wechat"]


def wx_options(profile: str, confdir: Any) -> dict[str, Any]:
    """Serve wss for a wechat client; plain ws is fine for the other profiles."""
    if profile != "wechat":
        return {"profile": profile}
    return {
        "profile": profile,
        "appid": "wx0123456789abcdef",
        "tls": True,
        "hostnames": (HOST,),
        "confdir": confdir,
    }


def connect(
    server: ReplayServer,
    path: str,
    client_tls: ssl.SSLContext | None = None,
    **kw: Any,
) -> Any:
    """A websockets client that looks like a mini-program when the server is wss."""
    kw.setdefault("compression", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    if server.options.tls is not None:
        assert client_tls is not None
        headers = {"Referer": REFERER}
        headers.update(kw.pop("additional_headers", {}))
        return websockets.connect(
            f"wss://{HOST}:{server.port}{path}",
            host="127.0.0.1",
            ssl=client_tls,
            server_hostname=HOST,
            additional_headers=headers,
            user_agent_header=WX_UA,
            **kw,
        )
    return websockets.connect(f"{server.url}{path}", **kw)


async def recv_text(ws: ClientConnection) -> str:
    message = await asyncio.wait_for(ws.recv(), 5)
    assert isinstance(message, str)
    return message


async def finished(server: ReplayServer) -> None:
    assert await server.wait_played(5), "not every recorded connection was played"


# -- 1. chat ------------------------------------------------------------------------

CHAT = [
    opening(1, scheme="wss", subprotocols=("chat.v1",), subprotocol="chat.v1"),
    c(1, 0.05, {"type": "hello", "user": "u1"}),
    s(1, 0.1, {"type": "welcome", "room": "lobby"}),
    c(1, 0.2, {"type": "ping"}),
    s(1, 0.21, {"type": "pong"}),
    c(1, 0.3, {"type": "say", "text": "你好"}),
    s(1, 0.35, {"type": "said", "text": "你好", "from": "u1"}),
    c(1, 0.4, {"type": "ping"}),
    s(1, 0.41, {"type": "pong"}),
    close(1, 0.5, Side.CLIENT, 1000, "bye"),
]


@pytest.mark.parametrize("profile", PROFILES)
async def test_1_chat_clean_client_passes(
    profile: str,
    make_cassette: CassetteFactory,
    serve: Serve,
    confdir: Any,
    client_tls: ssl.SSLContext,
) -> None:
    server = await serve(make_cassette(CHAT), **wx_options(profile, confdir))
    async with connect(server, "/chat", client_tls, subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol == "chat.v1"
        await ws.send('{"type":"hello","user":"u1"}')
        assert await recv_text(ws) == '{"type":"welcome","room":"lobby"}'
        for _ in range(3):  # the client's own heartbeat pace
            await ws.send('{"type":"ping"}')
            assert await recv_text(ws) == '{"type":"pong"}'
        await ws.send('{"type":"say","text":"你好"}')
        assert await recv_text(ws) == '{"type":"said","text":"你好","from":"u1"}'
        await ws.close(1000, "bye")
    await finished(server)
    await server.stop()
    report = server.report().to_dict()
    # The pings were detected as heartbeats: the report says so, as a note, and passes.
    [note] = report["violations"]
    assert (note["rule"], note["severity"]) == ("REPLAY-HEARTBEAT-DETECTED", "info")
    assert note["expected"] == ['client ping \'{"type":"ping"}\' => \'{"type":"pong"}\'']
    assert report["passed"] is True
    [row] = report["connections"]
    assert (row["messages_expected"], row["messages_matched"]) == (2, 2)
    assert row["close"] == {"by": "client", "code": 1000, "reason": "bye"}


async def test_1_chat_mismatch_and_json_matcher(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    cassette = make_cassette(CHAT)
    for match, expected in (("exact", ["REPLAY-MESSAGE-MISMATCH"]), ("json", [])):
        server = await serve(cassette, match=match, ignore_json_paths=("$.user",))
        async with connect(server, "/chat", subprotocols=["chat.v1"]) as ws:
            await ws.send('{"user": "u2", "type": "hello"}')
            await recv_text(ws)
            await ws.send('{"type":"say","text":"你好"}')
            await recv_text(ws)
            await ws.close(1000, "bye")
        await finished(server)
        assert rule_ids(server) == expected


async def test_1_chat_silent_client(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(CHAT), timeout=0.3)
    async with connect(server, "/chat", subprotocols=["chat.v1"]) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1000
    await finished(server)
    assert rule_ids(server) == ["REPLAY-CLIENT-SILENT"]


async def test_1_chat_binary_instead_of_text(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(CHAT))
    async with connect(server, "/chat", subprotocols=["chat.v1"]) as ws:
        await ws.send(b'{"type":"hello","user":"u1"}')
        await recv_text(ws)
        await ws.send('{"type":"say","text":"你好"}')
        await recv_text(ws)
        await ws.close(1000, "bye")
    await finished(server)
    assert rule_ids(server) == ["WX-SEND-TYPE"]


# -- 2. binary stream, fragmented server message with a Ping between fragments -------

STREAM = [
    opening(1, "/stream"),
    c(1, 0.01, b"\x01subscribe", binary=True),
    s(1, 0.02, bytes(range(256)) * 40, binary=True),
    s(1, 0.03, b"\x02tail", binary=True),
    close(1, 0.1, Side.CLIENT, 1000, ""),
]


async def test_2_fragmented_stream_with_ping_pong_echo(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(STREAM), fragment_size=4096)
    async with connect(server, "/stream") as ws:
        await ws.send(b"\x01subscribe")
        assert await asyncio.wait_for(ws.recv(), 5) == bytes(range(256)) * 40
        assert await asyncio.wait_for(ws.recv(), 5) == b"\x02tail"
        await ws.close(1000)
    await finished(server)
    assert rule_ids(server) == []


async def test_2_raw_view_and_wrong_pong(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(STREAM), fragment_size=4096)
    raw = await RawClient.connect(server.port)
    assert (await raw.handshake("/stream")).status == 101
    await raw.send(OpCode.BINARY, b"\x01subscribe")
    frames = [await raw.recv() for _ in range(5)]
    assert [(f.opcode, f.fin) for f in frames if f is not None] == [
        (OpCode.BINARY, False),
        (OpCode.PING, True),
        (OpCode.CONTINUATION, False),
        (OpCode.CONTINUATION, True),
        (OpCode.BINARY, True),
    ]
    await raw.send(OpCode.PONG, b"not the ping payload")
    await raw.send_close(encode_close_body(1000))
    await raw.recv_until_close()
    await raw.aclose()
    await finished(server)
    assert rule_ids(server) == ["RFC-PONG-ECHO"]


# -- 3. close reasons: bytes, not characters --------------------------------------

REASON_123 = "用户主动退出登录" * 5 + "谢"


def closing_cassette(code: int | None = 4001, reason: str = REASON_123) -> list[Any]:
    return [opening(1, "/bye"), close(1, 0.01, Side.CLIENT, code, reason)]


@pytest.mark.parametrize(
    "reason", [REASON_123, "😀" * 30 + "abc"], ids=["123-bytes-cjk", "123-bytes-emoji"]
)
async def test_3_longest_reasons_pass(
    reason: str, make_cassette: CassetteFactory, serve: Serve
) -> None:
    assert len(reason.encode()) == 123
    server = await serve(make_cassette(closing_cassette(4001, reason)), profile="browser")
    async with connect(server, "/bye") as ws:
        await ws.close(4001, reason)
    await finished(server)
    assert rule_ids(server) == []
    assert server.report().connections[0].close.reason == reason


@pytest.mark.parametrize(
    ("body", "expected", "answer"),
    [
        (
            encode_close_body(4001, REASON_123 + "谢"),
            ["REPLAY-CLOSE-CHANGED", "RFC-CLOSE-REASON-LENGTH", "RFC-FRAME-CONTROL"],
            1002,
        ),
        (
            encode_close_body(4001, REASON_123.encode()[:-1]),
            ["REPLAY-CLOSE-CHANGED", "RFC-CLOSE-REASON-UTF8"],
            1007,
        ),
    ],
    ids=["126-byte-reason", "cut-inside-a-character"],
)
async def test_3_bad_reasons_fail(
    body: bytes, expected: list[str], answer: int, make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(closing_cassette()))
    raw = await RawClient.connect(server.port)
    assert (await raw.handshake("/bye")).status == 101
    await raw.send_close(body)
    [reply] = await raw.recv_until_close()
    assert int.from_bytes(reply.payload[:2], "big") == answer
    assert await raw.wait_closed()
    await raw.aclose()
    await finished(server)
    assert rule_ids(server) == expected


# -- 4. client close codes -------------------------------------------------------

CODES: list[tuple[bytes, str, list[str]]] = [
    (encode_close_body(1001), "browser", ["BROWSER-CLOSE-CODE"]),
    (encode_close_body(1001), "wechat", ["BROWSER-CLOSE-CODE"]),
    (encode_close_body(1005), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(1006), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(1015), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(1004), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(2999), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(999), "rfc6455", ["RFC-CLOSE-CODE"]),
    (encode_close_body(5000), "rfc6455", ["RFC-CLOSE-CODE"]),
    (b"\x03", "rfc6455", ["RFC-CLOSE-PAYLOAD"]),
    (b"", "wechat", ["WX-CLOSE-DEFAULT"]),
]


@pytest.mark.parametrize(
    ("body", "profile", "expected"),
    CODES,
    ids=[f"{b.hex() or 'empty'}-{p}" for b, p, _ in CODES],
)
async def test_4_client_close_codes(
    body: bytes,
    profile: str,
    expected: list[str],
    make_cassette: CassetteFactory,
    serve: Serve,
    confdir: Any,
    client_tls: ssl.SSLContext,
) -> None:
    # The recording closed the same way, so REPLAY-CLOSE-CHANGED stays out of the way.
    code = int.from_bytes(body[:2], "big") if len(body) >= 2 else None
    recorded = closing_cassette(code if code is not None else 1005, "")
    recorded[0] = opening(1, "/bye", scheme="wss" if profile == "wechat" else "ws")
    server = await serve(make_cassette(recorded), **wx_options(profile, confdir))
    if profile == "wechat":
        raw = await RawClient.connect(server.port, ssl_context=client_tls, server_hostname=HOST)
        headers = (("Referer", REFERER), ("User-Agent", WX_UA))
        answer = await raw.handshake("/bye", host=HOST, headers=headers)
    else:
        raw = await RawClient.connect(server.port)
        answer = await raw.handshake("/bye")
    assert answer.status == 101
    await raw.send_close(body)
    await raw.recv_until_close()
    await raw.aclose()
    await finished(server)
    report = server.report()
    assert sorted({v.rule for v in report.violations}) == expected
    severities = {v.severity.value for v in report.violations}
    if profile == "wechat":
        assert severities == {"warn"} and report.passed  # device: 1001 and 1005 are warnings
    else:
        assert severities == {"error"} and not report.passed


# -- 5. server-initiated close ----------------------------------------------------


@pytest.mark.parametrize(("code", "reason"), [(4003, "kicked"), (1013, "")])
async def test_5_server_close_answered(
    code: int, reason: str, make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [
        opening(1, "/kick"),
        s(1, 0.01, "bye now"),
        close(1, 0.02, Side.SERVER, code, reason),
    ]
    server = await serve(make_cassette(records))
    async with connect(server, "/kick") as ws:
        assert await recv_text(ws) == "bye now"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert (ws.close_code, ws.close_reason) == (code, reason)
    await finished(server)
    assert rule_ids(server) == []
    [row] = server.report().connections
    assert (row.close.by, row.close.code, row.close.reason) == ("server", code, reason)


async def test_5_server_close_not_answered(make_cassette: CassetteFactory, serve: Serve) -> None:
    records = [opening(1, "/kick"), close(1, 0.0, Side.SERVER, 4003, "kicked")]
    server = await serve(make_cassette(records))
    raw = await RawClient.connect(server.port)
    await raw.handshake("/kick")
    [frame] = await raw.recv_until_close()
    assert frame.payload == encode_close_body(4003, "kicked")
    await raw.aclose()  # hang up instead of answering
    await finished(server)
    assert rule_ids(server) == ["RFC-CLOSE-HANDSHAKE"]
    assert server.report().passed


# -- 6. server drops TCP (recorded 1006); the client reconnects ---------------------


def dropping(n: int) -> list[Any]:
    records: list[Any] = []
    for conn in range(1, n + 1):
        records += [opening(conn, "/feed"), s(conn, 0.0, f"hello {conn}")]
        records.append(close(conn, 0.01, Side.SERVER, 1006))
    records += [
        opening(n + 1, "/feed"),
        s(n + 1, 0.0, "stable"),
        close(n + 1, 0.1, Side.CLIENT, 1000),
    ]
    return records


async def _reconnecting_client(server: ReplayServer, delays: list[float]) -> list[int | None]:
    codes: list[int | None] = []
    for delay in [*delays, None]:
        async with connect(server, "/feed") as ws:
            await recv_text(ws)
            if delay is None:
                await ws.close(1000)
                break
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(ws.recv(), 5)
            codes.append(ws.close_code)
        await asyncio.sleep(delay)
    return codes


async def test_6_drop_and_reconnect_with_backoff(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(dropping(3)))
    codes = await _reconnecting_client(server, [0.1, 0.3, 0.9])
    assert codes == [1006, 1006, 1006]  # no Close frame came
    await finished(server)
    assert rule_ids(server) == []


async def test_6_reconnect_storm_is_a_warning(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(dropping(5)))
    await _reconnecting_client(server, [0.0] * 5)
    await finished(server)
    assert rule_ids(server) == ["RFC-RECONNECT-BACKOFF"]
    assert server.report().passed


# -- 7. six sockets at once under wechat ------------------------------------------


async def test_7_six_sockets_under_wechat(
    make_cassette: CassetteFactory, serve: Serve, confdir: Any, client_tls: ssl.SSLContext
) -> None:
    records: list[Any] = []
    for conn in range(1, 7):
        records += [opening(conn, "/multi", scheme="wss"), close(conn, 0.5, Side.CLIENT, 1000)]
    server = await serve(make_cassette(records), **wx_options("wechat", confdir))
    sockets = [await connect(server, "/multi", client_tls) for _ in range(6)]
    for ws in sockets:
        await ws.close(1000)
    await finished(server)
    report = server.report()
    limit = [v for v in report.violations if v.rule == "WX-SOCKET-LIMIT"]
    assert rule_ids(server) == ["WX-SOCKET-LIMIT"]
    assert [(v.severity.value, v.actual) for v in limit] == [("warn", 3), ("error", 6)]
    assert not report.passed


# -- 8. handshake negatives -------------------------------------------------------

HS = [
    opening(1, "/hs", subprotocols=("chat.v1",), subprotocol="chat.v1"),
    close(1, 0.01, Side.CLIENT, 1000),
]


@pytest.mark.parametrize(
    ("request_kw", "status", "expected"),
    [
        ({"method": "POST"}, 405, ["RFC-HS-METHOD"]),
        ({"version": "12"}, 426, ["RFC-HS-VERSION"]),
        ({"key": "AAAAAAAAAAAAAAAAAAAA"}, 400, ["RFC-HS-KEY"]),
        (
            {"protocols": "chat.v1, chat.v1"},
            101,
            ["RFC-HS-SUBPROTOCOL-SYNTAX", "WX-HS-SUBPROTOCOL-CHANGED"],
        ),
    ],
    ids=["post", "version-12", "15-byte-key", "duplicate-subprotocols"],
)
async def test_8_handshake_negatives(
    request_kw: dict[str, Any],
    status: int,
    expected: list[str],
    make_cassette: CassetteFactory,
    serve: Serve,
) -> None:
    server = await serve(make_cassette(HS))
    raw = await RawClient.connect(server.port)
    request_kw.setdefault("protocols", "chat.v1")
    answer = await raw.handshake("/hs", **request_kw)
    assert answer.status == status
    if status == 426:
        assert answer.headers["sec-websocket-version"] == "13"
    if status == 101:
        await raw.send_close(encode_close_body(1000))
        await raw.recv_until_close()
    else:
        assert await raw.wait_closed()
    await raw.aclose()
    assert rule_ids(server) == expected


async def test_8_recorded_subprotocol_not_offered(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [
        opening(1, "/hs", subprotocols=("chat.v1",), subprotocol="chat.v2"),
        close(1, 0.01, Side.CLIENT, 1000),
    ]
    server = await serve(make_cassette(records), profile="browser")
    async with connect(server, "/hs", subprotocols=["chat.v1"]) as ws:
        assert ws.subprotocol is None  # never a subprotocol the client did not offer
        await ws.close(1000)
    await finished(server)
    assert rule_ids(server) == ["BROWSER-SRV-SUBPROTOCOL-ECHO"]


async def test_8_unknown_path_is_404(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(HS))
    raw = await RawClient.connect(server.port)
    assert (await raw.handshake("/nowhere")).status == 404
    await raw.aclose()
    [v] = server.report().violations
    assert (v.rule, v.conn) == ("REPLAY-UNMATCHED-CONNECTION", None)


# -- 9. big message, biggest Ping -------------------------------------------------


async def test_9_one_mib_message_and_125_byte_ping(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB
    records = [
        opening(1, "/big"),
        c(1, 0.0, big, binary=True),
        s(1, 0.01, big[::-1], binary=True),
        close(1, 0.02, Side.CLIENT, 1000),
    ]
    server = await serve(make_cassette(records))
    async with connect(server, "/big", max_size=None) as ws:
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), 5) == big[::-1]
        pong = await ws.ping(b"p" * 125)
        await asyncio.wait_for(pong, 5)
        await ws.close(1000)
    await finished(server)
    assert rule_ids(server) == []
