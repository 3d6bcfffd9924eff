"""A python-socketio server (asyncio, on aiohttp) on 127.0.0.1 port 0.

Engine.IO pingInterval 1 s and pingTimeout 1 s, so a client held open for a few seconds
sees several server pings. Per connection: ``welcome`` on connect; ``hello`` (or ``hola``,
the "different" client's event) is acked with ``{"echo": data}`` and followed 0.3 s later
by a ``news`` event; ``upload`` (bytes) is acked with the length and answered with the
bytes reversed in a ``download`` event. Prints ``{"ready": true, "port": N}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import socketio
from aiohttp import web
from common import ready, serve_until_stopped

PING_INTERVAL = 1.0
PING_TIMEOUT = 1.0


def make_server() -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        ping_interval=PING_INTERVAL,
        ping_timeout=PING_TIMEOUT,
        logger=False,
        engineio_logger=False,
    )

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        await sio.emit("welcome", {"motd": "hello from python-socketio"}, to=sid)

    async def news_later(sid: str, data: Any) -> None:
        await asyncio.sleep(0.3)
        await sio.emit("news", {"headline": "server event", "about": data}, to=sid)

    async def greeting(sid: str, data: Any) -> dict[str, Any]:
        sio.start_background_task(news_later, sid, data)
        return {"echo": data}

    sio.on("hello", greeting)
    sio.on("hola", greeting)

    @sio.on("upload")
    async def upload(sid: str, data: bytes) -> int:
        await sio.emit("download", bytes(reversed(data)), to=sid)
        return len(data)

    return sio


async def main() -> None:
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    app = web.Application()
    make_server().attach(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    ready(server.sockets[0].getsockname()[1])
    try:
        await serve_until_stopped()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
