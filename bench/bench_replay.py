"""Benchmarks of ``wstape replay`` (issue 3). Prints figures and ratios; not a test.

1. Round trips: a recorded conversation of N x 100-byte request/reply pairs replayed at
   ``--speed 0`` to a client that repeats it, against a bare ``websockets`` echo server
   driven by the same client in the same run. Goal: >= 0.7x the bare server.
2. Concurrency: a cassette of 1,000 recorded connections, 1,000 clients at once; every
   connection played, no error, time to play them all.
3. Memory: a cassette with one 1,000,000-message connection replays with a peak RSS
   under 200 MB (the cassette is streamed, never held in memory).

Each server runs in its own process (``python -m wstape replay ...`` exactly as a user
would start it); the clients run here. ``--quick`` scales every count down by 10.

    python bench/bench_replay.py [--quick] [--only pairs|concurrent|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import websockets

from wstape.cassettes import CassetteWriter
from wstape.core.frames import FrameParser, OpCode, encode_close_body, encode_frame
from wstape.core.model import Close, Message, Opcode, Open, Side

PAYLOAD = 100

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
    with CassetteWriter(path, overwrite=True) as w:
        w.write(opening(1, "/pairs"))
        for i in range(n):
            data = request(i)
            w.write(Message(1, i * 0.001, Side.CLIENT, Opcode.TEXT, data))
            w.write(Message(1, i * 0.001 + 0.0005, Side.SERVER, Opcode.TEXT, data))
        w.write(Close(1, n * 0.001, Side.CLIENT, 1000, ""))


def write_concurrent(path: Path, n: int) -> None:
    with CassetteWriter(path, overwrite=True) as w:
        for conn in range(1, n + 1):
            w.write(opening(conn, "/many"))
        for conn in range(1, n + 1):  # interleaved, as a real recording of n clients
            w.write(Message(conn, 0.01, Side.CLIENT, Opcode.TEXT, request(conn)))
        for conn in range(1, n + 1):
            w.write(Message(conn, 0.02, Side.SERVER, Opcode.TEXT, b'{"ok":true}'))
        for conn in range(1, n + 1):
            w.write(Close(conn, 0.03, Side.CLIENT, 1000, ""))


def write_big(path: Path, n: int) -> None:
    with CassetteWriter(path, overwrite=True) as w:
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


async def start_replay(cassette: Path, tmp: Path, *args: str) -> Proc:
    ready = tmp / f"ready-{cassette.stem}"
    ready.unlink(missing_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "wstape", "replay", str(cassette),
        "--port", "0", "--ready-file", str(ready), "--speed", "0", "--timeout", "60",
        "--report", str(tmp / f"report-{cassette.stem}.json"), *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
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


async def pairs_client(url: str, n: int) -> float:
    """Send the recorded requests one by one; returns round trips per second."""
    async with websockets.connect(
        url, compression=None, ping_interval=None, max_size=None
    ) as ws:
        started = time.perf_counter()
        for i in range(n):
            data = request(i).decode()
            await ws.send(data)
            reply = await ws.recv()
            assert reply == data, (reply, data)
        elapsed = time.perf_counter() - started
        await ws.close(1000)
    return n / elapsed


async def bench_pairs(tmp: Path, n: int) -> dict[str, float]:
    cassette = tmp / "pairs.msgpack"
    write_pairs(cassette, n)
    echo = await start_echo()
    try:
        bare = await pairs_client(f"ws://127.0.0.1:{echo.port}/pairs", n)
    finally:
        await echo.kill()
    replay = await start_replay(cassette, tmp)
    try:
        replayed = await pairs_client(f"ws://127.0.0.1:{replay.port}/pairs", n)
        code = await replay.wait(60)
    finally:
        await replay.kill()
    report = report_of(tmp, cassette)
    assert code == 0 and report["passed"] and not report["violations"], report
    ratio = replayed / bare
    print(
        f"1. {n:,} x {PAYLOAD}-byte request/reply pairs, --speed 0, one client:\n"
        f"   bare websockets echo server  {bare:10,.0f} round trips/s\n"
        f"   wstape replay               {replayed:10,.0f} round trips/s\n"
        f"   ratio                        {ratio:10.2f}x  (goal >= 0.70x: "
        f"{'met' if ratio >= 0.7 else 'NOT met'})"
    )
    return {"pairs": n, "bare_rps": bare, "replay_rps": replayed, "ratio": ratio}


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
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(
        f"python {sys.version.split()[0]}, websockets {websockets.__version__}, "
        f"{os.cpu_count()} CPUs"
    )
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="wstape-bench-") as tmpdir:
        tmp = Path(tmpdir)
        if args.only in (None, "pairs"):
            figures["pairs"] = await bench_pairs(tmp, 20_000 // scale)
        if args.only in (None, "concurrent"):
            figures["concurrent"] = await bench_concurrent(tmp, 1_000 // scale)
        if args.only in (None, "memory"):
            figures["memory"] = await bench_memory(tmp, 1_000_000 // scale)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
