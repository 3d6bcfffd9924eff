"""The stable machine-readable view of a cassette: one JSON object per record.

The keys are a public interface (docs/cassette-format.md, "JSONL export"); scripts and
acceptance checks compare against them, so change them only with a deprecation.

``exact=True`` (``wstape export --format jsonl --exact``) adds what those keys leave out,
so that ``wstape import`` gives back the same records: a first ``{"type": "header"}``
line, the notes, and a ``"_wstape"`` object on the lines that need one (exact times, the
connection's scheme, host, port and target, HTTP version, offered extensions, client
address, TLS facts, reason, body, and header bytes that are not UTF-8). Without it the
keys are exactly the documented ones.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, cast

from wstape.core.connections import MessageFields
from wstape.core.model import (
    Close,
    ConnectionSummary,
    Header,
    Headers,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
    b64,
    decode_header_value,
    headers_as_text,
)
from wstape.interchange.fields import EXT


def iso_utc(epoch: float) -> str:
    """``2026-11-25T07:22:49.123456Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def utf8(data: bytes) -> str | None:
    """``data`` decoded as UTF-8, or None when it is not valid UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def headers_are_text(headers: Headers) -> bool:
    """True when every header name and value is valid UTF-8 (text views keep them)."""
    return all(utf8(k) is not None and utf8(v) is not None for k, v in headers)


def raw_headers(headers: Headers) -> list[list[str]]:
    """Headers byte for byte: ``[[base64 name, base64 value], ...]``."""
    return [[b64(k), b64(v)] for k, v in headers]


def _t(t: float) -> float:
    return round(t, 6)


def record_to_json(record: Record, *, exact: bool = False) -> dict[str, Any] | None:
    """The export object of one record, or None for records the export leaves out (notes).

    ``exact`` adds a ``"_wstape"`` object where the documented keys lose something.
    """
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
        if exact and _t(record.t) != record.t:
            out[EXT] = {"t": record.t}
        return out
    if isinstance(record, Open):
        out = {
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
        if exact:
            out[EXT] = _open_exact(record)
        return out
    if isinstance(record, Close):
        out = {"type": "close", "conn": record.conn, "t": _t(record.t), **close_fields(record)}
        if exact and _t(record.t) != record.t:
            out[EXT] = {"t": record.t}
        return out
    if exact:
        return note_to_json(record)
    return None


def _open_exact(o: Open) -> dict[str, Any]:
    ext: dict[str, Any] = {
        "started_at": o.started_at,
        "scheme": o.scheme,
        "host": o.host,
        "port": o.port,
        "target": o.target,
        "http_version": o.http_version,
        "extensions": list(o.extensions),
        "client": o.client,
        "tls": None
        if o.tls is None
        else {"version": o.tls.version, "sni": o.tls.sni, "alpn": o.tls.alpn},
        "reason": o.reason,
        "body": b64(o.body),
    }
    if not headers_are_text(o.request_headers):
        ext["request_headers"] = raw_headers(o.request_headers)
    if not headers_are_text(o.response_headers):
        ext["response_headers"] = raw_headers(o.response_headers)
    return ext


def header_to_json(header: Header) -> dict[str, Any]:
    """The first line of an exact export: the cassette header."""
    return {
        "type": "header",
        "creator": header.creator,
        "started_at": iso_utc(header.started_at),
        EXT: {"started_at": header.started_at},
    }


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


def iter_jsonl(
    records: Iterable[Record | MessageFields],
    *,
    notes: bool = False,
    exact: bool = False,
    header: Header | None = None,
) -> Iterator[str]:
    """Yield one JSON line (without newline) per exported record.

    ``notes`` includes the notes; ``exact`` includes them too, and the ``header`` line
    first when one is given. A message may come as its fields (the reader's fast pass).
    """
    if exact and header is not None:
        yield _dumps(header_to_json(header))
    for record in records:
        line = _line(record, notes, exact)
        if line is not None:
            yield one_line(line)


def _line(record: Record | MessageFields, notes: bool, exact: bool) -> str | None:
    if isinstance(record, tuple):
        line = _message_line(record, exact)
        if line is not None:
            return line
        one: Record = Message(*record)
    else:
        one = record
    if exact:
        obj = record_to_json(one, exact=True)
    elif notes and isinstance(one, Note):
        obj = note_to_json(one)
    else:
        if type(one) is Open:
            line = _open_line(one)
        elif type(one) is Close:
            line = _close_line(one)
        else:
            line = None
        if line is not None:
            return one_line(line)
        obj = record_to_json(one)
    return None if obj is None else _dumps(obj)


def _open_line(o: Open) -> str | None:
    """``_encode(record_to_json(o))``, built as one string when its values are of the
    types a reader gives (None otherwise: the encoder's turn)."""
    conn, status, method, offered, chosen = (
        o.conn,
        o.status,
        o.method,
        o.subprotocols,
        o.subprotocol,
    )
    if (
        type(conn) is not int
        or type(status) is not int
        or type(method) is not str
        or type(offered) is not tuple
        or not set(map(type, offered)) <= {str}
        or not (chosen is None or type(chosen) is str)
    ):
        return None
    request, response = _headers_json(o.request_headers), _headers_json(o.response_headers)
    if request is None or response is None:
        return None
    return (
        f'{{"type":"connection","conn":{conn},"url":{quote(o.url)},"method":{quote(method)},'
        f'"status":{status},"subprotocols_offered":[{",".join(map(quote, offered))}],'
        f'"subprotocol":{"null" if chosen is None else quote(chosen)},'
        f'"request_headers":{request},"response_headers":{response},'
        f'"started_at":{quote(iso_utc(o.started_at))}}}'
    )


_HEADER_TEXTS: dict[tuple[bytes, bytes], str] = {}
"""Each (name, value) header's ``[name, value]`` as text, encoded (bounded; short ones:
the same few headers are in every connection)."""
_HEADER_CACHE = 1024
"""Headers :data:`_HEADER_TEXTS` holds at most (then it starts again): a few hundred KB,
though headers such as Sec-WebSocket-Key differ in every connection and fill it."""


def _headers_json(headers: Headers) -> str | None:
    """``_encode(headers_as_text(headers))``, each header's text made once (cached), or
    None for headers that are not pairs of bytes. (A header equal to a cached one is a
    pair of bytes equal to it: a bytearray is unhashable, a list too.)"""
    try:
        texts = list(map(_HEADER_TEXTS.get, headers))
    except TypeError:
        return None
    if None in texts:
        pairs = zip(headers, texts, strict=True)
        texts = [_header_json(pair) if t is None else t for pair, t in pairs]
        if None in texts:
            return None
    return "[" + ",".join(cast(list[str], texts)) + "]"


def _header_json(pair: tuple[bytes, bytes]) -> str | None:
    """One header's ``[name, value]`` as text, encoded (``_encode`` of a list of two
    strings), cached when short; None when it is not a pair of bytes."""
    if not (
        type(pair) is tuple and len(pair) == 2 and type(pair[0]) is bytes and type(pair[1]) is bytes
    ):
        return None
    text = f"[{quote(decode_header_value(pair[0]))},{quote(decode_header_value(pair[1]))}]"
    if len(text) <= 256:
        if len(_HEADER_TEXTS) >= _HEADER_CACHE:
            _HEADER_TEXTS.clear()
        _HEADER_TEXTS[pair] = text
    return text


def _close_line(close: Close) -> str | None:
    """``_encode(record_to_json(close))``, built as one string when its conn is an int and
    its time a finite float."""
    conn, t = close.conn, plain_float(_t(close.t))
    if t is None or type(conn) is not int:
        return None
    return f'{{"type":"close","conn":{conn},"t":{t},' + close_json(close, compact=True)[1:]


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """``text`` (JSON made with ``ensure_ascii=False``) with the characters that
    ``str.splitlines`` and other line readers take for a line break besides the newline
    (NEL U+0085, U+2028, U+2029; JSON leaves them raw inside strings) written as
    ``\\uXXXX`` escapes: the same JSON value, and one line stays one line. Cheap when
    there are none (an ASCII or Latin-1-free text is not even scanned for U+2028)."""
    if "\x85" in text or "\u2028" in text or "\u2029" in text:
        return text.translate(_LINE_BREAKS)
    return text


def _dumps(obj: object) -> str:
    return one_line(_encode(obj))


def _message_line(fields: MessageFields, exact: bool) -> str | None:
    """``_dumps(record_to_json(Message(*fields), exact=exact))``, built as one string (a
    message line is most of an export); None where an exact line needs more."""
    conn, t, side, opcode, payload = fields
    rounded = round(t, 6)
    if exact and rounded != t:
        return None
    if opcode is Opcode.TEXT:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return (
                f'{{"type":"message","conn":{conn},"t":{_float(rounded)},"from":"{side.value}",'
                f'"opcode":"text","text":{quote(text)},"size":{len(payload)}}}'
            )
    return (
        f'{{"type":"message","conn":{conn},"t":{_float(rounded)},"from":"{side.value}",'
        f'"opcode":"{opcode.value}","base64":"{b64(payload)}","size":{len(payload)}}}'
    )


def write_jsonl(
    records: Iterable[Record | MessageFields],
    out: IO[str],
    *,
    notes: bool = False,
    exact: bool = False,
    header: Header | None = None,
) -> int:
    """Write the JSONL export to ``out``; returns the number of lines."""
    count = 0
    lines: list[str] = []
    size = 0
    if exact and header is not None:
        lines.append(_dumps(header_to_json(header)))
    for record in records:
        line = _message_line(record, exact) if isinstance(record, tuple) else None
        if line is None:
            line = _line(record, notes, exact)
            if line is None:
                continue
        lines.append(line)
        size += len(line)
        if size >= _BATCH_CHARS or len(lines) >= 512:
            lines.append("")  # (the last line's newline)
            out.write(one_line("\n".join(lines)))  # (a message line's text is raw)
            lines.pop()
            count += len(lines)
            lines.clear()
            size = 0
    if lines:
        out.write(one_line("\n".join(lines)) + "\n")
        count += len(lines)
    return count


_BATCH_CHARS = 1 << 20
"""Lines are written a batch at a time: up to 512 of them, or this many characters."""


def summarize(records: Iterable[Record]) -> list[ConnectionSummary]:
    """Per-connection totals in the order connections opened, streaming the records."""
    summaries: dict[int, ConnectionSummary] = {}
    for record in records:
        if isinstance(record, Open):
            summaries[record.conn] = ConnectionSummary(open=record)
        elif record.conn is not None and record.conn in summaries:
            summaries[record.conn].add(record)
    return list(summaries.values())


spaced = json.JSONEncoder(ensure_ascii=False).encode
"""How ``ls --json`` and ``stats --json`` encode an object (``json.dumps``'s separators,
raw non-ASCII)."""

quote = json.encoder.encode_basestring
"""What the encoder writes for a str (``ensure_ascii=False``: the function it calls)."""
_float = float.__repr__
_INF = float("inf")


def plain_float(x: object) -> str | None:
    """How the JSON encoder writes ``x`` when it is a finite float (``float.__repr__``),
    else None: the fast paths below build their text only from such values."""
    if type(x) is float and -_INF < x < _INF:
        return _float(x)
    return None


_CLOSE_TEXTS: dict[tuple[bool, Side | None, int | None, str, bool], str] = {}
"""close_json's texts, by separators and close (bounded)."""


def close_json(close: Close | None, *, compact: bool = False) -> str:
    """``close_fields(close)`` (null for None) encoded with the JSONL export's separators
    (``compact``) or ``json.dumps``'s. A cassette's closes repeat a few (by, code,
    reason, on_wire): each is encoded once, if its fields are of the types a reader
    gives (else every time)."""
    if close is None:
        return "null"
    by, code, reason, on_wire = close.by, close.code, close.reason, close.on_wire
    if not (
        (by is None or type(by) is Side)
        and (code is None or type(code) is int)
        and type(reason) is str
        and (on_wire is True or on_wire is False)
    ):
        return (_encode if compact else spaced)(close_fields(close))
    key = (compact, by, code, reason, on_wire)
    text = _CLOSE_TEXTS.get(key)
    if text is None:
        text = (_encode if compact else spaced)(close_fields(close))
        if len(reason) <= 256:  # (a longer one is made every time: the cache stays small)
            if len(_CLOSE_TEXTS) >= 4096:
                _CLOSE_TEXTS.clear()
            _CLOSE_TEXTS[key] = text
    return text


def summary_json(s: ConnectionSummary) -> str:
    """One object of ``ls --json``, encoded: ``spaced(summary_to_json(s))``, built as one
    string when each value is of the type a reader gives (an int an int, a float a
    finite float), else by the encoder."""
    o = s.open
    conn, status, sub = o.conn, o.status, o.subprotocol
    mc, ms, bc, bs = s.messages_client, s.messages_server, s.bytes_client, s.bytes_server
    duration = plain_float(_t(s.duration))
    if (
        duration is None
        or type(conn) is not int
        or type(status) is not int
        or not (sub is None or type(sub) is str)
        or not (type(mc) is type(ms) is type(bc) is type(bs) is int)
    ):
        return spaced(summary_to_json(s))
    return (
        f'{{"conn": {conn}, "url": {quote(o.url)}, "status": {status}, '
        f'"subprotocol": {"null" if sub is None else quote(sub)}, '
        f'"started_at": {quote(iso_utc(o.started_at))}, '
        f'"messages": {{"client": {mc}, "server": {ms}}}, '
        f'"bytes": {{"client": {bc}, "server": {bs}}}, '
        f'"duration": {duration}, "close": {close_json(s.close)}}}'
    )


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
