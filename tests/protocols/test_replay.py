"""Replaying real protocols: ``wstape replay CASSETTE --speed 0`` with no other option, to
the same client that was recorded. Each test asks for what a user expects: the client
completes its flow and the replay exits 0.

Before the protocol codecs, correlation and timed heartbeats, 7 of these 9 failed (the
measured reasons are in the history of this file and in docs/protocols.md);
bench/protocols_today.py prints the whole table, variations and negative clients included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.browser import skip_unless_installed
from tests.protocols import harness
from tests.protocols.conftest import session_params
from tests.protocols.test_record import TESTED

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sid", session_params(TESTED))
def test_replay_to_the_same_client(sid: str, cycle: harness.Cycle) -> None:
    assert cycle.recording.ok, cycle.recording.live.result
    replay = cycle.replay
    assert replay is not None
    assert replay.client.ok, (replay.client.result, replay.violations(), replay.output[-3000:])
    assert replay.exit_code == 0, (replay.exit_code, replay.violations(), replay.output[-3000:])
    assert replay.report is not None and replay.report["passed"] is True


NEGATIVE = [
    ("socketio/socket.io-client", "different", "REPLAY-MESSAGE-MISMATCH"),
    ("socketio/python-socketio", "quit-early", "REPLAY-UNPLAYED"),
    ("graphql-ws/graphql-ws", "different", "REPLAY-MESSAGE-MISMATCH"),
    ("graphql-ws/graphql-ws", "quit-early", "REPLAY-UNPLAYED"),
    ("mqtt/mqtt.js", "different", "REPLAY-MESSAGE-MISMATCH"),
    ("mqtt/paho-mqtt", "quit-early", "REPLAY-UNPLAYED"),
    ("json-rpc/rpc-websockets", "quit-early", "REPLAY-UNPLAYED"),
    ("stomp/stompjs server-beats", "different", "REPLAY-MESSAGE-MISMATCH"),
    ("uuid-json/websockets uuid-json", "quit-early", "REPLAY-UNPLAYED"),
]


@pytest.mark.parametrize(
    ("sid", "variant", "rule"),
    [
        pytest.param(
            sid,
            v,
            r,
            id=f"{sid}-{v}",
            marks=skip_unless_installed(harness.session(sid).missing()),
        )
        for sid, v, r in NEGATIVE
    ],
)
def test_a_client_that_deviates_fails_with_its_rule(
    sid: str, variant: str, rule: str, cycle: harness.Cycle, protocol_workdir: Path
) -> None:
    """The normal recording, replayed to a client that sends another event/query/topic or
    leaves half way: the replay's exit code alone says so (1), under the right rule."""
    assert cycle.recording.ok, cycle.recording.live.result
    workdir = protocol_workdir / "negative" / f"{sid}-{variant}".replace("/", "_")
    replay = harness.replay_session(
        cycle.session, cycle.recording.cassette, workdir, variant=variant
    )
    assert replay.exit_code == 1, (replay.exit_code, replay.violations(), replay.output[-2000:])
    assert rule in replay.violations(), replay.violations()
    assert replay.report is not None and replay.report["passed"] is False
