"""Converting a cassette: ``export`` (JSONL, HAR), ``import`` (HAR, mitmproxy flows),
``view`` (HTML)."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from wstape.cassettes import CassetteError, CassetteWriteError
from wstape.cassettes.modes import opener
from wstape.cli.common import (
    CassetteArg,
    ConnOpt,
    ExitCode,
    JsonOpt,
    OutputOpt,
    OverwriteOpt,
    cassette_error,
    config_error,
    fail,
    missing_ids,
    only_conns,
    open_cassette,
    output_target,
    print_json,
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
    ProtocolOpt,
    protocol_option,
    rule_config,
)
from wstape.cli.output import no_cycle_collection, plural, progress
from wstape.core.errors import ConfigError
from wstape.core.redaction import Policy
from wstape.core.report import ReportFormatError, read_report_json
from wstape.core.rules import Platform, Profile, Violation
from wstape.interchange.errors import InterchangeError
from wstape.interchange.har import export_har
from wstape.interchange.importer import import_file
from wstape.interchange.jsonl import write_jsonl
from wstape.interchange.sources import ImportFormat
from wstape.tools.check import check_file
from wstape.tools.decoded import protocol_view
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
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write here instead of standard output (- is standard output).",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    conn: ConnOpt = None,
    notes: Annotated[
        bool, typer.Option("--notes", help='Include note records as {"type": "note"} lines.')
    ] = False,
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help='jsonl: add a {"type": "header"} line, the notes and "_wstape" objects with '
            "what the other keys leave out, so `wstape import` gives back the same records.",
        ),
    ] = False,
) -> None:
    """Export a cassette in a stable text format.

    jsonl: one JSON object per record, in the order written. Connections:
    {"type": "connection", "conn", "url", "method", "status", "subprotocols_offered",
    "subprotocol", "request_headers", "response_headers", "started_at"}; messages:
    {"type": "message", "conn", "t", "from", "opcode", "text" (text) or "base64" (binary),
    "size"}; closes: {"type": "close", "conn", "t", "by", "code", "reason", "on_wire"}.
    See docs/cassette-format.md. --exact adds what those keys leave out (see
    docs/interchange.md), so that `wstape import` gives back the same cassette.

    har: HAR 1.2, one entry per connection as Chrome DevTools writes a WebSocket
    ("_resourceType": "websocket", "_webSocketMessages": [{"type": "send"|"receive",
    "time", "opcode": 1|2, "data"}], binary as base64), plus "_wstape" fields (close code,
    reason and who closed, connection id, exact times, notes) so that `wstape import` gives
    the same cassette back. See docs/interchange.md.
    """
    if exact and fmt is not ExportFormat.JSONL:
        fail("--exact is for --format jsonl (a HAR export is always exact)")
    if output is not None:
        output = output_target(output, source=cassette, overwrite=overwrite, text=True)
    reader = open_cassette(cassette)
    out = sys.stdout if output is None else None

    def write(stream: TextIO) -> None:
        if fmt is ExportFormat.HAR:
            result = export_har(reader, stream, only=conn)
            if conn:
                missing_ids(cassette, set(conn) - result.ids)
            if result.orphans:
                warn(f"left out {result.orphans} records of connections with no open record")
            if result.extra_closes:
                warn(f"kept only the last of several close records ({result.extra_closes})")
        else:
            records = only_conns(reader.iter_fields(), conn, cassette)
            write_jsonl(records, stream, notes=notes, exact=exact, header=reader.header)

    tmp = None if output is None else output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        with progress([cassette], "export", enabled=True), no_cycle_collection():
            if out is None:
                assert output is not None and tmp is not None
                # written whole or not at all: a failed export leaves no half file behind;
                # no more readable than the cassette (a 0600 recording exports 0600)
                with open(tmp, "w", encoding="utf-8", opener=opener(cassette)) as f:
                    write(f)
                os.replace(tmp, output)
            else:
                write(out)
    except CassetteError as e:
        _unlink(tmp)
        cassette_error(e)
    except BrokenPipeError:
        if output is not None:
            _unlink(tmp)
            raise
        stdout_closed()
    except OSError as e:
        _unlink(tmp)
        fail(f"{output}: cannot write: {e.strerror or e}", ExitCode.USAGE)
    except BaseException:
        _unlink(tmp)
        raise
    warn_if_truncated(reader)


def _unlink(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


def import_(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE",
            help="A HAR file (Chrome, Playwright, mitmproxy, wstape), a wstape JSONL export "
            "or a mitmproxy flow dump (mitmdump -w).",
            show_default=False,
        ),
    ],
    output: OutputOpt,
    fmt: Annotated[
        ImportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="The input format (default: detected). A format the content contradicts "
            "is refused.",
        ),
    ] = None,
    max_inflated: Annotated[
        int | None,
        typer.Option(
            "--max-inflated",
            min=1,
            metavar="MIB",
            help="How far a zlib .zhar may inflate, in MiB (default: the larger of 64 MiB "
            "and 50 times its size).",
        ),
    ] = None,
    no_default_redaction: Annotated[
        bool,
        typer.Option(
            "--no-default-redaction",
            help="Keep every value as the input has it: do not replace the common secret "
            "names as wstape record does (cookies, Authorization, token=...).",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert a HAR file, a wstape JSONL export or a mitmproxy flow dump into a cassette.

    Every WebSocket in the input becomes a connection with its messages and close; a
    refused upgrade becomes a refused connection; other requests are skipped. What the
    input does not record (a HAR has no close code) stays unknown: the connection gets a
    close by nobody with no code, and a note saying so. A value no cassette can hold is
    refused (exit 3, one line naming the entry and field) or, where a valid one is
    obvious, mapped with a note saying so. The output is written only when complete.

    The common secrets are replaced by <redacted> as wstape record replaces them (a HAR
    from DevTools carries the page's cookies and tokens): header values such as Cookie
    and Authorization, token= and similar query values, such JSON keys in text messages,
    credentials among the offered subprotocols; --no-default-redaction keeps them, and
    wstape redact replaces more.

    --json prints {"input", "output", "format", "connections", "refused", "messages",
    "skipped", "redacted"}.
    """
    output_target(output, source=source, overwrite=overwrite, text=False)
    try:
        with progress([source], "import", enabled=not as_json):
            result = import_file(
                source,
                output,
                fmt or "auto",
                max_inflated=None if max_inflated is None else max_inflated * 1024 * 1024,
                redaction=Policy() if no_default_redaction else None,
            )
    except InterchangeError as e:
        fail(str(e), ExitCode.CASSETTE)
    except ConfigError as e:
        config_error(e)
    except (CassetteWriteError, OSError) as e:
        write_error(e, output)
    warn_strays(output, result.strays)
    if as_json:
        print_json(result.to_dict())
        return
    print(
        f"imported {plural(result.connections, 'connection')} ({result.refused} refused), "
        f"{plural(result.messages, 'message')} from {source} ({result.format.value}) → {output}"
        + (f"; {line}" if (line := result.redacted.summary()) else "")
    )
    if result.skipped:
        what = "is not a WebSocket upgrade" if result.skipped == 1 else "are not WebSocket upgrades"
        print(f"skipped {plural(result.skipped, 'entry', 'entries')} that {what}")
    if result.failed:
        # a count, not a failure: the import wrote everything else and exits 0
        warn(f"skipped {plural(result.failed, 'WebSocket upgrade')} that got no response")


# -- view ------------------------------------------------------------------------------


def view(
    cassette: CassetteArg,
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="The HTML file to write (- is standard output).",
            show_default=False,
        ),
    ],
    overwrite: OverwriteOpt = False,
    profile: ProfileOpt = Profile.RFC6455,
    appid: AppidOpt = None,
    allow_host: AllowHostOpt = None,
    platform: PlatformOpt = Platform.DEVICE,
    max_sockets: MaxSocketsOpt = 5,
    ignore: IgnoreOpt = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Do not run the rules (no violations shown).")
    ] = False,
    from_report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Show the violations and faults of this replay report (wstape replay "
            "--report FILE) instead of running the rules: each fault a marked row.",
            show_default=False,
        ),
    ] = None,
    max_messages: Annotated[
        int,
        typer.Option(
            "--max-messages",
            metavar="N",
            min=1,
            help="Messages drawn per connection (the rest are counted).",
        ),
    ] = MAX_MESSAGES,
    protocol: ProtocolOpt = "auto",
) -> None:
    """Write one self-contained HTML file (no script, no network): per connection a
    sequence diagram with client and server lanes, each message an arrow with its time, a
    preview (click to expand) and its size, then the close. Violations found by `wstape
    check` (same rule options), or those of a replay report (--report), are highlighted on
    the messages they concern, and a report's faults are marked rows. Messages of a known
    protocol (--protocol) are previewed decoded.

    Exit code 0 once the page is written, even when there are violations (use `wstape
    check` to gate on them); 3 when the cassette cannot be read.
    """
    target = output_target(output, source=cassette, overwrite=overwrite, text=True)
    chosen = protocol_option(protocol)
    violations: list[Violation] = []
    faults: list[dict[str, Any]] = []
    if from_report is not None:
        try:
            violations, faults = read_report_json(from_report.read_text(encoding="utf-8"))
        except OSError as e:
            fail(f"--report {from_report}: cannot read: {e.strerror or e}")
        except (ReportFormatError, UnicodeDecodeError) as e:
            fail(f"--report {from_report}: {e}")
    elif not no_check:
        cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
        try:
            violations = list(check_file(open_cassette(cassette), cfg).violations)
        except CassetteError as e:
            cassette_error(e)
    reader = open_cassette(cassette)
    tmp = None if target is None else target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with progress([cassette], "view", enabled=True):
            protocols = protocol_view(open_cassette(cassette), chosen)
            if tmp is None:
                result = render_html(
                    reader,
                    sys.stdout,
                    violations,
                    max_messages=max_messages,
                    protocols=protocols,
                    faults=faults,
                )
                sys.stdout.flush()
            else:
                with open(tmp, "w", encoding="utf-8", opener=opener(cassette)) as f:
                    result = render_html(
                        reader,
                        f,
                        violations,
                        max_messages=max_messages,
                        protocols=protocols,
                        faults=faults,
                    )
                os.replace(tmp, output)
    except CassetteError as e:
        _unlink(tmp)
        cassette_error(e)
    except BrokenPipeError:
        stdout_closed()
    except OSError as e:
        _unlink(tmp)
        write_error(e, output)
    except BaseException:
        _unlink(tmp)  # Ctrl-C, or a bug: never a half page left beside the output
        raise
    warn_if_truncated(reader)
    warn_strays(cassette, result.strays)
    left = f" ({result.left_out} not drawn)" if result.left_out else ""
    summary = (
        f"wrote {'standard output' if target is None else output}: "
        f"{plural(result.connections, 'connection')}, "
        f"{plural(result.messages, 'message')}{left}, {plural(result.violations, 'violation')}"
        + (f", {plural(result.faults, 'fault')}" if result.faults else "")
    )
    # with the page on standard output, the summary goes to standard error
    print(summary, file=sys.stdout if target is not None else sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("export", short_help="Export a cassette as JSONL or HAR (text).")(export)
    app.command("import", short_help="Make a cassette from a HAR, JSONL export or flow dump.")(
        import_
    )
    app.command("view", short_help="Write a cassette as one self-contained HTML page.")(view)
