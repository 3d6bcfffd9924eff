"""``wstape demo``: record the bundled sample backend, then replay it and check clients.

1. start the sample chat backend (``wstape.sample``) on a free port;
2. record a well-behaved client talking to it through ``wstape record`` (reverse mode);
3. list the cassette;
4. replay the cassette as a server and run the same client against it: a clean report;
5. run a client with bugs against the replay: the report names every rule it broke.

Everything runs on 127.0.0.1 with ports picked by the OS; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from wstape.addons.runner import RecordConfig, RecordResult, record
from wstape.cassettes import WriteMode
from wstape.core.replay.options import PlayOptions
from wstape.core.report import Report
from wstape.core.rules import Profile, RuleConfig
from wstape.replay.server import ReplayOptions, ReplayServer
from wstape.sample import run_buggy_client, run_client, sample_server

DEMO_PROFILE = Profile.BROWSER
"""(``wstape.cli.demo`` names the same profile without importing this module.)"""


@dataclass
class DemoResult:
    cassette: Path
    recorded: RecordResult
    received_live: list[str | bytes]
    received_replayed: list[str | bytes]
    clean: Report
    buggy: Report


async def record_sample(cassette: Path, confdir: Path) -> tuple[RecordResult, list[str | bytes]]:
    """Record the well-behaved client against the sample backend into ``cassette``."""
    async with sample_server() as backend_port:
        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()
        config = RecordConfig(
            output=cassette,
            mode=f"reverse:ws://127.0.0.1:{backend_port}",
            listen_port=0,
            write=WriteMode.OVERWRITE,
            confdir=str(confdir),
        )
        task = asyncio.ensure_future(
            record(config, stop=stop, on_listening=lambda rec: listening.set_result(rec.port))
        )
        try:
            port = await asyncio.wait_for(asyncio.shield(listening), 30)
            received = await asyncio.wait_for(run_client(f"ws://127.0.0.1:{port}"), 30)
        finally:
            stop.set()
        result = await asyncio.wait_for(task, 30)
    return result, received


async def replay_to(cassette: Path, client: str) -> tuple[Report, list[str | bytes]]:
    """Replay ``cassette`` to the sample ``client`` ("clean" or "buggy")."""
    options = ReplayOptions(
        port=0, rules=RuleConfig(profile=DEMO_PROFILE), play=PlayOptions(speed=0, timeout=5.0)
    )
    server = ReplayServer(cassette, options)
    await server.start()
    received: list[str | bytes] = []
    try:
        if client == "clean":
            received = await asyncio.wait_for(run_client(server.url), 30)
        else:
            await asyncio.wait_for(run_buggy_client(server.url), 30)
        await asyncio.wait_for(server.wait_played(), 30)
    finally:
        await server.stop()
    return server.report(), received


async def run_demo(workdir: Path | None = None, out: TextIO | None = None) -> DemoResult:
    """Run the whole demo; the cassette is written to ``workdir`` (a temporary folder if
    None, removed afterwards)."""
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="wstape-demo-") as tmp:
            return await run_demo(Path(tmp), out)
    cassette = workdir / "chat.msgpack"
    recorded, live = await record_sample(cassette, workdir / "mitmproxy")
    clean, replayed = await replay_to(cassette, "clean")
    buggy, _ = await replay_to(cassette, "buggy")
    return DemoResult(cassette, recorded, live, replayed, clean, buggy)
