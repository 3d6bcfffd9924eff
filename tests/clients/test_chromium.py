"""Headless Chromium (Debian's, driven by Playwright) through ``wstape record`` and against
``wstape replay``: the closest real client to WeChat DevTools and PC WeChat, which are
Chromium inside.

The page is tests/clients/pages/client.html, served on 127.0.0.1; it runs a plan of
steps (send, wait, close) and returns what the browser saw. One browser per module; every
test uses a fresh context (and, when recording, a proxy through ``wstape record``).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import (
    TIMEOUT,
    Backend,
    BackgroundLoop,
    PageServer,
    chromium_missing,
    launch_chromium,
    proxy_settings,
    read_report,
    record,
    replay,
    skip_unless_installed,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Opcode, Open, Side
from wstape.core.rules import RuleConfig, Severity, check_client_close, close_body

pytestmark = skip_unless_installed(chromium_missing())

TEXT = "你好, wstape"
BYTES = [0, 1, 2, 127, 128, 254, 255]
REASON = "再见，朋友"
REASON_123 = "用户主动退出登录" * 5 + "谢"  # 41 characters, 123 bytes of UTF-8
REASON_124 = REASON_123 + "!"
HELLO, PING, PONG = Backend.HELLO, Backend.PING, Backend.PONG

CHAT = [
    {"op": "recv", "count": 1},
    {"op": "send", "text": TEXT},
    {"op": "recv", "count": 2},
    {"op": "sendBinary", "bytes": BYTES},
    {"op": "recv", "count": 3},
    {"op": "close", "code": 4001, "reason": REASON},
]
CHAT_RECEIVED = [
    {"type": "text", "data": HELLO},
    {"type": "text", "data": f"echo: {TEXT}"},
    {"type": "binary", "data": BYTES[::-1]},
]


@pytest.fixture(scope="module")
def browser(ca_cert: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw, trust=[ca_cert])
        yield chromium
        chromium.close()


def run_page(
    browser: Any, pages: PageServer, url: str, plan: list[dict[str, Any]], *, proxy: int = 0
) -> dict[str, Any]:
    """Open the test page in a fresh context (through ``wstape record`` on ``proxy``) and
    run ``plan`` against the WebSocket ``url``; returns what the page saw."""
    context = browser.new_context(proxy=proxy_settings(proxy) if proxy else None)
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        page.goto(pages.url("client.html"))
        result: dict[str, Any] = page.evaluate(
            "([url, plan, ms]) => runPlan(url, plan, ms)", [url, plan, TIMEOUT * 1000]
        )
        return result
    finally:
        context.close()


def connection_records(cassette: Path) -> tuple[Open, list[Message], Close]:
    """The one recorded connection of ``cassette``: its open, messages and close."""
    _, records = read_cassette(cassette)
    opens = [r for r in records if isinstance(r, Open)]
    assert len(opens) == 1, opens
    messages = [r for r in records if isinstance(r, Message)]
    closes = [r for r in records if isinstance(r, Close)]
    assert len(closes) == 1, closes
    return opens[0], messages, closes[0]


def backend_for(scheme: str, bg: BackgroundLoop, tls: ssl.SSLContext) -> Backend:
    return Backend(bg, tls=tls if scheme == "wss" else None)


def record_page(
    tmp_path: Path,
    browser: Any,
    pages: PageServer,
    backend: Backend,
    confdir: Path,
    plan: list[dict[str, Any]],
) -> tuple[Path, dict[str, Any]]:
    """Run ``plan`` through ``wstape record`` (regular proxy mode) to ``backend``."""
    cassette = tmp_path / "chromium.msgpack"
    insecure = ["--ssl-insecure"] if backend.tls else []
    with record(tmp_path, cassette, "--confdir", confdir, *insecure) as rec:
        result = run_page(browser, pages, f"{backend.url}/chat", plan, proxy=rec.port)
        assert rec.stop() == 0, rec.stderr
    return cassette, result


def replay_page(
    tmp_path: Path,
    browser: Any,
    pages: PageServer,
    cassette: Path,
    confdir: Path,
    plan: list[dict[str, Any]],
    *,
    tls: bool,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Run ``plan`` against ``wstape replay --profile browser``; the page's result, the
    JSON report and the exit code."""
    report = tmp_path / "report.json"
    extra = ["--tls", "--hostname", "localhost", "--confdir", confdir] if tls else []
    with replay(tmp_path, cassette, report, "--profile", "browser", *extra) as rep:
        host = "wss://localhost" if tls else "ws://127.0.0.1"
        result = run_page(browser, pages, f"{host}:{rep.port}/chat", plan)
        code = rep.finish()
    return result, read_report(report), code


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_record_then_replay(
    scheme: str,
    tmp_path: Path,
    browser: Any,
    pages: PageServer,
    bg: BackgroundLoop,
    backend_tls: ssl.SSLContext,
    confdir: Path,
) -> None:
    with backend_for(scheme, bg, backend_tls) as backend:
        cassette, live = record_page(tmp_path, browser, pages, backend, confdir, CHAT)
    assert live["error"] is None, live
    assert live["received"] == CHAT_RECEIVED
    assert live["close"]["code"] == 4001 and live["close"]["reason"] == REASON
    assert live["extensions"].startswith("permessage-deflate")  # negotiated with the backend
    # The backend got exactly what the page sent, through the proxy.
    [seen] = backend.connections
    assert seen.received == [TEXT, bytes(BYTES)]
    assert seen.close_rcvd == (4001, REASON)

    # The cassette holds exactly that.
    op, messages, end = connection_records(cassette)
    assert (op.scheme, op.target, op.status, op.port) == (scheme, "/chat", 101, backend.port)
    assert [(m.side, m.opcode, m.payload) for m in messages] == [
        (Side.SERVER, Opcode.TEXT, HELLO.encode()),
        (Side.CLIENT, Opcode.TEXT, TEXT.encode()),
        (Side.SERVER, Opcode.TEXT, f"echo: {TEXT}".encode()),
        (Side.CLIENT, Opcode.BINARY, bytes(BYTES)),
        (Side.SERVER, Opcode.BINARY, bytes(BYTES[::-1])),
    ]
    assert (end.by, end.code, end.reason, end.on_wire) == (Side.CLIENT, 4001, REASON, True)

    # The same page against the replay gets the recorded server messages; clean report.
    again, report, code = replay_page(
        tmp_path, browser, pages, cassette, confdir, CHAT, tls=scheme == "wss"
    )
    assert again["error"] is None, again
    assert again["received"] == CHAT_RECEIVED
    # Compressed as recorded: the replay accepts Chromium's offer with the recorded
    # parameters (websockets' server_max_window_bits=12; client_max_window_bits=12).
    assert (
        again["extensions"] == live["extensions"] == op.response_header("Sec-WebSocket-Extensions")
    )
    # The replay echoes the code only (RFC 6455 §5.5.1); websockets and mitmproxy echo the
    # reason too, so onclose's reason is "" here and REASON when recording.
    assert (again["close"]["code"], again["close"]["wasClean"]) == (4001, True)
    assert (code, report["passed"], report["violations"]) == (0, True, []), report
    [played] = report["connections"]
    assert played["messages_expected"] == played["messages_matched"] == 2
    assert played["close"] == {"by": "client", "code": 4001, "reason": REASON}


# -- close codes: the browser refuses before sending, and the rules agree ------------------------

REFUSED = [
    {"op": "tryClose", "code": 1001},
    {"op": "tryClose", "code": 4001, "reason": REASON_124},
]
CLOSE_PLAN = [
    {"op": "recv", "count": 1},
    *REFUSED,
    {"op": "send", "text": "still open"},
    {"op": "recv", "count": 2},
    {"op": "close", "code": 4001, "reason": REASON_123},
]


def test_refused_closes_never_reach_the_wire(
    tmp_path: Path,
    browser: Any,
    pages: PageServer,
    bg: BackgroundLoop,
    backend_tls: ssl.SSLContext,
    confdir: Path,
) -> None:
    with backend_for("ws", bg, backend_tls) as backend:
        cassette, live = record_page(tmp_path, browser, pages, backend, confdir, CLOSE_PLAN)
    assert live["error"] is None, live
    # close(1001) throws InvalidAccessError, a 124-byte reason SyntaxError; the socket stays
    # open (readyState 1) and still works; the allowed close with 123 bytes goes through.
    assert [(a["code"], a["error"], a["readyState"]) for a in live["attempts"]] == [
        (1001, "InvalidAccessError", 1),
        (4001, "SyntaxError", 1),
    ]
    assert live["received"][1] == {"type": "text", "data": "echo: still open"}
    assert (live["close"]["code"], live["close"]["reason"]) == (4001, REASON_123)
    [seen] = backend.connections
    assert seen.received == ["still open"]
    assert seen.close_rcvd == (4001, REASON_123)
    _, messages, end = connection_records(cassette)
    assert [m.payload for m in messages if m.side is Side.CLIENT] == [b"still open"]
    assert (end.by, end.code, end.reason) == (Side.CLIENT, 4001, REASON_123)

    # Replayed under the browser profile: the refused calls sent nothing, so the report is
    # clean, and the allowed close (123 bytes: payload exactly 125) passes every rule.
    again, report, code = replay_page(
        tmp_path, browser, pages, cassette, confdir, CLOSE_PLAN, tls=False
    )
    assert again["error"] is None, again
    assert [a["error"] for a in again["attempts"]] == ["InvalidAccessError", "SyntaxError"]
    assert (code, report["passed"], report["violations"]) == (0, True, []), report
    assert report["connections"][0]["close"] == {"by": "client", "code": 4001, "reason": REASON_123}


PROBES: list[tuple[int | None, str | None]] = [
    (None, None),
    (1000, None),
    (1000, "bye"),
    (1001, None),
    (1002, None),
    (1003, None),
    (1004, None),
    (1005, None),
    (1006, None),
    (1011, None),
    (1014, None),
    (1015, None),
    (2999, None),
    (3000, None),
    (4001, "再见，朋友"),
    (4999, None),
    (5000, None),
    (4001, REASON_123),
    (4001, REASON_124),
    (4001, "😀" * 30 + "abc"),  # 123 bytes
    (4001, "😀" * 31),  # 124 bytes
    (1000, "x" * 123),
    (1000, "x" * 124),
    (1001, "x" * 124),  # both wrong: the code is checked first
]


def test_rules_flag_exactly_what_chromium_refuses(browser: Any, pages: PageServer) -> None:
    """For each close(code, reason): Chromium's verdict (the exception close() throws, or
    none) against wstape's close rules on the Close frame those arguments would make."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(pages.url("client.html"))
        verdicts = page.evaluate(
            "(probes) => probes.map(([code, reason]) => probeClose(code, reason))",
            [list(p) for p in PROBES],
        )
    finally:
        context.close()
    cfg = RuleConfig(profile="browser")
    table = []
    for (code, reason), thrown in zip(PROBES, verdicts, strict=True):
        found = check_client_close(close_body(code, reason or ""), cfg)
        errors = sorted({v.rule for v in found if v.severity is Severity.ERROR})
        table.append((code, len((reason or "").encode()), thrown, errors))
    for code, nbytes, thrown, errors in table:
        # The browser throws exactly when a rule says error...
        assert (thrown is not None) == bool(errors), (code, nbytes, thrown, errors)
        # ...and for the same reason: a bad code (InvalidAccessError), a long reason (SyntaxError).
        if thrown == "InvalidAccessError":
            assert "BROWSER-CLOSE-CODE" in errors, (code, errors)
        elif thrown == "SyntaxError":
            assert errors == ["RFC-CLOSE-REASON-LENGTH"], (code, nbytes, errors)
    refused = {(code, nbytes): thrown for code, nbytes, thrown, _ in table if thrown}
    assert refused == {
        (1001, 0): "InvalidAccessError",
        (1002, 0): "InvalidAccessError",
        (1003, 0): "InvalidAccessError",
        (1004, 0): "InvalidAccessError",
        (1005, 0): "InvalidAccessError",
        (1006, 0): "InvalidAccessError",
        (1011, 0): "InvalidAccessError",
        (1014, 0): "InvalidAccessError",
        (1015, 0): "InvalidAccessError",
        (2999, 0): "InvalidAccessError",
        (5000, 0): "InvalidAccessError",
        (4001, 124): "SyntaxError",
        (1000, 124): "SyntaxError",
        (1001, 124): "InvalidAccessError",
    }


# -- heartbeats ----------------------------------------------------------------------------------

HEARTBEAT_RECORDING = [
    {"op": "recv", "count": 1},
    {"op": "send", "text": PING},
    {"op": "recvText", "text": PONG, "count": 1},
    {"op": "send", "text": "status?"},
    {"op": "recvText", "text": "echo: status?"},
    # Detection from timing wants each reply sooner than half the pings' spacing: the
    # pause keeps that true however slowly a loaded machine relays the pong.
    {"op": "pause", "ms": 400},
    {"op": "send", "text": PING},
    {"op": "recvText", "text": PONG, "count": 2},
    {"op": "close", "code": 1000, "reason": "bye"},
]
HEARTBEAT_REPLAY = [
    # Pings before anything else, three in a row, around and after the recorded message,
    # with uneven pauses: none of it where the recording had its pings.
    {"op": "send", "text": PING},
    {"op": "send", "text": PING},
    {"op": "send", "text": PING},
    {"op": "recvText", "text": PONG, "count": 3},
    {"op": "pause", "ms": 130},
    {"op": "send", "text": PING},
    {"op": "send", "text": "status?"},
    {"op": "recvText", "text": "echo: status?"},
    {"op": "pause", "ms": 40},
    {"op": "send", "text": PING},
    {"op": "recvText", "text": PONG, "count": 5},
    {"op": "pause", "ms": 210},
    {"op": "send", "text": PING},
    {"op": "recvText", "text": PONG, "count": 6},
    {"op": "close", "code": 1000, "reason": "bye"},
]


def test_heartbeats_are_answered(
    tmp_path: Path,
    browser: Any,
    pages: PageServer,
    bg: BackgroundLoop,
    backend_tls: ssl.SSLContext,
    confdir: Path,
) -> None:
    with backend_for("ws", bg, backend_tls) as backend:
        cassette, live = record_page(
            tmp_path, browser, pages, backend, confdir, HEARTBEAT_RECORDING
        )
    assert live["error"] is None, live
    _, messages, _ = connection_records(cassette)
    assert [m.payload.decode() for m in messages] == [
        HELLO, PING, PONG, "status?", "echo: status?", PING, PONG,
    ]  # fmt: skip

    again, report, code = replay_page(
        tmp_path, browser, pages, cassette, confdir, HEARTBEAT_REPLAY, tls=False
    )
    assert again["error"] is None, (again, report)
    texts = [m["data"] for m in again["received"]]
    assert texts.count(PONG) == 6, texts
    # The hello keeps its recorded offset from the open; pongs go out at once, so the first
    # pings may be answered before it.
    assert texts.count("echo: status?") == texts.count(HELLO) == 1, texts
    # The pings were detected as heartbeats from the recording: one info finding says so.
    assert [(v["rule"], v["severity"]) for v in report["violations"]] == [
        ("REPLAY-HEARTBEAT-DETECTED", "info")
    ], report
    assert (code, report["passed"]) == (0, True), report
    [played] = report["connections"]
    assert played["messages_expected"] == played["messages_matched"] == 1
