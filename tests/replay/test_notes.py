"""Report notes through the real CLI: an option that changed nothing in the run says so,
in the human summary and in the JSON report, and the run still passes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets

from tests.replay.conftest import CassetteFactory, c, close, opening, s
from tests.replay.test_cli import Replay
from wstape.core.model import Side

SUM = [
    opening(1, "/rpc"),
    c(1, 0.01, {"requestId": 7, "op": "sum", "args": [1, 2]}),
    s(1, 0.02, {"requestId": 7, "result": 3}),
    close(1, 0.05, Side.CLIENT, 1000, "done"),
]


async def sum_client(port: int, request_id: int) -> object:
    url = f"ws://127.0.0.1:{port}/rpc"
    async with websockets.connect(url, compression=None, ping_interval=None) as ws:
        doc = {"requestId": request_id, "op": "sum", "args": [1, 2]}
        await ws.send(json.dumps(doc, separators=(",", ":")))
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.close(1000, "done")
    return reply


async def test_a_correlate_path_that_matched_nothing_is_a_note(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    cassette = make_cassette(SUM)
    async with Replay(tmp_path, cassette, "--correlate", "$.reqId", "--json") as replay:
        assert await sum_client(replay.port, 7) == {"requestId": 7, "result": 3}
        code, out, err = await replay.finish()
    assert code == 0, err
    line = (
        "--correlate $.reqId matched no value in the recorded client messages played, "
        "so it changed nothing"
    )
    assert replay.report()["notes"] == [line]
    assert json.loads(out)["notes"] == [line]
    assert f"note: {line}" in err.splitlines()


async def test_a_correlate_path_the_recording_has_is_no_note(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(SUM), "--correlate", "$.requestId") as replay:
        assert await sum_client(replay.port, 8) == {"requestId": 8, "result": 3}
        code, _, err = await replay.finish()
    assert code == 0, err
    assert "notes" not in replay.report() and "note:" not in err


async def test_mute_heartbeats_on_a_recording_without_heartbeats_says_it_tested_nothing(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    cassette = make_cassette(SUM)
    async with Replay(tmp_path, cassette, "--fault", "mute-heartbeats@conn=1") as replay:
        assert await sum_client(replay.port, 7) == {"requestId": 7, "result": 3}
        code, _, err = await replay.finish()
    assert code == 0, err
    report = replay.report()
    assert "faults" not in report  # it struck nothing
    line = (
        "fault mute-heartbeats@conn=1 on conn 1 had nothing to mute: the recording has no "
        "heartbeats (none declared, detected or of its protocol), and the client sent no "
        "WebSocket Ping; it tested nothing"
    )
    assert report["notes"] == [line]
    assert f"note: {line}" in err.splitlines()
    assert "muted heartbeats" not in err and "stopped answering" not in err


async def test_a_fault_that_never_struck_is_a_note(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    # QA: drop@after=50 on a recording of one server message passed with no word: the run
    # had tested nothing. (A fault that could never strike on the cassette is exit 2.)
    async with Replay(tmp_path, make_cassette(SUM), "--fault", "drop@after=50") as replay:
        assert await sum_client(replay.port, 7) == {"requestId": 7, "result": 3}
        code, _, err = await replay.finish()
    assert code == 0, err
    line = (
        "fault drop@after=50 never struck: no connection it aims at reached its point; "
        "it tested nothing"
    )
    assert replay.report()["notes"] == [line]
    assert "faults" not in replay.report()
    assert f"note: {line}" in err.splitlines()


async def test_a_fault_that_struck_is_no_note(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    records = [*SUM[:3], s(1, 0.03, {"requestId": 7, "done": True}), SUM[3]]
    async with Replay(tmp_path, make_cassette(records), "--fault", "close@after=1") as replay:
        url = f"ws://127.0.0.1:{replay.port}/rpc"
        async with websockets.connect(url, compression=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"requestId": 7, "op": "sum", "args": [1, 2]}))
            await asyncio.wait_for(ws.wait_closed(), 5)
        _, _, err = await replay.finish()
    report = replay.report()
    assert [f["spec"] for f in report["faults"]] == ["close@after=1"], err
    assert "notes" not in report
