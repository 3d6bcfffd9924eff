"""Every command that reads a cassette, over hostile cassettes: tracebacks, hangs, errors
that are not one line, exit codes, and peak RSS.

    python bench/fuzz_reader.py             # ~1,400 hand-made files, 3,000 mutations and
                                            # every truncation of the sample (minutes)
    python bench/fuzz_reader.py --quick     # 300 mutations, every 10th truncation
    PYTHONPATH=/some/other/checkout python bench/fuzz_reader.py   # the same corpus, another wstape

Not a test: it prints a table. The corpus (``tests/helpers/hostile.py``) is built with
msgpack directly, so it runs against any wstape version: nested 2 to 100,000 levels, empty
array and map bombs up to 16.8 MB, length claims up to 4 GiB, extension types (msgpack
timestamps included), bytes msgpack never uses, every field of every record type given
two dozen wrong values (NaN, 1e308, 2**64-1, a 2 MiB string, ...), 95 MB records of the
wrong type, reused connection ids, orphans; then seeded random mutations of a small valid
cassette and every truncation of it.

Each file goes through ``ls``, ``ls --json``, ``show``, ``stats --json``, ``check``,
``export --format jsonl``, ``export --format har``, ``diff`` (against the sample),
``redact``, ``cut``, ``repair``, ``view``, ``upgrade`` (in-process, through the typer app, as a user
runs them) and the replay index build (``CassetteIndex.build``), in a child forked for
that file from a process with everything imported, so the child's peak RSS (VmHWM) is
that file's, interpreter and imports included. A file that takes longer than its timeout
is a hang (the child is killed). The baseline is the valid sample, measured in the same
run.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))

from tests.helpers import hostile

GOAL_MIB = 150
SMALL_INPUT = 100_000_000
"""The RSS goal holds for inputs under this many bytes."""


def _commands(path: str, out: str, sample: str) -> list[tuple[str, list[str]]]:
    return [
        ("ls", ["ls", path]),
        ("ls --json", ["ls", "--json", path]),
        ("show", ["show", path]),
        ("stats", ["stats", "--json", path]),
        ("check", ["check", path]),
        (
            "export jsonl",
            ["export", path, "--format", "jsonl", "-o", out + ".jsonl", "--overwrite"],
        ),
        ("export har", ["export", path, "--format", "har", "-o", out + ".har", "--overwrite"]),
        ("diff", ["diff", sample, path]),
        ("redact", ["redact", path, "-o", out + ".redacted", "--header", "Host", "--overwrite"]),
        ("cut", ["cut", path, "-o", out + ".cut", "--conn", "1", "--overwrite"]),
        ("repair", ["repair", path, "-o", out + ".repaired", "--overwrite"]),
        ("view", ["view", path, "-o", out + ".html", "--overwrite"]),
        ("upgrade", ["upgrade", path, "-o", out + ".upgraded", "--overwrite"]),
    ]


def _peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _run_one(path: str, sample: str, scratch: str) -> dict[str, Any]:
    """Every command over one file (in a forked child): what went wrong, and the peak."""
    from typer.testing import CliRunner

    from wstape.cli.app import app
    from wstape.core.errors import WstapeError
    from wstape.replay.index import CassetteIndex

    runner = CliRunner()
    problems: list[dict[str, str]] = []
    out = os.path.join(scratch, "out")
    for old in glob.glob(out + ".*"):  # (the previous file's outputs: no command overwrites)
        os.unlink(old)
    for command, args in _commands(path, out, sample):
        result = runner.invoke(app, args)
        exc = result.exception
        if exc is not None and not isinstance(exc, SystemExit):
            problems.append({"command": command, "kind": "traceback", "what": type(exc).__name__})
            continue
        if result.exit_code not in (0, 1, 3):
            problems.append({"command": command, "kind": "exit", "what": str(result.exit_code)})
        if result.exit_code == 3:
            lines = [x for x in result.stderr.splitlines() if x.strip()]
            errors = [x for x in lines if x.startswith("wstape: error:")]
            if len(errors) != 1 or any(not x.startswith("wstape: ") for x in lines):
                problems.append({"command": command, "kind": "lines", "what": lines[-1][:80]})
    try:
        CassetteIndex.build(path)
    except WstapeError:
        pass
    except Exception as e:  # the figure this bench exists for
        problems.append({"command": "replay index", "kind": "traceback", "what": type(e).__name__})
    return {"peak_kib": _peak_kib(), "problems": problems}


def _fork_one(path: str, sample: str, scratch: str, timeout: float) -> dict[str, Any]:
    """:func:`_run_one` in a child forked from this process (imports done, memory small),
    so each file's peak RSS is its own; killed after ``timeout`` seconds (a hang)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            got = _run_one(path, sample, scratch)
        except BaseException as e:
            problem = {"command": "?", "kind": "traceback", "what": type(e).__name__}
            got = {"peak_kib": _peak_kib(), "problems": [problem]}
        os.write(write, json.dumps(got).encode())
        os._exit(0)
    os.close(write)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read)
            return {"peak_kib": 0, "problems": [{"command": "?", "kind": "hang"}]}
        chunk = os.read(read, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"peak_kib": 0, "problems": [{"command": "?", "kind": "crash", "what": status}]}
    result: dict[str, Any] = json.loads(b"".join(chunks))
    return result


def _write_corpus(directory: Path, quick: bool) -> list[tuple[str, str, int, str]]:
    """Write the corpus; return (name, path, size, group) per file."""
    groups = [
        ("hand-made", hostile.hand_made()),
        ("mutation", hostile.mutations(300 if quick else 3000)),
        ("truncation", hostile.truncations()),
    ]
    files = []
    for group, items in groups:
        for i, (name, data) in enumerate(items):
            if group == "truncation" and quick and i % 10:
                continue
            path = directory / (hashlib.sha1(name.encode()).hexdigest()[:16] + ".msgpack")
            path.write_bytes(data)
            files.append((name, str(path), len(data), group))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer mutations and truncations")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per file, plus 13 s per MB"
    )
    parser.add_argument("--write-corpus", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_corpus:  # in a process of its own, so the big files leave no memory behind
        directory = Path(args.write_corpus)
        (directory / "sample.msgpack").write_bytes(hostile.sample())
        files = _write_corpus(directory / "corpus", args.quick)
        (directory / "files.json").write_text(json.dumps(files))
        return

    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wstape-fuzz-") as tmp:
        directory = Path(tmp)
        (directory / "corpus").mkdir()
        scratch = directory / "scratch"
        scratch.mkdir()
        quick = ["--quick"] if args.quick else []
        subprocess.run([sys.executable, __file__, "--write-corpus", tmp, *quick], check=True)
        sample = str(directory / "sample.msgpack")
        files: list[tuple[str, str, int, str]] = [
            ("baseline: the valid sample", sample, os.path.getsize(sample), "baseline")
        ]
        files += [tuple(f) for f in json.loads((directory / "files.json").read_text())]
        import typer.testing

        import wstape
        from wstape.cli.app import app
        from wstape.replay.index import CassetteIndex  # noqa: F401 - imported before forking

        # typer builds the click command again on every invoke (40 ms); build it once.
        built = typer.testing._get_command(app)
        typer.testing._get_command = lambda _app: built
        print(
            f"wstape from {Path(wstape.__file__).parent}; {len(files) - 1} files, 13 commands "
            f"each; corpus written in {time.monotonic() - began:.0f} s",
            flush=True,
        )
        _run_one(sample, sample, str(scratch))  # every lazy import and cache, before forking
        results: dict[int, dict[str, Any]] = {}
        for n, (_, path, size, _) in enumerate(files):
            results[n] = _fork_one(path, sample, str(scratch), args.timeout + size / 1e6 * 13)
            if n and n % 500 == 0:
                print(f"  {n} files, {time.monotonic() - began:.0f} s", flush=True)
        _report(files, results, time.monotonic() - began)


def _report(
    files: list[tuple[str, str, int, str]],
    results: dict[int, dict[str, Any]],
    seconds: float,
) -> None:
    kinds: dict[str, dict[str, int]] = {}
    errors: dict[str, int] = {}
    """Exception class -> tracebacks."""
    examples: dict[str, list[str]] = {}
    peaks: dict[str, tuple[int, str]] = {}
    over: list[str] = []
    for n, (name, _, size, group) in enumerate(files):
        got = results.get(n, {"peak_kib": 0, "problems": []})
        for p in got["problems"]:
            kind = p["kind"]
            kinds.setdefault(kind, {})
            kinds[kind][p["command"]] = kinds[kind].get(p["command"], 0) + 1
            if kind == "traceback":
                errors[p["what"]] = errors.get(p["what"], 0) + 1
            examples.setdefault(kind, [])
            if len(examples[kind]) < 8:
                examples[kind].append(f"{name}: {p['command']}: {p.get('what', '')}")
        peak = got["peak_kib"] // 1024
        if peak > peaks.get(group, (-1, ""))[0]:
            peaks[group] = (peak, name)
        if size < SMALL_INPUT and peak >= GOAL_MIB:
            over.append(f"{name} ({size / 1e6:.1f} MB): {peak} MiB")
    counts = {}
    for _, _, _, group in files:
        counts[group] = counts.get(group, 0) + 1
    print()
    print(f"files: {', '.join(f'{k} {v:,}' for k, v in counts.items())}; {seconds:.0f} s")
    labels = {
        "traceback": "tracebacks",
        "hang": "hangs",
        "crash": "worker crashes (killed, out of memory)",
        "lines": "exit 3 without exactly one error line",
        "exit": "exit codes other than 0, 1, 3",
    }
    for kind, label in labels.items():
        by = kinds.get(kind, {})
        detail = ", ".join(f"{c} {k}" for k, c in sorted(by.items(), key=lambda x: -x[1]))
        print(f"{label:42} {sum(by.values()):6,}  {detail}")
        if kind == "traceback" and errors:
            ranked = sorted(errors.items(), key=lambda x: -x[1])
            print(f"    by exception: {', '.join(f'{k} {v}' for k, v in ranked)}")
        for e in examples.get(kind, [])[:5]:
            print(f"    e.g. {e}")
    print("peak RSS per file (VmHWM, MiB), the largest of each group:")
    for group, (peak, name) in peaks.items():
        print(f"    {group:12} {peak:6}  ({name})")
    print(f"inputs under {SMALL_INPUT / 1e6:.0f} MB at or over {GOAL_MIB} MiB: {len(over)}")
    for line in over[:10]:
        print(f"    {line}")


if __name__ == "__main__":
    main()
