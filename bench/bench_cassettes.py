"""Reading big cassettes (issue 12: a fast read path). Prints figures; not a test.

Two cassettes are written with ``CassetteWriter`` into a temporary directory:

- ``messages``: one connection of 1,000,000 x 100-byte messages (``--quick``: 100,000),
  in the format this tree writes (from format 3 its end record lists the connection, so
  ``ls`` reads only that, the open and the close);
- ``connections``: 200,000 connections (``--quick``: 20,000), each an open, one client
  message and a close.

Each command runs as a user runs it (``python -m wstape ...`` in a subprocess, output to
/dev/null), in turn with its baseline: a bare ``msgpack.Unpacker`` loop over the same
file, also in a subprocess, so both see the same machine load. Printed: the medians of
wall seconds, of the wall-time ratio (``x bare``, what the goals are about) and of the
CPU-time ratio (``x cpu``: steadier on a busy machine), microseconds per record and the
peak RSS, the child's own (``wait4``).

- ``messages-v1``: the same messages in format version 1, the layout issue 12's baseline
  was measured on (v1 stays readable).

Goals: ``stats --json`` / ``ls`` / ``check`` at most 2x the bare loop and ``export --format
jsonl`` at most 4x, each under 100 MB; on ``connections``, every command at most 2x the
per-record time the same command takes on ``messages``, under 200 MB. The goals are about
the bare loop over the v1 file: v2's arrays make the bare loop itself about 7x faster, so
``messages`` also shows each command against the v1 file's bare loop (``x v1``; with
``--only messages``, the goal is held to its own bare loop instead).

    python bench/bench_cassettes.py [--quick] [--only messages|messages-v1|connections] [--src DIR]
        [--runs N] [--keep DIR]

``--src DIR`` runs the commands from another source tree (e.g. ``git archive`` of an older
commit unpacked in DIR) for before/after figures; the cassettes are still written by this
tree's writer. ``--keep DIR`` writes (or reuses) the cassettes in DIR.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack

from wstape.cassettes import CassetteReader, CassetteWriter
from wstape.cassettes.schema import header_to_dict, record_to_dict
from wstape.core.model import Close, Header, Message, Opcode, Open, Side

sys.path.insert(0, str(Path(__file__).parent))
from bench_startup import fresh_bytecode

COMMANDS: list[tuple[str, list[str], float]] = [
    ("stats --json", ["stats", "{file}", "--json"], 2.0),
    ("ls", ["ls", "{file}"], 2.0),
    ("ls --json", ["ls", "{file}", "--json"], 2.0),
    ("check", ["check", "{file}"], 2.0),
    ("export --format jsonl", ["export", "{file}", "--format", "jsonl"], 4.0),
]
"""Name, arguments and the goal (times the bare loop) on the ``messages`` cassette."""
BARE = (
    "import msgpack, sys\n"
    "with open(sys.argv[1], 'rb') as f:\n"
    "    for _ in msgpack.Unpacker(f, raw=False):\n"
    "        pass\n"
)
MB = 1_000_000


def _open(conn: int, started_at: float) -> Open:
    key = base64.b64encode(conn.to_bytes(16, "big"))
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return Open(
        conn=conn,
        started_at=started_at,
        method="GET",
        scheme="wss",
        host="bench.example.com",
        port=443,
        target=f"/socket?session={conn}",
        http_version="HTTP/1.1",
        request_headers=(
            (b"Host", b"bench.example.com"),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", key),
            (b"Sec-WebSocket-Version", b"13"),
            (b"User-Agent", b"bench/1.0"),
        ),
        status=101,
        response_headers=(
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", accept),
        ),
        client="127.0.0.1:50000",
    )


def write_messages(path: Path, n: int) -> None:
    payload = b'{"op":"tick","seq":0,"data":"' + b"x" * 69 + b'"}'
    assert len(payload) == 100
    with CassetteWriter(path, started_at=1_700_000_000.0) as w:
        w.write(_open(1, 1_700_000_000.0))
        for i in range(n):
            side = Side.CLIENT if i % 2 == 0 else Side.SERVER
            w.write(Message(1, i * 0.001, side, Opcode.TEXT, payload))
        w.write(Close(1, n * 0.001, Side.CLIENT, 1000))


def write_messages_v1(path: Path, n: int) -> None:
    """The same messages in format version 1 (maps with string keys), the layout the
    issue's baseline was measured on: v1 stays readable, so its figures still count."""
    v2 = path.with_name(path.name + ".v2")
    write_messages(v2, n)
    with open(path, "wb") as f:
        header = CassetteReader(v2).header
        f.write(msgpack.packb(header_to_dict(Header(1, header.creator, header.started_at))))
        for record in CassetteReader(v2):
            f.write(msgpack.packb(record_to_dict(record), use_bin_type=True))
    v2.unlink()


def write_connections(path: Path, n: int) -> None:
    with CassetteWriter(path, started_at=1_700_000_000.0) as w:
        for conn in range(1, n + 1):
            w.write(_open(conn, 1_700_000_000.0 + conn))
            w.write(Message(conn, 0.01, Side.CLIENT, Opcode.TEXT, b'{"op":"hello"}'))
            w.write(Close(conn, 0.02, Side.CLIENT, 1000))


def run(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and CPU seconds (user + system) of one child, run in
    the cassette's directory (``python -m`` puts its working directory first on the path:
    in a checkout, that checkout's wstape would win over ``--src``)."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    assert p.stderr is not None
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):  # check exits 1 for violations, which is fine here
        sys.exit(f"{' '.join(argv)} failed ({p.returncode}): {err.decode(errors='replace')}")
    return wall, usage.ru_maxrss * 1024 / MB, usage.ru_utime + usage.ru_stime


def paired(
    argv: list[str], bare: list[str], env: dict[str, str], runs: int, cwd: Path
) -> tuple[float, float, float, float, float]:
    """The command and the bare loop run in turn ``runs`` times (so both see the same
    machine load): median wall seconds of each, median ratios of wall and CPU time, and
    the command's largest peak RSS."""
    walls, bares, ratios, cpu_ratios, rss = [], [], [], [], 0.0
    for _ in range(runs):
        b_wall, _, b_cpu = run(bare, env, cwd)
        c_wall, c_rss, c_cpu = run(argv, env, cwd)
        walls.append(c_wall)
        bares.append(b_wall)
        ratios.append(c_wall / b_wall)
        cpu_ratios.append(c_cpu / b_cpu)
        rss = max(rss, c_rss)
    median = statistics.median
    return median(walls), median(bares), median(ratios), median(cpu_ratios), rss


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="cassettes 10x smaller, 1 run")
    parser.add_argument(
        "--only", choices=["messages", "messages-v1", "connections"], action="append"
    )
    parser.add_argument("--src", type=Path, help="run the commands from this source tree")
    parser.add_argument("--runs", type=int, help="runs per figure (median; default 3, 1 quick)")
    parser.add_argument("--keep", type=Path, help="write or reuse the cassettes in this dir")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    runs = args.runs or (1 if args.quick else 3)
    env = dict(os.environ)
    if args.src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.src), *filter(None, [env.get("PYTHONPATH")])])
    py = sys.executable
    fresh_bytecode((args.src or Path(__file__).parent.parent) / "wstape")
    print(f"python {sys.version.split()[0]}, commands from {args.src or 'this checkout'}")
    with tempfile.TemporaryDirectory() as tmpdir:
        where = args.keep or Path(tmpdir)
        where.mkdir(parents=True, exist_ok=True)
        cases = [
            ("messages-v1", 1_000_000 // scale, write_messages_v1),
            ("messages", 1_000_000 // scale, write_messages),
            ("connections", 200_000 // scale, write_connections),
        ]
        per_record: dict[str, float] = {}
        v1_bare: list[float] = []
        for name, n, write in cases:
            if args.only and name not in args.only:
                continue
            path = where / f"{name}-{n}.msgpack"
            if not path.exists():
                t = time.perf_counter()
                write(path, n)
                print(f"wrote {path.name} in {time.perf_counter() - t:.1f} s")
            records = 3 * n if name == "connections" else 2 + n
            size = path.stat().st_size
            print(f"\n{name}: {n:,} ({records:,} records, {size / MB:.0f} MB)")
            bare_argv = [py, "-c", BARE, str(path)]
            _, bare_rss, _ = run(bare_argv, env, where)
            print(
                f"{'command':<22} {'s':>6} {'bare s':>6} {'x bare':>6} {'x cpu':>6} "
                f"{'us/rec':>6} {'MB':>5} {'x v1':>5}  goal"
            )
            for label, argv, goal in COMMANDS:
                cmd = [py, "-m", "wstape", *(a.replace("{file}", str(path)) for a in argv)]
                wall, bare, ratio, cpu_ratio, rss = paired(cmd, bare_argv, env, runs, where)
                us = wall / records * 1e6
                if name == "messages-v1":
                    v1_bare.append(bare)
                vs_v1 = f"{wall / statistics.median(v1_bare):5.2f}" if v1_bare else "    -"
                if name == "messages-v1":
                    want = f"<= {goal:g}x, < 100 MB"
                    ok = ratio <= goal and rss < 100
                elif name == "messages" and v1_bare:
                    per_record[label] = us
                    want = f"<= {goal:g}x v1, < 100 MB"
                    ok = float(vs_v1) <= goal and rss < 100
                elif name == "messages":  # (no v1 run: against its own bare loop, stricter)
                    per_record[label] = us
                    want = f"<= {goal:g}x, < 100 MB"
                    ok = ratio <= goal and rss < 100
                elif label in per_record:
                    want = f"<= {2 * per_record[label]:.2f} us/rec, < 200 MB"
                    ok = us <= 2 * per_record[label] and rss < 200
                else:
                    want, ok = "< 200 MB", rss < 200
                print(
                    f"{label:<22} {wall:6.2f} {bare:6.2f} {ratio:6.2f} {cpu_ratio:6.2f} "
                    f"{us:6.2f} {rss:5.0f} {vs_v1}  {want} {'ok' if ok else 'MISSED'}"
                )
            print(f"(the bare loop: {bare_rss:.0f} MB)")


if __name__ == "__main__":
    main()
