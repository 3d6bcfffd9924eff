"""Report notes: options that changed nothing in the run say so (they do not fail it)."""

from __future__ import annotations

from tests.core.replay.test_session import CHAT, FakeClient, c, opening, s, session_for
from wstape.core.frames import OpCode, encode_close_body
from wstape.core.matchers import parse_path
from wstape.core.model import Close, Message, Opcode, Side
from wstape.core.replay.correlate import Correlator
from wstape.core.replay.session import ReplaySession
from wstape.core.report import junit_xml, to_json

SUM = [
    opening(1),
    c(1, 0.1, '{"requestId":7,"op":"sum","args":[1,2]}'),
    s(1, 0.2, '{"requestId":7,"result":3}'),
    Close(1, 1.0, Side.CLIENT, 1000, ""),
]
PLAIN = [
    opening(1),
    c(1, 0.1, '{"type":"hello"}'),
    s(1, 0.2, '{"type":"welcome"}'),
    c(1, 0.5, '{"type":"say","text":"hi"}'),
    s(1, 0.6, '{"type":"said","text":"hi"}'),
    Close(1, 1.0, Side.CLIENT, 1000, ""),
]


def play_sum(session: ReplaySession, request_id: int = 7) -> FakeClient:
    client = FakeClient(session)
    client.handshake()
    client.send(f'{{"requestId":{request_id},"op":"sum","args":[1,2]}}')
    client.close(encode_close_body(1000))
    return client


def notes(session: ReplaySession) -> list[str]:
    return list(session.report("x.msgpack").notes)


# -- --correlate ----------------------------------------------------------------------------


def test_a_correlate_path_no_recorded_client_message_has_is_a_note() -> None:
    session = session_for(SUM, speed=0, correlate=("$.notapath", "$.requestId"))
    client = play_sum(session, request_id=8)
    assert client.texts() == ['{"requestId":8,"result":3}']  # $.requestId did its work
    assert notes(session) == [
        "--correlate $.notapath matched no value in the recorded client messages played, "
        "so it changed nothing"
    ]
    report = session.report("x.msgpack")
    assert report.passed
    assert report.to_dict()["notes"] == notes(session)
    assert '"notes": [' in to_json(report)
    assert "note: --correlate $.notapath" in junit_xml(report)


def test_a_correlate_path_the_recording_has_is_no_note_even_when_unchanged() -> None:
    session = session_for(SUM, speed=0, correlate=("$.requestId", "$.args[*]"))
    play_sum(session)  # the client kept the recorded value: the path still matched
    assert notes(session) == []
    assert "notes" not in session.report("x.msgpack").to_dict()


def test_a_correlate_path_counts_as_matched_on_any_played_connection() -> None:
    records = [
        *SUM[:3],
        SUM[3],
        opening(2, "/other"),
        c(2, 0.1, '{"type":"hello"}'),
        s(2, 0.2, '{"type":"welcome"}'),
        Close(2, 1.0, Side.CLIENT, 1000, ""),
    ]
    session = session_for(records, speed=0, correlate=("$.requestId",))
    play_sum(session)
    other = FakeClient(session)
    other.handshake("/other")
    assert notes(session) == []  # (connection 2, still open, never had it: no matter)
    other.send('{"type":"hello"}')
    other.close(encode_close_body(1000))
    assert notes(session) == []


def test_the_correlator_names_its_unmatched_paths() -> None:
    paths = [parse_path(p) for p in ("$.id", "$.nope", "$.items[*].id")]
    correlator = Correlator(paths=paths, uuids=False)
    recorded = Message(1, 0.0, Side.CLIENT, Opcode.TEXT, b'{"id":1,"items":[{"id":2}]}')
    assert correlator.unmatched_paths == {0, 1, 2}
    correlator.learn(recorded, Opcode.TEXT, b'{"id":5,"items":[{"id":2}]}')
    assert correlator.unmatched_paths == {1}


def test_no_note_without_correlate_or_before_any_recording_played() -> None:
    session = session_for(SUM, speed=0)
    play_sum(session)
    assert notes(session) == []
    session = session_for(SUM, speed=0, correlate=("$.notapath",))
    assert notes(session) == []  # nothing played: nothing to say about the path


# -- mute-heartbeats on a connection with nothing to mute -----------------------------------


def play_plain(session: ReplaySession, *, ping: bool = False) -> FakeClient:
    client = FakeClient(session)
    client.handshake()
    client.send('{"type":"hello"}')
    if ping:
        client.send(b"are you there", OpCode.PING)
    client.send('{"type":"say","text":"hi"}')
    client.close(encode_close_body(1000))
    return client


def test_mute_heartbeats_with_nothing_to_mute_says_so_and_did_not_strike() -> None:
    session = session_for(PLAIN, speed=0, faults=("mute-heartbeats@conn=1",))
    play_plain(session)
    report = session.report("x.msgpack")
    assert report.faults == ()  # it struck nothing
    assert list(report.notes) == [
        "fault mute-heartbeats@conn=1 on conn 1 had nothing to mute: the recording has no "
        "heartbeats (none declared, detected or of its protocol), and the client sent no "
        "WebSocket Ping; it tested nothing"
    ]
    assert report.passed


def test_mute_heartbeats_with_no_heartbeat_of_the_recording_still_mutes_websocket_pings() -> None:
    session = session_for(PLAIN, speed=0, faults=("mute-heartbeats",))
    client = play_plain(session, ping=True)
    assert [f.opcode for f in client.frames].count(OpCode.PONG) == 0
    report = session.report("x.msgpack")
    assert [f["what"] for f in report.faults] == ["stopped answering the client's WebSocket Pings"]
    assert report.notes == ()


def test_mute_heartbeats_where_the_recording_has_heartbeats_strikes_as_before() -> None:
    session = session_for(CHAT, speed=0, faults=("mute-heartbeats",), allow_partial=True)
    client = FakeClient(session)
    client.handshake()
    client.send('{"type":"hello"}')
    client.close(encode_close_body(1000))
    report = session.report("x.msgpack")
    assert [f["what"] for f in report.faults] == ["stopped answering the client's heartbeats"]
    assert report.notes == ()
