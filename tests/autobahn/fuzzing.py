"""Run Autobahn|Testsuite's ``wstest -m fuzzingclient`` at ``wstape replay --echo``.

Shared by ``tests/autobahn/test_autobahn.py`` (CI: cases 1-7, 9, 10) and
``bench/bench_autobahn.py`` (any cases, e.g. the compression groups 12 and 13). wstest is
Python 2 only; ``.ci/autobahn.sh`` builds it into ``.ci/autobahn-venv`` (docs/autobahn.md).

The fuzzer opens one connection per case, one case after the other, so the echo server's
connection N (the report numbers them 1, 2, ... in connect order) is the N-th case of the
run, in the order wstest logs them ("Running test case ID ..."). :func:`run` pairs them
and checks the pairing against the close codes both sides saw.

With ``baseline=True`` the same wstest run also fuzzes a bare ``websockets`` echo server
(tests/autobahn/bare_websockets.py, agent ``websockets``): the figures wstape is compared
with (:attr:`Run.baseline`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
COMPRESSION_SAMPLE = tuple(
    f"{group}.{i}"
    for group in ("12.1", "12.2", "12.3", "12.4", "12.5", *(f"13.{n}" for n in range(1, 8)))
    for i in (1, 5, 11)
)
"""Three cases of each compression group (of 18): 1,000 messages of 16 bytes, of 4 KiB,
and of 8 KiB in 256-byte fragments, under each group's data (12.*: JSON, an image,
Faust, HTML, text) or permessage-deflate parameters (13.*: context takeover, window bits
9 and 15, and a list of offers). The full groups take minutes: bench/bench_autobahn.py."""
CI_CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", *COMPRESSION_SAMPLE)
VENV_WSTEST = REPO / ".ci" / "autobahn-venv" / "bin" / "wstest"
AGENT = "wstape"
BASELINE_AGENT = "websockets"
BARE_SERVER = Path(__file__).with_name("bare_websockets.py")
PASSING = ("OK", "NON-STRICT", "INFORMATIONAL")
VERDICTS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")


def find_wstest() -> tuple[Path | None, str]:
    """wstest from ``$WSTAPE_AUTOBAHN`` or ``.ci/autobahn-venv``; else None and why not."""
    configured = os.environ.get("WSTAPE_AUTOBAHN")
    candidate = Path(configured) if configured else VENV_WSTEST
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate, ""
    if configured:
        return None, f"WSTAPE_AUTOBAHN={configured} is not an executable wstest"
    return None, (
        f"Autobahn|Testsuite is not installed ({VENV_WSTEST} missing): run "
        "`bash .ci/autobahn.sh` (needs Python 2.7) or set WSTAPE_AUTOBAHN to a wstest"
    )


def case_key(case_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case_id.split("."))


@dataclass
class Case:
    """One fuzzer case: Autobahn's verdict, and what the echo server reported for it."""

    id: str
    behavior: str
    behavior_close: str
    duration_ms: int
    local_close_code: int | None
    """What the fuzzer (the client) put in its Close."""
    remote_close_code: int | None
    """What the server put in its Close."""
    expected_close: dict[str, Any]
    description: str = ""
    conn: dict[str, Any] = field(default_factory=dict)
    """The echo server's report line for the connection of this case."""
    violations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def group(self) -> str:
        return self.id.split(".")[0]

    @property
    def verdict(self) -> str:
        """One word: the behaviour, or FAILED when the closing behaviour failed."""
        if self.behavior_close not in PASSING:
            return "FAILED"
        return self.behavior if self.behavior in VERDICTS else "FAILED"

    def rules(self, severity: str = "error") -> set[str]:
        return {v["rule"] for v in self.violations if v["severity"] == severity}


@dataclass
class Run:
    cases: list[Case]
    """In the order the fuzzer ran them."""
    report: dict[str, Any]
    wstest_seconds: float
    outdir: Path
    server_exit: int
    session_violations: list[dict[str, Any]]
    """Violations that belong to no connection (should be none)."""
    baseline: list[Case] = field(default_factory=list)
    """The bare websockets server's cases in the same run (``baseline=True``), else none."""


def _wait_ready(
    path: Path,
    proc: subprocess.Popen[bytes],
    timeout: float = 30,
    what: str = "wstape replay --echo",
) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists():
            return int(path.read_text())
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(
    wstest: Path,
    workdir: Path,
    cases: Sequence[str] = CI_CASES,
    *,
    exclude: Sequence[str] = (),
    python: str = sys.executable,
    timeout: float = 3600,
    server_args: Sequence[str] = (),
    baseline: bool = False,
) -> Run:
    """Start ``wstape replay --echo``, run the fuzzer at it, collect both sides' results
    (and, with ``baseline``, a bare websockets server's verdicts from the same run)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready, report_path = workdir / "port.txt", workdir / "report.json"
    bare_ready = workdir / "bare-port.txt"
    outdir = workdir / "reports"
    for stale in (ready, report_path, bare_ready):
        stale.unlink(missing_ok=True)
    bare: subprocess.Popen[bytes] | None = None
    with (workdir / "server.log").open("wb") as server_log:
        server = subprocess.Popen(
            [python, "-m", "wstape", "replay", "--echo", "--port", "0",
             "--ready-file", str(ready), "--report", str(report_path), *server_args],
            stdout=subprocess.DEVNULL, stderr=server_log, cwd=REPO,
        )  # fmt: skip
        try:
            port = _wait_ready(ready, server)
            servers = [{"agent": AGENT, "url": f"ws://127.0.0.1:{port}"}]
            if baseline:
                bare = subprocess.Popen(
                    [python, str(BARE_SERVER), str(bare_ready)],
                    stdout=subprocess.DEVNULL, stderr=server_log, cwd=REPO,
                )  # fmt: skip
                bare_port = _wait_ready(bare_ready, bare, what="the bare websockets server")
                servers.append({"agent": BASELINE_AGENT, "url": f"ws://127.0.0.1:{bare_port}"})
            spec = {
                "outdir": str(outdir),
                "servers": servers,
                "cases": list(cases),
                "exclude-cases": list(exclude),
                "exclude-agent-cases": {},
            }
            (workdir / "spec.json").write_text(json.dumps(spec, indent=2))
            started = time.monotonic()
            with (workdir / "wstest.log").open("wb") as log:
                subprocess.run(
                    [str(wstest), "-m", "fuzzingclient", "-s", "spec.json"],
                    cwd=workdir, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                    check=True,
                )  # fmt: skip
            wstest_seconds = time.monotonic() - started
        finally:
            _stop(server)
            if bare is not None:
                _stop(bare)
    report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    log_text = (workdir / "wstest.log").read_text()
    found = _cases(outdir, AGENT, log_text)
    others = _cases(outdir, BASELINE_AGENT, log_text) if baseline else []
    conns = report["connections"]
    if len(conns) != len(found):
        raise AssertionError(
            f"{len(found)} cases ran but the echo server saw {len(conns)} connections"
        )
    by_conn: dict[int | None, list[dict[str, Any]]] = {}
    for v in report["violations"]:
        by_conn.setdefault(v["conn"], []).append(v)
    for case, conn in zip(found, conns, strict=True):
        case.conn = conn
        case.violations = by_conn.get(conn["conn"], [])
    return Run(
        found, report, wstest_seconds, outdir, server.returncode, by_conn.get(None, []), others
    )


def _cases(outdir: Path, agent: str, log_text: str) -> list[Case]:
    """``agent``'s cases in the order wstest ran them, with Autobahn's verdicts."""
    order = re.findall(rf"Running test case ID (\S+) for agent {re.escape(agent)} ", log_text)
    index = json.loads((outdir / "index.json").read_text())[agent]
    found: list[Case] = []
    for case_id in order:
        entry = index[case_id]
        detail = json.loads((outdir / entry["reportfile"]).read_text())
        found.append(
            Case(
                id=case_id,
                behavior=entry["behavior"],
                behavior_close=entry["behaviorClose"],
                duration_ms=int(entry["duration"]),
                local_close_code=detail.get("localCloseCode"),
                remote_close_code=detail.get("remoteCloseCode"),
                expected_close=detail.get("expectedClose") or {},
                description=detail.get("description", ""),
            )
        )
    return found


def pairing_problems(cases: Sequence[Case]) -> list[str]:
    """Cases whose close codes disagree with their paired connection's (a bad pairing)."""
    problems = []
    for case in cases:
        close = case.conn["close"]
        by, code = close["by"], close["code"]
        if by == "server" and code != case.remote_close_code:
            problems.append(f"{case.id}: server closed with {code}, fuzzer saw "
                            f"{case.remote_close_code}")  # fmt: skip
        elif by == "client" and code not in (1005, 1006) and code != case.local_close_code:
            problems.append(f"{case.id}: client closed with {code} says the report, the "
                            f"fuzzer sent {case.local_close_code}")  # fmt: skip
    return problems


def summary_table(cases: Sequence[Case]) -> str:
    """Markdown: one row per case group with the count of each verdict."""
    groups: dict[str, Counter[str]] = {}
    for case in sorted(cases, key=lambda c: case_key(c.id)):
        groups.setdefault(case.group, Counter())[case.verdict] += 1
    shown = [v for v in VERDICTS if any(c[v] for c in groups.values())]
    lines = [
        "| group | cases | " + " | ".join(shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    total: Counter[str] = Counter()
    for group, counts in groups.items():
        total.update(counts)
        lines.append(
            f"| {group}.* | {sum(counts.values())} | "
            + " | ".join(str(counts[v]) for v in shown)
            + " |"
        )
    lines.append(
        f"| all | {sum(total.values())} | " + " | ".join(str(total[v]) for v in shown) + " |"
    )
    return "\n".join(lines)


def group_seconds(cases: Sequence[Case]) -> dict[str, float]:
    """Sum of the fuzzer's per-case durations, per group."""
    out: dict[str, float] = {}
    for case in cases:
        out[case.group] = out.get(case.group, 0.0) + case.duration_ms / 1000
    return out
