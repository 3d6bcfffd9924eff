"""Python ``websocket-client`` (1.x): one round trip through ``wstape record`` (reverse
mode, in front of a local ``websockets`` backend) and against ``wstape replay``.

The session ends with a server Close 4003 "kicked". websocket-client answers a server
Close with 1000 instead of echoing the code (measured here against the backend directly,
since through mitmproxy the proxy answers the server itself). RFC 6455 §5.5.1 only says an
endpoint "typically" echoes the code, and the answer is not a ``close()`` the client
started, so the rules find nothing: the replay report is clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.browser import (
    TIMEOUT,
    Backend,
    BackgroundLoop,
    read_report,
    record,
    replay,
    skip_unless_installed,
    websocket_client_missing,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Opcode, Side
from wstape.core.rules import RuleConfig, check_client_close, close_body

pytestmark = skip_unless_installed(websocket_client_missing())
websocket = pytest.importorskip("websocket")

TEXT = "你好, websocket-client"
DATA = bytes([0, 1, 2, 127, 128, 254, 255])
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """websocket-client honours the proxy variables; these connections are all local."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    yield


Session = tuple[list[tuple[int, bytes]], int, bytes, bool]


def session(url: str) -> Session:
    """Hello, text, binary, "kick me". Returns the messages (opcode, payload), the server's
    Close (code, reason bytes) as websocket-client saw them, and whether ``close()`` left
    the TCP socket open."""
    ws = websocket.create_connection(url, timeout=TIMEOUT)
    try:
        got = [ws.recv_data()]
        ws.send(TEXT)
        got.append(ws.recv_data())
        ws.send_binary(DATA)
        got.append(ws.recv_data())
        ws.send("kick me")
        # recv_data_frame(control_frame=True) returns the Close; websocket-client has
        # already answered it with its own Close (1000) by then.
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        code = int.from_bytes(frame.data[:2], "big")
        # Having answered, it counts itself disconnected: close() returns at once and the
        # TCP socket stays open until shutdown() (or garbage collection).
        ws.close(timeout=TIMEOUT)
        left_open = ws.sock is not None and ws.sock.fileno() != -1
        return [(op, bytes(data)) for op, data in got], code, frame.data[2:], left_open
    finally:
        ws.shutdown()


EXPECTED = [
    (websocket.ABNF.OPCODE_TEXT, Backend.HELLO.encode()),
    (websocket.ABNF.OPCODE_TEXT, f"echo: {TEXT}".encode()),
    (websocket.ABNF.OPCODE_BINARY, DATA[::-1]),
]


def test_answers_a_server_close_with_1000(bg: BackgroundLoop) -> None:
    """Straight at the backend: the server sends 4003, websocket-client answers 1000."""
    with Backend(bg) as backend:
        got, code, reason, left_open = session(f"{backend.url}/chat")
    assert (got, code, reason, left_open) == (EXPECTED, 4003, b"kicked", True)
    [seen] = backend.connections
    assert seen.close_rcvd == (1000, "")
    # What the rules say about such an answer: nothing, under every profile.
    for profile in ("rfc6455", "browser", "wechat"):
        cfg = RuleConfig(profile=profile)
        assert (
            check_client_close(close_body(1000), cfg, started_by_client=False, server_code=4003)
            == []
        )


def test_websocket_client_record_then_replay(tmp_path: Path, bg: BackgroundLoop) -> None:
    cassette = tmp_path / "websocket-client.msgpack"
    with Backend(bg) as backend:
        mode = f"reverse:ws://127.0.0.1:{backend.port}"
        with record(tmp_path, cassette, "--mode", mode, "--confdir", tmp_path / "ca") as rec:
            got, code, reason, _ = session(f"ws://127.0.0.1:{rec.port}/chat")
            assert rec.stop() == 0, rec.stderr
    assert (got, code, reason) == (EXPECTED, 4003, b"kicked")
    [seen] = backend.connections
    assert seen.received == [TEXT, DATA, "kick me"]

    _, records = read_cassette(cassette)
    messages = [r for r in records if isinstance(r, Message)]
    assert [(m.side, m.opcode, m.payload) for m in messages] == [
        (Side.SERVER, Opcode.TEXT, Backend.HELLO.encode()),
        (Side.CLIENT, Opcode.TEXT, TEXT.encode()),
        (Side.SERVER, Opcode.TEXT, f"echo: {TEXT}".encode()),
        (Side.CLIENT, Opcode.BINARY, DATA),
        (Side.SERVER, Opcode.BINARY, DATA[::-1]),
        (Side.CLIENT, Opcode.TEXT, b"kick me"),
    ]
    [end] = [r for r in records if isinstance(r, Close)]
    assert (end.by, end.code, end.reason, end.on_wire) == (Side.SERVER, 4003, "kicked", True)

    report_path = tmp_path / "report.json"
    with replay(tmp_path, cassette, report_path, "--profile", "browser") as rep:
        got, code, reason, _ = session(f"ws://127.0.0.1:{rep.port}/chat")
        exit_code = rep.finish()
    assert (got, code, reason) == (EXPECTED, 4003, b"kicked")
    report = read_report(report_path)
    # The 1000 answer to the replayed 4003 breaks no rule (see the module docstring).
    assert (exit_code, report["passed"], report["violations"]) == (0, True, []), report
    [played] = report["connections"]
    assert played["messages_expected"] == played["messages_matched"] == 3
    assert played["close"] == {"by": "server", "code": 4003, "reason": "kicked"}
