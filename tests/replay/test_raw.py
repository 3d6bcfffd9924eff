"""What no client library sends, through a raw socket: the server reports the rule,
fails that connection as RFC 6455 says, and keeps serving the others."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.helpers.rawclient import RawClient, request_bytes
from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, rule_ids, s
from wstape.core.frames import OpCode, encode_close_body, encode_frame
from wstape.core.model import Side
from wstape.replay import ReplayServer

ECHO = [
    opening(1, "/echo"),
    c(1, 0.01, "one"),
    s(1, 0.02, "1"),
    c(1, 0.03, "two"),
    s(1, 0.04, "2"),
    close(1, 0.05, Side.CLIENT, 1000),
]


async def _open(server_port: int) -> RawClient:
    raw = await RawClient.connect(server_port)
    assert (await raw.handshake("/echo")).status == 101
    return raw


@pytest.mark.parametrize(
    ("frame", "rule", "code"),
    [
        (encode_frame(OpCode.TEXT, b"one"), "RFC-FRAME-MASK", 1002),
        (encode_frame(OpCode.TEXT, b"one", rsv1=True, mask_key=b"abcd"), "RFC-FRAME-RSV", 1002),
        (encode_frame(0x3, b"", mask_key=b"abcd"), "RFC-FRAME-OPCODE", 1002),
        (encode_frame(OpCode.PING, b"x" * 126, mask_key=b"abcd"), "RFC-FRAME-CONTROL", 1002),
        (encode_frame(OpCode.PING, b"x", fin=False, mask_key=b"abcd"), "RFC-FRAME-CONTROL", 1002),
        (encode_frame(OpCode.CONTINUATION, b"x", mask_key=b"abcd"), "RFC-FRAME-FRAGMENTS", 1002),
        (encode_frame(OpCode.TEXT, b"\xc3\x28", mask_key=b"abcd"), "RFC-TEXT-UTF8", 1007),
    ],
    ids=[
        "unmasked",
        "rsv1",
        "reserved-opcode",
        "big-ping",
        "fragmented-ping",
        "stray-continuation",
        "bad-utf8",
    ],
)
async def test_bad_frames_fail_only_that_connection(
    frame: bytes, rule: str, code: int, make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [
        *ECHO,
        opening(2, "/echo"),
        c(2, 0.01, "one"),
        s(2, 0.02, "1"),
        c(2, 0.03, "two"),
        s(2, 0.04, "2"),
        close(2, 0.05, Side.CLIENT, 1000),
    ]
    server = await serve(make_cassette(records))
    good = await websockets.connect(f"{server.url}/echo", compression=None)
    await good.send("one")
    assert await asyncio.wait_for(good.recv(), 5) == "1"

    bad = await _open(server.port)
    await bad.write(frame)
    [reply] = await bad.recv_until_close()
    assert reply.opcode == OpCode.CLOSE and int.from_bytes(reply.payload[:2], "big") == code
    await bad.send_close(reply.payload[:2])
    assert await bad.wait_closed()
    await bad.aclose()

    # The other connection never noticed.
    await good.send("two")
    assert await asyncio.wait_for(good.recv(), 5) == "2"
    await good.close()
    assert await server.wait_played(5)
    assert rule_ids(server) == [rule]
    assert all(v.conn == 2 for v in server.report().violations)


async def test_unmasked_frames_tolerated_when_ignored(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(ECHO), ignore=frozenset({"RFC-FRAME-MASK"}))
    raw = await _open(server.port)
    await raw.send(OpCode.TEXT, b"one", mask=False)
    frame = await raw.recv()
    assert frame is not None and frame.payload == b"1"
    await raw.send(OpCode.TEXT, b"two", mask=False)
    await raw.recv()
    await raw.send(OpCode.CLOSE, encode_close_body(1000), mask=False)
    await raw.recv_until_close()
    await raw.aclose()
    assert await server.wait_played(5)
    assert rule_ids(server) == []


async def test_bytes_before_the_101(make_cassette: CassetteFactory, serve: Serve) -> None:
    server = await serve(make_cassette(ECHO))
    raw = await RawClient.connect(server.port)
    await raw.write(request_bytes("/echo") + encode_frame(OpCode.TEXT, b"one", mask_key=b"abcd"))
    assert (await raw.read_answer()).status == 101
    frame = await raw.recv()
    assert frame is not None and frame.payload == b"1"  # the early frame was still served
    await raw.send_text("two")
    await raw.recv()
    await raw.send_close(encode_close_body(1000))
    await raw.recv_until_close()
    await raw.aclose()
    assert await server.wait_played(5)
    assert rule_ids(server) == ["RFC-HS-EARLY-DATA"]


@pytest.mark.parametrize(
    "garbage",
    [b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", b"GET /\r\n\r\n", b"\x00" * 20000],
    ids=["tls-hello-on-plain-port", "http-0.9", "nul-flood"],
)
async def test_garbage_gets_400_and_the_server_lives(
    garbage: bytes, make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(ECHO))
    raw = await RawClient.connect(server.port)
    await raw.write(garbage)
    assert (await raw.read_answer()).status == 400
    await raw.aclose()
    assert rule_ids(server) == ["RFC-HS-METHOD"]
    async with websockets.connect(f"{server.url}/echo", compression=None) as ws:
        await ws.send("one")
        assert await asyncio.wait_for(ws.recv(), 5) == "1"


async def _echo_still_plays(server: ReplayServer) -> None:
    """A refused request used up nothing: a good client then plays the echo recording."""
    async with websockets.connect(f"{server.url}/echo", compression=None) as ws:
        await ws.send("one")
        assert await asyncio.wait_for(ws.recv(), 5) == "1"
        await ws.send("two")
        assert await asyncio.wait_for(ws.recv(), 5) == "2"
    assert await server.wait_played(5)


@pytest.mark.parametrize(
    "hosts",
    [(), ("127.0.0.1", "evil.example"), ("127.0.0.1", "127.0.0.1"), ("",)],
    ids=["no-host", "two-hosts", "two-equal-hosts", "empty-host"],
)
async def test_a_request_without_one_host_gets_400_and_uses_up_nothing(
    hosts: tuple[str, ...], make_cassette: CassetteFactory, serve: Serve
) -> None:
    """RFC 7230 §5.4, RFC 6455 §4.2.1 (QA: no Host, or two, got a 101 and no finding)."""
    server = await serve(make_cassette(ECHO))
    wire = request_bytes("/echo", headers=tuple(("Host", h) for h in hosts))
    wire = wire.replace(b"Host: chat.example.com\r\n", b"", 1)
    raw = await RawClient.connect(server.port)
    await raw.write(wire)
    answer = await raw.read_answer()
    assert answer.status == 400 and b"Host header" in answer.body
    await raw.aclose()
    # The recording is still there for a client that sends one Host.
    await _echo_still_plays(server)
    assert rule_ids(server) == ["RFC-HS-HOST"]


@pytest.mark.parametrize(
    ("header", "conn"),
    [("X-A: a\x00b", 1), ("Cookie: a\rb", 1), ("X-A : b", None), ("X-A: a\r\n b", None)],
    ids=["nul-in-value", "lone-cr-in-value", "space-before-colon", "folded"],
)
async def test_a_header_line_a_server_cannot_take_gets_400_under_its_rule(
    header: str, conn: int | None, make_cassette: CassetteFactory, serve: Serve
) -> None:
    """RFC 7230 §3.2, §3.2.4 (QA: a NUL in a header value got a 101)."""
    server = await serve(make_cassette(ECHO))
    raw = await RawClient.connect(server.port)
    await raw.write(request_bytes("/echo")[:-2] + header.encode() + b"\r\n\r\n")
    assert (await raw.read_answer()).status == 400
    await raw.aclose()
    await _echo_still_plays(server)
    assert rule_ids(server) == ["RFC-HS-HEADER-SYNTAX"]
    # (a value the request could hold is judged as a request for its recording)
    assert [v.conn for v in server.report().violations] == [conn]


async def test_recorded_refusal_status_and_body(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [
        opening(
            1,
            "/private",
            status=403,
            reason="Forbidden",
            response_headers=((b"Content-Type", b"application/json"),),
            body=b'{"error":"token expired"}',
        )
    ]
    server = await serve(make_cassette(records))
    raw = await RawClient.connect(server.port)
    answer = await raw.handshake("/private")
    assert (answer.status, answer.body) == (403, b'{"error":"token expired"}')
    assert answer.headers["content-type"] == "application/json"
    await raw.aclose()
    assert await server.wait_played(5)
    assert rule_ids(server) == []


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("/socket.io/?EIO=4&transport=polling&t=abc", "transports=['websocket']"),
        ("/healthz", "wstape replays WebSocket connections only"),
    ],
    ids=["engineio-polling", "plain-get"],
)
async def test_a_plain_http_request_is_one_finding_not_every_handshake_rule(
    target: str, says: str, make_cassette: CassetteFactory, serve: Serve
) -> None:
    """Socket.IO's default client opens with HTTP long-polling: that is another transport,
    not a broken upgrade (it was four RFC-HS errors and an unmatched path), and the
    finding says what to change in the client."""
    server = await serve(make_cassette(ECHO))
    raw = await RawClient.connect(server.port)
    await raw.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert (await raw.read_answer()).status == 400
    await raw.aclose()
    async with websockets.connect(f"{server.url}/echo", compression=None) as ws:
        await ws.send("one")
        assert await asyncio.wait_for(ws.recv(), 5) == "1"
    (v,) = [v for v in server.report().violations if v.conn is None]
    assert v.rule == "REPLAY-UNMATCHED-CONNECTION" and says in v.message
    assert f"plain HTTP GET {target}" in v.message
    assert not any(v.rule.startswith("RFC-HS") for v in server.report().violations)
