"""One line per record, as ``wstape show`` prints it and ``wstape record -v`` logs it.

A line is a list of (text, rich style) pieces: styled on a terminal, joined when piped.
Every piece is escaped (:func:`wstape.core.terminal.safe`) so recorded text cannot drive
the terminal.
"""

from __future__ import annotations

from wstape.core.closecodes import describe
from wstape.core.model import Close, Message, Opcode, Open, Record, Side
from wstape.core.terminal import safe
from wstape.interchange.jsonl import iso_utc
from wstape.tools.decoded import ProtocolView

PREVIEW_CHARS = 100
HEX_BYTES = 16

Segments = list[tuple[str, str]]
"""A line as (text, rich style) pieces: styled on a terminal, joined when piped."""


def text_preview(text: str, width: int = PREVIEW_CHARS) -> str:
    """One line of at most ``width`` characters (control and bidi characters escaped)."""
    line = safe(text)
    return line if len(line) <= width else line[:width] + "…"


def hex_preview(data: bytes, count: int = HEX_BYTES) -> str:
    """``00 01 02 … |...|``: the first ``count`` bytes in hex and as ASCII."""
    head = data[:count]
    ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in head)
    more = " …" if len(data) > count else ""
    return f"{head.hex(' ')}{more} |{ascii_}|" if head else "(empty)"


def _when(t: float | None) -> str:
    return " " * 11 if t is None else f"{t:10.3f}s"


def close_words(c: Close) -> str:
    if c.by is None and c.code is None:
        return "recording stopped (no close seen)"
    who = "close" if c.by is None else f"closed by {c.by.value}"
    if c.code is None:
        what = "no code"
    else:
        what = describe(c.code, c.reason)
    if c.on_wire:
        wire = ""
    elif c.code == 1005 and c.by is not None:  # (an empty Close frame: no code to carry)
        wire = " (an empty Close frame)"
    else:
        wire = " (no Close frame on the wire)"
    return f"{who}: {what}{wire}"


def record_segments(record: Record, view: ProtocolView | None = None) -> Segments:
    """The ``wstape show`` line of one record (a message decoded when ``view`` can)."""
    if isinstance(record, Message):
        client = record.side is Side.CLIENT
        arrow = "→" if client else "←"
        decoded = view.line(record) if view is not None else None
        if decoded is not None:
            body = text_preview(decoded)
        elif record.opcode is Opcode.TEXT:
            text = record.text()
            body = (
                text_preview(text) or "(empty)"
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
            (body, "" if record.opcode is Opcode.TEXT or decoded else "yellow"),
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
            (close_words(record), "green" if good else "red"),
        ]
    conn = "#-   " if record.conn is None else f"#{record.conn:<4}"
    return [(conn, "dim"), (_when(record.t), "dim"), ("  # ", "dim"), (record.text, "italic")]


def header_segments(record: Open) -> list[Segments]:
    """``show --headers``: one line per handshake header, request (>) then response (<)."""
    indent = f"#{record.conn:<4}" + " " * 11
    lines: list[Segments] = []
    for mark, pairs in ((">", record.request_headers), ("<", record.response_headers)):
        for name, value in pairs:
            text = f"{name.decode('latin-1')}: {value.decode('utf-8', 'replace')}"
            lines.append([(indent, "dim"), (f"  {mark} ", "dim"), (text, "")])
    return lines


def plain(segments: Segments) -> str:
    """The line as text, every piece escaped."""
    return "".join(safe(text) for text, _ in segments)


def escaped(segments: Segments) -> Segments:
    return [(safe(text), style) for text, style in segments]


__all__ = [
    "HEX_BYTES",
    "PREVIEW_CHARS",
    "Segments",
    "close_words",
    "escaped",
    "header_segments",
    "hex_preview",
    "plain",
    "record_segments",
    "text_preview",
]
