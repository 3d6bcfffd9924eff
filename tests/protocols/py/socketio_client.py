"""python-socketio's AsyncClient (transports=['websocket']) against a Socket.IO URL
(``http://127.0.0.1:PORT``).

normal: connect, receive ``welcome``, emit ``hello`` with an ack, receive the ``news``
event, stay connected ``--hold`` s (several server pings at pingInterval 1 s), disconnect.
``--binary`` adds an ``upload`` of bytes (a binary attachment) acked with its length and
answered by a ``download`` event. different: emits ``hola`` with another payload.
quit-early: disconnects right after ``welcome``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import socketio
from common import Flow, client_args, wait_for

UPLOAD = bytes(range(16))


async def flow(f: Flow, url: str, variant: str, hold: float, binary: bool) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    welcome, news, download, gone = (asyncio.Event() for _ in range(4))
    pings = 0

    @sio.event
    async def connect() -> None:
        f.event("connect")

    @sio.event
    async def disconnect(reason: Any = None) -> None:
        f.event({"disconnect": str(reason)})
        gone.set()

    @sio.on("welcome")
    async def on_welcome(data: Any) -> None:
        f.event({"welcome": data})
        welcome.set()

    @sio.on("news")
    async def on_news(data: Any) -> None:
        f.event({"news": data})
        news.set()

    @sio.on("download")
    async def on_download(data: Any) -> None:
        f.event({"download": list(data)})
        download.set()

    f.at("connect")
    await sio.connect(url, transports=["websocket"], wait_timeout=10)
    eio = sio.eio
    receive = eio._receive_packet

    async def counting(pkt: Any) -> None:  # observe Engine.IO pings (no public hook)
        nonlocal pings
        if pkt.packet_type == 2:
            pings += 1
        await receive(pkt)

    eio._receive_packet = counting  # type: ignore[method-assign]
    await wait_for(welcome, f, "welcome")
    if variant == "quit-early":
        await sio.disconnect()
        f.event("quit early")
        return
    if variant == "different":
        event, payload = "hola", {"name": "someone else"}
    else:
        event, payload = "hello", {"name": "python"}
    f.at("ack")
    ack = await sio.call(event, payload, timeout=10)
    f.event({"ack": ack})
    await wait_for(news, f, "news")
    if binary:
        f.at("upload ack")
        f.event({"upload ack": await sio.call("upload", UPLOAD, timeout=10)})
        await wait_for(download, f, "download")
    f.at("hold")
    done = asyncio.create_task(gone.wait())
    await asyncio.wait([done], timeout=hold)
    if gone.is_set():
        raise RuntimeError(f"disconnected while holding: {f.events[-1]}")
    done.cancel()
    f.extra["pings"] = pings
    check_pings(pings, hold, float(eio.ping_interval))
    f.at("disconnect")
    await sio.disconnect()
    await sio.wait()


def check_pings(pings: int, hold: float, interval: float) -> None:
    """Engine.IO v4: the server pings every pingInterval. Several while holding, and not a
    flood."""
    if hold >= 2.5 and pings < 2:
        raise RuntimeError(f"only {pings} server pings in {hold:g} s")
    if pings > 2 * hold / interval + 3:
        raise RuntimeError(f"{pings} server pings in {hold:g} s (pingInterval {interval:g} s)")


def main() -> int:
    binary = "--binary" in sys.argv
    if binary:
        sys.argv.remove("--binary")
    args = client_args(__doc__ or "", hold=3.5)
    name = "python-socketio" + (" binary" if binary else "")
    f = Flow(name, args.variant)
    return f.run(lambda f: flow(f, args.url, args.variant, args.hold, binary), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
