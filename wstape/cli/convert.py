"""Converting a cassette: ``export`` (JSONL, HAR), ``import`` (HAR, mitmproxy flows),
``view`` (HTML)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

import wstape
from wstape.cassettes import CassetteError, CassetteWriteError
from wstape.cassettes.schema import FORMAT_NAME, FORMAT_VERSION
from wstape.cli.common import (
    CassetteArg,
    ExitCode,
    JsonOpt,
    OutputOpt,
    cassette_error,
    error,
    fail,
    open_cassette,
    print_json,
    refuse_input,
    stdout_closed,
    warn,
    warn_if_truncated,
    warn_strays,
    write_error,
)
from wstape.cli.options import (
    AllowHostOpt,
    AppidOpt,
    IgnoreOpt,
    MaxSocketsOpt,
    PlatformOpt,
    ProfileOpt,
    rule_config,
)
from wstape.core.model import (
    Header,
    Message,
    Note,
    Open,
    Record,
)
from wstape.core.rules import Platform, Profile, Violation
from wstape.interchange.har import InterchangeError, export_har, open_input, read_har
from wstape.interchange.jsonl import write_jsonl
from wstape.tools.check import check_file
from wstape.tools.edit import (
    rewrite_to,
)
from wstape.tools.view import MAX_MESSAGES, render_html


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    HAR = "har"


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


class ImportFormat(StrEnum):
    HAR = "har"
    MITM = "mitm"


def detect_format(path: Path) -> ImportFormat:
    """HAR (JSON, or mitmproxy's zlib .zhar) or a mitmproxy flow dump, by content first."""
    with open_input(path) as f:
        head = f.read(64)
    if FORMAT_NAME.encode() in head:
        raise InterchangeError(path, "is already a wstape cassette")
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if body.startswith(b"{"):
        return ImportFormat.HAR
    digits = head.split(b":", 1)[0]
    if digits.isdigit() and b":" in head[:12]:
        return ImportFormat.MITM
    suffix = path.suffix.lower()
    if suffix in (".har", ".zhar", ".json"):
        return ImportFormat.HAR
    if suffix in (".mitm", ".flows", ".dump"):
        return ImportFormat.MITM
    raise InterchangeError(
        path, "neither a HAR file nor a mitmproxy flow dump (use --format to force one)"
    )


def _import_records(source: Path, fmt: ImportFormat) -> tuple[Header, Iterator[Record], Any]:
    if fmt is ImportFormat.HAR:
        har = read_har(source)
        header = Header(version=FORMAT_VERSION, creator=har.creator, started_at=har.started_at)
        return header, har.records(), har
    from wstape.interchange.flows import FlowImport, iter_flow_records

    counters = FlowImport(source)
    records = iter_flow_records(source, counters)
    first = next(records, None)
    started = first.started_at if isinstance(first, Open) else 0.0
    header = Header(
        version=FORMAT_VERSION,
        creator=f"wstape {wstape.__version__} (imported from a mitmproxy flow file)",
        started_at=started,
    )

    def chained() -> Iterator[Record]:
        if first is not None:
            yield first
        yield from records

    return header, chained(), counters


def _counting(records: Iterable[Record], totals: dict[str, int]) -> Iterator[Record]:
    for record in records:
        if isinstance(record, Open):
            totals["connections" if record.accepted else "refused"] += 1
        elif isinstance(record, Message):
            totals["messages"] += 1
        elif isinstance(record, Note):
            totals["notes"] += 1
        yield record


def import_(
    source: Annotated[
        Path,
        typer.Argument(
            help="A HAR file (Chrome, Playwright, mitmproxy, wstape) or a mitmproxy flow "
            "dump (mitmdump -w).",
            show_default=False,
        ),
    ],
    output: OutputOpt,
    fmt: Annotated[
        ImportFormat | None,
        typer.Option("--format", "-f", help="The input format (default: detected)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a HAR file or a mitmproxy flow dump into a cassette.

    Every WebSocket in the input becomes a connection with its messages and close; a
    refused upgrade becomes a refused connection; other requests are skipped. What the
    input does not record (a HAR has no close code) stays unknown: the connection gets a
    close by nobody with no code, and a note saying so.

    --json prints {"input", "output", "format", "connections", "refused", "messages",
    "skipped"}.
    """
    refuse_input(source, output)
    totals = {"connections": 0, "refused": 0, "messages": 0, "notes": 0}
    try:
        chosen = fmt or detect_format(source)
        header, records, counters = _import_records(source, chosen)
        with rewrite_to(output, header) as writer:
            for record in _counting(records, totals):
                writer.write(record)
    except InterchangeError as e:
        fail(str(e), ExitCode.CASSETTE)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    skipped = int(getattr(counters, "skipped", 0))
    failed = int(getattr(counters, "failed", 0))
    if as_json:
        print_json(
            {
                "input": str(source),
                "output": str(output),
                "format": chosen.value,
                "connections": totals["connections"],
                "refused": totals["refused"],
                "messages": totals["messages"],
                "skipped": skipped + failed,
            }
        )
        return
    print(
        f"imported {totals['connections']} connections ({totals['refused']} refused), "
        f"{totals['messages']} messages from {source} ({chosen.value}) → {output}"
    )
    if skipped:
        print(f"skipped {skipped} entries that are not WebSocket upgrades")
    if failed:
        error(f"skipped {failed} WebSocket upgrades that got no response")


# -- view ------------------------------------------------------------------------------


def view(
    cassette: CassetteArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The HTML file to write.", show_default=False)
    ],
    profile: ProfileOpt = Profile.RFC6455,
    appid: AppidOpt = None,
    allow_host: AllowHostOpt = None,
    platform: PlatformOpt = Platform.DEVICE,
    max_sockets: MaxSocketsOpt = 5,
    ignore: IgnoreOpt = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not run the rules (no violations shown).")
    ] = False,
    max_messages: Annotated[
        int,
        typer.Option(
            "--max-messages", min=1, help="Messages drawn per connection (the rest are counted)."
        ),
    ] = MAX_MESSAGES,
) -> None:
    """Write one self-contained HTML file (no script, no network): per connection a
    sequence diagram with client and server lanes, each message an arrow with its time, a
    preview (click to expand) and its size, then the close. Violations found by `wstape
    check` (same rule options) are highlighted on the messages they concern.

    Exit code 0 once the page is written, even when there are violations (use `wstape
    check` to gate on them); 3 when the cassette cannot be read.
    """
    refuse_input(cassette, output)
    violations: list[Violation] = []
    if not no_check:
        cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
        try:
            violations = list(check_file(open_cassette(cassette), cfg).violations)
        except CassetteError as e:
            cassette_error(e)
    reader = open_cassette(cassette)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            result = render_html(reader, f, violations, max_messages=max_messages)
        os.replace(tmp, output)
    except CassetteError as e:
        tmp.unlink(missing_ok=True)
        cassette_error(e)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        write_error(e, output)
    warn_if_truncated(reader)
    warn_strays(cassette, result.strays)
    left = f" ({result.left_out} not drawn)" if result.left_out else ""
    print(
        f"wrote {output}: {result.connections} connections, {result.messages} messages{left}, "
        f"{result.violations} violations"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
    app.command("view")(view)
