"""permessage-deflate in the core: the handshake's decision (RFC 7692 §7.1 against the
recording), and the endpoint with it: frames judged as sent, messages inflated within
--max-size, ours deflated, the zlib state dropped at the end."""

from __future__ import annotations

import random
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.replay.test_protocol import Handler, close_of, endpoint, frame, sent
from wstape.core.deflate import MAX_RATIO, PROBE_FROM, Compression, negotiate, recorded_params
from wstape.core.frames import OpCode
from wstape.core.model import Opcode
from wstape.core.replay.protocol import MessageRoom, ServerProtocol, State
from wstape.core.rules import RuleConfig

CHROME = "permessage-deflate; client_max_window_bits"
RECORDED = "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"
PMD = "permessage-deflate"
DEFAULTS = "permessage-deflate; server_max_window_bits=12"


@pytest.mark.parametrize(
    ("offers", "recorded", "mode", "header"),
    [
        # The recorded parameters, where the offer allows them.
        ([CHROME], RECORDED, "auto", RECORDED),
        ([PMD], RECORDED, "auto", f"{PMD}; server_no_context_takeover"),
        # The offer's own limits are honoured (the server may only lower them).
        (
            ["permessage-deflate; client_max_window_bits=9; server_max_window_bits=10"],
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
            "auto",
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
        ),
        # An offer zlib cannot honour is skipped; the client's next offer is taken.
        (
            ["permessage-deflate; server_max_window_bits=8", "permessage-deflate"],
            "permessage-deflate",
            "auto",
            "permessage-deflate",
        ),
        # auto: a recording that declined declines again; on: accept with defaults.
        ([CHROME], None, "auto", None),
        ([CHROME], None, "on", f"{DEFAULTS}; client_max_window_bits=12"),
        ([PMD], None, "on", DEFAULTS),
        ([CHROME], RECORDED, "off", None),
        # Nothing offered, something else offered, a malformed offer.
        ([], RECORDED, "on", None),
        (["x-webkit-deflate-frame"], RECORDED, "on", None),
        (["permessage-deflate; server_max_window_bits=99"], RECORDED, "on", None),
        # A recorded answer wstape cannot use (redacted, bad values): the defaults.
        ([PMD], f"{PMD}; bogus", "auto", DEFAULTS),
    ],
)  # fmt: skip
def test_negotiate(offers: list[str], recorded: str | None, mode: str, header: str | None) -> None:
    agreed = negotiate(offers, recorded, Compression(mode))
    assert (agreed.header if agreed else None) == header


def test_recorded_params_come_from_the_101() -> None:
    headers = ((b"Server", b"x"), (b"Sec-WebSocket-Extensions", RECORDED.encode()))
    assert recorded_params(headers) == RECORDED
    assert recorded_params(((b"sec-websocket-extensions", b"<redacted>"),)) is None
    assert recorded_params(()) is None


# -- the endpoint ------------------------------------------------------------------------


def deflating(
    header: str = "permessage-deflate",
    cfg: RuleConfig | None = None,
    max_message_size: int = 1 << 20,
) -> tuple[ServerProtocol, Handler]:
    agreed = negotiate([header], header, Compression.AUTO)
    assert agreed is not None
    handler = Handler()
    proto = ServerProtocol(
        handler, cfg or RuleConfig(), conn=1, now=0.0, close_timeout=5.0,
        max_frame_size=1 << 20, max_message_size=max_message_size, deflate=agreed.deflate,
    )  # fmt: skip
    return proto, handler


def compress(data: bytes, *, wbits: int = 15) -> bytes:
    c = zlib.compressobj(wbits=-wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_a_compressed_message_reaches_the_handler_inflated() -> None:
    proto, handler = deflating()
    text = "héllo wörld ".encode() * 200
    proto.receive_data(frame(OpCode.TEXT, compress(text), rsv1=True), 0.0)
    proto.receive_data(frame(OpCode.BINARY, b"plain"), 0.0)  # uncompressed is allowed too
    assert handler.messages == [(Opcode.TEXT, text), (Opcode.BINARY, b"plain")]
    assert handler.violations == []


def test_a_fragmented_compressed_message_has_rsv1_on_its_first_frame_only() -> None:
    proto, handler = deflating()
    data = compress(b"abc" * 1000)
    proto.receive_data(frame(OpCode.TEXT, data[:10], fin=False, rsv1=True), 0.0)
    proto.receive_data(frame(OpCode.CONTINUATION, data[10:]), 0.0)
    assert handler.messages == [(Opcode.TEXT, b"abc" * 1000)]
    proto.receive_data(frame(OpCode.TEXT, data[:10], fin=False, rsv1=True), 0.0)
    proto.receive_data(frame(OpCode.CONTINUATION, data[10:], rsv1=True), 0.0)
    assert handler.rules == ["RFC-FRAME-RSV"]
    assert close_of(sent(proto))[0] == 1002


def test_rsv1_on_a_control_frame_is_still_a_violation() -> None:
    proto, handler = deflating()
    proto.receive_data(frame(OpCode.PING, b"x", rsv1=True), 0.0)
    assert handler.rules == ["RFC-FRAME-RSV"]


def test_without_deflate_rsv1_is_a_violation() -> None:
    proto, handler = endpoint()
    proto.receive_data(frame(OpCode.TEXT, compress(b"x"), rsv1=True), 0.0)
    assert handler.rules == ["RFC-FRAME-RSV"]


def test_a_text_message_is_judged_inflated() -> None:
    proto, handler = deflating()
    proto.receive_data(frame(OpCode.TEXT, compress(b"ok \xff\xfe"), rsv1=True), 0.0)
    assert handler.rules == ["RFC-TEXT-UTF8"]
    assert close_of(sent(proto))[0] == 1007


def test_a_compression_bomb_fails_with_1009_within_max_size() -> None:
    limit = 1 << 20
    proto, handler = deflating(max_message_size=limit)
    bomb = compress(b"\x00" * (64 << 20))  # 64 MiB in about 64 KiB
    assert len(bomb) < 100_000
    proto.receive_data(frame(OpCode.BINARY, bomb, rsv1=True), 0.0)
    assert handler.messages == []
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]
    assert "--max-size" in handler.violations[0].message
    code, reason = close_of(sent(proto))
    assert (code, reason) == (1009, b"RFC-MESSAGE-TOO-BIG")
    assert proto._msg_buf is None and proto._msg_first is None  # nothing kept


@pytest.mark.parametrize("size", [1000, 1001])
def test_the_limit_counts_inflated_bytes_exactly(size: int) -> None:
    proto, handler = deflating(max_message_size=1000)
    proto.receive_data(frame(OpCode.BINARY, compress(b"a" * size), rsv1=True), 0.0)
    if size <= 1000:
        assert handler.messages == [(Opcode.BINARY, b"a" * size)]
    else:
        assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]


def test_the_limit_holds_across_fragments() -> None:
    proto, handler = deflating(max_message_size=1000)
    data = compress(b"a" * 1500)
    proto.receive_data(frame(OpCode.BINARY, data[: len(data) // 2], fin=False, rsv1=True), 0.0)
    proto.receive_data(frame(OpCode.CONTINUATION, data[len(data) // 2 :]), 0.0)
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]


def test_data_that_does_not_inflate_is_rfc_deflate_data() -> None:
    proto, handler = deflating()
    proto.receive_data(frame(OpCode.TEXT, b"\xff\xff\xff\xff garbage", rsv1=True), 0.0)
    assert handler.rules == ["RFC-DEFLATE-DATA"]
    assert close_of(sent(proto))[0] == 1002
    assert proto.deflate is None


def test_ignoring_rfc_deflate_data_still_fails_the_unreadable_message() -> None:
    proto, handler = deflating(cfg=RuleConfig(ignore=frozenset({"RFC-DEFLATE-DATA"})))
    proto.receive_data(frame(OpCode.TEXT, b"\xff\xff\xff\xff garbage", rsv1=True), 0.0)
    assert handler.rules == []
    assert close_of(sent(proto))[0] == 1002


def test_our_messages_go_out_compressed_rsv1_on_the_first_fragment() -> None:
    proto, _ = deflating()
    proto.send_message(Opcode.TEXT, b"hello " * 100, 0.0)
    proto.send_message(Opcode.BINARY, b"x" * 3000, 0.0, fragment=1000)
    frames = sent(proto)
    data = [f for f in frames if f.opcode != OpCode.PING]
    assert [(f.opcode, f.rsv1, f.fin) for f in data] == [
        (OpCode.TEXT, True, True),
        (OpCode.BINARY, True, False),
        (OpCode.CONTINUATION, False, False),
        (OpCode.CONTINUATION, False, True),
    ]
    d = zlib.decompressobj(wbits=-15)
    assert d.decompress(data[0].payload + b"\x00\x00\xff\xff") == b"hello " * 100
    rest = b"".join(f.payload for f in data[1:])
    assert d.decompress(rest + b"\x00\x00\xff\xff") == b"x" * 3000
    assert len(data[0].payload) < 100


def test_context_takeover_carries_across_messages() -> None:
    proto, handler = deflating()
    c = zlib.compressobj(wbits=-15)
    for _ in range(3):
        out = c.compress(b"same text again ") + c.flush(zlib.Z_SYNC_FLUSH)
        proto.receive_data(frame(OpCode.TEXT, out[:-4], rsv1=True), 0.0)
    assert handler.messages == [(Opcode.TEXT, b"same text again ")] * 3


def test_the_zlib_state_goes_with_the_connection() -> None:
    proto, _ = deflating()
    proto.receive_data(frame(OpCode.CLOSE, b"\x03\xe8"), 0.0)
    assert proto.state is State.CLOSED and proto.deflate is None
    proto, _ = deflating()
    proto.connection_lost(0.0)
    assert proto.deflate is None


def test_no_deflate_no_change_on_the_wire() -> None:
    proto, _ = endpoint()
    proto.send_message(Opcode.TEXT, b"hello", 0.0)
    assert proto.data_to_send() == b"\x81\x05hello"


@given(
    st.lists(
        st.text(alphabet='permssion-dflatcxwb_=;," 0123456789\t', max_size=80).map(
            lambda t: "permessage-deflate" + t
        ),
        max_size=4,
    ),
    st.sampled_from([None, RECORDED, "permessage-deflate; server_max_window_bits=8", PMD + ";="]),
)
def test_hostile_offers_never_raise(offers: list[str], recorded: str | None) -> None:
    """Whatever a client offers (and whatever was recorded), negotiate answers or declines."""
    agreed = negotiate(offers, recorded, Compression.ON)
    if agreed is not None:
        assert agreed.header.startswith("permessage-deflate")


PMD_NO_TAKEOVER = "permessage-deflate; client_no_context_takeover"


def _text(size: int, seed: int) -> bytes:
    # Compresses about 3:1 (a bomb's 1000:1 is the other test), so the frame is big enough
    # to be looked ahead at (wstape.core.deflate.PROBE_FROM).
    return bytes(random.Random(seed).choices(b"abcdefgh", k=size))


@pytest.mark.parametrize("header", ["permessage-deflate", PMD_NO_TAKEOVER])
def test_big_messages_inflate_whole_after_the_look_ahead(header: str) -> None:
    proto, handler = deflating(header, max_message_size=64 << 20)
    c = zlib.compressobj(wbits=-15)
    sent_ = [_text(2 << 20, seed) for seed in (1, 2)]
    for data in sent_:
        if header != "permessage-deflate":
            c = zlib.compressobj(wbits=-15)
        out = (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]
        assert len(out) * MAX_RATIO > PROBE_FROM and len(out) < 1 << 20
        proto.receive_data(frame(OpCode.BINARY, out, rsv1=True), 0.0)
    assert handler.rules == []
    assert handler.messages == [(Opcode.BINARY, data) for data in sent_]


def test_a_bomb_under_a_big_limit_is_refused_before_it_is_built() -> None:
    proto, handler = deflating(max_message_size=64 << 20)
    bomb = compress(b"\x00" * (128 << 20))  # 128 MiB in about 128 KiB
    tracemalloc.start()
    try:
        proto.receive_data(frame(OpCode.BINARY, bomb, rsv1=True), 0.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]
    assert peak < 4 << 20, peak  # a chunk at a time, never the 64 MiB the limit allows


def _final(data: bytes, zdict: bytes = b"") -> bytes:
    """``data`` as a whole DEFLATE stream, ended by a BFINAL block (RFC 7692 §7.2.3.4)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, **({"zdict": zdict} if zdict else {}))
    return c.compress(data) + c.flush(zlib.Z_FINISH)


@pytest.mark.parametrize("header", [PMD, f"{PMD}; client_no_context_takeover"])
def test_a_client_that_ends_each_message_with_a_final_block_is_read(header: str) -> None:
    # QA: every message after the first inflated to b"" (zlib had reached the stream's end
    # and kept what followed aside): a legal client failed as REPLAY-MESSAGE-MISMATCH.
    proto, handler = deflating(header)
    texts = [b"hello", b"x" * 100_000, "wörld ".encode() * 50]
    for text in texts:
        proto.receive_data(frame(OpCode.TEXT, _final(text), rsv1=True), 0.0)
    assert handler.messages == [(Opcode.TEXT, t) for t in texts]
    assert handler.violations == []


def test_a_final_block_may_end_a_fragment_and_the_next_stream_see_the_window() -> None:
    proto, handler = deflating()
    first = b"the same words again and again "
    data = _final(first) + _final(first * 3, zdict=first)
    proto.receive_data(frame(OpCode.TEXT, data[:20], fin=False, rsv1=True), 0.0)
    proto.receive_data(frame(OpCode.CONTINUATION, data[20:]), 0.0)
    proto.receive_data(frame(OpCode.TEXT, compress(b"then a sync flush"), rsv1=True), 0.0)
    assert handler.messages == [(Opcode.TEXT, first * 4), (Opcode.TEXT, b"then a sync flush")]


@pytest.mark.parametrize("header", [PMD, f"{PMD}; client_no_context_takeover"])
def test_junk_after_a_final_block_is_rfc_deflate_data(header: str) -> None:
    proto, handler = deflating(header)
    proto.receive_data(frame(OpCode.TEXT, _final(b"ok") + b"\xff\xfe junk", rsv1=True), 0.0)
    assert handler.rules == ["RFC-DEFLATE-DATA"]
    assert close_of(sent(proto))[0] == 1002


def test_what_follows_a_final_block_is_held_to_the_limit() -> None:
    proto, handler = deflating(max_message_size=50_000)
    proto.receive_data(frame(OpCode.TEXT, _final(b"a") + _final(b"b" * 60_000), rsv1=True), 0.0)
    assert handler.rules == ["RFC-MESSAGE-TOO-BIG"]


def _sharing(room: MessageRoom, header: str = PMD) -> tuple[ServerProtocol, Handler]:
    agreed = negotiate([header], header, Compression.AUTO)
    assert agreed is not None
    handler = Handler()
    proto = ServerProtocol(
        handler, RuleConfig(), conn=1, now=0.0, close_timeout=5.0, max_frame_size=1 << 20,
        max_message_size=1 << 20, deflate=agreed.deflate, room=room,
    )  # fmt: skip
    return proto, handler


def test_unfinished_messages_of_all_connections_share_one_room() -> None:
    # QA: a few KiB of compressed fragments, never finished, inflate to --max-size on each
    # of a thousand connections. Together they hold at most the room: past it, 1013.
    room = MessageRoom(300_000)
    bomb = compress(b"x" * 200_000)
    first, _ = _sharing(room)
    first.receive_data(frame(OpCode.TEXT, bomb, fin=False, rsv1=True), 0.0)
    assert room.held == 200_000 and first.unfinished == (1, 200_000)
    second, handler = _sharing(room)
    second.receive_data(frame(OpCode.TEXT, bomb, fin=False, rsv1=True), 0.0)
    assert close_of(sent(second))[0] == 1013 and room.held == 200_000
    assert any("unfinished messages of all connections" in line for line in handler.lines)
    first.receive_data(frame(OpCode.CONTINUATION, b""), 0.0)
    assert room.held == 0 and first.unfinished is None  # (the message was handed on)
    third, _ = _sharing(room)
    third.receive_data(frame(OpCode.BINARY, b"abc", fin=False), 0.0)
    assert room.held == 3
    third.connection_lost(1.0)
    assert room.held == 0  # (a connection that ends gives its share back)
