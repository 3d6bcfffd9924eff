"""permessage-deflate in replay (issue 14): negotiated as recorded, ``--compression``,
the offer mismatch reported, and a compression bomb against the server process."""

from __future__ import annotations

import asyncio
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.helpers.browser import Wstape, read_report
from tests.helpers.rawclient import RawClient
from tests.replay.conftest import CassetteFactory, Serve, c, close, opening, s
from wstape.core.frames import DEFAULT_MAX_FRAME_SIZE, OpCode
from wstape.core.model import Side

OFFER = "permessage-deflate; client_max_window_bits"
RECORDED = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
TEXT = "x, y, z " * 1000


def chat(recorded: str | None, offered: tuple[str, ...] = (OFFER,)) -> list[Any]:
    headers = ((b"Server", b"recorded-backend"),)
    if recorded is not None:
        headers += ((b"Sec-WebSocket-Extensions", recorded.encode()),)
    return [
        opening(1, "/chat", response_headers=headers, extensions=offered,
                request_headers=((b"Host", b"chat.example.com"),
                                 *((b"Sec-WebSocket-Extensions", o.encode()) for o in offered))),
        c(1, 0.0, TEXT),
        s(1, 0.01, "ok " + TEXT),
        close(1, 0.02, Side.CLIENT, 1000),
    ]  # fmt: skip


async def talk(url: str, **kw: Any) -> tuple[str | None, list[Any]]:
    """One recorded round trip; the 101's Sec-WebSocket-Extensions and the client's
    negotiated extensions."""
    async with websockets.connect(url + "/chat", **kw) as ws:
        await ws.send(TEXT)
        assert await asyncio.wait_for(ws.recv(), 5) == "ok " + TEXT
        assert ws.response is not None
        return ws.response.headers.get("Sec-WebSocket-Extensions"), ws.protocol.extensions


async def test_the_recorded_parameters_are_negotiated(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(chat(RECORDED)))
    header, [ext] = await talk(server.url)
    assert header == RECORDED
    assert ext.remote_no_context_takeover and ext.local_max_window_bits == 10  # type: ignore[attr-defined]
    await asyncio.wait_for(server.wait_played(), 5)
    assert server.report().to_dict()["violations"] == []


async def test_the_offer_limits_what_is_negotiated(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    """A client that does not offer client_max_window_bits is not sent one (RFC 7692
    §7.1.2.2); the offer differs from the recording's, which is a warning."""
    server = await serve(make_cassette(chat(RECORDED)))
    plain = ClientPerMessageDeflateFactory(client_max_window_bits=None)
    header, [_] = await talk(server.url, extensions=[plain], compression=None)
    assert header == "permessage-deflate; server_no_context_takeover"
    await asyncio.wait_for(server.wait_played(), 5)
    found = server.report().to_dict()["violations"]
    assert [(v["rule"], v["severity"]) for v in found] == [("WX-HS-SUBPROTOCOL-CHANGED", "warn")]
    assert "permessage-deflate" in found[0]["message"]


@pytest.mark.parametrize(
    ("recorded", "mode", "negotiated"),
    [
        (RECORDED, "off", None),
        (None, "auto", None),
        (None, "on", "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"),
    ],
)
async def test_compression_option(
    make_cassette: CassetteFactory,
    serve: Serve,
    recorded: str | None,
    mode: str,
    negotiated: str | None,
) -> None:
    server = await serve(make_cassette(chat(recorded)), compression=mode)
    header, extensions = await talk(server.url)
    assert header == negotiated and bool(extensions) == bool(negotiated)
    await asyncio.wait_for(server.wait_played(), 5)
    assert server.report().to_dict()["violations"] == []


async def test_a_client_that_stopped_offering_compression_is_reported(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(chat(RECORDED)))
    header, extensions = await talk(server.url, compression=None)
    assert header is None and extensions == []
    await asyncio.wait_for(server.wait_played(), 5)
    [v] = server.report().violations
    assert v.rule == "WX-HS-SUBPROTOCOL-CHANGED"
    assert v.message == (f"client offered extensions none; the recording offered ({OFFER})")


async def test_fragmented_server_messages_are_compressed_per_message(
    make_cassette: CassetteFactory, serve: Serve
) -> None:
    server = await serve(make_cassette(chat(RECORDED)), fragment_size=100)
    header, [_] = await talk(server.url)
    assert header == RECORDED
    await asyncio.wait_for(server.wait_played(), 5)
    rules = {v.rule for v in server.report().violations}
    assert rules <= {"RFC-PONG-ECHO"}  # the fragment fault's Ping, answered or not


# -- a compression bomb against the server process ---------------------------------------

GiB = 1 << 30
MAX_SIZE = 4 << 20


def bomb(size: int = GiB) -> bytes:
    """``size`` zero bytes, deflated (about 1 MiB for 1 GiB: DEFLATE's best ratio is
    1032:1, so no few-KB message inflates this far; its first few KB inflate past
    --max-size already)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(1 << 20)
    out = [comp.compress(zeros) for _ in range(size >> 20)]
    out.append(comp.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(out)[:-4]


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
@pytest.mark.parametrize("max_size", [MAX_SIZE, None], ids=["4MiB", "default"])
def test_a_compression_bomb_fails_with_1009_without_growing_memory(
    tmp_path: Path, max_size: int | None
) -> None:
    # At the default --max-size (64 MiB) too: the bomb is inflated on a copy of the zlib
    # stream a chunk at a time before anything is kept (wstape.core.deflate.PROBE_FROM).
    payload = bomb()
    assert len(payload) < 2 << 20
    report_path = tmp_path / "report.json"
    server = Wstape(
        tmp_path, "replay", "--echo", "--port", "0", "--report", report_path,
        *(["--max-size", str(max_size)] if max_size else []), "--max-wait", "30",
    )  # fmt: skip
    with server:
        assert server.proc is not None
        pid = server.proc.pid

        async def attack() -> tuple[int, bytes, int]:
            raw = await RawClient.connect(server.port)
            answer = await raw.handshake("/", headers=(("Sec-WebSocket-Extensions", OFFER),))
            assert answer.status == 101
            assert answer.headers["sec-websocket-extensions"].startswith("permessage-deflate")
            # Warm up (the first message loads the extension), then measure from here:
            # "5" resets the process's peak RSS (VmHWM) to its current RSS (proc(5)).
            await raw.send(OpCode.TEXT, b"warm")
            assert (await raw.recv()) is not None
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            before = status_kib(pid, "VmHWM")
            try:
                await raw.send(OpCode.BINARY, payload, rsv1=True)
            except ConnectionError:
                pass  # the server may hang up before it read all of it
            frames = await raw.recv_until_close(10)
            grown = status_kib(pid, "VmHWM") - before
            await raw.aclose()
            [end] = [f for f in frames if f.opcode == OpCode.CLOSE]
            return int.from_bytes(end.payload[:2], "big"), end.payload[2:], grown

        code, reason, grown_kib = asyncio.run(attack())
        server.stop()
    assert (code, reason) == (1009, b"RFC-MESSAGE-TOO-BIG")
    assert grown_kib < 16 * 1024, f"server RSS grew {grown_kib / 1024:.1f} MiB"
    report = read_report(report_path)
    rules = [(v["rule"], v["severity"]) for v in report["violations"]]
    assert ("RFC-MESSAGE-TOO-BIG", "error") in rules
    [v] = [v for v in report["violations"] if v["rule"] == "RFC-MESSAGE-TOO-BIG"]
    limit = max_size or DEFAULT_MAX_FRAME_SIZE
    assert str(limit) in v["message"] and "--max-size" in v["message"]
