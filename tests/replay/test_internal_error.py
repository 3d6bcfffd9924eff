"""A wstape bug during a replay never reads as a pass (issue 8)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import pytest
import websockets

from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, s
from wstape.core.matchers import MATCHERS, MatchResult, register
from wstape.core.model import Message, Opcode, Side
from wstape.core.report import junit_xml

RECORDING = [
    opening(1, "/chat"),
    c(1, 0.01, "hello"),
    s(1, 0.02, "world"),
    close(1, 0.05, Side.CLIENT, 1000),
]


@pytest.fixture
def broken_matcher() -> Iterator[str]:
    """A registered matcher with a bug, standing in for any bug inside the replay."""

    def explode(
        expected: Message, opcode: Opcode, payload: bytes, paths: Sequence[str]
    ) -> MatchResult:
        raise RuntimeError("matcher bug")

    register("explode")(explode)
    yield "explode"
    del MATCHERS["explode"]


async def test_an_exception_inside_the_replay_fails_the_run(
    make_cassette: CassetteFactory, serve: Serve, broken_matcher: str
) -> None:
    server = await serve(make_cassette(RECORDING), match=broken_matcher)
    async with websockets.connect(server.url + "/chat", proxy=None) as ws:
        await ws.send("hello")
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)  # the server aborts the broken connection
    assert await server.wait_played(5)  # the run still ends instead of waiting forever
    await server.stop()
    report = server.report()
    assert not report.passed
    assert len(report.internal_errors) == 1
    text = report.internal_errors[0]
    assert "wstape bug on connection 1" in text and "RuntimeError: matcher bug" in text
    data = report.to_dict()
    assert data["passed"] is False and data["internal_errors"] == [text]
    assert 'errors="1"' in junit_xml(report) and "matcher bug" in junit_xml(report)
