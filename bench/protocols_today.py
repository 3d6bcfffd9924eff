"""What `wstape replay` does today with real protocols over WebSocket.

For every session of tests/protocols/harness.py (Socket.IO with python-socketio and
socket.io-client, graphql-ws, MQTT with MQTT.js and paho-mqtt on mosquitto, JSON-RPC with
rpc-websockets, STOMP with stompjs on stomp-broker-js, a UUID-JSON protocol on websockets,
and variations of them): start the real server, record the client through `wstape record
--mode reverse:...`, replay the cassette with `wstape replay --speed 0` (no other option) to
the same client, and print one row: protocol, client, recorded ok, the cassette's
connections and messages (client / server, from `wstape ls --json`), the replay's exit
code, the report's `passed`, violations by rule, and whether the client completed (or its
error).

    python bench/protocols_today.py                 # every session, 4 at a time
    python bench/protocols_today.py --only mqtt     # sessions whose id contains "mqtt"
    python bench/protocols_today.py --variants      # also replay the normal cassette to
                                                    # the "different" and "quit-early" clients
    python bench/protocols_today.py --json out.json # every detail, for later comparison

Needs `bash .ci/setup-protocols.sh` (npm packages, mosquitto) and `pip install -e '.[dev]'`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.protocols import harness  # noqa: E402

CYCLE_COLUMNS = [
    "protocol", "client", "recorded", "subprotocol", "conns", "msgs", "exit", "passed",
    "violations", "completed", "error",
]  # fmt: skip
VARIANT_COLUMNS = [
    "protocol", "client", "variant", "exit", "passed", "violations", "completed", "error",
]  # fmt: skip


def short(text: str | None, width: int = 70) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def exit_text(rep: harness.Replay) -> str:
    if rep.exit_code is not None:
        return str(rep.exit_code)
    return f"none (SIGTERM: {rep.stopped_exit})"


def rules(counts: dict[str, int]) -> str:
    return ", ".join(f"{rule} x{n}" for rule, n in sorted(counts.items())) or "-"


def cycle_row(s: harness.Session, cycle: harness.Cycle | BaseException) -> dict[str, Any]:
    row: dict[str, Any] = {"protocol": s.server, "client": s.client}
    if isinstance(cycle, BaseException):
        row.update(recorded="harness error", error=short(f"{type(cycle).__name__}: {cycle}"))
        return row
    rec = cycle.recording
    conns, c_msgs, s_msgs = rec.counts
    row.update(
        recorded="yes" if rec.ok else f"NO: {short(rec.live.error, 40)}",
        subprotocol=",".join(sorted({str(c["subprotocol"]) for c in rec.connections})) or "-",
        conns=conns,
        msgs=f"{c_msgs}/{s_msgs}",
    )
    rep = cycle.replay
    if rep is None:
        row.update(exit="-", passed="-", violations="-", completed="-", error="not replayed")
        return row
    row.update(
        exit=exit_text(rep),
        passed={True: "true", False: "false", None: "no report"}[rep.passed],
        violations=rules(rep.violations()),
        completed="yes" if rep.client.ok else "no",
        error=short(rep.client.error),
    )
    return row


def replay_row(s: harness.Session, rep: harness.Replay | BaseException) -> dict[str, Any]:
    row: dict[str, Any] = {"protocol": s.server, "client": s.client}
    if isinstance(rep, BaseException):
        row.update(variant="?", error=short(f"{type(rep).__name__}: {rep}"))
        return row
    row.update(
        variant=rep.variant,
        exit=exit_text(rep),
        passed={True: "true", False: "false", None: "no report"}[rep.passed],
        violations=rules(rep.violations()),
        completed="yes" if rep.client.ok else "no",
        error=short(rep.client.error),
    )
    return row


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table (pastes into an issue or a doc as is)."""
    cells = [[str(r.get(c, "")).replace("|", "\\|") for c in columns] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def details(cycle: harness.Cycle | BaseException) -> dict[str, Any]:
    if isinstance(cycle, BaseException):
        return {"harness_error": f"{type(cycle).__name__}: {cycle}"}
    rec, rep = cycle.recording, cycle.replay
    out: dict[str, Any] = {
        "recorded": rec.ok,
        "recorder_exit": rec.recorder_exit,
        "live": rec.live.result,
        "connections": rec.connections,
    }
    if rep is not None:
        out.update(replay_exit=rep.exit_code, report=rep.report, replayed=rep.client.result)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="substring of a session id")
    parser.add_argument("--workers", type=int, default=4, help="sessions at a time (4)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also replay each cassette to the different and quit-early clients",
    )
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--keep", type=Path, help="keep cassettes and reports in this folder")
    args = parser.parse_args()

    sessions = [s for s in harness.SESSIONS if not args.only or any(o in s.id for o in args.only)]
    skipped = [(s, why) for s in sessions if (why := s.missing())]
    sessions = [s for s in sessions if not s.missing()]
    for s, why in skipped:
        print(f"skipped {s.id}: {why}", file=sys.stderr)
    if not sessions:
        print("nothing to run", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="wstape-protocols-") as tmp:
        workdir = args.keep or Path(tmp)
        t0 = time.monotonic()
        cycles = harness.run_cycles(sessions, workdir, workers=args.workers)
        elapsed = time.monotonic() - t0
        rows = [cycle_row(s, cycles[s.id]) for s in sessions]
        print(f"\n## record, then replay --speed 0 to the same client ({elapsed:.0f} s)\n")
        print(table(rows, CYCLE_COLUMNS))
        variant_rows: list[dict[str, Any]] = []
        variant_details: list[dict[str, Any]] = []
        if args.variants:
            jobs = [
                (s, cycle, variant)
                for s in sessions
                if isinstance(cycle := cycles[s.id], harness.Cycle) and cycle.replay is not None
                for variant in ("different", "quit-early")
            ]

            def one(job: tuple[harness.Session, harness.Cycle, str]) -> Any:
                s, cycle, variant = job
                try:
                    return harness.replay_session(
                        s, cycle.recording.cassette, cycle.recording.cassette.parent,
                        variant=variant,
                    )  # fmt: skip
                except Exception as e:
                    return e

            t0 = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.workers) as pool:
                replays = list(pool.map(one, jobs))
            variant_rows = [replay_row(job[0], r) for job, r in zip(jobs, replays, strict=True)]
            for job, r in zip(jobs, replays, strict=True):
                if isinstance(r, harness.Replay):
                    variant_details.append(
                        {"session": job[0].id, "variant": job[2], "exit": r.exit_code,
                         "report": r.report, "client": r.client.result}
                    )  # fmt: skip
            print(
                "\n## the normal cassette replayed to the negative clients "
                f"({time.monotonic() - t0:.0f} s)\n"
            )
            print(table(variant_rows, VARIANT_COLUMNS))
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "sessions": {s.id: details(cycles[s.id]) for s in sessions},
                        "variants": variant_details,
                        "skipped": {s.id: why for s, why in skipped},
                    },
                    indent=1,
                    default=str,
                ),
                encoding="utf-8",
            )
    failed_harness = [s.id for s in sessions if isinstance(cycles[s.id], BaseException)]
    for sid in failed_harness:
        print(f"harness error in {sid}: {cycles[sid]}", file=sys.stderr)
    return 1 if failed_harness else 0


if __name__ == "__main__":
    sys.exit(main())
