"""Replaying real protocols: ``wstape replay CASSETTE --speed 0`` with no other option, to
the same client that was recorded. Each test asks for what a user expects: the client
completes its flow and the replay exits 0.

What fails today is marked ``xfail(strict=True)`` with the reason measured here (see
bench/protocols_today.py for the whole table), so each mark flips to an error the day the
replay handles that protocol, and has to be removed then.
"""

from __future__ import annotations

import pytest

from tests.protocols import harness
from tests.protocols.conftest import session_params
from tests.protocols.test_record import TESTED

pytestmark = pytest.mark.slow

FAILS_TODAY: dict[str, str] = {
    "socketio/python-socketio": (
        "python-socketio adds t=<timestamp> to the query of every connection: the replay "
        "refuses it with 404 (REPLAY-UNMATCHED-CONNECTION) and never exits by itself"
    ),
    "socketio/socket.io-client": (
        "the recorded client '3' (pong) is always followed by a server '2' (ping), so the "
        "replay takes it for a heartbeat and answers every pong with a ping at once: "
        "thousands of pings a second instead of one every pingInterval"
    ),
    "graphql-ws/graphql-ws": (
        "operation ids are random UUIDs: REPLAY-MESSAGE-MISMATCH on subscribe, and the "
        "recorded next/complete carry the recorded id, which the client ignores"
    ),
    "mqtt/mqtt.js": (
        "MQTT.js's random client id and first packet id: REPLAY-MESSAGE-MISMATCH, and the "
        "recorded SUBACK/PUBACK carry the recorded packet ids"
    ),
    "json-rpc/rpc-websockets": (
        "UUID request ids: REPLAY-MESSAGE-MISMATCH, and the recorded replies carry the "
        "recorded ids (the client's call times out)"
    ),
    "stomp/stompjs server-beats": (
        "at --speed 0 the recorded server heart-beats are all sent at once, then nothing: "
        "the client's heart-beat check closes the socket after 2 s"
    ),
    "uuid-json/websockets uuid-json": (
        "UUID request ids: REPLAY-MESSAGE-MISMATCH, and the recorded replies carry the recorded ids"
    ),
}
"""Passing today: paho-mqtt (empty client id, packet ids from 1, client-sent PINGREQ;
paho drops TCP without a Close, a RFC-CLOSE-HANDSHAKE warning) and stompjs with the
client's heart-beats (the client sends them at its own pace, matched like any message)."""


def params() -> list[object]:
    out = []
    for p in session_params(TESTED):
        sid = p.values[0]
        marks = list(p.marks)
        if sid in FAILS_TODAY:
            marks.append(pytest.mark.xfail(strict=True, reason=FAILS_TODAY[sid]))
        out.append(pytest.param(sid, id=sid, marks=marks))
    return out


@pytest.mark.parametrize("sid", params())
def test_replay_to_the_same_client(sid: str, cycle: harness.Cycle) -> None:
    assert cycle.recording.ok, cycle.recording.live.result
    replay = cycle.replay
    assert replay is not None
    assert replay.client.ok, (replay.client.result, replay.violations(), replay.output[-3000:])
    assert replay.exit_code == 0, (replay.exit_code, replay.violations(), replay.output[-3000:])
    assert replay.report is not None and replay.report["passed"] is True
