"""The bundled sample: a small chat backend and two clients, used by ``wstape demo``.

The backend speaks the ``chat.v1`` subprotocol: the client says hello, the server welcomes
it, answers ``{"type":"ping"}`` heartbeats with ``{"type":"pong"}``, echoes chat lines,
pushes a binary snapshot, and the client leaves with close code 4001.

``run_client`` plays a well-behaved mini-program client; ``run_buggy_client`` plays one that
breaks rules a real app breaks (a changed message, a close code browsers refuse, a close
reason longer than 123 bytes) so the demo can show what the report looks like.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

SAMPLE_CASSETTE = Path(__file__).parent / "cassettes" / "samples" / "chat.msgpack"
"""A recording of :func:`run_client` against the sample backend (made by ``wstape demo``)."""
SUBPROTOCOL = Subprotocol("chat.v1")
GOODBYE_CODE = 4001
GOODBYE_REASON = "用户主动退出登录"
REFERER = "https://servicewechat.com/wx0123456789abcdef/0/page-frame.html"
USER_AGENT = "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50 MiniProgramEnv/iOS"


async def _chat_handler(ws: ServerConnection) -> None:
    try:
        await _chat(ws)
    except ConnectionClosed:
        pass  # 4001 (the client leaving) is how every session ends


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


async def _chat(ws: ServerConnection) -> None:
    async for raw in ws:
        if isinstance(raw, bytes):
            await ws.send(raw[::-1])
            continue
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "hello":
            await ws.send(_dumps({"type": "welcome", "user": msg.get("user"), "room": "lobby"}))
            await ws.send(bytes(range(16)))
        elif kind == "ping":
            await ws.send(_dumps({"type": "pong"}))
        elif kind == "say":
            await ws.send(_dumps({"type": "said", "text": msg.get("text")}))


@asynccontextmanager
async def sample_server(host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Run the sample chat backend on a free port; yields the port."""
    async with serve(
        _chat_handler, host, 0, subprotocols=[SUBPROTOCOL], compression=None
    ) as server:
        sock = next(iter(server.sockets))
        yield int(sock.getsockname()[1])


async def _connect(url: str, **kwargs: Any) -> ClientConnection:
    return await connect(
        url,
        subprotocols=[SUBPROTOCOL],
        additional_headers={"Referer": REFERER},
        user_agent_header=USER_AGENT,
        compression=None,
        proxy=None,
        open_timeout=10,
        **kwargs,
    )


async def run_client(base_url: str) -> list[str | bytes]:
    """Play the well-behaved client against ``base_url`` (``ws://host:port``).

    Returns every message it received, in order.
    """
    received: list[str | bytes] = []
    ws = await _connect(f"{base_url}/chat?room=lobby")
    await ws.send(_dumps({"type": "hello", "user": "小明"}))
    received.append(await ws.recv())
    received.append(await ws.recv())
    await ws.send(_dumps({"type": "ping"}))
    received.append(await ws.recv())
    await ws.send(_dumps({"type": "say", "text": "大家好"}))
    received.append(await ws.recv())
    await ws.send(b"\x01\x02\x03")
    received.append(await ws.recv())
    await ws.close(GOODBYE_CODE, GOODBYE_REASON)
    return received


async def run_buggy_client(base_url: str) -> None:
    """A client with two bugs: it says something else than recorded, and it closes with
    1001, which browsers, WeChat DevTools and PC WeChat refuse to send."""
    ws = await _connect(f"{base_url}/chat?room=lobby")
    await ws.send(_dumps({"type": "hello", "user": "小红"}))
    await ws.recv()
    await ws.recv()
    await ws.send(_dumps({"type": "ping"}))
    await ws.recv()
    await ws.send(_dumps({"type": "say", "text": "大家好"}))
    await ws.recv()
    await ws.send(b"\x01\x02\x03")
    await ws.recv()
    await ws.close(1001, "page hidden")
