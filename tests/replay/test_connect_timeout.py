"""--handshake-delay holds the 101 back; WX-CONNECT-TIMEOUT says whether the client gave up
near the timeout it is configured with."""

from __future__ import annotations

import pytest
import websockets

from tests.replay.conftest import CassetteFactory, Serve, close, opening, rule_ids, s
from wstape.core.model import Side

CHAT = [opening(1, "/chat"), s(1, 0.0, "hi"), close(1, 0.01, Side.SERVER, 1000)]


async def _connect(url: str, open_timeout: float) -> str:
    async with websockets.connect(
        url, open_timeout=open_timeout, proxy=None, compression=None
    ) as ws:
        return str(await ws.recv())


async def test_client_giving_up_near_its_timeout_is_fine(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(
        make_cassette(CHAT), profile="wechat", handshake_delay=5.0, connect_timeout=0.5
    )
    with pytest.raises(TimeoutError):
        await _connect(server.url + "/chat", open_timeout=0.5)
    assert await server.wait_played(5)  # the claimed connection ended
    assert "WX-CONNECT-TIMEOUT" not in rule_ids(server)


async def test_client_giving_up_long_before_its_timeout_is_reported(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(
        make_cassette(CHAT), profile="wechat", handshake_delay=5.0, connect_timeout=10.0
    )
    with pytest.raises(TimeoutError):
        await _connect(server.url + "/chat", open_timeout=0.3)
    assert await server.wait_played(5)  # the claimed connection ended
    found = [v for v in server.report().violations if v.rule == "WX-CONNECT-TIMEOUT"]
    assert len(found) == 1 and found[0].severity.value == "warn"
    assert found[0].expected == 10.0
    assert isinstance(found[0].actual, float) and found[0].actual < 2


async def test_client_waiting_past_its_timeout_is_reported_then_served(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(
        make_cassette(CHAT), profile="wechat", handshake_delay=2.6, connect_timeout=0.5
    )
    assert await _connect(server.url + "/chat", open_timeout=10) == "hi"
    assert await server.wait_played(5)
    assert "WX-CONNECT-TIMEOUT" in rule_ids(server)


async def test_delay_is_not_a_rule_outside_wechat(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(CHAT), handshake_delay=0.2, connect_timeout=10.0)
    with pytest.raises(TimeoutError):
        await _connect(server.url + "/chat", open_timeout=0.05)
    assert await server.wait_played(5)  # the claimed connection ended
    assert "WX-CONNECT-TIMEOUT" not in rule_ids(server)
