"""Faults on demand against the other real clients (docs/faults.md): ``websocket-client``
and Node.js ``ws`` reconnect with backoff after a ``drop``; headless Chromium runs the wx
network guide's heartbeat and reconnect code (tests/clients/pages/faults.html) against
``mute-heartbeats``, and a variant that ignores the dead heartbeat fails with
REPLAY-HEARTBEAT-DEAD. Every server is a ``wstape replay`` process (tests/helpers/browser.py).

The recording is the feed of tests/replay/faultclient.py: authenticate, subscribe, three
feed messages, app-level ``{"type":"ping"}`` / ``{"type":"pong"}`` heartbeats.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import (
    TIMEOUT,
    PageServer,
    chromium_missing,
    launch_chromium,
    node_missing,
    node_modules,
    read_report,
    replay,
    skip_unless_installed,
    violations,
    websocket_client_missing,
)
from tests.replay.faultclient import AUTH, AUTHED, SUB, SUBBED, dumps, feed_records
from wstape.cassettes import CassetteWriter

DEFLATE = ("permessage-deflate; client_max_window_bits",)
"""What Chromium and Node's ws offer (recorded, so the replay sees no changed offer)."""
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def feed_cassette(tmp_path: Path, extensions: tuple[str, ...] = ()) -> Path:
    path = tmp_path / "feed.msgpack"
    with CassetteWriter(path) as writer:
        for record in feed_records(extensions=extensions):
            writer.write(record)
    return path


def run_replay(
    tmp_path: Path, cassette: Path, client: Any, *args: str
) -> tuple[Any, dict[str, Any], int, str]:
    """``wstape replay CASSETTE ARGS`` with ``client(url)`` against it; what the client
    returned, the JSON report, the exit code and stderr."""
    report = tmp_path / f"report-{time.monotonic_ns()}.json"
    with replay(tmp_path, cassette, report, *args) as rep:
        result = client(f"ws://127.0.0.1:{rep.port}/feed")
        code = rep.finish()
    return result, read_report(report), code, rep.stderr


def check_reconnected_after_drop(report: dict[str, Any], code: int, stderr: str) -> None:
    assert (code, report["passed"], violations(report)) == (0, True, []), stderr
    [fault] = report["faults"]
    assert (fault["spec"], fault["what"]) == ("drop@after=3", "dropped TCP with no Close")
    assert fault["then"].startswith("reconnected after 0.2"), fault  # the first backoff
    first, again = report["connections"]
    assert first["close"]["code"] == 1006
    assert again["messages_matched"] == again["messages_expected"] == 2  # set up again
    assert again["close"] == {"by": "client", "code": 1000, "reason": ""}


# -- websocket-client -------------------------------------------------------------------


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """websocket-client honours the proxy variables; these connections are all local."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    yield


def websocket_client_feed(url: str, *, backoff: float = 0.2, attempts: int = 6) -> list[str]:
    """The app on ``websocket-client`` (sync): set up, read the feed to ``{"n":3}``, close;
    on a lost connection, reconnect after ``backoff`` seconds, doubling each time."""
    import websocket

    outcomes: list[str] = []
    for _ in range(attempts):
        try:
            ws = websocket.create_connection(url, timeout=TIMEOUT)
        except (websocket.WebSocketException, OSError) as e:
            outcomes.append(f"error {type(e).__name__}")
        else:
            try:
                ws.send(dumps(AUTH))
                while json.loads(ws.recv()) != AUTHED:
                    pass
                ws.send(dumps(SUB))
                while json.loads(ws.recv()) != SUBBED:
                    pass
                while json.loads(ws.recv()).get("n") != 3:
                    pass
                ws.close()
                outcomes.append("done")
                return outcomes
            except (websocket.WebSocketConnectionClosedException, ConnectionError):
                outcomes.append("lost")
            finally:
                ws.shutdown()
        time.sleep(backoff)  # the client's own backoff, not a wait for readiness
        backoff *= 2
    return outcomes


@skip_unless_installed(websocket_client_missing())
@pytest.mark.usefixtures("no_proxy_env")
def test_websocket_client_reconnects_with_backoff_after_a_drop(tmp_path: Path) -> None:
    outcomes, report, code, stderr = run_replay(
        tmp_path, feed_cassette(tmp_path), websocket_client_feed,
        "--speed", "0", "--fault", "drop@after=3", "--expect-reconnect", "3",
    )  # fmt: skip
    assert outcomes == ["lost", "done"]
    check_reconnected_after_drop(report, code, stderr)


@skip_unless_installed(websocket_client_missing())
@pytest.mark.usefixtures("no_proxy_env")
def test_websocket_client_that_gives_up_after_a_drop_fails(tmp_path: Path) -> None:
    def once(url: str) -> list[str]:
        return websocket_client_feed(url, attempts=1)

    outcomes, report, code, _ = run_replay(
        tmp_path, feed_cassette(tmp_path), once,
        "--speed", "0", "--fault", "drop@after=3", "--expect-reconnect", "0.5",
    )  # fmt: skip
    assert outcomes == ["lost"]
    assert code == 1 and violations(report) == [("REPLAY-FAULT-NO-RECONNECT", "error")]


# -- Node.js ws -------------------------------------------------------------------------------

NODE_CLIENT = r"""
"use strict";
// The app on Node's ws: set up on every open, read the feed to {"n":3}, close; on close
// (onSocketClose) reconnect after a backoff that doubles.
const WebSocket = require("ws");
const [url, backoffMs] = process.argv.slice(2);
const outcomes = [];
let backoff = +backoffMs, done = false;
const give = setTimeout(() => { outcomes.push("timed out"); finish(); }, 15000);
function finish() { clearTimeout(give); process.stdout.write(JSON.stringify(outcomes) + "\n"); }
function connect() {
  const ws = new WebSocket(url);
  ws.on("open", () => ws.send(JSON.stringify({type: "auth", token: "t0k3n"})));
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString("utf8"));
    if (m.type === "authed") ws.send(JSON.stringify({type: "sub", topic: "prices"}));
    if (m.n === 3) { done = true; ws.close(1000); }
  });
  ws.on("error", () => {});
  ws.on("close", (code) => {
    outcomes.push(done ? "done" : "closed " + code);
    if (done || outcomes.length >= 6) { finish(); return; }
    setTimeout(connect, backoff);
    backoff *= 2;
  });
}
connect();
"""


@skip_unless_installed(node_missing())
def test_node_ws_reconnects_with_backoff_after_a_drop(tmp_path: Path) -> None:
    script = tmp_path / "feed.cjs"
    script.write_text(NODE_CLIENT, encoding="utf-8")

    def node(url: str) -> list[str]:
        done = subprocess.run(
            ["node", str(script), url, "200"],
            capture_output=True,
            env={**os.environ, "NODE_PATH": str(node_modules())},
            timeout=TIMEOUT + 5,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        outcomes: list[str] = json.loads(done.stdout)
        return outcomes

    outcomes, report, code, stderr = run_replay(
        tmp_path, feed_cassette(tmp_path, DEFLATE), node,
        "--speed", "0", "--fault", "drop@after=3", "--expect-reconnect", "3",
    )  # fmt: skip
    assert outcomes == ["closed 1006", "done"]
    check_reconnected_after_drop(report, code, stderr)


# -- Chromium ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        yield chromium
        chromium.close()


def page_feed(browser: Any, pages: PageServer, options: dict[str, Any]) -> Any:
    """A client for :func:`run_replay`: runFeed(url, options) in a fresh page."""

    def run(url: str) -> dict[str, Any]:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT * 1000)
            page.goto(pages.url("faults.html"))
            result: dict[str, Any] = page.evaluate("([url, o]) => runFeed(url, o)", [url, options])
            return result
        finally:
            context.close()

    return run


MUTE = ("--speed", "1", "--fault", "mute-heartbeats@after=3", "--heartbeat-timeout", "0.3")


@skip_unless_installed(chromium_missing())
def test_chromium_gives_up_a_dead_heartbeat_and_reconnects(
    tmp_path: Path, browser: Any, pages: PageServer
) -> None:
    result, report, code, stderr = run_replay(
        tmp_path, feed_cassette(tmp_path, DEFLATE), page_feed(browser, pages, {}),
        "--profile", "browser", *MUTE,
    )  # fmt: skip
    assert result["error"] is None and result["done"], result
    first, again = result["attempts"]
    assert first["outcome"] == "heartbeat dead" and first["close"]["code"] == 1000
    assert again["outcome"] == "done" and again["feed"] == [1, 2, 3]
    assert (code, report["passed"], violations(report)) == (0, True, []), stderr
    [fault] = report["faults"]
    assert fault["what"] == "stopped answering the client's heartbeats"
    assert fault["then"].startswith("reconnected after 0.2"), fault
    muted, played = report["connections"]
    assert muted["heartbeats"]["muted"] >= 1 and played["heartbeats"]["answered"] >= 1


@skip_unless_installed(chromium_missing())
def test_chromium_page_that_ignores_a_dead_heartbeat_fails(
    tmp_path: Path, browser: Any, pages: PageServer
) -> None:
    result, report, code, _ = run_replay(
        tmp_path, feed_cassette(tmp_path, DEFLATE),
        page_feed(browser, pages, {"checkHeartbeat": False}), "--profile", "browser", *MUTE,
    )  # fmt: skip
    # It never noticed: it read the whole feed on the dead connection.
    assert result["error"] is None and [a["outcome"] for a in result["attempts"]] == ["done"]
    assert code == 1 and violations(report) == [("REPLAY-HEARTBEAT-DEAD", "error")]
