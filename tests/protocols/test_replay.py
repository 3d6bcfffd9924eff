"""Replaying real protocols: ``wstape replay CASSETTE --speed 0`` with no other option, to
the same client that was recorded. Each test asks for what a user expects: the client
completes its flow and the replay exits 0.

Before the protocol codecs, correlation and timed heartbeats, 7 of these 9 failed (the
measured reasons are in the history of this file and in docs/protocols.md);
bench/protocols_today.py prints the whole table, variations and negative clients included.
"""

from __future__ import annotations

import pytest

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
