"""Before/after of ``wstape replay``'s round trips in the same run (issue 12). Not a test.

The pairs test of ``bench_replay.py`` runs one source tree per run, and the load here
drifts more between runs than a change moves the ratio. This runs one bare websockets
echo server (warmed by a first connection, as the long-lived one of ``bench_replay.py``
is) and one replay server from each source tree given, all connected at once, in turns of
:data:`~bench_replay.CHUNK` round trips in an order that rotates every turn, over
``--rounds`` rounds of fresh replay servers. Prints each tree's round trips per second,
server CPU per round trip and the median of its turns' ratios to the bare server.

    python bench/bench_replay_ab.py {streamed,kept} DIR [DIR ...] [--rounds N] [--pairs N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_replay as b

OPTS: dict[str, object] = {"compression": None, "ping_interval": None, "max_size": None}


async def turn(ws: websockets.ClientConnection, first: int, last: int) -> float:
    started = time.perf_counter()
    for i in range(first, last):
        data = b.request(i).decode()
        await ws.send(data)
        assert await ws.recv() == data
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["streamed", "kept"])
    parser.add_argument("trees", nargs="+", type=Path, help="source trees to run replays from")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=20_000)
    args = parser.parse_args()
    n, trees = args.pairs, [t.resolve() for t in args.trees]
    print(f"python {sys.version.split()[0]}, {n:,} pairs, {args.rounds} rounds, {args.mode}")
    with tempfile.TemporaryDirectory(prefix="wstape-ab-") as tmpdir:
        tmp = Path(tmpdir)
        cassette = tmp / "pairs.msgpack"
        b.write_pairs(cassette, n)
        echo = await b.start_echo()
        try:
            async with websockets.connect(f"ws://127.0.0.1:{echo.port}/warm", **OPTS) as ws:
                await turn(ws, 0, 100)
            ratios: list[list[float]] = [[] for _ in trees]
            took = [0.0] * (len(trees) + 1)  # the bare server's last
            cpu = [0.0] * (len(trees) + 1)
            for round_ in range(args.rounds):
                servers = []
                for tree in trees:
                    b.SRC = tree
                    servers.append(
                        await b.start_replay(cassette, tmp, streamed=args.mode == "streamed")
                    )
                try:
                    clients = [
                        await websockets.connect(f"ws://127.0.0.1:{s.port}/pairs", **OPTS)
                        for s in servers
                    ]
                    clients.append(
                        await websockets.connect(f"ws://127.0.0.1:{echo.port}/p", **OPTS)
                    )
                    pids = [s.proc.pid for s in servers] + [echo.proc.pid]
                    order = list(range(len(clients)))
                    for k, first in enumerate(range(0, n, b.CHUNK)):
                        last = min(n, first + b.CHUNK)
                        shift = (k + round_) % len(order)
                        this: dict[int, float] = {}
                        for i in order[shift:] + order[:shift]:
                            before = b.cpu_seconds(pids[i])
                            this[i] = await turn(clients[i], first, last)
                            took[i] += this[i]
                            cpu[i] += b.cpu_seconds(pids[i]) - before
                        for i in range(len(trees)):
                            ratios[i].append(this[len(trees)] / this[i])
                    for ws in clients:
                        await ws.close()
                finally:
                    for s in servers:
                        await s.kill()
        finally:
            await echo.kill()
    total = n * args.rounds
    print(
        f"   {'bare websockets server':<40} {total / took[-1]:8,.0f}/s  "
        f"CPU {cpu[-1] / total * 1e6:5.1f} us/rt"
    )
    for i, tree in enumerate(trees):
        print(
            f"   {tree!s:<40} {total / took[i]:8,.0f}/s  CPU {cpu[i] / total * 1e6:5.1f} us/rt"
            f"  median turn ratio {statistics.median(ratios[i]):.3f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
