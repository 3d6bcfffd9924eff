"""MQTT 3.1.1 / 5.0: packet examples from the OASIS specs, round trips, reassembly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.core.codecs.helpers import has_control, make_open, msg
from wstape.core.codecs import CODECS
from wstape.core.codecs.base import Heartbeat, HeartbeatRole
from wstape.core.codecs.mqtt import (
    PROPERTY_IDS,
    PROTOCOL_NAMES,
    REPEATABLE,
    Malformed,
    MqttCodec,
    MqttReassembler,
    decode_packet,
    encode,
    varint,
)
from wstape.core.model import Opcode, Side

C, S = Side.CLIENT, Side.SERVER
V4, V5 = MqttCodec(4), MqttCodec(5)
AUTO = CODECS.get("mqtt")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def packet_value(codec: MqttCodec, side: Side, data: bytes) -> Any:
    decoded = codec.decode(side, Opcode.BINARY, data)
    assert decoded is not None, data.hex()
    return decoded.value


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        # MQTT 5.0 §1.5.5, the Variable Byte Integer table (3.1.1 §2.2.3 has the same)
        (0, "00"),
        (127, "7f"),
        (128, "8001"),
        (16_383, "ff7f"),
        (16_384, "808001"),
        (2_097_151, "ffff7f"),
        (2_097_152, "80808001"),
        (268_435_455, "ffffff7f"),
    ],
)
def test_variable_byte_integer(value: int, wire: str) -> None:
    assert varint(value) == h(wire)
    # as a remaining length: a PUBLISH that long is recognised by its header alone
    reassembler = MqttReassembler()
    reassembler.max_buffer = 1 << 30
    assert reassembler.feed(Opcode.BINARY, h("30" + wire)) == (
        [] if value else [(Opcode.BINARY, h("3000"))]
    )


# 3.1.1 §3.1.2.10 "Variable header non normative example": protocol name, level 4,
# flags 0xCE (user name, password, will QoS 1, will flag, clean session), keep alive 10
CONNECT_311 = h(
    "10" "24" "00044d515454" "04" "ce" "000a"
    "0003616263"  # client id "abc"
    "0003772f74" "00026869"  # will topic "w/t", will message "hi"
    "000475736572" "000470617373"  # user name "user", password "pass"
)  # fmt: skip
# 5.0 §3.1.2.11.1 example: the same with properties: length 5, session expiry interval 10
CONNECT_5 = h(
    "10" "2d" "00044d515454" "05" "ce" "000a" "05" "110000000a"
    "0003616263"
    "02" "0101" "0003772f74" "00026869"  # will properties: payload format indicator 1
    "000475736572" "000470617373"
)  # fmt: skip


def test_connect_311_spec_example() -> None:
    decoded = AUTO.decode(C, Opcode.BINARY, CONNECT_311)
    assert decoded is not None
    assert decoded.value == {
        "type": "CONNECT",
        "protocol": "MQTT",
        "version": 4,
        "clean_session": True,
        "keepalive": 10,
        "client_id": "abc",
        "will": {"topic": "w/t", "payload": b"hi", "qos": 1, "retain": False},
        "username": "user",
        "password": b"pass",
    }
    assert decoded.summary == (
        "CONNECT client_id=abc keepalive=10 v3.1.1 clean username=user password=present will=w/t"
    )
    assert decoded.generated == (("client_id",),)
    assert encode(decoded.value) == CONNECT_311


def test_connect_5_spec_example() -> None:
    decoded = AUTO.decode(C, Opcode.BINARY, CONNECT_5)
    assert decoded is not None
    assert decoded.value["version"] == 5
    assert decoded.value["clean_start"] is True
    assert decoded.value["properties"] == {"session_expiry_interval": 10}
    assert decoded.value["will"]["properties"] == {"payload_format_indicator": 1}
    assert decoded.summary.endswith(" v5 clean username=user password=present will=w/t")
    assert encode(decoded.value) == CONNECT_5


def test_password_never_in_a_summary() -> None:
    value = {
        "type": "CONNECT",
        "protocol": "MQTT",
        "version": 5,
        "clean_start": False,
        "keepalive": 60,
        "client_id": "mqttjs_1234",
        "will": None,
        "username": None,
        "password": b"hunter2",  # MQTT 5 allows a password without a user name
        "properties": {},
    }
    decoded = AUTO.decode(C, Opcode.BINARY, encode(value))
    assert decoded is not None
    assert decoded.summary == "CONNECT client_id=mqttjs_1234 keepalive=60 v5 password=present"
    assert "hunter2" not in decoded.summary
    assert decoded.value["password"] == b"hunter2"


PACKETS: list[tuple[MqttCodec, Side, str, dict[str, Any], str]] = [
    (
        V4,
        S,
        "20020000",
        {"type": "CONNACK", "session_present": False, "reason_code": 0},
        "CONNACK 0 accepted",
    ),
    (
        V4,
        S,
        "20020105",
        {"type": "CONNACK", "session_present": True, "reason_code": 5},
        "CONNACK 5 not authorized session_present",
    ),
    (
        V5,
        S,
        "2003000000",
        {"type": "CONNACK", "session_present": False, "reason_code": 0, "properties": {}},
        "CONNACK 0 success",
    ),
    (
        V5,
        S,
        "20 0b 00 00 08 210014 22000a 2401",
        {
            "type": "CONNACK",
            "session_present": False,
            "reason_code": 0,
            "properties": {"receive_maximum": 20, "topic_alias_maximum": 10, "maximum_qos": 1},
        },
        "CONNACK 0 success",
    ),
    (
        V5,
        S,
        "2003008700",
        {"type": "CONNACK", "session_present": False, "reason_code": 0x87, "properties": {}},
        "CONNACK 0x87 not authorized",
    ),
    # 3.1.1 §3.3.2.3 PUBLISH variable header example: topic "a/b", packet identifier 10
    (
        V4,
        C,
        "32 09 0003612f62 000a 6869",
        {
            "type": "PUBLISH",
            "dup": False,
            "qos": 1,
            "retain": False,
            "topic": "a/b",
            "packet_id": 10,
            "payload": b"hi",
        },
        'PUBLISH id=10 a/b (qos 1) "hi"',
    ),
    # 5.0 §3.3.2.3 example: the same, with a property length of 0
    (
        V5,
        C,
        "32 0a 0003612f62 000a 00 6869",
        {
            "type": "PUBLISH",
            "dup": False,
            "qos": 1,
            "retain": False,
            "topic": "a/b",
            "packet_id": 10,
            "properties": {},
            "payload": b"hi",
        },
        'PUBLISH id=10 a/b (qos 1) "hi"',
    ),
    (
        V5,
        S,
        "3c 16 0003612f62 0007 0c 0b05 26000178000179 030000 7b7d",
        {
            "type": "PUBLISH",
            "dup": True,
            "qos": 2,
            "retain": False,
            "topic": "a/b",
            "packet_id": 7,
            "properties": {
                "subscription_identifier": [5],
                "user_property": [["x", "y"]],
                "content_type": "",
            },
            "payload": b"{}",
        },
        'PUBLISH id=7 a/b (qos 2, dup) "{}"',
    ),
    (
        V4,
        S,
        "31 07 0003612f62 ff00",
        {
            "type": "PUBLISH",
            "dup": False,
            "qos": 0,
            "retain": True,
            "topic": "a/b",
            "payload": b"\xff\x00",
        },
        "PUBLISH a/b (retain) <2 bytes>",
    ),
    (V4, S, "4002000a", {"type": "PUBACK", "packet_id": 10}, "PUBACK id=10"),
    (
        V5,
        S,
        "4002000a",
        {"type": "PUBACK", "packet_id": 10, "reason_code": 0, "properties": {}},
        "PUBACK id=10",
    ),
    (
        V5,
        S,
        "40 03 000a 10",
        {"type": "PUBACK", "packet_id": 10, "reason_code": 0x10, "properties": {}},
        "PUBACK id=10 0x10 no matching subscribers",
    ),
    (V4, S, "5002000a", {"type": "PUBREC", "packet_id": 10}, "PUBREC id=10"),
    (V4, C, "6202000a", {"type": "PUBREL", "packet_id": 10}, "PUBREL id=10"),
    (V4, S, "7002000a", {"type": "PUBCOMP", "packet_id": 10}, "PUBCOMP id=10"),
    # 3.1.1 §3.8.3 SUBSCRIBE payload example: "a/b" QoS 1, "c/d" QoS 2
    (
        V4,
        C,
        "82 0e 000a 0003612f62 01 0003632f64 02",
        {
            "type": "SUBSCRIBE",
            "packet_id": 10,
            "subscriptions": [{"topic": "a/b", "qos": 1}, {"topic": "c/d", "qos": 2}],
        },
        "SUBSCRIBE id=10 a/b (qos 1), c/d (qos 2)",
    ),
    (
        V5,
        C,
        "82 0b 0011 02 0b01 0003612f62 2d",
        {
            "type": "SUBSCRIBE",
            "packet_id": 17,
            "properties": {"subscription_identifier": [1]},
            "subscriptions": [
                {
                    "topic": "a/b",
                    "qos": 1,
                    "no_local": True,
                    "retain_as_published": True,
                    "retain_handling": 2,
                }
            ],
        },
        "SUBSCRIBE id=17 a/b (qos 1)",
    ),
    # 3.1.1 §3.9.3 SUBACK payload example: granted QoS 0, QoS 2, failure
    (
        V4,
        S,
        "90 05 000a 00 02 80",
        {"type": "SUBACK", "packet_id": 10, "reason_codes": [0, 2, 0x80]},
        "SUBACK id=10 [0, 2, 0x80]",
    ),
    (
        V5,
        S,
        "90 04 0011 00 01",
        {"type": "SUBACK", "packet_id": 17, "properties": {}, "reason_codes": [1]},
        "SUBACK id=17 [1]",
    ),
    # 3.1.1 §3.10.3 UNSUBSCRIBE payload example: "a/b", "c/d"
    (
        V4,
        C,
        "a2 0c 000a 0003612f62 0003632f64",
        {"type": "UNSUBSCRIBE", "packet_id": 10, "topics": ["a/b", "c/d"]},
        "UNSUBSCRIBE id=10 a/b, c/d",
    ),
    (V4, S, "b002000a", {"type": "UNSUBACK", "packet_id": 10}, "UNSUBACK id=10"),
    (
        V5,
        S,
        "b0 04 000a 00 11",
        {"type": "UNSUBACK", "packet_id": 10, "properties": {}, "reason_codes": [0x11]},
        "UNSUBACK id=10 [0x11]",
    ),
    (V4, C, "c000", {"type": "PINGREQ"}, "PINGREQ"),
    (V4, S, "d000", {"type": "PINGRESP"}, "PINGRESP"),
    (V4, C, "e000", {"type": "DISCONNECT"}, "DISCONNECT"),
    (V5, C, "e000", {"type": "DISCONNECT", "reason_code": 0, "properties": {}}, "DISCONNECT"),
    (
        V5,
        C,
        "e00104",
        {"type": "DISCONNECT", "reason_code": 4, "properties": {}},
        "DISCONNECT 4 disconnect with will message",
    ),
    (
        V5,
        S,
        "e0 08 8e 06 1f0003627965",
        {"type": "DISCONNECT", "reason_code": 0x8E, "properties": {"reason_string": "bye"}},
        'DISCONNECT 0x8e session taken over "bye"',
    ),
    (V5, S, "f000", {"type": "AUTH", "reason_code": 0, "properties": {}}, "AUTH"),
    (
        V5,
        C,
        "f0 0c 18 0a 150007534352414d2d31",
        {"type": "AUTH", "reason_code": 0x18, "properties": {"authentication_method": "SCRAM-1"}},
        "AUTH 0x18 continue authentication method=SCRAM-1",
    ),
]


@pytest.mark.parametrize(("codec", "side", "wire", "value", "summary"), PACKETS)
def test_packets(
    codec: MqttCodec, side: Side, wire: str, value: dict[str, Any], summary: str
) -> None:
    data = h(wire)
    decoded = codec.decode(side, Opcode.BINARY, data)
    assert decoded is not None, wire
    assert decoded.value == value
    assert decoded.kind == value["type"]
    assert decoded.summary == summary
    assert encode(value, codec.version or 4) == data


# -- correlation and heartbeats ----------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "wire", "generated", "echoes"),
    [
        (C, "32 09 0003612f62 000a 6869", (("packet_id",),), ()),
        (C, "30 07 0003612f62 6869", (), ()),  # QoS 0: no packet identifier
        (C, "82 0e 000a 0003612f62 01 0003632f64 02", (("packet_id",),), ()),
        (C, "a2 0c 000a 0003612f62 0003632f64", (("packet_id",),), ()),
        (C, "6202000a", (("packet_id",),), ()),
        (S, "90 05 000a 00 02 80", (), (("packet_id",),)),
        (S, "b002000a", (), (("packet_id",),)),
        (S, "4002000a", (), (("packet_id",),)),
        (S, "5002000a", (), (("packet_id",),)),
        (S, "7002000a", (), (("packet_id",),)),
        # the server's own QoS 1 PUBLISH and the client's PUBACK for it: the server's id
        (S, "32 09 0003612f62 000a 6869", (), ()),
        (C, "4002000a", (), ()),
        (S, "20020000", (), ()),
    ],
)
def test_generated_and_echoed(side: Side, wire: str, generated: Any, echoes: Any) -> None:
    decoded = V4.decode(side, Opcode.BINARY, h(wire))
    assert decoded is not None
    assert (decoded.generated, decoded.echoes) == (generated, echoes)


def test_ping_heartbeats() -> None:
    ping = AUTO.decode(C, Opcode.BINARY, h("c000"))
    pong = AUTO.decode(S, Opcode.BINARY, h("d000"))
    assert ping is not None and pong is not None
    assert ping.heartbeat == Heartbeat(HeartbeatRole.PING, "mqtt")
    assert pong.heartbeat == Heartbeat(HeartbeatRole.PONG, "mqtt")
    assert AUTO.decode(C, Opcode.BINARY, h("e000")).heartbeat is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "wire",
    [
        "",
        "00",
        "0000",  # reserved type 0
        "c0",  # no remaining length
        "c001",  # too short for its length
        "c00100",  # PINGREQ with a body
        "c100",  # PINGREQ with flags
        "8200",  # SUBSCRIBE without a packet identifier
        "80 08 000a 0003612f62 01",  # SUBSCRIBE with flags 0000
        "36 05 0003612f62",  # PUBLISH QoS 3
        "30ffffffff01",  # remaining length over 4 bytes
        "10 10 00044d515454 06 02 003c 000474657374",  # protocol level 6
        "10 10 00044d515454 04 03 003c 000474657374",  # reserved connect flag
        "10 0e 00064d5149736470 04 02 003c 0000",  # MQIsdp must be level 3
        "30 05 0003ff2f62",  # topic not UTF-8
        "9003000a03",  # v3.1.1 SUBACK return code 3
        "82 04 0001 0000",  # SUBSCRIBE whose topic filter has no options byte
        "4002000a00",  # trailing byte beyond the remaining length
    ],
)
def test_not_mqtt(wire: str) -> None:
    assert V4.decode(C, Opcode.BINARY, h(wire)) is None


def test_text_messages_are_not_mqtt() -> None:
    assert AUTO.decode(C, Opcode.TEXT, h("c000")) is None


def test_unbound_codec_reads_311_first_then_5() -> None:
    # a 3.1.1 packet reads as 3.1.1 ...
    assert packet_value(AUTO, S, h("90 05 000a 00 02 80")) == {
        "type": "SUBACK",
        "packet_id": 10,
        "reason_codes": [0, 2, 0x80],
    }
    # ... and a packet only MQTT 5 can mean reads as MQTT 5
    assert packet_value(AUTO, S, h("2003000000"))["properties"] == {}
    assert packet_value(AUTO, S, h("40 03 000a 10"))["reason_code"] == 0x10
    assert packet_value(AUTO, C, h("f000"))["type"] == "AUTH"
    # a codec bound to 3.1.1 does not
    assert V4.decode(S, Opcode.BINARY, h("2003000000")) is None
    assert V4.decode(C, Opcode.BINARY, h("f000")) is None


def test_for_connection_reads_the_level_from_the_recorded_connect() -> None:
    fields = [
        CONNECT_5[:1],
        CONNECT_5[1:2],
        CONNECT_5[2:8],
        CONNECT_5[8:9],
        CONNECT_5[9:10],
        CONNECT_5[10:],
    ]
    first = [msg(C, f) for f in fields] + [msg(S, h("2003000000"))]
    opened = make_open("/mqtt", ("mqtt",), "mqtt")
    bound = AUTO.for_connection(opened, first)
    assert isinstance(bound, MqttCodec) and bound.version == 5
    detected = CODECS.detect(opened, first)
    assert isinstance(detected, MqttCodec) and detected.version == 5
    assert AUTO.for_connection(opened, [msg(C, CONNECT_311)]).version == 4  # type: ignore[attr-defined]
    assert AUTO.for_connection(opened, [msg(S, h("d000"))]) is AUTO
    # a v5 PUBLISH whose properties a 3.1.1 reading would take for payload
    publish = h("32 0a 0003612f62 000a 00 6869")
    assert packet_value(AUTO, C, publish)["payload"] == b"\x00hi"
    assert packet_value(bound, C, publish)["payload"] == b"hi"  # type: ignore[arg-type]


# -- reassembly --------------------------------------------------------------------------


def test_mqttjs_sends_every_field_as_a_message() -> None:
    subscribe = h("82 0e 000a 0003612f62 01 0003632f64 02")
    pieces = [
        CONNECT_311[:1],
        CONNECT_311[1:2],
        CONNECT_311[2:8],
        CONNECT_311[8:9],
        CONNECT_311[9:10],
    ]
    pieces += [
        CONNECT_311[10:12],
        CONNECT_311[12:17],
        CONNECT_311[17:],
        subscribe[:1],
        subscribe[1:2],
    ]
    pieces += [subscribe[2:4], subscribe[4:]]
    reassembler = AUTO.reassembler(C)
    assert reassembler is not None
    units = []
    for piece in pieces:
        units += reassembler.feed(Opcode.BINARY, piece)
    assert units == [(Opcode.BINARY, CONNECT_311), (Opcode.BINARY, subscribe)]
    assert reassembler.pending() == 0


def test_several_packets_in_one_message() -> None:
    reassembler = MqttReassembler()
    stream = h("20020000 9005000a000280 30070003612f626869 d000")
    assert [u for _, u in reassembler.feed(Opcode.BINARY, stream + h("3209"))] == [
        h("20020000"),
        h("90 05 000a 00 02 80"),
        h("30 07 0003612f62 6869"),
        h("d000"),
    ]
    assert reassembler.pending() == 2
    assert reassembler.feed(Opcode.BINARY, h("0003612f62 000a 6869")) == [
        (Opcode.BINARY, h("32 09 0003612f62 000a 6869"))
    ]


def test_bytes_that_cannot_start_a_packet_are_one_unit() -> None:
    reassembler = MqttReassembler()
    assert reassembler.feed(Opcode.BINARY, h("00ffc000")) == [(Opcode.BINARY, h("00ffc000"))]
    assert reassembler.feed(Opcode.BINARY, h("c00030ffffffff7f")) == [
        (Opcode.BINARY, h("c000")),
        (Opcode.BINARY, h("30ffffffff7f")),
    ]
    assert reassembler.pending() == 0
    # a text message in an MQTT stream is passed on as it is, the stream goes on
    assert reassembler.feed(Opcode.BINARY, h("c0")) == []
    assert reassembler.feed(Opcode.TEXT, b"hello") == [(Opcode.TEXT, b"hello")]
    assert reassembler.feed(Opcode.BINARY, h("00")) == [(Opcode.BINARY, h("c000"))]


def test_a_packet_longer_than_the_buffer_is_not_held_back() -> None:
    reassembler = MqttReassembler()
    reassembler.max_buffer = 64
    # 128 bytes announced, more than the 64 it may hold: passed on as it is
    assert reassembler.feed(Opcode.BINARY, h("308001") + bytes(10)) == [
        (Opcode.BINARY, h("308001") + bytes(10))
    ]
    # a non-minimal length (80 00 is 0) is still a length
    assert reassembler.feed(Opcode.BINARY, h("308000")) == [(Opcode.BINARY, h("308000"))]
    assert reassembler.feed(Opcode.BINARY, h("303e") + bytes(10)) == []
    assert reassembler.pending() == 12


# -- substitution ------------------------------------------------------------------------


def test_substitute_packet_id_in_place() -> None:
    suback = h("90 05 000a 00 02 80")
    out = V4.substitute(S, Opcode.BINARY, suback, {("packet_id",): 0xBEEF})
    assert out == h("90 05 beef 00 02 80")
    publish = h("32 09 0003612f62 000a 6869")
    assert V4.substitute(C, Opcode.BINARY, publish, {("packet_id",): 1}) == h(
        "32 09 0003612f62 0001 6869"
    )
    for bad in (-1, 0x10000, "7", True, None, 1.5):
        assert V4.substitute(S, Opcode.BINARY, suback, {("packet_id",): bad}) == suback
    assert V4.substitute(S, Opcode.BINARY, h("d000"), {("packet_id",): 1}) == h("d000")
    assert V4.substitute(S, Opcode.BINARY, h("00ff"), {("packet_id",): 1}) == h("00ff")
    assert V4.substitute(S, Opcode.TEXT, suback, {("packet_id",): 1}) == suback


def test_substitute_client_id_rewrites_the_lengths() -> None:
    long_id = "mqttjs_" + "x" * 200
    out = AUTO.substitute(C, Opcode.BINARY, CONNECT_311, {("client_id",): long_id})
    value = packet_value(AUTO, C, out)
    assert value["client_id"] == long_id
    assert value["password"] == b"pass" and value["will"]["topic"] == "w/t"
    assert out[1:3] == varint(0x24 - len("abc") + len(long_id))


# -- round trips -------------------------------------------------------------------------

texts = st.text(max_size=6)
u16 = st.integers(0, 0xFFFF)
packet_ids = st.integers(1, 0xFFFF)


def _property(name: str) -> st.SearchStrategy[Any]:
    kind = PROPERTY_IDS[name][1]
    single: st.SearchStrategy[Any] = {
        "byte": st.integers(0, 255),
        "u16": u16,
        "u32": st.integers(0, 2**32 - 1),
        "varint": st.integers(0, 268_435_455),
        "utf8": texts,
        "binary": st.binary(max_size=6),
        "pair": st.lists(texts, min_size=2, max_size=2),
    }[kind]
    return st.lists(single, min_size=1, max_size=3) if name in REPEATABLE else single


properties = st.sets(st.sampled_from(sorted(PROPERTY_IDS)), max_size=4).flatmap(
    lambda names: st.fixed_dictionaries({n: _property(n) for n in names})
)


@st.composite
def connects(draw: st.DrawFn, level: int) -> dict[str, Any]:
    v5 = level == 5
    will = draw(
        st.none()
        | st.fixed_dictionaries(
            {
                "topic": texts,
                "payload": st.binary(max_size=6),
                "qos": st.integers(0, 2),
                "retain": st.booleans(),
                **({"properties": properties} if v5 else {}),
            }
        )
    )
    username = draw(st.none() | texts)
    password = draw(st.none() | st.binary(max_size=6))
    if username is None and not v5:
        password = None
    value: dict[str, Any] = {
        "type": "CONNECT",
        "protocol": PROTOCOL_NAMES[level],
        "version": level,
        ("clean_start" if v5 else "clean_session"): draw(st.booleans()),
        "keepalive": draw(u16),
        "client_id": draw(texts),
        "will": will,
        "username": username,
        "password": password,
    }
    if v5:
        value["properties"] = draw(properties)
    return value


@st.composite
def packets(draw: st.DrawFn, level: int) -> dict[str, Any]:
    v5 = level == 5
    names = ["CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE"]
    names += ["SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT"]
    name = draw(st.sampled_from([*names, "AUTH"] if v5 else names))
    if name == "CONNECT":
        return draw(connects(level))
    value: dict[str, Any] = {"type": name}
    if name == "CONNACK":
        value.update(session_present=draw(st.booleans()), reason_code=draw(st.integers(0, 255)))
    elif name == "PUBLISH":
        qos = draw(st.integers(0, 2))
        value.update(
            dup=draw(st.booleans()), qos=qos, retain=draw(st.booleans()), topic=draw(texts)
        )
        if qos:
            value["packet_id"] = draw(packet_ids)
        value["payload"] = draw(st.binary(max_size=8))
    elif name in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP"):
        value["packet_id"] = draw(packet_ids)
        if v5:
            value["reason_code"] = draw(st.integers(0, 255))
    elif name == "SUBSCRIBE":
        value["packet_id"] = draw(packet_ids)
        sub = {"topic": texts, "qos": st.integers(0, 2)}
        if v5:
            sub.update(
                no_local=st.booleans(),
                retain_as_published=st.booleans(),
                retain_handling=st.integers(0, 2),
            )
        value["subscriptions"] = draw(st.lists(st.fixed_dictionaries(sub), min_size=1, max_size=3))
    elif name in ("SUBACK", "UNSUBACK"):
        value["packet_id"] = draw(packet_ids)
        codes = st.integers(0, 255) if v5 else st.sampled_from([0, 1, 2, 0x80])
        if v5 or name == "SUBACK":
            value["reason_codes"] = draw(st.lists(codes, min_size=1, max_size=3))
    elif name == "UNSUBSCRIBE":
        value["packet_id"] = draw(packet_ids)
        value["topics"] = draw(st.lists(texts, min_size=1, max_size=3))
    elif name in ("DISCONNECT", "AUTH") and v5:
        value["reason_code"] = draw(st.integers(0, 255))
    if v5 and name not in ("PINGREQ", "PINGRESP"):
        value["properties"] = draw(properties)
    return value


@given(st.sampled_from([3, 4, 5]).flatmap(lambda level: st.tuples(st.just(level), packets(level))))
def test_decode_encode_round_trip(case: tuple[int, dict[str, Any]]) -> None:
    level, value = case
    wire = encode(value, level)
    assert decode_packet(wire, level).value == value
    decoded = MqttCodec(level).decode(C, Opcode.BINARY, wire)
    assert decoded is not None and decoded.value == value
    assert not has_control(decoded.summary)
    if level != 5:  # an unbound codec reads 3.1.1 first
        assert decode_packet(wire).value == value


@given(st.lists(packets(4), min_size=1, max_size=5), st.data())
def test_reassembly_of_any_split(values: list[dict[str, Any]], data: st.DataObject) -> None:
    wires = [encode(v) for v in values]
    stream = b"".join(wires)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=8)))
    reassembler = MqttReassembler()
    units = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        units += reassembler.feed(Opcode.BINARY, stream[start:end])
    assert [u for _, u in units] == wires
    assert reassembler.pending() == 0


@given(st.lists(st.binary(max_size=12), max_size=6))
def test_reassembler_loses_nothing_and_stays_bounded(messages: list[bytes]) -> None:
    reassembler = MqttReassembler()
    reassembler.max_buffer = 32
    out = b""
    for message in messages:
        for opcode, unit in reassembler.feed(Opcode.BINARY, message):
            assert opcode is Opcode.BINARY and unit
            out += unit
        assert reassembler.pending() <= reassembler.max_buffer
    assert out + b"".join(messages)[len(out) :] == b"".join(messages)
    assert len(out) + reassembler.pending() == sum(map(len, messages))
    held = reassembler.flush()  # the client stopped: what was held back comes out whole
    assert out + b"".join(unit for _, unit in held) == b"".join(messages)
    assert reassembler.pending() == 0 and reassembler.flush() == []


@given(
    st.integers(0, 255),
    st.binary(max_size=24),
    st.sampled_from([C, S]),
    st.sampled_from([AUTO, V4, V5]),
)
def test_decode_and_substitute_never_raise(
    first: int, body: bytes, side: Side, codec: MqttCodec
) -> None:
    # random bytes, and random bytes behind a fixed header whose length fits them
    for data in (bytes([first]) + body, bytes([first, len(body)]) + body):
        decoded = codec.decode(side, Opcode.BINARY, data)
        assert decoded is None or not has_control(decoded.summary)
        out = codec.substitute(side, Opcode.BINARY, data, {("packet_id",): 5, ("client_id",): "x"})
        assert (codec.decode(side, Opcode.BINARY, out) is None) == (decoded is None)
    with pytest.raises(Malformed):
        decode_packet(b"")


@given(packets(5), st.integers(0, 0xFFFF))
def test_substituted_packet_id_decodes(value: dict[str, Any], new: int) -> None:
    wire = encode(value, 5)
    out = V5.substitute(C, Opcode.BINARY, wire, {("packet_id",): new})
    again = decode_packet(out, 5).value
    if "packet_id" in value:
        assert again == {**value, "packet_id": new}
        assert len(out) == len(wire)
    else:
        assert out == wire


@pytest.mark.parametrize("grow", [0, 200])
def test_substitute_in_a_json_payload_fits_the_remaining_length(grow: int) -> None:
    body = b"\x00\x03req" + b'{"req": "a", "n": 1}'
    packet = bytes([0x30, len(body)]) + body
    new = "b" * (1 + grow)  # 200 more bytes: the remaining length takes 2 bytes
    out = V4.substitute(Side.CLIENT, Opcode.BINARY, packet, {("payload", "req"): new})
    decoded = V4.decode(Side.CLIENT, Opcode.BINARY, out)
    assert decoded is not None and decoded.value["topic"] == "req"
    assert V4.json_doc(decoded) == {"req": new, "n": 1}
