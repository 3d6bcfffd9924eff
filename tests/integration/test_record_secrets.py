"""Secrets and ``wstape record`` as real processes: a websockets server and client through
``wstape record --mode reverse:...``, ten planted secrets, then a grep of the raw cassette.

With the default options every planted secret is redacted except the one in a binary
frame (binary payloads are only touched by the secret gates); with ``--secret-env`` not
even that. The redacted cassette still replays to the same client, which sends its real
secrets again.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.helpers.servers import (
    MAX_SIZE,
    ScenarioServer,
    clean_env,
    recorder,
    wait_for,
    wait_for_records,
)
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open


def planted() -> dict[str, str]:
    """Ten secrets, fresh for each run (so a grep can only find these)."""
    return {name: f"{name}-{secrets.token_hex(12)}" for name in PLANTED}


PLANTED = (
    "AUTHZ",  # Authorization header
    "COOKIE",  # Cookie header
    "APIKEY",  # X-Api-Key header
    "QTOKEN",  # ?token=
    "QACCESS",  # ?access_token=
    "JTOKEN",  # a JSON "token" in the first message
    "JNESTED",  # a nested "access_token"
    "JINNER",  # JSON inside a JSON string
    "SUBPROTO",  # a token among the offered subprotocols
    "BINARY",  # inside a binary frame
)
DEEP = 100_000
"""Levels of nesting of one more JSON message (issue 8: RecursionError, relayed unrecorded)."""


async def session(url: str, s: dict[str, str]) -> list[str | bytes]:
    """The client: every secret in its place; returns what the server echoed."""
    target = f"{url}/chat?room=1&token={s['QTOKEN']}&access_token={s['QACCESS']}"
    echoed: list[str | bytes] = []
    async with connect(
        target,
        proxy=None,
        max_size=MAX_SIZE,
        subprotocols=["chat.v2", "access_token", s["SUBPROTO"]],  # type: ignore[list-item]
        additional_headers={
            "Authorization": f"Bearer {s['AUTHZ']}",
            "Cookie": f"sid={s['COOKIE']}",
            "X-Api-Key": s["APIKEY"],
        },
    ) as ws:
        assert ws.subprotocol == "chat.v2"
        for message in messages(s):
            await ws.send(message)
            echoed.append(await ws.recv())
        await ws.close(1000, "bye")
    return echoed


def messages(s: dict[str, str]) -> list[str | bytes]:
    inner = json.dumps({"password": s["JINNER"], "note": "é/ü"})
    deep = "[" * DEEP + json.dumps({"token": s["JTOKEN"]}) + "]" * DEEP
    return [
        json.dumps({"type": "auth", "token": s["JTOKEN"]}),
        json.dumps({"type": "profile", "data": {"user": {"id": 7, "access_token": s["JNESTED"]}}}),
        json.dumps({"type": "relay", "payload": inner}),
        b"\x00\x01\x02" + s["BINARY"].encode() + b"\xff",
        deep,
        '{"type": "chat", "text": "no secret here"}',
    ]


def record(
    tmp_path: Path, server: ScenarioServer, s: dict[str, str], *args: str
) -> tuple[Path, str]:
    out = tmp_path / "secrets.msgpack"
    with recorder(out, "--mode", f"reverse:ws://127.0.0.1:{server.port}", *args) as rec:
        echoed = asyncio.run(session(f"ws://127.0.0.1:{rec.port}", s))
        assert echoed == messages(s)  # the wire is untouched: only the file is redacted
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0, rec.output_text
        return out, rec.output_text


@pytest.fixture
def s(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The planted secrets; the binary one is also in an environment variable."""
    values = planted()
    monkeypatch.setenv("WSTAPE_TEST_BINARY_SECRET", values["BINARY"])
    return values


def leaked(path: Path, s: dict[str, str]) -> list[str]:
    raw = path.read_bytes()
    return [name for name, value in s.items() if value.encode() in raw]


def test_default_options_keep_every_planted_secret_but_the_binary_one_out(
    tmp_path: Path, ws_server: ScenarioServer, s: dict[str, str]
) -> None:
    out, output = record(tmp_path, ws_server, s)
    assert leaked(out, s) == ["BINARY"]  # documented: binary frames need --secret-env
    assert out.stat().st_mode & 0o777 == 0o600

    _, records = read_cassette(out)
    opened = records[0]
    assert isinstance(opened, Open)
    assert opened.target == "/chat?room=1&token=<redacted>&access_token=<redacted>"
    assert opened.subprotocols == ("chat.v2", "access_token", "<redacted>")
    assert opened.subprotocol == "chat.v2"
    texts = [r for r in records if isinstance(r, Message) and r.opcode is Opcode.TEXT]
    first = texts[0].payload
    # byte-preserving: only the value's span changed
    assert first == json.dumps({"type": "auth", "token": "<redacted>"}).encode()
    deep = [m for m in texts if m.size > DEEP]
    assert len(deep) == 2  # the client's and the echo: recorded, not relayed unrecorded
    assert all(m.payload.count(b'"<redacted>"') == 1 for m in deep)
    assert "; redacted " in output and "JSON keys " in output


def test_secret_env_keeps_even_the_binary_frame_out_and_the_cassette_replays(
    tmp_path: Path, ws_server: ScenarioServer, s: dict[str, str]
) -> None:
    out, output = record(tmp_path, ws_server, s, "--secret-env", "WSTAPE_TEST_BINARY_SECRET")
    assert leaked(out, s) == []
    _, records = read_cassette(out)
    binary = [r for r in records if isinstance(r, Message) and r.opcode is Opcode.BINARY]
    assert len(binary) == 2 and all(len(m.payload) == len(messages(s)[3]) for m in binary)
    notes = [r for r in records if isinstance(r, Note) and "--secret-env" in r.text]
    assert len(notes) == 2  # one after each binary message
    assert "secret values 2" in output

    # The client sends its real secrets again; the recording has <redacted> in their place.
    ready = tmp_path / "port.txt"
    replay = subprocess.Popen(
        [
            sys.executable, "-m", "wstape", "replay", str(out), "--port", "0",
            "--ready-file", str(ready), "--speed", "0", "--timeout", "5", "--ignore-query",
            "--profile", "browser",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )  # fmt: skip
    try:
        wait_for(lambda: ready.exists() and ready.read_text().strip(), 20, what="replay ready")
        port = int(ready.read_text())
        echoed = asyncio.run(session(f"ws://127.0.0.1:{port}", s))
        assert len(echoed) == len(messages(s))
        stdout, stderr = replay.communicate(timeout=30)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
    assert replay.returncode == 0, stdout + stderr
