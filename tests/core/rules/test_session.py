"""Session rules (socket limit, reconnect backoff, connect timeout) and replay builders."""

from __future__ import annotations

import json

import pytest

from wstape.core.matchers import MAX_DIFF_LINES, match
from wstape.core.model import Message, Opcode, Side
from wstape.core.rules import (
    PAYLOAD_PREVIEW_BYTES,
    Profile,
    ReconnectEpisode,
    RuleConfig,
    Severity,
    check_connect_timeout,
    check_reconnects,
    check_socket_limit,
    client_silent,
    message_mismatch,
    send_type,
    unmatched_connection,
    unplayed,
)

RFC = RuleConfig()
WECHAT = RuleConfig(profile=Profile.WECHAT)


@pytest.mark.parametrize(
    ("open_now", "cfg", "expected"),
    [
        (1, WECHAT, None),
        (2, WECHAT, None),
        (3, WECHAT, Severity.WARN),
        (5, WECHAT, Severity.WARN),
        (6, WECHAT, Severity.ERROR),  # scenario 7: the sixth socket
        (6, RFC, None),
        (6, RuleConfig(profile=Profile.BROWSER), None),
        (2, RuleConfig(profile=Profile.WECHAT, max_sockets=1), Severity.ERROR),
        (6, RuleConfig(profile=Profile.WECHAT, max_sockets=10), Severity.WARN),
    ],
)
def test_socket_limit(open_now: int, cfg: RuleConfig, expected: Severity | None) -> None:
    result = check_socket_limit(open_now, cfg, conn=6)
    assert [v.severity for v in result] == ([] if expected is None else [expected])
    assert all(v.rule == "WX-SOCKET-LIMIT" and v.actual == open_now for v in result)


@pytest.mark.parametrize(
    ("times", "warned"),
    [
        ([], False),
        ([0.0, 0.5, 1.0], False),
        ([0.0, 0.5, 1.0, 1.5], True),
        ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], True),
        ([0.0, 1.0, 2.0, 4.0, 8.0, 16.0], False),  # exponential backoff
        ([0.0, 0.6, 1.2, 1.8, 2.4], True),
        ([0.0, 0.7, 1.4, 2.1, 2.8], False),  # every window of 4 spans more than 2 s
        ([1.5, 0.0, 1.0, 0.5], True),  # order does not matter
        ([100.0, 100.0, 100.0, 100.0], True),
    ],
)
def test_reconnect_backoff(times: list[float], warned: bool) -> None:
    result = check_reconnects(times, RFC)
    assert bool(result) is warned
    if warned:
        (v,) = result
        assert (v.rule, v.severity) == ("RFC-RECONNECT-BACKOFF", Severity.WARN)
        assert isinstance(v.actual, int) and v.actual > 3


def test_reconnect_reports_the_busiest_window() -> None:
    (v,) = check_reconnects([0, 0.1, 0.2, 0.3, 0.4, 0.5, 10.0], RFC)
    assert v.actual == 6
    assert "6 reconnects within 0.50 s" in v.message


def test_reconnect_episode_warns_once_and_keeps_a_bounded_window() -> None:
    episode = ReconnectEpisode()
    found = [episode.reconnected(t, RFC, conn=7) for t in (0.0, 0.3, 0.6, 0.9, 1.2, 1.5)]
    assert [len(f) for f in found] == [0, 0, 0, 1, 0, 0]
    assert found[3][0].rule == "RFC-RECONNECT-BACKOFF" and found[3][0].conn == 7
    assert len(episode.times) == 4
    slow = ReconnectEpisode()
    assert not any(slow.reconnected(t, RFC) for t in (0.0, 1.0, 2.0, 4.0, 8.0))


@pytest.mark.parametrize(
    ("delay", "gave_up", "warned"),
    [
        (120.0, 60.0, False),
        (120.0, 57.0, False),  # within tolerance
        (120.0, 5.0, True),  # gave up far too early
        (120.0, None, True),  # never gave up
        (120.0, 90.0, True),  # waited far too long
        (10.0, None, False),  # handshake completed before any timeout
        (10.0, 3.0, True),  # gave up before the (short) delay was over
        (10.0, 30.0, False),  # closed after the handshake had completed
    ],
)
def test_connect_timeout(delay: float, gave_up: float | None, warned: bool) -> None:
    result = check_connect_timeout(delay, gave_up, WECHAT, conn=1)
    assert [(v.rule, v.severity) for v in result] == (
        [("WX-CONNECT-TIMEOUT", Severity.WARN)] if warned else []
    )
    assert check_connect_timeout(delay, gave_up, RFC) == []


def test_connect_timeout_honours_a_custom_timeout() -> None:
    assert check_connect_timeout(30.0, 10.0, WECHAT, timeout=10.0) == []
    assert check_connect_timeout(30.0, 10.0, WECHAT) != []


# -- replay-only builders -----------------------------------------------------------------------

EXPECTED = Message(conn=3, t=1.25, side=Side.CLIENT, opcode=Opcode.TEXT, payload=b'{"type":"ping"}')


def test_unmatched_connection() -> None:
    (v,) = unmatched_connection("/nope", RFC, conn=9, known_paths=["/chat", "/feed", "/chat"])
    assert (v.rule, v.severity, v.conn) == ("REPLAY-UNMATCHED-CONNECTION", Severity.ERROR, 9)
    assert "/nope" in v.message and "/chat, /feed" in v.message
    assert v.expected == ["/chat", "/feed"]


def test_message_mismatch_carries_both_messages_and_the_diff() -> None:
    diff = '$.type: expected "ping", got "pong"'
    (v,) = message_mismatch(3, EXPECTED, Opcode.TEXT, b'{"type":"pong"}', diff, RFC, t=2.0)
    assert (v.rule, v.severity, v.conn, v.t) == (
        "REPLAY-MESSAGE-MISMATCH",
        Severity.ERROR,
        3,
        2.0,
    )
    assert diff in v.message
    data = v.to_json()
    assert data["expected"] == {"opcode": "text", "size": 15, "payload": '{"type":"ping"}'}
    assert isinstance(data["actual"], dict) and data["actual"]["diff"] == diff
    json.dumps(data)


def test_message_mismatch_says_how_many_more_differences_there_are() -> None:
    """The message names the first difference and counts the rest (the json matcher
    lists each one; its cap at MAX_DIFF_LINES still counts those it left out)."""
    expected = Message(1, 0.5, Side.CLIENT, Opcode.TEXT, b'{"a":1,"b":2,"c":3}')
    found = match("json", expected, Opcode.TEXT, b'{"a":9,"b":8,"c":7}')
    (v,) = message_mismatch(1, expected, Opcode.TEXT, b"{}", found.diff, RFC)
    assert "$.a: expected 1, got 9 (and 2 more differences)" in v.message
    many = {f"k{i}": i for i in range(MAX_DIFF_LINES + 5)}
    payload = json.dumps(many).encode()
    other = Message(1, 0.5, Side.CLIENT, Opcode.TEXT, payload)
    found = match("json", other, Opcode.TEXT, json.dumps({k: -1 for k in many}).encode())
    (v,) = message_mismatch(1, other, Opcode.TEXT, b"{}", found.diff, RFC)
    assert f"(and {MAX_DIFF_LINES + 4} more differences)" in v.message
    (v,) = message_mismatch(1, expected, Opcode.TEXT, b"{}", "$.a: one", RFC)
    assert v.message.endswith("$.a: one")


def test_message_mismatch_truncates_huge_payloads() -> None:
    big = b"\x00" * (1 << 20)
    (v,) = message_mismatch(3, EXPECTED, Opcode.BINARY, big, "", RFC)
    assert isinstance(v.actual, dict)
    assert v.actual["size"] == 1 << 20
    assert v.actual["truncated"] is True
    assert v.actual["payload_hex"] == "00" * PAYLOAD_PREVIEW_BYTES  # binary shows as hex
    assert "payload differs" in v.message


def test_client_silent() -> None:
    (v,) = client_silent(3, EXPECTED, 5.0, RFC)
    assert (v.rule, v.severity) == ("REPLAY-CLIENT-SILENT", Severity.ERROR)
    assert "5 s" in v.message and "ping" in v.message


def test_unplayed() -> None:
    (v,) = unplayed(None, "connection 2 (/feed)", RFC)
    assert (v.rule, v.severity, v.conn) == ("REPLAY-UNPLAYED", Severity.ERROR, None)
    (w,) = unplayed(None, "connection 2 (/feed)", RFC, allow_partial=True)
    assert w.severity is Severity.WARN
    assert "connection 2 (/feed)" in v.message


def test_send_type() -> None:
    assert send_type(3, EXPECTED, Opcode.TEXT, WECHAT) == []
    (v,) = send_type(3, EXPECTED, Opcode.BINARY, WECHAT)
    assert (v.rule, v.severity, v.expected, v.actual) == (
        "WX-SEND-TYPE",
        Severity.ERROR,
        "text",
        "binary",
    )
    # RULES.md gives WX-SEND-TYPE an unqualified "error": it runs in every profile.
    assert send_type(3, EXPECTED, Opcode.BINARY, RFC) != []


def test_replay_builders_obey_ignore() -> None:
    cfg = RuleConfig(ignore=frozenset({"REPLAY-UNPLAYED", "REPLAY-UNMATCHED-CONNECTION"}))
    assert unplayed(1, "x", cfg) == []
    assert unmatched_connection("/x", cfg) == []
