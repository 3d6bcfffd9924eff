"""What redaction costs the recorder per message, next to the same recorder with it off.

    python bench/bench_redaction.py            # about a minute
    python bench/bench_redaction.py --quick    # counts divided by 10

Not a test: it prints a table. The recorder addon is driven through mitmproxy's test
context (no sockets, so the figures are the hook's own cost and do not drift with the
proxy's), writing a real cassette, with three settings side by side in every round:

- (a) redaction off: ``wstape_default_redaction=false``, no other option (the baseline);
- (b) the defaults (what ``wstape record`` does unless told otherwise);
- (c) the defaults plus a ``wstape_secret_env`` value (every payload is searched for it).

For each payload shape: microseconds per ``websocket_message`` call (best of ``--repeat``
rounds) and (b)/(a), (c)/(a). The last lines time the engine alone on large inputs: a
1 MiB JSON message with keys to redact, and 100,000 levels of nesting.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketData, WebSocketMessage
from wsproto.frame_protocol import Opcode as WsOpcode

from wstape.addons.recorder import Recorder
from wstape.core.redaction import Policy, Redactor

SECRET = "bench-S3CRET-value-0123456789"

SHAPES: list[tuple[str, bytes, bool]] = [
    ("100 B text, no key", b"x" * 100, True),
    (
        "JSON chat, no key",
        json.dumps({"type": "chat", "text": "hello there", "ts": 1}).encode(),
        True,
    ),
    ("JSON auth, a token", json.dumps({"type": "auth", "token": "abcdef123456"}).encode(), True),
    ("4 KiB JSON, no key", json.dumps({"items": ["x" * 40] * 90}).encode(), True),
    ("100 B binary", os.urandom(100), False),
    ("64 KiB binary", os.urandom(64 * 1024), False),
]


def run_hook(rec: Recorder, payload: bytes, text: bool, n: int) -> float:
    """Seconds per websocket_message call over ``n`` calls."""
    flow = tflow.twebsocketflow()
    flow.websocket = WebSocketData()
    rec.websocket_start(flow)
    messages = flow.websocket.messages
    opcode = WsOpcode.TEXT if text else WsOpcode.BINARY
    t0 = time.perf_counter()
    for i in range(n):
        messages.append(WebSocketMessage(opcode, True, payload, float(i)))
        rec.websocket_message(flow)
    return (time.perf_counter() - t0) / n


def measure(
    settings: dict[str, dict[str, object]], n: int, repeat: int
) -> dict[tuple[str, str], float]:
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="wstape-bench-redaction-") as tmp:
        for round_ in range(repeat):
            for shape, payload, text in SHAPES:
                count = max(50, n // 20) if len(payload) > 10_000 else n
                for name, options in settings.items():
                    rec = Recorder(trim_messages=True)
                    out = Path(tmp) / f"{name}-{round_}.msgpack"
                    with taddons.context(rec) as tctx:
                        tctx.configure(rec, wstape_cassette=str(out), **options)
                        seconds = run_hook(rec, payload, text, count)
                        rec.done()
                    out.unlink()
                    key = (shape, name)
                    best[key] = min(best.get(key, float("inf")), seconds)
            print(f"  round {round_ + 1} done", file=sys.stderr, flush=True)
    return best


def engine(label: str, payload: bytes, redactor: Redactor) -> str:
    t0 = time.perf_counter()
    out = redactor.payload(payload, True, [])
    seconds = time.perf_counter() - t0
    changed = redactor.counts.json_keys
    return f"{label:<38}{seconds * 1000:>10.1f} ms  ({len(payload):,} bytes, {changed} values)" + (
        "" if out != payload else "  UNCHANGED"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="divide every count by 10")
    parser.add_argument("--repeat", type=int, default=5, help="best of N for each figure")
    args = parser.parse_args()
    n = 20_000 // (10 if args.quick else 1)
    os.environ["WSTAPE_BENCH_SECRET"] = SECRET
    settings: dict[str, dict[str, object]] = {
        "off": {"wstape_default_redaction": False},
        "defaults": {},
        "defaults+gate": {"wstape_secret_env": ["WSTAPE_BENCH_SECRET"]},
    }
    print(f"python {sys.version.split()[0]}; {n:,} messages per figure", file=sys.stderr)
    best = measure(settings, n, args.repeat)

    print()
    print(
        f"{'payload':<22}{'(a) off':>10}{'(b) defaults':>14}{'(c) +gate':>11}{'b/a':>7}{'c/a':>7}"
    )
    for shape, _, _ in SHAPES:
        a, b, c = (best[(shape, name)] * 1e6 for name in settings)
        print(f"{shape:<22}{a:>8.1f}us{b:>12.1f}us{c:>9.1f}us{b / a:>7.2f}{c / a:>7.2f}")
    print()
    big = json.dumps(
        {"items": [{"id": i, "name": f"item {i}", "token": f"t{i}"} for i in range(20_000)]}
    ).encode()
    deep = b"[" * 100_000 + b'{"token": "x"}' + b"]" * 100_000
    make: Callable[[], Redactor] = lambda: Redactor(Policy.build())  # noqa: E731
    print(engine("engine: 1 MiB JSON, 20,000 tokens", big, make()))
    print(engine("engine: 100,000 levels of nesting", deep, make()))


if __name__ == "__main__":
    main()
