"""STOMP 1.2: frames from the STOMP 1.2 specification, escaping, reassembly, heart-beats."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control
from wstape.core.codecs import CODECS
from wstape.core.codecs.base import Heartbeat, HeartbeatRole
from wstape.core.codecs.stomp import StompReassembler, escape, unescape
from wstape.core.model import Opcode, Side

CODEC = CODECS.get("stomp")
C, S = Side.CLIENT, Side.SERVER
T = Opcode.TEXT


def decode(side: Side, data: bytes | str) -> Any:
    return CODEC.decode(side, T, data.encode() if isinstance(data, str) else data)


ERROR_BODY = (
    "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\n"
    "Hello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\n"
    "for message propagation.\n"
)

# (side, frame, command, headers, body, summary), from the STOMP 1.2 specification
FRAMES: list[tuple[Side, str, str, dict[str, str], str, str]] = [
    (
        C,
        "CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0",
        "CONNECT",
        {"accept-version": "1.2", "host": "stomp.github.org"},
        "",
        "CONNECT accept-version=1.2 host=stomp.github.org",
    ),
    (
        C,
        "STOMP\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:10000,10000\n\n\0",
        "STOMP",
        {
            "accept-version": "1.2",
            "host": "/",
            "login": "guest",
            "passcode": "guest",
            "heart-beat": "10000,10000",
        },
        "",
        "STOMP accept-version=1.2 host=/ login=guest heart-beat=10000,10000 passcode=present",
    ),
    (
        S,
        "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0",
        "CONNECTED",
        {"version": "1.2", "heart-beat": "0,0"},
        "",
        "CONNECTED version=1.2 heart-beat=0,0",
    ),
    (
        C,
        "SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0",
        "SEND",
        {"destination": "/queue/a", "content-type": "text/plain"},
        "hello queue a\n",
        "SEND /queue/a (14 bytes)",
    ),
    (
        C,
        "SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0",
        "SUBSCRIBE",
        {"id": "0", "destination": "/queue/foo", "ack": "client"},
        "",
        "SUBSCRIBE id=0 /queue/foo",
    ),
    (C, "UNSUBSCRIBE\nid:0\n\n\0", "UNSUBSCRIBE", {"id": "0"}, "", "UNSUBSCRIBE id=0"),
    (
        C,
        "ACK\nid:12345\ntransaction:tx1\n\n\0",
        "ACK",
        {"id": "12345", "transaction": "tx1"},
        "",
        "ACK id=12345 transaction=tx1",
    ),
    (C, "NACK\nid:12345\n\n\0", "NACK", {"id": "12345"}, "", "NACK id=12345"),
    (
        C,
        "BEGIN\ntransaction:tx1\n\n\0",
        "BEGIN",
        {"transaction": "tx1"},
        "",
        "BEGIN transaction=tx1",
    ),
    (
        C,
        "COMMIT\ntransaction:tx1\n\n\0",
        "COMMIT",
        {"transaction": "tx1"},
        "",
        "COMMIT transaction=tx1",
    ),
    (
        C,
        "ABORT\ntransaction:tx1\n\n\0",
        "ABORT",
        {"transaction": "tx1"},
        "",
        "ABORT transaction=tx1",
    ),
    (
        C,
        "DISCONNECT\nreceipt:77\n\n\0",
        "DISCONNECT",
        {"receipt": "77"},
        "",
        "DISCONNECT receipt=77",
    ),
    (
        S,
        "RECEIPT\nreceipt-id:77\n\n\0",
        "RECEIPT",
        {"receipt-id": "77"},
        "",
        "RECEIPT receipt-id=77",
    ),
    (
        S,
        "MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\n"
        "content-type:text/plain\n\nhello queue a\0",
        "MESSAGE",
        {
            "subscription": "0",
            "message-id": "007",
            "destination": "/queue/a",
            "content-type": "text/plain",
        },
        "hello queue a",
        "MESSAGE /queue/a subscription=0 (13 bytes)",
    ),
    (
        S,
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\n"
        f"content-length:{len(ERROR_BODY)}\nmessage:malformed frame received\n\n{ERROR_BODY}\0",
        "ERROR",
        {
            "receipt-id": "message-12345",
            "content-type": "text/plain",
            "content-length": str(len(ERROR_BODY)),
            "message": "malformed frame received",
        },
        ERROR_BODY,
        f'ERROR receipt-id=message-12345 "malformed frame received" ({len(ERROR_BODY)} bytes)',
    ),
    # "Repeated Header Entries": the first one counts
    (S, "MESSAGE\nfoo:World\nfoo:Hello\n\n\0", "MESSAGE", {"foo": "World"}, "", "MESSAGE"),
    # CRLF line ends, and EOLs after the NUL
    (
        C,
        "SEND\r\ndestination:/q\r\n\r\nhi\0\r\n\n",
        "SEND",
        {"destination": "/q"},
        "hi",
        "SEND /q (2 bytes)",
    ),
]


@pytest.mark.parametrize(("side", "frame", "command", "headers", "body", "summary"), FRAMES)
def test_spec_frames(
    side: Side, frame: str, command: str, headers: dict[str, str], body: str, summary: str
) -> None:
    decoded = decode(side, frame)
    assert decoded is not None
    assert decoded.kind == command
    assert decoded.value == {"command": command, "headers": headers, "body": body}
    assert decoded.summary == summary
    assert decoded.heartbeat is None


@pytest.mark.parametrize(
    ("side", "frame", "generated", "echoes"),
    [
        (
            C,
            "SUBSCRIBE\nid:sub-0\ndestination:/q\nreceipt:r1\n\n\0",
            [("headers", "receipt"), ("headers", "id")],
            [],
        ),
        (C, "UNSUBSCRIBE\nid:sub-0\n\n\0", [("headers", "id")], []),
        (
            C,
            "SEND\ndestination:/q\nreceipt:r2\ntransaction:tx-0\n\nx\0",
            [("headers", "receipt"), ("headers", "transaction")],
            [],
        ),
        (C, "ACK\nid:m-1\n\n\0", [], []),  # the server's ack id
        (C, "DISCONNECT\nreceipt:77\n\n\0", [("headers", "receipt")], []),
        (S, "RECEIPT\nreceipt-id:77\n\n\0", [], [("headers", "receipt-id")]),
        (S, "ERROR\nreceipt-id:77\nmessage:no\n\n\0", [], [("headers", "receipt-id")]),
        (
            S,
            "MESSAGE\nsubscription:sub-0\nmessage-id:m-1\ndestination:/q\n\nx\0",
            [],
            [("headers", "subscription")],
        ),
        (S, "CONNECTED\nversion:1.2\nsession:s-1\n\n\0", [], []),  # the server's own
    ],
)
def test_generated_and_echoed(
    side: Side, frame: str, generated: list[Any], echoes: list[Any]
) -> None:
    decoded = decode(side, frame)
    assert decoded is not None
    assert (list(decoded.generated), list(decoded.echoes)) == (generated, echoes)


@pytest.mark.parametrize("beat", ["\n", "\r\n", "\n\n"])
@pytest.mark.parametrize("side", [C, S])
def test_eol_heart_beats_either_way(beat: str, side: Side) -> None:
    decoded = decode(side, beat)
    assert decoded is not None
    assert decoded.kind == "heart-beat"
    assert decoded.value == {"heart-beat": True}
    assert decoded.heartbeat == Heartbeat(HeartbeatRole.BEAT, "stomp", timer=True)
    assert decoded.summary == "heart-beat"


def test_header_escapes() -> None:
    decoded = decode(S, "MESSAGE\na\\cb:c\\nd\\\\e\\r\n\n\0")
    assert decoded is not None
    assert decoded.value["headers"] == {"a:b": "c\nd\\e\r"}
    assert decoded.summary == "MESSAGE"
    # CONNECT and CONNECTED frames are not escaped
    raw = decode(C, "CONNECT\nlogin:a\\cb\npasscode:x:y\n\n\0")
    assert raw is not None
    assert raw.value["headers"] == {"login": "a\\cb", "passcode": "x:y"}
    # an undefined escape is a malformed frame
    assert decode(S, "MESSAGE\nfoo:a\\tb\n\n\0") is None
    assert decode(S, "MESSAGE\nfoo:a\\\n\n\0") is None


def test_content_length_bodies_may_hold_nul() -> None:
    decoded = CODEC.decode(S, Opcode.BINARY, b"MESSAGE\ncontent-length:4\n\n\x00\x01\xff\x00\x00")
    assert decoded is not None
    assert decoded.value["body"] == b"\x00\x01\xff\x00"
    assert decoded.summary == "MESSAGE (4 bytes)"
    assert decode(S, "MESSAGE\ncontent-length:5\n\nab\0cd\0") is not None
    assert decode(S, "MESSAGE\ncontent-length:3\n\nab\0cd\0") is None  # no NUL at 3
    assert decode(S, "MESSAGE\ncontent-length:x\n\nab\0") is None


@pytest.mark.parametrize(
    "frame",
    [
        "",
        "hello",
        "SEND\ndestination:/q\n\nno nul",
        "FOO\n\n\0",
        "send\n\n\0",
        "SEND\nno colon\n\n\0",
        "SEND\ndestination:/q\0",
        "SEND\n\nbody\0trailing",
        "\0",
    ],
)
def test_not_stomp(frame: str) -> None:
    assert decode(C, frame) is None


def test_escape_round_trip() -> None:
    for text in ["plain", "a:b", "line\nbreak\r", "back\\slash", ""]:
        assert unescape(escape(text)) == text
    assert escape("a:b\\") == "a\\cb\\\\"


# -- reassembly --------------------------------------------------------------------------


def units(reassembler: StompReassembler, *messages: bytes) -> list[bytes]:
    out = []
    for message in messages:
        out += [unit for _, unit in reassembler.feed(T, message)]
    return out


def test_several_frames_and_beats_in_one_message() -> None:
    stream = b"MESSAGE\nsubscription:0\n\none\0\nMESSAGE\ncontent-length:3\n\na\0b\0\r\n\n"
    assert units(StompReassembler(), stream) == [
        b"MESSAGE\nsubscription:0\n\none\0",
        b"\n",
        b"MESSAGE\ncontent-length:3\n\na\0b\0",
        b"\r\n",
        b"\n",
    ]


def test_a_frame_split_over_messages() -> None:
    reassembler = StompReassembler()
    frame = b"SEND\ndestination:/queue/a\ncontent-length:11\n\nhello\0world\0"
    assert units(reassembler, frame[:3], frame[3:20], frame[20:50]) == []
    assert reassembler.pending() == 50
    assert units(reassembler, frame[50:] + b"\n") == [frame, b"\n"]
    assert reassembler.pending() == 0


def test_what_cannot_start_a_frame_is_one_unit() -> None:
    reassembler = StompReassembler()
    assert units(reassembler, b"hello\0SEND\n\nx\0") == [b"hello\0", b"SEND\n\nx\0"]
    assert units(reassembler, b"no nul, not a command") == [b"no nul, not a command"]
    assert units(reassembler, b"NOTACOMMAND\n\n\0") == [b"NOTACOMMAND\n\n\0"]
    assert units(reassembler, b"\r\r\n") == [b"\r", b"\r\n"]
    assert reassembler.pending() == 0
    # a frame that never ends is held back only up to max_buffer
    reassembler.max_buffer = 32
    assert units(reassembler, b"SEND\n\n" + b"x" * 20) == []
    assert units(reassembler, b"y" * 20) == [b"SEND\n\n" + b"x" * 20 + b"y" * 20]


def test_unit_opcode_is_the_one_the_frame_started_in() -> None:
    reassembler = StompReassembler()
    assert reassembler.feed(Opcode.BINARY, b"SEND\n\nab") == []
    assert reassembler.feed(T, b"c\0\n") == [(Opcode.BINARY, b"SEND\n\nabc\0"), (T, b"\n")]


def test_codec_reassembler() -> None:
    reassembler = CODEC.reassembler(S)
    assert isinstance(reassembler, StompReassembler)
    assert reassembler is not CODEC.reassembler(S)


# -- substitution ------------------------------------------------------------------------


def test_substitute_rewrites_only_the_header_value() -> None:
    recorded = b"MESSAGE\nsubscription:sub-0\nmessage-id:1\n\nsub-0\0"
    out = CODEC.substitute(S, T, recorded, {("headers", "subscription"): "sub-77"})
    assert out == b"MESSAGE\nsubscription:sub-77\nmessage-id:1\n\nsub-0\0"
    receipt = b"RECEIPT\r\nreceipt-id:77\r\n\r\n\0"
    assert CODEC.substitute(S, T, receipt, {("headers", "receipt-id"): 78}) == (
        b"RECEIPT\r\nreceipt-id:78\r\n\r\n\0"
    )
    # a value with a colon is escaped, except in CONNECT / CONNECTED
    assert CODEC.substitute(S, T, receipt, {("headers", "receipt-id"): "a:b"}) == (
        b"RECEIPT\r\nreceipt-id:a\\cb\r\n\r\n\0"
    )
    connected = b"CONNECTED\nversion:1.2\n\n\0"
    assert CODEC.substitute(S, T, connected, {("headers", "version"): "a:b"}) == (
        b"CONNECTED\nversion:a:b\n\n\0"
    )
    assert CODEC.substitute(S, T, connected, {("headers", "version"): "a\nb"}) == connected


def test_substitute_with_repeated_header_changes_the_first() -> None:
    recorded = b"MESSAGE\nsubscription:1\nsubscription:2\n\n\0"
    out = CODEC.substitute(S, T, recorded, {("headers", "subscription"): "9"})
    assert out == b"MESSAGE\nsubscription:9\nsubscription:2\n\n\0"


def test_substitute_leaves_the_rest_alone() -> None:
    recorded = b"RECEIPT\nreceipt-id:77\n\n\0"
    for replacements in (
        {("headers", "missing"): "x"},
        {("body",): "x"},
        {("headers", "receipt-id"): None},
        {("headers", "receipt-id"): True},
    ):
        assert CODEC.substitute(S, T, recorded, replacements) == recorded  # type: ignore[arg-type]
    assert CODEC.substitute(S, T, b"\n", {("headers", "x"): "y"}) == b"\n"
    assert CODEC.substitute(S, T, b"junk", {("headers", "x"): "y"}) == b"junk"


header_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=8)


@given(header_text, header_text, st.text(max_size=8))
def test_hand_built_frames_decode(value: str, new: str, body: str) -> None:
    frame = f"MESSAGE\nsubscription:{escape(value)}\ndestination:/q\n\n{body}".encode()
    frame += b"\0"
    decoded = CODEC.decode(S, T, frame)
    if "\0" in body:
        return
    assert decoded is not None
    assert decoded.value == {
        "command": "MESSAGE",
        "headers": {"subscription": value, "destination": "/q"},
        "body": body,
    }
    out = CODEC.substitute(S, T, frame, {("headers", "subscription"): new})
    again = CODEC.decode(S, T, out)
    assert again is not None
    assert again.value["headers"] == {"subscription": new, "destination": "/q"}
    assert not has_control(again.summary)


@given(st.lists(st.binary(max_size=16), max_size=6))
def test_reassembler_loses_nothing(messages: list[bytes]) -> None:
    reassembler = StompReassembler()
    reassembler.max_buffer = 40
    out = b""
    for message in messages:
        for _, unit in reassembler.feed(T, message):
            assert unit
            out += unit
    assert len(out) + reassembler.pending() == sum(map(len, messages))
    assert out == b"".join(messages)[: len(out)]
    held = reassembler.flush()  # the client stopped: what was held back comes out whole
    assert out + b"".join(unit for _, unit in held) == b"".join(messages)
    assert reassembler.pending() == 0 and reassembler.flush() == []


@given(
    st.binary(max_size=30)
    | st.builds(
        lambda c, rest: c.encode() + rest,
        st.sampled_from(["SEND\n", "MESSAGE\n", "CONNECT\n", "ERROR\r\n"]),
        st.binary(max_size=30),
    ),
    st.sampled_from([C, S]),
)
def test_decode_never_raises(payload: bytes, side: Side) -> None:
    for opcode in (Opcode.TEXT, Opcode.BINARY):
        decoded = CODEC.decode(side, opcode, payload)
        assert decoded is None or not has_control(decoded.summary)
        CODEC.substitute(side, opcode, payload, {("headers", "receipt-id"): "x:y"})


@pytest.mark.parametrize("length", [True, False])
def test_substitute_in_a_json_body_keeps_the_frame_whole(length: bool) -> None:
    body = '{"id": "a", "n": [1, "b"]}'
    head = f"content-length:{len(body)}\n" if length else ""
    frame = f"SEND\ndestination:/q\n{head}\n{body}\x00".encode()
    out = CODEC.substitute(C, T, frame, {("body", "id"): "a-much-longer-é", ("body", "n", 1): 7})
    decoded = CODEC.decode(C, T, out)
    assert decoded is not None
    assert CODEC.json_doc(decoded) == {"id": "a-much-longer-é", "n": [1, 7]}
    assert out.startswith(b"SEND\ndestination:/q\n")
    if length:
        assert decoded.value["headers"]["content-length"] == str(
            len(decoded.value["body"].encode())
        )
    # a body that is not JSON is left as it was
    plain = b"SEND\ndestination:/q\n\nhello\x00"
    assert CODEC.substitute(C, T, plain, {("body", "id"): "x"}) == plain
