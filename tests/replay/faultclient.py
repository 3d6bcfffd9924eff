"""A ``websockets`` client that copes with faults the way the wx network guide says, and
switches to turn each of its good habits off (tests/replay/test_faults.py).

The app: connect, authenticate (``{"type":"auth"}``, wait for ``authed``), subscribe
(``{"type":"sub"}``, wait for ``subbed``), then read the feed (``{"n":1}`` ...) until
``{"n":LAST}``, and close with 1000. Meanwhile it sends ``{"type":"ping"}`` every
``ping_every`` seconds and gives up on the connection (closes it) when no
``{"type":"pong"}`` came within ``pong_timeout``. When the connection breaks it
reconnects after ``backoff`` seconds, doubling each time (RFC 6455 §7.2.3), and starts
over with its setup.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.replay.conftest import c, close, opening, s
from wstape.core.model import Record, Side

AUTH = {"type": "auth", "token": "t0k3n"}
AUTHED = {"type": "authed"}
SUB = {"type": "sub", "topic": "prices"}
SUBBED = {"type": "subbed"}
PING = {"type": "ping"}
PONG = {"type": "pong"}
BYE_N = 3
"""The last feed message: the client closes after it."""


def feed_records(pad: int = 0, extensions: tuple[str, ...] = ()) -> list[Record]:
    """Authenticate, subscribe, three feed messages, the client's app-level heartbeat
    three times (so replay detects it: ping answered by pong at once), client closes.
    ``extensions``: what the recorded client offered (browsers offer permessage-deflate)."""

    def n(i: int) -> dict[str, Any]:
        return {"n": i, "pad": "x" * pad} if pad else {"n": i}

    return [
        opening(1, "/feed", extensions=extensions),
        c(1, 0.05, AUTH),
        s(1, 0.06, AUTHED),
        c(1, 0.07, SUB),
        s(1, 0.08, SUBBED),
        s(1, 0.10, n(1)),
        c(1, 0.30, PING),
        s(1, 0.301, PONG),
        s(1, 0.50, n(2)),
        c(1, 0.60, PING),
        s(1, 0.601, PONG),
        c(1, 0.90, PING),
        s(1, 0.901, PONG),
        s(1, 0.95, n(3)),
        close(1, 1.0, Side.CLIENT, 1000),
    ]


def dumps(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Habits:
    """What the client does right (each False is one of the bad clients)."""

    reconnect: bool = True
    backoff: float = 0.2
    """Seconds before the first reconnect (0: a tight loop); doubled each time."""
    resubscribe: bool = True
    """Subscribe again after a reconnect (False: authenticate, then only listen)."""
    reauth: bool = True
    """Authenticate again after a reconnect (False: subscribe straight away)."""
    heartbeat: bool = True
    """Give up on a connection whose ping got no pong within ``pong_timeout``."""
    ping_every: float = 0.3
    pong_timeout: float = 0.2
    open_timeout: float = 1.0
    """How long an unanswered upgrade may take before the client gives up on it."""
    reply_timeout: float | None = None
    """How long to wait for ``authed`` and ``subbed`` before giving up on the
    connection (None: as long as it stays open)."""
    close_timeout: float = 0.3
    attempts: int = 8
    last: int = BYE_N
    give_up_after: float = 8.0
    """Seconds for the whole run (a test never hangs on a client)."""


@dataclass
class Attempt:
    """One connection attempt, from the client's side."""

    started: float
    outcome: str = ""
    """``done``, ``refused 503``, ``closed 1006``, ``heartbeat dead``, ``timeout``..."""
    received: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """When each of ``received`` came (time.monotonic())."""


@dataclass
class Run:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].outcome == "done"

    @property
    def outcomes(self) -> list[str]:
        return [a.outcome for a in self.attempts]

    def feed(self) -> list[int]:
        """The feed numbers the last attempt received."""
        return [json.loads(m)["n"] for m in self.attempts[-1].received if '"n"' in m]


class _Dead(Exception):
    """The heartbeat went unanswered."""


class _Slow(Exception):
    """``authed`` or ``subbed`` came later than ``reply_timeout``."""


class _Closed(Exception):
    """The server ended the connection (``code``: what the client saw)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


async def run_client(url: str, habits: Habits | None = None) -> Run:
    """Play the app against ``url`` until it got the whole feed once, or gave up."""
    habits = habits or Habits()
    run = Run()
    try:
        await _attempts(url, habits, run)
    except TimeoutError:
        run.attempts.append(Attempt(time.monotonic(), "out of time"))
    return run


async def _attempts(url: str, habits: Habits, run: Run) -> None:
    async with asyncio.timeout(habits.give_up_after):
        delay = habits.backoff
        for n in range(habits.attempts):
            attempt = Attempt(time.monotonic())
            run.attempts.append(attempt)
            try:
                await _session(url, habits, attempt, again=n > 0)
            except InvalidStatus as e:
                attempt.outcome = f"refused {e.response.status_code}"
            except TimeoutError:
                attempt.outcome = "timeout"
            except _Slow:
                attempt.outcome = "reply too slow"
            except _Dead:
                attempt.outcome = "heartbeat dead"
            except _Closed as e:
                attempt.outcome = f"closed {e.code}"
            except ConnectionClosed as e:
                rcvd = e.rcvd
                attempt.outcome = f"closed {rcvd.code if rcvd is not None else 1006}"
            except OSError as e:
                attempt.outcome = f"error {type(e).__name__}"
            if attempt.outcome == "done" or not habits.reconnect:
                break
            await asyncio.sleep(delay)
            delay *= 2


async def _session(url: str, habits: Habits, attempt: Attempt, *, again: bool) -> None:
    async with websockets.connect(
        url,
        compression=None,
        ping_interval=None,
        open_timeout=habits.open_timeout,
        close_timeout=habits.close_timeout,
        proxy=None,
    ) as ws:
        inbox: asyncio.Queue[str] = asyncio.Queue()
        pongs = asyncio.Event()

        async def reader() -> None:
            async for message in ws:
                assert isinstance(message, str)
                if json.loads(message) == PONG:
                    pongs.set()
                else:
                    attempt.received.append(message)
                    attempt.arrivals.append(time.monotonic())
                    await inbox.put(message)

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(habits.ping_every)
                pongs.clear()
                await ws.send(dumps(PING))
                if not habits.heartbeat:
                    continue
                try:
                    await asyncio.wait_for(pongs.wait(), habits.pong_timeout)
                except TimeoutError:
                    raise _Dead from None

        async def app() -> None:
            if habits.reauth or not again:
                await ws.send(dumps(AUTH))
                await _expect(inbox, AUTHED, habits.reply_timeout)
            if habits.resubscribe or not again:
                await ws.send(dumps(SUB))
                await _expect(inbox, SUBBED, habits.reply_timeout)
            while True:
                message = json.loads(await inbox.get())
                if message.get("n") == habits.last:
                    return

        tasks = [asyncio.ensure_future(f()) for f in (reader, heartbeat, app)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finished = [t for t in done if not t.cancelled()]
        for task in finished:
            error = task.exception()
            if isinstance(error, _Dead | _Slow):
                await ws.close(1000)
                raise error
        for task in finished:
            error = task.exception()
            if error is not None:
                raise error
        if tasks[0] in done:  # the server ended the connection
            await ws.wait_closed()
            rcvd = ws.protocol.close_rcvd
            raise _Closed(rcvd.code if rcvd is not None else 1006)
        await ws.close(1000)
        attempt.outcome = "done"


async def _expect(
    inbox: asyncio.Queue[str], wanted: dict[str, Any], timeout: float | None = None
) -> None:
    """Wait for ``wanted`` (what else comes first is not the app's business here)."""
    try:
        async with asyncio.timeout(timeout):
            while json.loads(await inbox.get()) != wanted:
                pass
    except TimeoutError:
        raise _Slow from None


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.replay.faultclient cassette FILE`` writes the recording;
    ``python -m tests.replay.faultclient run URL [--no-reconnect ...]`` runs the client
    (the examples of docs/faults.md). Prints what each connection attempt came to."""
    import argparse
    from pathlib import Path

    from wstape.cassettes import CassetteWriter

    parser = argparse.ArgumentParser(prog="python -m tests.replay.faultclient")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("cassette", help="write the feed recording to FILE")
    write.add_argument("file", type=Path)
    write.add_argument("--pad", type=int, default=0, help="make each feed message N bytes more")
    client = sub.add_parser("run", help="run the client against URL (ws://HOST:PORT/feed)")
    client.add_argument("url")
    client.add_argument("--no-reconnect", action="store_true", help="give up after a break")
    client.add_argument("--backoff", type=float, default=0.2, help="first reconnect delay")
    client.add_argument("--no-heartbeat", action="store_true", help="ignore missing pongs")
    client.add_argument("--no-resubscribe", action="store_true", help="no sub after reconnect")
    client.add_argument("--no-reauth", action="store_true", help="no auth after reconnect")
    client.add_argument("--ping-every", type=float, default=0.3)
    client.add_argument("--open-timeout", type=float, default=1.0)
    client.add_argument("--reply-timeout", type=float, help="give up on a slow reply")
    client.add_argument("--attempts", type=int, default=8)
    args = parser.parse_args(argv)
    if args.command == "cassette":
        with CassetteWriter(args.file) as writer:
            for record in feed_records(pad=args.pad):
                writer.write(record)
        print(f"wrote {args.file}")
        return 0
    habits = Habits(
        reconnect=not args.no_reconnect,
        backoff=args.backoff,
        heartbeat=not args.no_heartbeat,
        resubscribe=not args.no_resubscribe,
        reauth=not args.no_reauth,
        ping_every=args.ping_every,
        open_timeout=args.open_timeout,
        reply_timeout=args.reply_timeout,
        attempts=args.attempts,
        give_up_after=30.0,
    )
    run = asyncio.run(run_client(args.url, habits))
    print("client:", ", ".join(run.outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
