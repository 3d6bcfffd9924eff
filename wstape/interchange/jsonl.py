"""The stable machine-readable view of a cassette: one JSON object per record.

The keys are a public interface (docs/cassette-format.md, "JSONL export"); scripts and
acceptance checks compare against them, so change them only with a deprecation.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from wstape.core.model import (
    Close,
    ConnectionSummary,
    Message,
    Note,
    Open,
    Record,
    b64,
    headers_as_text,
)


def iso_utc(epoch: float) -> str:
    """``2026-11-25T07:22:49.123456Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _t(t: float) -> float:
    return round(t, 6)


def record_to_json(record: Record) -> dict[str, Any] | None:
    """The export object of one record, or None for records the export leaves out (notes)."""
    if isinstance(record, Message):
        out: dict[str, Any] = {
            "type": "message",
            "conn": record.conn,
            "t": _t(record.t),
            "from": record.side.value,
            "opcode": record.opcode.value,
        }
        text = record.text()
        if text is not None:
            out["text"] = text
        else:
            # Binary, or a text message that is not valid UTF-8 (kept byte for byte).
            out["base64"] = b64(record.payload)
        out["size"] = record.size
        return out
    if isinstance(record, Open):
        return {
            "type": "connection",
            "conn": record.conn,
            "url": record.url,
            "method": record.method,
            "status": record.status,
            "subprotocols_offered": list(record.subprotocols),
            "subprotocol": record.subprotocol,
            "request_headers": headers_as_text(record.request_headers),
            "response_headers": headers_as_text(record.response_headers),
            "started_at": iso_utc(record.started_at),
        }
    if isinstance(record, Close):
        return {"type": "close", "conn": record.conn, "t": _t(record.t), **close_fields(record)}
    return None


def close_fields(close: Close) -> dict[str, Any]:
    """How a connection ended, as in every JSON view: ``by``, ``code``, ``reason``, ``on_wire``."""
    return {
        "by": None if close.by is None else close.by.value,
        "code": close.code,
        "reason": close.reason,
        "on_wire": close.on_wire,
    }


def note_to_json(note: Note) -> dict[str, Any]:
    return {"type": "note", "conn": note.conn, "t": note.t, "text": note.text}


def iter_jsonl(records: Iterable[Record], *, notes: bool = False) -> Iterator[str]:
    """Yield one JSON line (without newline) per exported record."""
    for record in records:
        obj = note_to_json(record) if notes and isinstance(record, Note) else record_to_json(record)
        if obj is not None:
            yield json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(records: Iterable[Record], out: IO[str], *, notes: bool = False) -> int:
    """Write the JSONL export to ``out``; returns the number of lines."""
    count = 0
    for line in iter_jsonl(records, notes=notes):
        out.write(line)
        out.write("\n")
        count += 1
    return count


def summarize(records: Iterable[Record]) -> list[ConnectionSummary]:
    """Per-connection totals in the order connections opened, streaming the records."""
    summaries: dict[int, ConnectionSummary] = {}
    for record in records:
        if isinstance(record, Open):
            summaries[record.conn] = ConnectionSummary(open=record)
        elif record.conn is not None and record.conn in summaries:
            summaries[record.conn].add(record)
    return list(summaries.values())


def summary_to_json(s: ConnectionSummary) -> dict[str, Any]:
    """One object of ``wstape ls --json``."""
    close = s.close
    return {
        "conn": s.open.conn,
        "url": s.open.url,
        "status": s.open.status,
        "subprotocol": s.open.subprotocol,
        "started_at": iso_utc(s.open.started_at),
        "messages": {"client": s.messages_client, "server": s.messages_server},
        "bytes": {"client": s.bytes_client, "server": s.bytes_server},
        "duration": _t(s.duration),
        "close": None if close is None else close_fields(close),
    }
