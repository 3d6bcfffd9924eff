"""Peak memory and time of ``wstape import`` on big HAR files and on zip bombs.

    python bench/bench_import.py                   # ~90 MB and ~250 MB HARs, two bombs
    python bench/bench_import.py --compare main    # the same inputs through another revision
    python bench/bench_import.py --quick           # ~25 MB HAR and the bombs only

Not a test: it prints a table. Inputs are generated once into a temporary directory:

- Chrome-like HARs (``"_resourceType": "websocket"``, ``_webSocketMessages`` of JSON text
  messages of 100-300 bytes, 10 connections) of about 90 MB and 250 MB;
- ``bomb-entries.zhar``: a valid HAR, zlib-compressed, whose 1 GiB of plain entries
  inflates from about 1 MB;
- ``bomb-string.zhar``: a valid HAR whose one message is a 1 GiB string, from about 1 MB.

Each import runs as its own process (``python -m wstape import``), and its peak RSS is
the kernel's (``wait4``'s ``ru_maxrss``). Baselines measured in the same run: the RSS of
a process that only imports wstape's CLI, and the time to read the input once. Goals
(issue 10 item 10): peak RSS under 150 MiB for inputs under 100 MB, bounded for a bomb.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def chrome_har(path: Path, connections: int, messages: int) -> None:
    rnd = random.Random(1)
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": ')
        out.write('"537.36"}, "pages": [], "entries": [')
        for c in range(connections):
            entry = {
                "startedDateTime": f"2026-01-01T00:00:{c % 60:02d}.000Z",
                "time": 1.0,
                "request": {
                    "method": "GET",
                    "url": f"wss://chat.example.com/chat?room={c}",
                    "httpVersion": "HTTP/1.1",
                    "headers": [
                        {"name": "Upgrade", "value": "websocket"},
                        {"name": "Sec-WebSocket-Protocol", "value": "chat.v1"},
                    ],
                },
                "response": {
                    "status": 101,
                    "statusText": "Switching Protocols",
                    "httpVersion": "HTTP/1.1",
                    "headers": [{"name": "Sec-WebSocket-Protocol", "value": "chat.v1"}],
                },
                "_resourceType": "websocket",
            }
            out.write(("," if c else "") + json.dumps(entry)[:-1] + ', "_webSocketMessages": [')
            for i in range(messages):
                data = json.dumps({"type": "chat", "seq": i, "text": "x" * rnd.randint(100, 300)})
                item = {
                    "type": "send" if i % 2 else "receive",
                    "time": 1767225600.0 + c + i * 0.001,
                    "opcode": 1,
                    "data": data,
                }
                out.write(("," if i else "") + json.dumps(item))
            out.write("]}")
        out.write("]}}")


def zbomb(path: Path, head: bytes, fill: bytes, size: int, tail: bytes) -> None:
    z = zlib.compressobj(9)
    with open(path, "wb") as out:
        out.write(z.compress(head))
        block = fill * (1024 * 1024 // len(fill))
        for _ in range(size // len(block)):
            out.write(z.compress(block))
        out.write(z.compress(tail))
        out.write(z.flush())


def inputs(directory: Path, quick: bool) -> list[Path]:
    made = []
    sizes = [(10, 8_000)] if quick else [(10, 28_000), (10, 80_000)]
    for connections, messages in sizes:
        path = directory / f"chrome-{connections * messages}.har"
        if not path.exists():
            part = path.with_suffix(".part")  # an interrupted run leaves no half input
            chrome_har(part, connections, messages)
            part.rename(path)
        made.append(path)
    entries = directory / "bomb-entries.zhar"
    if not entries.exists():
        part = entries.with_suffix(".part")
        zbomb(part, b'{"log": {"entries": [', b'{"_resourceType": "other"},', 2**30, b"{}]}}")
        part.rename(entries)
    string = directory / "bomb-string.zhar"
    if not string.exists():
        head = (
            b'{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", '
            b'"request": {"url": "wss://h/", "headers": []}, "response": {"status": 101, '
            b'"headers": []}, "_webSocketMessages": [{"type": "send", "opcode": 1, "data": "'
        )
        part = string.with_suffix(".part")
        zbomb(part, head, b"A", 2**30, b'"}]}]}}')
        part.rename(string)
    made += [entries, string]
    return made


def run(args: list[str], env: dict[str, str]) -> tuple[float, float, int, int, str]:
    """Wall and CPU seconds, peak RSS in KiB, exit code and the last stderr line of a
    process (CPU time is steadier than wall time on a shared machine)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        # not from the checkout: ``python -m`` puts the current directory first on the path
        proc = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=tempfile.gettempdir()
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().decode("utf-8", "replace").strip().splitlines()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss, proc.returncode, lines[-1][:70] if lines else ""


def tree(revision: str, directory: Path) -> Path:
    out = directory / f"tree-{revision}"
    if not out.exists():
        out.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "wstape"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a 25 MB HAR and the bombs")
    parser.add_argument("--compare", metavar="REV", help="also run this git revision")
    parser.add_argument("--dir", type=Path, help="where inputs go (default: a temp dir)")
    parser.add_argument(
        "--bombs-here-only",
        action="store_true",
        help="run the bombs through this tree only (before the fix, the entries bomb took "
        "13.8 GiB and 300 s)",
    )
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="wstape-bench-import-"))
    directory.mkdir(parents=True, exist_ok=True)
    files = inputs(directory, args.quick)
    trees = [("this tree", ROOT)]
    if args.compare:
        trees.append((args.compare, tree(args.compare, directory)))

    base_env = dict(os.environ)
    _, _, cli_rss, _, _ = run([sys.executable, "-c", "import wstape.cli.app"], base_env)
    print(f"baseline: a process that imports wstape's CLI peaks at {cli_rss / 1024:.0f} MiB")
    print(f"{'input':<24} {'size':>9} {'read once':>9}  {'tree':<10} {'wall':>7} {'CPU':>7} "
          f"{'peak RSS':>9} {'exit':>4}  last stderr line")  # fmt: skip
    for path in files:
        size = path.stat().st_size
        start = time.perf_counter()
        with open(path, "rb") as f:
            while f.read(1 << 20):
                pass
        read_once = time.perf_counter() - start
        bomb = path.suffix == ".zhar"
        for name, root in trees[:1] if bomb and args.bombs_here_only else trees:
            env = dict(base_env, PYTHONPATH=str(root))
            out = directory / "out.msgpack"
            wall, cpu, rss, code, last = run(
                [sys.executable, "-m", "wstape", "import", str(path), "-o", str(out)], env
            )
            out.unlink(missing_ok=True)
            print(
                f"{path.name:<24} {size / 1e6:>7.1f}MB {read_once:>8.2f}s  {name:<10} "
                f"{wall:>6.1f}s {cpu:>6.1f}s {rss / 1024:>6.0f}MiB {code:>4}  {last}"
            )
    print(f"inputs kept in {directory}")


if __name__ == "__main__":
    main()
