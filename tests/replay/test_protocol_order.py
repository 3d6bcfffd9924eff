"""Verdicts on a protocol unit's place and shape, against the real replay CLI and a raw
client that writes its frames as the case needs: a graphql-transport-ws subscribe sent
with its init (before the ack could reach it), and a STOMP frame whose content-length
promises more than the client sent."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.rawclient import RawClient
from tests.replay.conftest import CassetteFactory, c, close, opening, s
from tests.replay.test_cli import Replay
from wstape.core.frames import OpCode, encode_close_body, encode_frame
from wstape.core.model import Side

GQL = "graphql-transport-ws"
INIT = '{"type":"connection_init"}'
SUB = '{"id":"1","type":"subscribe","payload":{"query":"{ a }"}}'
GRAPHQL = [
    opening(1, "/graphql", subprotocols=(GQL,), subprotocol=GQL),
    c(1, 0.01, INIT),
    s(1, 0.02, '{"type":"connection_ack"}'),
    c(1, 0.03, SUB),
    s(1, 0.04, '{"id":"1","type":"next","payload":{"data":{"a":1}}}'),
    s(1, 0.05, '{"id":"1","type":"complete"}'),
    close(1, 0.06, Side.CLIENT, 1000),
]


def _frame(text: str) -> bytes:
    return encode_frame(OpCode.TEXT, text.encode(), mask_key=b"\x01\x02\x03\x04")


async def _graphql(replay: Replay, *, pipelined: bool) -> None:
    raw = await RawClient.connect(replay.port)
    assert (await raw.handshake("/graphql", protocols=GQL)).status == 101
    if pipelined:
        await raw.write(_frame(INIT) + _frame(SUB))  # one write: it did not wait
        frame = await raw.recv()
        assert frame is not None and b"connection_ack" in frame.payload
    else:
        await raw.send_text(INIT)
        frame = await raw.recv()
        assert frame is not None and b"connection_ack" in frame.payload
        await raw.send_text(SUB)
    for _ in range(2):
        assert await raw.recv() is not None  # next, complete
    await raw.send_close(encode_close_body(1000))
    await raw.recv_until_close()
    await raw.aclose()


async def test_a_graphql_subscribe_sent_with_its_init_fails_as_a_real_server_refuses_it(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(GRAPHQL)) as replay:
        await _graphql(replay, pipelined=True)
        code, _, err = await replay.finish()
    assert code == 1, err
    found = replay.report()["violations"]
    assert [v["rule"] for v in found] == ["REPLAY-MESSAGE-MISMATCH"]
    assert "before the server's connection_ack" in found[0]["message"]
    assert "4401" in found[0]["message"]


async def test_a_graphql_subscribe_after_the_ack_passes(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(GRAPHQL)) as replay:
        await _graphql(replay, pipelined=False)
        code, _, err = await replay.finish()
    assert code == 0, err


STOMP = "v12.stomp"
CONNECT = "CONNECT\naccept-version:1.2\nhost:/\n\n\x00"
SEND = "SEND\ndestination:/q\ncontent-length:5\n\nhello\x00"
DISCONNECT = "DISCONNECT\n\n\x00"
STOMP_SEND = [
    opening(1, "/stomp", subprotocols=(STOMP,), subprotocol=STOMP),
    c(1, 0.01, CONNECT),
    s(1, 0.02, "CONNECTED\nversion:1.2\n\n\x00"),
    c(1, 0.03, SEND),
    c(1, 0.04, DISCONNECT),
    close(1, 0.05, Side.CLIENT, 1000),
]


async def test_a_stomp_frame_cut_short_is_the_mismatch_not_a_client_that_left(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    async with Replay(tmp_path, make_cassette(STOMP_SEND)) as replay:
        raw = await RawClient.connect(replay.port)
        assert (await raw.handshake("/stomp", protocols=STOMP)).status == 101
        await raw.send_text(CONNECT)
        assert await raw.recv() is not None  # CONNECTED
        await raw.send_text(SEND.replace("content-length:5", "content-length:50"))
        await raw.send_text(DISCONNECT)
        await raw.send_close(encode_close_body(1000))
        await raw.recv_until_close()
        await raw.aclose()
        code, _, err = await replay.finish()
    assert code == 1, err
    found = replay.report()["violations"]
    mismatches = [v for v in found if v["rule"] == "REPLAY-MESSAGE-MISMATCH"]
    assert len(mismatches) == 1 and "content-length:50" in mismatches[0]["message"]


async def test_a_message_left_unfinished_is_reported_as_such_not_as_silence(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    # QA: a client that sent the first fragment of its message and never the final one was
    # told it "sent nothing".
    records = [opening(1), c(1, 0.01, "hello"), s(1, 0.02, "hi"), close(1, 0.03, Side.CLIENT, 1000)]
    async with Replay(tmp_path, make_cassette(records), "--timeout", "1") as replay:
        raw = await RawClient.connect(replay.port)
        assert (await raw.handshake("/chat")).status == 101
        await raw.write(encode_frame(OpCode.TEXT, b"hel", fin=False, mask_key=b"\x01\x02\x03\x04"))
        await raw.recv_until_close()
        await raw.aclose()
        code, _, err = await replay.finish()
    assert code == 1, err
    (silent,) = [v for v in replay.report()["violations"] if v["rule"] == "REPLAY-CLIENT-SILENT"]
    assert silent["message"].startswith("client left a message unfinished: 1 frame (3 bytes)")
    assert silent["actual"] == {"frames": 1, "bytes": 3}


async def test_strict_fails_a_replay_on_a_changed_close_code(
    tmp_path: Path, make_cassette: CassetteFactory
) -> None:
    # QA: a client that closed with another code than recorded passed (a warning), though
    # README said exit 0 means it did what the recording did. --strict fails it.
    records = [opening(1), c(1, 0.01, "hello"), s(1, 0.02, "hi"), close(1, 0.03, Side.CLIENT, 4001)]
    for strict, code in ((False, 0), (True, 1)):
        args = ("--strict",) if strict else ()
        run = tmp_path / f"strict-{strict}"
        run.mkdir()
        async with Replay(run, make_cassette(records), *args) as replay:
            raw = await RawClient.connect(replay.port)
            assert (await raw.handshake("/chat")).status == 101
            await raw.send_text("hello")
            assert await raw.recv() is not None
            await raw.send_close(encode_close_body(4002))
            await raw.recv_until_close()
            await raw.aclose()
            got, _, err = await replay.finish()
        assert got == code, err
        rules = [(v["rule"], v["severity"]) for v in replay.report()["violations"]]
        assert rules == [("REPLAY-CLOSE-CHANGED", "warn")]
        assert replay.report().get("strict", False) is strict
