"""Correlation: values the client makes up, put back for matching and into the replies."""

from __future__ import annotations

import json

from wstape.core.codecs import CODECS, Codec
from wstape.core.codecs.mqtt import encode
from wstape.core.matchers import parse_path
from wstape.core.model import Message, Opcode, Open, Side
from wstape.core.replay.correlate import Correlator

REC_ID = "0b5e2a1c-3c11-4d7e-9e7f-5a1b2c3d4e5f"
LIVE_ID = "f7c9d8e1-aaaa-4bbb-8ccc-0123456789ab"


def client(payload: str | bytes, opcode: Opcode = Opcode.TEXT) -> Message:
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(1, 0.0, Side.CLIENT, opcode, data)


def test_uuids_are_correlated_without_a_codec() -> None:
    corr = Correlator()
    recorded = client(json.dumps({"op": "get", "id": REC_ID}))
    live = json.dumps({"op": "get", "id": LIVE_ID}).encode()
    assert corr.learn(recorded, Opcode.TEXT, live) == recorded.payload
    reply = json.dumps({"id": REC_ID, "result": [1, 2], "note": "not " + REC_ID}).encode()
    out = json.loads(corr.rewrite(Opcode.TEXT, reply))
    assert out == {"id": LIVE_ID, "result": [1, 2], "note": "not " + REC_ID}
    assert corr.substituted == 1


def test_other_differences_are_left_for_the_matcher() -> None:
    corr = Correlator()
    recorded = client(json.dumps({"op": "get", "id": REC_ID}))
    live = json.dumps({"op": "put", "id": LIVE_ID}).encode()
    # The id is put back, the changed op is not: the matcher will see exactly that.
    assert json.loads(corr.learn(recorded, Opcode.TEXT, live)) == {"op": "put", "id": REC_ID}


def test_correlate_paths_for_non_uuid_values() -> None:
    corr = Correlator(paths=[parse_path("$.seq")], uuids=False)
    recorded = client('{"seq": 17, "q": "x"}')
    assert corr.learn(recorded, Opcode.TEXT, b'{"seq": 4242, "q": "x"}') == recorded.payload
    assert corr.rewrite(Opcode.TEXT, b'{"seq":17,"other":17}') == b'{"seq":4242,"other":17}'


def test_uuids_off_leaves_them() -> None:
    corr = Correlator(uuids=False)
    recorded = client(json.dumps({"id": REC_ID}))
    live = json.dumps({"id": LIVE_ID}).encode()
    assert corr.learn(recorded, Opcode.TEXT, live) == live
    assert not corr.values


def test_graphql_ids_through_the_codec() -> None:
    proto = "graphql-transport-ws"
    op = Open(1, 0.0, "GET", "ws", "h", 80, "/graphql", "HTTP/1.1", (), 101, (),
              subprotocols=(proto,), subprotocol=proto)  # fmt: skip
    codec = CODECS.detect(op, [])
    assert codec is not None and codec.name == "graphql-transport-ws"
    corr = Correlator(codec)
    recorded = client('{"id":"1","type":"subscribe","payload":{"query":"{ hello }"}}')
    live = b'{"id":"abc","type":"subscribe","payload":{"query":"{ hello }"}}'
    assert corr.learn(recorded, Opcode.TEXT, live) == recorded.payload
    assert corr.rewrite(Opcode.TEXT, b'{"id":"1","type":"next","payload":{"data":1}}') == (
        b'{"id":"abc","type":"next","payload":{"data":1}}'
    )


def test_mqtt_packet_ids_and_client_id_through_the_codec() -> None:
    op = Open(1, 0.0, "GET", "ws", "h", 80, "/mqtt", "HTTP/1.1", (), 101, (),
              subprotocols=("mqtt",), subprotocol="mqtt")  # fmt: skip
    connect = {"type": "CONNECT", "protocol": "MQTT", "version": 4, "clean_session": True,
               "keepalive": 60, "client_id": "mqttjs_1111", "will": None,
               "username": None, "password": None}  # fmt: skip
    codec = CODECS.detect(op, [client(encode(connect), Opcode.BINARY)])
    assert codec is not None and codec.name == "mqtt"
    corr = Correlator(codec)
    recorded = client(encode(connect), Opcode.BINARY)
    live = encode({**connect, "client_id": "mqttjs_abcdefgh"})
    assert corr.learn(recorded, Opcode.BINARY, live) == recorded.payload
    sub = {"type": "SUBSCRIBE", "packet_id": 100, "subscriptions": [{"topic": "a/b", "qos": 1}]}
    live_sub = encode({**sub, "packet_id": 9})
    assert corr.learn(client(encode(sub), Opcode.BINARY), Opcode.BINARY, live_sub) == encode(sub)
    suback = encode({"type": "SUBACK", "packet_id": 100, "reason_codes": [1]})
    rewritten = codec.decode(Side.SERVER, Opcode.BINARY, corr.rewrite(Opcode.BINARY, suback))
    assert rewritten is not None and rewritten.value["packet_id"] == 9


def test_nothing_learned_is_the_fast_path() -> None:
    corr = Correlator()
    payload = b'{"id":"' + REC_ID.encode() + b'"}'
    assert corr.rewrite(Opcode.TEXT, payload) is payload
    assert corr.substituted == 0


ROOM = "2b0c6f0e-8a51-4c7e-9d51-0d7a4c7b1a11"


def test_a_uuid_the_server_sent_must_come_back_as_sent() -> None:
    corr = Correlator()
    hello = client(json.dumps({"type": "hello", "req": REC_ID}))
    assert corr.learn(hello, Opcode.TEXT, json.dumps({"type": "hello", "req": LIVE_ID}).encode())
    assert corr.conflicts == []  # the client's own request id: correlated
    welcome = json.dumps({"type": "welcome", "req": REC_ID, "room": ROOM}).encode()
    assert json.loads(corr.rewrite(Opcode.TEXT, welcome))["req"] == LIVE_ID
    join = client(json.dumps({"type": "join", "room": ROOM}))
    assert corr.learn(join, Opcode.TEXT, join.payload) == join.payload
    assert corr.conflicts == []
    made_up = json.dumps({"type": "join", "room": "8a80488c-0bbb-44e6-9742-6b0e7cf43ac4"})
    assert corr.learn(join, Opcode.TEXT, made_up.encode()) == join.payload
    [conflict] = corr.conflicts
    assert conflict.startswith(f'$.room: expected "{ROOM}", which the server sent earlier')
    assert ROOM not in corr.values  # nothing learned: later replies keep the server's room
    said = json.dumps({"type": "said", "room": ROOM}).encode()
    assert corr.rewrite(Opcode.TEXT, said) == said


def test_a_server_uuid_the_client_generated_first_comes_back_live() -> None:
    corr = Correlator()
    sub = client(json.dumps({"op": "sub", "id": REC_ID}))
    corr.learn(sub, Opcode.TEXT, json.dumps({"op": "sub", "id": LIVE_ID}).encode())
    corr.rewrite(Opcode.TEXT, json.dumps({"ok": REC_ID}).encode())  # the server echoes it
    again = client(json.dumps({"op": "unsub", "id": REC_ID}))
    assert corr.learn(again, Opcode.TEXT, json.dumps({"op": "unsub", "id": LIVE_ID}).encode()) == (
        again.payload
    )
    assert corr.conflicts == []
    corr.learn(again, Opcode.TEXT, json.dumps({"op": "unsub", "id": ROOM}).encode())
    assert corr.conflicts and f'expected "{LIVE_ID}"' in corr.conflicts[0]


def test_a_uuid_the_server_sends_only_later_is_still_the_clients() -> None:
    corr = Correlator()
    recorded = client(json.dumps({"id": REC_ID}))
    assert corr.learn(recorded, Opcode.TEXT, json.dumps({"id": LIVE_ID}).encode()) == (
        recorded.payload
    )
    assert corr.conflicts == []
    assert corr.values == {REC_ID: LIVE_ID}


# -- ids in use: the same live value each time, no two recorded ids sharing one --------


def _codec(name: str) -> Codec:
    return CODECS.get(name)


def _learn(corr: Correlator, recorded: str | bytes, live: str | bytes) -> list[str]:
    opcode = Opcode.TEXT if isinstance(recorded, str) else Opcode.BINARY
    rec = recorded.encode() if isinstance(recorded, str) else recorded
    out = live.encode() if isinstance(live, str) else live
    corr.learn(Message(1, 0.0, Side.CLIENT, opcode, rec), opcode, out)
    return corr.conflicts


def _gql(mtype: str, ident: str) -> str:
    return json.dumps({"id": ident, "type": mtype}, separators=(",", ":"))


def test_graphql_complete_must_name_a_live_subscription() -> None:
    corr = Correlator(_codec("graphql-transport-ws"))
    assert _learn(corr, _gql("subscribe", "a"), _gql("subscribe", "x1")) == []
    assert _learn(corr, _gql("subscribe", "b"), _gql("subscribe", "x2")) == []
    [conflict] = _learn(corr, _gql("complete", "a"), _gql("complete", "nosuch"))
    assert (
        conflict
        == '$.id: expected "x1", the client\'s value for recorded "a" (still in use), got "nosuch"'
    )
    assert _learn(corr, _gql("complete", "a"), _gql("complete", "x2"))  # the other one's id
    assert _learn(corr, _gql("complete", "a"), _gql("complete", "x1")) == []


def test_graphql_two_subscriptions_may_not_share_an_id_until_one_ends() -> None:
    corr = Correlator(_codec("graphql-transport-ws"))
    assert _learn(corr, _gql("subscribe", "a"), _gql("subscribe", "a")) == []  # kept as is
    [conflict] = _learn(corr, _gql("subscribe", "b"), _gql("subscribe", "a"))
    assert conflict.startswith('$.id: "a" is already the client\'s value for recorded "a"')
    # once the server completed "a", the client may use its id again
    corr.rewrite(Opcode.TEXT, _gql("complete", "a").encode())
    assert _learn(corr, _gql("subscribe", "b"), _gql("subscribe", "a")) == []
    assert corr.rewrite(Opcode.TEXT, _gql("next", "b").encode()) == _gql("next", "a").encode()


def _frame(command: str, **headers: str) -> str:
    lines = "".join(f"{k.replace('_', '-')}:{v}\n" for k, v in headers.items())
    return f"{command}\n{lines}\n\x00"


def test_stomp_unsubscribe_and_transactions_must_use_the_live_ids() -> None:
    corr = Correlator(_codec("stomp"))
    assert _learn(corr, _frame("SUBSCRIBE", id="sub-0"), _frame("SUBSCRIBE", id="s-9")) == []
    assert (
        _learn(corr, _frame("BEGIN", transaction="tx-0"), _frame("BEGIN", transaction="t-9")) == []
    )
    [conflict] = _learn(
        corr, _frame("SEND", transaction="tx-0"), _frame("SEND", transaction="t-other")
    )
    assert conflict.startswith('$.headers.transaction: expected "t-9"')
    assert _learn(corr, _frame("COMMIT", transaction="tx-0"), _frame("COMMIT", transaction="t-x"))
    assert _learn(corr, _frame("UNSUBSCRIBE", id="sub-0"), _frame("UNSUBSCRIBE", id="nosuch"))
    assert _learn(corr, _frame("UNSUBSCRIBE", id="sub-0"), _frame("UNSUBSCRIBE", id="s-9")) == []
    # UNSUBSCRIBE ended it: a new subscription may take the id again
    assert _learn(corr, _frame("SUBSCRIBE", id="sub-1"), _frame("SUBSCRIBE", id="s-9")) == []


def _mqtt(kind: str, pid: int) -> bytes:
    if kind == "PUBLISH":
        return encode({"type": "PUBLISH", "dup": False, "qos": 2, "retain": False,
                       "topic": "a/c", "packet_id": pid, "payload": b"up"})  # fmt: skip
    return encode({"type": kind, "packet_id": pid})


def test_mqtt_pubrel_must_carry_the_publish_packet_id() -> None:
    corr = Correlator(_codec("mqtt"))
    codec = _codec("mqtt")
    assert _learn(corr, _mqtt("PUBLISH", 2), _mqtt("PUBLISH", 8)) == []
    assert corr.rewrite(Opcode.BINARY, _mqtt("PUBREC", 2)) == _mqtt("PUBREC", 8)
    [conflict] = _learn(corr, _mqtt("PUBREL", 2), _mqtt("PUBREL", 99))
    assert (
        conflict
        == "$.packet_id: expected 8, the client's value for recorded 2 (still in use), got 99"
    )
    # the PUBCOMP carries the PUBLISH's id, not the one the PUBREL made up
    pubcomp = codec.decode(
        Side.SERVER, Opcode.BINARY, corr.rewrite(Opcode.BINARY, _mqtt("PUBCOMP", 2))
    )
    assert pubcomp is not None and pubcomp.value["packet_id"] == 8


def test_mqtt_packet_ids_are_free_again_after_their_ack() -> None:
    corr = Correlator(_codec("mqtt"))
    assert _learn(corr, _mqtt("PUBLISH", 2), _mqtt("PUBLISH", 7)) == []
    assert _learn(corr, _mqtt("PUBLISH", 3), _mqtt("PUBLISH", 7))  # 2 is still in flight
    corr.rewrite(Opcode.BINARY, _mqtt("PUBREC", 2))
    assert _learn(corr, _mqtt("PUBREL", 2), _mqtt("PUBREL", 7)) == []
    corr.rewrite(Opcode.BINARY, _mqtt("PUBCOMP", 2))
    assert _learn(corr, _mqtt("PUBLISH", 3), _mqtt("PUBLISH", 7)) == []


def _rpc(ident: int, method: str = "get") -> str:
    return json.dumps({"jsonrpc": "2.0", "method": method, "id": ident})


def test_jsonrpc_outstanding_requests_need_ids_of_their_own() -> None:
    corr = Correlator(_codec("jsonrpc"))
    assert _learn(corr, _rpc(3), _rpc(13)) == []
    [conflict] = _learn(corr, _rpc(4), _rpc(13))
    assert conflict.startswith("$.id: 13 is already the client's value for recorded 3")
    # a client that numbers every request 1, one at a time, is consistent
    corr = Correlator(_codec("jsonrpc"))
    for recorded in (1, 2, 3):
        assert _learn(corr, _rpc(recorded), _rpc(1)) == []
        reply = json.dumps({"jsonrpc": "2.0", "result": 0, "id": recorded}).encode()
        assert json.loads(corr.rewrite(Opcode.TEXT, reply))["id"] == 1


def test_uuids_in_use_are_bound_too() -> None:
    corr = Correlator()
    assert _learn(corr, json.dumps({"req": REC_ID}), json.dumps({"req": LIVE_ID})) == []
    assert _learn(corr, json.dumps({"ack": REC_ID}), json.dumps({"ack": ROOM}))
    other = "11111111-2222-4333-8444-555555555555"
    assert _learn(corr, json.dumps({"req": other}), json.dumps({"req": LIVE_ID}))


# -- the JSON rules inside a codec's units -----------------------------------------------


def test_a_uuid_in_jsonrpc_params_is_correlated_with_the_request_id() -> None:
    corr = Correlator(_codec("jsonrpc"))
    recorded = client(_rpc_send(1, REC_ID))
    assert corr.learn(recorded, Opcode.TEXT, _rpc_send(7, LIVE_ID).encode()) == recorded.payload
    assert corr.conflicts == []
    reply = json.dumps({"jsonrpc": "2.0", "result": {"stored": REC_ID}, "id": 1}).encode()
    assert json.loads(corr.rewrite(Opcode.TEXT, reply)) == {
        "jsonrpc": "2.0",
        "result": {"stored": LIVE_ID},
        "id": 7,
    }


def _rpc_send(ident: int, msg_id: str) -> str:
    params = {"msgId": msg_id, "text": "hi"}
    return json.dumps({"jsonrpc": "2.0", "method": "send", "params": params, "id": ident})


def test_correlate_paths_apply_to_the_codecs_json() -> None:
    corr = Correlator(_codec("jsonrpc"), paths=[parse_path("$.params.msgId")], uuids=False)
    recorded = client(_rpc_send(1, "m-1"))
    assert corr.learn(recorded, Opcode.TEXT, _rpc_send(1, "m-77").encode()) == recorded.payload
    assert corr.values == {"m-1": "m-77"}
    # a Socket.IO event: paths are into its arguments, the packet's JSON
    corr = Correlator(_codec("socketio"), paths=[parse_path("$[1].id")], uuids=False)
    recorded = client('421["msg",{"id":"m-1","text":"hi"}]')
    assert corr.learn(recorded, Opcode.TEXT, b'425["msg",{"id":"m-9","text":"hi"}]') == (
        recorded.payload
    )
    assert corr.rewrite(Opcode.TEXT, b'431[{"id":"m-1"}]') == b'435[{"id":"m-1"}]'
    assert corr.rewrite(Opcode.TEXT, b'42["stored",{"id":"m-1"}]') == b'42["stored",{"id":"m-9"}]'


def test_a_uuid_in_socketio_arguments_is_correlated() -> None:
    def event(ident: str) -> str:
        return '421["msg",{"id":"' + ident + '"}]'

    def ack(ident: str) -> bytes:
        return ('431[{"stored":"' + ident + '"}]').encode()

    corr = Correlator(_codec("socketio"))
    recorded = client(event(REC_ID))
    assert corr.learn(recorded, Opcode.TEXT, event(LIVE_ID).encode()) == recorded.payload
    assert corr.conflicts == []
    assert corr.rewrite(Opcode.TEXT, ack(REC_ID)) == ack(LIVE_ID)


def test_a_server_uuid_in_a_codecs_json_must_come_back() -> None:
    corr = Correlator(_codec("jsonrpc"))
    corr.rewrite(
        Opcode.TEXT, json.dumps({"jsonrpc": "2.0", "result": {"room": ROOM}, "id": 1}).encode()
    )
    join = {"jsonrpc": "2.0", "method": "join", "params": {"room": ROOM}, "id": 2}
    live = {**join, "params": {"room": LIVE_ID}}
    assert _learn(corr, json.dumps(join), json.dumps(live))[0].startswith(
        f'$.params.room: expected "{ROOM}"'
    )
