"""Autobahn|Testsuite's fuzzing client against ``wstape replay --echo``, any cases.

CI runs cases 1-7, 9 and 10 (tests/autobahn/test_autobahn.py). This runs whatever you
ask, by default the whole suite including the compression groups 12.* and 13.*, and
prints the verdict table (docs/autobahn.md), every case that is not OK, and timings.
Needs wstest: ``bash .ci/autobahn.sh`` or ``WSTAPE_AUTOBAHN=/path/to/wstest``.

    python bench/bench_autobahn.py                       # all cases, reports in bench/out/autobahn
    python bench/bench_autobahn.py --cases 9.* --out /tmp/ab
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.autobahn.fuzzing import find_wstest, group_seconds, run, summary_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["*"], help="case patterns (default: all)")
    parser.add_argument("--exclude", nargs="*", default=[], help="case patterns to leave out")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "autobahn",
        help="where the fuzzer's reports and the replay report go",
    )  # fmt: skip
    args = parser.parse_args()
    wstest, reason = find_wstest()
    if wstest is None:
        print(f"skipped: {reason}")
        return 0
    started = time.monotonic()
    result = run(wstest, args.out, args.cases, exclude=args.exclude)
    total = time.monotonic() - started
    print(f"{len(result.cases)} cases; wstest {result.wstest_seconds:.1f} s, total {total:.1f} s")
    print(summary_table(result.cases))
    print("\nseconds per group (sum of the fuzzer's case durations):")
    for group, seconds in group_seconds(result.cases).items():
        print(f"  {group}.*: {seconds:.1f}")
    print("\ncases that are not OK:")
    for case in result.cases:
        if case.verdict != "OK" and case.verdict != "UNIMPLEMENTED":
            rules = ", ".join(sorted(case.rules())) or "-"
            print(f"  {case.id}: {case.verdict} (close {case.behavior_close}); rules: {rules}")
    unimplemented = [c.id for c in result.cases if c.verdict == "UNIMPLEMENTED"]
    if unimplemented:
        print(f"  UNIMPLEMENTED: {len(unimplemented)} cases ({unimplemented[0]} ... "
              f"{unimplemented[-1]}): permessage-deflate is declined")  # fmt: skip
    print(f"\nreports: {result.outdir}/index.html; replay report: {args.out}/report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
