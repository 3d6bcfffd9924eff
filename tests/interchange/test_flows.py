"""Importing mitmproxy flow dumps (written here with mitmproxy's own FlowWriter)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.io import FlowWriter
from mitmproxy.test import tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode as WsOpcode

from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.interchange.errors import InterchangeError
from wstape.interchange.flows import (
    DROPPED_NOTE,
    EARLY_NOTE,
    REPAIRED_NOTE,
    STOPPED_NOTE,
    FlowImport,
    iter_flow_records,
    looks_like_flow_file,
)


def dump(path: Path, flows: list[object]) -> None:
    with open(path, "wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)  # type: ignore[arg-type]


def chat_flow() -> http.HTTPFlow:
    flow = tflow.twebsocketflow(close_code=4001, close_reason="bye")
    flow.request.path = "/chat?room=1"
    flow.request.headers["Sec-WebSocket-Protocol"] = "chat.v1, chat.v0"
    flow.request.headers["Sec-WebSocket-Extensions"] = "permessage-deflate"
    assert flow.response is not None and flow.websocket is not None
    flow.response.headers["Sec-WebSocket-Protocol"] = "chat.v1"
    flow.websocket.messages.append(
        WebSocketMessage(WsOpcode.BINARY, False, b"\x00" * 1024, 946681206.5)
    )
    flow.websocket.closed_by_client = True
    return flow


def refused_flow() -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.request.headers["Upgrade"] = "websocket"
    assert flow.response is not None
    flow.response.status_code = 403
    flow.response.reason = "Forbidden"
    flow.response.content = b"go away"
    return flow


def read(path: Path) -> tuple[list[Record], FlowImport]:
    stats = FlowImport(path)
    return list(iter_flow_records(path, stats)), stats


def test_websocket_flows_become_connections(tmp_path: Path) -> None:
    path = tmp_path / "flows.mitm"
    chat = chat_flow()
    dropped = tflow.twebsocketflow(err=True)  # TCP dropped: mitmproxy reports 1006
    assert dropped.websocket is not None
    dropped.websocket.messages[0].dropped = True
    dump(path, [tflow.tflow(resp=True), chat, refused_flow(), dropped, tflow.ttcpflow()])
    records, stats = read(path)
    assert (stats.connections, stats.refused, stats.skipped, stats.messages) == (2, 1, 2, 7)

    opened = records[0]
    assert isinstance(opened, Open)
    assert opened.conn == 1 and opened.url == "wss://example.com:80/chat?room=1"
    assert opened.subprotocols == ("chat.v1", "chat.v0")
    assert opened.extensions == ("permessage-deflate",)
    assert opened.subprotocol == "chat.v1"
    assert opened.client == "127.0.0.1:22"
    assert opened.tls is not None and opened.tls.version == "TLSv1.2"
    assert opened.started_at == chat.response.timestamp_end  # type: ignore[union-attr]
    assert (b"sec-websocket-key", b"1234") in opened.request_headers

    msgs = [r for r in records if isinstance(r, Message) and r.conn == 1]
    assert [(m.side, m.opcode, m.payload, m.t) for m in msgs] == [
        (Side.CLIENT, Opcode.BINARY, b"hello binary", 0.0),
        (Side.CLIENT, Opcode.TEXT, b"hello text", 1.0),
        (Side.SERVER, Opcode.TEXT, b"it's me", 2.0),
        (Side.SERVER, Opcode.BINARY, b"\x00" * 1024, 3.5),
    ]
    close = next(r for r in records if isinstance(r, Close) and r.conn == 1)
    assert close == Close(1, 3.5, Side.CLIENT, 4001, "bye", True)

    refused = records[6]
    assert isinstance(refused, Open) and refused.conn == 2
    assert (refused.status, refused.reason, refused.body) == (403, "Forbidden", b"go away")
    assert refused.subprotocol is None
    assert all(r.conn != 2 for r in records[7:])

    last = [r for r in records if r.conn == 3]
    assert isinstance(last[0], Open)
    assert Note(3, DROPPED_NOTE, 0.0) in last
    close3 = last[-1]
    assert isinstance(close3, Close)
    assert (close3.by, close3.code, close3.on_wire) == (Side.SERVER, 1006, False)


def test_a_connection_still_open_in_the_dump(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow()
    assert flow.websocket is not None
    flow.websocket.closed_by_client = None
    flow.websocket.close_code = None
    flow.websocket.timestamp_end = None
    path = tmp_path / "open.mitm"
    dump(path, [flow])
    records, _ = read(path)
    close, note = records[-2:]
    assert isinstance(close, Close)
    assert (close.by, close.code, close.on_wire, close.t) == (None, None, False, 2.0)
    assert note == Note(1, STOPPED_NOTE, 2.0)


def test_upgrade_without_response_is_counted(tmp_path: Path) -> None:
    flow = tflow.tflow(err=True)
    flow.request.headers["Upgrade"] = "websocket"
    path = tmp_path / "err.mitm"
    dump(path, [flow])
    records, stats = read(path)
    assert records == [] and stats.failed == 1


def test_empty_file_has_no_records(tmp_path: Path) -> None:
    path = tmp_path / "empty.mitm"
    path.write_bytes(b"")
    assert read(path)[0] == []


def test_truncated_dump_names_the_flow(tmp_path: Path) -> None:
    path = tmp_path / "cut.mitm"
    dump(path, [chat_flow(), chat_flow()])
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(InterchangeError) as info:
        read(path)
    assert str(info.value).startswith(f"{path}, flow 1: ")


@pytest.mark.parametrize("content", [b"hello world", b"5:hello,", b"\x00\x01garbage"])
def test_garbage_is_one_interchange_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.mitm"
    path.write_bytes(content)
    with pytest.raises(InterchangeError, match="flow 0"):
        read(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InterchangeError, match="no such file"):
        read(tmp_path / "nope.mitm")


def test_flow_file_sniffing(tmp_path: Path) -> None:
    path = tmp_path / "f.mitm"
    dump(path, [chat_flow()])
    assert looks_like_flow_file(path.read_bytes()[:64])
    assert not looks_like_flow_file(b'{"log": {}}')


def test_a_har_is_not_read_as_flows(tmp_path: Path) -> None:
    """mitmproxy's reader turns a HAR into plain HTTP flows, dropping every message."""
    path = tmp_path / "chat.mitm"
    path.write_text('\n  {"log": {"entries": []}}', encoding="utf-8")
    with pytest.raises(InterchangeError, match="is a JSON \\(HAR\\) file, not a mitmproxy"):
        read(path)


def test_bytes_that_are_not_utf8_are_repaired_with_a_note(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow()
    flow.request.data.path = b"/chat\xff?q=\xc3\xa9"
    assert flow.response is not None
    flow.response.data.reason = b"\xffOK"  # mitmproxy reads reasons as Latin-1: fine
    flow.request.data.method = b"G\xffT"
    path = tmp_path / "bytes.mitm"
    dump(path, [flow])
    records, _ = read(path)
    opened, note = records[:2]
    assert isinstance(opened, Open)
    assert opened.target == "/chat%FF?q=é" and opened.method == "G\ufffdT"
    assert opened.reason == "ÿOK"
    assert note == Note(
        1, REPAIRED_NOTE.format(what="the request path (percent-encoded), the method")
    )


def test_a_message_before_the_connection_opened(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow()
    assert flow.websocket is not None and flow.response is not None
    flow.websocket.messages[0].timestamp = flow.response.timestamp_end - 5  # type: ignore[operator]
    path = tmp_path / "early.mitm"
    dump(path, [flow])
    records, _ = read(path)
    assert next(r for r in records if isinstance(r, Message)).t == 0.0
    assert Note(1, EARLY_NOTE.format(n=1), 0.0) in records


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: setattr(f.request.data, "port", 2**70), "request port 1180591620717411303424"),
        (lambda f: setattr(f.response.data, "status_code", 10**40), "response status 1000"),
        (lambda f: setattr(f.response, "timestamp_end", 1e308), "response timestamp 1e+308"),
        (lambda f: setattr(f.websocket.messages[1], "timestamp", float("inf")), "message 1"),
        (lambda f: setattr(f.websocket, "close_code", 70000), "close code 70000"),
        (lambda f: setattr(f.websocket, "timestamp_end", float("nan")), "end timestamp nan"),
    ],
)
def test_values_no_cassette_can_hold_name_the_flow(
    tmp_path: Path, change: object, message: str
) -> None:
    flow = tflow.twebsocketflow()
    change(flow)  # type: ignore[operator]
    path = tmp_path / "bad.mitm"
    dump(path, [tflow.tflow(resp=True), flow])
    with pytest.raises(InterchangeError, match=message.replace("+", r"\+")) as e:
        read(path)
    assert str(e.value).startswith(f"{path}, flow 1: ")
