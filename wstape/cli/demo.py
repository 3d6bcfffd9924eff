"""``wstape demo``: the whole loop on the bundled sample, in one command."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from wstape.cassettes.reader import CassetteReader
from wstape.cli.check import print_report
from wstape.cli.common import ExitCode, OverwriteOpt, console, fail, output_target
from wstape.core.rules import Profile
from wstape.interchange.jsonl import summarize

EXPECTED_BUGS = {"REPLAY-MESSAGE-MISMATCH", "BROWSER-CLOSE-CODE"}
SAMPLE_CASSETTE = Path(__file__).parent.parent / "cassettes" / "samples" / "chat.msgpack"
"""The bundled sample (the same path as wstape.sample.SAMPLE_CASSETTE, without importing
the sample's websockets clients for ``--sample-path``)."""
DEMO_PROFILE = Profile.BROWSER


def demo(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Keep the recorded cassette here (default: a temporary file).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    sample_path: Annotated[
        bool,
        typer.Option(
            "--sample-path",
            help="Only print the path of the bundled sample cassette (a recording of the "
            "demo's client) and exit.",
        ),
    ] = False,
    client: Annotated[
        str | None,
        typer.Option(
            "--client",
            metavar="URL",
            help="Only run the bundled sample client against URL (a replay of the sample "
            "cassette, say: ws://127.0.0.1:8765) and print what it received.",
        ),
    ] = None,
) -> None:
    """Record the bundled sample chat backend through wstape record, then replay the
    cassette as a server: first to the same client (a clean report), then to a client
    with bugs (the report names each rule it broke). Runs on 127.0.0.1 only.

    Exit code 0 when the demo behaved as described.
    """
    if sample_path:
        print(SAMPLE_CASSETTE)
        return
    if client is not None:
        _run_client(client)
        return
    if output is not None:
        output_target(output, source=None, overwrite=overwrite, text=False)
    # Imported here: recording loads mitmproxy, which other commands do not need.
    from wstape.addons.runner import RecordError
    from wstape.demo import run_demo

    out = console()
    with tempfile.TemporaryDirectory(prefix="wstape-demo-") as tmp:
        try:
            result = asyncio.run(run_demo(Path(tmp)))
        except RecordError as e:
            fail(f"demo: recording failed: {e}", ExitCode.VIOLATIONS)
        except (OSError, TimeoutError) as e:
            fail(f"demo: {type(e).__name__}: {e}", ExitCode.VIOLATIONS)
        cassette = result.cassette
        if output is not None:
            try:
                shutil.copyfile(result.cassette, output)
            except OSError as e:
                fail(f"--output {output}: cannot write: {e.strerror or e}")
            cassette = output
        rec = result.recorded.stats
        out.print(
            f"1. recorded the sample chat client through wstape record (reverse mode): "
            f"{rec.messages} messages into "
            + (str(cassette) if output is not None else "a temporary cassette (-o FILE keeps it)"),
            highlight=False,
        )
        for s in summarize(CassetteReader(result.cassette)):
            out.print(
                f"   conn {s.open.conn} {s.open.url} subprotocol {s.open.subprotocol}: "
                f"{s.messages_client} client / {s.messages_server} server messages, "
                f"closed by {s.close.by if s.close else '?'} "
                f"{s.close.code if s.close else ''}",
                highlight=False,
            )
        same = result.received_live == result.received_replayed
        out.print(
            f"\n2. replayed it (profile {DEMO_PROFILE.value}) to the same client: it received "
            f"{'exactly the recorded' if same else 'DIFFERENT'} server messages",
            highlight=False,
        )
        shown = str(cassette)
        print_report(replace(result.clean, cassette=shown))
        out.print(
            "\n3. replayed it to a client with bugs (says something else, closes with 1001):",
            highlight=False,
        )
        print_report(replace(result.buggy, cassette=shown))
        found = set(result.buggy.rule_ids())
        ok = same and result.clean.passed and EXPECTED_BUGS <= found
        if output is not None:
            out.print(
                f"\nTry: wstape ls {output}\n"
                f"     wstape replay {output} --port 8765 --profile {DEMO_PROFILE.value} &\n"
                "     wstape demo --client ws://127.0.0.1:8765",
                highlight=False,
            )
    raise typer.Exit(int(ExitCode.OK if ok else ExitCode.VIOLATIONS))


def _run_client(url: str) -> None:
    from wstape.sample import run_client

    try:
        received = asyncio.run(run_client(url.rstrip("/")))
    except (OSError, TimeoutError) as e:
        fail(f"--client {url}: {type(e).__name__}: {e}", ExitCode.VIOLATIONS)
    except Exception as e:  # the websockets client's own errors (refused handshake, close)
        fail(f"--client {url}: {type(e).__name__}: {e}", ExitCode.VIOLATIONS)
    for item in received:
        print(item if isinstance(item, str) else f"<{len(item)} bytes> {item.hex()}")


def register(app: typer.Typer) -> None:
    app.command("demo", short_help="Record, replay and check the bundled sample: a tour.")(demo)
