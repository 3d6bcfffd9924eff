"""Reading a cassette: ``ls`` (one row per connection), ``show`` (the timeline), ``stats``."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from wstape.cassettes import CassetteError, CassetteReader
from wstape.cassettes.schema import FORMAT_NAME
from wstape.cli import output
from wstape.cli.common import (
    CassetteArg,
    ConnOpt,
    JsonOpt,
    cassette_error,
    console,
    ends_disagree,
    missing_ids,
    only_conns,
    open_cassette,
    stdout_closed,
    warn,
    warn_if_truncated,
    warn_strays,
    write_json_texts,
)
from wstape.cli.options import ProtocolOpt, protocol_option
from wstape.cli.output import Column
from wstape.core.closecodes import describe
from wstape.core.connections import summarize_connections
from wstape.core.model import (
    Close,
    ConnectionSummary,
    Note,
    Open,
    Record,
    Side,
)
from wstape.interchange.jsonl import iso_utc, iter_jsonl, summary_json
from wstape.tools.decoded import ProtocolView, protocol_view
from wstape.tools.stats import CassetteStats, ConnectionStats, SpoolFailed, compute_stats
from wstape.tools.timeline import (
    close_words,
    escaped,
    header_segments,
    plain,
    record_segments,
)


def _human_bytes(n: int) -> str:
    if 0 <= n < 1024:  # (what the loop below gives for these: "0 B" .. "1023 B")
        return f"{n} B"
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
    if type(c.code) is not int or type(c.reason) is not str:  # (not from a reader)
        return _close_words(c.by, c.code, c.reason)
    key = (c.by, c.code, c.reason)
    text = _CLOSE_TEXTS.get(key)
    if text is None:  # (the few closes of a cassette repeat: each made once)
        text = _close_words(c.by, c.code, c.reason)
        if len(c.reason) <= 256:  # (a longer one is made every time: the cache stays small)
            if len(_CLOSE_TEXTS) >= 4096:
                _CLOSE_TEXTS.clear()
            _CLOSE_TEXTS[key] = text
    return text


def _close_words(by: Side, code: int, reason: str) -> str:
    reason = reason if len(reason) <= LS_REASON_CHARS else reason[:LS_REASON_CHARS] + "…"
    return f"by {by.value}: {describe(code, reason)}"


_CLOSE_TEXTS: dict[tuple[Side, int, str], str] = {}
"""The close cells :func:`_close_text` made, by who closed, code and reason (bounded)."""


LS_REASON_CHARS = 24
"""``ls`` is a summary: a longer close reason is elided (``show`` prints it whole)."""


def ls(
    cassette: CassetteArg,
    conn: ConnOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON array, one object per connection.")
    ] = False,
) -> None:
    """List the connections of a cassette: id, URL, subprotocol, messages and bytes each
    way, duration and how it closed.

    A truncated cassette (a recorder killed mid-write) is listed up to the last complete
    record, with a warning naming the byte where it stops. A cassette one writer wrote
    (format 3, up to 3000 connections) is listed from its end record and each
    connection's open and close, without reading its messages (`wstape check` reads
    every record); an end record whose listing does not hold against the file is
    reported in a warning, and the file is read whole.
    """
    reader = open_cassette(cassette)
    # Each connection's row (or JSON object) is made as soon as it is over and kept in
    # place of its summary: ls of 200,000 connections holds one string per connection.
    finish = _json_text if as_json else _row_text
    try:
        listed = reader.listed()
        if listed is not None:  # (one writer wrote it all: its end record lists them)
            texts = _listed_texts(listed, conn, cassette, finish)
        else:
            if reader.listing_refused is not None:
                warn(
                    f"{cassette}: the end record's listing does not hold "
                    f"({reader.listing_refused}); reading every record instead"
                )
            with (
                output.progress([cassette], "ls", enabled=not as_json),
                output.no_cycle_collection(),
            ):
                folded = summarize_connections(
                    only_conns(reader.iter_runs(), conn, cassette), finish
                )
            warn_if_truncated(reader)
            warn_strays(cassette, folded.strays)
            texts = folded.connections
    except CassetteError as e:
        cassette_error(e)
    if as_json:
        write_json_texts(texts)
        return
    columns = (
        Column("id", keep=9, whole=True, justify="right"),
        Column("url", keep=8, whole=True),
        Column("subprotocol", keep=2),
        Column("msgs c→s / s→c", keep=5, whole=True),
        Column("bytes c→s / s→c", keep=4, whole=True),
        Column("duration", keep=3, whole=True, justify="right"),
        Column("close", keep=6, min_width=14),
    )
    title = f"{cassette} ({output.plural(len(texts), 'connection')})"
    output.print_table(console(), title, columns, output.TextRows(texts))


def _listed_texts(
    listed: list[ConnectionSummary],
    conns: list[int] | None,
    path: Path,
    finish: Callable[[ConnectionSummary], str],
) -> list[str]:
    """The rows of the connections an end record lists (:meth:`CassetteReader.listed`),
    ``--conn`` as :func:`~wstape.cli.common.only_conns` takes it from a pass."""
    if conns is None:
        return [finish(s) for s in listed]
    wanted = set(conns)
    missing_ids(path, wanted - {s.open.conn for s in listed})
    return [finish(s) for s in listed if s.open.conn in wanted]


def _json_text(s: ConnectionSummary) -> str:
    """One object of ``ls --json``, encoded."""
    return summary_json(s)


def _row_text(s: ConnectionSummary) -> str:
    """One row of ``ls`` (:func:`wstape.cli.output.text_row`)."""
    return output.text_row(
        (
            str(s.open.conn),
            s.open.url,
            s.open.subprotocol or "-",
            f"{s.messages_client} / {s.messages_server}",
            f"{_human_bytes(s.bytes_client)} / {_human_bytes(s.bytes_server)}",
            f"{s.duration:.3f}s",
            _close_text(s),
        )
    )


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
    missing_ids(reader.path, (conns or set()) - opened)


def show(
    cassette: CassetteArg,
    conn: ConnOpt = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", metavar="N", min=0, help="Show at most N records."),
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
    protocol: ProtocolOpt = "auto",
    headers: Annotated[
        bool,
        typer.Option(
            "--headers",
            help="Also print each handshake's request (>) and response (<) headers, under "
            "its open line.",
        ),
    ] = False,
) -> None:
    """Print a cassette as a timeline, one line per record.

    Each line: connection id, time since the connection opened, direction (→ client to
    server, ← server to client), opcode, size, and a preview: the text (long text elided
    with …) or a hex dump of the first 16 bytes for binary. Opens (⇄), closes (✕) and
    notes (#) have lines of their own. Colour on a terminal, plain text when piped. A
    message of a known protocol (--protocol) is shown decoded instead, e.g. "mqtt
    SUBSCRIBE id=17 a/b (qos 1)" or 'socketio EVENT / "chat" ["hi"]'.

    For reviewing cassettes in git: git config diff.wstape.textconv 'wstape show
    --no-color --headers' and a .gitattributes line: *.msgpack diff=wstape
    """
    reader = open_cassette(cassette)
    wanted = set(conn) if conn else None
    try:
        if as_json:
            for line in iter_jsonl(_show_lines(reader, wanted, limit, notes=False)):
                sys.stdout.write(line + "\n")
        else:
            view = protocol_view(open_cassette(cassette), protocol_option(protocol), limit=limit)
            output.no_color(no_color)
            color = output.color_enabled(sys.stdout)
            _print_timeline(reader, wanted, limit, color=color, view=view, headers=headers)
        sys.stdout.flush()
    except CassetteError as e:
        cassette_error(e)
    except BrokenPipeError:
        stdout_closed()
    warn_if_truncated(reader)


def _print_timeline(
    reader: CassetteReader,
    conns: set[int] | None,
    limit: int | None,
    *,
    color: bool,
    view: ProtocolView | None = None,
    headers: bool = False,
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
        lines = [record_segments(record, view)]
        if headers and isinstance(record, Open):
            lines += header_segments(record)
        for segments in lines:
            if console is not None:
                console.print(Text.assemble(*escaped(segments)))
            else:
                sys.stdout.write(plain(segments) + "\n")
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


def _stats_close(c: dict[str, Any]) -> str:
    """The close cell of a ``stats`` row, from the connection's JSON object."""
    if c["status"] != 101:
        return f"refused {c['status']}"
    close = c["close"]
    if close is None:
        return "(no close record)"
    by = None if close["by"] is None else Side(close["by"])
    return close_words(Close(c["conn"], 0.0, by, close["code"], close["reason"], close["on_wire"]))


def _print_stats(path: Path, s: CassetteStats) -> None:
    total = s.total_json()
    title = (
        f"{path}: {output.plural(total['connections'], 'connection')} "
        f"({total['accepted']} accepted, {total['refused']} refused)"
    )
    columns = (
        Column("id", keep=9, whole=True, justify="right"),
        Column("url", keep=8, whole=True),
        Column("msgs", keep=7, whole=True, justify="right"),
        Column("bytes", keep=6, whole=True, justify="right"),
        Column("p50", keep=3, whole=True, justify="right"),
        Column("p90", keep=1, whole=True, justify="right"),
        Column("p99", keep=1, whole=True, justify="right"),
        Column("max", keep=3, whole=True, justify="right"),
        Column("gap p50 / max", keep=2, whole=True, justify="right"),
        Column("duration", keep=4, whole=True, justify="right"),
        Column("close", keep=5, min_width=14),
    )

    def row(text: str) -> tuple[str, ...]:
        j = json.loads(text)
        return (
            str(j["conn"]),
            j["url"],
            _pair(j["messages"]),
            _pair(j["bytes"]),
            *_percentile_cells(j["size"]),
            _gap_cell(j["gap"]),
            f"{j['duration']:.3f}s",
            _stats_close(j),
        )

    rows = output.LazyRows(s.connections, row)
    codes = ", ".join(f"{k}: {v}" for k, v in total["close_codes"].items()) or "-"
    if total["unclosed"]:
        codes += f"; {total['unclosed']} without a close record"
    footer = [
        (
            "total",
            "",
            _pair(total["messages"]),
            _pair(total["bytes"]),
            *_percentile_cells(total["size"]),
            _gap_cell(total["gap"]),
            f"{total['duration']:.3f}s",
            "",
        )
    ]
    out = console()
    output.print_table(out, title, columns, rows, footer)
    out.print("sizes in bytes, client→server / server→client", soft_wrap=False)
    out.print(f"close codes: {codes}", soft_wrap=False)


def stats(cassette: CassetteArg, conn: ConnOpt = None, as_json: JsonOpt = False) -> None:
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
    reader = open_cassette(cassette, check_ends=conn is None)

    def over(c: ConnectionStats) -> None:
        ends = reader.end_check  # (the end records are held to each connection's figures)
        if ends is not None:
            ends.connection(
                c.open.conn,
                c.messages_client,
                c.messages_server,
                c.bytes_client,
                c.bytes_server,
                c.duration,
            )

    spool = _spool() if as_json else None
    try:
        with (
            output.progress([cassette], "stats", enabled=not as_json),
            output.no_cycle_collection(),
        ):
            try:
                result = compute_stats(
                    only_conns(reader.iter_runs(), conn, cassette), over, spool=spool
                )
            except SpoolFailed:  # (a full disk: the texts in memory, a pass again)
                assert spool is not None
                spool.close()
                spool = None
                result = compute_stats(only_conns(reader.iter_runs(), conn, cassette), over)
    except CassetteError as e:
        cassette_error(e)
    warn_if_truncated(reader)
    ends_disagree(reader, result.strays.count, fatal=False)
    warn_strays(cassette, result.strays)
    if not as_json:
        _print_stats(cassette, result)
        return
    with spool or contextlib.nullcontext():
        result.write_json(sys.stdout)
    sys.stdout.write("\n")


def _spool() -> IO[str] | None:
    """Where ``stats --json`` keeps each connection's text till the cassette has been read
    whole (an unreadable record prints no half document): a temporary file, not memory;
    None (memory, then) where no temporary file can be made. One that cannot be written
    (a full disk) is given up: the figures are computed again, in memory."""
    try:
        return tempfile.TemporaryFile("w+", encoding="utf-8", errors="surrogatepass", newline="\n")
    except OSError:
        return None


# -- diff ------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("ls", short_help="List the connections of a cassette.")(ls)
    app.command("show", short_help="Print a cassette as a timeline, one line per record.")(show)
    app.command("stats", short_help="Messages, bytes, sizes and timing per connection.")(stats)
