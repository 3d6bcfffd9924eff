"""The recorder addon, driven through mitmproxy's test context: no network."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketData, WebSocketMessage
from wsproto.frame_protocol import Opcode as WsOpcode

from tests.helpers.records import records_so_far
from tests.helpers.servers import MITMDUMP, clean_env, wstape_addon_path
from wstape.addons.recorder import (
    REDACTED,
    STOPPED_NOTE,
    Recorder,
    ScriptRecorder,
    private_writer,
)
from wstape.cassettes import CassetteWriter, WriteMode
from wstape.cassettes.errors import CassetteExists, CassetteWriteError, OlderCassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side, TlsInfo
from wstape.core.redaction import Redactor

T0 = 1_700_000_000.0


def make_flow(
    path: bytes = b"/chat?room=1",
    *,
    tls: bool = False,
    request_headers: list[tuple[bytes, bytes]] | None = None,
    response_headers: list[tuple[bytes, bytes]] | None = None,
    status: int = 101,
    body: bytes = b"",
) -> http.HTTPFlow:
    """A live WebSocket flow as mitmproxy has it at ``websocket_start``."""
    flow = tflow.twebsocketflow()
    flow.request.path = path.decode()
    flow.request.host = "backend.example"
    flow.request.port = 9000
    flow.request.headers = http.Headers(
        [
            (b"Host", b"backend.example:9000"),
            (b"Upgrade", b"websocket"),
            (b"Connection", b"Upgrade"),
            (b"Sec-WebSocket-Key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            (b"Sec-WebSocket-Version", b"13"),
            *(request_headers or []),
        ]
    )
    assert flow.response is not None
    flow.response.status_code = status
    flow.response.reason = "Switching Protocols" if status == 101 else "Forbidden"
    flow.response.headers = http.Headers(
        [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"), *(response_headers or [])]
        if status == 101
        else [(b"Content-Type", b"text/plain"), *(response_headers or [])]
    )
    flow.response.raw_content = body
    flow.response.timestamp_end = T0
    flow.request.timestamp_start = T0 - 0.01
    flow.client_conn.peername = ("127.0.0.1", 50123)
    if tls:
        flow.client_conn.timestamp_tls_setup = T0 - 0.02
        flow.client_conn.tls_version = "TLSv1.3"
        flow.client_conn.sni = "backend.example"
        flow.client_conn.alpn = b"http/1.1"
    else:
        flow.client_conn.timestamp_tls_setup = None
    flow.websocket = WebSocketData() if status == 101 else None
    return flow


def send(
    rec: Recorder,
    flow: http.HTTPFlow,
    content: bytes,
    *,
    from_client: bool = True,
    text: bool = True,
    at: float = 0.5,
) -> WebSocketMessage:
    assert flow.websocket is not None
    message = WebSocketMessage(
        WsOpcode.TEXT if text else WsOpcode.BINARY, from_client, content, T0 + at
    )
    flow.websocket.messages.append(message)
    rec.websocket_message(flow)
    return message


def end(
    rec: Recorder,
    flow: http.HTTPFlow,
    *,
    by_client: bool,
    code: int,
    reason: str | None,
    at: float = 1.0,
) -> None:
    assert flow.websocket is not None
    flow.websocket.closed_by_client = by_client
    flow.websocket.close_code = code
    flow.websocket.close_reason = reason
    flow.websocket.timestamp_end = T0 + at
    rec.websocket_end(flow)


def records(path: Path) -> list[Record]:
    return records_so_far(path)  # (the recorder is still running: no end record yet)


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    return tmp_path / "chat.msgpack"


@pytest.fixture
def recorder(cassette: Path) -> Iterator[Recorder]:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        yield rec
        rec.done()


def test_a_connection_becomes_open_messages_and_close(recorder: Recorder, cassette: Path) -> None:
    flow = make_flow(
        request_headers=[
            (b"Sec-WebSocket-Protocol", b"chat.v2, chat.v1"),
            (b"Sec-WebSocket-Protocol", b"legacy"),
            (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
        ],
        response_headers=[(b"Sec-WebSocket-Protocol", b"chat.v1")],
    )
    recorder.websocket_start(flow)
    send(recorder, flow, "你好".encode(), at=0.25)
    send(recorder, flow, b"\x00\xff", from_client=False, text=False, at=0.5)
    end(recorder, flow, by_client=True, code=4001, reason="bye")

    opened, hello, binary, close = records(cassette)
    assert isinstance(opened, Open)
    assert opened.conn == 1
    assert opened.started_at == T0
    assert (opened.method, opened.scheme, opened.host, opened.port) == (
        "GET",
        "ws",
        "backend.example",
        9000,
    )
    assert opened.target == "/chat?room=1"
    assert opened.url == "ws://backend.example:9000/chat?room=1"
    assert opened.http_version == "HTTP/1.1"
    assert opened.status == 101
    assert opened.request_headers[0] == (b"Host", b"backend.example:9000")
    assert (b"Sec-WebSocket-Protocol", b"legacy") in opened.request_headers
    assert opened.subprotocols == ("chat.v2", "chat.v1", "legacy")
    assert opened.extensions == ("permessage-deflate; client_max_window_bits",)
    assert opened.subprotocol == "chat.v1"
    assert opened.client == "127.0.0.1:50123"
    assert opened.tls is None
    assert opened.body == b""
    assert hello == Message(1, 0.25, Side.CLIENT, Opcode.TEXT, "你好".encode())
    assert binary == Message(1, 0.5, Side.SERVER, Opcode.BINARY, b"\x00\xff")
    assert close == Close(1, 1.0, Side.CLIENT, 4001, "bye", on_wire=True)
    assert recorder.stats.messages == 2
    assert recorder.stats.bytes == 8
    assert (recorder.stats.open, recorder.stats.closed) == (0, 1)


def test_wss_records_the_client_tls_facts(recorder: Recorder, cassette: Path) -> None:
    recorder.websocket_start(make_flow(tls=True))
    (opened,) = records(cassette)
    assert isinstance(opened, Open)
    assert opened.scheme == "wss"
    assert opened.tls == TlsInfo(version="TLSv1.3", sni="backend.example", alpn="http/1.1")


def test_ipv6_client_address(recorder: Recorder, cassette: Path) -> None:
    flow = make_flow()
    flow.client_conn.peername = ("::1", 4000, 0, 0)
    recorder.websocket_start(flow)
    opened = records(cassette)[0]
    assert isinstance(opened, Open)
    assert opened.client == "[::1]:4000"


@pytest.mark.parametrize(
    ("by_client", "code", "reason", "expected"),
    [
        (False, 4003, "kicked", Close(1, 1.0, Side.SERVER, 4003, "kicked", on_wire=True)),
        (False, 1006, None, Close(1, 1.0, Side.SERVER, 1006, "", on_wire=False)),
        (True, 1005, "", Close(1, 1.0, Side.CLIENT, 1005, "", on_wire=False)),
        (True, 1015, None, Close(1, 1.0, Side.CLIENT, 1015, "", on_wire=False)),
        (True, 1000, "", Close(1, 1.0, Side.CLIENT, 1000, "", on_wire=True)),
    ],
)
def test_close_facts(
    recorder: Recorder,
    cassette: Path,
    by_client: bool,
    code: int,
    reason: str | None,
    expected: Close,
) -> None:
    flow = make_flow()
    recorder.websocket_start(flow)
    end(recorder, flow, by_client=by_client, code=code, reason=reason)
    assert records(cassette)[-1] == expected


def test_a_refused_upgrade_is_an_open_with_its_status_and_body(
    recorder: Recorder, cassette: Path
) -> None:
    flow = make_flow(status=403, body=b"no token")
    recorder.response(flow)
    (opened,) = records(cassette)
    assert isinstance(opened, Open)
    assert (opened.status, opened.reason, opened.body) == (403, "Forbidden", b"no token")
    assert opened.subprotocol is None
    assert not opened.accepted
    assert recorder.stats.refused == 1
    assert recorder.stats.open == 0


def test_response_hook_ignores_accepted_upgrades_and_plain_http(
    recorder: Recorder, cassette: Path
) -> None:
    recorder.response(make_flow())  # 101: written at websocket_start instead
    plain = tflow.tflow(resp=True)
    recorder.response(plain)
    assert records(cassette) == []


def test_upgrade_header_is_matched_as_a_token_list(recorder: Recorder, cassette: Path) -> None:
    flow = make_flow(status=400)
    flow.request.headers["Upgrade"] = "h2c, WebSocket"
    recorder.response(flow)
    assert len(records(cassette)) == 1


def test_connection_ids_are_distinct_and_messages_keep_their_connection(
    recorder: Recorder, cassette: Path
) -> None:
    flows = [make_flow(f"/c{i}".encode()) for i in range(3)]
    for f in flows:
        recorder.websocket_start(f)
    for n in range(3):
        for i, f in enumerate(flows):
            send(recorder, f, f"c{i}-{n}".encode(), at=n)
    got: dict[int, list[bytes]] = {}
    for r in records(cassette):
        if isinstance(r, Message):
            got.setdefault(r.conn, []).append(r.payload)
    assert got == {i + 1: [f"c{i}-{n}".encode() for n in range(3)] for i in range(3)}


def test_done_closes_out_open_connections(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        flow = make_flow()
        rec.websocket_start(flow)
        send(rec, flow, b"still talking")
        rec.done()
    *_, close, note = records(cassette)
    assert isinstance(close, Close)
    assert (close.conn, close.by, close.code, close.reason, close.on_wire) == (
        1,
        None,
        None,
        "",
        False,
    )
    assert isinstance(note, Note)
    assert (note.conn, note.text) == (1, STOPPED_NOTE)


def test_events_after_stop_recording_are_ignored_and_messages_not_relayed(
    recorder: Recorder, cassette: Path
) -> None:
    flow = make_flow()
    recorder.websocket_start(flow)
    assert recorder.stop_recording("stopped by test") == 1
    late = send(recorder, flow, b"late")
    end(recorder, flow, by_client=True, code=1006, reason=None)
    recorder.websocket_start(make_flow())
    kinds = [type(r).__name__ for r in records(cassette)]
    assert kinds == ["Open", "Close", "Note"]
    assert late.dropped


def test_filter_records_only_matching_connections(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette), wstape_filter="~u /chat")
        other = make_flow(b"/metrics")
        rec.websocket_start(other)
        send(rec, other, b"ignored")
        rec.response(make_flow(b"/admin", status=403))
        chat = make_flow(b"/chat")
        rec.websocket_start(chat)
        send(rec, chat, b"kept")
        rec.done()
    opened, kept, *_ = records(cassette)
    assert isinstance(opened, Open) and opened.target == "/chat"
    assert isinstance(kept, Message) and kept.payload == b"kept"


def test_invalid_filter_is_an_options_error(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx, pytest.raises(exceptions.OptionsError, match="filter"):
        tctx.configure(rec, wstape_filter="~u (")


def test_default_header_redaction_keeps_names(recorder: Recorder, cassette: Path) -> None:
    flow = make_flow(
        request_headers=[(b"authorization", b"Bearer s3cret"), (b"Cookie", b"sid=abc")],
        response_headers=[(b"Set-Cookie", b"sid=def"), (b"X-Trace", b"42")],
    )
    recorder.websocket_start(flow)
    opened = records(cassette)[0]
    assert isinstance(opened, Open)
    assert (b"authorization", REDACTED) in opened.request_headers
    assert (b"Cookie", REDACTED) in opened.request_headers
    assert (b"Set-Cookie", REDACTED) in opened.response_headers
    assert (b"X-Trace", b"42") in opened.response_headers
    raw = cassette.read_bytes()
    assert b"s3cret" not in raw and b"sid=" not in raw


def test_more_headers_add_to_the_defaults_unless_they_are_off(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette), wstape_redact_headers=["X-*-Id"])
        headers = [(b"X-Device-Id", b"d"), (b"Authorization", b"a"), (b"X-Auth-Token", b"t")]
        rec.websocket_start(make_flow(request_headers=headers))
        tctx.configure(rec, wstape_default_redaction=False)
        rec.websocket_start(make_flow(request_headers=headers))
        rec.done()
        with pytest.raises(exceptions.OptionsError, match="wstape_redact_headers: not a header"):
            tctx.configure(rec, wstape_redact_headers=["bad name"])
    first, second = (r for r in records(cassette) if isinstance(r, Open))
    assert first.request_headers[-3:] == tuple((k, REDACTED) for k, _ in headers)
    assert second.request_headers[-3:] == (
        (b"X-Device-Id", REDACTED),
        (b"Authorization", b"a"),
        (b"X-Auth-Token", b"t"),
    )


def test_json_keys_are_masked_in_text_messages_only(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(
            rec,
            wstape_cassette=str(cassette),
            wstape_default_redaction=False,
            wstape_redact_json_keys=["token", "Password"],
        )
        flow = make_flow()
        rec.websocket_start(flow)
        relayed = send(rec, flow, b'{"op": "login", "token": "T0K3N", "n": [1, {"password": 2}]}')
        send(rec, flow, b'{"op": "ping"}')
        send(rec, flow, b"token=T0K3N")
        send(rec, flow, b'{"token": "BIN"}', text=False)
        rec.done()
    msgs = [r.payload for r in records(cassette) if isinstance(r, Message)]
    assert msgs == [
        b'{"op": "login", "token": "<redacted>", "n": [1, {"password": "<redacted>"}]}',
        b'{"op": "ping"}',
        b"token=T0K3N",
        b'{"token": "BIN"}',
    ]
    assert relayed.content.startswith(b'{"op": "login", "token": "T0K3N"')  # wire untouched


def test_deeply_nested_json_is_recorded_redacted(cassette: Path) -> None:
    """Issue 8: json.loads raised RecursionError inside websocket_message, mitmproxy
    logged it and relayed the message unrecorded."""
    deep = b"[" * 100_000 + b'{"token": "T0K3N"}' + b"]" * 100_000
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette), wstape_redact_json_keys=["token"])
        flow = make_flow()
        rec.websocket_start(flow)
        relayed = send(rec, flow, deep)
        rec.done()
    assert not relayed.dropped and relayed.content == deep
    (msg,) = [r for r in records(cassette) if isinstance(r, Message)]
    assert msg.payload == deep.replace(b'"T0K3N"', b'"<redacted>"')
    assert rec.stats.messages == 1 and rec.stats.redacted.json_keys == 1


def test_a_message_that_cannot_be_redacted_precisely_is_withheld_with_a_note(
    recorder: Recorder, cassette: Path
) -> None:
    flow = make_flow()
    recorder.websocket_start(flow)
    relayed = send(recorder, flow, b'{"token": "T0K3N", oops}')
    assert not relayed.dropped  # recorded (withheld), so it is relayed
    msg, note = records(cassette)[1:3]
    assert isinstance(msg, Message) and msg.payload == REDACTED
    assert isinstance(note, Note) and note.conn == msg.conn and note.t == msg.t
    assert "withheld" in note.text
    assert b"T0K3N" not in cassette.read_bytes()
    assert recorder.stats.redacted.withheld == 1


def test_a_redaction_bug_writes_the_marker_not_the_secret(
    recorder: Recorder,
    cassette: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: Redactor, payload: bytes, text: bool, notes: object = None) -> bytes:
        raise RuntimeError("boom")

    flow = make_flow()
    recorder.websocket_start(flow)
    monkeypatch.setattr(Redactor, "payload", broken)
    with caplog.at_level(logging.ERROR):
        relayed = send(recorder, flow, b'{"token": "T0K3N"}')
    assert not relayed.dropped
    msg, note = records(cassette)[1:3]
    assert isinstance(msg, Message) and msg.payload == REDACTED
    assert isinstance(note, Note) and "RuntimeError" in note.text
    assert "redaction failed" in caplog.text


def test_an_upgrade_that_cannot_be_redacted_is_refused(
    recorder: Recorder, cassette: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Redactor, op: Open, notes: object = None) -> Open:
        raise RuntimeError("boom")

    monkeypatch.setattr(Redactor, "open", broken)
    flow = make_flow(request_headers=[(b"Authorization", b"Bearer s3cret")])
    recorder.websocket_start(flow)
    assert flow.error is not None  # killed: nothing is relayed unrecorded
    assert records(cassette) == [] and b"s3cret" not in cassette.read_bytes()


def test_a_subprotocol_token_is_redacted_everywhere(recorder: Recorder, cassette: Path) -> None:
    token = b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    flow = make_flow(
        request_headers=[(b"Sec-WebSocket-Protocol", b"chat.v1, access_token, " + token)],
        response_headers=[(b"Sec-WebSocket-Protocol", b"chat.v1")],
    )
    recorder.websocket_start(flow)
    opened = records(cassette)[0]
    assert isinstance(opened, Open)
    assert opened.subprotocols == ("chat.v1", "access_token", "<redacted>")
    assert opened.subprotocol == "chat.v1"
    assert (b"Sec-WebSocket-Protocol", b"chat.v1, access_token, <redacted>") in (
        opened.request_headers
    )
    assert token not in cassette.read_bytes()


def test_secret_env_values_are_redacted_in_binary_too(
    cassette: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WSTAPE_TEST_KEY", "k3y-S3CRET-value")
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette), wstape_secret_env=["WSTAPE_TEST_KEY"])
        flow = make_flow(path=b"/c?key=k3y-S3CRET-value")
        rec.websocket_start(flow)
        send(rec, flow, b"\x10\x00k3y-S3CRET-value\x00", text=False)
        end(rec, flow, by_client=True, code=1000, reason="bye k3y-S3CRET-value")
        rec.done()
        with pytest.raises(exceptions.OptionsError, match="wstape_secret_env: WSTAPE_NOPE"):
            tctx.configure(rec, wstape_secret_env=["WSTAPE_NOPE"])
    assert b"k3y-S3CRET" not in cassette.read_bytes()
    opened, open_note, msg, msg_note, close, close_note = records(cassette)
    assert isinstance(opened, Open) and opened.target == "/c?key=<redacted>"
    assert isinstance(msg, Message) and msg.payload == b"\x10\x00<redacted>******\x00"
    assert isinstance(close, Close) and close.reason == "bye <redacted>"
    for note in (open_note, msg_note, close_note):
        assert isinstance(note, Note) and "--secret-env" in note.text
    assert rec.stats.redacted.secrets == 3


def test_the_cassette_is_only_readable_by_its_owner(tmp_path: Path, cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        rec.done()
    assert cassette.stat().st_mode & 0o777 == 0o600
    existing = tmp_path / "old.msgpack"
    CassetteWriter(existing).close()
    existing.chmod(0o644)
    private_writer(existing, WriteMode.APPEND).close()
    assert existing.stat().st_mode & 0o777 == 0o600


def test_trimming_is_off_by_default_and_keeps_the_last_message(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        flow = make_flow()
        rec.websocket_start(flow)
        for i in range(3):
            send(rec, flow, b"%d" % i)
        assert flow.websocket is not None
        assert len(flow.websocket.messages) == 3
        tctx.configure(rec, wstape_trim_messages=True)
        send(rec, flow, b"3")
        assert [m.content for m in flow.websocket.messages] == [b"3"]
        rec.done()
    assert len([r for r in records(cassette) if isinstance(r, Message)]) == 4


def test_trim_override_wins_over_the_option(cassette: Path) -> None:
    rec = Recorder(trim_messages=True)
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        flow = make_flow()
        rec.websocket_start(flow)
        send(rec, flow, b"a")
        send(rec, flow, b"b")
        assert flow.websocket is not None
        assert [m.content for m in flow.websocket.messages] == [b"b"]
        rec.done()


async def test_write_failure_stops_recording_loudly(
    cassette: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        flow = make_flow()
        rec.websocket_start(flow)
        cassette.unlink()  # the writer notices a removed file on the next write
        with caplog.at_level(logging.ERROR):
            first = send(rec, flow, b"lost")
            second = send(rec, flow, b"also lost")
        refused = make_flow(status=403)
        rec.response(refused)
        rec.done()
        await tctx.master.should_exit.wait()  # the master was asked to shut down
    assert rec.failure is not None
    assert first.dropped and second.dropped
    assert refused.error is not None  # killed: not relayed unrecorded
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "cannot write cassette" in errors[0].getMessage()


def test_write_failure_calls_on_failure_instead_when_given(cassette: Path) -> None:
    seen: list[Exception] = []
    writer = CassetteWriter(cassette)
    rec = Recorder(writer=writer, on_failure=seen.append)
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        assert rec.writer is writer
        cassette.unlink()
        rec.websocket_start(make_flow())
        assert not tctx.master.should_exit.is_set()
    assert len(seen) == 1
    writer.close()


def test_existing_cassette_is_refused_unless_append_or_overwrite(cassette: Path) -> None:
    rec = Recorder()
    with taddons.context(rec) as tctx:
        tctx.configure(rec, wstape_cassette=str(cassette))
        rec.websocket_start(make_flow())
        rec.done()
    rec = Recorder()
    with taddons.context(rec) as tctx:
        with pytest.raises(exceptions.OptionsError, match="wstape_append"):
            tctx.configure(rec, wstape_cassette=str(cassette))
        with pytest.raises(exceptions.OptionsError, match="both"):
            tctx.configure(
                rec, wstape_cassette=str(cassette), wstape_append=True, wstape_overwrite=True
            )
        tctx.configure(rec, wstape_cassette=str(cassette), wstape_append=True)
        rec.websocket_start(make_flow())
        rec.done()
    opens = [r.conn for r in records(cassette) if isinstance(r, Open)]
    assert opens == [1, 2]


def test_without_a_cassette_nothing_is_recorded(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(trim_messages=True)
    with taddons.context(rec), caplog.at_level(logging.WARNING):
        rec.running()
        flow = make_flow()
        rec.websocket_start(flow)
        message = send(rec, flow, b"x")
        rec.done()
    assert not message.dropped
    assert "not set" in caplog.text


def test_failures_before_an_answer_are_logged_not_recorded(
    recorder: Recorder, cassette: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from mitmproxy import flow as mflow
    from mitmproxy.proxy.server_hooks import ServerConnectionHookData

    failed = make_flow()
    failed.response = None
    failed.websocket = None
    failed.error = mflow.Error("Connection refused")
    server = tflow.tserver_conn()
    server.address = ("backend.example", 9000)
    server.error = "Connect call failed"
    with caplog.at_level(logging.WARNING):
        recorder.error(failed)
        recorder.error(tflow.tflow(err=True))  # not an upgrade: nothing to say
        recorder.server_connect_error(ServerConnectionHookData(server, failed.client_conn))
    assert records(cassette) == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "upgrade to http://backend.example:9000/chat?room=1 failed" in lines[0]
    assert "Connection refused" in lines[0]
    assert "cannot connect to backend.example:9000 (Connect call failed)" in lines[1]


V1_SAMPLE = Path(__file__).parent.parent / "data" / "cassette-v1.msgpack"


def test_appending_to_a_v1_cassette_is_refused_and_leaves_its_mode(tmp_path: Path) -> None:
    old = tmp_path / "old.msgpack"
    old.write_bytes(V1_SAMPLE.read_bytes())
    old.chmod(0o644)
    with pytest.raises(OlderCassette, match="wstape upgrade"):
        private_writer(old, WriteMode.APPEND)
    assert old.stat().st_mode & 0o777 == 0o644  # (it was chmodded 0600 before the refusal)
    assert old.read_bytes() == V1_SAMPLE.read_bytes()
    with pytest.raises(CassetteExists):
        private_writer(old, WriteMode.CREATE)
    assert old.stat().st_mode & 0o777 == 0o644
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o755)
    with pytest.raises(CassetteWriteError):
        private_writer(folder, WriteMode.OVERWRITE)
    assert folder.stat().st_mode & 0o777 == 0o755


def test_the_script_addon_logs_an_option_error_at_startup_as_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old.msgpack"
    old.write_bytes(V1_SAMPLE.read_bytes())
    rec = ScriptRecorder()
    with taddons.context(rec) as tctx, caplog.at_level(logging.ERROR):
        tctx.configure(rec, wstape_cassette=str(old), wstape_append=True)  # (no raise)
        assert rec.writer is None
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert errors[0].startswith("wstape: error: wstape_cassette: ")
        assert "wstape upgrade" in errors[0] and not caplog.records[-1].exc_info
        rec.running()  # (once mitmproxy runs, a bad value is refused as the Recorder does)
        with pytest.raises(exceptions.OptionsError, match="wstape upgrade"):
            tctx.configure(rec, wstape_cassette=str(tmp_path / "old.msgpack"), wstape_append=True)


@pytest.mark.skipif(not MITMDUMP.exists(), reason=f"no mitmdump next to Python: {MITMDUMP}")
def test_mitmdump_with_wstape_append_onto_a_v1_cassette_says_one_line(tmp_path: Path) -> None:
    old = tmp_path / "old.msgpack"
    old.write_bytes(V1_SAMPLE.read_bytes())
    old.chmod(0o644)
    result = subprocess.run(
        [
            str(MITMDUMP),
            "-q",
            "--listen-port",
            "0",
            "-s",
            wstape_addon_path(),
            "--set",
            f"wstape_cassette={old}",
            "--set",
            "wstape_append=true",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
        cwd=tmp_path,
    )
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in out and "OptionsError" not in out, out
    errors = [line for line in out.splitlines() if "wstape: error:" in line]
    assert len(errors) == 1 and "wstape upgrade" in errors[0], out
    assert old.stat().st_mode & 0o777 == 0o644


def test_an_engineio_upgrade_from_long_polling_is_noted_and_warned_once(
    recorder: Recorder, cassette: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The polling part (Engine.IO open packet, Socket.IO connect) went over plain HTTP
    and is not in the cassette: the recording says so, and so does the recorder."""
    for conn in (1, 2):
        flow = make_flow(f"/socket.io/?EIO=4&transport=websocket&sid=abc{conn}".encode())
        recorder.websocket_start(flow)
        end(recorder, flow, by_client=True, code=1000, reason="")
    plain = make_flow(b"/socket.io/?EIO=4&transport=websocket")
    recorder.websocket_start(plain)
    end(recorder, plain, by_client=True, code=1000, reason="")
    notes = [r for r in records(cassette) if isinstance(r, Note)]
    assert [n.conn for n in notes] == [1, 2]
    assert all("upgraded this connection from HTTP long-polling" in n.text for n in notes)
    warned = [r.getMessage() for r in caplog.records if "long-polling" in r.getMessage()]
    assert len(warned) == 1 and "transports=['websocket']" in warned[0]
