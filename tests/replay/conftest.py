"""Fixtures for the replay integration tests: cassettes built with CassetteWriter, servers
on 127.0.0.1 port 0, and a TLS CA in a temporary mitmproxy confdir."""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from wstape.cassettes import CassetteWriter
from wstape.core.model import Close, Message, Opcode, Open, Record, Side, TlsInfo
from wstape.replay import ReplayOptions, ReplayServer
from wstape.replay.tls import mint

APPID = "wx0123456789abcdef"
REFERER = f"https://servicewechat.com/{APPID}/0/page-frame.html"
WX_UA = (
    "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36 MicroMessenger/8.0.50 MiniProgramEnv/android"
)
HOST = "chat.example.com"


def opening(
    conn: int,
    target: str = "/chat",
    *,
    status: int = 101,
    scheme: str = "ws",
    subprotocols: tuple[str, ...] = (),
    subprotocol: str | None = None,
    **kw: Any,
) -> Open:
    fields: dict[str, Any] = {
        "conn": conn,
        "started_at": 1_700_000_000.0 + conn,
        "method": "GET",
        "scheme": scheme,
        "host": HOST,
        "port": 443 if scheme == "wss" else 80,
        "target": target,
        "http_version": "HTTP/1.1",
        "request_headers": ((b"Host", HOST.encode()),),
        "status": status,
        "response_headers": ((b"Server", b"recorded-backend"),),
        "subprotocols": subprotocols,
        "subprotocol": subprotocol,
        "tls": TlsInfo("TLSv1.3") if scheme == "wss" else None,
    }
    fields.update(kw)
    return Open(**fields)


def c(conn: int, t: float, payload: bytes | str | dict[str, Any], binary: bool = False) -> Message:
    return _msg(conn, t, Side.CLIENT, payload, binary)


def s(conn: int, t: float, payload: bytes | str | dict[str, Any], binary: bool = False) -> Message:
    return _msg(conn, t, Side.SERVER, payload, binary)


def _msg(conn: int, t: float, side: Side, payload: Any, binary: bool) -> Message:
    if isinstance(payload, dict):
        payload = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(conn, t, side, Opcode.BINARY if binary else Opcode.TEXT, data)


def close(conn: int, t: float, by: Side | None, code: int | None, reason: str = "") -> Close:
    return Close(conn, t, by, code, reason, on_wire=code not in (1005, 1006, 1015, None))


CassetteFactory = Callable[[Sequence[Record]], Path]


@pytest.fixture
def make_cassette(tmp_path: Path) -> CassetteFactory:
    counter = iter(range(1_000_000))

    def build(records: Sequence[Record]) -> Path:
        path = tmp_path / f"cassette-{next(counter)}.msgpack"
        with CassetteWriter(path) as w:
            for record in records:
                w.write(record)
        return path

    return build


Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """``await serve(cassette, **ReplayOptions fields)``: a started server, stopped after."""
    servers: list[ReplayServer] = []

    async def start(cassette: Path, **options: Any) -> ReplayServer:
        options.setdefault("port", 0)
        options.setdefault("speed", 0)
        options.setdefault("timeout", 3.0)
        server = ReplayServer(cassette, ReplayOptions.build(**options))
        servers.append(server)
        await server.start()
        return server

    yield start
    for server in servers:
        await server.stop()


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mitmproxy confdir whose CA is created on first use."""
    path = tmp_path_factory.mktemp("mitmproxy")
    mint([HOST], path)  # creates the CA once for the session
    return path


@pytest.fixture(scope="session")
def client_tls(confdir: Path) -> ssl.SSLContext:
    """A client context that trusts only the CA in ``confdir``."""
    # With a cafile, the system CAs are not loaded: only the mitmproxy CA is trusted.
    return ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))


def rule_ids(server: ReplayServer) -> list[str]:
    """The rules found, less the note that heartbeats were detected."""
    return sorted({v.rule for v in server.report().violations} - {"REPLAY-HEARTBEAT-DETECTED"})
