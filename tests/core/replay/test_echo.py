"""Echo mode without I/O: EchoSession + LiveConnection driven by a fake client and clock."""

from __future__ import annotations

import time

import pytest

from tests.core.replay.test_session import MASK, FakeClient
from wstape.core.frames import OpCode, encode_close_body, encode_frame
from wstape.core.replay.echo import ECHO_CASSETTE, EchoScript, EchoSession
from wstape.core.replay.options import PlayOptions
from wstape.core.rules import Profile, RuleConfig, Utf8Stream


def echo_session(cfg: RuleConfig | None = None, **options: object) -> EchoSession:
    return EchoSession(cfg or RuleConfig(), PlayOptions(**options))  # type: ignore[arg-type]


def rules(session: EchoSession) -> list[str]:
    return [v.rule for v in session.violations]


def data_frames(client: FakeClient) -> list[tuple[int, bytes]]:
    return [(f.opcode, f.payload) for f in client.frames if f.opcode in (1, 2)]


def frame(opcode: int, payload: bytes, **kw: bool) -> bytes:
    return encode_frame(opcode, payload, mask_key=MASK, **kw)


def test_any_path_is_accepted_and_every_message_echoed() -> None:
    session = echo_session()
    client = FakeClient(session)
    assert client.handshake("/any/path?x=1") == 101
    assert b"Server: wstape-echo" in client.head
    client.send("héllo")
    client.send(b"\x00\xff\x10", OpCode.BINARY)
    client.send("")
    assert data_frames(client) == [(1, "héllo".encode()), (2, b"\x00\xff\x10"), (1, b"")]
    assert all(f.fin and not f.masked and not f.rsv1 for f in client.frames)
    assert isinstance(client.live.script, EchoScript)
    client.close(encode_close_body(1000, "bye"))
    assert client.close_frame() == (1000, b"")  # the code is echoed
    assert client.hung_up and session.violations == []
    report = session.report(ECHO_CASSETTE).to_dict()
    assert report["passed"] is True
    [conn] = report["connections"]
    assert conn["conn"] == 1 and conn["path"] == "/any/path"
    assert (conn["messages_expected"], conn["messages_matched"]) == (3, 3)
    assert conn["close"] == {"by": "client", "code": 1000, "reason": "bye"}


def test_connections_are_numbered_and_never_all_played() -> None:
    session = echo_session()
    clients = [FakeClient(session, client=f"10.0.0.1:{4000 + i}") for i in range(3)]
    for i, client in enumerate(clients):
        assert client.handshake(f"/p{i}") == 101
    assert [cl.live.conn for cl in clients] == [1, 2, 3]
    for client in clients:
        client.close(b"")
    assert client.close_frame() == (None, b"")  # an empty Close gets an empty Close
    assert not session.all_played()
    session.finish()
    assert session.violations == []
    assert [c.conn for c in session.report("x").connections] == [1, 2, 3]


def test_first_offered_subprotocol_is_chosen() -> None:
    session = echo_session(RuleConfig(profile=Profile.BROWSER))
    client = FakeClient(session)
    assert client.handshake("/", b"Sec-WebSocket-Protocol: chat.v2, chat.v1") == 101
    assert b"Sec-WebSocket-Protocol: chat.v2" in client.head
    assert session.violations == []  # no BROWSER-SRV-SUBPROTOCOL-ECHO, no "changed" warning


def test_fragments_are_reassembled_with_pings_in_between() -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    client.write(frame(OpCode.TEXT, b"frag", fin=False))
    client.write(frame(OpCode.PING, b"p1"))
    client.write(frame(OpCode.CONTINUATION, "mént".encode()[:2], fin=False))
    client.write(frame(OpCode.CONTINUATION, "mént".encode()[2:], fin=True))
    assert [(f.opcode, f.payload) for f in client.frames] == [
        (OpCode.PONG, b"p1"),
        (OpCode.TEXT, "fragmént".encode()),
    ]
    assert session.violations == []


@pytest.mark.parametrize(
    ("data", "rule", "code"),
    [
        (encode_frame(OpCode.TEXT, b"x"), "RFC-FRAME-MASK", 1002),
        (frame(OpCode.TEXT, b"x", rsv2=True), "RFC-FRAME-RSV", 1002),
        (frame(0x3, b""), "RFC-FRAME-OPCODE", 1002),
        (frame(OpCode.PING, b"x" * 126), "RFC-FRAME-CONTROL", 1002),
        (frame(OpCode.CONTINUATION, b"x"), "RFC-FRAME-FRAGMENTS", 1002),
        (frame(OpCode.TEXT, b"\xce\xba\xff"), "RFC-TEXT-UTF8", 1007),
        (frame(OpCode.CLOSE, b"\x03"), "RFC-CLOSE-PAYLOAD", 1002),
        (frame(OpCode.CLOSE, encode_close_body(1005)), "RFC-CLOSE-CODE", 1002),
        (frame(OpCode.CLOSE, encode_close_body(1000, b"\xff")), "RFC-CLOSE-REASON-UTF8", 1007),
    ],
)
def test_protocol_errors_are_reported_and_fail_the_connection(
    data: bytes, rule: str, code: int
) -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    client.write(data)
    assert rule in rules(session)
    close = client.close_frame()
    assert close is not None and close[0] == code
    assert data_frames(client) == []  # nothing was echoed


def test_invalid_utf8_fails_fast_before_the_message_ends() -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    client.write(frame(OpCode.TEXT, "κόσμε".encode(), fin=False))
    assert client.close_frame() is None
    # ED A0: a UTF-16 surrogate; no continuation can make it valid.
    client.write(frame(OpCode.CONTINUATION, b"\xed\xa0", fin=False))
    assert rules(session) == ["RFC-TEXT-UTF8"]
    assert client.close_frame() == (1007, b"RFC-TEXT-UTF8")


def test_a_text_message_cut_inside_a_character_fails_at_its_end() -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    client.write(frame(OpCode.TEXT, b"ok\xe2\x82", fin=False))
    assert client.close_frame() is None
    client.write(frame(OpCode.CONTINUATION, b"", fin=True))
    assert rules(session) == ["RFC-TEXT-UTF8"]
    assert "cut inside a character" in session.violations[0].message


def test_ignored_utf8_rule_echoes_the_bytes() -> None:
    session = echo_session(RuleConfig(ignore=frozenset({"RFC-TEXT-UTF8"})))
    client = FakeClient(session)
    client.handshake("/")
    client.write(frame(OpCode.TEXT, b"\xff", fin=False) + frame(OpCode.CONTINUATION, b"\xfe"))
    assert data_frames(client) == [(1, b"\xff\xfe")]
    assert session.violations == []


def test_data_after_the_clients_close_is_reported_not_echoed() -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    client.write(
        frame(OpCode.TEXT, b"frag1", fin=False)
        + frame(OpCode.CLOSE, encode_close_body(1000))
        + frame(OpCode.CONTINUATION, b"frag2")
        + frame(OpCode.PING, b"late")
    )
    assert rules(session) == ["RFC-DATA-AFTER-CLOSE"]
    assert [f.opcode for f in client.frames] == [OpCode.CLOSE]  # no echo, no Pong
    assert client.close_frame() == (1000, b"")


def test_message_over_max_size_is_1009() -> None:
    session = echo_session(max_size=1000)
    client = FakeClient(session)
    client.handshake("/")
    client.write(frame(OpCode.BINARY, b"x" * 600, fin=False))
    client.write(frame(OpCode.CONTINUATION, b"x" * 600))
    assert client.close_frame() == (1009, b"RFC-MESSAGE-TOO-BIG")
    assert rules(session) == ["RFC-MESSAGE-TOO-BIG"]


def test_utf8_stream() -> None:
    s = Utf8Stream()
    text = "κόσμε 😀".encode()
    assert all(s.feed(text[i : i + 1]) for i in range(len(text)))
    assert s.feed(b"", final=True)
    bad = Utf8Stream()
    assert bad.feed(b"\xf0\x9f") and not bad.feed(b"\x28")  # invalid continuation at once
    assert not bad.feed(b"ok")  # stays invalid
    assert not Utf8Stream().feed(b"\xed\xa0")
    assert Utf8Stream().feed(b"\xed\x9f")  # U+D7xx is fine so far
    assert not Utf8Stream().feed(b"\xe2\x82", final=True)


def _echo_fragmented(total: int, size: int) -> float:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    chunk = "é".encode() * (size // 2)
    n = total // len(chunk)
    frames = [frame(OpCode.TEXT, chunk, fin=False)]
    frames += [frame(OpCode.CONTINUATION, chunk, fin=False)] * (n - 2)
    frames.append(frame(OpCode.CONTINUATION, chunk, fin=True))
    wire = b"".join(frames)
    start = time.perf_counter()
    for i in range(0, len(wire), 65536):  # as asyncio delivers it, 64 KiB at a time
        client.live.receive_data(wire[i : i + 65536], 0.0)
    out = client.live.data_to_send()
    elapsed = time.perf_counter() - start
    assert len(out) == 10 + n * len(chunk)
    assert session.violations == []
    return elapsed


def test_a_message_in_16k_small_fragments_comes_back_whole() -> None:
    # Autobahn 9.3.1 sends 4 MiB in 64-byte fragments. That reassembly stays linear is a
    # figure of bench/bench_hostile.py (item 6), not a timed test.
    _echo_fragmented(1024 * 1024, 64)


def test_a_16_mib_frame_in_one_piece_or_many() -> None:
    session = echo_session()
    client = FakeClient(session)
    client.handshake("/")
    payload = bytes(range(256)) * (16 * 4096)
    wire = frame(OpCode.BINARY, payload)
    for i in range(0, len(wire), 256 * 1024):
        client.live.receive_data(wire[i : i + 256 * 1024], 0.0)
    out = client.live.data_to_send()
    assert out[:2] == b"\x82\x7f" and out[10:] == payload
