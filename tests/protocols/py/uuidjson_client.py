"""A ``websockets`` client of the custom JSON protocol of uuidjson_server.py, against
``ws://HOST:PORT/rpc``. Every request carries a fresh ``uuid4`` id; replies are matched
by id.

normal: ``add [1, 2]``, ``upper ["a", "b"]``, then ``slow ["first"]`` and ``add [10, 20]``
in flight together (the server answers the second first), stay ``--hold`` s, Close 1000.
different: ``add [2, 3]`` and other arguments. quit-early: closes after the first reply.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Any

from common import Flow, client_args
from websockets.asyncio.client import ClientConnection, connect


async def flow(f: Flow, url: str, variant: str, hold: float) -> None:
    pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
    order: list[str] = []  # the ops, in the order their replies came

    async def reader(ws: ClientConnection) -> None:
        try:
            await read_replies(ws)
        finally:  # the connection ended: nothing in flight will be answered
            for _, waiting in pending.values():
                if not waiting.done():
                    waiting.set_exception(RuntimeError(f"connection closed: {ws.close_code}"))

    async def read_replies(ws: ClientConnection) -> None:
        async for message in ws:
            reply = json.loads(message)
            op, future = pending.pop(reply["id"], ("", None))
            if future is None:  # fail every call in flight, not only the reader
                error = RuntimeError(f"a reply to an id never sent: {message[:120]}")
                for _, waiting in pending.values():
                    waiting.set_exception(error)
                raise error
            order.append(op)
            if "error" in reply:
                future.set_exception(RuntimeError(reply["error"]))
            else:
                future.set_result(reply["result"])

    async def call(ws: ClientConnection, op: str, args: list[Any]) -> Any:
        rid = str(uuid.uuid4())
        future = asyncio.get_running_loop().create_future()
        pending[rid] = (op, future)
        await ws.send(json.dumps({"id": rid, "op": op, "args": args}))
        return await future

    other = variant == "different"
    f.at("connect")
    async with connect(url, proxy=None, open_timeout=10) as ws:
        f.event("open")
        read = asyncio.create_task(reader(ws))
        f.at("add")
        f.event({"add": await call(ws, "add", [2, 3] if other else [1, 2])})
        if variant == "quit-early":
            await ws.close()
            f.event("quit early")
            return
        f.at("upper")
        f.event({"upper": await call(ws, "upper", ["x"] if other else ["a", "b"])})
        f.at("two in flight")
        slow = asyncio.create_task(call(ws, "slow", ["second" if other else "first"]))
        fast = asyncio.create_task(call(ws, "add", [10, 20]))
        f.event({"slow": await slow, "add": await fast})
        f.extra["reply_order"] = order
        f.at("hold")
        done, _ = await asyncio.wait([read], timeout=hold)
        if done:
            raise RuntimeError(f"connection ended while holding: {read.exception()!r}")
        f.at("close")
        await ws.close(1000, "bye")
        f.event({"close": ws.close_code})
        read.cancel()


def main() -> int:
    args = client_args(__doc__ or "", hold=0.5)
    f = Flow("websockets uuid-json", args.variant)
    return f.run(lambda f: flow(f, args.url, args.variant, args.hold), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
