"""wss with a certificate from the mitmproxy CA, and the wechat handshake rules."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.helpers.rawclient import RawClient
from tests.replay.conftest import (
    APPID,
    HOST,
    REFERER,
    WX_UA,
    CassetteFactory,
    Serve,
    close,
    opening,
    rule_ids,
)
from wstape.core.frames import encode_close_body
from wstape.core.model import Side

WSS = [opening(1, "/wx", scheme="wss"), close(1, 0.01, Side.CLIENT, 1000)]


def tls_options(confdir: Path, **kw: Any) -> dict[str, Any]:
    return {"tls": True, "hostnames": (HOST,), "confdir": confdir, **kw}


async def test_wss_client_trusting_only_the_confdir_ca(
    make_cassette: CassetteFactory, serve: Serve, confdir: Path, client_tls: ssl.SSLContext
) -> None:
    server = await serve(make_cassette(WSS), **tls_options(confdir))
    assert server.url.startswith("wss://")
    async with websockets.connect(
        f"wss://{HOST}:{server.port}/wx",
        host="127.0.0.1",
        ssl=client_tls,
        server_hostname=HOST,
        compression=None,
    ) as ws:
        await ws.close(1000)
    assert await server.wait_played(5)
    assert rule_ids(server) == []
    # A client trusting the system CAs only refuses the certificate.
    server2 = await serve(make_cassette(WSS), **tls_options(confdir))
    with pytest.raises(ssl.SSLCertVerificationError):
        await websockets.connect(
            f"wss://{HOST}:{server2.port}/wx",
            host="127.0.0.1",
            ssl=ssl.create_default_context(),
            server_hostname=HOST,
        )


async def _wechat_attempt(
    server: Any,
    client_tls: ssl.SSLContext | None,
    *,
    host: str = HOST,
    referer: str | None = REFERER,
) -> None:
    if client_tls is not None:
        raw = await RawClient.connect(server.port, ssl_context=client_tls, server_hostname=HOST)
    else:
        raw = await RawClient.connect(server.port)
    headers = [("User-Agent", WX_UA)]
    if referer is not None:
        headers.append(("Referer", referer))
    answer = await raw.handshake("/wx", host=host, headers=tuple(headers))
    assert answer.status == 101
    await raw.send_close(encode_close_body(1000))
    await raw.recv_until_close()
    await raw.aclose()
    assert await server.wait_played(5)


OTHER_APP = "https://servicewechat.com/wxfedcba9876543210/3/page-frame.html"


@pytest.mark.parametrize(
    ("appid", "referer", "expected"),
    [
        (None, REFERER, []),
        (APPID, REFERER, []),
        (None, OTHER_APP, []),
        (APPID, OTHER_APP, ["WX-HS-REFERER"]),
        (None, "https://evil.example.com/page.html", ["WX-HS-REFERER"]),
        (APPID, None, ["WX-HS-REFERER"]),
    ],
    ids=["any-app", "our-app", "other-app-no-appid", "other-app", "spoofed", "absent"],
)
async def test_referer_with_and_without_appid(
    appid: str | None,
    referer: str | None,
    expected: list[str],
    make_cassette: CassetteFactory,
    serve: Serve,
    confdir: Path,
    client_tls: ssl.SSLContext,
) -> None:
    server = await serve(make_cassette(WSS), **tls_options(confdir, profile="wechat", appid=appid))
    await _wechat_attempt(server, client_tls, referer=referer)
    assert rule_ids(server) == expected
    if referer is None:
        [v] = server.report().violations
        assert v.severity.value == "info" and server.report().passed


async def test_ws_versus_wss_under_wechat(
    make_cassette: CassetteFactory, serve: Serve, confdir: Path, client_tls: ssl.SSLContext
) -> None:
    server = await serve(make_cassette(WSS), profile="wechat")
    await _wechat_attempt(server, None)
    assert rule_ids(server) == ["WX-URL-SCHEME"]
    assert not server.report().passed

    server = await serve(make_cassette(WSS), **tls_options(confdir, profile="wechat"))
    await _wechat_attempt(server, client_tls)
    assert rule_ids(server) == []
    assert server.report().passed


@pytest.mark.parametrize(
    ("host", "allow", "expected"),
    [
        ("127.0.0.1", (), ["WX-URL-HOST"]),
        ("localhost", (), ["WX-URL-HOST"]),
        (HOST, ("example.com",), ["WX-URL-HOST"]),
        (HOST, (HOST,), []),
    ],
    ids=["ip-literal", "localhost", "parent-domain-listed", "listed"],
)
async def test_host_rules(
    host: str,
    allow: tuple[str, ...],
    expected: list[str],
    make_cassette: CassetteFactory,
    serve: Serve,
    confdir: Path,
    client_tls: ssl.SSLContext,
) -> None:
    server = await serve(
        make_cassette(WSS), **tls_options(confdir, profile="wechat", allow_hosts=allow)
    )
    await _wechat_attempt(server, client_tls, host=host)
    assert rule_ids(server) == expected
