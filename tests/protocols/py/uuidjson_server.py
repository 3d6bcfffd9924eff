"""A custom JSON request/reply protocol over plain ``websockets`` on 127.0.0.1 port 0, path
``/rpc`` (any path works).

Each request is ``{"id": "<uuid>", "op": ..., "args": [...]}`` and gets
``{"id": <the same id>, "result": ...}`` (or ``"error"``). ``add`` and ``upper`` answer at
once, ``slow`` 0.3 s later, so two requests in flight are answered out of order. Prints
``{"ready": true, "port": N}``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from common import ready, serve_until_stopped
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed


async def answer(ws: ServerConnection, request: dict[str, Any]) -> None:
    op, args = request.get("op"), request.get("args", [])
    reply: dict[str, Any] = {"id": request.get("id")}
    if op == "add":
        reply["result"] = sum(args)
    elif op == "upper":
        reply["result"] = [str(a).upper() for a in args]
    elif op == "slow":
        await asyncio.sleep(0.3)
        reply["result"] = args
    else:
        reply["error"] = f"unknown op {op!r}"
    try:
        await ws.send(json.dumps(reply))
    except ConnectionClosed:
        pass


async def handler(ws: ServerConnection) -> None:
    tasks: set[asyncio.Task[None]] = set()
    try:
        async for message in ws:
            task = asyncio.create_task(answer(ws, json.loads(message)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except ConnectionClosed:
        pass


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0) as server:
        ready(server.sockets[0].getsockname()[1])
        await serve_until_stopped()


if __name__ == "__main__":
    asyncio.run(main())
