"""HAR export and import: lossless round trips, Chrome and mitmproxy HAR files, errors."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.records import interleave, sessions, write
from wstape.cassettes import CassetteReader, CassetteWriter, WriteMode, read_cassette
from wstape.core.model import Close, Header, Message, Note, Opcode, Open, Record, Side, TlsInfo
from wstape.interchange.errors import InterchangeError
from wstape.interchange.har import UNKNOWN_END_NOTE, export_har, read_har
from wstape.interchange.har import export as har_module

DATA = Path(__file__).parent.parent / "data"
V1 = DATA / "cassette-v1.msgpack"
CHROME = DATA / "chrome-websocket.har"
PLAYWRIGHT = DATA / "playwright-websocket.har"
"""Written by Playwright 1.65.1 (``record_har_path``, ``record_har_content="embed"``) and
Chromium: a page, a WebSocket to the echo server, and one that failed to connect."""
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def har_round_trip(tmp_path: Path, records: list[Record]) -> tuple[Header, list[Record]]:
    src, har, back = tmp_path / "a.msgpack", tmp_path / "a.har", tmp_path / "b.msgpack"
    write(src, records)
    with open(har, "w", encoding="utf-8") as f:
        export_har(CassetteReader(src), f)
    json.loads(har.read_text(encoding="utf-8"))  # a valid JSON document
    imported = read_har(har)
    with CassetteWriter(
        back, mode=WriteMode.OVERWRITE, creator=imported.creator, started_at=imported.started_at
    ) as w:
        for r in imported.records():
            w.write(r)
    return read_cassette(back)


def by_conn(records: list[Record]) -> dict[int | None, list[Record]]:
    out: dict[int | None, list[Record]] = {}
    for r in records:
        out.setdefault(r.conn, []).append(r)
    return out


@given(groups=sessions())
@SETTINGS
def test_round_trip_is_exact_for_sequential_connections(
    tmp_path: Path, groups: list[list[Record]]
) -> None:
    records = [r for g in groups for r in g]
    header, back = har_round_trip(tmp_path, records)
    assert back == records
    assert header.creator == "test" and header.started_at == 1.5


@given(groups=sessions(), seed=st.integers())
@SETTINGS
def test_round_trip_keeps_every_connection_when_interleaved(
    tmp_path: Path, groups: list[list[Record]], seed: int
) -> None:
    records = interleave(groups[1:], seed)
    _, back = har_round_trip(tmp_path, records)
    assert by_conn(back) == by_conn(records)
    # connections come back in the order they opened
    assert [r.conn for r in back if isinstance(r, Open)] == [
        r.conn for r in records if isinstance(r, Open)
    ]


@given(groups=sessions(max_conns=6), seed=st.integers(), group=st.integers(1, 3))
@SETTINGS
def test_round_trip_with_small_spool_groups(
    tmp_path: Path, groups: list[list[Record]], seed: int, group: int
) -> None:
    records = interleave(groups[1:], seed)
    with patch.object(har_module, "SPOOL_GROUP", group):
        _, back = har_round_trip(tmp_path, records)
    assert by_conn(back) == by_conn(records)


def test_a_reused_connection_id_gives_two_entries(tmp_path: Path) -> None:
    first = Open(1, 10.0, "GET", "ws", "h", 80, "/a", "HTTP/1.1", (), 101, ())
    records: list[Record] = [
        first,
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"a1"),
        replace(first, target="/b"),
        Message(1, 0.2, Side.CLIENT, Opcode.TEXT, b"b1"),
        Open(2, 11.0, "GET", "ws", "h", 80, "/c", "HTTP/1.1", (), 101, ()),
        Message(2, 0.3, Side.SERVER, Opcode.TEXT, b"c1"),
    ]
    src = tmp_path / "r.msgpack"
    write(src, records)
    out = tmp_path / "r.har"
    for size in (1, 128):
        with patch.object(har_module, "SPOOL_GROUP", size), open(out, "w") as f:
            # The reader refuses a reused id (DuplicateConnection) unless asked.
            export_har(CassetteReader(src, allow_reused_ids=True), f)
        entries = json.loads(out.read_text())["log"]["entries"]
        assert [[m["data"] for m in e["_webSocketMessages"]] for e in entries] == [
            ["a1"],
            ["b1"],
            ["c1"],
        ]


def test_frozen_sample_round_trips(tmp_path: Path) -> None:
    _header, records = read_cassette(V1)
    _, back = har_round_trip(tmp_path, records)
    assert by_conn(back) == by_conn(records)


def test_export_shape_is_chrome_like(tmp_path: Path) -> None:
    out = tmp_path / "v1.har"
    with open(out, "w", encoding="utf-8") as f:
        result = export_har(CassetteReader(V1), f)
    assert (result.connections, result.messages, result.orphans) == (3, 3, 0)
    doc = json.loads(out.read_text(encoding="utf-8"))
    log = doc["log"]
    assert log["version"] == "1.2" and log["creator"]["name"] == "wstape"
    chat, refused, feed = log["entries"]
    assert chat["_resourceType"] == "websocket"
    assert chat["request"]["url"] == "wss://chat.example.com/chat?room=1"
    assert chat["request"]["queryString"] == [{"name": "room", "value": "1"}]
    assert chat["response"]["status"] == 101
    assert chat["startedDateTime"] == "2026-11-25T07:00:01.250000Z"
    hello, welcome, binary = chat["_webSocketMessages"]
    assert hello["type"] == "send" and hello["opcode"] == 1
    assert hello["data"] == '{"type":"hello","name":"小明"}'
    assert hello["time"] == pytest.approx(1795590001.25 + 0.01)
    assert welcome["type"] == "receive"
    assert binary["opcode"] == 2 and base64.b64decode(binary["data"]) == bytes(range(256))
    ext = chat["_wstape"]
    assert ext["close"]["code"] == 4001 and ext["close"]["by"] == "client"
    assert ext["conn"] == 1 and ext["subprotocols"] == ["chat.v1", "chat.v0"]
    assert ext["notes"] == [{"t": 0.6, "text": "a note", "after": 3}]
    assert refused["response"]["status"] == 403
    assert refused["response"]["content"]["text"] == "no"
    assert "_webSocketMessages" not in refused
    assert feed["_webSocketMessages"] == []
    assert feed["_wstape"]["close"]["on_wire"] is False


def test_orphan_records_are_left_out_and_counted(tmp_path: Path) -> None:
    src = tmp_path / "o.msgpack"
    write(src, [Message(7, 0.1, Side.CLIENT, Opcode.TEXT, b"x"), Note(7, "n")])
    with open(tmp_path / "o.har", "w", encoding="utf-8") as f:
        result = export_har(CassetteReader(src), f)
    assert result.orphans == 2 and result.connections == 0


def test_export_streams_a_truncated_cassette_up_to_the_cut(tmp_path: Path) -> None:
    cut = tmp_path / "cut.msgpack"
    cut.write_bytes(V1.read_bytes()[:-5])
    reader = CassetteReader(cut, allow_truncated=True)
    with open(tmp_path / "cut.har", "w", encoding="utf-8") as f:
        result = export_har(reader, f)
    assert result.truncated_at is not None
    doc = json.loads((tmp_path / "cut.har").read_text(encoding="utf-8"))
    assert len(doc["log"]["entries"]) == 3
    assert doc["log"]["entries"][2]["_wstape"]["close"] is None


def test_text_that_is_not_utf8_and_odd_headers_survive(tmp_path: Path) -> None:
    opened = Open(
        conn=1,
        started_at=10.0,
        method="GET",
        scheme="ws",
        host="::1",
        port=8080,
        target="/a b#c?x=%zz",
        http_version="HTTP/1.1",
        request_headers=((b"X-Bin", b"\xff\xfe"), (b"\xe9t\xe9", b"v")),
        status=101,
        response_headers=(),
    )
    records: list[Record] = [
        opened,
        Message(1, 0.5, Side.SERVER, Opcode.TEXT, b"\xc3\x28 not utf-8"),
        Close(1, 1.0, Side.SERVER, 1000, "ok", True),
    ]
    _, back = har_round_trip(tmp_path, records)
    assert back == records


# -- importing HAR files written by others ---------------------------------------------


def import_records(path: Path) -> list[Record]:
    return list(read_har(path).records())


def test_chrome_sample() -> None:
    har = read_har(CHROME)
    records = list(har.records())
    assert har.skipped == 1  # the page itself
    assert "WebInspector" in har.creator
    opened = records[0]
    assert isinstance(opened, Open)
    assert opened.url == "wss://chat.example.com/chat?room=1"
    assert (opened.scheme, opened.host, opened.port, opened.target) == (
        "wss",
        "chat.example.com",
        443,
        "/chat?room=1",
    )
    assert opened.started_at == pytest.approx(1795591369.123)
    assert opened.subprotocols == ("chat.v1", "chat.v0")
    assert opened.extensions == ("permessage-deflate; client_max_window_bits",)
    assert opened.subprotocol == "chat.v1"
    assert opened.request_header("sec-websocket-key") == "dGhlIHNhbXBsZSBub25jZQ=="
    assert opened.reason == "Switching Protocols" and opened.http_version == "HTTP/1.1"
    # What a HAR does not say stays unknown: no client address, no TLS details.
    assert opened.client is None and opened.tls == TlsInfo()
    msgs = [r for r in records if isinstance(r, Message)]
    assert [(m.side, m.opcode) for m in msgs] == [
        (Side.CLIENT, Opcode.TEXT),
        (Side.SERVER, Opcode.TEXT),
        (Side.SERVER, Opcode.BINARY),
        (Side.CLIENT, Opcode.TEXT),
    ]
    assert msgs[0].text() == '{"type":"hello","name":"小明"}'
    assert msgs[2].payload == bytes(range(10))
    assert [m.t for m in msgs] == pytest.approx([0.0125, 0.0353, 0.5, 1.127])
    close = next(r for r in records if isinstance(r, Close))
    assert (close.by, close.code, close.on_wire) == (None, None, False)
    assert close.t == pytest.approx(1.127)
    assert Note(1, UNKNOWN_END_NOTE, close.t) in records
    refused = [r for r in records if isinstance(r, Open) and not r.accepted]
    assert len(refused) == 1
    assert refused[0].status == 403 and refused[0].body == b"no" and refused[0].tls is None
    error_note = [r for r in records if isinstance(r, Note) and "403" in r.text]
    assert error_note and error_note[0].conn == refused[0].conn
    # nothing follows a refusal but that note
    assert records[-1] == error_note[0]


def test_playwright_sample() -> None:
    """QA: the README says a Playwright HAR imports, but Playwright's `time` is epoch
    milliseconds (`wallTimeMs`), so its first message was "more than 10 years after the
    connection's start", exit 3; and a socket that never connected (Playwright's status
    -1, with `_failureText`) refused the whole file instead of being skipped and counted
    as an upgrade without a response (status 0) is."""
    har = read_har(PLAYWRIGHT)
    records = list(har.records())
    assert (har.skipped, har.failed, har.connections) == (1, 1, 1)
    assert "Playwright" in har.creator
    opened = records[0]
    assert isinstance(opened, Open) and opened.url == "ws://127.0.0.1:9101/chat?x=1"
    assert opened.started_at == pytest.approx(1796411197.123)
    assert opened.subprotocol == "chat"
    msgs = [r for r in records if isinstance(r, Message)]
    assert [(m.side, m.opcode) for m in msgs] == [
        (Side.CLIENT, Opcode.TEXT),
        (Side.CLIENT, Opcode.BINARY),
        (Side.SERVER, Opcode.TEXT),
        (Side.SERVER, Opcode.BINARY),
    ]
    assert [m.t for m in msgs] == pytest.approx([0.061432, 0.061545, 0.068886, 0.070228])
    assert msgs[1].payload == b"\x00\x01\xff"
    assert not any(isinstance(r, Note) and "before the connection" in r.text for r in records)


def test_message_times_in_milliseconds_and_seconds(tmp_path: Path) -> None:
    """A time past 2200-01-01 in seconds is epoch milliseconds (Playwright); one before
    it is seconds (Chrome, mitmproxy, wstape): no date a cassette holds is both."""
    frames = [
        {"type": "send", "time": 1767225600.25, "opcode": 1, "data": "s"},
        {"type": "send", "time": 1767225600500.0, "opcode": 1, "data": "ms"},
        {"type": "send", "time": 1767225600750, "opcode": 1, "data": "ms int"},
    ]
    path = tmp_path / "t.har"
    path.write_text(json.dumps(_har([_ws_entry(_webSocketMessages=frames)])))
    msgs = [r for r in import_records(path) if isinstance(r, Message)]
    assert [m.t for m in msgs] == pytest.approx([0.25, 0.5, 0.75])


def test_chrome_sample_writes_a_cassette(tmp_path: Path) -> None:
    har = read_har(CHROME)
    out = tmp_path / "chrome.msgpack"
    with CassetteWriter(out, creator=har.creator, started_at=har.started_at) as w:
        for r in har.records():
            w.write(r)
    header, records = read_cassette(out)
    assert header.started_at == pytest.approx(1795591369.123)
    assert sum(isinstance(r, Open) for r in records) == 2


def _har(entries: list[object], **log: object) -> dict[str, object]:
    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "t", "version": "1"},
            **log,
            "entries": entries,
        }
    }


def _ws_entry(**over: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "startedDateTime": "2026-01-01T00:00:00+00:00",
        "request": {
            "method": "GET",
            "url": "http://h.example:8080/ws?a=1",
            "headers": [{"name": "Upgrade", "value": "websocket"}],
        },
        "response": {"status": 101, "statusText": "Switching Protocols", "headers": []},
        "_webSocketMessages": [],
    }
    entry.update(over)
    return entry


def test_http_urls_become_ws_and_default_ports(tmp_path: Path) -> None:
    path = tmp_path / "m.har"
    path.write_text(json.dumps(_har([_ws_entry()])))
    opened = import_records(path)[0]
    assert isinstance(opened, Open)
    assert (opened.scheme, opened.host, opened.port, opened.target) == (
        "ws",
        "h.example",
        8080,
        "/ws?a=1",
    )
    assert opened.tls is None


def test_close_frames_ping_and_iso_times(tmp_path: Path) -> None:
    frames = [
        {"type": "send", "time": "2026-01-01T00:00:00.250Z", "opcode": 1, "data": "a"},
        {"type": "receive", "time": 1767225600.5, "opcode": 9, "data": ""},
        {
            "type": "receive",
            "time": 1767225600.75,
            "opcode": 8,
            "data": base64.b64encode((4001).to_bytes(2, "big") + b"bye").decode(),
        },
    ]
    path = tmp_path / "c.har"
    path.write_text(json.dumps(_har([_ws_entry(_webSocketMessages=frames)])))
    records = import_records(path)
    assert [type(r).__name__ for r in records] == ["Open", "Message", "Close"]
    assert records[1] == Message(1, 0.25, Side.CLIENT, Opcode.TEXT, b"a")
    assert records[2] == Close(1, 0.75, Side.SERVER, 4001, "bye", True)


def test_zlib_har_from_mitmproxy(tmp_path: Path) -> None:
    path = tmp_path / "c.zhar"
    path.write_bytes(zlib.compress(json.dumps(_har([_ws_entry()])).encode()))
    assert isinstance(import_records(path)[0], Open)


def test_entries_without_response_are_counted_not_imported(tmp_path: Path) -> None:
    path = tmp_path / "c.har"
    entry = _ws_entry(response={"status": 0, "statusText": "", "headers": []})
    path.write_text(json.dumps(_har([entry, _ws_entry()])))
    har = read_har(path)
    records = list(har.records())
    assert har.failed == 1 and har.connections == 1
    assert records[0].conn == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "invalid JSON"),
        (b"[1, 2]", 'no "log" object'),
        (b'{"log": {}}', 'no "log.entries" array'),
        (b"\xff\xfe{", "not UTF-8"),
    ],
)
def test_not_a_har(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_bytes(content)
    with pytest.raises(InterchangeError, match=message) as info:
        list(read_har(path).records())
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_ws_entry(startedDateTime="yesterday"), "startedDateTime"),
        (_ws_entry(request={"url": "ftp://x/"}), "not a ws, wss, http or https URL"),
        (_ws_entry(request={"url": "ws://x:99999/"}), "request.url"),
        (
            _ws_entry(_webSocketMessages=[{"type": "send", "opcode": 2, "data": "!!"}]),
            "not valid base64",
        ),
        (_ws_entry(_webSocketMessages=[{"type": "sideways", "data": ""}]), "type must be"),
        (
            _ws_entry(_webSocketMessages=[{"type": "send", "time": "soon", "data": ""}]),
            "ISO 8601",
        ),
        (
            _ws_entry(_webSocketMessages=[{"type": "send", "opcode": 5, "data": ""}]),
            "opcode 5",
        ),
        (_ws_entry(response={"status": "101"}), "response.status must be an integer"),
        (_ws_entry(_wstape={"close": {"t": 1, "by": "both", "on_wire": True}}), "by must be"),
        (_ws_entry(request="GET /"), "request must be an object"),
    ],
)
def test_bad_entry_names_file_and_index(tmp_path: Path, entry: object, message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_text(json.dumps(_har([{"request": {"url": "https://a/"}}, entry])))
    with pytest.raises(InterchangeError, match=message) as info:
        list(read_har(path).records())
    assert str(info.value).startswith(f"{path}, entry 1: ")
    assert info.value.index == 1


def test_newer_extension_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.har"
    path.write_text(json.dumps(_har([], _wstape={"version": 99})))
    with pytest.raises(InterchangeError, match="upgrade wstape"):
        read_har(path)


# -- a HAR written by mitmproxy's own savehar addon ------------------------------------


def _mitmproxy_flows() -> list[object]:
    from mitmproxy import http
    from mitmproxy.test import tflow
    from mitmproxy.websocket import WebSocketMessage
    from wsproto.frame_protocol import Opcode as WsOpcode

    chat = tflow.twebsocketflow(close_code=4001, close_reason="bye")
    assert chat.websocket is not None
    chat.websocket.messages.append(
        WebSocketMessage(WsOpcode.TEXT, False, '{"名":"小明"}'.encode(), 946681206.5)
    )
    chat.websocket.messages.append(
        WebSocketMessage(WsOpcode.BINARY, True, bytes(range(256)) * 4, 946681207.25)
    )
    chat.websocket.closed_by_client = True
    refused = tflow.tflow(resp=True)
    refused.request.headers["Upgrade"] = "websocket"
    refused.request.path = "/admin"
    assert refused.response is not None
    refused.response.status_code = 403
    refused.response.reason = "Forbidden"
    refused.response.content = b"no"
    plain = tflow.tflow(resp=True)
    assert isinstance(plain, http.HTTPFlow)
    return [plain, chat, refused]


def test_har_written_by_mitmproxy_savehar_imports(tmp_path: Path) -> None:
    from mitmproxy.addons.savehar import SaveHar
    from mitmproxy.test import taddons

    flows = _mitmproxy_flows()
    plain, chat, refused = flows
    out = tmp_path / "mitm.har"
    addon = SaveHar()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, hardump=str(out))
        addon.response(plain)  # type: ignore[arg-type]
        addon.websocket_end(chat)  # type: ignore[arg-type]
        addon.response(refused)  # type: ignore[arg-type]
        addon.done()
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert len(doc["log"]["entries"]) == 3 and doc["log"]["creator"]["name"] == "mitmproxy"

    har = read_har(out)
    records = list(har.records())
    assert har.skipped == 1
    opens_ = [r for r in records if isinstance(r, Open)]
    assert [(o.url, o.status) for o in opens_] == [
        ("ws://example.com/ws", 101),
        ("ws://address:22/admin", 403),
    ]
    assert opens_[1].body == b"no" and opens_[1].reason == "Forbidden"
    msgs = [r for r in records if isinstance(r, Message)]
    ws = chat.websocket  # type: ignore[attr-defined]
    assert [(m.side, m.opcode, m.payload) for m in msgs] == [
        (
            Side.CLIENT if w.from_client else Side.SERVER,
            Opcode.TEXT if w.is_text else Opcode.BINARY,
            w.content,
        )
        for w in ws.messages
    ]
    started = chat.request.timestamp_start  # type: ignore[attr-defined]
    assert [m.t for m in msgs] == pytest.approx([w.timestamp - started for w in ws.messages])
    # savehar writes no close data: it stays unknown, and a note says so
    close = next(r for r in records if isinstance(r, Close))
    assert (close.by, close.code) == (None, None)
    assert any(isinstance(r, Note) and r.text == UNKNOWN_END_NOTE for r in records)


def test_mitmproxy_can_read_our_har(tmp_path: Path) -> None:
    """mitmproxy's own HAR reader accepts the export (as HTTP flows)."""
    from mitmproxy.io import FlowReader

    out = tmp_path / "v1.har"
    with open(out, "w", encoding="utf-8") as f:
        export_har(CassetteReader(V1), f)
    with open(out, "rb") as f:
        flows = list(FlowReader(f).stream())
    assert len(flows) == 3


def test_savehar_and_the_recorder_agree_on_the_same_traffic(tmp_path: Path) -> None:
    """mitmproxy's savehar and wstape's recorder fed the same hooks, as in one live session
    through a proxy running both: the HAR imports to the messages the cassette recorded."""
    from mitmproxy import http
    from mitmproxy.addons.savehar import SaveHar
    from mitmproxy.test import taddons, tflow
    from mitmproxy.websocket import WebSocketData, WebSocketMessage
    from wsproto.frame_protocol import Opcode as WsOpcode

    from wstape.addons.recorder import Recorder

    t0 = 1_790_000_000.25

    def upgrade(path: str, status: int) -> http.HTTPFlow:
        flow = tflow.twebsocketflow()
        flow.request.path = path
        flow.request.host, flow.request.port = "backend.example", 9000
        flow.request.headers = http.Headers(
            [
                (b"Host", b"backend.example:9000"),
                (b"Upgrade", b"websocket"),
                (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                (b"Sec-WebSocket-Version", b"13"),
                (b"Sec-WebSocket-Protocol", b"chat.v1"),
            ]
        )
        assert flow.response is not None
        flow.response.status_code = status
        flow.response.reason = "Switching Protocols" if status == 101 else "Forbidden"
        flow.response.headers = http.Headers(
            [
                (b"Upgrade", b"websocket"),
                (b"Connection", b"Upgrade"),
                (b"Sec-WebSocket-Protocol", b"chat.v1"),
            ]
            if status == 101
            else [(b"Content-Type", b"text/plain")]
        )
        flow.response.raw_content = b"" if status == 101 else b"no entry"
        flow.request.timestamp_start = t0 - 0.004
        flow.response.timestamp_end = t0
        flow.client_conn.peername = ("127.0.0.1", 50123)
        flow.client_conn.timestamp_tls_setup = None
        flow.websocket = WebSocketData() if status == 101 else None
        return flow

    traffic = [
        (True, WsOpcode.TEXT, '{"type":"hello","name":"小明"}'.encode(), 0.012),
        (False, WsOpcode.TEXT, b'{"type":"welcome"}', 0.031),
        (False, WsOpcode.BINARY, bytes(range(256)) * 64, 0.5),
        (True, WsOpcode.TEXT, b"ping", 1.25),
        (False, WsOpcode.TEXT, b"pong", 1.2504),
    ]
    cassette, har_path = tmp_path / "live.msgpack", tmp_path / "live.har"
    recorder, savehar = Recorder(), SaveHar()
    with taddons.context(recorder, savehar) as tctx:
        tctx.configure(recorder, wstape_cassette=str(cassette))
        tctx.configure(savehar, hardump=str(har_path))
        chat = upgrade("/chat?room=1", 101)
        recorder.websocket_start(chat)
        assert chat.websocket is not None
        for from_client, opcode, content, at in traffic:
            chat.websocket.messages.append(WebSocketMessage(opcode, from_client, content, t0 + at))
            recorder.websocket_message(chat)
        chat.websocket.closed_by_client = True
        chat.websocket.close_code = 1000
        chat.websocket.close_reason = "bye"
        chat.websocket.timestamp_end = t0 + 2.0
        recorder.websocket_end(chat)
        savehar.websocket_end(chat)
        refused = upgrade("/admin", 403)
        recorder.response(refused)
        savehar.response(refused)
        recorder.done()
        savehar.done()

    recorded = read_cassette(cassette)[1]
    imported = list(read_har(har_path).records())

    def opens_of(records: list[Record]) -> list[tuple[object, ...]]:
        return [
            (o.url, o.status, o.reason, o.subprotocols, o.subprotocol, o.body)
            for o in records
            if isinstance(o, Open)
        ]

    def messages_of(records: list[Record]) -> list[tuple[object, ...]]:
        start = {o.conn: o.started_at for o in records if isinstance(o, Open)}
        return [
            (m.side, m.opcode, m.payload, round(start[m.conn] + m.t, 6))
            for m in records
            if isinstance(m, Message)
        ]

    assert opens_of(imported) == opens_of(recorded)
    assert messages_of(imported) == messages_of(recorded)
    assert len(messages_of(recorded)) == len(traffic)
    # what savehar does not write stays unknown instead of being made up
    recorded_close = next(r for r in recorded if isinstance(r, Close))
    imported_close = next(r for r in imported if isinstance(r, Close))
    assert (recorded_close.by, recorded_close.code) == (Side.CLIENT, 1000)
    assert (imported_close.by, imported_close.code) == (None, None)


def test_connections_import_in_start_order(tmp_path: Path) -> None:
    """savehar writes a WebSocket entry when its connection ends; a cassette lists
    connections as they started."""
    har = json.loads(CHROME.read_text(encoding="utf-8"))
    entries = har["log"]["entries"]
    ws = [e for e in entries if e.get("_resourceType") == "websocket"]
    har["log"]["entries"] = [entries[0], *reversed(ws)]  # ended-first order
    swapped = tmp_path / "swapped.har"
    swapped.write_text(json.dumps(har), encoding="utf-8")
    urls = [r.url for r in read_har(swapped).records() if isinstance(r, Open)]
    assert urls == ["wss://chat.example.com/chat?room=1", "ws://127.0.0.1:9000/admin"]


# -- streaming: fields in any order, continuation frames, ids --------------------------


def _write_entries(path: Path, entries: list[object], **log: object) -> None:
    path.write_text(json.dumps(_har(entries, **log)), encoding="utf-8")


def test_fields_after_the_messages_are_read(tmp_path: Path) -> None:
    """An entry's messages may come before the fields saying when it started and how it
    ended; the log's _wstape may come after the entries."""
    src = tmp_path / "a.msgpack"
    write(src, list(read_cassette(V1)[1]))
    har = tmp_path / "a.har"
    with open(har, "w", encoding="utf-8") as f:
        export_har(CassetteReader(src), f)
    doc = json.loads(har.read_text(encoding="utf-8"))
    log = doc["log"]
    log["entries"] = [
        {"_webSocketMessages": e.pop("_webSocketMessages"), **e} if "_webSocketMessages" in e else e
        for e in log["entries"]
    ]
    reordered = {"log": {"entries": log.pop("entries"), **log}}
    moved = tmp_path / "moved.har"
    moved.write_text(json.dumps(reordered), encoding="utf-8")
    assert next(iter(json.loads(moved.read_text())["log"])) == "entries"
    original, again = read_har(har), read_har(moved)
    assert list(again.records()) == list(original.records())
    assert (again.creator, again.started_at) == (original.creator, original.started_at)


def test_continuation_frames_join_their_message(tmp_path: Path) -> None:
    b64 = base64.b64encode
    frames = [
        {"type": "send", "time": 1767225600.1, "opcode": 1, "data": "hel"},
        {"type": "receive", "time": 1767225600.2, "opcode": 2, "data": b64(b"\x00").decode()},
        {"type": "send", "time": 1767225600.3, "opcode": 0, "data": "lo"},
        {"type": "receive", "time": 1767225600.4, "opcode": 0, "data": b64(b"\x01").decode()},
        {"type": "receive", "time": 1767225600.5, "opcode": 1, "data": "next"},
    ]
    path = tmp_path / "frames.har"
    _write_entries(path, [_ws_entry(_webSocketMessages=frames)])
    msgs = [r for r in import_records(path) if isinstance(r, Message)]
    assert [(m.side, m.payload, m.t) for m in msgs] == [
        (Side.CLIENT, b"hello", pytest.approx(0.1)),
        (Side.SERVER, b"\x00\x01", pytest.approx(0.2)),
        (Side.SERVER, b"next", pytest.approx(0.5)),
    ]


def test_connection_ids_are_kept_unique(tmp_path: Path) -> None:
    entries = [
        _ws_entry(_wstape={"conn": 7}),
        _ws_entry(_wstape={"conn": 7}),
        _ws_entry(_wstape={"conn": 2**60}),
        _ws_entry(),
    ]
    path = tmp_path / "ids.har"
    _write_entries(path, entries)
    records = import_records(path)
    assert [r.conn for r in records if isinstance(r, Open)] == [7, 1, 2, 3]
    notes = [r.text for r in records if isinstance(r, Note) and "numbered" in r.text]
    assert notes == [
        "imported from HAR: _wstape.conn 7 was used by an earlier entry; numbered 1",
        f"imported from HAR: _wstape.conn {2**60} is not a connection id; numbered 2",
    ]


def test_a_message_before_its_connection_started_is_moved_to_its_start(tmp_path: Path) -> None:
    frames = [
        {"type": "send", "time": 1767225599.0, "opcode": 1, "data": "early"},
        {"type": "send", "time": 1767225601.0, "opcode": 1, "data": "late"},
    ]
    path = tmp_path / "early.har"
    _write_entries(path, [_ws_entry(_webSocketMessages=frames)])
    records = import_records(path)
    assert [r.t for r in records if isinstance(r, Message)] == [0.0, 1.0]
    assert records[-1] == Note(
        1,
        "imported from HAR: 1 message times before the connection's start were set to 0 "
        "(its start)",
        0.0,
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_ws_entry(response={"status": 10**40}), "response: an integer near byte"),
        (_ws_entry(response={"status": 1000}), "response.status 1000 is not an HTTP status"),
        (_ws_entry(response={"status": -2}), "response.status -2 is not an HTTP status"),
        (_ws_entry(_wstape={"started_at": 1e308}), "_wstape.started_at 1e+308 is not a date"),
        (_ws_entry(startedDateTime="9999-01-01T00:00:00Z"), "startedDateTime"),
        (_ws_entry(_wstape={"port": 70000}), "_wstape.port 70000 is not a port"),
        (
            _ws_entry(_wstape={"close": {"t": 1, "by": None, "code": 70000, "on_wire": False}}),
            "_wstape.close.code 70000 is not a close code",
        ),
        (
            _ws_entry(_wstape={"close": {"t": -1, "by": None, "code": None, "on_wire": False}}),
            "_wstape.close.t -1.0 is not a time",
        ),
        (
            # (read as epoch milliseconds, as any time past 2200 in seconds: year 5138)
            _ws_entry(_webSocketMessages=[{"type": "send", "time": 1e14, "data": "x"}]),
            "_webSocketMessages[0] is more than 10 years after the connection's start",
        ),
        (_ws_entry(request={"url": "wss://h/", "x": [[[[[[[[[[]]]]]]]]]] * 1}), None),
    ],
)
# ijson's pure-Python parser leaves a generator that raises when collected after an error
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_values_no_cassette_can_hold_are_refused(
    tmp_path: Path, entry: dict[str, object], message: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ijson

    from wstape.interchange.har import stream

    # the pure-Python parser keeps lone surrogates (yajl replaces some with "?")
    monkeypatch.setattr(stream, "ijson", ijson.get_backend("python"))
    path = tmp_path / "bad.har"
    _write_entries(path, [entry])
    if message is None:  # unused fields are skipped, however they look
        assert isinstance(import_records(path)[0], Open)
        return
    with pytest.raises(
        InterchangeError, match=message.replace("[", r"\[").replace("+", r"\+")
    ) as e:
        import_records(path)
    assert str(e.value).startswith(f"{path}, entry 0: ")


@pytest.mark.parametrize("backend", ["yajl2_c", "python"])
@pytest.mark.parametrize(
    "entry",
    [
        _ws_entry(_webSocketMessages=[{"type": "send", "data": "a\ud800"}]),
        _ws_entry(request={"url": "wss://h/", "headers": [{"name": "X", "value": "\udcff"}]}),
    ],
)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_lone_surrogate_is_refused_whatever_the_parser(
    tmp_path: Path, entry: dict[str, object], backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON can spell one (json.dumps does); yajl would turn some into "?" silently."""
    import ijson

    from wstape.interchange.har import stream

    monkeypatch.setattr(stream, "ijson", ijson.get_backend(backend))
    path = tmp_path / "bad.har"
    _write_entries(path, [entry])
    with pytest.raises(InterchangeError, match=r"a lone surrogate escape \(\\ud"):
        import_records(path)
    # pairs are fine
    _write_entries(path, [_ws_entry(_webSocketMessages=[{"type": "send", "data": "😀"}])])
    assert "\\ud83d\\ude00" in path.read_text()
    assert Message(1, 0.0, Side.CLIENT, Opcode.TEXT, "😀".encode()) in import_records(path)


def test_nesting_is_bounded_without_quadratic_memory(tmp_path: Path) -> None:
    depth = 200_000
    path = tmp_path / "deep.har"
    path.write_bytes(b'{"log": {"entries": [{"request": ' + b"[" * depth + b"]" * depth + b"}]}}")
    with pytest.raises(InterchangeError, match=r"entry 0: request: nested deeper than 64"):
        read_har(path)
    skipped = tmp_path / "deep-skipped.har"
    skipped.write_bytes(b'{"log": {"pages": ' + b"[" * depth + b"]" * depth + b', "entries": []}}')
    assert list(read_har(skipped).records()) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"log": {"entries": []}} {"log": 1}', "invalid JSON near byte"),
        (b'{"log": {"entries": [{}, ', "invalid JSON"),
        (b'{"log": {"entries": [], "entries": []}}', "two log.entries arrays"),
        (b'\xff\xfe{\x00"\x00', "UTF-16"),
        (b'{"log": {"entries": [7]}}', "entry 0: entry must be an object"),
    ],
)
def test_broken_documents(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.har"
    path.write_bytes(content)
    with pytest.raises(InterchangeError, match=message) as e:
        list(read_har(path).records())
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content",
    [
        b'{"log": {"entries": []}, "log": {"entries": [{"_webSocketMessages": []}]}}',
        b'{"log": 1, "log": {"entries": []}}',
        b'{"log": {"entries": []}, "x": 1, "log": {"entries": []}}',
    ],
)
def test_two_log_objects_are_refused(tmp_path: Path, content: bytes) -> None:
    """QA: a HAR with two "log" objects imported the first and skipped the second
    without a word, where JSON.parse and Python's json (the viewers, the tools that made
    it) read the last: the same file gave two different sessions. Refused, as two
    log.entries arrays are."""
    path = tmp_path / "two.har"
    path.write_bytes(content)
    with pytest.raises(InterchangeError, match='two "log" objects'):
        list(read_har(path).records())


def test_the_python_parser_gives_the_same_records(monkeypatch: pytest.MonkeyPatch) -> None:
    import ijson

    from wstape.interchange.har import stream

    fast = list(read_har(CHROME).records())
    monkeypatch.setattr(stream, "ijson", ijson.get_backend("python"))
    assert list(read_har(CHROME).records()) == fast
