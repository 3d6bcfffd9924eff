"""Faults on demand against real clients (docs/faults.md): a ``ReplayServer`` (or a
``wstape replay`` process) on 127.0.0.1 port 0 injects each fault kind, and a real
``websockets`` client (tests/replay/faultclient.py) copes with it well, or breaks the rule
that says how it should have.

Every scenario runs twice and the two reports must be the same, times aside
(:func:`normalise`): the same spec on the same recording gives the same report.
Timeouts are short (``--timeout``, ``--heartbeat-timeout``, ``--expect-reconnect``) so
the file stays fast; nothing sleeps for readiness.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.helpers.browser import read_report, replay
from tests.helpers.rawclient import RawClient, request_bytes
from tests.replay.conftest import CassetteFactory, c, close, opening, s
from tests.replay.faultclient import AUTH, AUTHED, SUB, Habits, Run, feed_records, run_client
from tests.replay.test_cli import Replay
from wstape.core.frames import OpCode
from wstape.core.model import Side
from wstape.replay import ReplayOptions, ReplayServer

WAIT = 6.0
"""Seconds a server may take to see every recording played once the client is done."""


@pytest.fixture
def feed(make_cassette: CassetteFactory) -> Path:
    return make_cassette(feed_records())


# -- running a scenario, and comparing two runs -------------------------------------------


@dataclass
class Outcome:
    run: Run
    report: dict[str, Any]
    played: bool
    """wait_played came true by itself (before the server was stopped)."""

    @property
    def rules(self) -> list[tuple[str, str]]:
        found = {(v["rule"], v["severity"]) for v in self.report["violations"]}
        return sorted(found - {("REPLAY-HEARTBEAT-DETECTED", "info")})

    @property
    def faults(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.report.get("faults", [])
        return found


async def play(
    cassette: Path, habits: Habits | None = None, *, faults: Sequence[str], **options: Any
) -> Outcome:
    """Serve ``cassette`` with ``faults``, run the client against it, wait until every
    recording was played (the server's own timers included), stop; the final report."""
    options = {"port": 0, "speed": 0, "timeout": 2.0, **options}
    server = ReplayServer(cassette, ReplayOptions.build(faults=list(faults), **options))
    await server.start()
    try:
        run = await run_client(server.url + "/feed", habits)
        played = await server.wait_played(WAIT)
    finally:
        await server.stop()
    return Outcome(run, server.report().to_dict(), played)


async def twice(
    cassette: Path, habits: Habits | None = None, *, faults: Sequence[str], **options: Any
) -> Outcome:
    """:func:`play` twice; the reports must be the same but for times (determinism)."""
    first = await play(cassette, habits, faults=faults, **options)
    second = await play(cassette, habits, faults=faults, **options)
    assert normalise(first.report) == normalise(second.report)
    assert first.run.outcomes == second.run.outcomes
    return first


_SECONDS = re.compile(r"\d+(?:\.\d+)?(?= ?(?:s|ms)\b)")


def normalise(report: dict[str, Any]) -> dict[str, Any]:
    """A report with what depends on the clock or the OS left out, for comparing runs:
    the fault times (``at``, ``t``), durations in ``then`` and in violation messages
    (``after 0.202 s``), float ``expected``/``actual`` values (measured delays), client
    ports, and how many heartbeats the client's own timer sent (only whether it sent
    some is kept)."""
    out: dict[str, Any] = json.loads(json.dumps(report))
    for row in out["connections"]:
        row.pop("client", None)
        beats = row.get("heartbeats")
        if beats:
            for key in ("answered", "muted"):
                if key in beats:
                    beats[key] = beats[key] > 0
    for v in out["violations"]:
        v["message"] = _SECONDS.sub("N", v["message"])
        for key in ("expected", "actual"):
            if isinstance(v[key], float):
                v[key] = "N"
            elif isinstance(v[key], str):
                v[key] = _SECONDS.sub("N", v[key])
    for f in out.get("faults", []):
        f.pop("at")
        f.pop("t")
        f["then"] = _SECONDS.sub("N", f["then"])
    return out


def test_normalise_keeps_what_is_deterministic() -> None:
    report = {
        "passed": False,
        "connections": [{"conn": 1, "client": "127.0.0.1:5", "heartbeats": {"answered": 2}}],
        "violations": [
            {
                "rule": "REPLAY-RECONNECT-TOO-SOON",
                "severity": "error",
                "conn": 1,
                "message": "client reconnected 0.012 s after the server closed with 1013",
                "expected": ">= 1 s",
                "actual": 0.012,
            }
        ],
        "faults": [{"spec": "drop", "conn": 1, "at": 0.1, "t": 0.1, "then": "after 0.3 s"}],
    }
    other = json.loads(json.dumps(report))
    other["connections"][0].update(client="127.0.0.1:6", heartbeats={"answered": 3})
    other["violations"][0].update(
        actual=0.02, message="client reconnected 0.02 s after the server closed with 1013"
    )
    other["faults"][0].update(at=0.2, t=0.15, then="after 0.25 s")
    assert normalise(report) == normalise(other)
    other["violations"][0]["message"] = other["violations"][0]["message"].replace("1013", "1011")
    assert normalise(report) != normalise(other)
    assert normalise(report)["violations"][0]["expected"] == ">= N s"


# -- drop ----------------------------------------------------------------------------------


async def test_drop_a_client_that_reconnects_and_sets_up_again_passes(feed: Path) -> None:
    got = await twice(feed, faults=["drop@after=3"])
    assert got.run.outcomes == ["closed 1006", "done"] and got.run.feed() == [1, 2, 3]
    assert got.played and got.report["passed"] and got.rules == []
    [fault] = got.faults
    assert (fault["conn"], fault["what"]) == (1, "dropped TCP with no Close")
    assert fault["then"].startswith("reconnected after 0.2")  # its backoff
    assert [row["close"]["code"] for row in got.report["connections"]] == [1006, 1000]


async def test_drop_a_client_that_does_not_reconnect_fails(feed: Path) -> None:
    got = await twice(feed, Habits(reconnect=False), faults=["drop@after=3"], expect_reconnect=0.5)
    assert got.run.outcomes == ["closed 1006"]
    # The session timer settles the reconnect that never came, and the run ends by itself.
    assert got.played and not got.report["passed"]
    assert got.rules == [("REPLAY-FAULT-NO-RECONNECT", "error")]
    assert got.faults[0]["then"] == "no reconnect within 0.5 s"


async def test_a_reconnect_that_forgets_to_subscribe_again_fails(feed: Path) -> None:
    habits = Habits(resubscribe=False, attempts=2)
    got = await twice(feed, habits, faults=["drop@after=3"], timeout=0.5)
    assert ("REPLAY-RECONNECT-SETUP", "error") in got.rules
    [setup] = [v for v in got.report["violations"] if v["rule"] == "REPLAY-RECONNECT-SETUP"]
    assert "sent nothing" in setup["message"] and "prices" in setup["message"]
    # The good client re-authenticates and re-subscribes (the drop test above).


async def test_a_reconnect_that_skips_authentication_fails(feed: Path) -> None:
    got = await twice(feed, Habits(reauth=False, attempts=2), faults=["drop@after=3"], timeout=0.5)
    assert ("REPLAY-RECONNECT-SETUP", "error") in got.rules
    assert ("REPLAY-MESSAGE-MISMATCH", "error") in got.rules


# -- close -----------------------------------------------------------------------------------


async def test_close_1013_a_client_that_waits_before_it_reconnects_passes(feed: Path) -> None:
    got = await twice(feed, faults=["close@code=1013,after=3"], reconnect_delay=0.15)
    assert got.run.outcomes == ["closed 1013", "done"]
    assert got.report["passed"] and got.rules == []
    assert got.faults[0]["what"] == "closed with 1013 (try again later)"


async def test_close_1013_a_tight_reconnect_loop_fails(feed: Path) -> None:
    got = await twice(feed, Habits(backoff=0), faults=["close@code=1013,after=3"])
    assert got.run.outcomes == ["closed 1013", "done"]
    assert got.rules == [("REPLAY-RECONNECT-TOO-SOON", "error")]


async def test_close_1012_a_client_that_does_not_come_back_fails(feed: Path) -> None:
    got = await twice(
        feed, Habits(reconnect=False), faults=["close@code=1012,reason=restart,after=1"],
        expect_reconnect=0.3,
    )  # fmt: skip
    assert got.run.outcomes == ["closed 1012"]
    assert got.played and got.rules == [("REPLAY-FAULT-NO-RECONNECT", "error")]


# -- refuse ----------------------------------------------------------------------------------


async def test_refuse_a_client_that_backs_off_passes(feed: Path) -> None:
    got = await twice(feed, faults=["refuse@status=503,times=2"])
    assert got.run.outcomes == ["refused 503", "refused 503", "done"]
    assert got.report["passed"] and got.rules == []
    assert [f["what"] for f in got.faults] == ["refused the upgrade with 503"] * 2
    assert len(got.report["connections"]) == 1  # the refusals used no recording up


async def test_refuse_a_tight_reconnect_loop_is_a_backoff_warning(feed: Path) -> None:
    got = await twice(feed, Habits(backoff=0), faults=["refuse@status=503,times=5"])
    assert got.run.outcomes == ["refused 503"] * 5 + ["done"]
    assert got.rules == [("RFC-RECONNECT-BACKOFF", "warn")]
    assert got.report["passed"]  # a warning


# -- stall -----------------------------------------------------------------------------------


async def test_stall_a_client_that_gives_up_and_retries_passes(feed: Path) -> None:
    got = await twice(feed, Habits(open_timeout=0.3), faults=["stall@times=1"])
    assert got.run.outcomes == ["timeout", "done"]
    assert got.report["passed"] and got.rules == []
    assert got.faults[0]["what"] == "held the upgrade back for good"


async def test_stall_forever_ends_cleanly_when_the_client_gives_up(feed: Path) -> None:
    habits = Habits(open_timeout=0.3, reconnect=False)
    got = await twice(feed, habits, faults=["stall"], expect_reconnect=0.3)
    assert got.run.outcomes == ["timeout"]
    assert got.played and got.rules == [("REPLAY-FAULT-NO-RECONNECT", "error")]
    assert got.faults[0]["then"] == "no reconnect within 0.3 s"


async def test_stall_for_a_while_a_patient_client_passes(feed: Path) -> None:
    got = await twice(feed, Habits(open_timeout=2), faults=["stall@for=300ms"])
    assert got.run.outcomes == ["done"] and got.report["passed"] and got.rules == []
    assert got.faults[0]["what"] == "held the upgrade back 0.3 s"


async def test_stalled_upgrades_count_as_open_sockets_under_wechat(feed: Path) -> None:
    server = ReplayServer(
        feed,
        ReplayOptions.build(
            port=0, speed=0, profile="wechat", faults=["stall@times=6"],
            ignore=["WX-URL-SCHEME", "WX-URL-HOST", "WX-HS-USER-AGENT", "WX-HS-REFERER"],
        ),
    )  # fmt: skip
    await server.start()
    assert server.port is not None
    clients = [await RawClient.connect(server.port) for _ in range(6)]
    try:
        for raw in clients:
            await raw.write(request_bytes("/feed", headers=(("User-Agent", "same-app"),)))
        async with asyncio.timeout(5):
            while len(server.report().faults) < 6:
                await asyncio.sleep(0.01)
        found = {(v.rule, v.severity.value) for v in server.report().violations}
        assert found == {("WX-SOCKET-LIMIT", "warn"), ("WX-SOCKET-LIMIT", "error")}
    finally:
        for raw in clients:
            await raw.aclose()
        await server.stop()


# -- mute-heartbeats -----------------------------------------------------------------------


async def test_mute_heartbeats_a_client_that_gives_up_and_reconnects_passes(feed: Path) -> None:
    got = await twice(feed, faults=["mute-heartbeats@after=3"], speed=1, heartbeat_timeout=0.3)
    assert got.run.outcomes == ["heartbeat dead", "done"] and got.run.feed() == [1, 2, 3]
    assert got.report["passed"] and got.rules == []
    first, again = got.report["connections"]
    assert first["heartbeats"]["muted"] >= 1 and first["close"]["code"] == 1000
    assert again["heartbeats"]["answered"] >= 1  # muted once: answered again
    assert got.faults[0]["then"].startswith("reconnected after 0.2")


async def test_mute_heartbeats_a_client_that_ignores_the_dead_heartbeat_fails(
    feed: Path,
) -> None:
    got = await twice(
        feed, Habits(heartbeat=False), faults=["mute-heartbeats@after=3"], speed=1,
        heartbeat_timeout=0.3,
    )  # fmt: skip
    assert got.run.outcomes == ["done"]  # it never noticed
    assert got.rules == [("REPLAY-HEARTBEAT-DEAD", "error")]
    [dead] = [v for v in got.report["violations"] if v["severity"] == "error"]
    assert dead["message"].startswith("client kept the connection open 0.3 s after")


# -- blackhole -------------------------------------------------------------------------------


async def test_blackhole_a_client_whose_heartbeat_notices_passes(feed: Path) -> None:
    got = await twice(feed, faults=["blackhole@after=3"], speed=1, expect_reconnect=1.5)
    assert got.run.outcomes == ["heartbeat dead", "done"] and got.run.feed() == [1, 2, 3]
    assert got.played and got.report["passed"] and got.rules == []
    # The dead connection: the server dropped it (no Close) --expect-reconnect after.
    dead, again = got.report["connections"]
    assert dead["close"] == {"by": "server", "code": 1006, "reason": ""}
    assert again["close"]["code"] == 1000
    assert got.faults[0]["then"].startswith("reconnected after")


async def test_blackhole_a_client_without_a_heartbeat_fails(feed: Path) -> None:
    habits = Habits(heartbeat=False, reconnect=False)
    got = await twice(feed, habits, faults=["blackhole@after=3"], speed=1, expect_reconnect=0.8)
    # It waited on the dead path until the server dropped it, too late.
    assert got.run.outcomes == ["closed 1006"]
    assert got.played and got.rules == [("REPLAY-FAULT-NO-RECONNECT", "error")]


async def test_blackhole_stops_reading_the_socket(feed: Path) -> None:
    server = ReplayServer(feed, ReplayOptions.build(port=0, speed=0, faults=["blackhole@after=3"]))
    await server.start()
    assert server.port is not None
    raw = await RawClient.connect(server.port)
    try:
        assert (await raw.handshake("/feed")).status == 101
        await raw.send_text(json.dumps(AUTH, separators=(",", ":")))
        await raw.send_text(json.dumps(SUB, separators=(",", ":")))
        frames = [await raw.recv() for _ in range(3)]
        assert [f.payload for f in frames if f is not None][-1] == b'{"n":1}'
        # 64 MiB the server never reads: the socket buffers fill and the write blocks.
        raw.writer.write(bytes(64 * 1024 * 1024))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(raw.writer.drain(), 1.0)
        with pytest.raises(TimeoutError):
            await raw.recv(0.2)  # and nothing comes back
    finally:
        raw.writer.transport.abort()
        await server.stop()


# -- delay, jitter, throttle, fragment -----------------------------------------------------


async def test_delay_holds_every_server_message_back(feed: Path) -> None:
    got = await twice(feed, faults=["delay@ms=200"])
    assert got.run.outcomes == ["done"] and got.report["passed"] and got.rules == []
    [attempt] = got.run.attempts
    first, *rest = attempt.arrivals
    assert first - attempt.started >= 0.2  # authed, 200 ms late
    assert rest[0] - first >= 0.2  # subbed, 200 ms after the sub that it answers
    assert got.faults[0]["what"] == "held every server message back 200 ms"


async def test_jitter_holds_messages_back_by_a_seeded_random_amount(feed: Path) -> None:
    gaps = []
    for _ in range(2):
        got = await play(feed, faults=["jitter@ms=300,seed=7"])
        assert got.run.outcomes == ["done"] and got.report["passed"]
        [attempt] = got.run.attempts
        gaps.append([b - a for a, b in zip(attempt.arrivals, attempt.arrivals[1:], strict=False)])
    # Each message's extra delay is drawn from the seed: the same gaps in both runs.
    for one, other in zip(*gaps, strict=True):
        assert abs(one - other) < 0.08, gaps
    assert all(0 <= g <= 0.3 + 0.08 for g in gaps[0][2:]), gaps  # n=1..3: 0-300 ms each
    assert normalise(got.report)["faults"][0]["what"] == "held every server message back 0-300 ms"


async def test_throttle_paces_the_bytes_over_time(make_cassette: CassetteFactory) -> None:
    cassette = make_cassette(feed_records(pad=4000))  # three 4 KB feed messages
    for _ in range(2):
        server = ReplayServer(
            cassette, ReplayOptions.build(port=0, speed=0, faults=["throttle@rate=8000"])
        )
        await server.start()
        assert server.port is not None
        raw = await RawClient.connect(server.port)
        try:
            assert (await raw.handshake("/feed")).status == 101
            start = time.monotonic()
            await raw.send_text(json.dumps(AUTH, separators=(",", ":")))
            await raw.send_text(json.dumps(SUB, separators=(",", ":")))
            reads: list[tuple[float, int]] = []
            total = 0
            async with asyncio.timeout(5):
                while total < 12_000:
                    data = await raw.reader.read(65536)
                    assert data
                    total += len(data)
                    reads.append((time.monotonic() - start, total))
        finally:
            raw.writer.transport.abort()
            await server.stop()
        # 8,000 bytes at once (the one-second burst), then the other ~4,100 at 8,000
        # bytes a second, in small steps: about 0.5 s, a dozen reads. The bounds hold
        # however late this loop wakes: never more than the burst plus the rate times the
        # time so far (and a frame header), never all of it before the rate allows.
        first = reads[0][0]
        burst = max(n for t, n in reads if t < first + 0.1)
        assert burst >= 7_000, reads
        assert all(n <= 8_000 + 8_000 * t + 300 for t, n in reads), reads
        assert 0.4 <= reads[-1][0] <= 3.0, reads
        assert len([t for t, _ in reads if t >= first + 0.1]) >= 5, reads
    got = await twice(cassette, Habits(ping_every=5), faults=["throttle@rate=8000"])
    assert got.run.outcomes == ["done"] and got.report["passed"] and got.rules == []
    [attempt] = got.run.attempts
    assert attempt.arrivals[-1] - attempt.arrivals[0] >= 0.4


async def test_fragment_splits_server_messages_on_the_wire(feed: Path) -> None:
    server = ReplayServer(feed, ReplayOptions.build(port=0, speed=0, faults=["fragment@size=16"]))
    await server.start()
    assert server.port is not None
    raw = await RawClient.connect(server.port)
    try:
        assert (await raw.handshake("/feed")).status == 101
        await raw.send_text(json.dumps(AUTH, separators=(",", ":")))
        frames = []
        while not frames or not frames[-1].fin or frames[-1].opcode == OpCode.PING:
            frame = await raw.recv()
            assert frame is not None
            frames.append(frame)
    finally:
        raw.writer.transport.abort()
        await server.stop()
    data = [f for f in frames if f.opcode != OpCode.PING]
    assert data[0].opcode == OpCode.TEXT and not data[0].fin
    assert all(f.opcode == OpCode.CONTINUATION for f in data[1:]) and data[-1].fin
    assert all(len(f.payload) == 16 for f in data[:-1])
    assert b"".join(f.payload for f in data) == json.dumps(AUTHED, separators=(",", ":")).encode()
    # And a real client reassembles them.
    got = await twice(feed, faults=["fragment@size=16"])
    assert got.run.outcomes == ["done"] and got.report["passed"] and got.rules == []


# -- live injection, and the CLI ---------------------------------------------------------------


async def test_inject_drops_an_open_connection_and_the_client_comes_back(feed: Path) -> None:
    server = ReplayServer(feed, ReplayOptions.build(port=0, speed=1, timeout=2))
    await server.start()
    try:
        client = asyncio.ensure_future(run_client(server.url + "/feed", Habits(ping_every=5)))
        async with asyncio.timeout(5):  # until it has authenticated and subscribed
            while not any(r.messages_matched >= 2 for r in server.report().connections):
                await asyncio.sleep(0.01)
        server.inject("drop")  # mid-recording: {"n":2} and {"n":3} are still ahead
        run = await client
        assert await server.wait_played(WAIT)
    finally:
        await server.stop()
    assert run.outcomes == ["closed 1006", "done"] and run.feed() == [1, 2, 3]
    report = server.report().to_dict()
    assert report["passed"] and [f["spec"] for f in report["faults"]] == ["drop"]
    assert report["faults"][0]["then"].startswith("reconnected after 0.2")


@pytest.mark.parametrize(
    ("habits", "code", "rules"),
    [
        (Habits(), 0, []),
        (Habits(reconnect=False), 1, [("REPLAY-FAULT-NO-RECONNECT", "error")]),
    ],
    ids=["reconnects", "does-not"],
)
async def test_wstape_replay_fault_flags(
    tmp_path: Path, feed: Path, habits: Habits, code: int, rules: list[tuple[str, str]]
) -> None:
    reports = []
    for n in range(2):
        report = tmp_path / f"report-{n}.json"
        with replay(
            tmp_path, feed, report, "--speed", "0", "--fault", "drop@after=3",
            "--expect-reconnect", "0.5",
        ) as rep:  # fmt: skip
            await run_client(f"ws://127.0.0.1:{rep.port}/feed", habits)
            assert rep.finish() == code, rep.stderr
        reports.append(read_report(report))
        assert "fault drop@after=3: dropped TCP with no Close" in rep.stderr
    assert normalise(reports[0]) == normalise(reports[1])
    found = {(v["rule"], v["severity"]) for v in reports[0]["violations"]}
    assert sorted(found - {("REPLAY-HEARTBEAT-DETECTED", "info")}) == rules
    assert reports[0]["faults"][0]["spec"] == "drop@after=3"


async def test_a_client_that_gives_up_on_unanswered_websocket_pings_and_reconnects_passes(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    # QA: with mute-heartbeats, a websockets client whose keepalive Ping went unanswered
    # closed (1011, keepalive ping timeout) and reconnected, as it should: the server had
    # stopped waiting for it (REPLAY-UNPLAYED "the client left"), and the reconnect was
    # refused. Now it is expected back and served the recording again.
    records = [
        opening(1, "/rpc"),
        c(1, 0.01, '{"op":"sum","args":[1,2]}'),
        s(1, 0.02, '{"result":3}'),
        c(1, 0.03, '{"op":"sum","args":[2,2]}'),
        s(1, 0.04, '{"result":4}'),
        close(1, 0.05, Side.CLIENT, 1000, "done"),
    ]
    url_args = ("--fault", "mute-heartbeats", "--speed", "0", "--json")
    async with Replay(tmp_path, make_cassette(records), *url_args) as replay:
        url = f"ws://127.0.0.1:{replay.port}/rpc"
        async with websockets.connect(url, ping_interval=0.1, ping_timeout=0.2) as ws:
            await ws.send('{"op":"sum","args":[1,2]}')
            assert await asyncio.wait_for(ws.recv(), 5) == '{"result":3}'
            # (its second request is due, but its keepalive gives up first)
            await asyncio.wait_for(ws.wait_closed(), 10)
        async with websockets.connect(url, ping_interval=None) as again:
            for request, reply in (("[1,2]", "3"), ("[2,2]", "4")):
                await again.send('{"op":"sum","args":' + request + "}")
                assert await asyncio.wait_for(again.recv(), 5) == '{"result":' + reply + "}"
            await again.close(1000, "done")
        code, out, err = await replay.finish()
    assert code == 0, err
    report = json.loads(out)
    (fault,) = report["faults"]
    assert "WebSocket Pings" in fault["what"] and "reconnected" in fault["then"], fault
    assert not [v for v in report["violations"] if v["severity"] == "error"]
