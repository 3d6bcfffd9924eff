"""``wstape view``: one static, self-contained HTML file with a sequence diagram per connection.

No script, no network, no CDN: styles are inline and "click to expand" is the HTML
``<details>`` element, so the file opens anywhere (a CI artefact, an email attachment).

Per connection: the upgrade (or the refusal), then one row per message on two lanes
(client | server) with an arrow in the direction it travelled, its time, a preview (click
to see the whole text, or a hex dump of the first bytes of a binary message) and its size,
then the close. Violations (from ``wstape check``) are shown on the row they concern,
matched by connection and time; those about a connection as a whole under its title.

Memory: rows are kept per connection up to ``max_messages`` (the rest are counted), and a
message keeps at most ``FULL_TEXT`` characters of text, so a huge cassette gives a page of
bounded size.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from wstape.cassettes.reader import CassetteReader
from wstape.core.connections import CASSETTE, ConnectionTracker, Strays
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.core.rules import Violation
from wstape.core.terminal import safe
from wstape.interchange.jsonl import iso_utc
from wstape.tools.decoded import ProtocolView
from wstape.tools.timeline import close_words

PREVIEW = 120
"""Characters of text in a row's one-line preview."""
FULL_TEXT = 64 * 1024
"""Characters of a text message kept for the expanded view."""
HEX_BYTES = 512
"""Bytes of a binary message shown in the expanded hex dump."""
MAX_MESSAGES = 5000
"""Rows per connection by default; later messages are counted, not drawn."""

_STYLE = """
:root { --c: #0b7285; --s: #862e9c; --bad: #c92a2a; --warn: #e67700; --muted: #868e96; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
       color: #212529; background: #f8f9fa; }
header.page { padding: 16px 24px; background: #fff; border-bottom: 1px solid #dee2e6; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: var(--muted); margin: 2px 0; }
main { padding: 8px 24px 40px; }
section.connection { background: #fff; border: 1px solid #dee2e6; border-radius: 6px;
                     margin: 16px 0; padding: 12px 16px; }
section.connection.has-violations { border-color: var(--bad); }
h2 { font-size: 16px; margin: 0 0 4px; word-break: break-all; }
.status-ok { color: #2b8a3e; } .status-refused { color: var(--bad); }
.lanes, .diagram > li { display: grid; grid-template-columns: 7em 1fr; gap: 0 8px; }
.lanes { font-weight: 600; margin-top: 8px; }
.lanes .names { display: flex; justify-content: space-between; }
.lanes .client { color: var(--c); } .lanes .server { color: var(--s); }
ol.diagram { list-style: none; margin: 0; padding: 0; }
.diagram > li { padding: 3px 0; }
.diagram > li > .lane { position: relative; border-left: 3px solid var(--c);
                        border-right: 3px solid var(--s); padding: 2px 10px; min-width: 0;
                        overflow-wrap: anywhere; }
.time { color: var(--muted); text-align: right; font-variant-numeric: tabular-nums;
        padding-top: 2px; }
.arrow { position: relative; margin: 0 4px; padding-bottom: 4px;
         border-bottom: 2px solid currentColor; }
.c2s .arrow { color: var(--c); margin-right: 10px; }
.s2c .arrow { color: var(--s); margin-left: 10px; text-align: right; }
.c2s .arrow::after, .s2c .arrow::before { position: absolute; bottom: -9px; font-size: 12px; }
.c2s .arrow::after { content: "\\25B6"; right: -10px; }
.s2c .arrow::before { content: "\\25C0"; left: -10px; }
details { display: inline-block; max-width: 100%; color: #212529; text-align: left; }
summary { cursor: pointer; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
summary .size, .opcode { color: var(--muted); font-size: 12px; }
pre.full { white-space: pre-wrap; word-break: break-all; background: #f1f3f5;
           padding: 6px 8px; margin: 4px 0; max-height: 40em; overflow: auto; }
.binary .preview { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
li.close .lane, li.note .lane, li.more .lane { text-align: center; color: var(--muted); }
li.close .lane { font-weight: 600; color: #495057; }
li.fault .lane { text-align: center; background: #fff4e6; outline: 2px dashed #e8590c;
                 color: #d9480f; font-weight: 600; }
p.fault { color: #d9480f; font-weight: 600; }
li.violation > .lane { background: #fff5f5; outline: 2px solid var(--bad); }
li.violation.warn-only > .lane { background: #fff9db; outline-color: var(--warn); }
ul.violations { margin: 4px 0; padding-left: 18px; text-align: left; font-weight: normal; }
ul.violations li { color: var(--bad); }
ul.violations li.warn { color: var(--warn); } ul.violations li.info { color: var(--muted); }
.rule { font-weight: 600; font-family: ui-monospace, Menlo, Consolas, monospace; }
"""


def _e(text: str) -> str:
    """Escaped for HTML, with control and bidi characters made visible (``\\u202e``): a
    recorded right-to-left override cannot reorder what the page shows."""
    return html.escape(safe(text, newlines=True), quote=True)


def _one_line(text: str, width: int) -> str:
    line = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")
    return line if len(line) <= width else line[:width] + "…"


def _hex_dump(data: bytes) -> str:
    lines = []
    for i in range(0, min(len(data), HEX_BYTES), 16):
        chunk = data[i : i + 16]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{i:08x}  {chunk.hex(' '):<47}  |{ascii_}|")
    if len(data) > HEX_BYTES:
        lines.append(f"… {len(data) - HEX_BYTES} more bytes")
    return "\n".join(lines) or "(empty)"


@dataclass
class _Row:
    kind: str
    """``message``, ``close``, ``note`` or ``fault`` (from a replay report)."""
    t: float | None
    html: str
    """The row up to the end of its lane's content; violations and ``</div></li>`` follow."""
    side: Side | None = None
    index: int = 0
    violations: list[Violation] = field(default_factory=list)


@dataclass
class _Conn:
    open: Open
    rows: list[_Row] = field(default_factory=list)
    messages: int = 0
    left_out: int = 0
    close: Close | None = None
    violations: list[Violation] = field(default_factory=list)


@dataclass
class ViewResult:
    connections: int = 0
    messages: int = 0
    """Messages drawn."""
    left_out: int = 0
    """Messages counted but not drawn (over ``max_messages`` for their connection)."""
    violations: int = 0
    faults: int = 0
    strays: Strays = field(default_factory=Strays)
    """Records of no connection (:mod:`wstape.core.connections`): not drawn."""


def _message_html(m: Message, index: int, decoded: str | None = None) -> str:
    client = m.side is Side.CLIENT
    text = m.text()
    if decoded is not None:
        preview = _e(_one_line(decoded, PREVIEW))
        raw = text if text is not None else _hex_dump(m.payload)
        body = _e(raw if len(raw) <= FULL_TEXT else raw[:FULL_TEXT] + f"\n… ({m.size} bytes)")
        kind = "decoded " + ("text" if m.opcode is Opcode.TEXT else "binary")
    elif text is not None:
        preview = _e(_one_line(text, PREVIEW))
        full = text if len(text) <= FULL_TEXT else text[:FULL_TEXT] + f"\n… ({m.size} bytes)"
        body = _e(full)
        kind = "text"
    else:
        head = m.payload[:16].hex(" ") + (" …" if m.size > 16 else "")
        preview = _e(("(not UTF-8) " if m.opcode is Opcode.TEXT else "") + head)
        body = _e(_hex_dump(m.payload))
        kind = "binary" if m.opcode is Opcode.BINARY else "text not-utf8"
    direction = "c2s" if client else "s2c"
    return (
        f'<li class="row message {direction} {kind}" data-index="{index}" '
        f'data-from="{m.side.value}" data-t="{m.t:.6f}">'
        f'<span class="time">{m.t:.3f}s</span><div class="lane"><div class="arrow">'
        f'<details><summary><span class="opcode">{m.opcode.value}</span> '
        f'<span class="preview">{preview}</span> <span class="size">{m.size} B</span>'
        f'</summary><pre class="full">{body}</pre></details></div>'
    )


def _close_html(c: Close) -> str:
    words = close_words(c)
    return (
        f'<li class="row close" data-t="{c.t:.6f}" data-code="{"" if c.code is None else c.code}">'
        f'<span class="time">{c.t:.3f}s</span><div class="lane">✕ {_e(words)}'
    )


def _note_html(n: Note) -> str:
    t = "" if n.t is None else f"{n.t:.3f}s"
    return f'<li class="row note"><span class="time">{t}</span><div class="lane"># {_e(n.text)}'


def _fault_time(f: Mapping[str, object]) -> float | None:
    """A fault's ``t`` (seconds since its upgrade), or None when the report gives none
    that is a time: a report is a file, and JSON numbers have no limit (``1e400``-sized
    integers, NaN)."""
    t = f.get("t")
    if type(t) is not int and type(t) is not float:
        return None
    try:
        when = float(t)
    except OverflowError:
        return None
    return when if math.isfinite(when) and when >= 0 else None


def _fault_text(f: Mapping[str, object]) -> str:
    at = _fault_time(f)
    when = "" if at is None else f" at {f.get('t')} s"
    return f"⚡ fault {f.get('spec')}{when}: {f.get('what')}; then {f.get('then')}"


def _fault_html(f: Mapping[str, object]) -> str:
    t = _fault_time(f)
    shown = "" if t is None else f"{t:.3f}s"
    return (
        f'<li class="row fault"><span class="time">{shown}</span><div class="lane">'
        f"{_e(_fault_text(f))}"
    )


def _violations_html(violations: Iterable[Violation]) -> str:
    items = [
        f'<li class="{_e(v.severity.value)}" data-rule="{_e(v.rule)}">'
        f'<span class="rule">{_e(v.rule)}</span> {_e(v.message)}</li>'
        for v in violations
    ]
    return f'<ul class="violations">{"".join(items)}</ul>' if items else ""


def _attach(conn: _Conn, v: Violation) -> None:
    """Put a violation on the row it is about (same time), or on the connection."""
    if v.t is None or not conn.rows:
        conn.violations.append(v)
        return
    assert v.t is not None
    t = v.t

    def score(row: _Row) -> tuple[float, int]:
        # Nearest in time; on a tie prefer what the client did, then the close.
        rank = 0 if row.side is Side.CLIENT else 1 if row.kind == "close" else 2
        return (abs((row.t if row.t is not None else float("inf")) - t), rank)

    best = min(conn.rows, key=score)
    if best.t is None or abs(best.t - t) > 1e-3:
        conn.violations.append(v)
    else:
        best.violations.append(v)


def _open_html(c: _Conn) -> str:
    o = c.open
    if o.accepted:
        status = f'<span class="status-ok">{o.status} {_e(o.reason)}</span>'
        if o.subprotocol:
            status += f" · subprotocol {_e(o.subprotocol)}"
    else:
        status = f'<span class="status-refused">{o.status} {_e(o.reason)} (refused)</span>'
    counts = f"{c.messages} messages"
    if c.left_out:
        counts += f" ({c.left_out} not drawn)"
    parts = [f"started {iso_utc(o.started_at)}", counts]
    if o.subprotocols:
        parts.append("offered " + _e(", ".join(o.subprotocols)))
    if not o.accepted and o.body:
        parts.append(f"body: {_e(_one_line(o.body.decode('utf-8', 'replace'), 200))}")
    return (
        f"<h2>#{o.conn} {_e(o.method)} {_e(o.url)} → {status}</h2>"
        f'<p class="meta">{" · ".join(parts)}</p>'
    )


def render_html(
    reader: CassetteReader,
    out: IO[str],
    violations: Iterable[Violation] = (),
    *,
    max_messages: int = MAX_MESSAGES,
    protocols: ProtocolView | None = None,
    faults: Iterable[Mapping[str, object]] = (),
) -> ViewResult:
    """Write the HTML page of a cassette. Raises CassetteError for a corrupt one.

    With ``protocols`` (:func:`wstape.tools.decoded.protocol_view`), a message of a known
    protocol is summarised decoded, its raw payload one click away. ``faults`` are the
    ``faults`` of a replay report: each a marked row on its connection's timeline, placed
    by its time since the upgrade (replay time: at ``--speed 0`` that is early), or at
    the top for a fault on a handshake."""
    result = ViewResult()
    conns: list[_Conn] = []
    cassette_notes: list[str] = []
    tracker = ConnectionTracker()
    for record in reader:
        slot = tracker.route(record)
        if slot >= 0:
            _collect(record, slot, conns, max_messages, result, protocols)
        elif slot == CASSETTE and isinstance(record, Note):
            cassette_notes.append(record.text)
    result.strays = tracker.strays
    by_id: dict[int, list[_Conn]] = {}
    for c in conns:
        by_id.setdefault(c.open.conn, []).append(c)
    loose_faults: list[Mapping[str, object]] = []
    for f in faults:
        result.faults += 1
        conn = f.get("conn")
        targets = by_id.get(conn) if isinstance(conn, int) else None
        if not targets:
            loose_faults.append(f)
            continue
        rows = targets[-1].rows
        t = _fault_time(f)
        when = -1.0 if t is None else t
        at = next((i for i, r in enumerate(rows) if r.t is not None and r.t > when), len(rows))
        rows.insert(at, _Row("fault", t, _fault_html(f)))
    loose: list[Violation] = []
    for v in violations:
        result.violations += 1
        targets = by_id.get(v.conn) if v.conn is not None else None
        if targets:
            _attach(targets[-1], v)
        else:
            loose.append(v)

    header = reader.header
    title = reader.path.name
    out.write(
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · wstape</title><style>{_STYLE}</style></head><body>"
        f'<header class="page"><h1>{_e(title)}</h1>'
        f'<p class="meta">written by {_e(header.creator)} · started '
        f"{iso_utc(header.started_at)} · {len(conns)} connections · "
        f'<span class="violation-count">{result.violations}</span> violations</p>'
    )
    for text in cassette_notes:
        out.write(f'<p class="meta note"># {_e(text)}</p>')
    out.write(_violations_html(loose))
    for f in loose_faults:
        out.write(f'<p class="fault">{_e(_fault_text(f))}</p>')
    out.write("</header><main>")
    for c in conns:
        has = bool(c.violations or any(r.violations for r in c.rows))
        out.write(
            f'<section class="connection{" has-violations" if has else ""}" '
            f'id="conn-{c.open.conn}" data-conn="{c.open.conn}">'
        )
        out.write(_open_html(c))
        out.write(_violations_html(c.violations))
        if c.open.accepted or c.rows:
            out.write(
                '<div class="lanes"><span></span><div class="names">'
                '<span class="client">client</span><span class="server">server</span>'
                '</div></div><ol class="diagram">'
            )
            for row in c.rows:
                classes = ""
                if row.violations:
                    warn_only = all(v.severity.value != "error" for v in row.violations)
                    classes = " violation warn-only" if warn_only else " violation"
                text = row.html + _violations_html(row.violations) + "</div></li>"
                if classes:
                    text = text.replace('class="row ', f'class="row{classes} ', 1)
                out.write(text)
            if c.left_out:
                out.write(
                    '<li class="row more"><span class="time"></span><div class="lane">… '
                    f"{c.left_out} more messages not drawn (--max-messages)</div></li>"
                )
            out.write("</ol>")
        out.write("</section>")
        result.connections += 1
    out.write("</main></body></html>\n")
    return result


def _collect(
    record: Record,
    slot: int,
    conns: list[_Conn],
    max_messages: int,
    result: ViewResult,
    protocols: ProtocolView | None = None,
) -> None:
    if isinstance(record, Open):
        conns.append(_Conn(open=record))
        return
    owner = conns[slot]
    if isinstance(record, Message):
        owner.messages += 1
        if owner.messages > max_messages:
            owner.left_out += 1
            result.left_out += 1
            return
        result.messages += 1
        decoded = protocols.line(record) if protocols is not None else None
        html_row = _message_html(record, owner.messages, decoded)
        owner.rows.append(_Row("message", record.t, html_row, record.side))
    elif isinstance(record, Close):
        owner.close = record
        owner.rows.append(_Row("close", record.t, _close_html(record)))
    else:
        owner.rows.append(_Row("note", record.t, _note_html(record)))
