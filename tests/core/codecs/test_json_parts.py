"""``--match json`` inside a protocol's units: the JSON the application wrote (a Socket.IO
packet's payload, a STOMP body, an MQTT PUBLISH payload) is compared with the ignored
paths relative to it, the rest of the unit exactly."""

from __future__ import annotations

from wstape.core.codecs import CODECS
from wstape.core.codecs.mqtt import encode
from wstape.core.matchers import match_unit
from wstape.core.model import Message, Opcode, Side


def client(payload: str | bytes) -> Message:
    opcode = Opcode.TEXT if isinstance(payload, str) else Opcode.BINARY
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(1, 0.0, Side.CLIENT, opcode, data)


def judge(codec: str, recorded: str | bytes, live: str | bytes, *paths: str) -> tuple[bool, str]:
    expected = client(recorded)
    data = live.encode() if isinstance(live, str) else live
    result = match_unit("json", CODECS.get(codec), expected, expected.opcode, data, paths)
    return result.ok, result.diff


def test_socketio_event_arguments() -> None:
    rec = '42["hello",{"name":"py","ts":1700000000}]'
    live = '42["hello",{"name":"py","ts":1796284192}]'
    assert judge("socketio", rec, live, "$[1].ts") == (True, "")
    assert judge("socketio", rec, live) == (False, "$[1].ts: expected 1700000000, got 1796284192")
    # the packet's own fields still count: another namespace is a difference
    ok, diff = judge("socketio", rec, live.replace("42[", "42/admin,["), "$[1].ts")
    assert not ok and diff == 'EVENT $.nsp: expected "/", got "/admin"'


def _frame(body: str, **headers: str) -> str:
    lines = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"SEND\n{lines}\n{body}\x00"


def test_stomp_json_body() -> None:
    rec = _frame('{"name":"py","ts":1700000000}', destination="/q", content_length="29")
    live = _frame('{"name":"py","ts":17}', destination="/q", content_length="21")
    assert judge("stomp", rec, live, "$.ts") == (True, "")  # content-length follows the body
    ok, diff = judge("stomp", rec, live.replace("/q", "/x"), "$.ts")
    assert not ok and diff == 'SEND $.headers.destination: expected "/q", got "/x"'


def test_mqtt_json_payload() -> None:
    def publish(payload: bytes, topic: str = "a/b") -> bytes:
        return encode({"type": "PUBLISH", "dup": False, "qos": 0, "retain": False,
                       "topic": topic, "payload": payload})  # fmt: skip

    rec, live = publish(b'{"ts":1,"v":2}'), publish(b'{"ts":99,"v":2}')
    assert judge("mqtt", rec, live, "$.ts") == (True, "")
    assert judge("mqtt", rec, publish(b'{"ts":99,"v":2}', "a/c"), "$.ts")[0] is False


def test_units_without_json_are_compared_as_before() -> None:
    assert judge("socketio", "40", "40", "$.x") == (True, "")
    assert judge("socketio", "42[1]", "42[2]")[0] is False
    assert (
        judge("stomp", _frame("hello", destination="/q"), _frame("hellO", destination="/q"))[0]
        is False
    )
