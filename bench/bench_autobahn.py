"""Autobahn|Testsuite's fuzzing client against ``wstape replay --echo``, any cases.

CI runs cases 1-7, 9, 10 and a sample of 12 and 13 (tests/autobahn/test_autobahn.py).
This runs whatever you ask, by default the whole suite including every compression case
of 12.* and 13.*, against wstape and, in the same wstest run, a bare ``websockets`` echo
server (the baseline), and prints both verdict tables (docs/autobahn.md), the OK counts
side by side, every case that is not OK, and timings. Needs wstest: ``bash
.ci/autobahn.sh`` or ``WSTAPE_AUTOBAHN=/path/to/wstest``.

    python bench/bench_autobahn.py                       # all cases, reports in bench/out/autobahn
    python bench/bench_autobahn.py --quick               # CI's cases (12/13 sampled)
    python bench/bench_autobahn.py --cases 12.* 13.* --no-baseline --out /tmp/ab
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.autobahn.fuzzing import CI_CASES, Case, find_wstest, group_seconds, run, summary_table


def ok_count(cases: list[Case]) -> int:
    return sum(c.verdict == "OK" for c in cases)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=None, help="case patterns (default: all)")
    parser.add_argument("--quick", action="store_true", help="CI's cases only (12/13 sampled)")
    parser.add_argument("--exclude", nargs="*", default=[], help="case patterns to leave out")
    parser.add_argument("--no-baseline", action="store_true",
                        help="wstape only, no bare websockets server")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "out" / "autobahn",
        help="where the fuzzer's reports and the replay report go",
    )  # fmt: skip
    args = parser.parse_args()
    cases = args.cases or (list(CI_CASES) if args.quick else ["*"])
    wstest, reason = find_wstest()
    if wstest is None:
        print(f"skipped: {reason}")
        return 0
    started = time.monotonic()
    result = run(wstest, args.out, cases, exclude=args.exclude, baseline=not args.no_baseline)
    total = time.monotonic() - started
    print(f"{len(result.cases)} cases; wstest {result.wstest_seconds:.1f} s, total {total:.1f} s")
    print("\nwstape replay --echo:")
    print(summary_table(result.cases))
    if result.baseline:
        print("\nbare websockets (the baseline, same run):")
        print(summary_table(result.baseline))
        ours, theirs = ok_count(result.cases), ok_count(result.baseline)
        print(f"\nOK: wstape {ours}, websockets {theirs} (ratio {ours / max(theirs, 1):.3f})")
        theirs_by_id = {c.id: c.verdict for c in result.baseline}
        differ = [(a.id, a.verdict, theirs_by_id.get(a.id, "-")) for a in result.cases
                  if a.verdict != theirs_by_id.get(a.id)]  # fmt: skip
        for case_id, mine, base in differ:
            print(f"  {case_id}: wstape {mine}, websockets {base}")
    for label, runs in (("wstape", result.cases), ("websockets", result.baseline)):
        if not runs:
            continue
        print(f"\nseconds per group, {label} (sum of the fuzzer's case durations):")
        for group, seconds in group_seconds(runs).items():
            print(f"  {group}.*: {seconds:.1f}")
    print("\ncases that are not OK (wstape):")
    for case in result.cases:
        if case.verdict != "OK" and case.verdict != "UNIMPLEMENTED":
            rules = ", ".join(sorted(case.rules())) or "-"
            print(f"  {case.id}: {case.verdict} (close {case.behavior_close}); rules: {rules}")
    unimplemented = [c.id for c in result.cases if c.verdict == "UNIMPLEMENTED"]
    if unimplemented:
        print(f"  UNIMPLEMENTED: {len(unimplemented)} cases ({unimplemented[0]} ... "
              f"{unimplemented[-1]})")  # fmt: skip
    print(f"\nreports: {result.outdir}/index.html; replay report: {args.out}/report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
