"""A bare ``websockets`` echo server: the baseline Autobahn runs against next to
``wstape replay --echo`` (docs/autobahn.md). websockets' defaults (permessage-deflate on,
``server_max_window_bits=12``, ``client_max_window_bits=12``), except ``max_size``: 64 MiB,
as wstape's ``--max-size``, so 9.* (messages up to 16 MiB) are tested rather than refused.

    python tests/autobahn/bare_websockets.py READY_FILE    # writes its port there
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_SIZE = 64 * 1024 * 1024


async def echo(ws: ServerConnection) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


async def main(ready: Path) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, "127.0.0.1", 0, max_size=MAX_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        tmp = ready.with_suffix(".tmp")
        tmp.write_text(str(port))
        tmp.replace(ready)
        await stop


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
