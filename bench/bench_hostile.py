"""Hostile clients against ``wstape replay`` (issue 10). Prints figures; not a test.

Each attack runs against its own server process (``python -m wstape replay ...``, exactly
as a user starts it) and prints what the server did: connections it timed out, whether a
normal client still played, the server's RSS growth (sampled VmRSS during the attack
minus VmRSS before it), and the rules the report names.

1. silent: N TCP connections that never send a byte (plain and TLS); how many the server
   closed by ``--timeout`` + 2 s.
2. fd limit: the server under ``RLIMIT_NOFILE`` 256 and 300 silent connections; does a
   normal client still play, how long did it wait, how many lines (tracebacks) the
   server wrote on stderr.
3. echo, client never reads: 1 MiB messages sent to ``--echo`` as fast as the server
   takes them; RSS growth.
4. ping flood, client never reads: small Pings; RSS growth.
5. replay to clients that never read: a recorded connection of 1 MiB server messages,
   1 client and 4 clients; RSS growth.
6. fragments: a message in 2-byte fragments (``--max-fragments`` raised so it is
   allowed); RSS growth relative to its payload.
7. endless empty continuation frames; RSS growth and the rule reported.
8. verdicts: one connection per protocol-breaking input; the close code it got and the
   rule IDs the report names for it (every one must have at least one).
9. compression bomb (issue 14): with permessage-deflate negotiated, one message of 1 GiB
   of zeros deflated (1 MiB; 256 MiB with ``--quick``), at ``--max-size`` 4 MiB and at
   the default 64 MiB; the close code, the rule, RSS growth (the peak is the inflated
   message, about twice ``--max-size`` at most).

Goals: silent connections closed after ``--timeout``; the normal client plays under the
fd limit; RSS growth under 16 MiB per non-reading client and under 64 MiB for the
fragment and flood attacks; every protocol-breaking input reported under a rule ID.

    python bench/bench_hostile.py [--quick] [--only NAME ...] [--src DIR]

``--src DIR`` runs the servers from another source tree (e.g. ``git archive`` of an older
commit unpacked in DIR), for before/after figures from the same client code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from wstape.cassettes import CassetteWriter, WriteMode
from wstape.core.frames import FrameParser, OpCode, StreamFailure, encode_close_body, encode_frame
from wstape.core.model import Close, Message, Opcode, Open, Side

MiB = 1024 * 1024
MASK = b"\x01\x02\x03\x04"
REQUEST = (
    b"GET {path} HTTP/1.1\r\nHost: bench.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
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


def write_chat(path: Path) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        w.write(opening(1, "/chat"))
        w.write(Message(1, 0.01, Side.CLIENT, Opcode.TEXT, b"hello"))
        w.write(Message(1, 0.02, Side.SERVER, Opcode.TEXT, b"welcome"))
        w.write(Close(1, 0.03, Side.CLIENT, 1000, ""))


def write_flood(path: Path, clients: int, messages: int) -> None:
    """``clients`` recorded connections: the client says go, the server sends
    ``messages`` x 1 MiB."""
    blob = bytes(range(256)) * (MiB // 256)
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
        for conn in range(1, clients + 1):
            w.write(opening(conn, "/flood"))
            w.write(Message(conn, 0.0, Side.CLIENT, Opcode.TEXT, b"go"))
            for i in range(messages):
                w.write(Message(conn, 0.001 + i * 1e-4, Side.SERVER, Opcode.BINARY, blob))
            w.write(Close(conn, 1.0, Side.CLIENT, 1000, ""))


# -- the server process ----------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stderr: Path
    report: Path
    rss_samples: list[int] = field(default_factory=list)

    def rss_kb(self) -> int:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    async def sampling(self, work: Awaitable[object]) -> tuple[object, float]:
        """Run ``work`` while sampling RSS; returns its result and the growth in MiB."""
        base = self.rss_kb()
        peak = base
        done = False

        async def sampler() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, self.rss_kb())
                await asyncio.sleep(0.02)

        task = asyncio.ensure_future(sampler())
        try:
            result = await work
        finally:
            done = True
            await task
        peak = max(peak, self.rss_kb())
        return result, (peak - base) / 1024

    def stop(self) -> dict[str, object]:
        """SIGTERM, wait, and the JSON report (empty if none was written)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        try:
            data: dict[str, object] = json.loads(self.report.read_text())
        except (OSError, ValueError):
            data = {}
        return data

    def stderr_text(self) -> str:
        return self.stderr.read_text(errors="replace")


class Bench:
    def __init__(self, tmp: Path, src: Path | None) -> None:
        self.tmp = tmp
        self.src = src
        self.count = 0
        self.help = self._help()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        if self.src is not None:
            env["PYTHONPATH"] = os.pathsep.join(
                [str(self.src), *filter(None, [env.get("PYTHONPATH")])]
            )
        return env

    def _help(self) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "wstape", "replay", "--help"],
            capture_output=True,
            text=True,
            env=self._env() | {"COLUMNS": "200"},
            cwd=self.tmp,
            check=False,
        )
        return out.stdout

    def supports(self, flag: str) -> bool:
        return flag in self.help

    async def start(self, *args: str, nofile: int | None = None) -> Server:
        self.count += 1
        ready = self.tmp / f"ready-{self.count}"
        report = self.tmp / f"report-{self.count}.json"
        stderr = self.tmp / f"stderr-{self.count}.txt"

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wstape", "replay", *args, "--port", "0",
                 "--ready-file", str(ready), "--report", str(report)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=self._env(),
                cwd=self.tmp,  # python -m puts the cwd first on sys.path: not a checkout
                preexec_fn=limit,
            )  # fmt: skip
        async with asyncio.timeout(60):
            while not ready.exists() or not ready.read_text().strip():
                if proc.poll() is not None:
                    raise RuntimeError(f"wstape replay exited: {stderr.read_text()[-2000:]}")
                await asyncio.sleep(0.02)
        return Server(proc, int(ready.read_text()), stderr, report)


# -- client helpers ------------------------------------------------------------------


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def upgraded(port: int, path: str = "/echo") -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST.replace(b"{path}", path.encode()))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def closed(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()


async def push(writer: asyncio.StreamWriter, data: bytes, stall: float = 2.0) -> bool:
    """Write ``data``; False once the server stops taking bytes for ``stall`` seconds."""
    writer.write(data)
    try:
        await asyncio.wait_for(writer.drain(), stall)
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return False
    return True


async def close_code(reader: asyncio.StreamReader, timeout: float = 10.0) -> int | str:
    """The code of the first Close the server sends ('hangup' if TCP ends without one)."""
    parser = FrameParser(1 << 62)
    try:
        async with asyncio.timeout(timeout):
            while True:
                data = await reader.read(1 << 16)
                if not data:
                    return "hangup"
                for item in parser.feed(data):
                    if isinstance(item, StreamFailure):
                        return f"bad frame ({item.reason})"
                    if item.opcode == OpCode.CLOSE:
                        if len(item.payload) > 125:
                            return f"INVALID Close of {len(item.payload)} bytes"
                        return int.from_bytes(item.payload[:2], "big") if item.payload else 1005
    except TimeoutError:
        return "nothing"
    except (ConnectionError, OSError):
        return "reset"


# -- 1. silent connections ---------------------------------------------------------


async def silent_closed(port: int, n: int, within: float) -> tuple[int, float]:
    """Open ``n`` silent connections; how many the server closed within ``within`` s,
    and when the last of those went."""
    conns = []
    for _ in range(n):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
    started = time.monotonic()

    async def gone(reader: asyncio.StreamReader) -> float | None:
        try:
            async with asyncio.timeout(within):
                while await reader.read(65536):
                    pass
        except TimeoutError:
            return None
        except (ConnectionError, OSError):
            pass
        return time.monotonic() - started

    times = await asyncio.gather(*(gone(r) for r, _ in conns))
    for _, w in conns:
        closed(w)
    done = [t for t in times if t is not None]
    return len(done), max(done, default=0.0)


async def bench_silent(b: Bench, n: int, timeout: float) -> dict[str, object]:
    figures: dict[str, object] = {}
    for tls in (False, True):
        args = ["--echo", "--timeout", str(timeout)]
        if tls:
            args += ["--tls", "--hostname", "bench.example.com", "--confdir", str(b.tmp / "ca")]
        count = n if not tls else max(1, n // 4)
        server = await b.start(*args)
        try:
            got, last = await silent_closed(server.port, count, timeout + 2)
        finally:
            server.stop()
        what = "TLS" if tls else "plain"
        print(
            f"1. {count:,} silent {what} connections, --timeout {timeout:g}: {got:,} closed "
            f"within {timeout + 2:g} s (last after {last:.1f} s)"
        )
        figures[what] = {"connections": count, "closed": got, "last_s": last}
    return figures


# -- 2. fd limit -------------------------------------------------------------------


async def bench_fd_limit(b: Bench, silent: int, nofile: int) -> dict[str, object]:
    cassette = b.tmp / "chat.msgpack"
    write_chat(cassette)
    server = await b.start(str(cassette), "--timeout", "10", "--speed", "0", nofile=nofile)
    conns = []
    try:
        for _ in range(silent):
            try:
                conns.append(
                    await asyncio.wait_for(asyncio.open_connection("127.0.0.1", server.port), 5)
                )
            except (OSError, TimeoutError):
                break
        await asyncio.sleep(0.5)  # let the server hit its limit
        started = time.monotonic()
        outcome = "played"
        try:
            async with websockets.connect(
                f"ws://127.0.0.1:{server.port}/chat", open_timeout=30, compression=None
            ) as ws:
                await ws.send("hello")
                reply = await asyncio.wait_for(ws.recv(), 30)
                outcome = "played" if reply == "welcome" else f"wrong reply {reply!r}"
        except Exception as e:
            outcome = f"failed: {type(e).__name__}: {e}"
        waited = time.monotonic() - started
    finally:
        for _, w in conns:
            closed(w)
        alive = server.proc.poll() is None
        report = server.stop()
    text = server.stderr_text()
    lines = len(text.splitlines())
    tracebacks = text.count("Traceback")
    print(
        f"2. RLIMIT_NOFILE {nofile}, {len(conns)} silent connections: normal client {outcome} "
        f"after {waited:.2f} s; server {'alive' if alive else 'DEAD'}, wrote {lines:,} "
        f"stderr lines ({tracebacks:,} tracebacks); report passed={report.get('passed')}"
    )
    return {
        "silent": len(conns),
        "outcome": outcome,
        "waited_s": waited,
        "stderr_lines": lines,
        "tracebacks": tracebacks,
    }


# -- 3./4. echo and ping floods to a client that never reads -------------------------------


async def flood(port: int, frame: bytes, total: int, chunk: int, stall: float = 5.0) -> int:
    """Send ``frame`` repeatedly (``chunk`` frames per write) until ``total`` bytes were
    taken or the server takes nothing for ``stall`` seconds; returns the bytes it took."""
    _, writer = await upgraded(port)
    data = frame * chunk
    sent = 0
    try:
        while sent < total and await push(writer, data, stall):
            sent += len(data)
    finally:
        closed(writer)
    return sent


async def bench_echo_flood(b: Bench, total: int) -> dict[str, object]:
    server = await b.start("--echo", "--timeout", "30")
    try:
        frame = encode_frame(OpCode.BINARY, b"x" * MiB, mask_key=MASK)
        sent, growth = await server.sampling(flood(server.port, frame, total, 1))
    finally:
        server.stop()
    assert isinstance(sent, int)
    print(
        f"3. echo, client never reads: server took {sent / MiB:,.0f} of {total / MiB:,.0f} MiB "
        f"sent in 1 MiB messages; RSS +{growth:.0f} MiB (goal < 16 MiB: "
        f"{'met' if growth < 16 else 'NOT met'})"
    )
    return {"offered_mib": total / MiB, "taken_mib": sent / MiB, "rss_growth_mib": growth}


async def bench_ping_flood(b: Bench, pings: int) -> dict[str, object]:
    server = await b.start("--echo", "--timeout", "30")
    try:
        frame = encode_frame(OpCode.PING, b"p" * 125, mask_key=MASK)
        sent, growth = await server.sampling(flood(server.port, frame, pings * len(frame), 10_000))
    finally:
        server.stop()
    assert isinstance(sent, int)
    taken = sent // len(frame)
    print(
        f"4. ping flood, client never reads: server took {taken:,} of {pings:,} Pings; "
        f"RSS +{growth:.0f} MiB (goal < 64 MiB: {'met' if growth < 64 else 'NOT met'})"
    )
    return {"pings": pings, "taken": taken, "rss_growth_mib": growth}


# -- 5. replay to clients that never read -----------------------------------------------


async def bench_replay_flood(b: Bench, messages: int) -> dict[str, object]:
    figures: dict[str, object] = {}
    for clients in (1, 4):
        cassette = b.tmp / f"flood-{clients}.msgpack"
        write_flood(cassette, clients, messages)
        server = await b.start(str(cassette), "--speed", "0", "--timeout", "30")

        async def attack(server: Server = server, clients: int = clients) -> None:
            writers = []
            for _ in range(clients):
                _, writer = await upgraded(server.port, "/flood")
                writer.write(encode_frame(OpCode.TEXT, b"go", mask_key=MASK))
                writers.append(writer)
            # Until the server's memory stops growing for a second.
            last, still = server.rss_kb(), 0
            async with asyncio.timeout(60):
                while still < 10:
                    await asyncio.sleep(0.1)
                    now = server.rss_kb()
                    still = still + 1 if now <= last + 256 else 0
                    last = max(last, now)
            for writer in writers:
                closed(writer)

        try:
            _, growth = await server.sampling(attack())
        finally:
            server.stop()
        per = growth / clients
        print(
            f"5. replay of a {messages} MiB recorded connection to {clients} client(s) that "
            f"never read: RSS +{growth:.0f} MiB ({per:.0f} MiB per client; goal < 16: "
            f"{'met' if per < 16 else 'NOT met'})"
        )
        figures[f"{clients}_clients"] = {"rss_growth_mib": growth, "per_client_mib": per}
    return figures


# -- 6./7. fragments ---------------------------------------------------------------------


async def fragments(port: int, payload: int, size: int, *, final: bool) -> int | str:
    """A text message of ``payload`` bytes in ``size``-byte fragments (empty fragments for
    size 0, ``payload`` of them); with ``final`` its last frame ends it. Returns the close
    code the server answered with, or "echoed"."""
    reader, writer = await upgraded(port)
    count = payload // size if size else payload
    piece = b"a" * size
    first = encode_frame(OpCode.TEXT, piece, fin=False, mask_key=MASK)
    cont = encode_frame(OpCode.CONTINUATION, piece, fin=False, mask_key=MASK)
    writer.write(first)
    batch = 10_000
    sent = 1
    try:
        while sent < count - 1:
            n = min(batch, count - 1 - sent)
            if not await push(writer, cont * n, stall=10):
                break
            sent += n
        if final:
            await push(writer, encode_frame(OpCode.CONTINUATION, piece, mask_key=MASK))
        parser = FrameParser(1 << 62)
        async with asyncio.timeout(60 if final else 10):
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    return "hangup"
                for item in parser.feed(data):
                    if isinstance(item, StreamFailure):
                        return "bad frame"
                    if item.opcode == OpCode.CLOSE:
                        return int.from_bytes(item.payload[:2], "big")
                    if item.opcode == OpCode.TEXT:
                        return "echoed"
    except (TimeoutError, ConnectionError, OSError) as e:
        return type(e).__name__
    finally:
        closed(writer)


async def bench_fragments(b: Bench, payload: int) -> dict[str, object]:
    args = ["--echo", "--timeout", "60"]
    if b.supports("--max-fragments"):
        args += ["--max-fragments", str(payload)]
    server = await b.start(*args)
    try:
        started = time.monotonic()
        result, growth = await server.sampling(fragments(server.port, payload, 2, final=True))
        took = time.monotonic() - started
    finally:
        server.stop()
    ratio = growth * MiB / payload
    print(
        f"6. a {payload / MiB:g} MiB text message in 2-byte fragments ({payload // 2:,} frames, "
        f"{took:.1f} s): {result}; RSS +{growth:.0f} MiB = {ratio:.1f}x the payload (goal "
        f"< 64 MiB: {'met' if growth < 64 else 'NOT met'})"
    )
    return {"payload_mib": payload / MiB, "result": result, "rss_growth_mib": growth}


async def bench_empty_fragments(b: Bench, count: int) -> dict[str, object]:
    server = await b.start("--echo", "--timeout", "60")
    try:
        result, growth = await server.sampling(fragments(server.port, count, 0, final=False))
    finally:
        report = server.stop()
    rules = sorted({str(v["rule"]) for v in report.get("violations", [])})  # type: ignore[attr-defined]
    print(
        f"7. {count:,} empty continuation frames: {result}; RSS +{growth:.0f} MiB (goal "
        f"< 64 MiB: {'met' if growth < 64 else 'NOT met'}); rules {', '.join(rules) or 'NONE'}"
    )
    return {"frames": count, "result": result, "rss_growth_mib": growth, "rules": rules}


# -- 8. verdicts -------------------------------------------------------------------------


def _long(n: int) -> bytes:
    return bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big") + MASK


def _non_minimal() -> bytes:
    return (
        bytes([0x81, 0x80 | 126])
        + (5).to_bytes(2, "big")
        + MASK
        + bytes(a ^ b for a, b in zip(b"hello", MASK * 2, strict=False))
    )


def _masked(opcode: int, payload: bytes, **kw: bool) -> bytes:
    return encode_frame(opcode, payload, mask_key=MASK, **kw)


VERDICT_MAX_SIZE = 1 * MiB
INPUTS: list[tuple[str, bytes]] = [
    ("unmasked frame", encode_frame(OpCode.TEXT, b"hi")),
    ("RSV1 without an extension", _masked(OpCode.TEXT, b"hi", rsv1=True)),
    ("reserved opcode 0x3", _masked(0x3, b"")),
    ("126-byte Ping", _masked(OpCode.PING, b"x" * 126)),
    ("fragmented Ping", _masked(OpCode.PING, b"x", fin=False)),
    ("continuation without a message", _masked(OpCode.CONTINUATION, b"x")),
    ("new message inside a fragmented one",
     _masked(OpCode.TEXT, b"a", fin=False) + _masked(OpCode.TEXT, b"b")),
    ("invalid UTF-8 text", _masked(OpCode.TEXT, b"\xc3\x28")),
    ("64-bit length with the top bit set", _long(1 << 63)),
    ("length 2^63-1", _long((1 << 63) - 1)),
    ("16-bit length for 5 bytes (not minimal)", _non_minimal()),
    ("frame over --max-size", _long(VERDICT_MAX_SIZE + 1)),
    ("message over --max-size in fragments",
     _masked(OpCode.BINARY, b"x" * (VERDICT_MAX_SIZE // 2), fin=False)
     + _masked(OpCode.CONTINUATION, b"x" * (VERDICT_MAX_SIZE // 2 + 1))),
    ("more fragments than --max-fragments",
     _masked(OpCode.BINARY, b"", fin=False) + _masked(OpCode.CONTINUATION, b"", fin=False) * 200),
    ("1-byte Close body", _masked(OpCode.CLOSE, b"\x03")),
    ("Close code 1005 on the wire", _masked(OpCode.CLOSE, encode_close_body(1005))),
    ("Close code 5000", _masked(OpCode.CLOSE, encode_close_body(5000))),
    ("Close reason of 124 bytes", _masked(OpCode.CLOSE, encode_close_body(1000, "x" * 124))),
    ("Close reason not UTF-8", _masked(OpCode.CLOSE, encode_close_body(1000, b"\xff"))),
    ("data after Close",
     _masked(OpCode.CLOSE, encode_close_body(1000)) + _masked(OpCode.TEXT, b"late")),
]  # fmt: skip


async def bench_verdicts(b: Bench) -> dict[str, object]:
    args = ["--echo", "--timeout", "3", "--max-size", str(VERDICT_MAX_SIZE)]
    if b.supports("--max-fragments"):
        args += ["--max-fragments", "100"]
    server = await b.start(*args)
    codes: list[int | str] = []
    try:
        for _, data in INPUTS:
            reader, writer = await upgraded(server.port)
            writer.write(data)
            codes.append(await close_code(reader))
            closed(writer)
    finally:
        report = server.stop()
    by_conn: dict[int, set[str]] = {}
    for v in report.get("violations", []):  # type: ignore[attr-defined]
        if v["conn"] is not None and v["severity"] == "error":
            by_conn.setdefault(int(v["conn"]), set()).add(str(v["rule"]))
    rows = {}
    missing = 0
    print(f"8. protocol-breaking inputs (report passed={report.get('passed')}):")
    for i, ((name, _), code) in enumerate(zip(INPUTS, codes, strict=True), start=1):
        rules = sorted(by_conn.get(i, set()))
        missing += not rules
        print(f"   {name:44} -> {code!s:12} {', '.join(rules) or 'NO RULE'}")
        rows[name] = {"close": code, "rules": rules}
    print(f"   {len(INPUTS) - missing} of {len(INPUTS)} reported under a rule ID")
    return {"inputs": rows, "unreported": missing}


# -- 9. compression bomb ------------------------------------------------------------------


def deflated_zeros(size: int) -> bytes:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MiB)
    out = [comp.compress(zeros) for _ in range(size // MiB)]
    out.append(comp.flush(zlib.Z_SYNC_FLUSH))  # its 00 00 FF FF tail is dropped (RFC 7692)
    return b"".join(out)[:-4]


async def bomb(port: int, payload: bytes) -> int | str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    offer = b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
    writer.write(REQUEST.replace(b"{path}", b"/echo")[:-2] + offer)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    if b"permessage-deflate" not in head:
        closed(writer)
        return "declined"
    await push(writer, encode_frame(OpCode.BINARY, payload, rsv1=True, mask_key=MASK), 10)
    try:
        return await close_code(reader)
    finally:
        closed(writer)


async def bench_bomb(b: Bench, size: int) -> dict[str, object]:
    payload = deflated_zeros(size)
    rows: dict[str, object] = {}
    for limit in (4 * MiB, None):
        args = ["--echo", "--timeout", "60"] + (["--max-size", str(limit)] if limit else [])
        server = await b.start(*args)
        try:
            result, growth = await server.sampling(bomb(server.port, payload))
        finally:
            report = server.stop()
        rules = sorted({str(v["rule"]) for v in report.get("violations", [])})  # type: ignore[attr-defined]
        shown = f"{limit // MiB} MiB" if limit else "64 MiB (default)"
        print(
            f"9. a {len(payload) / MiB:.1f} MiB message inflating to {size / MiB:,.0f} MiB, "
            f"--max-size {shown}: {result}; RSS +{growth:.0f} MiB; rules "
            f"{', '.join(rules) or 'NONE'}"
        )
        rows[shown] = {"result": result, "rss_growth_mib": growth, "rules": rules}
    return rows


BENCHES: dict[str, Callable[[Bench, bool], Awaitable[dict[str, object]]]] = {
    "silent": lambda b, q: bench_silent(b, 200 if q else 2_000, 2 if q else 10),
    "fd": lambda b, q: bench_fd_limit(b, 300, 256),
    "echo": lambda b, q: bench_echo_flood(b, (100 if q else 400) * MiB),
    "ping": lambda b, q: bench_ping_flood(b, 200_000 if q else 600_000),
    "replay": lambda b, q: bench_replay_flood(b, 20 if q else 100),
    "fragments": lambda b, q: bench_fragments(b, (1 if q else 12) * MiB),
    "empty": lambda b, q: bench_empty_fragments(b, 200_000 if q else 2_000_000),
    "verdicts": lambda b, q: bench_verdicts(b),
    "bomb": lambda b, q: bench_bomb(b, (256 if q else 1024) * MiB),
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    parser.add_argument("--only", nargs="+", choices=list(BENCHES))
    parser.add_argument("--src", type=Path, help="run the servers from this source tree")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, servers from "
          f"{args.src or 'this checkout'}")  # fmt: skip
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="wstape-hostile-") as tmpdir:
        bench = Bench(Path(tmpdir), args.src)
        for name in args.only or list(BENCHES):
            figures[name] = await BENCHES[name](bench, args.quick)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
