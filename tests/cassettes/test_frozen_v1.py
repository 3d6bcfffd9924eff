"""tests/data/cassette-v1.msgpack is frozen: written once by format version 1, never
regenerated. Every later wstape must still read it to exactly these records."""

from __future__ import annotations

from pathlib import Path

from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Side, TlsInfo

V1 = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"


def test_reads_frozen_v1_sample() -> None:
    header, recs = read_cassette(V1)
    assert header.version == 1
    assert header.creator == "wstape 0.1.0"
    assert header.started_at == 1795590000.0
    assert [type(r) for r in recs] == [
        Open,
        Message,
        Message,
        Message,
        Note,
        Open,
        Close,
        Open,
        Close,
    ]
    chat = recs[0]
    assert isinstance(chat, Open)
    assert chat.url == "wss://chat.example.com/chat?room=1"
    assert chat.subprotocols == ("chat.v1", "chat.v0") and chat.subprotocol == "chat.v1"
    assert chat.tls == TlsInfo(version="TLSv1.3", sni="chat.example.com", alpn="http/1.1")
    assert chat.request_header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert chat.client == "127.0.0.1:50000"
    assert recs[1] == Message(
        1, 0.01, Side.CLIENT, Opcode.TEXT, '{"type":"hello","name":"小明"}'.encode()
    )
    assert recs[3] == Message(1, 0.5, Side.SERVER, Opcode.BINARY, bytes(range(256)))
    assert recs[4] == Note(conn=1, text="a note", t=0.6)
    refused = recs[5]
    assert isinstance(refused, Open)
    assert (refused.status, refused.reason, refused.body) == (403, "Forbidden", b"no")
    reason = "用户主动退出登录" * 5 + "谢"
    assert recs[6] == Close(1, 1.0, Side.CLIENT, 4001, reason, True)
    assert len(reason.encode()) == 123
    assert recs[8] == Close(3, 2.5, Side.SERVER, 1006, "", False)
