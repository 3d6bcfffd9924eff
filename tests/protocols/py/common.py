"""What every Python protocol script here shares (they run as scripts, not as modules of
the tests package, so this file is imported as ``common`` from the script's folder).

Servers print one ready line, ``{"ready": true, "port": N}``, once listening on 127.0.0.1
port 0, and run until SIGTERM / SIGINT. Clients take a URL and print one result line,
``{"ok": ..., "client": ..., "variant": ..., "events": [...], "error": ...}``, exiting 0
only when their flow completed (see tests/protocols/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

VARIANTS = ("normal", "different", "quit-early")
"""normal: the recorded flow. different: the same shape with another event / query / topic
/ method / destination (a real server completes it; a replay of a normal recording must
not). quit-early: the first half of the flow, then a clean disconnect."""


def ready(port: int) -> None:
    print(json.dumps({"ready": True, "port": port}), flush=True)


async def serve_until_stopped() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def client_args(description: str, *, hold: float) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("url")
    parser.add_argument("--variant", choices=VARIANTS, default="normal")
    parser.add_argument(
        "--hold", type=float, default=hold, help="seconds to stay connected before leaving"
    )
    parser.add_argument("--timeout", type=float, default=20.0, help="for the whole flow")
    return parser.parse_args()


class Flow:
    """A client flow's observations and its one JSON result line."""

    def __init__(self, client: str, variant: str) -> None:
        self.client = client
        self.variant = variant
        self.events: list[Any] = []
        self.step = "start"
        self.extra: dict[str, Any] = {}
        self._t0 = time.monotonic()

    def event(self, what: Any) -> None:
        self.events.append(what)

    def at(self, step: str) -> None:
        """Name the step being waited on (a timeout says where it was)."""
        self.step = step

    def result(self, error: str | None) -> dict[str, Any]:
        return {
            "ok": error is None,
            "client": self.client,
            "variant": self.variant,
            "events": self.events,
            "error": error,
            "step": self.step,
            "seconds": round(time.monotonic() - self._t0, 3),
            **self.extra,
        }

    def run(self, body: Callable[[Flow], Awaitable[None]], timeout: float) -> int:
        """Run ``body`` within ``timeout`` s, print the result line, return the exit code."""

        async def main() -> str | None:
            try:
                await asyncio.wait_for(body(self), timeout)
            except TimeoutError:
                return f"timed out after {timeout:g} s at step {self.step!r}"
            except Exception as e:
                traceback.print_exc(file=sys.stderr)
                return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            return None

        error = asyncio.run(main())
        print(json.dumps(self.result(error)), flush=True)
        return 0 if error is None else 1


async def wait_for(event: asyncio.Event, flow: Flow, step: str) -> None:
    flow.at(step)
    await event.wait()
