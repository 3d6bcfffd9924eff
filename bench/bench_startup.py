"""Start-up time of the everyday commands (issue 12: under 0.3 s for every command that
does not record or proxy). Prints the median wall time of each command over a small
cassette beside two baselines measured in the same run: a bare ``python -c pass`` and
``python -c "import typer, rich.console"`` (what any typer CLI pays). Not a test.

    python bench/bench_startup.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SAMPLE = Path(__file__).parent.parent / "wstape" / "cassettes" / "samples" / "chat.msgpack"
COMMANDS = [
    ["ls", str(SAMPLE)],
    ["show", str(SAMPLE)],
    ["stats", str(SAMPLE), "--json"],
    ["check", str(SAMPLE)],
    ["export", str(SAMPLE)],
    ["diff", str(SAMPLE), str(SAMPLE)],
    ["rules"],
    ["--help"],
]


def wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fresh_bytecode(package: Path) -> None:
    """Compile ``package`` first: with PYTHONDONTWRITEBYTECODE set (as on some machines
    here), a source newer than its ``__pycache__`` is compiled again at every start, which
    doubled every figure below (0.32 s for ``ls`` against 0.17 s)."""
    import compileall

    compileall.compile_dir(package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs each instead of 15")
    runs = 5 if parser.parse_args().quick else 15
    py = sys.executable
    fresh_bytecode(Path(__file__).parent.parent / "wstape")
    bare = wall([py, "-c", "pass"], runs)
    typer = wall([py, "-c", "import typer, rich.console"], runs)
    print(f"{'command':<28} {'median s':>9} {'- python':>9} {'vs typer+rich':>14}")
    print(f"{'python -c pass':<28} {bare:9.3f}")
    print(f"{'import typer, rich.console':<28} {typer:9.3f} {typer - bare:9.3f}")
    for args in COMMANDS:
        t = wall([py, "-m", "wstape", *args], runs)
        name = "wstape " + args[0]
        print(f"{name:<28} {t:9.3f} {t - bare:9.3f} {t / typer:13.2f}x")


if __name__ == "__main__":
    main()
