"""Cassette records as msgpack maps, and back, with a strict schema check.

The on-disk field names are documented in docs/cassette-format.md; change them only with a
new ``FORMAT_VERSION`` and a ``convert_N_M`` step in compat.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
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
FORMAT_VERSION = 1
"""Bumped on every on-disk change; independent of the package version."""


class SchemaError(ValueError):
    """A record does not have the shape of its type."""


T = TypeVar("T")


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
    raise TypeError(f"not a cassette record: {record!r}")


# -- reading ---------------------------------------------------------------------------


def _field(d: Mapping[str, Any], name: str, check: Callable[[Any], T], what: str) -> T:
    if name not in d:
        raise SchemaError(f"missing field {name!r}")
    try:
        return check(d[name])
    except SchemaError as e:
        raise SchemaError(f"field {name!r}: {e}") from None
    except (TypeError, ValueError):
        raise SchemaError(f"field {name!r} must be {what}, not {_shape(d[name])}") from None


def _shape(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError
    return v


def _conn(v: Any) -> int:
    n = _int(v)
    if n < 0:
        raise ValueError
    return n


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


def _opt_num(v: Any) -> float | None:
    return None if v is None else _num(v)


def _epoch(v: Any) -> float:
    """A wall-clock time that every reader can render as a date."""
    n = _num(v)
    try:
        datetime.fromtimestamp(n, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError from None
    return n


def _close_code(v: Any) -> int | None:
    # RFC 6455 §5.5.1: the code is a 2-byte unsigned integer.
    if v is None:
        return None
    n = _int(v)
    if not 0 <= n <= 0xFFFF:
        raise ValueError
    return n


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError
    return v


def _opt_str(v: Any) -> str | None:
    return None if v is None else _str(v)


def _bytes(v: Any) -> bytes:
    if not isinstance(v, bytes):
        raise TypeError
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError
    return v


def _strs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list | tuple):
        raise TypeError
    return tuple(_str(x) for x in v)


def _headers(v: Any) -> Headers:
    if not isinstance(v, list | tuple):
        raise TypeError
    out = []
    for pair in v:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise SchemaError("each header must be a [name, value] pair of bytes")
        out.append((_bytes(pair[0]), _bytes(pair[1])))
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


def _side(v: Any) -> Side:
    return Side(_str(v))


def _opt_side(v: Any) -> Side | None:
    return None if v is None else _side(v)


def _opcode(v: Any) -> Opcode:
    return Opcode(_str(v))


def header_from_dict(d: Any) -> Header:
    """Validate record 0. The format name and version are checked by the reader first."""
    if not isinstance(d, dict):
        raise SchemaError(f"the header must be a map, not {_shape(d)}")
    return Header(
        version=_field(d, "version", _int, "an integer"),
        creator=_field(d, "creator", _str, "a string"),
        started_at=_field(d, "started_at", _epoch, "a date in epoch seconds"),
    )


def record_from_dict(d: Any) -> Record:
    """Validate one record map into a model object; raises SchemaError."""
    if not isinstance(d, dict):
        raise SchemaError(f"a record must be a map, not {_shape(d)}")
    kind = d.get("type")
    if kind == "message":
        return Message(
            conn=_field(d, "conn", _conn, "a connection id"),
            t=_field(d, "t", _num, "a number"),
            side=_field(d, "from", _side, '"client" or "server"'),
            opcode=_field(d, "opcode", _opcode, '"text" or "binary"'),
            payload=_field(d, "data", _bytes, "bytes"),
        )
    if kind == "open":
        return Open(
            conn=_field(d, "conn", _conn, "a connection id"),
            started_at=_field(d, "started_at", _epoch, "a date in epoch seconds"),
            method=_field(d, "method", _str, "a string"),
            scheme=_field(d, "scheme", _str, "a string"),
            host=_field(d, "host", _str, "a string"),
            port=_field(d, "port", _int, "an integer"),
            target=_field(d, "target", _str, "a string"),
            http_version=_field(d, "http_version", _str, "a string"),
            request_headers=_field(d, "request_headers", _headers, "a list of pairs"),
            subprotocols=_field(d, "subprotocols", _strs, "a list of strings"),
            extensions=_field(d, "extensions", _strs, "a list of strings"),
            client=_field(d, "client", _opt_str, "a string or nil"),
            tls=_field(d, "tls", _tls, "a map or nil"),
            status=_field(d, "status", _int, "an integer"),
            reason=_field(d, "reason", _str, "a string"),
            response_headers=_field(d, "response_headers", _headers, "a list of pairs"),
            subprotocol=_field(d, "subprotocol", _opt_str, "a string or nil"),
            body=_field(d, "body", _bytes, "bytes"),
        )
    if kind == "close":
        return Close(
            conn=_field(d, "conn", _conn, "a connection id"),
            t=_field(d, "t", _num, "a number"),
            by=_field(d, "by", _opt_side, '"client", "server" or nil'),
            code=_field(d, "code", _close_code, "an integer from 0 to 65535 or nil"),
            reason=_field(d, "reason", _str, "a string"),
            on_wire=_field(d, "on_wire", _bool, "a boolean"),
        )
    if kind == "note":
        conn = d.get("conn")
        return Note(
            conn=None if conn is None else _field(d, "conn", _conn, "a connection id"),
            t=_field(d, "t", _opt_num, "a number or nil") if "t" in d else None,
            text=_field(d, "text", _str, "a string"),
        )
    if kind == "header":
        raise SchemaError("a second header record")
    raise SchemaError(f"unknown record type {kind!r}")
