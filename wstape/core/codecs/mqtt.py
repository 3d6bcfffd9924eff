"""MQTT 3.1, 3.1.1 and 5.0 over WebSocket (subprotocol ``mqtt`` / ``mqttv3.1``, binary).

One unit is one MQTT control packet: a fixed header (type and flags in the first byte,
then the remaining length as a variable byte integer of 1 to 4 bytes) and that many
bytes. A WebSocket message may hold part of a packet (MQTT.js writes every field as its
own message) or several packets (brokers batch), so :meth:`MqttCodec.reassembler`
rebuilds whole packets from the byte stream.

The layout after CONNECT depends on the protocol level the client asked for: MQTT 5
packets carry properties (and reason codes) where 3.1.1 packets do not, and a PUBLISH
reads differently either way. :meth:`MqttCodec.for_connection` reads the level from the
recorded CONNECT and returns a codec fixed to it. An unbound codec reads each packet as
3.1.1 first and as 5.0 when that fails; both sides of a comparison are read alike, but
a 5.0 PUBLISH then shows its properties as the start of its payload.

Decoded values are dicts keyed by the spec's field names, e.g.
``{"type": "PUBLISH", "dup": False, "qos": 1, "retain": False, "topic": "a/b",
"packet_id": 7, "payload": b"hi"}``; MQTT 5 packets add ``properties`` (a dict by
property name; ``user_property`` is a list of ``[key, value]`` pairs and
``subscription_identifier`` a list of ints). Payloads, will payloads, passwords and
binary properties stay bytes. :func:`encode` is the inverse of :func:`decode_packet`.

Correlation: the client makes up its client id (CONNECT ``client_id``, never echoed)
and the packet identifiers of SUBSCRIBE, UNSUBSCRIBE, PUBLISH with QoS > 0 and PUBREL;
the server echoes them in SUBACK, UNSUBACK, PUBACK, PUBREC and PUBCOMP (all but PUBREC
free the identifier again). Replacing
``("packet_id",)`` rewrites the two bytes in place; replacing ``("client_id",)`` rewrites
the string and the lengths around it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from wstape.core.codecs import jsontext
from wstape.core.codecs.base import (
    Codec,
    Decoded,
    Heartbeat,
    HeartbeatRole,
    Path,
    Reassembler,
    Scalar,
    registered,
)
from wstape.core.codecs.textutil import line, load_json, preview, printable, short_json, utf8
from wstape.core.model import Message, Opcode, Open, Side

PACKET_TYPES = {
    1: "CONNECT",
    2: "CONNACK",
    3: "PUBLISH",
    4: "PUBACK",
    5: "PUBREC",
    6: "PUBREL",
    7: "PUBCOMP",
    8: "SUBSCRIBE",
    9: "SUBACK",
    10: "UNSUBSCRIBE",
    11: "UNSUBACK",
    12: "PINGREQ",
    13: "PINGRESP",
    14: "DISCONNECT",
    15: "AUTH",
}
TYPE_CODES = {name: code for code, name in PACKET_TYPES.items()}
_REQUIRED_FLAGS = {6: 0b0010, 8: 0b0010, 10: 0b0010}
"""Fixed-header flags each type must carry (PUBLISH has its own; the rest 0)."""

VERSIONS = {3: "v3.1", 4: "v3.1.1", 5: "v5"}
PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
MAX_REMAINING = 268_435_455
"""The largest remaining length four bytes can say."""

PROPERTIES: dict[int, tuple[str, str]] = {
    0x01: ("payload_format_indicator", "byte"),
    0x02: ("message_expiry_interval", "u32"),
    0x03: ("content_type", "utf8"),
    0x08: ("response_topic", "utf8"),
    0x09: ("correlation_data", "binary"),
    0x0B: ("subscription_identifier", "varint"),
    0x11: ("session_expiry_interval", "u32"),
    0x12: ("assigned_client_identifier", "utf8"),
    0x13: ("server_keep_alive", "u16"),
    0x15: ("authentication_method", "utf8"),
    0x16: ("authentication_data", "binary"),
    0x17: ("request_problem_information", "byte"),
    0x18: ("will_delay_interval", "u32"),
    0x19: ("request_response_information", "byte"),
    0x1A: ("response_information", "utf8"),
    0x1C: ("server_reference", "utf8"),
    0x1F: ("reason_string", "utf8"),
    0x21: ("receive_maximum", "u16"),
    0x22: ("topic_alias_maximum", "u16"),
    0x23: ("topic_alias", "u16"),
    0x24: ("maximum_qos", "byte"),
    0x25: ("retain_available", "byte"),
    0x26: ("user_property", "pair"),
    0x27: ("maximum_packet_size", "u32"),
    0x28: ("wildcard_subscription_available", "byte"),
    0x29: ("subscription_identifier_available", "byte"),
    0x2A: ("shared_subscription_available", "byte"),
}
PROPERTY_IDS = {name: (code, kind) for code, (name, kind) in PROPERTIES.items()}
REPEATABLE = frozenset({"user_property", "subscription_identifier"})
"""Properties that may appear more than once: their value is a list."""

V3_SUBACK_CODES = frozenset({0x00, 0x01, 0x02, 0x80})
V3_CONNACK = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
REASONS = {
    0x00: "success",
    0x01: "granted qos 1",
    0x02: "granted qos 2",
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x11: "no subscription existed",
    0x18: "continue authentication",
    0x19: "re-authenticate",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x92: "packet identifier not found",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x96: "message rate too high",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x99: "payload format invalid",
    0x9A: "retain not supported",
    0x9B: "qos not supported",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA0: "maximum connect time",
    0xA1: "subscription identifiers not supported",
    0xA2: "wildcard subscriptions not supported",
}

_GENERATED_ID = frozenset({"SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH", "PUBREL"})
_ECHOED_ID = frozenset({"SUBACK", "UNSUBACK", "PUBACK", "PUBREC", "PUBCOMP"})
_ENDS_ID = _ECHOED_ID - {"PUBREC"}
"""The acknowledgements after which a packet identifier is free again (a PUBREC is
followed by the client's PUBREL with the same one)."""
_HEARTBEATS = {
    "PINGREQ": Heartbeat(HeartbeatRole.PING, "mqtt"),
    "PINGRESP": Heartbeat(HeartbeatRole.PONG, "mqtt"),
}


class Malformed(ValueError):
    """Bytes that are not one well-formed MQTT packet."""


# -- reading -----------------------------------------------------------------------------


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data, self.pos, self.end = data, pos, end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise Malformed("packet too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        if self.pos >= self.end:
            raise Malformed("packet too short")
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def varint(self) -> int:
        value, shift = 0, 0
        for _ in range(4):
            byte = self.byte()
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
        raise Malformed("variable byte integer longer than 4 bytes")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        try:
            return self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("string is not UTF-8") from None

    def left(self) -> int:
        return self.end - self.pos

    def rest(self) -> bytes:
        return self.take(self.left())

    def done(self) -> None:
        if self.pos != self.end:
            raise Malformed("bytes left over")


def _properties(r: _Reader) -> dict[str, Any]:
    length = r.varint()
    if length > r.left():
        raise Malformed("properties longer than the packet")
    sub = _Reader(r.data, r.pos, r.pos + length)
    r.pos += length
    out: dict[str, Any] = {}
    while sub.left():
        code = sub.varint()
        if code not in PROPERTIES:
            raise Malformed(f"unknown property 0x{code:02x}")
        name, kind = PROPERTIES[code]
        value: Any
        if kind == "byte":
            value = sub.byte()
        elif kind == "u16":
            value = sub.u16()
        elif kind == "u32":
            value = sub.u32()
        elif kind == "varint":
            value = sub.varint()
        elif kind == "utf8":
            value = sub.string()
        elif kind == "binary":
            value = sub.binary()
        else:
            value = [sub.string(), sub.string()]
        if name in REPEATABLE:
            out.setdefault(name, []).append(value)
        elif name in out:
            raise Malformed(f"property {name} repeated")
        else:
            out[name] = value
    return out


def fixed_header(data: bytes | bytearray) -> tuple[int, int] | None:
    """``(header length, remaining length)`` of the packet starting ``data``.

    None when more bytes are needed to tell; :class:`Malformed` when the bytes cannot
    start a packet (reserved type 0, wrong flags, QoS 3, a length over 4 bytes).
    """
    if not data:
        return None
    first = data[0]
    ptype, flags = first >> 4, first & 0x0F
    if ptype == 0:
        raise Malformed("reserved packet type 0")
    if ptype == 3:
        if flags & 0b0110 == 0b0110:
            raise Malformed("PUBLISH with QoS 3")
    elif flags != _REQUIRED_FLAGS.get(ptype, 0):
        raise Malformed(f"{PACKET_TYPES[ptype]} with flags {flags:04b}")
    value, shift = 0, 0
    for i in range(1, 5):
        if i >= len(data):
            return None
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return i + 1, value
        shift += 7
    raise Malformed("remaining length longer than 4 bytes")


@dataclass(frozen=True)
class Packet:
    """A decoded packet and where its correlated fields are in the bytes."""

    value: dict[str, Any]
    body_at: int = 2
    """Offset of the variable header (after the fixed header)."""
    packet_id_at: int | None = None
    """Offset of the 2-byte packet identifier."""
    client_id_at: tuple[int, int] | None = None
    """Offsets of CONNECT's client id, its 2-byte length included."""


def decode_packet(data: bytes, version: int | None = None) -> Packet:
    """``data`` as exactly one MQTT packet; raises :class:`Malformed` otherwise.

    ``version`` is the protocol level of the session (3, 4 or 5); None reads the
    packet as 3.1.1 and, when that fails, as 5.0. CONNECT always says its own level.
    """
    header = fixed_header(data)
    if header is None:
        raise Malformed("no fixed header")
    header_len, remaining = header
    if header_len + remaining != len(data):
        raise Malformed("remaining length does not match the packet")
    ptype = data[0] >> 4
    if ptype == 1:
        return _connect(data, header_len)
    attempts = (version == 5,) if version is not None else (False, True)
    error: Malformed | None = None
    for v5 in attempts:
        try:
            return _packet(data, header_len, ptype, v5)
        except Malformed as exc:
            error = exc
    assert error is not None
    raise error


def _connect(data: bytes, start: int) -> Packet:
    r = _Reader(data, start, len(data))
    protocol = r.string()
    level = r.byte()
    if (protocol, level) not in (("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)):
        raise Malformed(f"not an MQTT protocol name and level: {protocol!r} {level}")
    v5 = level == 5
    flags = r.byte()
    if flags & 0x01:
        raise Malformed("CONNECT reserved flag set")
    has_will, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 0x03, bool(flags & 0x20)
    has_password, has_username = bool(flags & 0x40), bool(flags & 0x80)
    if will_qos == 3 or (not has_will and (will_qos or will_retain)):
        raise Malformed("CONNECT will flags")
    if has_password and not has_username and not v5:
        raise Malformed("CONNECT password without user name")
    value: dict[str, Any] = {
        "type": "CONNECT",
        "protocol": protocol,
        "version": level,
        ("clean_start" if v5 else "clean_session"): bool(flags & 0x02),
        "keepalive": r.u16(),
    }
    if v5:
        value["properties"] = _properties(r)
    cid_start = r.pos
    value["client_id"] = r.string()
    cid_at = (cid_start, r.pos)
    will: dict[str, Any] | None = None
    if has_will:
        will_props = _properties(r) if v5 else None
        will = {"topic": r.string(), "payload": r.binary(), "qos": will_qos, "retain": will_retain}
        if will_props is not None:
            will["properties"] = will_props
    value["will"] = will
    value["username"] = r.string() if has_username else None
    value["password"] = r.binary() if has_password else None
    r.done()
    return Packet(value, body_at=start, client_id_at=cid_at)


def _packet(data: bytes, start: int, ptype: int, v5: bool) -> Packet:
    r = _Reader(data, start, len(data))
    name = PACKET_TYPES[ptype]
    value: dict[str, Any] = {"type": name}
    pid_at: int | None = None
    flags = data[0] & 0x0F
    if name == "CONNACK":
        ack_flags = r.byte()
        if ack_flags & 0xFE:
            raise Malformed("CONNACK reserved flags")
        value["session_present"] = bool(ack_flags & 0x01)
        value["reason_code"] = r.byte()
        if v5:
            value["properties"] = _properties(r)
    elif name == "PUBLISH":
        qos = (flags >> 1) & 0x03
        value.update(dup=bool(flags & 0x08), qos=qos, retain=bool(flags & 0x01))
        value["topic"] = r.string()
        if qos:
            pid_at = r.pos
            value["packet_id"] = r.u16()
        if v5:
            value["properties"] = _properties(r)
        value["payload"] = r.rest()
    elif name in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP"):
        pid_at = r.pos
        value["packet_id"] = r.u16()
        if v5:
            value["reason_code"] = r.byte() if r.left() else 0
            value["properties"] = _properties(r) if r.left() else {}
    elif name == "SUBSCRIBE":
        pid_at = r.pos
        value["packet_id"] = r.u16()
        if v5:
            value["properties"] = _properties(r)
        subs = []
        while r.left():
            topic, options = r.string(), r.byte()
            sub: dict[str, Any] = {"topic": topic, "qos": options & 0x03}
            if options & 0x03 == 3:
                raise Malformed("SUBSCRIBE with QoS 3")
            if v5:
                if options & 0xC0 or (options >> 4) & 0x03 == 3:
                    raise Malformed("SUBSCRIBE reserved options")
                sub["no_local"] = bool(options & 0x04)
                sub["retain_as_published"] = bool(options & 0x08)
                sub["retain_handling"] = (options >> 4) & 0x03
            elif options & 0xFC:
                raise Malformed("SUBSCRIBE reserved options")
            subs.append(sub)
        if not subs:
            raise Malformed("SUBSCRIBE without a topic filter")
        value["subscriptions"] = subs
    elif name in ("SUBACK", "UNSUBACK"):
        pid_at = r.pos
        value["packet_id"] = r.u16()
        if v5:
            value["properties"] = _properties(r)
        if v5 or name == "SUBACK":
            codes = list(r.rest())
            if not codes:
                raise Malformed(f"{name} without a reason code")
            if not v5 and not set(codes) <= V3_SUBACK_CODES:
                raise Malformed("SUBACK return code")
            value["reason_codes"] = codes
    elif name == "UNSUBSCRIBE":
        pid_at = r.pos
        value["packet_id"] = r.u16()
        if v5:
            value["properties"] = _properties(r)
        topics = []
        while r.left():
            topics.append(r.string())
        if not topics:
            raise Malformed("UNSUBSCRIBE without a topic filter")
        value["topics"] = topics
    elif name in ("DISCONNECT", "AUTH"):
        if name == "AUTH" and not v5:
            raise Malformed("AUTH is MQTT 5 only")
        if v5:
            value["reason_code"] = r.byte() if r.left() else 0
            value["properties"] = _properties(r) if r.left() else {}
    # PINGREQ, PINGRESP: nothing after the fixed header
    r.done()
    return Packet(value, body_at=start, packet_id_at=pid_at)


# -- writing -----------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """``value`` as an MQTT variable byte integer."""
    if not 0 <= value <= MAX_REMAINING:
        raise ValueError(f"variable byte integer out of range: {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def _bin(data: bytes) -> bytes:
    return _u16(len(data)) + data


def _str(text: str) -> bytes:
    return _bin(text.encode("utf-8"))


def encode_properties(props: Mapping[str, Any]) -> bytes:
    body = bytearray()
    for name, value in props.items():
        code, kind = PROPERTY_IDS[name]
        for item in value if name in REPEATABLE else [value]:
            body += varint(code)
            if kind == "byte":
                body.append(item)
            elif kind == "u16":
                body += _u16(item)
            elif kind == "u32":
                body += item.to_bytes(4, "big")
            elif kind == "varint":
                body += varint(item)
            elif kind == "utf8":
                body += _str(item)
            elif kind == "binary":
                body += _bin(item)
            else:
                body += _str(item[0]) + _str(item[1])
    return varint(len(body)) + bytes(body)


def encode(value: Mapping[str, Any], version: int = 4) -> bytes:
    """The packet ``value`` (as :func:`decode_packet` returns it) in MQTT bytes.

    ``version`` is the session's protocol level (a CONNECT uses its own ``version``).
    Raises :class:`KeyError` / :class:`ValueError` for a value that is not a packet.
    """
    name = value["type"]
    ptype = TYPE_CODES[name]
    v5 = version == 5
    flags = _REQUIRED_FLAGS.get(ptype, 0)
    body = bytearray()
    if name == "CONNECT":
        level = value["version"]
        v5 = level == 5
        will = value["will"]
        flag_byte = 0x02 if value["clean_start" if v5 else "clean_session"] else 0
        if will is not None:
            flag_byte |= 0x04 | (will["qos"] << 3) | (0x20 if will["retain"] else 0)
        if value["password"] is not None:
            flag_byte |= 0x40
        if value["username"] is not None:
            flag_byte |= 0x80
        body += _str(value["protocol"]) + bytes([level, flag_byte]) + _u16(value["keepalive"])
        if v5:
            body += encode_properties(value["properties"])
        body += _str(value["client_id"])
        if will is not None:
            if v5:
                body += encode_properties(will["properties"])
            body += _str(will["topic"]) + _bin(will["payload"])
        if value["username"] is not None:
            body += _str(value["username"])
        if value["password"] is not None:
            body += _bin(value["password"])
    elif name == "CONNACK":
        body += bytes([1 if value["session_present"] else 0, value["reason_code"]])
        if v5:
            body += encode_properties(value["properties"])
    elif name == "PUBLISH":
        flags = (value["qos"] << 1) | (8 if value["dup"] else 0) | (1 if value["retain"] else 0)
        body += _str(value["topic"])
        if value["qos"]:
            body += _u16(value["packet_id"])
        if v5:
            body += encode_properties(value["properties"])
        body += value["payload"]
    elif name in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP"):
        body += _u16(value["packet_id"])
        if v5:
            body += _reason_tail(value)
    elif name == "SUBSCRIBE":
        body += _u16(value["packet_id"])
        if v5:
            body += encode_properties(value["properties"])
        for sub in value["subscriptions"]:
            options = sub["qos"]
            if v5:
                options |= (4 if sub["no_local"] else 0) | (8 if sub["retain_as_published"] else 0)
                options |= sub["retain_handling"] << 4
            body += _str(sub["topic"]) + bytes([options])
    elif name in ("SUBACK", "UNSUBACK"):
        body += _u16(value["packet_id"])
        if v5:
            body += encode_properties(value["properties"])
        if v5 or name == "SUBACK":
            body += bytes(value["reason_codes"])
    elif name == "UNSUBSCRIBE":
        body += _u16(value["packet_id"])
        if v5:
            body += encode_properties(value["properties"])
        for topic in value["topics"]:
            body += _str(topic)
    elif name in ("DISCONNECT", "AUTH") and v5:
        body += _reason_tail(value)
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + bytes(body)


def _reason_tail(value: Mapping[str, Any]) -> bytes:
    """The shortest form of an MQTT 5 reason code and properties."""
    code, props = value["reason_code"], value["properties"]
    if props:
        return bytes([code]) + encode_properties(props)
    return bytes([code]) if code else b""


# -- summaries ---------------------------------------------------------------------------


def summarize(value: Mapping[str, Any]) -> str:
    """One line for a decoded packet (never a password or a binary property's bytes)."""
    name = value["type"]
    parts = [name]
    if name == "CONNECT":
        parts.append(f"client_id={printable(value['client_id']) or '(empty)'}")
        parts.append(f"keepalive={value['keepalive']}")
        parts.append(VERSIONS.get(value["version"], str(value["version"])))
        if value.get("clean_start") or value.get("clean_session"):
            parts.append("clean")
        if value["username"] is not None:
            parts.append(f"username={printable(value['username'])}")
        if value["password"] is not None:
            parts.append("password=present")
        if value["will"] is not None:
            parts.append(f"will={printable(value['will']['topic'])}")
    elif name == "CONNACK":
        code = value["reason_code"]
        names = REASONS if "properties" in value else V3_CONNACK
        parts.append(_reason(code, names))
        if value["session_present"]:
            parts.append("session_present")
    elif name == "PUBLISH":
        if "packet_id" in value:
            parts.append(f"id={value['packet_id']}")
        parts.append(printable(value["topic"]) or "(no topic)")
        flags = [f"qos {value['qos']}"] if value["qos"] else []
        flags += [flag for flag in ("retain", "dup") if value[flag]]
        if flags:
            parts.append(f"({', '.join(flags)})")
        parts.append(preview(value["payload"]))
    elif name == "SUBSCRIBE":
        parts.append(f"id={value['packet_id']}")
        subs = [f"{printable(s['topic'])} (qos {s['qos']})" for s in value["subscriptions"]]
        parts.append(", ".join(subs))
    elif name == "UNSUBSCRIBE":
        parts.append(f"id={value['packet_id']}")
        parts.append(", ".join(printable(t) for t in value["topics"]))
    elif "packet_id" in value:
        parts.append(f"id={value['packet_id']}")
        if "reason_codes" in value:
            parts.append("[" + ", ".join(_code(c) for c in value["reason_codes"]) + "]")
    if name in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "DISCONNECT", "AUTH"):
        code = value.get("reason_code", 0)
        if code:
            parts.append(_reason(code, REASONS))
    props = value.get("properties")
    if name == "AUTH" and props and "authentication_method" in props:
        parts.append(f"method={printable(props['authentication_method'])}")
    if props and "reason_string" in props:
        parts.append(short_json(props["reason_string"], 40))
    return line(" ".join(parts))


def _code(code: int) -> str:
    """Small codes (granted QoS 0-2, 4) in decimal, the rest in hex as the spec writes them."""
    return str(code) if code < 0x10 else f"0x{code:02x}"


def _reason(code: int, names: Mapping[int, str]) -> str:
    return f"{_code(code)} {names[code]}" if code in names else _code(code)


# -- the codec ---------------------------------------------------------------------------


def connect_level(first: Sequence[Message]) -> int | None:
    """The protocol level of the CONNECT that starts the client's bytes, if it does."""
    head = bytearray()
    for message in first:
        if message.side is Side.CLIENT and message.opcode is Opcode.BINARY:
            head += message.payload
            if len(head) >= 16:
                break
    if not head:
        return None  # (no binary client message: no CONNECT)
    try:
        header = fixed_header(head)
    except Malformed:
        return None
    if header is None or head[0] >> 4 != 1:
        return None
    r = _Reader(bytes(head), header[0], len(head))
    try:
        protocol, level = r.string(), r.byte()
    except Malformed:
        return None
    return level if (protocol, level) in (("MQIsdp", 3), ("MQTT", 4), ("MQTT", 5)) else None


class MqttReassembler(Reassembler):
    """Whole MQTT packets from the binary messages of one direction."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def pending(self) -> int:
        return len(self._buf)

    def flush(self) -> list[tuple[Opcode, bytes]]:
        if not self._buf:
            return []
        held = bytes(self._buf)
        self._buf.clear()
        return [(Opcode.BINARY, held)]

    def feed(self, opcode: Opcode, payload: bytes) -> list[tuple[Opcode, bytes]]:
        if opcode is not Opcode.BINARY:
            return [(opcode, payload)]  # not MQTT: judged on its own, the stream goes on
        self._buf += payload
        out: list[tuple[Opcode, bytes]] = []
        pos = 0
        buf = self._buf
        while pos < len(buf):
            try:
                header = fixed_header(buf[pos : pos + 5])
            except Malformed:
                header = (0, -1)
            if header is None:
                break
            size = header[0] + header[1]
            if size < 0 or size > self.max_buffer:  # cannot start a packet (or too big)
                out.append((Opcode.BINARY, bytes(buf[pos:])))  # one unit of its own
                pos = len(buf)
                break
            if len(buf) - pos < size:
                break
            out.append((Opcode.BINARY, bytes(buf[pos : pos + size])))
            pos += size
        del buf[:pos]
        return out


def _packet_id(decoded: Decoded) -> object:
    value = decoded.value
    return value.get("packet_id") if isinstance(value, dict) else None


@registered
class MqttCodec(Codec):
    """MQTT 3.1 / 3.1.1 / 5.0; ``version`` fixes the layout (None: guess per packet)."""

    name = "mqtt"
    title = "MQTT 3.1.1 / 5.0"
    subprotocols = ("mqtt", "mqttv3.1")
    client_heartbeats = ((Opcode.BINARY, b"\xc0\x00", (Opcode.BINARY, b"\xd0\x00")),)
    client_replies = MappingProxyType(
        {
            "PUBACK": frozenset({"PUBLISH"}),
            "PUBREC": frozenset({"PUBLISH"}),
            "PUBREL": frozenset({"PUBREC"}),  # the second step of the client's QoS 2 PUBLISH
            "PUBCOMP": frozenset({"PUBREL"}),
        }
    )

    def __init__(self, version: int | None = None) -> None:
        self.version = version
        if version is not None:
            self.title = f"MQTT {VERSIONS.get(version, version)}"

    def detect(self, open_: Open, first: Sequence[Message]) -> bool:
        return super().detect(open_, first) or connect_level(first) is not None

    def answers(self, reply: Decoded, server: Decoded) -> bool:
        return super().answers(reply, server) and _packet_id(reply) == _packet_id(server)

    def for_connection(self, open_: Open, first: Sequence[Message]) -> Codec:
        level = connect_level(first)
        return self if level is None or level == self.version else MqttCodec(level)

    def reassembler(self, side: Side) -> Reassembler:
        return MqttReassembler()

    json_root = ("payload",)

    def json_doc(self, decoded: Decoded) -> Any:
        """A PUBLISH payload that is JSON text (an object or array), parsed."""
        value = decoded.value
        payload = value.get("payload") if value.get("type") == "PUBLISH" else None
        text = utf8(payload) if isinstance(payload, bytes) else None
        doc = None if text is None else load_json(text)
        return doc if isinstance(doc, dict | list) else None

    def json_parts(self, decoded: Decoded) -> tuple[Any, Any] | None:
        """A PUBLISH whose payload is JSON (an object or array) and its other fields."""
        doc = self.json_doc(decoded)
        if doc is None:
            return None
        return doc, {k: v for k, v in decoded.value.items() if k != "payload"}

    def packet(self, opcode: Opcode, payload: bytes) -> Packet | None:
        """``payload`` as one packet of this session's version, or None."""
        if opcode is not Opcode.BINARY:
            return None
        try:
            return decode_packet(payload, self.version)
        except Malformed:
            return None

    def decode(self, side: Side, opcode: Opcode, payload: bytes) -> Decoded | None:
        packet = self.packet(opcode, payload)
        if packet is None:
            return None
        value = packet.value
        name = value["type"]
        generated: tuple[Path, ...] = ()
        echoes: tuple[Path, ...] = ()
        if side is Side.CLIENT:
            if name == "CONNECT":
                generated = (("client_id",),)
            elif name in _GENERATED_ID and "packet_id" in value:
                generated = (("packet_id",),)
        elif name in _ECHOED_ID:
            echoes = (("packet_id",),)
        return Decoded(
            kind=name,
            value=value,
            summary=summarize(value),
            generated=generated,
            echoes=echoes,
            releases=echoes if name in _ENDS_ID else (),
            heartbeat=_HEARTBEATS.get(name),
        )

    def substitute(
        self,
        side: Side,
        opcode: Opcode,
        payload: bytes,
        replacements: Mapping[Path, Scalar],
    ) -> bytes:
        packet = self.packet(opcode, payload) if replacements else None
        if packet is None:
            return payload
        out = bytearray(payload)
        new_id = replacements.get(("packet_id",))
        if (
            packet.packet_id_at is not None
            and isinstance(new_id, int)
            and not isinstance(new_id, bool)
            and 0 <= new_id <= 0xFFFF
        ):
            out[packet.packet_id_at : packet.packet_id_at + 2] = _u16(new_id)
        new_cid = replacements.get(("client_id",))
        if packet.client_id_at is not None and isinstance(new_cid, str):
            encoded = new_cid.encode("utf-8")
            start, end = packet.client_id_at
            body = out[packet.body_at : start] + _bin(encoded) + out[end:]
            if len(encoded) <= 0xFFFF and len(body) <= MAX_REMAINING:
                out = bytearray(out[:1] + varint(len(body)) + body)
        inside = {p[1:]: v for p, v in replacements.items() if len(p) > 1 and p[0] == "payload"}
        if inside:
            out = _with_json_payload(packet, out, inside)
        return bytes(out)


def _with_json_payload(
    packet: Packet, out: bytearray, replacements: Mapping[Path, Scalar]
) -> bytearray:
    """A PUBLISH (``out``) with values at paths in its JSON payload replaced, its
    remaining length made to fit; as it was when the payload is not JSON text."""
    old = packet.value.get("payload") if packet.value.get("type") == "PUBLISH" else None
    text = utf8(old) if isinstance(old, bytes) else None
    if old is None or text is None:
        return out
    try:
        new = jsontext.replace(text, replacements).encode("utf-8")
    except (ValueError, RecursionError):
        return out
    header = fixed_header(bytes(out[:5]))
    if header is None:
        return out
    body = out[header[0] : len(out) - len(old)] + new
    if len(body) > MAX_REMAINING:
        return out
    return bytearray(out[:1] + varint(len(body)) + body)


__all__ = [
    "PACKET_TYPES",
    "PROPERTIES",
    "Malformed",
    "MqttCodec",
    "MqttReassembler",
    "Packet",
    "connect_level",
    "decode_packet",
    "encode",
    "encode_properties",
    "fixed_header",
    "summarize",
    "varint",
]
