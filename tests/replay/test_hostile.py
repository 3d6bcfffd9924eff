"""Hostile clients and hostile cassettes against a real server on 127.0.0.1 (issue 10):
silent connections, the connection limit, running out of file descriptors, clients that
never read, endless fragments, unreadable frame headers, Close frames and status lines a
cassette must not be able to put on the wire. Figures: bench/bench_hostile.py."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets

from tests.helpers.rawclient import RawClient
from tests.helpers.servers import clean_env, wait_for
from tests.replay.conftest import HOST, CassetteFactory, Serve, c, close, opening, rule_ids, s
from wstape.cassettes import CassetteWriter
from wstape.core.errors import ConfigError
from wstape.core.frames import OpCode, encode_close_body, encode_frame
from wstape.core.model import Side
from wstape.core.replay.connection import QUEUE_MESSAGES
from wstape.core.replay.script import SEND_BYTES
from wstape.interchange.har import read_har
from wstape.replay import ReplayOptions, ReplayServer
from wstape.replay.server import WRITE_HIGH

MiB = 1024 * 1024
MASK = b"\x0a\x0b\x0c\x0d"
CHAT = [
    opening(1, "/chat"),
    c(1, 0.01, "hello"),
    s(1, 0.02, "welcome"),
    close(1, 0.03, Side.CLIENT, 1000),
]


def masked(opcode: int, payload: bytes = b"", **kw: bool) -> bytes:
    return encode_frame(opcode, payload, mask_key=MASK, **kw)


async def echo_server(**options: object) -> ReplayServer:
    options.setdefault("timeout", 3.0)
    server = ReplayServer(None, ReplayOptions.build(port=0, echo=True, **options))
    await server.start()
    return server


async def hung_up(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True once the server closed the connection (EOF or reset) within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        pass
    return True


async def chat(port: int, timeout: float = 10.0) -> float:
    """Play CHAT as a normal client; returns how long it took."""
    started = time.monotonic()
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/chat", open_timeout=timeout, compression=None
    ) as ws:
        await ws.send("hello")
        assert await asyncio.wait_for(ws.recv(), timeout) == "welcome"
    return time.monotonic() - started


async def pushed(writer: asyncio.StreamWriter, data: bytes, limit: int, stall: float = 1.0) -> int:
    """Write ``data`` over and over until ``limit`` bytes or the peer stops taking them
    for ``stall`` seconds; returns how many bytes it took."""
    sent = 0
    while sent < limit:
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), stall)
        except TimeoutError:
            break
        sent += len(data)
    return sent


def connections(server: ReplayServer) -> list[asyncio.Transport]:
    return [p.transport for p in server._conns if p.transport is not None]


# -- 1. silent connections -----------------------------------------------------------


async def test_silent_connections_are_closed_after_the_timeout(
    make_cassette: CassetteFactory, serve: Serve, confdir: Path
) -> None:
    cassette = make_cassette(CHAT)
    plain = await serve(cassette, timeout=1.0)
    secure = await serve(cassette, timeout=1.0, tls=True, hostnames=[HOST], confdir=confdir)
    started = time.monotonic()
    socks = [await asyncio.open_connection("127.0.0.1", plain.port) for _ in range(40)]
    # TCP only, no ClientHello: the TLS handshake is timed from the accept as well.
    socks += [await asyncio.open_connection("127.0.0.1", secure.port) for _ in range(10)]
    closed = await asyncio.gather(*(hung_up(r, 4.0) for r, _ in socks))
    assert all(closed)
    assert time.monotonic() - started >= 0.9
    for _, w in socks:
        w.close()
    assert rule_ids(plain) == rule_ids(secure) == []


# -- 2. the connection limit -----------------------------------------------------------


async def test_at_the_limit_connections_without_a_request_make_room(
    make_cassette: CassetteFactory, serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    server = await serve(make_cassette(CHAT), max_connections=10, timeout=30.0)
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(30)]
    with caplog.at_level(logging.WARNING, logger="wstape.replay.server"):
        took = await chat(server.port)
    assert took < 10  # long before the silent ones time out (30 s)
    assert server.shed >= 1 and len(server._conns) <= 10
    lines = [r.getMessage() for r in caplog.records if r.name == "wstape.replay.server"]
    assert 1 <= len(lines) <= 3 and all("--max-connections 10" in line for line in lines)
    for _, w in silent:
        w.close()
    assert await server.wait_played(10)
    assert server.report().passed


async def test_at_the_limit_new_connections_wait_for_a_free_slot() -> None:
    server = await echo_server(max_connections=2)
    try:
        first = await websockets.connect(f"{server.url}/a", compression=None)
        second = await websockets.connect(f"{server.url}/b", compression=None)
        third = asyncio.ensure_future(websockets.connect(f"{server.url}/c", open_timeout=10))
        await asyncio.sleep(0)  # (the third must not be answered while two are open)
        done, _ = await asyncio.wait([third], timeout=0.5)
        assert not done
        await first.close()
        ws = await asyncio.wait_for(third, 10)
        await ws.send("three")
        assert await asyncio.wait_for(ws.recv(), 5) == "three"
        await ws.close()
        await second.close()
    finally:
        await server.stop()
    assert server.shed == 0 and server.report().passed


class _Flaky:
    """A listening socket whose first ``fail`` accepts run out of file descriptors."""

    def __init__(self, sock: socket.socket, fail: int) -> None:
        self.sock = sock
        self.fail = fail

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> object:
        return self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def accept(self) -> tuple[socket.socket, object]:
        if self.fail:
            self.fail -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()


async def test_out_of_file_descriptors_pauses_accepting_with_one_line() -> None:
    server = await echo_server()
    lines: list[str] = []
    server.on_notice = lines.append
    listener = server._listener
    assert listener is not None
    try:
        listener.pause()
        listener.sockets = [_Flaky(listener.sockets[0], fail=3)]  # type: ignore[list-item]
        listener.resume()
        started = time.monotonic()
        async with websockets.connect(f"{server.url}/x", open_timeout=10) as ws:
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), 5) == "still here"
        assert time.monotonic() - started >= 1.0  # three pauses of 0.5 s
    finally:
        await server.stop()
    assert len(lines) == 1 and "Too many open files" in lines[0], lines


def test_under_an_fd_limit_of_256_a_client_still_plays(
    make_cassette: CassetteFactory, tmp_path: Path
) -> None:
    cassette, ready = make_cassette(CHAT), tmp_path / "port"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen(
        [sys.executable, "-m", "wstape", "replay", str(cassette), "--port", "0",
         "--ready-file", str(ready), "--timeout", "20", "--speed", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=clean_env(), preexec_fn=limit,
    )  # fmt: skip
    try:
        wait_for(lambda: ready.exists() and ready.read_text().strip(), 30, what="the server")
        port = int(ready.read_text())
        silent = [socket.create_connection(("127.0.0.1", port), 5) for _ in range(300)]
        took = asyncio.run(chat(port, timeout=15))
        for sock in silent:
            sock.close()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = err.decode()
    assert proc.returncode == 0, text
    assert took < 10, text
    assert "Traceback" not in text and len(text.splitlines()) < 20, text


# -- 3. clients that never read -------------------------------------------------------------


async def test_an_echo_client_that_never_reads_is_pushed_back_then_dropped() -> None:
    server = await echo_server(timeout=2.0)
    try:
        raw = await RawClient.connect(server.port)
        assert (await raw.handshake("/echo")).status == 101
        taken = await pushed(raw.writer, masked(OpCode.BINARY, b"x" * MiB), 256 * MiB)
        assert taken < 128 * MiB  # the server stopped reading (kernel buffers hold the rest)
        [transport] = connections(server)
        assert transport.get_write_buffer_size() <= WRITE_HIGH + 2 * MiB
        # Dropped --timeout (2 s) later, the client still reading nothing.
        await asyncio.wait_for(_until(lambda: not connections(server)), 10)
        raw.writer.close()
    finally:
        await server.stop()
    assert rule_ids(server) == ["REPLAY-CLIENT-STALLED"]
    [row] = server.report().connections
    assert (row.close.by, row.close.code) == ("server", 1006)


async def test_a_ping_flood_that_never_reads_is_pushed_back() -> None:
    server = await echo_server(timeout=2.0)
    try:
        raw = await RawClient.connect(server.port)
        assert (await raw.handshake("/echo")).status == 101
        pings = masked(OpCode.PING, b"p" * 125) * 8000  # about 1 MiB of Pings a write
        taken = await pushed(raw.writer, pings, 512 * MiB)
        assert taken < 256 * MiB
        [transport] = connections(server)
        assert transport.get_write_buffer_size() <= WRITE_HIGH + MiB
        await asyncio.wait_for(_until(lambda: not connections(server)), 10)
        raw.writer.close()
    finally:
        await server.stop()
    assert rule_ids(server) == ["REPLAY-CLIENT-STALLED"]


def _flood(messages: int, size: int) -> list[object]:
    blob = bytes(range(256)) * (size // 256)
    return [
        opening(1, "/flood"),
        c(1, 0.0, "go"),
        *(s(1, 0.001, blob[:-4] + i.to_bytes(4, "big"), binary=True) for i in range(messages)),
        close(1, 1.0, Side.CLIENT, 1000),
    ]


async def test_a_replay_to_a_client_that_never_reads_holds_little_and_ends(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(_flood(64, MiB)), timeout=2.0)  # type: ignore[arg-type]
    raw = await RawClient.connect(server.port)
    assert (await raw.handshake("/flood")).status == 101
    await raw.send_text("go")
    biggest = 0

    def gone() -> bool:
        nonlocal biggest
        live = connections(server)
        biggest = max([biggest, *(t.get_write_buffer_size() for t in live)])
        return not live

    async with asyncio.timeout(15):
        while not gone():
            await asyncio.sleep(0.01)
    assert biggest <= WRITE_HIGH + SEND_BYTES + 2 * MiB, biggest
    await raw.aclose()
    assert rule_ids(server) == ["REPLAY-CLIENT-STALLED"]


async def test_a_slow_reader_gets_every_message_intact(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = _flood(96, 256 * 1024)  # 24 MiB: more than the kernel buffers hold
    server = await serve(make_cassette(records), timeout=10.0)  # type: ignore[arg-type]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", server.port))
    async with websockets.connect(
        f"{server.url}/flood", sock=sock, compression=None, max_size=None, max_queue=1
    ) as ws:
        await ws.send("go")
        # Read nothing until the server had to stop for the client.
        await asyncio.wait_for(_until(lambda: any(p._paused for p in server._conns)), 10)
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(96)]
        await ws.close(1000)
    assert got == [m.payload for m in records if getattr(m, "side", None) is Side.SERVER]
    assert await server.wait_played(10)
    assert server.report().passed, server.report().violations


async def _until(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_a_client_far_ahead_of_the_recording_is_not_read_further(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    records = [opening(1, "/early"), s(1, 30.0, "later"), c(1, 31.0, "x")]
    server = await serve(make_cassette(records), speed=1.0, timeout=60.0)
    ws = await websockets.connect(f"{server.url}/early", compression=None)
    for _ in range(1500):
        await ws.send("x")  # all early: the recording's next message is 30 s away
    [live] = [p.live for p in server._conns if p.live is not None]
    assert live.protocol is not None and live.script is not None
    protocol, script = live.protocol, live.script
    await asyncio.wait_for(_until(lambda: protocol.input_held), 10)
    assert script.queued_messages == QUEUE_MESSAGES + 1
    assert not live.wants_input
    ws.transport.abort()


# -- 4. fragments and unreadable frames ---------------------------------------------------


async def test_fragments_are_capped_and_reported() -> None:
    server = await echo_server(max_fragments=1000)
    try:
        raw = await RawClient.connect(server.port)
        assert (await raw.handshake("/echo")).status == 101
        parts = [bytes([97 + i % 26]) for i in range(1000)]
        wire = masked(OpCode.TEXT, parts[0], fin=False)
        wire += b"".join(masked(OpCode.CONTINUATION, p, fin=False) for p in parts[1:-1])
        await raw.write(wire + masked(OpCode.CONTINUATION, parts[-1]))
        echo = await raw.recv()
        assert echo is not None and echo.payload == b"".join(parts)
        # Endless empty continuation frames end at the cap.
        await raw.write(masked(OpCode.BINARY, fin=False))
        await raw.write(masked(OpCode.CONTINUATION, fin=False) * 5000)
        [reply] = await raw.recv_until_close()
        assert reply.payload == encode_close_body(1009, "RFC-MESSAGE-TOO-BIG")
        await raw.aclose()
    finally:
        await server.stop()
    assert rule_ids(server) == ["RFC-MESSAGE-TOO-BIG"]


@pytest.mark.parametrize(
    ("length", "rule", "code"),
    [(1 << 63, "RFC-FRAME-LENGTH", 1002), ((1 << 63) - 1, "RFC-MESSAGE-TOO-BIG", 1009)],
    ids=["top-bit", "2^63-1"],
)
async def test_unreadable_frame_headers_are_reported(length: int, rule: str, code: int) -> None:
    server = await echo_server()
    try:
        raw = await RawClient.connect(server.port)
        assert (await raw.handshake("/echo")).status == 101
        await raw.write(bytes((0x82, 0xFF)) + length.to_bytes(8, "big") + MASK)
        [reply] = await raw.recv_until_close()
        assert reply.payload == encode_close_body(code, rule)
        assert await raw.wait_closed()
        await raw.aclose()
    finally:
        await server.stop()
    assert rule_ids(server) == [rule]
    assert not server.report().passed


# -- 5. hostile cassettes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason", "on_wire", "rules"),
    [
        (5000, "x" * 200, b"", ["RFC-SRV-CLOSE-CODE", "RFC-SRV-CLOSE-REASON"]),
        (1004, "", b"", ["RFC-SRV-CLOSE-CODE"]),
        (4000, "r" * 1_000_000, encode_close_body(4000, "r" * 123), ["RFC-SRV-CLOSE-REASON"]),
    ],
    ids=["5000", "1004", "1-MB-reason"],
)
async def test_a_recorded_server_close_never_puts_an_invalid_frame_on_the_wire(
    code: int,
    reason: str,
    on_wire: bytes,
    rules: list[str],
    make_cassette: CassetteFactory,
    serve: Serve,
) -> None:
    records = [opening(1, "/bye"), s(1, 0.01, "bye"), close(1, 0.02, Side.SERVER, code, reason)]
    server = await serve(make_cassette(records))
    raw = await RawClient.connect(server.port)
    assert (await raw.handshake("/bye")).status == 101
    frames = await raw.recv_until_close()
    assert [f.opcode for f in frames] == [OpCode.TEXT, OpCode.CLOSE]
    assert frames[-1].payload == on_wire
    await raw.send_close(frames[-1].payload[:2])
    assert await raw.wait_closed()
    await raw.aclose()
    assert rule_ids(server) == sorted(rules)


async def test_a_har_status_text_cannot_add_a_response_header(tmp_path: Path, serve: Serve) -> None:
    har = json.loads(Path("tests/data/chrome-websocket.har").read_text(encoding="utf-8"))
    entries = har["log"]["entries"]
    entry = next(e for e in entries if e.get("_resourceType") == "websocket")
    entry["response"]["status"] = 403
    entry["response"]["statusText"] = "Forbidden\r\nSet-Cookie: injected=1\r\nX-A: b"
    entry["_webSocketMessages"] = []
    har["log"]["entries"] = [entry]
    source, cassette = tmp_path / "evil.har", tmp_path / "evil.msgpack"
    source.write_text(json.dumps(har), encoding="utf-8")
    imported = read_har(source)
    with CassetteWriter(cassette) as w:
        for record in imported.records():
            w.write(record)
    server = await serve(cassette)
    [rec] = server.index.connections
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    writer.write(
        f"GET {rec.open.target} HTTP/1.1\r\nHost: {rec.open.host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        .encode()
    )  # fmt: skip
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 403 Forbidden ")
    assert not any(line.lower().startswith(("set-cookie", "x-a:")) for line in lines[1:])


@pytest.mark.parametrize("name", ["max_connections", "max_fragments"])
def test_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReplayOptions.build(**{name: 0})
    assert info.value.option == name


def test_cli_limits_are_flags() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wstape", "replay", "--echo", "--max-connections", "0"],
        capture_output=True, text=True, env=clean_env(), timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2 and "--max-connections" in out.stderr
