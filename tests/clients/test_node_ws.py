"""Node.js with the npm package ``ws`` (8.x): one round trip through ``wstape record``
(reverse mode, in front of a local ``websockets`` backend) and against ``wstape replay``.

``ws`` comes from ``.ci/setup-clients.sh`` ($WSTAPE_NODE_MODULES or .ci/node_modules);
without node or ``ws`` the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers.browser import (
    TIMEOUT,
    Backend,
    BackgroundLoop,
    node_missing,
    node_modules,
    read_report,
    record,
    replay,
    skip_unless_installed,
    violations,
)
from tests.replay.conftest import close, opening, s
from wstape.cassettes import CassetteWriter, read_cassette
from wstape.core.model import Close, Message, Opcode, Open, Side

pytestmark = skip_unless_installed(node_missing())

TEXT = "你好, node"
BYTES = [0, 1, 2, 127, 128, 254, 255]
REASON = "再见，朋友"
REASON_124 = "用户主动退出登录" * 5 + "谢!"

# The same plan steps as tests/clients/pages/client.html, for a Node.js ws client.
CLIENT = r"""
"use strict";
const WebSocket = require("ws");
const [url, planJson, timeoutMs] = process.argv.slice(2);
const plan = JSON.parse(planJson);
const result = {opened: false, protocol: null, extensions: null, received: [], attempts: [],
                close: null, error: null};
let waiters = [];
const wake = () => { const w = waiters; waiters = []; w.forEach((f) => f()); };
const until = (pred, what) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("timed out waiting for " + what)), +timeoutMs);
  const check = () => {
    if (pred()) { clearTimeout(timer); resolve(); }
    else if (result.close !== null && what !== "close") {
      clearTimeout(timer); reject(new Error("closed while waiting for " + what));
    } else waiters.push(check);
  };
  check();
});
const ws = new WebSocket(url);
ws.on("message", (data, isBinary) => {
  result.received.push(isBinary ? {type: "binary", data: Array.from(data)}
                                 : {type: "text", data: data.toString("utf8")});
  wake();
});
ws.on("close", (code, reason) => {
  result.close = {code: code, reason: reason.toString("utf8")};
  wake();
});
ws.on("error", (e) => { result.error = String(e.message || e); wake(); });
(async () => {
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  result.opened = true;
  result.protocol = ws.protocol;
  result.extensions = ws.extensions;
  for (const step of plan) {
    switch (step.op) {
      case "send": ws.send(step.text); break;
      case "sendBinary": ws.send(Buffer.from(step.bytes)); break;
      case "recv":
        await until(() => result.received.length >= step.count, step.count + " messages");
        break;
      case "tryClose":
        try {
          ws.close(step.code, step.reason);
          result.attempts.push({code: step.code, error: null});
        } catch (e) {
          result.attempts.push({code: step.code, error: e.name, readyState: ws.readyState});
        }
        break;
      case "close":
        ws.close(step.code, step.reason);
        await until(() => result.close !== null, "close");
        break;
      default: throw new Error("unknown step " + step.op);
    }
  }
})().catch((e) => { result.error = String(e.message || e); ws.terminate(); })
  .finally(() => { process.stdout.write(JSON.stringify(result) + "\n"); process.exit(0); });
"""

PLAN = [
    {"op": "recv", "count": 1},
    {"op": "send", "text": TEXT},
    {"op": "recv", "count": 2},
    {"op": "sendBinary", "bytes": BYTES},
    {"op": "recv", "count": 3},
    # ws refuses these before sending anything (as Chromium does, with other exceptions).
    {"op": "tryClose", "code": 1005},
    {"op": "tryClose", "code": 2999},
    {"op": "tryClose", "code": 4001, "reason": REASON_124},
    {"op": "close", "code": 4001, "reason": REASON},
]
RECEIVED = [
    {"type": "text", "data": Backend.HELLO},
    {"type": "text", "data": f"echo: {TEXT}"},
    {"type": "binary", "data": BYTES[::-1]},
]


def run_node(tmp_path: Path, url: str, plan: list[dict[str, Any]] = PLAN) -> dict[str, Any]:
    script = tmp_path / "client.cjs"
    script.write_text(CLIENT, encoding="utf-8")
    env = {**os.environ, "NODE_PATH": str(node_modules())}
    done = subprocess.run(
        ["node", str(script), url, json.dumps(plan), str(int(TIMEOUT * 1000))],
        capture_output=True,
        env=env,
        timeout=TIMEOUT + 5,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def check_result(result: dict[str, Any]) -> None:
    assert result["error"] is None, result
    assert result["received"] == RECEIVED
    assert [(a["code"], a["error"]) for a in result["attempts"]] == [
        (1005, "TypeError"),
        (2999, "TypeError"),
        (4001, "RangeError"),
    ]
    assert result["close"]["code"] == 4001


def test_node_ws_record_then_replay(tmp_path: Path, bg: BackgroundLoop) -> None:
    cassette = tmp_path / "node.msgpack"
    with Backend(bg) as backend:
        mode = f"reverse:ws://127.0.0.1:{backend.port}"
        with record(tmp_path, cassette, "--mode", mode, "--confdir", tmp_path / "ca") as rec:
            live = run_node(tmp_path, f"ws://127.0.0.1:{rec.port}/chat")
            assert rec.stop() == 0, rec.stderr
    check_result(live)
    assert live["close"]["reason"] == REASON  # mitmproxy echoes the whole Close
    assert live["extensions"] == "permessage-deflate"  # negotiated with the backend
    [seen] = backend.connections
    assert seen.received == [TEXT, bytes(BYTES)] and seen.close_rcvd == (4001, REASON)

    _, records = read_cassette(cassette)
    messages = [r for r in records if isinstance(r, Message)]
    assert [(m.side, m.opcode, m.payload) for m in messages] == [
        (Side.SERVER, Opcode.TEXT, Backend.HELLO.encode()),
        (Side.CLIENT, Opcode.TEXT, TEXT.encode()),
        (Side.SERVER, Opcode.TEXT, f"echo: {TEXT}".encode()),
        (Side.CLIENT, Opcode.BINARY, bytes(BYTES)),
        (Side.SERVER, Opcode.BINARY, bytes(BYTES[::-1])),
    ]
    [end] = [r for r in records if isinstance(r, Close)]
    assert (end.by, end.code, end.reason) == (Side.CLIENT, 4001, REASON)
    [op] = [r for r in records if isinstance(r, Open)]
    assert op.extensions == ("permessage-deflate; client_max_window_bits",)
    assert (op.response_header("Sec-WebSocket-Extensions") or "").startswith("permessage-deflate")

    report_path = tmp_path / "report.json"
    with replay(tmp_path, cassette, report_path, "--profile", "browser") as rep:
        again = run_node(tmp_path, f"ws://127.0.0.1:{rep.port}/chat")
        code = rep.finish()
    check_result(again)
    assert again["extensions"] == "permessage-deflate"  # accepted as recorded
    report = read_report(report_path)
    assert (code, report["passed"], report["violations"]) == (0, True, []), report
    [played] = report["connections"]
    assert played["messages_expected"] == played["messages_matched"] == 2
    assert played["close"] == {"by": "client", "code": 4001, "reason": REASON}


def test_node_ws_close_1001_is_flagged_under_browser(tmp_path: Path) -> None:
    """ws lets close(1001) through, which Chromium and WeChat DevTools refuse
    (InvalidAccessError): the replay under ``--profile browser`` says so."""
    cassette = tmp_path / "recorded.msgpack"
    with CassetteWriter(cassette) as writer:
        for r in (
            # ws offers permessage-deflate, as recorded in the round trip above.
            opening(1, "/chat", extensions=("permessage-deflate; client_max_window_bits",)),
            s(1, 0.0, Backend.HELLO),
            close(1, 0.01, Side.CLIENT, 4001, REASON),
        ):
            writer.write(r)
    plan = [{"op": "recv", "count": 1}, {"op": "close", "code": 1001, "reason": "away"}]
    report_path = tmp_path / "report.json"
    with replay(tmp_path, cassette, report_path, "--profile", "browser") as rep:
        result = run_node(tmp_path, f"ws://127.0.0.1:{rep.port}/chat", plan)
        code = rep.finish()
    assert result["error"] is None and result["close"]["code"] == 1001, result
    report = read_report(report_path)
    assert code == 1 and report["passed"] is False
    assert violations(report) == [("BROWSER-CLOSE-CODE", "error"), ("REPLAY-CLOSE-CHANGED", "warn")]
