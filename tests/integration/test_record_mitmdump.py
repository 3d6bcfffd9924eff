"""The same addon inside a user's own mitmproxy: ``mitmdump -s "$(wstape addon-path)"``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.helpers.servers import (
    MITMDUMP,
    Mitmdump,
    ScenarioServer,
    wait_for_records,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Note, Open, Side

pytestmark = pytest.mark.skipif(not MITMDUMP.exists(), reason=f"no {MITMDUMP}")


def test_mitmdump_records_with_the_addon_script(
    tmp_path: Path, ws_server: ScenarioServer, confdir: Path
) -> None:
    out = tmp_path / "chat.msgpack"
    dump = Mitmdump(
        ws_server.port, confdir, f"wstape_cassette={out}", "wstape_redact_json_keys=token"
    )
    try:
        port = dump.wait_listening()

        async def talk() -> None:
            url = f"ws://127.0.0.1:{port}/chat"
            async with connect(url, proxy=None, subprotocols=["chat.v2"]) as ws:  # type: ignore[list-item]
                await ws.send('{"token": "S3CRET", "text": "hi"}')
                await ws.recv()
                await ws.send(b"\x01\x02")
                await ws.recv()
                await ws.close(4001, "bye")
            held = await connect(f"ws://127.0.0.1:{port}/held", proxy=None)
            await held.send("open at shutdown")
            await held.recv()

        asyncio.run(talk())
        wait_for_records(out, lambda rs: sum(isinstance(r, Message) for r in rs) == 6)
        assert dump.stop() == 0, dump.output.text
    finally:
        dump.kill()
    assert "wstape: recording WebSocket connections to" in dump.output.text
    raw = out.read_bytes()
    assert b"S3CRET" not in raw
    _, records = read_cassette(out)
    chat = next(r for r in records if isinstance(r, Open) and r.target == "/chat")
    assert chat.subprotocol == "chat.v2"
    messages = [r for r in records if isinstance(r, Message) and r.conn == chat.conn]
    assert [(m.side, m.payload) for m in messages] == [
        (Side.CLIENT, b'{"token": "<redacted>", "text": "hi"}'),
        (Side.SERVER, b'{"token": "<redacted>", "text": "hi"}'),
        (Side.CLIENT, b"\x01\x02"),
        (Side.SERVER, b"\x01\x02"),
    ]
    close = next(r for r in records if isinstance(r, Close) and r.conn == chat.conn)
    assert (close.by, close.code, close.reason) == (Side.CLIENT, 4001, "bye")
    # mitmproxy never calls websocket_end for the connection open at shutdown: done() ends it.
    held = next(r for r in records if isinstance(r, Open) and r.target == "/held")
    end = [r for r in records if not isinstance(r, Open) and r.conn == held.conn][-2:]
    assert isinstance(end[0], Close) and end[0].by is None and end[0].code is None
    assert isinstance(end[1], Note)


def test_mitmdump_refuses_an_existing_cassette_loudly(
    tmp_path: Path, ws_server: ScenarioServer, confdir: Path
) -> None:
    out = tmp_path / "exists.msgpack"
    out.write_bytes(b"keep me")
    dump = Mitmdump(ws_server.port, confdir, f"wstape_cassette={out}")
    try:
        code = dump.proc.wait(30)
    finally:
        dump.kill()
    dump.output.join()
    assert code != 0  # mitmdump exits at startup rather than run without recording
    assert "already exists; set wstape_append=true" in dump.output.text
    assert out.read_bytes() == b"keep me"
