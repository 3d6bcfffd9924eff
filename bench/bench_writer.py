"""Writing cassettes: CassetteWriter against a bare msgpack loop, format v2 against v1.

    python bench/bench_writer.py            # 1,000,000 messages, best of 3 rounds
    python bench/bench_writer.py --quick    # 100,000 messages, 2 rounds
    python bench/bench_writer.py --compare main   # and (e): CassetteWriter of that revision

Not a test: it prints a table. Every round writes N messages of 100 bytes (one
connection) to a fresh file, each flushed to the OS with one ``write()``, four ways:

- (a) v1 bare: ``Packer.pack`` of the v1 message map + ``os.write``: the encoding of
  format 1 with none of the writer's checks (the baseline: what format 1 costs at least);
- (b) v2 bare: the same loop over the v2 array ``[conn, t, kind, data]`` (the floor);
- (c) CassetteWriter: schema checks, counts for the end record, a removed file noticed
  every 1024 records (``import``, ``cut``, ``redact``, ``upgrade``, ...);
- (d) CassetteWriter(live=True): what the recorder uses, a removed file noticed before
  every record (one ``fstat`` more per record);
- (e) with ``--compare REV``: CassetteWriter of that git revision (``git archive`` of its
  ``wstape/`` into a temporary directory, run in a child process in every round).

For each: seconds for N (best round; wall clock, and CPU time beside it, since the
machine is shared), microseconds per message, and the ratio to (a) and (b). Then the bytes
each message costs beside its payload in v1 and v2, and how many cuts of the bundled
sample a reader reports: at every record boundary (the cut format 1 cannot see) and at
every byte offset, for the sample written in v1 and in v2.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import msgpack

from wstape.cassettes import CassetteError, CassetteReader, CassetteWriter, WriteMode
from wstape.cassettes.schema import header_to_dict, record_to_dict
from wstape.core.model import Header, Message, Opcode, Record, Side
from wstape.sample import SAMPLE_CASSETTE

PAYLOAD = b"x" * 100
GOAL_SECONDS = 3.0
"""Issue 12: a million messages through CassetteWriter in under 3 s."""
GOAL_OVERHEAD = 24
"""Issue 12: payload + 24 bytes per message or less."""


def messages(n: int) -> list[Message]:
    return [
        Message(1, i / 1000, Side.SERVER if i % 2 else Side.CLIENT, Opcode.TEXT, PAYLOAD)
        for i in range(n)
    ]


def _bare(path: Path, msgs: list[Message], pack_record: Callable[[Message], object]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    pack = msgpack.Packer(use_bin_type=True).pack
    write = os.write
    try:
        write(fd, pack(header_to_dict(Header(1, "bench", 0.0))))
        for m in msgs:
            write(fd, pack(pack_record(m)))
    finally:
        os.close(fd)


def bare_v1(path: Path, msgs: list[Message]) -> None:
    _bare(
        path,
        msgs,
        lambda m: {
            "type": "message",
            "conn": m.conn,
            "t": m.t,
            "from": m.side.value,
            "opcode": m.opcode.value,
            "data": m.payload,
        },
    )


def bare_v2(path: Path, msgs: list[Message]) -> None:
    kinds = {Side.CLIENT: 0, Side.SERVER: 2}
    _bare(path, msgs, lambda m: [m.conn, m.t, kinds[m.side], m.payload])


def writer(path: Path, msgs: list[Message], *, live: bool = False) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, live=live) as w:
        for m in msgs:
            w.write(m)


def live_writer(path: Path, msgs: list[Message]) -> None:
    writer(path, msgs, live=True)


WAYS: list[tuple[str, Callable[[Path, list[Message]], None]]] = [
    ("(a) v1 bare: packb(map) + write", bare_v1),
    ("(b) v2 bare: packb(array) + write", bare_v2),
    ("(c) CassetteWriter", writer),
    ("(d) CassetteWriter(live=True)", live_writer),
]


ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import os, sys, time
from wstape.cassettes import CassetteWriter, WriteMode
from wstape.core.model import Message, Opcode, Side
n, path = int(sys.argv[1]), sys.argv[2]
msgs = [Message(1, i / 1000, Side.SERVER if i % 2 else Side.CLIENT, Opcode.TEXT, b"x" * 100)
        for i in range(n)]
wall, cpu = time.perf_counter(), time.process_time()
with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:
    for m in msgs:
        w.write(m)
print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def revision_tree(revision: str, tmp: Path) -> Path:
    """``wstape/`` of a git revision, extracted under ``tmp``."""
    out = tmp / "rev"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "wstape"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def child_writer(tree: Path, n: int, path: Path) -> tuple[float, float]:
    """Wall and CPU seconds of the CassetteWriter in ``tree``, in a child process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tree,
    )
    wall, cpu = done.stdout.split()
    return float(wall), float(cpu)


def time_writes(
    n: int, repeat: int, tmp: Path, compare: tuple[str, Path] | None = None
) -> dict[str, tuple[float, float, int]]:
    """Best wall and CPU seconds and the file size of each way."""
    msgs = messages(n)
    best: dict[str, tuple[float, float, int]] = {}
    ways: list[tuple[str, Callable[[Path, list[Message]], object]]] = list(WAYS)
    if compare is not None:
        revision, tree = compare
        ways.append(
            (f"(e) CassetteWriter of {revision}"[:36], lambda path, _: child_writer(tree, n, path))
        )
    for _ in range(repeat):
        for name, way in ways:
            path = tmp / "out.msgpack"
            wall, cpu = time.perf_counter(), time.process_time()
            got = way(path, msgs)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if isinstance(got, tuple):  # a child process: its own figures
                wall, cpu = got
            size = path.stat().st_size
            path.unlink()
            old = best.get(name)
            best[name] = (
                min(wall, old[0]) if old else wall,
                min(cpu, old[1]) if old else cpu,
                size,
            )
    return best


def overhead(size: int, n: int, fixed: int) -> float:
    return (size - fixed - n * len(PAYLOAD)) / n


def fixed_bytes(tmp: Path) -> tuple[int, int]:
    """Bytes of a cassette with no message: bare v1 (a header) and the writer's (a header
    and an end record)."""
    bare_v1(tmp / "empty1", [])
    writer(tmp / "empty2", [])
    return (tmp / "empty1").stat().st_size, (tmp / "empty2").stat().st_size + 30
    # (+30: the end record grows by one connection's counts once there are messages)


def write_v1(path: Path, header: Header, records: list[Record]) -> None:
    with open(path, "wb") as f:
        f.write(msgpack.packb(header_to_dict(Header(1, header.creator, header.started_at))))
        for r in records:
            f.write(msgpack.packb(record_to_dict(r), use_bin_type=True))


def boundaries(data: bytes) -> list[int]:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    out = []
    while unpacker.tell() < len(data):
        unpacker.skip()
        out.append(unpacker.tell())
    return out[:-1]  # (not the end of the file: that is no cut)


def detected(path: Path, data: bytes, cuts: list[int]) -> int:
    """How many of the cuts a whole pass reports (as truncation or corruption)."""
    found = 0
    for cut in cuts:
        path.write_bytes(data[:cut])
        try:
            for _ in CassetteReader(path):
                pass
        except CassetteError:
            found += 1
    return found


def cut_detection(tmp: Path) -> list[tuple[str, int, int, int, int]]:
    reader = CassetteReader(SAMPLE_CASSETTE)
    records = list(reader)
    rows = []
    for version in (1, 2):
        src = tmp / f"sample-v{version}.msgpack"
        if version == 1:
            write_v1(src, reader.header, records)
        else:
            with CassetteWriter(
                src, creator=reader.header.creator, started_at=reader.header.started_at
            ) as w:
                for r in records:
                    w.write(r)
        data = src.read_bytes()
        cut = tmp / "cut.msgpack"
        at_records = boundaries(data)
        offsets = list(range(1, len(data)))
        rows.append(
            (
                f"v{version}",
                detected(cut, data, at_records),
                len(at_records),
                detected(cut, data, offsets),
                len(offsets),
            )
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 messages, 2 rounds")
    parser.add_argument("--messages", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--compare", metavar="REV", help="also time the writer of this revision")
    args = parser.parse_args()
    n = args.messages or (100_000 if args.quick else 1_000_000)
    repeat = args.repeat or (2 if args.quick else 3)
    print(
        f"Python {sys.version.split()[0]}, {n:,} messages of {len(PAYLOAD)} bytes, best of {repeat}"
    )
    with tempfile.TemporaryDirectory(prefix="wstape-bench-writer-") as name:
        tmp = Path(name)
        compare = (args.compare, revision_tree(args.compare, tmp)) if args.compare else None
        best = time_writes(n, repeat, tmp, compare)
        fixed_v1, fixed_v2 = fixed_bytes(tmp)
        base_a, base_b = best[WAYS[0][0]][0], best[WAYS[1][0]][0]
        print()
        print(f"{'':36} {'wall s':>8} {'cpu s':>7} {'us/msg':>7} {'/ (a)':>6} {'/ (b)':>6}")
        for name, (wall, cpu, _) in best.items():
            print(
                f"{name:36} {wall:8.2f} {cpu:7.2f} {wall / n * 1e6:7.2f} "
                f"{wall / base_a:6.2f} {wall / base_b:6.2f}"
            )
        if compare is not None:
            name = next(k for k in best if k.startswith("(e)"))
            old_wall, old_cpu, old_size = best[name]
            new_wall, new_cpu, _ = best[WAYS[2][0]]
            print(
                f"(c) against (e): {old_wall / new_wall:.2f}x faster (wall), "
                f"{old_cpu / new_cpu:.2f}x (CPU); its file {old_size:,} bytes"
            )
        wall, cpu, _ = best[WAYS[2][0]]
        for what, seconds in (("wall", wall), ("CPU", cpu)):
            per_million = seconds * 1_000_000 / n
            verdict = "met" if per_million < GOAL_SECONDS else "NOT met"
            print(
                f"CassetteWriter, 1,000,000 messages, {what} time: {per_million:.2f} s "
                f"(goal under {GOAL_SECONDS:.0f} s: {verdict})"
            )
        if wall > 1.5 * cpu:
            print("(wall time well above CPU time: the machine is busy; compare the ratios)")
        print()
        v1 = overhead(best[WAYS[0][0]][2], n, fixed_v1)
        v2 = overhead(best[WAYS[2][0]][2], n, fixed_v2)
        print(f"bytes per message beside its payload: v1 {v1:.1f}, v2 {v2:.1f}")
        print(
            f"(goal {GOAL_OVERHEAD} or less: {'met' if v2 <= GOAL_OVERHEAD else 'NOT met'}; "
            f"v2 files are {100 * best[WAYS[2][0]][2] / best[WAYS[0][0]][2]:.0f}% of v1's)"
        )
        print()
        print(f"cuts of the sample ({SAMPLE_CASSETTE.name}) a whole pass reports:")
        for version, found, cuts, found_any, offsets in cut_detection(tmp):
            print(
                f"  {version}: at a record boundary {found} of {cuts} detected; "
                f"at any byte offset {found_any} of {offsets}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
