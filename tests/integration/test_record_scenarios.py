"""``wstape record`` between a real websockets server and client, in four setups.

Regular mode (the client uses the proxy) and reverse mode, each over ws and wss (a
self-signed upstream with ``--ssl-insecure``; the client trusts mitmproxy's CA from a
temporary ``--confdir``). One recorder per setup runs every scenario; the tests then check
what reached the cassette.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers.servers import (
    MAX_SIZE,
    REFUSE_BODY,
    SUBPROTOCOL,
    RecorderProcess,
    ScenarioServer,
    client_ssl_context,
    wait_for_records,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Opcode, Open, Record, Side

REASON_123 = "用户主动退出登录" * 5 + "谢"
BIG = os.urandom(1024 * 1024)
MULTI = 5
MULTI_MESSAGES = 20
ACCEPTED = 6 + MULTI  # text, big, close4001, close4003, drop, sub + the concurrent ones
SETUPS = ["regular-ws", "regular-wss", "reverse-ws", "reverse-wss"]


@dataclass
class Session:
    setup: str
    records: list[Record]
    server: ScenarioServer
    exit_code: int
    stderr: str
    observed: dict[str, Any]

    def open_for(self, path: str) -> Open:
        found = [r for r in self.records if isinstance(r, Open) and r.target == path]
        assert len(found) == 1, f"{path}: {len(found)} open records"
        return found[0]

    def of(self, path: str) -> list[Record]:
        conn = self.open_for(path).conn
        return [r for r in self.records if not isinstance(r, Open) and r.conn == conn]

    def messages(self, path: str) -> list[Message]:
        return [r for r in self.of(path) if isinstance(r, Message)]

    def close(self, path: str) -> Close:
        closes = [r for r in self.of(path) if isinstance(r, Close)]
        assert len(closes) == 1, f"{path}: {closes}"
        return closes[0]


async def play(url: Callable[[str], str], kw: dict[str, Any]) -> dict[str, Any]:
    """Every scenario, one after another, then the concurrent ones; returns what the
    client observed."""
    seen: dict[str, Any] = {}
    async with connect(url("/text"), **kw) as ws:
        await ws.send("hello 你好")
        assert await ws.recv() == "hello 你好"
        await ws.send(b"\x00\x01\xfe\xff")
        assert await ws.recv() == b"\x00\x01\xfe\xff"

    async with connect(url("/big"), max_size=MAX_SIZE, **kw) as ws:
        await ws.send(BIG)
        assert await ws.recv() == BIG

    async with connect(url("/close4001"), **kw) as ws:
        await ws.send("logging out")
        await ws.recv()
        await ws.close(4001, REASON_123)

    ws = await connect(url("/close4003"), **kw)
    await ws.send("close please")
    with pytest.raises(ConnectionClosed):
        await ws.recv()
    seen["close4003"] = ws.close_code

    ws = await connect(url("/drop"), **kw)
    await ws.send("drop me")
    with pytest.raises(ConnectionClosed):
        await ws.recv()

    with pytest.raises(InvalidStatus) as refused:
        await connect(url("/refuse"), **kw)
    seen["refuse"] = (refused.value.response.status_code, refused.value.response.body)

    async with connect(url("/sub"), subprotocols=["chat.v3", SUBPROTOCOL], **kw) as ws:  # type: ignore[list-item]
        seen["subprotocol"] = ws.subprotocol
        await ws.send("with a subprotocol")
        await ws.recv()

    async def one(k: int) -> None:
        async with connect(url(f"/multi?k={k}"), **kw) as ws:
            for i in range(MULTI_MESSAGES):
                await ws.send(f"{k}:{i}")
                assert await ws.recv() == f"{k}:{i}"
                await asyncio.sleep(0)

    await asyncio.gather(*(one(k) for k in range(MULTI)))
    return seen


@pytest.fixture(scope="module", params=SETUPS)
def session(
    request: pytest.FixtureRequest,
    ws_server: ScenarioServer,
    wss_server: ScenarioServer,
    confdir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Session:
    setup: str = request.param
    mode, scheme = setup.split("-")
    server = wss_server if scheme == "wss" else ws_server
    out = tmp_path_factory.mktemp(setup) / "chat.msgpack"
    args = ["--ssl-insecure"] if scheme == "wss" else []
    if mode == "reverse":
        args += ["--mode", f"reverse:{scheme}://127.0.0.1:{server.port}"]
    rec = RecorderProcess(out, *args, confdir=confdir)
    with rec:
        kw: dict[str, Any] = {"open_timeout": 10}
        if scheme == "wss":
            ca = confdir / "mitmproxy-ca-cert.pem"
            ctx: ssl.SSLContext = client_ssl_context(ca)
            kw["ssl"] = ctx
        if mode == "regular":
            kw["proxy"] = rec.proxy

            def url(path: str) -> str:
                return server.url(path)
        else:
            kw["proxy"] = None

            def url(path: str) -> str:
                return rec.url(path, scheme)

        observed = asyncio.run(asyncio.wait_for(play(url, kw), 60))
        # Closes are written by a hook that may run just after the client saw the close.
        wait_for_records(
            out, lambda rs: sum(isinstance(r, Close) for r in rs) >= ACCEPTED, timeout=10
        )
        code = rec.stop(signal.SIGINT)
    _, records = read_cassette(out)
    return Session(setup, records, server, code, rec.output_text, observed)


def test_recorder_stops_cleanly_and_reports(session: Session) -> None:
    assert session.exit_code == 0, session.stderr
    assert "wstape: recording to" in session.stderr
    assert f"recorded {ACCEPTED + 1} connections, 1 refused" in session.stderr
    assert "Traceback" not in session.stderr


def test_open_facts(session: Session) -> None:
    opened = session.open_for("/text")
    scheme = session.setup.split("-")[1]
    assert opened.scheme == scheme
    assert (opened.host, opened.port) == ("127.0.0.1", session.server.port)
    assert opened.url == f"{scheme}://127.0.0.1:{session.server.port}/text"
    assert opened.method == "GET"
    assert opened.status == 101
    assert opened.http_version == "HTTP/1.1"
    assert opened.client is not None and opened.client.startswith("127.0.0.1:")
    names = {k.lower() for k, _ in opened.request_headers}
    assert {b"upgrade", b"sec-websocket-key", b"sec-websocket-version"} <= names
    assert any(k.lower() == b"sec-websocket-accept" for k, _ in opened.response_headers)
    assert opened.extensions and opened.extensions[0].startswith("permessage-deflate")
    if scheme == "wss":
        assert opened.tls is not None and opened.tls.version is not None
    else:
        assert opened.tls is None


def test_text_and_binary(session: Session) -> None:
    got = [(m.side, m.opcode, m.payload) for m in session.messages("/text")]
    assert got == [
        (Side.CLIENT, Opcode.TEXT, "hello 你好".encode()),
        (Side.SERVER, Opcode.TEXT, "hello 你好".encode()),
        (Side.CLIENT, Opcode.BINARY, b"\x00\x01\xfe\xff"),
        (Side.SERVER, Opcode.BINARY, b"\x00\x01\xfe\xff"),
    ]
    times = [m.t for m in session.messages("/text")]
    assert times == sorted(times) and times[0] >= 0
    close = session.close("/text")
    assert (close.by, close.code, close.reason, close.on_wire) == (Side.CLIENT, 1000, "", True)


def test_one_mebibyte_binary_message(session: Session) -> None:
    client, server = session.messages("/big")
    assert (client.side, client.opcode, client.payload) == (Side.CLIENT, Opcode.BINARY, BIG)
    assert (server.side, server.payload) == (Side.SERVER, BIG)


def test_client_close_with_a_123_byte_reason(session: Session) -> None:
    assert len(REASON_123.encode()) == 123
    close = session.close("/close4001")
    assert (close.by, close.code, close.reason, close.on_wire) == (
        Side.CLIENT,
        4001,
        REASON_123,
        True,
    )


def test_server_close_4003(session: Session) -> None:
    assert session.observed["close4003"] == 4003
    close = session.close("/close4003")
    assert (close.by, close.code, close.reason, close.on_wire) == (
        Side.SERVER,
        4003,
        "server closes: 4003",
        True,
    )


def test_server_dropping_tcp_is_1006_not_on_the_wire(session: Session) -> None:
    (message,) = session.messages("/drop")
    assert message.payload == b"drop me"
    close = session.close("/drop")
    assert (close.by, close.code, close.reason, close.on_wire) == (Side.SERVER, 1006, "", False)


def test_refused_upgrade_is_an_open_with_status_and_body(session: Session) -> None:
    assert session.observed["refuse"] == (403, REFUSE_BODY)
    opened = session.open_for("/refuse")
    assert (opened.status, opened.body, opened.accepted) == (403, REFUSE_BODY, False)
    assert session.of("/refuse") == []  # no messages and no close follow a refusal


def test_subprotocol_offered_and_chosen(session: Session) -> None:
    assert session.observed["subprotocol"] == SUBPROTOCOL
    opened = session.open_for("/sub")
    assert opened.subprotocols == ("chat.v3", SUBPROTOCOL)
    assert opened.subprotocol == SUBPROTOCOL


def test_concurrent_connections_keep_their_messages_apart(session: Session) -> None:
    conns = {session.open_for(f"/multi?k={k}").conn: k for k in range(MULTI)}
    assert len(conns) == MULTI
    for conn, k in conns.items():
        got = [r for r in session.records if isinstance(r, Message) and r.conn == conn]
        expected = [
            (side, f"{k}:{i}".encode())
            for i in range(MULTI_MESSAGES)
            for side in (Side.CLIENT, Side.SERVER)
        ]
        assert [(m.side, m.payload) for m in got] == expected
        close = next(r for r in session.records if isinstance(r, Close) and r.conn == conn)
        assert close.by is Side.CLIENT
    # The connections really were interleaved in the file, not one after another.
    order = [r.conn for r in session.records if isinstance(r, Message) and r.conn in conns]
    switches = sum(1 for a, b in itertools.pairwise(order) if a != b)
    assert switches > MULTI


def test_every_connection_has_one_end(session: Session) -> None:
    for opened in (r for r in session.records if isinstance(r, Open) and r.accepted):
        closes = [r for r in session.records if isinstance(r, Close) and r.conn == opened.conn]
        assert len(closes) == 1, opened.target


def test_a_self_signed_backend_without_ssl_insecure_says_what_to_do(
    wss_server: ScenarioServer, confdir: Path, tmp_path: Path
) -> None:
    # QA: the 502 and the warning named the failed verification, but not the option that
    # records such a backend.
    out = tmp_path / "refused.msgpack"
    rec = RecorderProcess(
        out, "--mode", f"reverse:wss://127.0.0.1:{wss_server.port}", confdir=confdir
    )
    with rec:

        async def attempt() -> int:
            with pytest.raises(InvalidStatus) as refused:
                await connect(rec.url("/x", "ws"), proxy=None, open_timeout=10)
            return refused.value.response.status_code

        assert asyncio.run(attempt()) == 502
        assert rec.stderr is not None
        line = rec.stderr.wait_for(r"failed before the server answered", 10).string
        rec.stop(signal.SIGINT)
    assert "Certificate verify failed" in line
    assert line.endswith(
        "(a backend with a self-signed certificate? --ssl-insecure skips the check)"
    )
