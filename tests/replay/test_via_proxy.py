"""Replay through the device's own proxy (``--via-proxy``): a client configured with an
HTTP proxy reaches the recording for a name that does not resolve, everything that is not a
WebSocket upgrade gets a 502, and no connection goes anywhere but the replay server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.replay.conftest import CassetteFactory, c, close, opening, s
from wstape.addons.viaproxy import (
    NOT_SERVED,
    DeviceProxy,
    DeviceProxyConfig,
    ViaProxyError,
    start_device_proxy,
)
from wstape.core.model import Record, Side
from wstape.replay import ReplayOptions, ReplayServer

HOST = "chat.example.com"  # .example.com names do not resolve here, and must not need to

WSS_CHAT: list[Record] = [
    opening(1, "/chat", scheme="wss"),
    c(1, 0.01, "hello"),
    s(1, 0.02, "welcome"),
    s(1, 0.03, "second"),
    close(1, 0.04, Side.CLIENT, 1000),
]
WS_CHAT: list[Record] = [
    opening(2, "/plain"),
    s(2, 0.01, "plain hello"),
    close(2, 0.02, Side.CLIENT, 1000),
]

Start = Callable[..., Any]


@pytest.fixture
async def via_proxy(confdir: Path) -> AsyncIterator[Start]:
    """``await start(records, **ReplayOptions)``: a replay server and a device proxy."""
    running: list[tuple[ReplayServer, DeviceProxy]] = []

    async def start(cassette: Path, **kw: Any) -> tuple[ReplayServer, DeviceProxy]:
        kw.setdefault("speed", 0)
        kw.setdefault("timeout", 3.0)
        server = ReplayServer(cassette, ReplayOptions.build(port=0, **kw))
        await server.start()
        proxy = await start_device_proxy(
            server, DeviceProxyConfig(listen_host="127.0.0.1", listen_port=0, confdir=confdir)
        )
        running.append((server, proxy))
        return server, proxy

    yield start
    for server, proxy in running:
        await proxy.stop()
        await server.stop()


def proxy_url(proxy: DeviceProxy) -> str:
    return f"http://127.0.0.1:{proxy.port}"


async def receive(ws: Any, n: int) -> list[str]:
    return [await asyncio.wait_for(ws.recv(), 5) for _ in range(n)]


def assert_stayed_local(proxy: DeviceProxy) -> None:
    assert proxy.addon is not None
    stats = proxy.addon.stats
    assert stats.blocked == []
    assert stats.server_connections, "the upgrade never reached the replay server"
    assert set(stats.server_connections) <= {proxy.addon.plain, proxy.addon.tls}
    assert {host for host, _ in stats.server_connections} == {"127.0.0.1"}


async def test_wss_through_the_proxy_reaches_the_recording(
    make_cassette: CassetteFactory, via_proxy: Start, client_tls: ssl.SSLContext
) -> None:
    server, proxy = await via_proxy(make_cassette(WSS_CHAT), profile="wechat")
    async with websockets.connect(
        f"wss://{HOST}/chat", proxy=proxy_url(proxy), ssl=client_tls, compression=None
    ) as ws:
        await ws.send("hello")
        assert await receive(ws, 2) == ["welcome", "second"]
    assert await server.wait_played(5)
    report = server.report()
    assert [(r.conn, r.path, r.messages_matched) for r in report.connections] == [(1, "/chat", 1)]
    rules = {v.rule for v in report.violations}
    # The device used wss to a DNS name: the scheme and host rules are satisfied; the
    # rest of the wechat profile still judges it (a Python client is no WeChat).
    assert "WX-URL-SCHEME" not in rules
    assert "WX-URL-HOST" not in rules
    assert "WX-HS-USER-AGENT" in rules
    assert report.passed, report.violations
    assert_stayed_local(proxy)
    assert proxy.addon is not None
    assert proxy.addon.stats.server_connections == [proxy.addon.tls]
    assert proxy.addon.stats.routed == 1


async def test_plain_ws_is_judged_as_ws(make_cassette: CassetteFactory, via_proxy: Start) -> None:
    server, proxy = await via_proxy(make_cassette(WS_CHAT), profile="wechat")
    async with websockets.connect(
        f"ws://{HOST}/plain", proxy=proxy_url(proxy), compression=None
    ) as ws:
        assert await receive(ws, 1) == ["plain hello"]
    assert await server.wait_played(5)
    [scheme] = [v for v in server.report().violations if v.rule == "WX-URL-SCHEME"]
    assert scheme.actual == "ws"
    assert scheme.severity.value == "error"  # plain ws to a public name
    assert_stayed_local(proxy)
    assert proxy.addon is not None
    assert proxy.addon.stats.server_connections == [proxy.addon.plain]


async def test_unrecorded_path_is_the_replay_servers_404(
    make_cassette: CassetteFactory, via_proxy: Start, client_tls: ssl.SSLContext
) -> None:
    server, proxy = await via_proxy(make_cassette(WSS_CHAT))
    with pytest.raises(InvalidStatus) as info:
        await websockets.connect(f"wss://{HOST}/nope", proxy=proxy_url(proxy), ssl=client_tls)
    assert info.value.response.status_code == 404
    assert "REPLAY-UNMATCHED-CONNECTION" in {v.rule for v in server.report().violations}
    assert_stayed_local(proxy)


def get(proxy_port: int, url: str, tls: ssl.SSLContext | None = None) -> tuple[int, str]:
    """A plain HTTP GET through the proxy (absolute form), or HTTPS through CONNECT."""
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", proxy_port, timeout=5
        )
        conn.request("GET", url)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", proxy_port, timeout=5, context=tls)
        conn.set_tunnel(HOST, 443)
        conn.request("GET", url)
    response = conn.getresponse()
    body = response.read().decode()
    conn.close()
    return response.status, body


async def test_anything_else_gets_502(
    make_cassette: CassetteFactory, via_proxy: Start, client_tls: ssl.SSLContext
) -> None:
    server, proxy = await via_proxy(make_cassette(WSS_CHAT))
    status, body = await asyncio.to_thread(get, proxy.port, f"http://{HOST}/index.html")
    assert status == 502
    assert body.startswith(NOT_SERVED)
    assert f"GET http://{HOST}/index.html is not a WebSocket upgrade" in body
    status, body = await asyncio.to_thread(get, proxy.port, "/api/login", client_tls)
    assert status == 502
    assert body.startswith(NOT_SERVED)
    assert proxy.addon is not None
    assert proxy.addon.stats.refused == 2
    # Nothing was connected to at all, and the replay server saw nothing.
    assert proxy.addon.stats.server_connections == []
    assert server.report().connections == ()


async def test_raw_tunnel_is_never_opened_upstream(
    make_cassette: CassetteFactory, via_proxy: Start
) -> None:
    """A CONNECT tunnel carrying neither HTTP nor TLS makes mitmproxy want a TCP
    connection upstream: the guard refuses it, so even then nothing leaves."""
    _, proxy = await via_proxy(make_cassette(WSS_CHAT))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"CONNECT xmpp.example.com:5222 HTTP/1.1\r\nHost: xmpp.example.com:5222\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.write(b"\x00\x01raw protocol bytes\n")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 5)  # closed by the proxy
    assert rest == b""
    writer.close()
    assert proxy.addon is not None
    assert proxy.addon.stats.blocked == [("xmpp.example.com", 5222)]


async def test_port_in_use_is_a_clear_error(make_cassette: CassetteFactory, confdir: Path) -> None:
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    server = ReplayServer(make_cassette(WSS_CHAT), ReplayOptions.build(port=0, speed=0))
    await server.start()
    config = DeviceProxyConfig(listen_host="127.0.0.1", listen_port=port, confdir=confdir)
    try:
        with pytest.raises(ViaProxyError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            await start_device_proxy(server, config)
    finally:
        await server.stop()
        blocker.close()


# -- the CLI --------------------------------------------------------------------------------


def wstape(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "wstape", "replay", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return int(path.read_text())
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"wstape replay exited {proc.returncode}: {err}")
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


async def test_cli_via_proxy(
    make_cassette: CassetteFactory, confdir: Path, client_tls: ssl.SSLContext, tmp_path: Path
) -> None:
    cassette = make_cassette(WSS_CHAT)
    ready, proxy_ready = tmp_path / "port", tmp_path / "proxy-port"
    proc = wstape(
        str(cassette),
        "--port", "0",
        "--ready-file", str(ready),
        "--via-proxy", "0",
        "--proxy-host", "127.0.0.1",
        "--proxy-ready-file", str(proxy_ready),
        "--confdir", str(confdir),
        "--speed", "0",
        "--profile", "wechat",
        "--max-wait", "60",
    )  # fmt: skip
    try:
        await wait_for_file(ready, proc)
        proxy_port = await wait_for_file(proxy_ready, proc)
        status, body = await asyncio.to_thread(get, proxy_port, f"http://{HOST}/")
        assert (status, body.splitlines()[0]) == (502, NOT_SERVED + ".")
        async with websockets.connect(
            f"wss://{HOST}/chat",
            proxy=f"http://127.0.0.1:{proxy_port}",
            ssl=client_tls,
            compression=None,
        ) as ws:
            await ws.send("hello")
            assert await receive(ws, 2) == ["welcome", "second"]
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert re.search(rf"wstape: device proxy listening on 127\.0\.0\.1:{proxy_port}\b", err)
    assert "502 for GET http://chat.example.com/" in err
    assert "WX-URL-SCHEME" not in err


def test_cli_via_proxy_port_in_use(make_cassette: CassetteFactory, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = wstape(
            str(make_cassette(WSS_CHAT)),
            "--port", "0",
            "--via-proxy", str(port),
            "--proxy-host", "127.0.0.1",
            "--confdir", str(tmp_path / "mitmproxy"),
        )  # fmt: skip
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [
        f"wstape: error: --via-proxy: cannot listen on 127.0.0.1:{port}: address already in "
        "use (another proxy running? choose another --via-proxy port, or 0 for any free port)"
    ]


# -- the addon alone -------------------------------------------------------------------


def upgrade_flow(scheme: str = "https", **headers: str) -> Any:
    from mitmproxy.test import tflow

    flow = tflow.tflow()
    flow.request.scheme = scheme
    flow.request.host = HOST
    flow.request.port = 443 if scheme == "https" else 80
    flow.request.path = "/chat"
    flow.request.headers["Host"] = HOST
    for name, value in headers.items():
        flow.request.headers[name.replace("_", "-")] = value
    return flow


def test_addon_routes_upgrades_by_scheme_and_keeps_the_host_header() -> None:
    from wstape.addons.viaproxy import ViaProxy

    addon = ViaProxy(("127.0.0.1", 1001), ("127.0.0.1", 1002))
    wss = upgrade_flow("https", Upgrade="websocket", Connection="Upgrade")
    addon.requestheaders(wss)
    assert (wss.request.host, wss.request.port) == ("127.0.0.1", 1002)
    assert wss.request.headers["Host"] == HOST
    assert wss.response is None
    ws = upgrade_flow("http", Upgrade="WebSocket")
    addon.requestheaders(ws)
    assert (ws.request.host, ws.request.port, ws.request.headers["Host"]) == (
        "127.0.0.1",
        1001,
        HOST,
    )
    # No Upgrade header but a WebSocket key: a broken upgrade, for the replay rules.
    broken = upgrade_flow("https", Sec_WebSocket_Key="x")
    addon.requestheaders(broken)
    assert broken.request.port == 1002 and broken.response is None
    assert addon.stats.routed == 3


def test_addon_answers_everything_else_with_502() -> None:
    from wstape.addons.viaproxy import ViaProxy

    lines: list[str] = []
    addon = ViaProxy(("127.0.0.1", 1), ("127.0.0.1", 2), what="chat.msgpack", on_log=lines.append)
    for upgrade in ("", "h2c"):
        flow = upgrade_flow("https", Upgrade=upgrade) if upgrade else upgrade_flow("https")
        addon.requestheaders(flow)
        assert flow.response is not None
        assert flow.response.status_code == 502
        body = flow.response.get_text()
        assert body.startswith(NOT_SERVED)
        assert "this proxy replays chat.msgpack" in body
        assert flow.request.host == HOST  # never rerouted
    assert addon.stats.refused == 2
    assert len(lines) == 1  # one line per host


# -- a real browser --------------------------------------------------------------------


def test_chromium_through_the_device_proxy(make_cassette: CassetteFactory, tmp_path: Path) -> None:
    """Chromium set up as a device would be (an HTTP proxy, the mitmproxy CA trusted)
    opens ``wss://chat.example.com/chat``: it gets the recording; its page load gets the
    502 text."""
    from tests.helpers import browser

    missing = browser.chromium_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    confdir = tmp_path / "mitmproxy"
    ca = browser.make_ca(confdir)
    cassette = make_cassette(
        [
            opening(1, "/chat", scheme="wss"),
            c(1, 0.01, "hello"),
            s(1, 0.02, "welcome"),
            close(1, 0.03, Side.CLIENT, 4001, "再见"),
        ]
    )
    report, proxy_ready = tmp_path / "report.json", tmp_path / "proxy-port"
    proc = wstape(
        str(cassette),
        "--port", "0",
        "--via-proxy", "0",
        "--proxy-host", "127.0.0.1",
        "--proxy-ready-file", str(proxy_ready),
        "--confdir", str(confdir),
        "--speed", "0",
        "--profile", "wechat",
        "--platform", "devtools",
        "--report", str(report),
        "--max-wait", "60",
    )  # fmt: skip
    try:
        proxy_port = asyncio.run(wait_for_file(proxy_ready, proc))
        with sync_playwright() as pw:
            chromium = browser.launch_chromium(pw, trust=[ca])
            try:
                page = chromium.new_context(proxy=browser.proxy_settings(proxy_port)).new_page()
                page.goto(f"https://{HOST}/index.html")
                assert NOT_SERVED in page.content()
                got = page.evaluate(
                    """() => new Promise((resolve) => {
                      const ws = new WebSocket("wss://chat.example.com/chat");
                      const received = [];
                      ws.onopen = () => ws.send("hello");
                      ws.onmessage = (e) => { received.push(e.data); ws.close(4001, "再见"); };
                      ws.onclose = (e) => resolve({received, code: e.code, clean: e.wasClean});
                    })"""
                )
            finally:
                chromium.close()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=10)
    assert got == {"received": ["welcome"], "code": 4001, "clean": True}
    assert proc.returncode == 0, err
    data = json.loads(report.read_text())
    assert data["passed"], data["violations"]
    assert data["connections"][0]["close"] == {"by": "client", "code": 4001, "reason": "再见"}
    # wss to a DNS name, as the device used: no scheme or host finding under wechat.
    rules = {v["rule"] for v in data["violations"]}
    assert not rules & {"WX-URL-SCHEME", "WX-URL-HOST"}, rules
