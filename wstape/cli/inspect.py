"""``wstape ls`` and ``wstape export``: reading cassettes."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich.table import Table

from wstape.cassettes import CassetteError
from wstape.cassettes.har import export_har
from wstape.cassettes.jsonl import summarize, summary_to_json, write_jsonl
from wstape.cli.common import (
    ExitCode,
    console,
    fail,
    open_cassette,
    stdout_closed,
    warn,
    warn_if_truncated,
)
from wstape.core.closecodes import describe
from wstape.core.model import ConnectionSummary

CassetteArg = Annotated[
    Path, typer.Argument(help="The cassette file (.msgpack).", show_default=False)
]


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    HAR = "har"


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _close_text(s: ConnectionSummary) -> str:
    if not s.open.accepted:
        return f"refused {s.open.status}"
    c = s.close
    if c is None:
        return "(no close record)"
    if c.by is None:
        return "recording stopped"
    if c.code is None:
        return f"by {c.by.value}"
    return f"by {c.by.value}: {describe(c.code, c.reason)}"


def ls(
    cassette: CassetteArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array, one object per connection.")
    ] = False,
) -> None:
    """List the connections of a cassette: id, URL, subprotocol, messages and bytes each
    way, duration and how it closed.

    A truncated cassette (a recorder killed mid-write) is listed up to the last complete
    record, with a warning naming the byte where it stops.
    """
    reader = open_cassette(cassette)
    try:
        summaries = summarize(reader)
    except CassetteError as e:
        fail(str(e), ExitCode.CASSETTE)
    warn_if_truncated(reader)
    if as_json:
        json.dump([summary_to_json(s) for s in summaries], sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    table = Table(title=f"{cassette} ({len(summaries)} connections)", title_justify="left")
    for col in ("id", "url", "subprotocol", "msgs c→s / s→c", "bytes c→s / s→c", "duration"):
        table.add_column(col, justify="right" if col in ("id", "duration") else "left")
    table.add_column("close")
    for s in summaries:
        table.add_row(
            str(s.open.conn),
            s.open.url,
            s.open.subprotocol or "-",
            f"{s.messages_client} / {s.messages_server}",
            f"{_human_bytes(s.bytes_client)} / {_human_bytes(s.bytes_server)}",
            f"{s.duration:.3f}s",
            _close_text(s),
        )
    console().print(table)


def export(
    cassette: CassetteArg,
    fmt: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="Output format.")
    ] = ExportFormat.JSONL,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here instead of standard output."),
    ] = None,
    notes: Annotated[
        bool, typer.Option("--notes", help='Include note records as {"type": "note"} lines.')
    ] = False,
) -> None:
    """Export a cassette in a stable text format.

    jsonl: one JSON object per record, in the order written. Connections:
    {"type": "connection", "conn", "url", "method", "status", "subprotocols_offered",
    "subprotocol", "request_headers", "response_headers", "started_at"}; messages:
    {"type": "message", "conn", "t", "from", "opcode", "text" (text) or "base64" (binary),
    "size"}; closes: {"type": "close", "conn", "t", "by", "code", "reason", "on_wire"}.
    See docs/cassette-format.md.

    har: HAR 1.2, one entry per connection as Chrome DevTools writes a WebSocket
    ("_resourceType": "websocket", "_webSocketMessages": [{"type": "send"|"receive",
    "time", "opcode": 1|2, "data"}], binary as base64), plus "_wstape" fields (close code,
    reason and who closed, connection id, exact times, notes) so that `wstape import` gives
    the same cassette back. See docs/interchange.md.
    """
    reader = open_cassette(cassette)
    out = sys.stdout if output is None else None

    def write(stream: TextIO) -> None:
        if fmt is ExportFormat.HAR:
            result = export_har(reader, stream)
            if result.orphans:
                warn(f"left out {result.orphans} records of connections with no open record")
            if result.extra_closes:
                warn(f"kept only the last of several close records ({result.extra_closes})")
        else:
            write_jsonl(reader, stream, notes=notes)

    try:
        if out is None:
            assert output is not None
            with open(output, "w", encoding="utf-8") as f:
                write(f)
        else:
            write(out)
    except CassetteError as e:
        fail(str(e), ExitCode.CASSETTE)
    except BrokenPipeError:
        if output is not None:
            raise
        stdout_closed()
    except OSError as e:
        fail(f"{output}: cannot write: {e.strerror or e}", ExitCode.USAGE)
    warn_if_truncated(reader)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("export")(export)
