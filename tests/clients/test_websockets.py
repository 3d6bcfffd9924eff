"""Python ``websockets`` (compression on by default): one round trip through ``wstape
record`` (reverse mode, in front of a local ``websockets`` backend that accepts
permessage-deflate) and against ``wstape replay``, which negotiates it again with the
recorded parameters (issue 14).

Messages are large and repetitive, so compression really happens on the wire: the
recorder stores them inflated, and the replay's exact matcher only matches if it
inflated what the client sent.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.helpers.browser import (
    TIMEOUT,
    Backend,
    BackgroundLoop,
    read_report,
    record,
    replay,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Message, Open, Side

TEXT = "compress me, 压缩我 " * 500
DATA = bytes(range(256)) * 64


async def session(url: str) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    async with connect(url, open_timeout=TIMEOUT) as ws:
        [extension] = ws.protocol.extensions  # permessage-deflate, or the test fails here
        got = [await asyncio.wait_for(ws.recv(), TIMEOUT)]
        await ws.send(TEXT)
        got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
        await ws.send(DATA)
        got.append(await asyncio.wait_for(ws.recv(), TIMEOUT))
        await ws.close(4001, "bye")
        return {
            "received": got,
            "extension": repr(extension),
            "response": ws.response.headers.get("Sec-WebSocket-Extensions")
            if ws.response
            else None,
        }


def test_websockets_record_then_replay_compressed(tmp_path: Path, bg: BackgroundLoop) -> None:
    cassette = tmp_path / "websockets.msgpack"
    with Backend(bg) as backend:
        mode = f"reverse:ws://127.0.0.1:{backend.port}"
        with record(tmp_path, cassette, "--mode", mode, "--confdir", tmp_path / "ca") as rec:
            live = asyncio.run(session(f"ws://127.0.0.1:{rec.port}/chat"))
            assert rec.stop() == 0, rec.stderr
    expected = [Backend.HELLO, f"echo: {TEXT}", DATA[::-1]]
    assert live["received"] == expected
    assert (
        live["response"]
        == "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    )

    _, records = read_cassette(cassette)
    [op] = [r for r in records if isinstance(r, Open)]
    assert op.response_header("Sec-WebSocket-Extensions") == live["response"]
    client = [m.payload for m in records if isinstance(m, Message) and m.side is Side.CLIENT]
    assert client == [TEXT.encode(), DATA]  # stored inflated

    report_path = tmp_path / "report.json"
    with replay(tmp_path, cassette, report_path) as rep:
        again = asyncio.run(session(f"ws://127.0.0.1:{rep.port}/chat"))
        code = rep.finish()
    assert again == live  # the same messages, the same negotiated parameters
    report = read_report(report_path)
    assert (code, report["passed"], report["violations"]) == (0, True, []), report
    [played] = report["connections"]
    assert played["messages_expected"] == played["messages_matched"] == 2
