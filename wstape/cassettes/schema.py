"""Cassette records as msgpack maps, and back, with a strict schema check.

The on-disk field names are documented in docs/cassette-format.md; change them only with a
new ``FORMAT_VERSION`` and a ``convert_N_M`` step in compat.py.

The limits below are sized to what a recording can hold. The reader checks them twice:
on the bytes before a record is built (:mod:`wstape.cassettes.scan`, so a hostile record
costs no memory) and on the values (here); the writer runs the same value check on every
record before it packs it, so wstape never writes what it cannot read back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from wstape.core.model import (
    Close,
    Header,
    Headers,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
    TlsInfo,
)

FORMAT_NAME = "wstape-cassette"
FORMAT_VERSION = 3
"""Bumped on every on-disk change; independent of the package version."""

# -- limits ----------------------------------------------------------------------------

MAX_RECORD_BYTES = 256 * 1024 * 1024
"""Largest record, packed (a WebSocket message plus its envelope)."""
MAX_FIELDS = 64
"""Entries of a record map (an ``open`` has 19) or of its ``tls`` map."""
MAX_ITEMS = 4096
"""Items of a list: header pairs, offered subprotocols or extensions."""
MAX_TEXT_BYTES = 1024 * 1024
"""Longest string (UTF-8 bytes), header name or header value; payloads (``message.data``)
and refusal bodies (``open.body``) may be up to ``MAX_RECORD_BYTES``."""
BIG_BINARY_FIELDS = frozenset({"data", "body"})
"""The only fields whose bytes may be longer than ``MAX_TEXT_BYTES``."""
MAX_DEPTH = 3
"""Containers nest at most this deep in a record: the record map, a header list, a pair."""
MAX_TOKENS = 40_000
"""msgpack values in one record (an ``open`` with every list full has about 33,000)."""
MAX_OFFSET = 10 * 365.25 * 86400
"""Largest ``t``: ten years, in seconds since the connection's start."""
MAX_EPOCH = 7_258_118_400.0
"""Dates (``started_at``) are from the epoch (1970) to 2200-01-01, in seconds."""
MAX_CONN = 2**53
"""Largest connection id (every JSON reader holds it exactly)."""


class SchemaError(ValueError):
    """A record does not have the shape of its type."""


T = TypeVar("T")


# -- describing values in error messages -----------------------------------------------


def describe_value(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: its type and at most ``limit`` characters of it.

    Never ``repr`` of a whole container (a hostile record can nest a thousand levels or
    hold a million items): lists and maps are described by their size only.
    """
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return f"bool {value}"
    if isinstance(value, list | tuple):
        return f"array of {len(value)} items"
    if isinstance(value, dict):
        return f"map of {len(value)} entries"
    name = type(value).__name__
    if isinstance(value, int):
        bits = value.bit_length()
        return f"{name} of {bits} bits" if bits > 64 else f"{name} {value}"
    if isinstance(value, float):
        return f"{name} {value!r}"
    if isinstance(value, str | bytes | bytearray):
        head = value[:limit]
        text = repr(head if isinstance(head, str) else bytes(head))
        if len(value) > limit or len(text) > limit:
            unit = "characters" if isinstance(value, str) else "bytes"
            return f"{name} of {len(value)} {unit}: {text[:limit]}..."
        return f"{name} {text}"
    return name


# -- writing ---------------------------------------------------------------------------


def header_to_dict(header: Header) -> dict[str, Any]:
    return {
        "type": "header",
        "format": FORMAT_NAME,
        "version": header.version,
        "creator": header.creator,
        "started_at": header.started_at,
    }


def record_to_dict(record: Record) -> dict[str, Any]:
    if isinstance(record, Message):
        return {
            "type": "message",
            "conn": record.conn,
            "t": record.t,
            "from": record.side.value,
            "opcode": record.opcode.value,
            "data": record.payload,
        }
    if isinstance(record, Open):
        return {
            "type": "open",
            "conn": record.conn,
            "started_at": record.started_at,
            "method": record.method,
            "scheme": record.scheme,
            "host": record.host,
            "port": record.port,
            "target": record.target,
            "http_version": record.http_version,
            "request_headers": [[k, v] for k, v in record.request_headers],
            "subprotocols": list(record.subprotocols),
            "extensions": list(record.extensions),
            "client": record.client,
            "tls": None
            if record.tls is None
            else {"version": record.tls.version, "sni": record.tls.sni, "alpn": record.tls.alpn},
            "status": record.status,
            "reason": record.reason,
            "response_headers": [[k, v] for k, v in record.response_headers],
            "subprotocol": record.subprotocol,
            "body": record.body,
        }
    if isinstance(record, Close):
        return {
            "type": "close",
            "conn": record.conn,
            "t": record.t,
            "by": None if record.by is None else record.by.value,
            "code": record.code,
            "reason": record.reason,
            "on_wire": record.on_wire,
        }
    if isinstance(record, Note):
        return {"type": "note", "conn": record.conn, "t": record.t, "text": record.text}
    raise TypeError(f"not a cassette record: {describe_value(record)}")


# -- reading ---------------------------------------------------------------------------


def _field(d: Mapping[str, Any], name: str, check: Callable[[Any], T], what: str) -> T:
    if name not in d:
        raise SchemaError(f"missing field {name!r}")
    try:
        return check(d[name])
    except SchemaError as e:
        raise SchemaError(f"field {name!r}: {e}") from None
    except (TypeError, ValueError):
        raise SchemaError(f"field {name!r} must be {what}, not {describe_value(d[name])}") from None


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _ranged(low: int, high: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        n = _int(v)
        if not low <= n <= high:
            raise ValueError
        return n

    return check


_conn = _ranged(0, MAX_CONN)
_port = _ranged(0, 65535)
_status = _ranged(100, 999)
_code16 = _ranged(0, 0xFFFF)


def _num(v: Any) -> float:
    # NaN and infinities are valid msgpack floats but no time: arithmetic, rounding and
    # JSON export would fail on them far from here.
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise TypeError
    try:
        n = float(v)
    except OverflowError:
        raise ValueError from None
    if not math.isfinite(n):
        raise ValueError
    return n


def _offset(v: Any) -> float:
    """Seconds since a connection's start: stats, HAR and JSON add them to its date."""
    n = _num(v)
    if not 0.0 <= n <= MAX_OFFSET:
        raise ValueError
    return n


def _opt_offset(v: Any) -> float | None:
    return None if v is None else _offset(v)


def _epoch(v: Any) -> float:
    """A wall-clock time that every reader can render as a date, plus any offset."""
    n = _num(v)
    if not 0.0 <= n < MAX_EPOCH:
        raise ValueError
    return n


def _close_code(v: Any) -> int | None:
    # RFC 6455 §5.5.1: the code is a 2-byte unsigned integer. Codes the RFC forbids (0-999,
    # 5000+) are kept: a client that sends them is what the rules report.
    return None if v is None else _code16(v)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    if len(v) > MAX_TEXT_BYTES // 4 and len(v.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        raise SchemaError(f"a string of more than {MAX_TEXT_BYTES} bytes")
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _short_bytes(v: Any) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise TypeError
    if len(v) > MAX_TEXT_BYTES:
        raise SchemaError(f"more than {MAX_TEXT_BYTES} bytes")
    return bytes(v)


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes | bytearray):
        raise TypeError
    if len(v) > MAX_RECORD_BYTES:
        raise SchemaError(f"more than {MAX_RECORD_BYTES} bytes")
    return bytes(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _list(v: Any) -> list[Any] | tuple[Any, ...]:
    if not isinstance(v, list | tuple):
        raise TypeError
    if len(v) > MAX_ITEMS:
        raise SchemaError(f"more than {MAX_ITEMS} items")
    return v


def _strs(v: Any) -> tuple[str, ...]:
    return tuple(_str(x) for x in _list(v))


def _headers(v: Any) -> Headers:
    out = []
    for pair in _list(v):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise SchemaError("each header must be a [name, value] pair of bytes")
        out.append((_short_bytes(pair[0]), _short_bytes(pair[1])))
    return tuple(out)


def _tls(v: Any) -> TlsInfo | None:
    if v is None:
        return None
    if not isinstance(v, dict):
        raise TypeError
    return TlsInfo(
        version=_field(v, "version", _opt_str, "a string or nil"),
        sni=_field(v, "sni", _opt_str, "a string or nil"),
        alpn=_field(v, "alpn", _opt_str, "a string or nil"),
    )


_SIDES = {"client": Side.CLIENT, "server": Side.SERVER}
_OPCODES = {"text": Opcode.TEXT, "binary": Opcode.BINARY}


def _side(v: Any) -> Side:
    return Side(_str(v))


def _opt_side(v: Any) -> Side | None:
    return None if v is None else _side(v)


def _opcode(v: Any) -> Opcode:
    return Opcode(_str(v))


CONN = "a connection id from 0 to 2**53"
OFFSET = f"a number of seconds from 0 to {MAX_OFFSET:.0f} (10 years)"
DATE = "a date in epoch seconds from 1970 to 2200"


def header_from_dict(d: Any) -> Header:
    """Validate record 0. The format name and version are checked by the reader first."""
    if not isinstance(d, dict):
        raise SchemaError(f"the header must be a map, not {describe_value(d)}")
    return Header(
        version=_field(d, "version", _int, "an integer"),
        creator=_field(d, "creator", _str, "a string"),
        started_at=_field(d, "started_at", _epoch, DATE),
    )


def _plain_message(d: Any) -> tuple[Side, Opcode] | None:
    """The common case, checked without a call per field: a well-formed message record
    (its side and opcode), or None to take the long way."""
    if type(d) is not dict or d.get("type") != "message":
        return None
    conn, t, data = d.get("conn"), d.get("t"), d.get("data")
    if (
        type(conn) is int
        and 0 <= conn <= MAX_CONN
        and type(t) is float
        and 0.0 <= t <= MAX_OFFSET
        and type(data) is bytes
        and len(data) <= MAX_RECORD_BYTES
    ):
        side, opcode = d.get("from"), d.get("opcode")
        if type(side) is str and type(opcode) is str:
            s, o = _SIDES.get(side), _OPCODES.get(opcode)
            if s is not None and o is not None:
                return s, o
    return None


def record_from_dict(d: Any) -> Record:
    """Validate one record map into a model object; raises SchemaError."""
    plain = _plain_message(d)
    if plain is not None:
        return Message(d["conn"], d["t"], plain[0], plain[1], d["data"])
    return _record_from_dict(d)


def check_record_dict(d: Any) -> None:
    """:func:`record_from_dict`'s check, without building the record (for the writer)."""
    if _plain_message(d) is None:
        _record_from_dict(d)


def _record_from_dict(d: Any) -> Record:
    if not isinstance(d, dict):
        raise SchemaError(f"a record must be a map, not {describe_value(d)}")
    kind = d.get("type")
    if kind == "message":
        return Message(
            conn=_field(d, "conn", _conn, CONN),
            t=_field(d, "t", _offset, OFFSET),
            side=_field(d, "from", _side, '"client" or "server"'),
            opcode=_field(d, "opcode", _opcode, '"text" or "binary"'),
            payload=_field(d, "data", _bytes, "bytes"),
        )
    if kind == "open":
        return Open(
            conn=_field(d, "conn", _conn, CONN),
            started_at=_field(d, "started_at", _epoch, DATE),
            method=_field(d, "method", _str, "a string"),
            scheme=_field(d, "scheme", _str, "a string"),
            host=_field(d, "host", _str, "a string"),
            port=_field(d, "port", _port, "a port from 0 to 65535"),
            target=_field(d, "target", _str, "a string"),
            http_version=_field(d, "http_version", _str, "a string"),
            request_headers=_field(d, "request_headers", _headers, "a list of pairs"),
            subprotocols=_field(d, "subprotocols", _strs, "a list of strings"),
            extensions=_field(d, "extensions", _strs, "a list of strings"),
            client=_field(d, "client", _opt_str, "a string or nil"),
            tls=_field(d, "tls", _tls, "a map or nil"),
            status=_field(d, "status", _status, "an HTTP status from 100 to 999"),
            reason=_field(d, "reason", _str, "a string"),
            response_headers=_field(d, "response_headers", _headers, "a list of pairs"),
            subprotocol=_field(d, "subprotocol", _opt_str, "a string or nil"),
            body=_field(d, "body", _bytes, "bytes"),
        )
    if kind == "close":
        return Close(
            conn=_field(d, "conn", _conn, CONN),
            t=_field(d, "t", _offset, OFFSET),
            by=_field(d, "by", _opt_side, '"client", "server" or nil'),
            code=_field(d, "code", _close_code, "an integer from 0 to 65535 or nil"),
            reason=_field(d, "reason", _str, "a string"),
            on_wire=_field(d, "on_wire", _bool, "a boolean"),
        )
    if kind == "note":
        conn = d.get("conn")
        return Note(
            conn=None if conn is None else _field(d, "conn", _conn, CONN),
            t=_field(d, "t", _opt_offset, f"{OFFSET} or nil") if "t" in d else None,
            text=_field(d, "text", _str, "a string"),
        )
    if kind == "header":
        raise SchemaError("a second header record")
    if isinstance(kind, str) and len(kind) <= 40:
        raise SchemaError(f"unknown record type {kind!r}")
    raise SchemaError(f"unknown record type ({describe_value(kind)})")


def record_label(record: Record) -> str:
    """``a message of connection 3``: which record an error is about."""
    kind = {Open: "an open", Message: "a message", Close: "a close", Note: "a note"}.get(
        type(record), type(record).__name__
    )
    conn = getattr(record, "conn", None)
    return kind if conn is None else f"{kind} of connection {describe_value(conn, 24)}"
