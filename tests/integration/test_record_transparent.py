"""Transparent mode in a throw-away network namespace (needs root, ``ip`` and iptables).

Inside the namespace: the recorder, a websockets server on 127.0.0.1 and a client that
binds source address 127.0.0.5 and connects straight to the server; an iptables REDIRECT
rule for that source sends it through the proxy. mitmproxy's own upstream connection comes
from 127.0.0.1, so it is not redirected again (docs/recording.md has the same commands).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import OutputReader, RecorderProcess, clean_env, wait_for_records
from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Open, Side

REPO = Path(__file__).resolve().parents[2]

PEER = textwrap.dedent(
    """
    import asyncio, sys
    from tests.helpers.servers import ScenarioServer
    from websockets.asyncio.client import connect

    async def client(port):
        async with connect(
            f"ws://127.0.0.1:{port}/transparent", proxy=None, local_addr=("127.0.0.5", 0)
        ) as ws:
            await ws.send("through the redirect")
            assert await ws.recv() == "through the redirect"
            await ws.close(4001, "done")

    with ScenarioServer() as server:
        print("PORT", server.port, flush=True)
        assert sys.stdin.readline().strip() == "go"
        asyncio.run(asyncio.wait_for(client(server.port), 20))
        print("DONE", flush=True)
    """
)


def _netns_unavailable() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "transparent mode needs root on Linux"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y iproute2 iptables)"
    probe = f"wstape-probe-{uuid.uuid4().hex[:8]}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, timeout=10)
        if made.returncode != 0:
            return f"cannot create a network namespace: {made.stderr.decode().strip()}"
        nat = subprocess.run(
            ["ip", "netns", "exec", probe, "iptables", "-t", "nat", "-L", "OUTPUT"],
            capture_output=True,
            timeout=10,
        )
        if nat.returncode != 0:
            return f"iptables nat does not work here: {nat.stderr.decode().strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"wstape-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(
            ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True, timeout=10
        )
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def test_transparent_mode_records_redirected_traffic(tmp_path: Path, netns: str) -> None:
    out = tmp_path / "transparent.msgpack"
    rec = RecorderProcess(out, "--mode", "transparent", netns=netns, cwd=REPO).start()
    peer = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, "-c", PEER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=clean_env(),
    )
    try:
        assert peer.stdout is not None and peer.stdin is not None
        output = OutputReader(peer.stdout)
        server_port = int(output.wait_for(r"^PORT (\d+)", 20).group(1))
        subprocess.run(
            [
                "ip", "netns", "exec", netns,
                "iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp",
                "-s", "127.0.0.5", "-d", "127.0.0.1", "--dport", str(server_port),
                "-j", "REDIRECT", "--to-ports", str(rec.port),
            ],
            check=True,
            timeout=10,
        )  # fmt: skip
        peer.stdin.write("go\n")
        peer.stdin.flush()
        output.wait_for(r"^DONE", 30)
        assert peer.wait(10) == 0, output.text
        wait_for_records(out, lambda rs: any(isinstance(r, Close) for r in rs))
        assert rec.stop() == 0, rec.output_text
    finally:
        peer.kill()
        rec.kill()
    _, records = read_cassette(out)
    opened, sent, echoed, close = records
    assert isinstance(opened, Open)
    assert (opened.target, opened.host, opened.port) == ("/transparent", "127.0.0.1", server_port)
    assert opened.client is not None and opened.client.startswith("127.0.0.5:")
    assert isinstance(sent, Message) and sent.side is Side.CLIENT
    assert isinstance(echoed, Message) and echoed.payload == b"through the redirect"
    assert isinstance(close, Close) and (close.by, close.code) == (Side.CLIENT, 4001)
