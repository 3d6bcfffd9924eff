"""Cassette tools: ``show``, ``stats``, ``diff``, ``redact``, ``cut``, ``repair``, ``import``,
``view``.

Each command is a thin layer over a library function in ``wstape.cassettes`` (or
``wstape.interchange.flows`` for mitmproxy flow files); all of them stream. Errors are one
line on stderr: exit 3 for an unreadable cassette or import source, 2 for usage errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

import wstape
from wstape.cassettes import CassetteError, CassetteReader, CassetteWriteError, TruncatedCassette
from wstape.cassettes.schema import FORMAT_NAME, FORMAT_VERSION
from wstape.cli.common import (
    ExitCode,
    error,
    fail,
    open_cassette,
    stdout_closed,
    warn,
    warn_if_truncated,
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
from wstape.core.closecodes import describe
from wstape.core.model import Close, Header, Message, Note, Opcode, Open, Record, Side
from wstape.core.rules import Platform, Profile, Violation
from wstape.interchange.har import InterchangeError, open_input, read_har
from wstape.interchange.jsonl import iso_utc, iter_jsonl
from wstape.tools.check import check_file
from wstape.tools.diff import MAX_DETAILS, CassetteDiff, ConnectionDiff, diff_cassettes
from wstape.tools.edit import (
    RepairResult,
    Selection,
    cut_cassette,
    repair_cassette,
    rewrite_to,
    same_file,
)
from wstape.tools.redact import RedactError, RedactRules, redact_cassette
from wstape.tools.stats import CassetteStats, ConnectionStats, compute_stats
from wstape.tools.view import MAX_MESSAGES, render_html

CassetteArg = Annotated[
    Path, typer.Argument(help="The cassette file (.msgpack).", show_default=False)
]
OutputOpt = Annotated[
    Path, typer.Option("--output", "-o", help="The cassette to write.", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON object instead of text.")]

PREVIEW_CHARS = 100
HEX_BYTES = 16


def _cassette_error(e: CassetteError) -> NoReturn:
    if isinstance(e, TruncatedCassette):
        fail(f"{e} (run `wstape repair` to keep the complete part)", ExitCode.CASSETTE)
    fail(str(e), ExitCode.CASSETTE)


def _write_error(e: CassetteWriteError | OSError, path: Path) -> NoReturn:
    if isinstance(e, CassetteWriteError):
        fail(str(e), ExitCode.USAGE)
    fail(f"{path}: cannot write: {e.strerror or e}", ExitCode.USAGE)


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


def _refuse_input(source: Path, output: Path) -> None:
    if same_file(source, output):
        fail(f"{output}: refusing to overwrite the input file", ExitCode.USAGE)


# -- show ------------------------------------------------------------------------------

Segments = list[tuple[str, str]]
"""A line as (text, rich style) pieces: styled on a terminal, joined when piped."""

_CONTROL = {i: f"\\x{i:02x}" for i in range(32)} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x7F: "\\x7f",
}


def text_preview(text: str, width: int = PREVIEW_CHARS) -> str:
    """One line of at most ``width`` characters (control characters escaped)."""
    line = text.translate(_CONTROL)
    return line if len(line) <= width else line[:width] + "…"


def hex_preview(data: bytes, count: int = HEX_BYTES) -> str:
    """``00 01 02 … |...|``: the first ``count`` bytes in hex and as ASCII."""
    head = data[:count]
    ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = " …" if len(data) > count else ""
    return f"{head.hex(' ')}{more} |{ascii_}|" if head else "(empty)"


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
        _cassette_error(e)
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
        _cassette_error(e)
    warn_if_truncated(reader)
    if as_json:
        _print_json(result.to_json())
    else:
        _print_stats(cassette, result)


# -- diff ------------------------------------------------------------------------------


def _value(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def _detail_line(d: dict[str, Any]) -> str:
    kind = d.get("kind")
    if kind == "json":
        if d.get("more"):
            return "… more JSON changes"
        if d["change"] == "added":
            return f"{d['path']}: added {_value(d['b'])}"
        if d["change"] == "removed":
            return f"{d['path']}: removed (was {_value(d['a'])})"
        return f"{d['path']}: {_value(d['a'])} → {_value(d['b'])}"
    if kind == "bytes":
        sizes = f", size {d['size_a']} → {d['size_b']}" if "size_a" in d else ""
        return (
            f"byte {d['offset']}: {d['a'] or '(end)'} → {d['b'] or '(end)'} "
            f"({d['differing']} bytes differ{sizes}); a: {d['context_a']} | b: {d['context_b']}"
        )
    if kind == "text":
        same = " (same JSON value, different text)" if d.get("same_json") else ""
        return f"character {d['offset']}{same}: {_value(d['a'])} → {_value(d['b'])}"
    return f"{d['field']}: {d['a']} → {d['b']}"


def _field_line(d: dict[str, Any]) -> str:
    name = f"{d['field']} {d['name']}" if "name" in d else d["field"]
    return f"{name}: {_value(d['a'])} → {_value(d['b'])}"


def _conn_title(c: ConnectionDiff) -> str:
    a = "-" if c.a is None else f"#{c.a.open.conn}"
    b = "-" if c.b is None else f"#{c.b.open.conn}"
    first = c.a or c.b
    assert first is not None
    return f"{a} ↔ {b}  {first.open.url}: {c.status}"


def _print_diff(d: CassetteDiff) -> None:
    out = sys.stdout
    out.write(f"--- {d.a}\n+++ {d.b}\n")
    if d.same:
        out.write("no differences\n")
        return
    for c in d.connections:
        out.write(_conn_title(c) + "\n")
        if c.status in ("added", "removed"):
            out.write(f"  {c.counts['a'] or c.counts['b']} messages\n")
            continue
        for f in c.open:
            out.write(f"  open {_field_line(f)}\n")
        if c.status == "changed":
            counts = c.counts
            out.write(
                f"  messages: {counts['a']} → {counts['b']} ({counts['same']} same, "
                f"{counts['changed']} changed, {counts['added']} added, "
                f"{counts['removed']} removed)\n"
            )
        for ch in c.changes:
            if ch["change"] == "changed":
                out.write(
                    f"  ~ message {ch['a_index']} ↔ {ch['b_index']} ({ch['from']}, "
                    f"{ch['opcode']}, {ch['size']['a']} → {ch['size']['b']} B)\n"
                )
                for detail in ch["details"]:
                    out.write(f"      {_detail_line(detail)}\n")
            else:
                sign, idx = (
                    ("+", ch["b_index"]) if ch["change"] == "added" else ("-", ch["a_index"])
                )
                out.write(
                    f"  {sign} message {idx} ({ch['from']}, {ch['opcode']}, {ch['size']} B): "
                    f"{ch['preview']}\n"
                )
        if c.left_out:
            out.write(f"  … {c.left_out} more changes (raise --max-changes)\n")
        for f in c.close:
            out.write(f"  close {_field_line(f)}\n")


def diff(
    a: Annotated[Path, typer.Argument(help="The old cassette.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="The new cassette.", show_default=False)],
    as_json: JsonOpt = False,
    ignore_header: Annotated[
        list[str] | None,
        typer.Option("--ignore-header", help="Do not compare this header (repeatable)."),
    ] = None,
    all_headers: Annotated[
        bool,
        typer.Option(
            "--all-headers",
            help="Also compare Sec-WebSocket-Key, Sec-WebSocket-Accept and Date.",
        ),
    ] = False,
    max_changes: Annotated[
        int, typer.Option("--max-changes", min=0, help="Changes listed per connection.")
    ] = MAX_DETAILS,
) -> None:
    """Compare two cassettes connection by connection and message by message.

    Connections are paired by path (the n-th connection to a path in a with the n-th in
    b). Messages are aligned, then each difference is listed: added (+), removed (-) or
    changed (~), with the JSON paths that changed for JSON text, or the first differing
    byte and the count of differing bytes for binary. Times, client addresses and
    per-connection handshake headers are not compared.

    Exit code 0 when the cassettes are the same, 1 when they differ, 3 when one cannot be
    read. --json prints {"same", "a", "b", "connections": [{"status":
    "same"|"changed"|"added"|"removed", "a", "b", "url", "open": [...], "messages":
    {"a", "b", "same", "changed", "added", "removed"}, "changes": [...],
    "changes_left_out", "close": [...]}]} (docs/interchange.md).
    """
    ra = open_cassette(a)
    rb = open_cassette(b)
    try:
        result = diff_cassettes(
            ra,
            rb,
            ignore_headers=ignore_header or (),
            compare_volatile=all_headers,
            max_details=max_changes,
        )
    except CassetteError as e:
        _cassette_error(e)
    warn_if_truncated(ra)
    warn_if_truncated(rb)
    if as_json:
        _print_json(result.to_json())
    else:
        _print_diff(result)
    if not result.same:
        raise typer.Exit(int(ExitCode.VIOLATIONS))


# -- redact ----------------------------------------------------------------------------


def redact(
    cassette: CassetteArg,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="The redacted cassette to write.", show_default=False),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="Replace this header's values (repeatable)."),
    ] = None,
    json_key: Annotated[
        list[str] | None,
        typer.Option(
            "--json-key",
            help="Replace this key's values at any depth in JSON text messages "
            "(case-insensitive, repeatable).",
        ),
    ] = None,
    pattern: Annotated[
        list[str] | None,
        typer.Option(
            "--pattern",
            help="Replace matches of this regular expression in text messages, the request "
            "target, header values, close reasons, notes (repeatable).",
        ),
    ] = None,
    query: Annotated[
        list[str] | None,
        typer.Option("--query", help="Replace this query parameter's value (repeatable)."),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Rewrite the input cassette itself.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite a cassette with secrets replaced by <redacted>, and report how many values
    were replaced.

    Header values by name; JSON values by key in text messages (only the value changes,
    the rest of the message keeps its bytes); regular expression matches in any text
    (binary messages are never changed). Refuses to overwrite its input unless --in-place.

    --json prints {"input", "output", "replaced": {"headers", "json_keys", "patterns",
    "query"}, "total", "records", "changed_records"}.
    """
    try:
        rules = RedactRules.build(
            headers=header or (),
            json_keys=json_key or (),
            patterns=pattern or (),
            query=query or (),
        )
    except RedactError as e:
        fail(str(e), ExitCode.USAGE)
    if rules.empty:
        fail("nothing to redact: give --header, --json-key, --pattern or --query")
    if in_place:
        if output is not None and not same_file(cassette, output):
            fail("--in-place rewrites the input; do not give a different --output")
        output = cassette
    elif output is None:
        fail("give --output/-o for the redacted copy, or --in-place")
    else:
        _refuse_input(cassette, output)
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        counts = redact_cassette(reader, output, rules)
    except CassetteError as e:
        _cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        _write_error(e, output)
    if as_json:
        _print_json({"input": str(cassette), "output": str(output), **counts.to_json()})
        return
    where = ", ".join(f"{k} {v}" for k, v in sorted(counts.by_location.items()))
    print(
        f"redacted {counts.total} values in {counts.changed_records} of {counts.records} "
        f"records → {output} (headers {counts.headers}, JSON keys {counts.json_keys}, "
        f"patterns {counts.patterns}{' in ' + where if where else ''}, query {counts.query})"
    )


# -- cut and repair --------------------------------------------------------------------


def cut(
    cassette: CassetteArg,
    output: OutputOpt,
    conn: Annotated[
        list[int] | None, typer.Option("--conn", "-c", help="Keep this connection id (repeatable).")
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path",
            help="Keep connections to this path (repeatable; * matches anything; with "
            "?query, path and query are compared).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a cassette with only some connections: the header, their records and their
    notes, and the notes about the whole cassette.

    Several --conn (or several --path) keep any of them; --conn together with --path keeps
    the connections that match both. Connection ids are kept as they are.

    --json prints {"input", "output", "connections": [ids], "records", "messages"}.
    """
    if not conn and not path:
        fail("nothing to keep: give --conn and/or --path")
    _refuse_input(cassette, output)
    reader = open_cassette(cassette, allow_truncated=False)
    try:
        result = cut_cassette(reader, output, Selection(conn or (), path or ()))
    except CassetteError as e:
        _cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        _write_error(e, output)
    if not result.connections:
        warn("no connection matched; the output has no connections")
    if as_json:
        _print_json(
            {
                "input": str(cassette),
                "output": str(output),
                "connections": result.connections,
                "records": result.records,
                "messages": result.messages,
            }
        )
        return
    ids = ", ".join(str(c) for c in result.connections) or "none"
    print(
        f"kept {len(result.connections)} connections ({ids}), {result.records} records, "
        f"{result.messages} messages → {output}"
    )


def _repair_json(source: Path, output: Path, r: RepairResult) -> dict[str, Any]:
    return {
        "input": str(source),
        "output": str(output),
        "records": r.records,
        "truncated_at": r.truncated_at,
        "dropped_bytes": r.dropped_bytes,
        "closed": r.closed,
    }


def repair(cassette: CassetteArg, output: OutputOpt, as_json: JsonOpt = False) -> None:
    """Write the complete part of a truncated cassette (a recorder killed mid-write).

    Every complete record is kept; the incomplete tail is dropped. Connections left open
    get the close a stopped recorder writes (by nobody, no code, not on the wire) and a
    note. Other corruption is not repaired (exit 3).

    --json prints {"input", "output", "records", "truncated_at", "dropped_bytes", "closed"}.
    """
    _refuse_input(cassette, output)
    reader = open_cassette(cassette, allow_truncated=True)
    try:
        result = repair_cassette(reader, output)
    except CassetteError as e:
        _cassette_error(e)
    except (CassetteWriteError, OSError) as e:
        _write_error(e, output)
    if as_json:
        _print_json(_repair_json(cassette, output, result))
        return
    if result.truncated_at is None:
        what = "the cassette was not truncated"
    else:
        what = f"dropped {result.dropped_bytes} bytes from byte {result.truncated_at}"
    closed = f"; closed {len(result.closed)} connections left open" if result.closed else ""
    print(f"kept {result.records} records, {what}{closed} → {output}")


# -- import ----------------------------------------------------------------------------


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
    _refuse_input(source, output)
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
        _write_error(e, output)
    skipped = int(getattr(counters, "skipped", 0))
    failed = int(getattr(counters, "failed", 0))
    if as_json:
        _print_json(
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
    _refuse_input(cassette, output)
    violations: list[Violation] = []
    if not no_check:
        cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
        try:
            violations = list(check_file(open_cassette(cassette), cfg).violations)
        except CassetteError as e:
            _cassette_error(e)
    reader = open_cassette(cassette)
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            result = render_html(reader, f, violations, max_messages=max_messages)
        os.replace(tmp, output)
    except CassetteError as e:
        tmp.unlink(missing_ok=True)
        _cassette_error(e)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _write_error(e, output)
    warn_if_truncated(reader)
    left = f" ({result.left_out} not drawn)" if result.left_out else ""
    print(
        f"wrote {output}: {result.connections} connections, {result.messages} messages{left}, "
        f"{result.violations} violations"
    )


def register(app: typer.Typer) -> None:
    app.command("show")(show)
    app.command("stats")(stats)
    app.command("diff")(diff)
    app.command("redact")(redact)
    app.command("cut")(cut)
    app.command("repair")(repair)
    app.command("import")(import_)
    app.command("view")(view)
