"""A live session through a real mitmdump running both the wstape addon and mitmproxy's own
``savehar`` (``--set hardump=...``): ``wstape import`` of the HAR gives the messages the
cassette recorded.

What a savehar HAR cannot carry, checked below rather than papered over:

- how a connection ended: savehar writes ``_webSocketMessages`` with ``type``, ``time``,
  ``opcode`` and ``data`` only, and no Close frame, close code, reason or closing side.
  ``wstape import`` therefore gives every accepted connection ``Close(by=None, code=None,
  reason="", on_wire=False)`` at its last message time, followed by a note saying the end
  is unknown; the cassette has the real closes (4001 by the client, 4003 by the server);
- the client address (``Open.client``): not in a HAR;
- ``Open.started_at``: the recorder takes the end of the 101 response, the HAR the start
  of the request, so relative message times ``t`` differ by the handshake's duration;
  absolute times (``started_at + t``) agree, and are what is compared;
- a connection still open when mitmdump exits: savehar saves WebSocket flows only on
  ``websocket_end``, which mitmproxy does not call at shutdown, so such a connection is
  missing from the HAR altogether (the recorder writes it with an unknown close). This
  session closes every connection before stopping mitmdump.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers.servers import (
    MITMDUMP,
    REFUSE_BODY,
    SUBPROTOCOL,
    Mitmdump,
    ScenarioServer,
    clean_env,
    wait_for_records,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.interchange.har import UNKNOWN_END_NOTE

TIME_TOLERANCE = 1e-5
"""Seconds. Both files take a message's time from the same mitmproxy object; the HAR's
``startedDateTime`` has microseconds, the import rounds ``t`` to 1 µs, and float epoch
seconds carry ~0.5 µs: a few µs at most, well under a handshake's duration (~1 ms), so
comparing relative times by mistake would fail."""


def _has_savehar() -> bool:
    try:
        import mitmproxy.addons.savehar  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = [
    pytest.mark.skipif(not MITMDUMP.exists(), reason=f"no mitmdump next to Python: {MITMDUMP}"),
    pytest.mark.skipif(
        not _has_savehar(), reason="this mitmproxy has no savehar addon (hardump option)"
    ),
]

CHAT = "/chat?room=1"
SERVER_CLOSES = "/close4003/second"
REFUSED = "/refuse/admin"
CLIENT_CLOSE_REASON = "bye from the client ✓"
NON_ASCII = "héllo 小明 🎉 — ünïcödé"
BIG = bytes(range(256)) * 300  # 76,800 bytes: a 64-bit frame length


def _wstape(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wstape", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=clean_env(),
        timeout=30,
        check=False,
    )


async def _session(port: int) -> None:
    base = f"ws://127.0.0.1:{port}"
    async with connect(
        base + CHAT,
        proxy=None,
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        max_size=None,
    ) as ws:
        sent: list[str | bytes] = ["hello", NON_ASCII, b"\x00\x01\xfe\xff", BIG, "", b""]
        for message in sent:
            await ws.send(message)
            assert await ws.recv() == message
        await ws.close(4001, CLIENT_CLOSE_REASON)
    async with connect(base + SERVER_CLOSES, proxy=None) as ws:
        await ws.send(b"\x80binary before the server's close")
        await ws.recv()
        await ws.send("close please")  # the scenario server answers with Close 4003
        await ws.wait_closed()
    with pytest.raises(InvalidStatus):
        await connect(base + REFUSED, proxy=None)


def _opens(records: list[Record]) -> list[Open]:
    return [r for r in records if isinstance(r, Open)]


def _messages(records: list[Record], opened: Open) -> list[tuple[Side, Opcode, bytes]]:
    return [
        (m.side, m.opcode, m.payload)
        for m in records
        if isinstance(m, Message) and m.conn == opened.conn
    ]


def _times(records: list[Record], opened: Open) -> list[float]:
    return [
        opened.started_at + m.t for m in records if isinstance(m, Message) and m.conn == opened.conn
    ]


def _closes(records: list[Record], opened: Open) -> list[Close]:
    return [r for r in records if isinstance(r, Close) and r.conn == opened.conn]


def test_savehar_of_a_live_session_imports_to_the_recorded_messages(
    tmp_path: Path, ws_server: ScenarioServer, confdir: Path
) -> None:
    cassette, har = tmp_path / "live.msgpack", tmp_path / "live.har"
    dump = Mitmdump(ws_server.port, confdir, f"wstape_cassette={cassette}", f"hardump={har}")
    try:
        port = dump.wait_listening()
        asyncio.run(asyncio.wait_for(_session(port), 15))
        # savehar's websocket_end runs right after the recorder's, in the same hook call:
        # once the cassette has both closes and the refusal, savehar holds all three flows.
        wait_for_records(
            cassette,
            lambda rs: sum(isinstance(r, Close) for r in rs) == 2 and len(_opens(rs)) == 3,
        )
        assert dump.stop() == 0, dump.output.text
    finally:
        dump.kill()
    assert har.exists(), dump.output.text

    doc = json.loads(har.read_text(encoding="utf-8"))
    assert doc["log"]["creator"]["name"] == "mitmproxy"
    for entry in doc["log"]["entries"]:
        for item in entry.get("_webSocketMessages", []):
            assert set(item) == {"type", "time", "opcode", "data"}  # nothing about closes

    imported = tmp_path / "imported.msgpack"
    result = _wstape("import", str(har), "-o", str(imported), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["connections"], summary["refused"], summary["messages"]) == (2, 1, 12 + 3)

    recorded_records = read_cassette(cassette)[1]
    imported_records = read_cassette(imported)[1]
    recorded, got = _opens(recorded_records), _opens(imported_records)

    # the same connections, in the same order, with the same upgrades
    def upgrade(o: Open) -> tuple[object, ...]:
        return (
            o.url,
            o.method,
            o.status,
            o.reason,
            o.subprotocols,
            o.extensions,
            o.subprotocol,
            o.body,
            o.request_headers,
            o.response_headers,
            o.http_version,
        )

    assert [o.target for o in recorded] == [CHAT, SERVER_CLOSES, REFUSED]
    assert [upgrade(o) for o in got] == [upgrade(o) for o in recorded]
    assert recorded[0].subprotocol == SUBPROTOCOL
    assert recorded[2].status == 403 and recorded[2].body == REFUSE_BODY

    # the same messages in order: direction, opcode and payload bytes; the same times
    for mine, theirs in zip(recorded, got, strict=True):
        assert _messages(imported_records, theirs) == _messages(recorded_records, mine)
        assert _times(imported_records, theirs) == pytest.approx(
            _times(recorded_records, mine), abs=TIME_TOLERANCE
        )
    chat = _messages(recorded_records, recorded[0])
    assert [p for _, _, p in chat[::2]] == [
        b"hello",
        NON_ASCII.encode(),
        b"\x00\x01\xfe\xff",
        BIG,
        b"",
        b"",
    ]
    assert [(s, o) for s, o, _ in chat[:4]] == [
        (Side.CLIENT, Opcode.TEXT),
        (Side.SERVER, Opcode.TEXT),
        (Side.CLIENT, Opcode.TEXT),
        (Side.SERVER, Opcode.TEXT),
    ]
    assert [o for _, o, _ in chat[4:8]] == [Opcode.BINARY] * 4
    assert [o for _, o, _ in chat[8:]] == [Opcode.TEXT, Opcode.TEXT, Opcode.BINARY, Opcode.BINARY]

    # the closes: real in the cassette, unknown (never invented) after the import
    [chat_close] = _closes(recorded_records, recorded[0])
    [server_close] = _closes(recorded_records, recorded[1])
    assert (chat_close.by, chat_close.code, chat_close.reason) == (
        Side.CLIENT,
        4001,
        CLIENT_CLOSE_REASON,
    )
    assert (server_close.by, server_close.code, server_close.reason) == (
        Side.SERVER,
        4003,
        "server closes: 4003",
    )
    for opened in got[:2]:
        [close] = _closes(imported_records, opened)
        assert (close.by, close.code, close.reason, close.on_wire) == (None, None, "", False)
        assert any(
            isinstance(r, Note) and r.conn == opened.conn and r.text == UNKNOWN_END_NOTE
            for r in imported_records
        )
    assert not _closes(imported_records, got[2]) and not _closes(recorded_records, recorded[2])
