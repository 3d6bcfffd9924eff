"""How fast ``wstape record`` relays compared with plain mitmdump, and how much memory it keeps.

    python bench/bench_record.py                # the full run (several minutes)
    python bench/bench_record.py --quick        # counts divided by 10
    python bench/bench_record.py --compare main # and (d): wstape record of that revision

Not a test: it prints a table. One run, the same echo server (a separate process) and
the same client for every setup:

- (a) direct: the client talks to the server;
- (b) mitmdump with no addon (``mitmdump -q --mode reverse:...``, i.e. no per-message
  output, but its default addons and no trimming of ``flow.websocket.messages``);
- (c) ``wstape record --mode reverse:ws://...`` writing a cassette;
- (d) with ``--compare REV``: the same, run from ``git archive REV wstape`` (PYTHONPATH),
  so a change is measured against its base in the same run.

Measured: messages per second of 20,000 x 100-byte text round trips one at a time and
pipelined (a sender and a receiver task), MiB/s of 200 x 1 MiB binary messages echoed
(payload counted once), and the peak RSS (VmHWM) of (c) over one connection of
1,000,000 echoed 100-byte messages (1,000 in flight). permessage-deflate is off on both
ends, so the proxy's own cost is measured, not zlib's. Goals (issue 12): (c)/(b) >= 1.5
on small messages, >= 0.95 on large ones, peak RSS of (c) < 150 MB. Beside them, the
latency each proxy adds per message (p50 and p99 of the one-at-a-time round trips, minus
the direct ones, halved: a round trip crosses the proxy twice).

The machine's load drifts and other jobs share its cores, so the setups run side by side:
every test runs ``--repeat`` rounds (default 5), each measuring every setup in turn, in
reverse order every other round (a b c, c b a, ...), so a drift favours none. A ratio is
taken within each round, from figures measured seconds apart, and the median over the
rounds is printed with its range; the table shows each setup's median. Beside wall-clock
rates, each proxy's CPU time per message relayed (user + system, from /proc/PID/stat) is
printed: it barely moves with the load, and its ratio ((b)'s over (c)'s) is the proxy's
own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_writer import revision_tree  # (bench/ is first on the path of a script here)
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/PID/stat (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process, from /proc/PID/status (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


class Proc:
    """A subprocess whose stderr (or stdout) is drained in a thread."""

    def __init__(
        self,
        cmd: list[str],
        *,
        merge: bool = True,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE,
            text=True,
            env={**_env(), **(env or {})},
            cwd=cwd,
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
    pid: int | None = None
    """The proxy's process (None for the direct setup): its CPU time is measured."""
    values: dict[str, list[float]] = field(default_factory=dict)
    """Each test's figure, one per round."""
    cpu: dict[str, list[float]] = field(default_factory=dict)
    """Each test's proxy CPU seconds per message relayed, one per round."""
    p50: list[float] = field(default_factory=list)
    """Median round trip of each round's one-at-a-time test, seconds."""
    p99: list[float] = field(default_factory=list)
    hwm: float | None = None

    def median(self, test: str) -> float:
        return statistics.median(self.values[test])


TESTS = ("small", "piped", "big")


def measure(rows: list[Row], args: argparse.Namespace) -> None:
    """Each test, ``--repeat`` rounds, every setup in turn within a round (the order
    reversed every other round)."""
    tests: dict[str, Callable[[str], Coroutine[Any, Any, float | tuple[float, list[float]]]]] = {
        "small": lambda url: one_at_a_time(url, args.small),
        "piped": lambda url: pipelined(url, args.small),
        "big": lambda url: large(url, args.big),
    }
    relayed = {  # messages through the proxy per test (both ways, warm-up included)
        "small": 2 * (args.small + min(200, args.small)),
        "piped": 2 * (args.small + min(200, args.small)),
        "big": 2 * (args.big + 2),
    }
    for test in args.only:
        for round_ in range(args.repeat):
            for row in rows if round_ % 2 == 0 else rows[::-1]:
                cpu0 = cpu_seconds(row.pid) if row.pid is not None else 0.0
                result = asyncio.run(tests[test](row.url))
                if row.pid is not None:
                    per = (cpu_seconds(row.pid) - cpu0) / relayed[test]
                    row.cpu.setdefault(test, []).append(per)
                if isinstance(result, tuple):
                    value, times = result
                    row.p50.append(percentile(times, 0.50))
                    row.p99.append(percentile(times, 0.99))
                else:
                    value = result
                row.values.setdefault(test, []).append(value)
                print(
                    f"  round {round_ + 1} {row.name:<24} {test:<6} {value:12,.1f}",
                    file=sys.stderr,
                    flush=True,
                )


def ratios(top: Row, bottom: Row, test: str) -> list[float]:
    """``top``'s figure over ``bottom``'s, round by round."""
    return [t / b for t, b in zip(top.values[test], bottom.values[test], strict=True)]


def cpu_ratios(top: Row, bottom: Row, test: str) -> list[float]:
    """``bottom``'s CPU per message over ``top``'s, round by round (above 1: ``top`` is
    cheaper)."""
    return [b / t for t, b in zip(top.cpu[test], bottom.cpu[test], strict=True)]


def spread(values: list[float]) -> str:
    """``1.52 (1.31-1.60)``: the median and the range."""
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def start_server() -> tuple[Proc, int]:
    server = Proc([sys.executable, "-c", SERVER])
    port = int(server.wait_line(re.compile(r"^(\d+)$")).group(1))
    return server, port


def start_wstape(upstream: int, out: Path, tree: Path | None = None) -> tuple[Proc, int]:
    """``wstape record`` (of the revision extracted at ``tree``, if given)."""
    rec = Proc(
        [
            sys.executable, "-m", "wstape", "record", "-o", str(out), "--overwrite",
            "--mode", f"reverse:ws://127.0.0.1:{upstream}", "--listen-port", "0",
        ],
        env={"PYTHONPATH": str(tree)} if tree is not None else None,
        cwd=tree,  # (python -m puts the working directory first on sys.path)
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
    parser.add_argument("--repeat", type=int, default=5, help="rounds of each test")
    parser.add_argument("--skip-rss", action="store_true", help="skip the long RSS run")
    parser.add_argument(
        "--only",
        choices=TESTS,
        action="append",
        help="run only this test (small: one at a time, piped, big: 1 MiB); repeatable",
    )
    parser.add_argument(
        "--compare", metavar="REV", help="also run wstape record of this git revision (d)"
    )
    parser.add_argument(
        "--cassette-dir",
        type=Path,
        default=None,
        help="where (c) writes its cassettes (default: a temporary directory); "
        "/dev/shm separates the proxy's cost from the disk's",
    )
    args = parser.parse_args()
    args.only = [t for t in TESTS if t in args.only] if args.only else list(TESTS)
    scale = 10 if args.quick else 1
    args.small = 20_000 // scale
    args.big = 200 // scale
    args.rss_messages = 1_000_000 // scale

    import mitmproxy.version

    print(
        f"python {sys.version.split()[0]}, mitmproxy {mitmproxy.version.VERSION}, "
        f"{os.cpu_count()} CPUs; {args.small} x 100 B round trips, {args.big} x 1 MiB; "
        f"{args.repeat} rounds; cassettes in {args.cassette_dir or tempfile.gettempdir()}",
        file=sys.stderr,
    )
    server, upstream = start_server()
    rss = None
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="wstape-bench-", dir=args.cassette_dir) as tmp:
        try:
            dump, dump_port = start_mitmdump(upstream)
            procs.append(dump)
            rec, rec_port = start_wstape(upstream, Path(tmp) / "bench.msgpack")
            procs.append(rec)
            rows = [
                Row("(a) direct", f"ws://127.0.0.1:{upstream}/"),
                Row("(b) mitmdump", f"ws://127.0.0.1:{dump_port}/", dump.proc.pid),
                Row("(c) wstape record", f"ws://127.0.0.1:{rec_port}/", rec.proc.pid),
            ]
            if args.compare:
                tree = revision_tree(args.compare, Path(tmp))
                old, old_port = start_wstape(upstream, Path(tmp) / "compare.msgpack", tree)
                procs.append(old)
                rows.append(
                    Row(f"(d) {args.compare}"[:24], f"ws://127.0.0.1:{old_port}/", old.proc.pid)
                )
            measure(rows, args)
            for row, proc in zip(rows[1:], procs, strict=True):
                row.hwm = vm_hwm_mib(proc.proc.pid)
        finally:
            for proc in procs:
                proc.stop()
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
    report(rows, args)
    if rss is not None:
        print(
            f"(c) over one connection of {args.rss_messages:,} 100-byte messages echoed, "
            f"1,000 in flight "
            f"({2 * args.rss_messages:,} records, {size / 2**20:.0f} MiB cassette, "
            f"{rss[1]:.0f} s): peak RSS {rss[0]:.0f} MiB (goal < 150 MB)"
        )


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print()
    print(f"medians of {args.repeat} rounds; proxy CPU per message relayed beside each rate")
    print(f"{'setup':<24}{'1-at-a-time msg/s':>26}{'pipelined msg/s':>24}"
          f"{'1 MiB MiB/s':>24}{'peak RSS':>10}")  # fmt: skip
    for r in rows:
        cells = []
        for test in TESTS:
            if test not in r.values:
                cells.append("-")
                continue
            cpu = f"{statistics.median(r.cpu[test]) * 1e6:,.0f} us" if test in r.cpu else ""
            cells.append(f"{r.median(test):>13,.{1 if test == 'big' else 0}f}{cpu:>11}")
        hwm = f"{r.hwm:.0f} MiB" if r.hwm is not None else "-"
        print(f"{r.name:<24}{cells[0]:>26}{cells[1]:>24}{cells[2]:>24}{hwm:>10}")
    a, b, c = rows[:3]
    goals = {"small": "goal >= 1.5", "piped": "goal >= 1.5", "big": "goal >= 0.95"}
    names = {"small": "one at a time", "piped": "pipelined", "big": "1 MiB"}
    print()
    print("ratios: median over the rounds (range), each round's figures measured side by side")
    print(f"{'':<36}{'rate':>18}{'CPU per message':>20}")
    pairs = [("(c)/(b)", c, b)]
    if len(rows) > 3:
        pairs += [("(d)/(b)", rows[3], b), ("(c)/(d)", c, rows[3])]
    for label, top, bottom in pairs:
        for test in args.only:
            goal = f"  ({goals[test]})" if label == "(c)/(b)" else ""
            print(
                f"{label + ' ' + names[test]:<36}{spread(ratios(top, bottom, test)):>18}"
                f"{spread(cpu_ratios(top, bottom, test)):>20}{goal}"
            )
    print("(CPU ratio: the other's CPU per message over this one's; above 1 is cheaper)")
    if "small" not in args.only:
        return
    print()
    print("latency a proxy adds per message, one at a time: (its round trip - direct) / 2,")
    p50, p99 = statistics.median(a.p50), statistics.median(a.p99)
    print(f"median of {args.repeat} rounds; direct round trip p50 {p50 * 1e6:,.0f} us, "
          f"p99 {p99 * 1e6:,.0f} us")  # fmt: skip
    print(f"{'setup':<24}{'added p50':>12}{'added p99':>12}")
    added = {}
    for r in rows[1:]:
        added[r.name] = (
            (statistics.median(r.p50) - p50) / 2,
            (statistics.median(r.p99) - p99) / 2,
        )
        print(f"{r.name:<24}{added[r.name][0] * 1e6:>9,.0f} us{added[r.name][1] * 1e6:>9,.0f} us")
    (b50, b99), (c50, c99) = added[b.name], added[c.name]
    print(f"(c) adds {c50 / max(b50, 1e-9):.2f}x (b)'s p50, {c99 / max(b99, 1e-9):.2f}x its p99")


if __name__ == "__main__":
    main()
