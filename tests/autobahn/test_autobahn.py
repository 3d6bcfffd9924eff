"""Autobahn|Testsuite's fuzzing client against ``wstape replay --echo`` (issue 5).

Runs ``wstest -m fuzzingclient`` straight at the echo server (not through mitmproxy,
which would test mitmproxy) for cases 1.* to 7.*, 9.*, 10.* and a sample of the
permessage-deflate cases 12.* and 13.* (issue 14; all of them: bench/bench_autobahn.py),
then checks both sides:

- Autobahn: every case OK, NON-STRICT or INFORMATIONAL, and each result that is not OK
  is one of :data:`NOT_OK` with the reason (docs/autobahn.md keeps the table);
- wstape: each case in which the fuzzer breaks a rule shows up in the replay report
  under that rule ID (:func:`expected_errors`), and no other case has an error.

Needs wstest (Python 2.7): ``bash .ci/autobahn.sh`` builds ``.ci/autobahn-venv``, or
``WSTAPE_AUTOBAHN=/path/to/wstest``. Skipped, with the reason, without it. Set
``WSTAPE_AUTOBAHN_OUT=DIR`` to keep the fuzzer's HTML/JSON reports and the replay report.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.autobahn.fuzzing import (
    CI_CASES,
    COMPRESSION_SAMPLE,
    PASSING,
    Run,
    case_key,
    find_wstest,
    group_seconds,
    pairing_problems,
    run,
    summary_table,
)

WSTEST, SKIP_REASON = find_wstest()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(WSTEST is None, reason=SKIP_REASON),
]

CASE_COUNT = 301 + len(COMPRESSION_SAMPLE)
"""Cases 1-7, 9, 10 in autobahntestsuite 25.10.1 (16 + 11 + 7 + 10 + 20 + 145 + 37 + 54 + 1),
and 36 of the 216 compression cases."""
TIME_BUDGET = 240.0
"""Seconds the fuzzer may take for all of them: about 100 s on a loaded 2-CPU VM, 65 s of
it the 36 compression cases (1,000 messages each), 20 s the others."""

NOT_OK: dict[str, tuple[str, str]] = {
    "6.4.3": (
        "NON-STRICT",
        "invalid UTF-8 arrives in the middle of one frame, in chops a second apart; the "
        "frame parser hands over whole frames only, so the 1007 comes when the frame is "
        "complete instead of at the bad chop (fail-fast across frames works: 6.4.1/6.4.2)",
    ),
    "6.4.4": ("NON-STRICT", "as 6.4.3, with the invalid byte alone in the second chop"),
    "7.1.6": (
        "INFORMATIONAL",
        "Autobahn only records how much of a 256 KiB message is echoed before the Close; "
        "the spec leaves it open",
    ),
    "7.13.1": (
        "INFORMATIONAL",
        "close code 5000: 'actual events are undefined by the spec'; wstape fails it with "
        "1002 and RFC-CLOSE-CODE (5000+ is not in the IANA registry's ranges)",
    ),
    "7.13.2": ("INFORMATIONAL", "close code 65535: as 7.13.1"),
}
"""Every case whose result is not OK, with Autobahn's verdict and why."""

ALLOWED_FAILURES: dict[str, str] = {}
"""Cases allowed to FAIL, with the reason: none. (A bare ``websockets`` server fails 7.1.5,
a Close between two fragments, with 1002; wstape echoes the Close as RFC 6455 §5.4/§5.5
allow control frames between fragments, then reports the fragment after it.)"""

ALLOWED_WARNINGS = frozenset({"RFC-RECONNECT-BACKOFF"})
"""The fuzzer reconnects at once after every case the server failed: more than 3
reconnects within 2 s after an abnormal close is RFC-RECONNECT-BACKOFF, a fair warning."""

# 6.*: the text messages that are not valid UTF-8 (the others must be echoed intact).
INVALID_UTF8 = frozenset(
    ["6.3.1", "6.3.2", "6.4.1", "6.4.2", "6.4.3", "6.4.4", "6.8.1", "6.8.2", "6.11.5",
     "6.15.1"]
    + [f"6.6.{i}" for i in (1, 3, 4, 6, 8, 10)]
    + [f"6.10.{i}" for i in range(1, 4)]
    + [f"6.12.{i}" for i in range(1, 9)]
    + [f"6.13.{i}" for i in range(1, 6)]
    + [f"6.14.{i}" for i in range(1, 11)]
    + [f"6.16.{i}" for i in range(1, 4)]
    + [f"6.17.{i}" for i in range(1, 6)]
    + [f"6.18.{i}" for i in range(1, 6)]
    + [f"6.19.{i}" for i in range(1, 6)]
    + [f"6.20.{i}" for i in range(1, 8)]
    + [f"6.21.{i}" for i in range(1, 9)]
)  # fmt: skip


def expected_errors(case_id: str) -> frozenset[str]:
    """The error rule IDs the replay report must hold for the connection of ``case_id``."""
    group = case_key(case_id)
    rules: set[str] = set()
    if case_id == "2.5":  # Ping with a 126-byte payload
        rules.add("RFC-FRAME-CONTROL")
    elif group[0] == 3:  # RSV bits without an extension
        rules.add("RFC-FRAME-RSV")
    elif group[0] == 4:  # reserved opcodes 3-7 and B-F
        rules.add("RFC-FRAME-OPCODE")
    elif case_id in ("5.1", "5.2"):
        # A Ping / Pong with FIN clear fails the connection; the "continuation" after it
        # is not judged (after a failure nothing more is, RFC 6455 7.1.7).
        rules.add("RFC-FRAME-CONTROL")
    elif group[0] == 5 and 9 <= group[1] <= 18:  # continuation without a start, and co.
        rules.add("RFC-FRAME-FRAGMENTS")
    elif case_id in INVALID_UTF8:
        rules.add("RFC-TEXT-UTF8")
    elif case_id in ("7.1.4", "7.1.5"):  # a text frame / a fragment after the Close
        rules.add("RFC-DATA-AFTER-CLOSE")
    elif case_id == "7.3.2":  # a 1-byte Close body
        rules.add("RFC-CLOSE-PAYLOAD")
    elif case_id == "7.3.6":  # a 124-byte reason: a 126-byte control frame
        rules |= {"RFC-FRAME-CONTROL", "RFC-CLOSE-REASON-LENGTH"}
    elif case_id == "7.5.1":  # a reason that is not UTF-8
        rules.add("RFC-CLOSE-REASON-UTF8")
    elif group[:2] in ((7, 9), (7, 13)):
        # 0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999; 5000 and 65535
        rules.add("RFC-CLOSE-CODE")
    return frozenset(rules)


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Run:
    assert WSTEST is not None
    keep = os.environ.get("WSTAPE_AUTOBAHN_OUT")
    workdir = Path(keep) if keep else tmp_path_factory.mktemp("autobahn")
    result = run(WSTEST, workdir, CI_CASES)
    print(f"\nAutobahn fuzzingclient, cases {' '.join(CI_CASES)}: {len(result.cases)} cases in "
          f"{result.wstest_seconds:.1f} s")  # fmt: skip
    print(summary_table(result.cases))
    print("seconds per group:", {g: round(s, 1) for g, s in group_seconds(result.cases).items()})
    return result


def test_every_case_passes_or_is_explained(fuzz: Run) -> None:
    assert len(fuzz.cases) == CASE_COUNT
    assert pairing_problems(fuzz.cases) == []
    failed = {c.id: (c.behavior, c.behavior_close) for c in fuzz.cases if c.verdict not in PASSING}
    assert set(failed) <= set(ALLOWED_FAILURES), failed
    not_ok = {c.id: c.verdict for c in fuzz.cases if c.verdict != "OK"}
    unexplained = {i: v for i, v in not_ok.items() if NOT_OK.get(i, ("",))[0] != v}
    assert unexplained == {}, "explain these in NOT_OK and docs/autobahn.md"
    assert fuzz.wstest_seconds < TIME_BUDGET


def test_each_broken_rule_is_in_the_report(fuzz: Run) -> None:
    wrong = {}
    for case in fuzz.cases:
        expected = expected_errors(case.id)
        if case.rules("error") != expected:
            wrong[case.id] = {"expected": sorted(expected), "reported": sorted(case.rules())}
    assert wrong == {}
    warnings = {r for c in fuzz.cases for r in c.rules("warn") | c.rules("info")}
    assert warnings <= ALLOWED_WARNINGS
    assert fuzz.session_violations == []
    assert fuzz.server_exit == 1  # the report has errors: the fuzzer broke rules on purpose


def test_the_rule_map_agrees_with_autobahn(fuzz: Run) -> None:
    """Where Autobahn expects the server to fail the connection (only 1002 / 1007 are
    acceptable close codes), the map names a rule, and the reverse; the exceptions are a
    frame after the Close (the server closes normally first) and 5000 / 65535."""
    for case in fuzz.cases:
        codes = set(case.expected_close.get("closeCode", []))
        autobahn_fails = bool(codes) and codes <= {1002, 1007}
        if case.id in ("7.1.4", "7.1.5", "7.13.1", "7.13.2"):
            assert not autobahn_fails and expected_errors(case.id), case.id
        else:
            assert autobahn_fails == bool(expected_errors(case.id)), case.id


def test_clean_cases_are_echoed_and_closed_as_the_client_asked(fuzz: Run) -> None:
    for case in fuzz.cases:
        if expected_errors(case.id) or case.id in NOT_OK:
            continue
        close = case.conn["close"]
        assert close["by"] == "client", case.id
        assert case.remote_close_code in (case.local_close_code, None), case.id
        if case.id.startswith(("1.", "6.", "9.", "10.", "12.", "13.")):
            assert case.conn["messages_matched"] >= 1, case.id
        if case.id.startswith(("12.", "13.")):
            assert case.conn["messages_matched"] == 1000, case.id  # every one echoed


def test_compression_cases_negotiate_and_pass(fuzz: Run) -> None:
    """12.* / 13.* are UNIMPLEMENTED when the server declines permessage-deflate: every
    sampled case must have negotiated it (each of 13.*'s parameter sets) and be OK."""
    sampled = [c for c in fuzz.cases if c.group in ("12", "13")]
    assert sorted(c.id for c in sampled) == sorted(COMPRESSION_SAMPLE)
    assert {c.id: c.verdict for c in sampled if c.verdict != "OK"} == {}
