"""Benchmarks of ``wstape replay`` (issue 3). Prints figures and ratios; not a test.

1. Round trips: a recorded conversation of N x 100-byte request/reply pairs replayed at
   ``--speed 0`` to a client that repeats it, against a bare ``websockets`` echo server
   driven by the same client in the same run. Goal (issue 12): >= 1.0x the bare server.
   The machine is shared and its load drifts, so in each of ``--rounds`` rounds one
   client on each server takes turns of 250 round trips (both see the same load); the
   ratio is the median of the turns' ratios, beside each server's CPU time (user +
   system, from /proc) per round trip. A second line replays with the cassette's events
   streamed from the file (``KEPT_BYTES`` set to 0: what a cassette over 16 MiB gets),
   against the same bare server in the same rounds; the goal is the same for both. Last,
   the CPU per event of getting a connection's events from the index, kept and streamed
   (in a process of its own, from the same source tree as the servers).
2. Concurrency: a cassette of 1,000 recorded connections, 1,000 clients at once; every
   connection played, no error, time to play them all.
3. Memory: a cassette with one 1,000,000-message connection replays with a peak RSS
   under 200 MB (the cassette is streamed, never held in memory).

Each server runs in its own process (``python -m wstape replay ...`` exactly as a user
would start it); the clients run here. ``--quick`` scales every count down by 10.

    python bench/bench_replay.py [--quick] [--only pairs|concurrent|memory] [--rounds N]
        [--src DIR]

``--src DIR`` runs the replay servers from another source tree (e.g. a ``git worktree``
of an older commit), for before/after figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import websockets

from wstape.cassettes import CassetteWriter, WriteMode
from wstape.core.frames import FrameParser, OpCode, encode_close_body, encode_frame
from wstape.core.model import Close, Message, Opcode, Open, Side

PAYLOAD = 100
SRC: Path | None = None
"""Where the replay servers' wstape comes from (``--src``; None: this checkout)."""

ECHO_SERVER = textwrap.dedent(
    """
    import asyncio, sys
    from websockets.asyncio.server import serve

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(echo, "127.0.0.1", 0, compression=None, ping_interval=None,
                         max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            print(port, flush=True)
            await asyncio.Future()

    asyncio.run(main())
    """
)


def opening(conn: int, target: str) -> Open:
    return Open(
        conn=conn,
        started_at=1_700_000_000.0,
        method="GET",
        scheme="ws",
        host="bench.example.com",
        port=80,
        target=target,
        http_version="HTTP/1.1",
        request_headers=((b"Host", b"bench.example.com"),),
        status=101,
        response_headers=(),
    )


def request(i: int) -> bytes:
    head = f'{{"seq":{i},"pad":"'.encode()
    return head + b"x" * (PAYLOAD - len(head) - 2) + b'"}'


# -- cassettes -------------------------------------------------------------------------


def write_pairs(path: Path, n: int) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        w.write(opening(1, "/pairs"))
        for i in range(n):
            data = request(i)
            w.write(Message(1, i * 0.001, Side.CLIENT, Opcode.TEXT, data))
            w.write(Message(1, i * 0.001 + 0.0005, Side.SERVER, Opcode.TEXT, data))
        w.write(Close(1, n * 0.001, Side.CLIENT, 1000, ""))


def write_concurrent(path: Path, n: int) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        for conn in range(1, n + 1):
            w.write(opening(conn, "/many"))
        for conn in range(1, n + 1):  # interleaved, as a real recording of n clients
            w.write(Message(conn, 0.01, Side.CLIENT, Opcode.TEXT, request(conn)))
        for conn in range(1, n + 1):
            w.write(Message(conn, 0.02, Side.SERVER, Opcode.TEXT, b'{"ok":true}'))
        for conn in range(1, n + 1):
            w.write(Close(conn, 0.03, Side.CLIENT, 1000, ""))


def write_big(path: Path, n: int) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        w.write(opening(1, "/big"))
        w.write(Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b'{"subscribe":"all"}'))
        for i in range(n):
            w.write(Message(1, 0.001 + i * 1e-6, Side.SERVER, Opcode.BINARY, request(i)))
        w.write(Close(1, 2.0, Side.CLIENT, 1000, ""))


# -- processes -------------------------------------------------------------------------


class Proc:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.peak_rss_kb = 0

    def sample_rss(self) -> None:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                self.peak_rss_kb = max(self.peak_rss_kb, int(line.split()[1]))

    async def wait(self, timeout: float = 600) -> int:
        async def sampler() -> None:
            while True:
                self.sample_rss()
                await asyncio.sleep(0.05)

        task = asyncio.ensure_future(sampler())
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        finally:
            task.cancel()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


STREAMED = (
    "import runpy, wstape.replay.index as index; index.KEPT_BYTES = 0; "
    "runpy.run_module('wstape', run_name='__main__')"
)
"""``python -m wstape`` with every connection streamed from the file (none kept in memory)."""


async def start_replay(cassette: Path, tmp: Path, *args: str, streamed: bool = False) -> Proc:
    ready = tmp / f"ready-{cassette.stem}"
    ready.unlink(missing_ok=True)
    main = ["-c", STREAMED] if streamed else ["-m", "wstape"]
    env = dict(os.environ)
    if SRC is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    # -m and -c put the working directory first on sys.path: run from the tree to use.
    cwd = SRC if SRC is not None else Path(__file__).resolve().parent.parent
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *main, "replay", str(cassette),
        "--port", "0", "--ready-file", str(ready), "--speed", "0", "--timeout", "60",
        "--report", str(tmp / f"report-{cassette.stem}.json"), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env, cwd=cwd,
    )  # fmt: skip
    async with asyncio.timeout(600):  # indexing a big cassette takes a while
        while not ready.exists():
            if proc.returncode is not None:
                raise RuntimeError(f"wstape replay exited with {proc.returncode}")
            await asyncio.sleep(0.02)
    server = Proc(proc, int(ready.read_text()))
    server.sample_rss()
    return server


async def start_echo() -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_SERVER, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    return Proc(proc, int(line))


def report_of(tmp: Path, cassette: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((tmp / f"report-{cassette.stem}.json").read_text())
    return data


# -- 1. round trips --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, user and system: the scheduler's exact run time
    (/proc/PID/schedstat), else the clock-tick counts of /proc/PID/stat (Linux)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CHUNK = 250
"""Round trips timed on one server before switching to the other."""


async def pairs_round(
    echo: Proc, cassette: Path, tmp: Path, n: int, *, streamed: bool
) -> dict[str, float]:
    """One round: a client on the bare echo server and one on a fresh replay of the
    cassette, both connected, take turns of :data:`CHUNK` round trips each (alternating
    which goes first), so both see the same machine load. Returns each server's round
    trips per second, CPU microseconds per round trip, and the median of the turns'
    ratios."""
    replay = await start_replay(cassette, tmp, streamed=streamed)
    opts: dict[str, object] = {"compression": None, "ping_interval": None, "max_size": None}
    try:
        async with (
            websockets.connect(f"ws://127.0.0.1:{echo.port}/pairs", **opts) as bare_ws,
            websockets.connect(f"ws://127.0.0.1:{replay.port}/pairs", **opts) as replay_ws,
        ):
            clients = {"bare": (bare_ws, echo.proc.pid), "replay": (replay_ws, replay.proc.pid)}
            elapsed = {"bare": 0.0, "replay": 0.0}
            cpu = {"bare": 0.0, "replay": 0.0}
            ratios: list[float] = []
            for turn, first in enumerate(range(0, n, CHUNK)):
                chunk = range(first, min(n, first + CHUNK))
                took: dict[str, float] = {}
                for name in ("bare", "replay") if turn % 2 == 0 else ("replay", "bare"):
                    ws, pid = clients[name]
                    cpu_before = cpu_seconds(pid)
                    started = time.perf_counter()
                    for i in chunk:
                        data = request(i).decode()
                        await ws.send(data)
                        reply = await ws.recv()
                        assert reply == data, (reply, data)
                    took[name] = time.perf_counter() - started
                    elapsed[name] += took[name]
                    cpu[name] += cpu_seconds(pid) - cpu_before
                ratios.append(took["bare"] / took["replay"])
            await replay_ws.close(1000)
        code = await replay.wait(60)
    finally:
        await replay.kill()
    report = report_of(tmp, cassette)
    assert code == 0 and report["passed"] and not report["violations"], report
    ratios.sort()
    return {
        "bare_rps": n / elapsed["bare"],
        "replay_rps": n / elapsed["replay"],
        "bare_cpu_us": cpu["bare"] / n * 1e6,
        "replay_cpu_us": cpu["replay"] / n * 1e6,
        "ratio": ratios[len(ratios) // 2],
    }


EVENT_COST = textwrap.dedent(
    """
    import sys, time
    import wstape.replay.index as index
    costs = []
    for kept in (index.KEPT_BYTES, 0):
        index.KEPT_BYTES = kept
        built = index.CassetteIndex.build(sys.argv[1])
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            count = sum(1 for _ in built.events(1))
            best = min(best, time.process_time() - started)
        costs.append(best / count * 1e6)
    print(*costs)
    """
)
"""Prints the CPU microseconds per event of walking connection 1's recorded events, kept
in memory and streamed from the file (best of 5)."""


def event_costs(cassette: Path) -> tuple[float, float]:
    """What a connection's events cost to get from the index, kept and streamed, in the
    replay's source tree (``--src``): the reading a streamed connection does besides."""
    env = dict(os.environ)
    if SRC is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    cwd = SRC if SRC is not None else Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", EVENT_COST, str(cassette)],
        env=env, cwd=cwd, capture_output=True, text=True, check=True, timeout=600,
    ).stdout.split()  # fmt: skip
    return float(out[0]), float(out[1])


async def bench_pairs(tmp: Path, n: int, rounds: int) -> dict[str, float]:
    cassette = tmp / "pairs.msgpack"
    write_pairs(cassette, n)
    kept_us, streamed_us = await asyncio.to_thread(event_costs, cassette)
    echo = await start_echo()
    variants = {"replay": False, "streamed": True}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    try:
        for round_ in range(rounds):
            order = list(variants.items())
            for name, streamed in order if round_ % 2 == 0 else order[::-1]:
                got = await pairs_round(echo, cassette, tmp, n, streamed=streamed)
                results[name].append(got)
                print(
                    f"   round {round_ + 1} {name:<9} bare {got['bare_rps']:7,.0f}/s "
                    f"{got['bare_cpu_us']:5.1f} us CPU, replay {got['replay_rps']:7,.0f}/s "
                    f"{got['replay_cpu_us']:5.1f} us CPU, median turn ratio {got['ratio']:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        await echo.kill()
    print(
        f"1. {n:,} x {PAYLOAD}-byte request/reply pairs, --speed 0, one client; {rounds} "
        f"rounds of turns of {CHUNK} round trips against each server:"
    )
    print(
        f"   {'':<32}{'replay':>9}{'bare':>9}{'ratio':>8}{'CPU us/rt':>11}{'bare':>7}"
        f"{'median':>8}{'range':>12}"
    )
    out: dict[str, float] = {"pairs": n, "rounds": rounds}
    labels = {"replay": "wstape replay", "streamed": "wstape replay, events streamed"}
    for name, rows in results.items():
        bare = sum(r["bare_rps"] for r in rows) / len(rows)
        replay = sum(r["replay_rps"] for r in rows) / len(rows)
        cpu = min(r["replay_cpu_us"] for r in rows)
        bare_cpu = min(r["bare_cpu_us"] for r in rows)
        ratios = sorted(r["ratio"] for r in rows)
        median = ratios[len(ratios) // 2]
        print(
            f"   {labels[name]:<32}{replay:>9,.0f}{bare:>9,.0f}{replay / bare:>7.2f}x"
            f"{cpu:>11.1f}{bare_cpu:>7.1f}{median:>7.2f}x{ratios[0]:>6.2f}-{ratios[-1]:.2f}"
        )
        out.update(
            {
                f"{name}_rps": replay,
                f"{name}_bare_rps": bare,
                f"{name}_cpu_us": cpu,
                f"{name}_bare_cpu_us": bare_cpu,
                f"{name}_ratio": median,
            }
        )
    print(
        "   (round trips/s: mean over the rounds; CPU: the server's user + system time, "
        "best round; median and range: of each round's median turn ratio)"
    )
    print(
        f"   the index's events, CPU per event: kept {kept_us:.2f} us, streamed from the "
        f"file {streamed_us:.2f} us (best of 5 walks)"
    )
    out.update({"kept_event_us": kept_us, "streamed_event_us": streamed_us})
    met = {name: "met" if out[f"{name}_ratio"] >= 1.0 else "NOT met" for name in variants}
    print(
        f"   goal: wstape replay >= 1.00x the bare server (median): {met['replay']}; "
        f"with its events streamed: {met['streamed']}"
    )
    return out


# -- 2. concurrency -------------------------------------------------------------------


async def one_client(url: str, i: int) -> None:
    async with websockets.connect(
        url, compression=None, ping_interval=None, open_timeout=60, close_timeout=60
    ) as ws:
        await ws.send(request(i).decode())
        reply = await asyncio.wait_for(ws.recv(), 60)
        assert reply == '{"ok":true}'
        await ws.close(1000)


async def bench_concurrent(tmp: Path, n: int) -> dict[str, float]:
    cassette = tmp / "many.msgpack"
    write_concurrent(cassette, n)
    replay = await start_replay(cassette, tmp, "--match", "type")
    try:
        started = time.perf_counter()
        url = f"ws://127.0.0.1:{replay.port}/many"
        await asyncio.gather(*(one_client(url, i) for i in range(n)))
        code = await replay.wait(120)  # exits once every recorded connection was played
        elapsed = time.perf_counter() - started
    finally:
        await replay.kill()
    report = report_of(tmp, cassette)
    connections = report["connections"]
    assert isinstance(connections, list)
    played = len(connections)
    errors = [v for v in report["violations"] if v["severity"] == "error"]  # type: ignore[attr-defined,index]
    assert code == 0 and played == n and not errors, (code, played, errors[:3])
    print(
        f"2. {n:,} recorded connections, {n:,} clients at once: all {played:,} played, "
        f"{len(errors)} errors, {elapsed:.2f} s ({n / elapsed:,.0f} connections/s)"
    )
    return {"connections": n, "played": played, "seconds": elapsed}


# -- 3. memory -------------------------------------------------------------------------


async def big_client(port: int, n: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /big HTTP/1.1\r\nHost: bench.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    writer.write(encode_frame(OpCode.TEXT, b'{"subscribe":"all"}', mask_key=b"wxyz"))
    parser = FrameParser()
    got = 0
    started = time.perf_counter()
    while got < n:
        data = await reader.read(1 << 20)
        assert data, f"server hung up after {got} messages"
        got += sum(1 for f in parser.feed(data) if getattr(f, "opcode", None) == OpCode.BINARY)
    elapsed = time.perf_counter() - started
    writer.write(encode_frame(OpCode.CLOSE, encode_close_body(1000), mask_key=b"wxyz"))
    await writer.drain()
    await reader.read()  # the server's Close, then EOF
    writer.close()
    return n / elapsed


async def bench_memory(tmp: Path, n: int) -> dict[str, float]:
    cassette = tmp / "big.msgpack"
    started = time.perf_counter()
    write_big(cassette, n)
    wrote = time.perf_counter() - started
    size_mb = cassette.stat().st_size / 1e6
    started = time.perf_counter()
    replay = await start_replay(cassette, tmp)
    indexed = time.perf_counter() - started
    try:
        rate = await big_client(replay.port, n)
        code = await replay.wait(600)
    finally:
        await replay.kill()
    report = report_of(tmp, cassette)
    assert code == 0 and report["passed"], report["violations"]
    peak = replay.peak_rss_kb / 1024
    print(
        f"3. one connection of {n:,} server messages ({size_mb:,.0f} MB cassette, written in "
        f"{wrote:.1f} s): indexed in {indexed:.1f} s, streamed at {rate:,.0f} messages/s, "
        f"peak RSS {peak:.0f} MB (goal < 200 MB: {'met' if peak < 200 else 'NOT met'})"
    )
    return {"messages": n, "cassette_mb": size_mb, "peak_rss_mb": peak, "messages_per_s": rate}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller counts")
    parser.add_argument("--only", choices=["pairs", "concurrent", "memory"])
    parser.add_argument("--rounds", type=int, help="rounds of the pairs test (5; 3 with --quick)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--src", type=Path, help="run the replay servers from this source tree")
    args = parser.parse_args()
    global SRC
    SRC = args.src.resolve() if args.src is not None else None
    scale = 10 if args.quick else 1
    print(
        f"python {sys.version.split()[0]}, websockets {websockets.__version__}, "
        f"{os.cpu_count()} CPUs, replay from {SRC or 'this checkout'}"
    )
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wstape-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "pairs"):
            rounds = args.rounds or (3 if args.quick else 5)
            figures["pairs"] = await bench_pairs(tmp, 20_000 // scale, rounds)
        if args.only in (None, "concurrent"):
            figures["concurrent"] = await bench_concurrent(tmp, 1_000 // scale)
        if args.only in (None, "memory"):
            figures["memory"] = await bench_memory(tmp, 1_000_000 // scale)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
