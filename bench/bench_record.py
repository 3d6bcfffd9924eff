"""How fast ``wstape record`` relays compared with plain mitmdump, and how much memory it keeps.

    python bench/bench_record.py            # the full run (several minutes)
    python bench/bench_record.py --quick    # counts divided by 10

Not a test: it prints a table. One run, the same echo server (a separate process) and
the same client for every setup:

- (a) direct: the client talks to the server;
- (b) mitmdump with no addon (``mitmdump -q --mode reverse:...``, i.e. no per-message
  output, but its default addons and no trimming of ``flow.websocket.messages``);
- (c) ``wstape record --mode reverse:ws://...`` writing a cassette.

Measured: messages per second of 20,000 x 100-byte text round trips one at a time and
pipelined (a sender and a receiver task), MiB/s of 200 x 1 MiB binary messages echoed
(payload counted once), and the peak RSS (VmHWM) of (c) over one connection of
1,000,000 echoed 100-byte messages (1,000 in flight). permessage-deflate is off on both
ends, so the proxy's own cost is measured, not zlib's. Goals (issue 12): (c)/(b) >= 1.5
on small messages, >= 0.95 on large ones, peak RSS of (c) < 150 MB. Beside them, the
latency each proxy adds per message (p50 and p99 of the one-at-a-time round trips, minus
the direct ones, halved: a round trip crosses the proxy twice).

The machine's load drifts, so the three setups run side by side and every figure is the
best of ``--repeat`` rounds (default 3), each round measuring (a), (b), (c) in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

SERVER = """
import asyncio
from websockets.asyncio.server import serve

async def echo(ws):
    async for message in ws:
        await ws.send(message)

async def main():
    async with serve(
        echo, "127.0.0.1", 0, max_size=None, compression=None, ping_interval=None
    ) as server:
        print(next(iter(server.sockets)).getsockname()[1], flush=True)
        await asyncio.Future()

asyncio.run(main())
"""

LISTENING = re.compile(r"proxy listening on [^\s]+:(\d+)")


def _env() -> dict[str, str]:
    drop = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    return {k: v for k, v in os.environ.items() if k.lower() not in drop}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process, from /proc/PID/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class Proc:
    """A subprocess whose stderr (or stdout) is drained in a thread."""

    def __init__(self, cmd: list[str], *, merge: bool = True) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            text=True,
            env=_env(),
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        stream = self.proc.stdout if merge else self.proc.stderr
        threading.Thread(target=self._drain, args=(stream,), daemon=True).start()

    def _drain(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, rx: re.Pattern[str], timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := rx.search(line):
                        return m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError("\n".join(self.lines))
                self._cond.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _open(url: str) -> ClientConnection:
    return await connect(url, proxy=None, compression=None, max_size=None, ping_interval=None)


async def one_at_a_time(url: str, n: int, size: int = 100) -> tuple[float, list[float]]:
    """Messages per second, and each round trip's time in seconds."""
    payload = "x" * size
    clock = time.perf_counter
    times: list[float] = []
    async with await _open(url) as ws:
        for _ in range(min(200, n)):  # warm-up
            await ws.send(payload)
            await ws.recv()
        t = clock()
        for _ in range(n):
            sent = clock()
            await ws.send(payload)
            await ws.recv()
            times.append(clock() - sent)
        return n / (clock() - t), times


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def _pump(ws: ClientConnection, n: int, payload: str | bytes) -> float:
    async def receive() -> None:
        for _ in range(n):
            await ws.recv()

    t = time.perf_counter()
    receiver = asyncio.ensure_future(receive())
    for _ in range(n):
        await ws.send(payload)
    await receiver
    return time.perf_counter() - t


async def pipelined(url: str, n: int, size: int = 100) -> float:
    async with await _open(url) as ws:
        await _pump(ws, min(200, n), "x" * size)
        return n / await _pump(ws, n, "x" * size)


async def windowed(url: str, n: int, size: int = 100, window: int = 1000) -> float:
    """Pipelined with at most ``window`` messages in flight: a steady stream for as long
    as it takes, without piling the backlog up in socket buffers."""
    payload = "x" * size
    in_flight = asyncio.Semaphore(window)
    async with await _open(url) as ws:

        async def receive() -> None:
            for _ in range(n):
                await ws.recv()
                in_flight.release()

        t = time.perf_counter()
        receiver = asyncio.ensure_future(receive())
        for _ in range(n):
            await in_flight.acquire()
            await ws.send(payload)
        await receiver
        return n / (time.perf_counter() - t)


async def large(url: str, n: int, size: int = 1024 * 1024) -> float:
    payload = os.urandom(size)
    async with await _open(url) as ws:
        await _pump(ws, 2, payload)
        return n * size / (1024 * 1024) / await _pump(ws, n, payload)


@dataclass
class Row:
    name: str
    url: str
    small: float = 0.0
    piped: float = 0.0
    big: float = 0.0
    hwm: float | None = None
    p50: float = float("inf")
    """Median round trip of the one-at-a-time test, seconds (the best round's)."""
    p99: float = float("inf")


def measure(rows: list[Row], args: argparse.Namespace) -> None:
    """Each test, ``--repeat`` rounds, (a) (b) (c) in turn within a round; keep the best."""
    tests: list[tuple[str, Callable[[str], Awaitable[float | tuple[float, list[float]]]]]] = [
        ("small", lambda url: one_at_a_time(url, args.small)),
        ("piped", lambda url: pipelined(url, args.small)),
        ("big", lambda url: large(url, args.big)),
    ]
    for attr, make in tests:
        for round_ in range(args.repeat):
            for row in rows:
                result = asyncio.run(make(row.url))
                if isinstance(result, tuple):
                    value, times = result
                    row.p50 = min(row.p50, percentile(times, 0.50))
                    row.p99 = min(row.p99, percentile(times, 0.99))
                else:
                    value = result
                setattr(row, attr, max(getattr(row, attr), value))
                print(
                    f"  round {round_ + 1} {row.name:<18} {attr:<6} {value:12,.1f}",
                    file=sys.stderr,
                    flush=True,
                )


def start_server() -> tuple[Proc, int]:
    server = Proc([sys.executable, "-c", SERVER])
    port = int(server.wait_line(re.compile(r"^(\d+)$")).group(1))
    return server, port


def start_wstape(upstream: int, out: Path) -> tuple[Proc, int]:
    rec = Proc(
        [
            sys.executable, "-m", "wstape", "record", "-o", str(out), "--overwrite",
            "--mode", f"reverse:ws://127.0.0.1:{upstream}", "--listen-port", "0",
        ]
    )  # fmt: skip
    return rec, int(rec.wait_line(LISTENING).group(1))


def start_mitmdump(upstream: int) -> tuple[Proc, int]:
    mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent)) or "mitmdump"
    port = _free_port()
    dump = Proc(
        [
            mitmdump, "-q", "--mode", f"reverse:http://127.0.0.1:{upstream}",
            "--listen-host", "127.0.0.1", "--listen-port", str(port),
        ]
    )  # fmt: skip
    _wait_port(port)
    return dump, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="divide every count by 10")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for each figure")
    parser.add_argument("--skip-rss", action="store_true", help="skip the long RSS run")
    parser.add_argument(
        "--cassette-dir",
        type=Path,
        default=None,
        help="where (c) writes its cassettes (default: a temporary directory); "
        "/dev/shm separates the proxy's cost from the disk's",
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    args.small = 20_000 // scale
    args.big = 200 // scale
    args.rss_messages = 1_000_000 // scale

    import mitmproxy.version

    print(
        f"python {sys.version.split()[0]}, mitmproxy {mitmproxy.version.VERSION}, "
        f"{os.cpu_count()} CPUs; {args.small} x 100 B round trips, {args.big} x 1 MiB; "
        f"cassettes in {args.cassette_dir or tempfile.gettempdir()}",
        file=sys.stderr,
    )
    server, upstream = start_server()
    rss = None
    with tempfile.TemporaryDirectory(prefix="wstape-bench-", dir=args.cassette_dir) as tmp:
        dump, dump_port = start_mitmdump(upstream)
        rec, rec_port = start_wstape(upstream, Path(tmp) / "bench.msgpack")
        rows = [
            Row("(a) direct", f"ws://127.0.0.1:{upstream}/"),
            Row("(b) mitmdump", f"ws://127.0.0.1:{dump_port}/"),
            Row("(c) wstape record", f"ws://127.0.0.1:{rec_port}/"),
        ]
        try:
            measure(rows, args)
            rows[1].hwm = vm_hwm_mib(dump.proc.pid)
            rows[2].hwm = vm_hwm_mib(rec.proc.pid)
        finally:
            dump.stop()
            rec.stop()
        try:
            if not args.skip_rss:
                print(f"  RSS run: {args.rss_messages:,} messages", file=sys.stderr, flush=True)
                rec, port = start_wstape(upstream, Path(tmp) / "rss.msgpack")
                try:
                    t = time.perf_counter()
                    asyncio.run(windowed(f"ws://127.0.0.1:{port}/", args.rss_messages))
                    rss = (vm_hwm_mib(rec.proc.pid), time.perf_counter() - t)
                finally:
                    rec.stop()
                size = (Path(tmp) / "rss.msgpack").stat().st_size
        finally:
            server.stop()

    print()
    print(f"{'setup':<20}{'1-at-a-time msg/s':>19}{'pipelined msg/s':>17}{'1 MiB MiB/s':>13}"
          f"{'peak RSS':>11}")  # fmt: skip
    for r in rows:
        hwm = f"{r.hwm:.0f} MiB" if r.hwm is not None else "-"
        print(f"{r.name:<20}{r.small:>19,.0f}{r.piped:>17,.0f}{r.big:>13,.1f}{hwm:>11}")
    a, b, c = rows
    print()
    print(
        f"(c)/(b): one at a time {c.small / b.small:.2f}, pipelined {c.piped / b.piped:.2f} "
        f"(goal >= 1.5); 1 MiB {c.big / b.big:.2f} (goal >= 0.95)"
    )
    print()
    print("latency a proxy adds per message, one at a time: (its round trip - direct) / 2,")
    print(f"best of {args.repeat} rounds; direct round trip p50 {a.p50 * 1e6:,.0f} us, "
          f"p99 {a.p99 * 1e6:,.0f} us")  # fmt: skip
    print(f"{'setup':<20}{'added p50':>12}{'added p99':>12}")
    for r in (b, c):
        added50, added99 = (r.p50 - a.p50) / 2 * 1e6, (r.p99 - a.p99) / 2 * 1e6
        print(f"{r.name:<20}{added50:>9,.0f} us{added99:>9,.0f} us")
    print(
        f"(c) adds {(c.p50 - a.p50) / max(b.p50 - a.p50, 1e-9):.2f}x (b)'s p50, "
        f"{(c.p99 - a.p99) / max(b.p99 - a.p99, 1e-9):.2f}x its p99"
    )
    if rss is not None:
        print(
            f"(c) over one connection of {args.rss_messages:,} 100-byte messages echoed, "
            f"1,000 in flight "
            f"({2 * args.rss_messages:,} records, {size / 2**20:.0f} MiB cassette, "
            f"{rss[1]:.0f} s): peak RSS {rss[0]:.0f} MiB (goal < 150 MB)"
        )


if __name__ == "__main__":
    main()
