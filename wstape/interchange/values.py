"""What an imported value must be for wstape to read the cassette back.

The importers (HAR, JSONL, mitmproxy flows) check every value they take from an input
before it goes into a record, and either map it to a valid one (a note record says so) or
refuse the entry with one line naming the field. The ranges here are those of the
cassette reader's schema (wstape/cassettes/schema.py) or a little tighter where the schema
leaves room no real recording needs (ports, HTTP statuses, list lengths);
:func:`record_problem` finally runs the reader's own schema over every non-message record,
so an import never writes what ``wstape check`` or ``wstape ls`` would refuse.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from wstape.cassettes.reader import MAX_RECORD_BYTES
from wstape.cassettes.schema import (
    SchemaError,
    header_from_dict,
    header_to_dict,
    record_from_dict,
    record_to_dict,
)
from wstape.core.model import Close, Header, Message, Note, Open, Record

# The limits of the cassette reader's schema (wstape/cassettes/schema.py): an import keeps
# inside them, so its output reads back.
MAX_CONN = 2**53
"""Largest connection id (every JSON reader holds it exactly)."""
MAX_PORT = 65535
MIN_STATUS, MAX_STATUS = 100, 999
"""An HTTP status is a three-digit integer (RFC 9110 §15)."""
MAX_CLOSE_CODE = 0xFFFF
"""A close code is a 2-byte unsigned integer (RFC 6455 §5.5.1)."""
MAX_OFFSET = 10 * 365.25 * 86400
"""Largest time offset (``t``): ten years after the connection's start, in seconds."""
MAX_EPOCH = 7_258_118_400.0
"""Dates (``started_at``) are from the epoch (1970) to 2200-01-01, in seconds."""
MAX_TEXT_BYTES = 1024 * 1024
"""Longest string (UTF-8 bytes), header name or header value."""
MAX_PAYLOAD = MAX_RECORD_BYTES - 64 * 1024
"""Largest message payload or refusal body (a record holds at most MAX_RECORD_BYTES)."""
MAX_ITEMS = 4096
"""Most headers, offered subprotocols or extensions one connection may have."""


def is_int(value: Any) -> bool:
    """An integer that is not a bool (JSON and tnetstring ``true`` are ints in Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_conn(value: Any) -> bool:
    return is_int(value) and 0 <= value <= MAX_CONN


def is_port(value: Any) -> bool:
    return is_int(value) and 0 <= value <= MAX_PORT


def is_status(value: Any) -> bool:
    return is_int(value) and MIN_STATUS <= value <= MAX_STATUS


def is_close_code(value: Any) -> bool:
    return is_int(value) and 0 <= value <= MAX_CLOSE_CODE


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool): what the reader accepts as a time offset."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too big for a float
        return False


def is_epoch(value: Any) -> bool:
    """A wall-clock time a cassette can hold (from 1970 to 2200)."""
    return is_number(value) and 0.0 <= value < MAX_EPOCH


def is_offset(value: Any) -> bool:
    """A time offset a cassette can hold (from 0 to ten years)."""
    return is_number(value) and 0.0 <= value <= MAX_OFFSET


def is_short_text(value: str) -> bool:
    """Valid Unicode of at most MAX_TEXT_BYTES bytes in UTF-8."""
    if len(value) > MAX_TEXT_BYTES // 4 and len(value.encode("utf-8", "surrogatepass")) > (
        MAX_TEXT_BYTES
    ):
        return False
    return is_text(value)


def is_text(value: str) -> bool:
    """True when ``value`` can be written as UTF-8 (no lone surrogates)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _raw(value: str) -> bytes:
    """The bytes behind a string decoded with ``surrogateescape`` (other lone surrogates
    as their 3-byte form, which is invalid UTF-8 too)."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def repair_text(value: str) -> str:
    """``value`` with every byte that was not valid UTF-8 replaced by U+FFFD."""
    return value if is_text(value) else _raw(value).decode("utf-8", "replace")


def percent_escape(value: str) -> str:
    """``value`` with every byte that was not valid UTF-8 written as ``%XX`` (RFC 3986
    §2.1), for a request target."""
    if is_text(value):
        return value
    data = _raw(value)
    out: list[str] = []
    while data:
        try:
            out.append(data.decode("utf-8"))
            break
        except UnicodeDecodeError as e:
            out.append(data[: e.start].decode("utf-8"))
            out.append("".join(f"%{b:02X}" for b in data[e.start : e.end]))
            data = data[e.end :]
    return "".join(out)


_UNPACK_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


def _texts(record: Record) -> list[tuple[str, Any]]:
    if isinstance(record, Open):
        tls = record.tls
        pairs: list[tuple[str, Any]] = [
            ("method", record.method),
            ("scheme", record.scheme),
            ("host", record.host),
            ("target", record.target),
            ("HTTP version", record.http_version),
            ("reason", record.reason),
            ("subprotocol", record.subprotocol),
            ("client", record.client),
        ]
        pairs += [("offered subprotocol", x) for x in record.subprotocols]
        pairs += [("offered extension", x) for x in record.extensions]
        if tls is not None:
            pairs += [("TLS version", tls.version), ("SNI", tls.sni), ("ALPN", tls.alpn)]
        return pairs
    if isinstance(record, Close):
        return [("close reason", record.reason)]
    if isinstance(record, Note):
        return [("note", record.text)]
    return []


def record_problem(record: Record) -> str | None:
    """Why the cassette reader would refuse ``record``, or None when it reads it back.

    Messages (the bulk of an import) get the cheap checks their fields need; every other
    record gets the limits above and then the reader's own schema, on the map the writer
    would pack.
    """
    if isinstance(record, Message):
        if not is_conn(record.conn):
            return f"connection id {record.conn} is out of range (0 to 2**53)"
        if not is_offset(record.t):
            return f"message time {record.t!r} is not from 0 to 10 years (in seconds)"
        if len(record.payload) > MAX_PAYLOAD:
            return f"a message of {len(record.payload)} bytes is larger than a cassette holds"
        return None
    kind = type(record).__name__.lower()
    if record.conn is not None and not is_conn(record.conn):
        return f"connection id {record.conn} is out of range (0 to 2**53)"
    for what, value in _texts(record):
        if isinstance(value, str) and not is_short_text(value):
            return f"the {what} is longer than {MAX_TEXT_BYTES} bytes or not valid Unicode"
    if isinstance(record, Open):
        for name in ("request_headers", "response_headers", "subprotocols", "extensions"):
            if len(getattr(record, name)) > MAX_ITEMS:
                return f"more than {MAX_ITEMS} {name.replace('_', ' ')}"
        for headers in (record.request_headers, record.response_headers):
            for k, v in headers:
                if len(k) > MAX_TEXT_BYTES or len(v) > MAX_TEXT_BYTES:
                    return f"a header name or value is longer than {MAX_TEXT_BYTES} bytes"
        if not is_epoch(record.started_at):
            return f"started_at {record.started_at!r} is not a date from 1970 to 2200"
        if not is_port(record.port):
            return f"port {str(record.port)[:40]} is out of range (0 to {MAX_PORT})"
        if not is_status(record.status):
            return f"status {str(record.status)[:40]} is not an HTTP status (100 to 999)"
        if len(record.body) > MAX_PAYLOAD:
            return f"a body of {len(record.body)} bytes is larger than a cassette holds"
    elif isinstance(record, Close | Note) and record.t is not None and not is_offset(record.t):
        return f"the {kind} time {record.t!r} is not from 0 to 10 years (in seconds)"
    try:
        fields = record_to_dict(record)
        record_from_dict(msgpack.unpackb(msgpack.packb(fields, use_bin_type=True), raw=False))
    except SchemaError as e:
        return f"the {kind} record would not be readable: {e}"
    except (*_UNPACK_ERRORS, UnicodeError) as e:
        return f"the {kind} record would not be readable ({e})"
    return None


def header_problem(header: Header) -> str | None:
    """Why the cassette reader would refuse ``header``, or None."""
    if not is_short_text(header.creator):
        return f"the creator is longer than {MAX_TEXT_BYTES} bytes or not valid Unicode"
    if not is_epoch(header.started_at):
        return f"the start time {header.started_at!r} is not a date from 1970 to 2200"
    try:
        header_from_dict(header_to_dict(header))
    except SchemaError as e:
        return f"the cassette header would not be readable: {e}"
    return None


__all__ = [
    "MAX_CLOSE_CODE",
    "MAX_CONN",
    "MAX_EPOCH",
    "MAX_ITEMS",
    "MAX_OFFSET",
    "MAX_PAYLOAD",
    "MAX_PORT",
    "MAX_STATUS",
    "MAX_TEXT_BYTES",
    "MIN_STATUS",
    "header_problem",
    "is_close_code",
    "is_conn",
    "is_epoch",
    "is_int",
    "is_number",
    "is_offset",
    "is_port",
    "is_short_text",
    "is_status",
    "is_text",
    "percent_escape",
    "record_problem",
    "repair_text",
]
