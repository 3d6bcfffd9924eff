"""The sans-I/O frame parser and encoder (RFC 6455 §5)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wstape.core.frames import (
    Frame,
    FrameParser,
    OpCode,
    StreamFailure,
    apply_mask,
    encode_close_body,
    encode_frame,
    split_close_body,
)

MASK = b"\x37\xfa\x21\x3d"


def test_rfc_example_masked_hello() -> None:
    # RFC 6455 §5.7: a single-frame masked text message containing "Hello".
    wire = bytes.fromhex("818537fa213d7f9f4d5158")
    assert FrameParser().feed(wire) == [Frame(OpCode.TEXT, b"Hello", masked=True)]
    assert encode_frame(OpCode.TEXT, b"Hello", mask_key=MASK) == wire


def test_rfc_example_unmasked_and_fragmented() -> None:
    assert encode_frame(OpCode.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    wire = bytes.fromhex("010348656c") + bytes.fromhex("80026c6f")
    frames = FrameParser().feed(wire)
    assert frames == [
        Frame(OpCode.TEXT, b"Hel", fin=False, masked=False),
        Frame(OpCode.CONTINUATION, b"lo", masked=False),
    ]


@pytest.mark.parametrize(
    ("size", "header_len"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)]
)
def test_length_encodings(size: int, header_len: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    wire = encode_frame(OpCode.BINARY, payload, mask_key=MASK)
    assert len(wire) == header_len + 4 + size
    assert FrameParser().feed(wire) == [Frame(OpCode.BINARY, payload)]


def test_partial_input_one_byte_at_a_time() -> None:
    wire = encode_frame(OpCode.BINARY, b"x" * 300, mask_key=MASK) + encode_frame(
        OpCode.PING, b"p", mask_key=MASK
    )
    parser = FrameParser()
    got: list[Frame | StreamFailure] = []
    for i in range(len(wire)):
        got += parser.feed(wire[i : i + 1])
    assert got == [Frame(OpCode.BINARY, b"x" * 300), Frame(OpCode.PING, b"p")]
    assert parser.buffered == 0


def test_big_frame_in_chunks_is_not_reparsed() -> None:
    payload = b"\x01" * (1 << 20)
    wire = encode_frame(OpCode.BINARY, payload, mask_key=MASK)
    parser = FrameParser()
    out: list[Frame | StreamFailure] = []
    for i in range(0, len(wire), 4096):
        out += parser.feed(wire[i : i + 4096])
    assert out == [Frame(OpCode.BINARY, payload)]


def test_everything_the_rules_judge_is_passed_on() -> None:
    wire = (
        encode_frame(0x3, b"", mask_key=MASK)  # reserved opcode
        + encode_frame(OpCode.TEXT, b"a", rsv1=True, rsv2=True, rsv3=True, mask_key=MASK)
        + encode_frame(OpCode.PING, b"x" * 200, fin=False, mask_key=MASK)  # bad control
        + encode_frame(OpCode.TEXT, b"unmasked")
    )
    frames = FrameParser().feed(wire)
    assert [f.opcode for f in frames if isinstance(f, Frame)] == [0x3, 1, 9, 1]
    text = frames[1]
    assert isinstance(text, Frame) and text.rsv1 and text.rsv2 and text.rsv3
    ping = frames[2]
    assert isinstance(ping, Frame) and not ping.fin and ping.is_control
    last = frames[3]
    assert isinstance(last, Frame) and not last.masked and last.payload == b"unmasked"


def test_top_bit_of_64_bit_length_is_an_error_not_a_crash() -> None:
    wire = bytes((0x82, 0xFF)) + (1 << 63).to_bytes(8, "big") + MASK
    parser = FrameParser()
    assert parser.feed(wire) == [
        StreamFailure(
            1002, "64-bit payload length with the top bit set", "RFC-FRAME-LENGTH", 1 << 63
        )
    ]
    assert parser.failed is not None
    assert parser.feed(encode_frame(OpCode.TEXT, b"later", mask_key=MASK)) == []


def test_frame_over_the_limit_is_1009() -> None:
    parser = FrameParser(max_frame_size=10)
    out = parser.feed(encode_frame(OpCode.BINARY, b"x" * 11, mask_key=MASK)[:4])
    assert out == [
        StreamFailure(1009, "frame of 11 bytes is over the limit of 10", "RFC-MESSAGE-TOO-BIG", 11)
    ]


@pytest.mark.parametrize(
    ("header", "length", "minimal"),
    [
        (bytes((0x82, 0x80 | 125)), 125, True),
        (bytes((0x82, 0x80 | 126)) + (125).to_bytes(2, "big"), 125, False),
        (bytes((0x82, 0x80 | 126)) + (126).to_bytes(2, "big"), 126, True),
        (bytes((0x82, 0x80 | 127)) + (65535).to_bytes(8, "big"), 65535, False),
        (bytes((0x82, 0x80 | 127)) + (65536).to_bytes(8, "big"), 65536, True),
        (bytes((0x82, 0x80 | 127)) + (5).to_bytes(8, "big"), 5, False),
    ],
)
def test_length_encoding_is_reported_not_refused(header: bytes, length: int, minimal: bool) -> None:
    payload = bytes(range(256)) * (length // 256 + 1)
    wire = header + MASK + apply_mask(payload[:length], MASK)
    [frame] = FrameParser().feed(wire)
    assert isinstance(frame, Frame)
    assert frame.payload == payload[:length] and frame.minimal_length is minimal


def test_big_masked_frame_is_unmasked_in_pieces() -> None:
    # Longer than the unmasking chunk, and not a multiple of it or of 4.
    payload = bytes(range(251)) * 1000 + b"tail!"
    wire = encode_frame(OpCode.BINARY, payload, mask_key=b"\x9a\x01\xfe\x42")
    parser = FrameParser()
    got = []
    for i in range(0, len(wire), 7919):
        got += parser.feed(wire[i : i + 7919])
    assert got == [Frame(OpCode.BINARY, payload)]
    assert parser.buffered == 0
    assert apply_mask(apply_mask(payload, MASK), MASK) == payload


def test_next_frame_takes_one_frame_at_a_time() -> None:
    parser = FrameParser()
    parser.receive(encode_frame(OpCode.PING, b"1", mask_key=MASK) * 3 + b"\x81")
    assert parser.next_frame() == Frame(OpCode.PING, b"1")
    assert parser.buffered == 2 * 7 + 1
    assert [parser.next_frame(), parser.next_frame()] == [Frame(OpCode.PING, b"1")] * 2
    assert parser.next_frame() is None
    parser.receive(b"\x80" + MASK)
    assert parser.next_frame() == Frame(OpCode.TEXT, b"")


def test_close_body_helpers() -> None:
    assert encode_close_body(None) == b""
    assert encode_close_body(1000, "bye") == b"\x03\xe8bye"
    assert encode_close_body(4001, "再见".encode()) == b"\x0f\xa1" + "再见".encode()
    assert split_close_body(b"") == (None, b"")
    assert split_close_body(b"\x03") == (None, b"")
    assert split_close_body(b"\x03\xedxy") == (1005, b"xy")


@pytest.mark.parametrize("code", [-1, 65536, 70000])
def test_close_body_refuses_codes_that_are_not_two_bytes(code: int) -> None:
    # As documented: ValueError, not the OverflowError int.to_bytes would raise.
    with pytest.raises(ValueError, match="2 bytes"):
        encode_close_body(code)


def test_close_body_keeps_escaped_invalid_bytes() -> None:
    reason = b"a\xff".decode("utf-8", "surrogateescape")
    assert encode_close_body(4000, reason) == b"\x0f\xa0a\xff"


@given(st.binary(max_size=300), st.binary(min_size=4, max_size=4))
def test_mask_is_its_own_inverse(data: bytes, key: bytes) -> None:
    assert apply_mask(apply_mask(data, key), key) == data
    assert apply_mask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data))


def _big(size: int) -> bytes:
    # A 16-bit-length payload without drawing 60 kB of entropy (which made hypothesis's
    # "input generation is slow" health check fail now and then).
    return (bytes(range(256)) * (size // 256 + 1))[:size]


frames_st = st.builds(
    Frame,
    opcode=st.integers(min_value=0, max_value=15),
    payload=st.binary(max_size=130) | st.integers(60000, 70000).map(_big),
    fin=st.booleans(),
    rsv1=st.booleans(),
    rsv2=st.booleans(),
    rsv3=st.booleans(),
    masked=st.booleans(),
    minimal_length=st.just(True),  # encode_frame always writes the minimal length
)


# Drawing 64 KiB payloads is slow on a busy machine; the test itself is not.
@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames_st, max_size=5), st.lists(st.integers(1, 5000), max_size=20))
def test_round_trip_under_any_split(frames: list[Frame], cuts: list[int]) -> None:
    wire = b"".join(
        encode_frame(
            f.opcode,
            f.payload,
            fin=f.fin,
            rsv1=f.rsv1,
            rsv2=f.rsv2,
            rsv3=f.rsv3,
            mask_key=MASK if f.masked else None,
        )
        for f in frames
    )
    parser = FrameParser()
    got: list[Frame | StreamFailure] = []
    pos = 0
    for cut in cuts:
        got += parser.feed(wire[pos : pos + cut])
        pos += cut
    got += parser.feed(wire[pos:])
    assert got == frames


@given(st.binary(max_size=400))
def test_random_bytes_never_crash(data: bytes) -> None:
    parser = FrameParser(max_frame_size=1000)
    for item in parser.feed(data):
        assert isinstance(item, Frame | StreamFailure)
