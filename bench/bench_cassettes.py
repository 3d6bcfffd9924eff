"""Reading big cassettes (issue 12: a fast read path). Prints figures; not a test.

Two cassettes are written with ``CassetteWriter`` into a temporary directory:

- ``messages``: one connection of 1,000,000 x 100-byte messages (``--quick``: 100,000);
- ``connections``: 200,000 connections (``--quick``: 20,000), each an open, one client
  message and a close.

Each command runs as a user runs it (``python -m wstape ...`` in a subprocess, output to
/dev/null) and is printed beside the baseline of the same run: a bare ``msgpack.Unpacker``
loop over the same file, also in a subprocess. Peak RSS is the child's own (``wait4``).

Goals: on ``messages``, ``stats --json`` / ``ls`` / ``check`` at most 2x the bare loop and
``export --format jsonl`` at most 4x, each under 100 MB; on ``connections``, every command
at most 2x the per-record time the same command takes on ``messages``, under 200 MB.

    python bench/bench_cassettes.py [--quick] [--only messages|connections] [--src DIR]
        [--runs N] [--keep DIR]

``--src DIR`` runs the commands from another source tree (e.g. ``git archive`` of an older
commit unpacked in DIR) for before/after figures; the cassettes are still written by this
tree's writer. ``--keep DIR`` writes (or reuses) the cassettes in DIR.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wstape.cassettes import CassetteWriter
from wstape.core.model import Close, Message, Opcode, Open, Side

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
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"Sec-WebSocket-Version", b"13"),
            (b"User-Agent", b"bench/1.0"),
        ),
        status=101,
        response_headers=(
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
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


def write_connections(path: Path, n: int) -> None:
    with CassetteWriter(path, started_at=1_700_000_000.0) as w:
        for conn in range(1, n + 1):
            w.write(_open(conn, 1_700_000_000.0 + conn))
            w.write(Message(conn, 0.01, Side.CLIENT, Opcode.TEXT, b'{"op":"hello"}'))
            w.write(Close(conn, 0.02, Side.CLIENT, 1000))


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) and exit status of one child."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert p.stderr is not None
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    err = p.stderr.read()
    p.stderr.close()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):  # check exits 1 for violations, which is fine here
        sys.exit(f"{' '.join(argv)} failed ({p.returncode}): {err.decode(errors='replace')}")
    return wall, usage.ru_maxrss * 1024 / MB, p.returncode


def best(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall seconds and the largest peak RSS over ``runs`` runs."""
    results = [run(argv, env) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="cassettes 10x smaller, 1 run")
    parser.add_argument("--only", choices=["messages", "connections"], action="append")
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
    print(f"python {sys.version.split()[0]}, commands from {args.src or 'this checkout'}")
    with tempfile.TemporaryDirectory() as tmpdir:
        where = args.keep or Path(tmpdir)
        where.mkdir(parents=True, exist_ok=True)
        cases = [
            ("messages", 1_000_000 // scale, write_messages),
            ("connections", 200_000 // scale, write_connections),
        ]
        per_record: dict[str, float] = {}
        for name, n, write in cases:
            if args.only and name not in args.only:
                continue
            path = where / f"{name}-{n}.msgpack"
            if not path.exists():
                t = time.perf_counter()
                write(path, n)
                print(f"wrote {path.name} in {time.perf_counter() - t:.1f} s")
            records = 2 + n if name == "messages" else 3 * n
            size = path.stat().st_size
            print(f"\n{name}: {n:,} ({records:,} records, {size / MB:.0f} MB)")
            bare, bare_rss = best([py, "-c", BARE, str(path)], env, runs)
            print(f"{'command':<24} {'s':>7} {'x bare':>7} {'us/rec':>7} {'peak MB':>8}  goal")
            print(
                f"{'bare Unpacker loop':<24} {bare:7.2f} {1:7.2f} "
                f"{bare / records * 1e6:7.2f} {bare_rss:8.0f}"
            )
            for label, argv, goal in COMMANDS:
                cmd = [py, "-m", "wstape", *(a.replace("{file}", str(path)) for a in argv)]
                wall, rss = best(cmd, env, runs)
                us = wall / records * 1e6
                if name == "messages":
                    per_record[label] = us
                    want = f"<= {goal:g}x, < 100 MB"
                    ok = wall <= goal * bare and rss < 100
                elif label in per_record:
                    want = f"<= {2 * per_record[label]:.2f} us/rec, < 200 MB"
                    ok = us <= 2 * per_record[label] and rss < 200
                else:
                    want, ok = "< 200 MB", rss < 200
                print(
                    f"{label:<24} {wall:7.2f} {wall / bare:7.2f} {us:7.2f} {rss:8.0f}  "
                    f"{want} {'ok' if ok else 'MISSED'}"
                )


if __name__ == "__main__":
    main()
