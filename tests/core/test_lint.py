"""check_records: the rules over recorded records, streamed."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.rules.test_handshake import APPID, KEY, make_open
from wstape.core.lint import (
    CloseChecks,
    _group,
    _open_headers,
    check_records,
    client_group,
    close_violations,
    iter_violations,
)
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.core.rules import Profile, RuleConfig, Severity, Violation, check_socket_limit
from wstape.core.rules.close import _PROXY_REFUSALS, proxy_refusal

RFC = RuleConfig()
BROWSER = RuleConfig(profile=Profile.BROWSER)
WECHAT = RuleConfig(profile=Profile.WECHAT, appid=APPID)

KEYS = [
    "AQIDBAUGBwgJCgsMDQ4PEA==",
    "AgMEBQYHCAkKCwwNDg8QEQ==",
    "AwQFBgcICQoLDA0ODxAREg==",
    "BAUGBwgJCgsMDQ4PEBESEw==",
    "BQYHCAkKCwwNDg8QERITFA==",
    "BgcICQoLDA0ODxAREhMUFQ==",
    "BwgJCgsMDQ4PEBESExQVFg==",
    "CAkKCwwNDg8QERITFBUWFw==",
]


def rules(violations: list[Violation]) -> list[tuple[str, str, int | None]]:
    return [(v.rule, v.severity.value, v.conn) for v in violations]


def msg(conn: int, t: float, side: Side, payload: bytes, opcode: Opcode = Opcode.TEXT) -> Message:
    return Message(conn=conn, t=t, side=side, opcode=opcode, payload=payload)


def chat_session(conn: int = 1, started_at: float = 1000.0, key: str = KEY) -> list[Record]:
    """Scenario 1: wss, wx Referer, chat.v1 echoed, JSON both ways, heartbeats, close 1000."""
    return [
        make_open(conn=conn, started_at=started_at, key=key),
        msg(conn, 0.1, Side.CLIENT, b'{"type":"hello","user":"u1"}'),
        msg(conn, 0.2, Side.SERVER, b'{"type":"welcome"}'),
        msg(conn, 5.0, Side.CLIENT, b'{"type":"ping"}'),
        msg(conn, 5.01, Side.SERVER, b'{"type":"pong"}'),
        Note(conn=conn, text="heartbeat"),
        Close(conn=conn, t=9.0, by=Side.CLIENT, code=1000, reason="bye"),
    ]


@pytest.mark.parametrize("cfg", [RFC, BROWSER, WECHAT])
def test_scenario_1_chat_is_clean(cfg: RuleConfig) -> None:
    assert check_records(chat_session(), cfg) == []


@pytest.mark.parametrize(
    "close",
    [
        Close(conn=1, t=3.0, by=Side.SERVER, code=4003, reason="kicked"),
        Close(conn=1, t=3.0, by=Side.SERVER, code=1013, reason=""),
    ],
)
def test_scenario_5_server_close_is_clean(close: Close) -> None:
    assert check_records([make_open(), close], WECHAT) == []


def _server_close(code: int, reason: str) -> Close:
    return Close(conn=1, t=3.0, by=Side.SERVER, code=code, reason=reason)


@pytest.mark.parametrize(
    ("close", "expected"),
    [
        (_server_close(4000, "x" * 123), []),
        (_server_close(4000, "x" * 124), ["RFC-SRV-CLOSE-REASON"]),
        (_server_close(4000, "é" * 62), ["RFC-SRV-CLOSE-REASON"]),
        (_server_close(1004, "y" * 1000), ["RFC-SRV-CLOSE-CODE", "RFC-SRV-CLOSE-REASON"]),
    ],
)
def test_server_close_reason_length(close: Close, expected: list[str]) -> None:
    assert [v.rule for v in check_records([make_open(), close], RFC)] == expected


def test_server_close_code_rules() -> None:
    found = check_records(
        [make_open(), Close(conn=1, t=3.0, by=Side.SERVER, code=1010, reason="")], RFC
    )
    assert rules(found) == [("RFC-SRV-CLOSE-CODE", "warn", 1)]
    # A server TCP drop (1006, not on the wire) is not a code the server sent.
    dropped = Close(conn=1, t=3.0, by=Side.SERVER, code=1006, on_wire=False)
    assert check_records([make_open(), dropped], RFC) == []


@pytest.mark.parametrize(
    ("close", "cfg", "expected"),
    [
        (Close(1, 2.0, Side.CLIENT, 1001, "away"), BROWSER, [("BROWSER-CLOSE-CODE", "error", 1)]),
        (Close(1, 2.0, Side.CLIENT, 1001, "away"), WECHAT, [("BROWSER-CLOSE-CODE", "warn", 1)]),
        (Close(1, 2.0, Side.CLIENT, 1001, "away"), RFC, []),
        (Close(1, 2.0, Side.CLIENT, 2999, ""), RFC, [("RFC-CLOSE-CODE", "error", 1)]),
        (
            Close(1, 2.0, Side.CLIENT, 1005, "", on_wire=False),
            WECHAT,
            [("WX-CLOSE-DEFAULT", "warn", 1)],
        ),
        (Close(1, 2.0, Side.CLIENT, 1005, "", on_wire=False), RFC, []),
        (
            Close(1, 2.0, Side.CLIENT, 1006, "", on_wire=False),
            RFC,
            [("RFC-CLOSE-HANDSHAKE", "warn", 1)],
        ),
        (
            Close(1, 2.0, Side.CLIENT, 4001, "再" * 42),
            RFC,
            [("RFC-CLOSE-REASON-LENGTH", "error", 1)],
        ),
        (Close(1, 2.0, None, None, "", on_wire=False), WECHAT, []),
    ],
)
def test_client_close_records(close: Close, cfg: RuleConfig, expected: list[object]) -> None:
    assert rules(check_records([make_open(), close], cfg)) == expected


def test_client_text_must_be_utf8_and_server_text_is_not_checked() -> None:
    found = check_records(
        [
            make_open(),
            msg(1, 0.5, Side.SERVER, b"\xff"),
            msg(1, 0.75, Side.CLIENT, b"\xff\xfe", Opcode.BINARY),
            msg(1, 1.5, Side.CLIENT, b"ok\xff"),
        ],
        RFC,
    )
    assert rules(found) == [("RFC-TEXT-UTF8", "error", 1)]
    assert found[0].t == 1.5


def test_handshake_rules_run_on_every_open() -> None:
    bad = make_open(conn=2, method="POST", status=405, set_response={"Sec-WebSocket-Accept": None})
    wrong_accept = make_open(conn=3, key=KEYS[0], set_response={"Sec-WebSocket-Accept": "x"})
    found = check_records([bad, wrong_accept], RFC)
    assert rules(found) == [("RFC-HS-METHOD", "error", 2), ("RFC-SRV-ACCEPT", "error", 3)]


def test_an_open_without_one_host_is_reported_whatever_its_neighbours() -> None:
    """RFC-HS-HOST on recorded opens, each judged alone though they share one shape."""
    found = check_records(
        [
            make_open(conn=1, key=KEYS[0]),
            make_open(conn=2, key=KEYS[1], add_headers=[("Host", "chat.example.com")]),
            make_open(conn=3, key=KEYS[2], set_headers={"Host": None}),
            make_open(conn=4, key=KEYS[3]),
            make_open(conn=5, key=KEYS[4], set_headers={"Host": None}),
        ],
        BROWSER,
    )
    assert rules(found) == [("RFC-HS-HOST", "error", n) for n in (2, 3, 5)]


def test_a_recorded_control_character_in_a_header_value_is_reported() -> None:
    nul = [("Cookie", "s=\x00")]
    found = check_records(
        [
            make_open(conn=1, key=KEYS[0], add_headers=[("Cookie", "s=1")]),
            make_open(conn=2, key=KEYS[1], add_headers=nul),
            make_open(conn=3, key=KEYS[2], add_headers=[("Cookie", "s=2")]),
        ],
        RFC,
    )
    assert rules(found) == [("RFC-HS-HEADER-SYNTAX", "error", 2)]


def test_repeated_key_across_connections() -> None:
    found = check_records([make_open(conn=1), make_open(conn=2), make_open(conn=3)], RFC)
    assert rules(found) == [("RFC-HS-KEY", "warn", 2), ("RFC-HS-KEY", "warn", 3)]


def sockets(n: int, *, overlap: bool, cfg: RuleConfig = WECHAT) -> list[Violation]:
    records: list[Open | Close] = []
    for i in range(n):
        records.append(make_open(conn=i + 1, started_at=1000.0 + i, key=KEYS[i]))
        if not overlap:
            records.append(Close(conn=i + 1, t=0.5, by=Side.CLIENT, code=1000))
    return check_records(records, cfg)


def test_scenario_7_six_sockets_at_once() -> None:
    assert rules(sockets(6, overlap=True)) == [
        ("WX-SOCKET-LIMIT", "warn", 3),
        ("WX-SOCKET-LIMIT", "warn", 4),
        ("WX-SOCKET-LIMIT", "warn", 5),
        ("WX-SOCKET-LIMIT", "error", 6),
    ]
    assert sockets(6, overlap=False) == []
    assert sockets(6, overlap=True, cfg=RFC) == []


def test_socket_limit_counts_per_client() -> None:
    # Different appids are different clients; refused handshakes never open a socket.
    records: list[Open] = []
    for i in range(6):
        referer = f"https://servicewechat.com/wx{i:016x}/0/page-frame.html"
        records.append(make_open(conn=i + 1, key=KEYS[i], set_headers={"Referer": referer}))
    records.append(make_open(conn=7, key=KEYS[6], status=403))
    assert check_records(records, RuleConfig(profile=Profile.WECHAT)) == []


def test_client_group() -> None:
    assert client_group(make_open()) == ("appid", APPID)
    anon = make_open(set_headers={"Referer": None, "User-Agent": "ua"}, client="[::1]:5000")
    assert client_group(anon) == ("client", "::1", "ua")
    assert client_group(make_open(set_headers={"Referer": None}, client="10.0.0.9:1"))[1] == (
        "10.0.0.9"
    )


_NAMES = st.sampled_from(
    [b"Referer", b"referer", b"USER-AGENT", b"User-Agent", b"Sec-WebSocket-Key", b"X-Other"]
)


@settings(max_examples=200)
@given(st.lists(st.tuples(_NAMES, st.binary(max_size=8)), max_size=8))
def test_open_headers_read_as_request_header(headers: list[tuple[bytes, bytes]]) -> None:
    # _on_open reads its three headers in one pass: the first of each, decoded, exactly
    # as Open.request_header gives them (so the key and the client group stay the same).
    op = replace(make_open(), request_headers=tuple(headers))
    found = _open_headers(op)
    for name in ("Sec-WebSocket-Key", "Referer", "User-Agent"):
        assert found.get(name.lower().encode()) == op.request_header(name)
    assert _group(op, found.get(b"referer"), found.get(b"user-agent")) == client_group(op)


def reconnect_run(gaps: list[float]) -> list[Violation]:
    """Scenario 6: the server drops TCP (1006), the client reconnects after ``gaps``."""
    records: list[Open | Close] = [
        make_open(conn=1, started_at=1000.0, key=KEYS[0]),
        Close(conn=1, t=10.0, by=Side.SERVER, code=1006, on_wire=False),
    ]
    at = 1010.0
    for i, gap in enumerate(gaps):
        at += gap
        # Each reconnect is refused: the backend is still down.
        records.append(make_open(conn=i + 2, started_at=at, key=KEYS[i + 1], status=503))
    return check_records(records, RFC)


def test_scenario_6_backoff_is_clean() -> None:
    assert reconnect_run([1.0, 2.0, 4.0, 8.0, 16.0]) == []


def test_scenario_6_reconnect_storm_warns_once() -> None:
    found = reconnect_run([0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert rules(found) == [("RFC-RECONNECT-BACKOFF", "warn", 5)]


def test_reconnects_without_an_abnormal_close_are_not_checked() -> None:
    records: list[Open | Close] = []
    for i in range(6):
        records.append(make_open(conn=i + 1, started_at=1000.0 + i * 0.1, key=KEYS[i]))
        records.append(Close(conn=i + 1, t=0.05, by=Side.CLIENT, code=1000))
    assert check_records(records, RFC) == []


def test_lint_streams() -> None:
    """The first violation comes out before the rest of the input is read."""

    def records() -> Iterator[Open | Message]:
        yield make_open()
        yield msg(1, 0.1, Side.CLIENT, b"\xff")
        raise AssertionError("read past the first violation")

    first = next(iter_violations(records(), RFC))
    assert (first.rule, first.severity) == ("RFC-TEXT-UTF8", Severity.ERROR)


def test_lint_keeps_no_messages() -> None:
    """20 MiB of client messages stream through in far less memory than they take."""
    payload = b'{"pad":"' + b"x" * 1000 + b'"}'

    def records() -> Iterator[Open | Message]:
        yield make_open()
        for i in range(20000):
            yield msg(1, i * 0.001, Side.CLIENT, payload + b" " * (i % 2))

    tracemalloc.start()
    try:
        assert check_records(records(), WECHAT) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak


def _naive_open_counts(records: list[Record]) -> list[int]:
    """The socket count at each accepted open, the slow way (every connection scanned)."""
    conns: dict[int, list[float | None]] = {}
    counts = []
    for r in records:
        if isinstance(r, Open) and r.accepted:
            for c in [
                c for c, (_, end) in conns.items() if end is not None and end <= r.started_at
            ]:
                del conns[c]
            conns[r.conn] = [r.started_at, None]
            counts.append(len(conns))
        elif isinstance(r, Close) and r.conn in conns:
            conns[r.conn][1] = conns[r.conn][0] + r.t  # type: ignore[operator]
    return counts


@given(
    events=st.lists(
        st.tuples(st.booleans(), st.integers(1, 6), st.integers(0, 20), st.integers(0, 5)),
        max_size=40,
    )
)
@settings(max_examples=200, deadline=None)
def test_socket_counts_match_a_scan_of_every_connection(
    events: list[tuple[bool, int, int, int]],
) -> None:
    # Opens (some reusing an id) and closes at random times: the counts the rule sees
    # are those of a pass over every connection, without the pass.
    records: list[Record] = []
    for is_open, conn, at, length in events:
        if is_open:
            records.append(make_open(conn=conn, started_at=1000.0 + at, key=KEYS[conn]))
        else:
            records.append(Close(conn=conn, t=float(length), by=Side.CLIENT, code=1000))
    limit = RuleConfig(profile=Profile.WECHAT, appid=APPID)
    found = [v for v in check_records(records, limit) if v.rule == "WX-SOCKET-LIMIT"]
    expected = [n for n in _naive_open_counts(records) if n > 2]
    assert [int(v.message.split()[0]) for v in found] == expected


def test_many_open_connections_are_checked_in_linear_time() -> None:
    # 20,000 connections never closed: a pass over the open ones per open would be 2e8 steps.
    records = (
        make_open(conn=i, started_at=1000.0 + i, key=KEYS[i % len(KEYS)]) for i in range(20_000)
    )
    found = sum(1 for v in iter_violations(records, RFC) if v.rule == "WX-SOCKET-LIMIT")
    assert found == 0  # (the RFC profile has no socket limit; the count still runs)


@pytest.mark.parametrize(
    ("code", "reason", "found"),
    [
        (
            1007,
            "Error decoding CLOSE reason: 'utf-8' codec can't decode byte 0xe8 in position "
            "122: unexpected end of data",
            [("RFC-CLOSE-REASON-UTF8", "error")],
        ),
        (1002, "CLOSE with 1 byte payload", [("RFC-CLOSE-PAYLOAD", "error")]),
        (1002, "server received unexpected unmasked frame", [("RFC-FRAME-MASK", "error")]),
        (1002, "Control frame with payload len > 125", [("RFC-FRAME-CONTROL", "error")]),
        # 1014 is among the codes wsproto calls unknown, and RFC 6455 allows it
        (1002, "CLOSE with unknown reserved code", [("RFC-CLOSE-CODE", "warn")]),
        # a client's own 1002 with a reason of its own is judged as its Close
        (1002, "protocol error", []),
    ],
)
def test_a_close_that_is_the_proxys_verdict_judges_the_refused_frame(
    code: int, reason: str, found: list[tuple[str, str]]
) -> None:
    records: list[Record] = [make_open(), Close(1, 1.0, Side.CLIENT, code, reason)]
    got = [(v.rule, v.severity.value) for v in check_records(records, RuleConfig())]
    assert got == found
    # under browser the proxy's 1002/1007 is no close() call either
    browser = check_records(records, RuleConfig(profile=Profile.BROWSER))
    assert ("BROWSER-CLOSE-CODE" in {v.rule for v in browser}) == (not found)


def test_a_server_frame_the_proxy_refused_is_no_server_close_code() -> None:
    records: list[Record] = [
        make_open(),
        Close(1, 1.0, Side.SERVER, 1002, "client received unexpected masked frame"),
    ]
    assert check_records(records, RuleConfig()) == []


PROXY_REASONS = [
    "CLOSE with 1 byte payload",
    "CLOSE with invalid code",
    "Error decoding CLOSE reason: x",
    "'utf-8' codec can't decode byte 0xff",
    "Invalid opcode 3",
]
CONFIGS = [
    RFC,
    BROWSER,
    WECHAT,
    RuleConfig(profile=Profile.WECHAT, platform="devtools"),
    RuleConfig(profile=Profile.BROWSER, ignore=frozenset({"BROWSER-CLOSE-CODE"})),
]
closes = st.builds(
    Close,
    conn=st.integers(0, 5),
    t=st.floats(0, 1e6) | st.none(),
    by=st.sampled_from([Side.CLIENT, Side.SERVER, None]),
    code=st.sampled_from([1000, 1001, 1002, 1005, 1006, 1007, 1010, 1015, 3000, 4999, 5000, 0])
    | st.integers(0, 0xFFFF)
    | st.none()
    | st.booleans(),
    reason=st.sampled_from(["", "bye", "é" * 70, "x" * 129, "\ud800", *PROXY_REASONS])
    | st.text(max_size=140),
    on_wire=st.booleans(),
)


@given(st.lists(closes, max_size=12), st.sampled_from(CONFIGS))
def test_closes_alike_get_the_violations_of_a_close_checked_in_full(
    seq: list[Close], cfg: RuleConfig
) -> None:
    # CloseChecks keeps the verdict per way of closing: each close still gets exactly
    # what close_violations finds in it, its own conn and t included.
    checks = CloseChecks(cfg)
    for close in seq + seq:  # (the second time round, from what was kept)
        assert checks.check(close) == close_violations(close, cfg)


def test_close_checks_keep_a_bounded_number_of_ways_of_closing() -> None:
    checks = CloseChecks(RFC)
    for code in range(3000, 3000 + 3 * CloseChecks.MEMO):
        close = Close(1, 0.5, Side.CLIENT, code, "r")
        assert checks.check(close) == close_violations(close, RFC)
        assert len(checks._seen) <= CloseChecks.MEMO
    long = Close(1, 0.5, Side.CLIENT, 1000, "x" * (CloseChecks.MAX_REASON + 1))
    before = dict(checks._seen)
    assert checks.check(long) == close_violations(long, RFC) != []
    assert checks._seen == before  # a long reason is never kept


@given(st.integers(0, 12), st.integers(1, 8), st.sampled_from([None, 0.0, 2.5]))
def test_socket_limit_is_quiet_below_both_limits(open_now: int, most: int, t: float | None) -> None:
    cfg = RuleConfig(profile=Profile.WECHAT, max_sockets=most)
    found = check_socket_limit(open_now, cfg, 3, t)
    assert (found == []) == (open_now <= 2 and open_now <= most)
    assert all(v.rule == "WX-SOCKET-LIMIT" and v.conn == 3 and v.t == t for v in found)


@given(
    st.integers(990, 1010) | st.none() | st.booleans(),
    st.sampled_from(PROXY_REASONS) | st.text(max_size=30),
)
def test_proxy_refusal_is_the_pair_of_code_and_wording(code: int | None, reason: str) -> None:
    expected = next(
        (
            (rule, sev)
            for want, start, rule, sev in _PROXY_REFUSALS
            if code == want and reason.startswith(start)
        ),
        None,
    )
    assert proxy_refusal(code, reason) == expected


def test_a_close_code_that_only_equals_an_int_is_checked_in_full() -> None:
    checks = CloseChecks(RFC)
    for side in (Side.CLIENT, Side.SERVER):
        for code in (1, True):
            close = Close(1, 0.5, side, code)
            assert repr(checks.check(close)) == repr(close_violations(close, RFC))
