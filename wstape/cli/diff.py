"""``wstape diff``: what changed between two cassettes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from wstape.cassettes import CassetteError
from wstape.cli.common import (
    ExitCode,
    JsonOpt,
    cassette_error,
    open_cassette,
    print_json,
    warn_if_truncated,
    warn_strays,
)
from wstape.cli.options import ProtocolOpt, protocol_option
from wstape.cli.output import progress
from wstape.tools.decoded import protocol_view
from wstape.tools.diff import MAX_DETAILS, CassetteDiff, ConnectionDiff, diff_cassettes


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
        if "offset" in d:  # two long strings, around their first difference
            return (
                f"{d['path']} at character {d['offset']} ({d['lengths'][0]} → "
                f"{d['lengths'][1]} characters): {_value(d['a'])} → {_value(d['b'])}"
            )
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
    a: Annotated[
        Path,
        typer.Argument(metavar="A", help="The old cassette (a in --json).", show_default=False),
    ],
    b: Annotated[
        Path,
        typer.Argument(metavar="B", help="The new cassette (b in --json).", show_default=False),
    ],
    as_json: JsonOpt = False,
    ignore_header: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-header", metavar="NAME", help="Do not compare this header (repeatable)."
        ),
    ] = None,
    all_headers: Annotated[
        bool,
        typer.Option(
            "--all-headers",
            help="Also compare Sec-WebSocket-Key, Sec-WebSocket-Accept and Date.",
        ),
    ] = False,
    max_changes: Annotated[
        int,
        typer.Option("--max-changes", metavar="N", min=0, help="Changes listed per connection."),
    ] = MAX_DETAILS,
    protocol: ProtocolOpt = "auto",
) -> None:
    """Compare two cassettes connection by connection and message by message.

    Connections are paired by path (the n-th connection to a path in a with the n-th in
    b). Messages are aligned, then each difference is listed: added (+), removed (-) or
    changed (~), with the JSON paths that changed for JSON text, the fields that changed
    for a message of a known protocol (--protocol: an MQTT packet id, a Socket.IO event
    argument), or the first differing byte and the count of differing bytes for binary.
    Times, client addresses and per-connection handshake headers are not compared.

    Exit code 0 when the cassettes are the same, 1 when they differ, 3 when one cannot be
    read. --json prints {"same", "a", "b", "connections": [{"status":
    "same"|"changed"|"added"|"removed", "a", "b", "url", "open": [...], "messages":
    {"a", "b", "same", "changed", "added", "removed"}, "changes": [...],
    "changes_left_out", "close": [...]}]} (docs/interchange.md).
    """
    chosen = protocol_option(protocol)
    ra = open_cassette(a)
    rb = open_cassette(b)
    try:
        with progress([a, b], "diff", enabled=not as_json):
            result = diff_cassettes(
                ra,
                rb,
                ignore_headers=ignore_header or (),
                compare_volatile=all_headers,
                max_details=max_changes,
                protocols=protocol_view(open_cassette(a), chosen),
            )
    except CassetteError as e:
        cassette_error(e)
    warn_if_truncated(ra)
    warn_if_truncated(rb)
    warn_strays(a, result.strays[0])
    warn_strays(b, result.strays[1])
    if as_json:
        print_json(result.to_json())
    else:
        _print_diff(result)
    if not result.same:
        raise typer.Exit(int(ExitCode.VIOLATIONS))


# -- redact ----------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    app.command("diff", short_help="Compare two cassettes connection by connection.")(diff)
