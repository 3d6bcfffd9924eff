"""Reading a cassette: ``ls`` (one row per connection), ``show`` (the timeline), ``stats``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wstape.cassettes import CassetteError, CassetteReader
from wstape.cassettes.schema import FORMAT_NAME
from wstape.cli.common import (
    CassetteArg,
    JsonOpt,
    Segments,
    cassette_error,
    console,
    hex_preview,
    open_cassette,
    print_json,
    stdout_closed,
    text_preview,
    warn,
    warn_if_truncated,
    warn_strays,
)
from wstape.core.closecodes import describe
from wstape.core.connections import summarize_connections
from wstape.core.model import (
    Close,
    ConnectionSummary,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
)
from wstape.interchange.jsonl import iso_utc, iter_jsonl, summary_to_json
from wstape.tools.stats import CassetteStats, ConnectionStats, compute_stats


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
        folded = summarize_connections(reader)
    except CassetteError as e:
        cassette_error(e)
    warn_if_truncated(reader)
    warn_strays(cassette, folded.strays)
    summaries = folded.connections
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


def _when(t: float | None) -> str:
    return " " * 11 if t is None else f"{t:10.3f}s"


def _close_words(c: Close) -> str:
    if c.by is None and c.code is None:
        return "recording stopped (no close seen)"
    who = "close" if c.by is None else f"closed by {c.by.value}"
    if c.code is None:
        what = "no code"
    else:
        what = describe(c.code, c.reason)
    wire = "" if c.on_wire else " (no Close frame on the wire)"
    return f"{who}: {what}{wire}"


def record_segments(record: Record) -> Segments:
    """The ``wstape show`` line of one record."""
    if isinstance(record, Message):
        client = record.side is Side.CLIENT
        arrow = "→" if client else "←"
        if record.opcode is Opcode.TEXT:
            text = record.text()
            body = (
                text_preview(text)
                if text is not None
                else "(not UTF-8) " + hex_preview(record.payload)
            )
        else:
            body = hex_preview(record.payload)
        return [
            (f"#{record.conn:<4}", "dim"),
            (_when(record.t), "dim"),
            (f"  {arrow} ", "bold cyan" if client else "bold magenta"),
            (f"{record.opcode.value:<6}", "dim"),
            (f" {record.size:>9} B  ", ""),
            (body, "" if record.opcode is Opcode.TEXT else "yellow"),
        ]
    if isinstance(record, Open):
        tail: Segments
        if record.accepted:
            sub = f" subprotocol {record.subprotocol}" if record.subprotocol else ""
            tail = [(f"{record.status} {record.reason}".rstrip() + sub, "green")]
        else:
            body = record.body.decode("utf-8", "replace")
            extra = f", body {len(record.body)} B: {text_preview(body, 60)}" if record.body else ""
            tail = [(f"{record.status} {record.reason}".rstrip() + f" (refused{extra})", "red")]
        return [
            (f"#{record.conn:<4}", "bold"),
            (_when(0.0), "dim"),
            ("  ⇄ ", "bold"),
            (f"open {record.method} {record.url} at {iso_utc(record.started_at)} → ", "bold"),
            *tail,
        ]
    if isinstance(record, Close):
        good = record.code in (1000, None) and record.by is not None
        return [
            (f"#{record.conn:<4}", "dim"),
            (_when(record.t), "dim"),
            ("  ✕ ", "bold"),
            (_close_words(record), "green" if good else "red"),
        ]
    conn = "#-   " if record.conn is None else f"#{record.conn:<4}"
    return [(conn, "dim"), (_when(record.t), "dim"), ("  # ", "dim"), (record.text, "italic")]


def _show_lines(
    reader: CassetteReader, conns: set[int] | None, limit: int | None, *, notes: bool = True
) -> Iterator[Record]:
    shown = 0
    opened: set[int] = set()
    for record in reader:
        if conns is not None and record.conn not in conns:
            continue
        if isinstance(record, Open):
            opened.add(record.conn)
        if not notes and isinstance(record, Note):
            continue
        if limit is not None and shown >= limit:
            return
        shown += 1
        yield record
    missing = sorted((conns or set()) - opened)
    if missing:
        warn(f"{reader.path}: no connection {', '.join(map(str, missing))} in this cassette")


def show(
    cassette: CassetteArg,
    conn: Annotated[
        list[int] | None,
        typer.Option("--conn", "-c", help="Show only this connection id (repeatable)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", "-n", min=0, help="Show at most N records.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the JSONL records of `wstape export --format jsonl` (notes left out).",
        ),
    ] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="Never colour the output (plain text).")
    ] = False,
) -> None:
    """Print a cassette as a timeline, one line per record.

    Each line: connection id, time since the connection opened, direction (→ client to
    server, ← server to client), opcode, size, and a preview: the text (long text elided
    with …) or a hex dump of the first 16 bytes for binary. Opens (⇄), closes (✕) and
    notes (#) have lines of their own. Colour on a terminal, plain text when piped.

    For reviewing cassettes in git: git config diff.wstape.textconv 'wstape show
    --no-color' and a .gitattributes line: *.msgpack diff=wstape
    """
    reader = open_cassette(cassette)
    wanted = set(conn) if conn else None
    try:
        if as_json:
            for line in iter_jsonl(_show_lines(reader, wanted, limit, notes=False)):
                sys.stdout.write(line + "\n")
        else:
            _print_timeline(reader, wanted, limit, color=not no_color and sys.stdout.isatty())
        sys.stdout.flush()
    except CassetteError as e:
        cassette_error(e)
    except BrokenPipeError:
        stdout_closed()
    warn_if_truncated(reader)


def _print_timeline(
    reader: CassetteReader, conns: set[int] | None, limit: int | None, *, color: bool
) -> None:
    header = reader.header
    title = (
        f"# {reader.path.name}: {FORMAT_NAME} v{header.version}, written by {header.creator}, "
        f"started {iso_utc(header.started_at)}"
    )
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True) if color else None
    if console is not None:
        console.print(Text(title, style="dim"))
    else:
        sys.stdout.write(title + "\n")
    shown = 0
    for record in _show_lines(reader, conns, None):
        if limit is not None and shown >= limit:
            more = "# … more records not shown (--limit)"
            if console is not None:
                console.print(Text(more, style="dim"))
            else:
                sys.stdout.write(more + "\n")
            return
        segments = record_segments(record)
        if console is not None:
            console.print(Text.assemble(*segments))
        else:
            sys.stdout.write("".join(s for s, _ in segments) + "\n")
        shown += 1


# -- stats -----------------------------------------------------------------------------


def _pair(values: dict[str, Any], fmt: str = "{}") -> str:
    def one(v: Any) -> str:
        return "-" if v is None else fmt.format(v)

    return f"{one(values['client'])} / {one(values['server'])}"


def _percentile_cells(size: dict[str, dict[str, Any]]) -> list[str]:
    return [
        _pair({s: size[s][p] for s in ("client", "server")}) for p in ("p50", "p90", "p99", "max")
    ]


def _gap_cell(gap: dict[str, Any]) -> str:
    def sec(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}s"

    return f"{sec(gap['p50'])} / {sec(gap['max'])}"


def _stats_close(c: ConnectionStats) -> str:
    if not c.open.accepted:
        return f"refused {c.open.status}"
    if c.close is None:
        return "(no close record)"
    return _close_words(c.close)


def _print_stats(path: Path, s: CassetteStats) -> None:
    doc = s.to_json()
    total = doc["total"]
    table = Table(
        title=f"{path}: {total['connections']} connections "
        f"({total['accepted']} accepted, {total['refused']} refused); sizes in bytes, "
        "client→server / server→client",
        title_justify="left",
    )
    for col in ("id", "url", "msgs", "bytes", "p50", "p90", "p99", "max", "gap p50 / max",
                "duration", "close"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("url", "close") else "right")
    for c, j in zip(s.connections, doc["connections"], strict=True):
        table.add_row(
            str(c.open.conn),
            c.open.url,
            _pair(j["messages"]),
            _pair(j["bytes"]),
            *_percentile_cells(j["size"]),
            _gap_cell(j["gap"]),
            f"{j['duration']:.3f}s",
            _stats_close(c),
        )
    codes = ", ".join(f"{k}: {v}" for k, v in total["close_codes"].items()) or "-"
    if total["unclosed"]:
        codes += f"; {total['unclosed']} without a close record"
    table.add_section()
    table.add_row(
        "total",
        "",
        _pair(total["messages"]),
        _pair(total["bytes"]),
        *_percentile_cells(total["size"]),
        _gap_cell(total["gap"]),
        f"{total['duration']:.3f}s",
        f"close codes {codes}",
    )
    from wstape.cli.common import console

    console().print(table)


def stats(cassette: CassetteArg, as_json: JsonOpt = False) -> None:
    """Statistics per connection and in total: messages and bytes each way, message
    size percentiles (p50/p90/p99/max), duration, gaps between messages (p50/max) and
    close codes.

    --json prints {"connections": [{"conn", "url", "status", "started_at", "duration",
    "messages": {"client", "server"}, "bytes": {...}, "size": {"client": {"p50", "p90",
    "p99", "max"}, "server": {...}}, "gap": {"p50", "max"}, "close"}], "total":
    {"connections", "accepted", "refused", "messages", "bytes", "size", "gap", "duration",
    "close_codes": {"1000": n, "none": n}, "unclosed"}}. Sizes in bytes, times in
    seconds; null where there is nothing to measure.
    """
    reader = open_cassette(cassette)
    try:
        result = compute_stats(reader)
    except CassetteError as e:
        cassette_error(e)
    warn_if_truncated(reader)
    warn_strays(cassette, result.strays)
    if as_json:
        print_json(result.to_json())
    else:
        _print_stats(cassette, result)


# -- diff ------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("show")(show)
    app.command("stats")(stats)
