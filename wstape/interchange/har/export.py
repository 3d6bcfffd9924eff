"""HAR 1.2 export, with Chrome's ``_webSocketMessages`` and wstape's ``_wstape`` fields.

:func:`export_har` writes one HAR entry per recorded connection, shaped as Chrome
DevTools writes a WebSocket: the upgrade request and response, ``"_resourceType":
"websocket"`` and ``_webSocketMessages`` (``{"type": "send"|"receive", "time": <epoch
seconds>, "opcode": 1|2, "data": <text, or base64 for binary>}``). Everything a HAR has no
field for (close code, reason and who closed, connection id, offered subprotocols, TLS
facts, exact times, notes, header bytes that are not UTF-8) goes into ``_wstape`` objects,
so importing the export gives back the same records.

It streams: a first pass over the cassette collects each connection's open, close and
notes (small); a second pass, resumed at the first connection's open, writes the messages
of up to ``SPOOL_GROUP`` connections at a time to temporary files, one per connection, and
the entries are then written from them in order. Memory does not grow with the number of
messages, and a cassette with many interleaved connections is read about once per group.
The field mapping is documented in docs/interchange.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import parse_qsl

from wstape.cassettes.reader import CassetteReader
from wstape.core.model import (
    Close,
    Headers,
    Message,
    Note,
    Opcode,
    Open,
    Side,
    b64,
    decode_header_value,
)
from wstape.core.version import __version__
from wstape.interchange.fields import EXT, EXT_VERSION
from wstape.interchange.jsonl import close_fields, headers_are_text, iso_utc, raw_headers, utf8

SPOOL_GROUP = 128
"""Connections whose messages one scan of the cassette spools to temporary files."""


@dataclass
class HarExportResult:
    """What :func:`export_har` wrote and what it had to leave out."""

    connections: int = 0
    messages: int = 0
    orphans: int = 0
    """Records of a connection whose ``open`` record is not in the cassette (left out)."""
    extra_closes: int = 0
    """Second and later close records of one connection (only the last is kept)."""
    truncated_at: int | None = None
    ids: set[int] = field(default_factory=set)
    """The ids of the connections written (what ``--conn`` asked for and found)."""


@dataclass
class _Conn:
    open: Open
    offset: int
    index: int
    last_offset: int
    messages: int = 0
    last_t: float = 0.0
    close: Close | None = None
    close_after: int = 0
    notes: list[tuple[int, Note]] = field(default_factory=list)
    """``(records before it, note)``: records counts this connection's messages and close."""

    @property
    def seen(self) -> int:
        return self.messages + (1 if self.close is not None else 0)


def _har_headers(headers: Headers) -> list[dict[str, str]]:
    return [{"name": decode_header_value(k), "value": decode_header_value(v)} for k, v in headers]


def _close_json(close: Close) -> dict[str, Any]:
    return {"t": close.t, **close_fields(close)}


def _entry(conn: _Conn) -> dict[str, Any]:
    o = conn.open
    query = [{"name": k, "value": v} for k, v in parse_qsl(o.query, keep_blank_values=True)]
    content: dict[str, Any] = {
        "size": len(o.body),
        "mimeType": o.response_header("content-type") or "x-unknown",
    }
    if o.body:
        text = utf8(o.body)
        if text is None:
            content["text"] = b64(o.body)
            content["encoding"] = "base64"
        else:
            content["text"] = text
    ext: dict[str, Any] = {
        "conn": o.conn,
        "started_at": o.started_at,
        "scheme": o.scheme,
        "host": o.host,
        "port": o.port,
        "target": o.target,
        "subprotocols": list(o.subprotocols),
        "extensions": list(o.extensions),
        "subprotocol": o.subprotocol,
        "client": o.client,
        "tls": None
        if o.tls is None
        else {"version": o.tls.version, "sni": o.tls.sni, "alpn": o.tls.alpn},
        "close": None
        if conn.close is None
        else {**_close_json(conn.close), "after": conn.close_after},
        "notes": [{"t": n.t, "text": n.text, "after": after} for after, n in conn.notes],
    }
    if not headers_are_text(o.request_headers):
        ext["request_headers"] = raw_headers(o.request_headers)
    if not headers_are_text(o.response_headers):
        ext["response_headers"] = raw_headers(o.response_headers)
    end = max(conn.last_t, 0.0)
    entry: dict[str, Any] = {
        "startedDateTime": iso_utc(o.started_at),
        "time": round(end * 1000, 3),
        "request": {
            "method": o.method,
            "url": o.url,
            "httpVersion": o.http_version,
            "cookies": [],
            "headers": _har_headers(o.request_headers),
            "queryString": query,
            "headersSize": -1,
            "bodySize": 0,
        },
        "response": {
            "status": o.status,
            "statusText": o.reason,
            "httpVersion": o.http_version,
            "cookies": [],
            "headers": _har_headers(o.response_headers),
            "content": content,
            "redirectURL": o.response_header("location") or "",
            "headersSize": -1,
            "bodySize": len(o.body),
        },
        "cache": {},
        "timings": {
            "blocked": -1,
            "dns": -1,
            "connect": -1,
            "ssl": -1,
            "send": 0,
            "wait": 0,
            "receive": 0,
        },
        "_resourceType": "websocket",
        EXT: ext,
    }
    return entry


def har_message(message: Message, started_at: float) -> dict[str, Any]:
    """One ``_webSocketMessages`` item (Chrome's shape plus ``_wstape.t``)."""
    ext: dict[str, Any] = {"t": message.t}
    if message.opcode is Opcode.TEXT:
        text = utf8(message.payload)
        if text is None:
            # Chrome's text frames carry text; keep invalid UTF-8 byte for byte anyway.
            text = b64(message.payload)
            ext["encoding"] = "base64"
        data = text
        opcode = 1
    else:
        data = b64(message.payload)
        opcode = 2
    return {
        "type": "send" if message.side is Side.CLIENT else "receive",
        "time": started_at + message.t,
        "opcode": opcode,
        "data": data,
        EXT: ext,
    }


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False)


def _spool_messages(reader: CassetteReader, group: list[_Conn]) -> dict[int, tuple[IO[str], int]]:
    """One scan over the part of the cassette where ``group``'s connections live, writing
    each connection's HAR messages to a temporary file of its own."""
    spools: dict[int, tuple[IO[str], int]] = {}
    busy = [c for c in group if c.messages]
    if not busy:
        return spools
    by_offset = {c.offset: c for c in busy}
    first = min(busy, key=lambda c: c.offset)
    end = max(c.last_offset for c in busy)
    active: dict[int, _Conn | None] = {}
    for _, offset, record in reader.iter_with_offsets(start=first.offset, index=first.index):
        if offset > end:
            break
        if isinstance(record, Open):
            # an id can be reused: records belong to the latest open with their id
            active[record.conn] = by_offset.get(offset)
        elif isinstance(record, Message):
            conn = active.get(record.conn)
            if conn is None or offset > conn.last_offset:
                continue
            spool, count = spools.get(conn.offset) or (
                tempfile.TemporaryFile("w+", encoding="utf-8"),
                0,
            )
            spool.write("\n" if count == 0 else ",\n")
            spool.write(_dumps(har_message(record, conn.open.started_at)))
            spools[conn.offset] = (spool, count + 1)
    return spools


def _write_group(
    reader: CassetteReader,
    group: list[_Conn],
    out: IO[str],
    result: HarExportResult,
    *,
    first: bool,
) -> None:
    spools = _spool_messages(reader, group)
    try:
        for i, conn in enumerate(group):
            out.write("\n" if first and i == 0 else ",\n")
            entry = _dumps(_entry(conn))
            if not conn.open.accepted and conn.messages == 0:
                out.write(entry)
            else:
                out.write(entry[:-1])
                out.write(', "_webSocketMessages": [')
                spooled = spools.get(conn.offset)
                if spooled is not None:
                    spool, count = spooled
                    spool.seek(0)
                    shutil.copyfileobj(spool, out)
                    result.messages += count
                out.write("]}")
            result.connections += 1
    finally:
        for spool, _ in spools.values():
            spool.close()


@dataclass
class _Groups:
    """A cassette's records grouped by connection (the first pass of the export)."""

    conns: list[_Conn] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    """Notes about the whole cassette, as ``log._wstape.notes`` items."""


def _group(
    reader: CassetteReader, result: HarExportResult, only: Collection[int] | None = None
) -> _Groups:
    """Each connection's open, close, notes and message count, in the order they opened
    (only the connections ``only`` names, when given).

    Records of a connection whose open is not in the cassette are counted in
    ``result.orphans``; the second and later closes of one connection in
    ``result.extra_closes`` (the last is kept).
    """
    groups = _Groups()
    current: dict[int, _Conn] = {}
    left_out: set[int] = set()
    for index, offset, record in reader.iter_with_offsets():
        if only is not None and record.conn is not None and record.conn not in only:
            left_out.add(record.conn)
            continue
        if isinstance(record, Open):
            conn = _Conn(open=record, offset=offset, index=index, last_offset=offset)
            current[record.conn] = conn
            groups.conns.append(conn)
            result.ids.add(record.conn)
            continue
        if isinstance(record, Note) and record.conn is None:
            groups.notes.append({"t": record.t, "text": record.text, "after": len(groups.conns)})
            continue
        owner = current.get(record.conn) if record.conn is not None else None
        if owner is None:
            result.orphans += 1
            continue
        owner.last_offset = offset
        if isinstance(record, Message):
            owner.messages += 1
            owner.last_t = max(owner.last_t, record.t)
        elif isinstance(record, Close):
            if owner.close is not None:
                result.extra_closes += 1
            owner.close = record
            owner.close_after = owner.messages
            owner.last_t = max(owner.last_t, record.t)
        else:
            owner.notes.append((owner.seen, record))
    return groups


def export_har(
    reader: CassetteReader, out: IO[str], *, only: Collection[int] | None = None
) -> HarExportResult:
    """Write the cassette as a HAR 1.2 document to ``out``, streaming (only the
    connections ``only`` names, when given).

    Raises CassetteError when the cassette is corrupt; a truncated tail is left out and
    reported in ``truncated_at`` when the reader allows truncation.
    """
    result = HarExportResult()
    groups = _group(reader, result, only)
    truncated_at = reader.truncated_at
    header = reader.header
    log_head = {
        "version": "1.2",
        "creator": {"name": "wstape", "version": __version__},
        "pages": [],
        EXT: {
            "version": EXT_VERSION,
            "creator": header.creator,
            "started_at": header.started_at,
            "notes": groups.notes,
        },
    }
    head = _dumps({"log": log_head})
    out.write(head[:-2])  # everything but the closing braces of "log" and the document
    out.write(', "entries": [')
    conns = groups.conns
    for g in range(0, len(conns), SPOOL_GROUP):
        _write_group(reader, conns[g : g + SPOOL_GROUP], out, result, first=g == 0)
    out.write("\n]}}\n")
    result.truncated_at = truncated_at
    # The second pass stops before the tail; report what the full pass found.
    reader.truncated_at = truncated_at
    return result


__all__ = ["EXT", "EXT_VERSION", "SPOOL_GROUP", "HarExportResult", "export_har", "har_message"]
