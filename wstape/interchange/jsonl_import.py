"""Import wstape's own JSONL export (``wstape export --format jsonl``) back into records.

Each line is one record, in the order the cassette had them (docs/cassette-format.md,
"JSONL export"). An exact export (``--exact``) gives back the same records and header; a
plain export gives back what its keys say, and what they leave out stays unknown or takes
the value every recording of that kind has (see docs/interchange.md):

- a connection's ``scheme``, ``host``, ``port`` and ``target`` come from its ``url``, its
  offered extensions from its ``Sec-WebSocket-Extensions`` request headers, its HTTP
  version is ``HTTP/1.1``; its client address is unknown (null), its TLS facts are unknown
  (an empty TLS object for ``wss``), its reason phrase and body are empty;
- header text is encoded as UTF-8 (a header that was not UTF-8 was exported as its Latin-1
  reading and comes back as the UTF-8 encoding of that);
- times have the export's microsecond precision; notes are there only with ``--notes``;
- the cassette header says it was imported, and starts when the first connection started.

Lines are read one at a time (a line may hold at most ``MAX_LINE`` bytes). A line that
cannot be used raises :class:`InterchangeError` naming the file and the line (1-based).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, NoReturn

from wstape.cassettes.schema import FORMAT_VERSION
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
    decode_header_value,
    split_header_list,
)
from wstape.core.version import __version__
from wstape.interchange.errors import InterchangeError
from wstape.interchange.fields import EXT, Fields, parse_time
from wstape.interchange.sources import MAX_STRING, open_input
from wstape.interchange.values import (
    MAX_CLOSE_CODE,
    MAX_CONN,
    MAX_ITEMS,
    MAX_PORT,
    MAX_STATUS,
    MIN_STATUS,
    header_problem,
    is_close_code,
    is_conn,
    is_epoch,
    is_port,
    is_status,
    record_problem,
)

MAX_LINE = MAX_STRING + 1024 * 1024
"""Longest line read (a message's text or base64 plus its keys)."""
LOOKAHEAD = 10_000
"""Lines searched for the first connection, whose start becomes the header's."""

REUSED_NOTE = (
    "imported from JSONL: connection id {value} was opened on an earlier line; numbered {conn}"
)

_HOSTPORT = re.compile(r"^(\[[^\]]*\]|[^/?#\[\]]*)(.*)$", re.DOTALL)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


@dataclass
class JsonlImport:
    """A JSONL export being read (made by :func:`read_jsonl`).

    ``creator`` and ``started_at`` are the cassette header's; ``records()`` streams the
    records.
    """

    path: Path
    creator: str
    started_at: float
    exact: bool
    """The file starts with a header line (an exact export)."""

    def records(self) -> Iterator[Record]:
        """The records, line by line. Raises InterchangeError naming the line.

        A connection line with an id an earlier one had (the cassette reader refuses a
        reused id) gets a fresh id, a note says so, and the lines after it that name
        that id follow the new one.
        """
        renamed: dict[int, int] = {}
        opened: set[int] = set()
        highest = 0
        with open_input(self.path) as f:
            for number, obj in _lines(self.path, f):
                if number == 1 and obj.get("type") == "header":
                    continue
                record = _record(self.path, number, obj)
                note = None
                conn = record.conn
                if conn is not None:
                    highest = max(highest, conn)
                    if isinstance(record, Open):
                        if conn in opened:
                            fresh = highest = highest + 1
                            note = Note(conn=fresh, text=REUSED_NOTE.format(value=conn, conn=fresh))
                            renamed[conn] = fresh
                        else:
                            renamed.pop(conn, None)
                    if conn in renamed:
                        record = replace(record, conn=renamed[conn])
                    if isinstance(record, Open):
                        opened.add(record.conn)
                for out in (record, note):
                    if out is None:
                        continue
                    problem = record_problem(out)
                    if problem is not None:
                        raise InterchangeError(self.path, problem, index=number, what="line")
                    yield out


def _lines(path: Path, f: IO[bytes]) -> Iterator[tuple[int, dict[str, Any]]]:
    number = 0
    while True:
        number += 1
        try:
            raw = f.readline(MAX_LINE + 1)
        except OSError as e:
            raise InterchangeError(path, f"cannot read: {e.strerror or e}") from e
        if not raw:
            return
        if len(raw) > MAX_LINE:
            raise InterchangeError(path, f"longer than {MAX_LINE} bytes", index=number, what="line")
        if number == 1:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except UnicodeDecodeError as e:
            raise InterchangeError(
                path, f"not UTF-8 text ({e.reason})", index=number, what="line"
            ) from e
        except (ValueError, RecursionError) as e:
            detail = str(e) if not isinstance(e, RecursionError) else "nested too deeply"
            raise InterchangeError(
                path, f"not a JSON line ({detail})", index=number, what="line"
            ) from e
        if not isinstance(obj, dict):
            raise InterchangeError(path, "must be a JSON object", index=number, what="line")
        yield number, obj


def _conn(f: Fields, *, optional: bool = False) -> int | None:
    value = f.get("conn")
    if value is None and optional:
        return None
    if not is_conn(value):
        f.fail(f"conn {str(value)[:40]} is not a connection id (0 to {MAX_CONN})")
    return int(value)


def _time(f: Fields) -> float:
    ext = f.opt_sub(EXT)
    if ext is not None and ext.has("t"):
        return ext.req_num("t")
    return f.req_num("t")


def _side(f: Fields, name: str, *, optional: bool = False) -> Side | None:
    value = f.get(name)
    if value is None and optional:
        return None
    if value not in ("client", "server"):
        f.fail(f'{name} must be "client" or "server"' + (" or null" if optional else ""))
    return Side(value)


def _text_headers(f: Fields, name: str) -> Headers:
    items = f.req_list(name)
    if len(items) > MAX_ITEMS:
        f.fail(f"{name} has more than {MAX_ITEMS} headers")
    out = []
    for i, pair in enumerate(items):
        what = f"{name}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            f.fail(f"{what} must be a [name, value] pair")
        out.append((f.text(pair[0], what).encode("utf-8"), f.text(pair[1], what).encode("utf-8")))
    return tuple(out)


def _raw_headers(f: Fields, ext: Fields, name: str) -> Headers:
    if not ext.has(name):
        return _text_headers(f, name)
    items = ext.req_list(name)
    if len(items) > MAX_ITEMS:
        f.fail(f"{EXT}.{name} has more than {MAX_ITEMS} headers")
    out = []
    for i, pair in enumerate(items):
        what = f"{EXT}.{name}[{i}]"
        if not isinstance(pair, list) or len(pair) != 2:
            f.fail(f"{what} must be a [name, value] pair")
        out.append((f.b64(pair[0], what), f.b64(pair[1], what)))
    return tuple(out)


def _offers(headers: Headers, name: bytes) -> tuple[str, ...]:
    return tuple(
        item
        for k, v in headers
        if k.lower() == name
        for item in split_header_list(decode_header_value(v))
    )


def _split_url(f: Fields, url: str) -> tuple[str, str, int, str]:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in ("ws", "wss"):
        f.fail(f"url {url[:80]!r} is not a ws or wss URL")
    m = _HOSTPORT.match(rest)
    assert m is not None
    hostport, target = m.group(1), m.group(2)
    default = 443 if scheme == "wss" else 80
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.removeprefix(":")
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    else:
        host, port_text = hostport, ""
    port = default
    if port_text:
        if not port_text.isdigit() or not is_port(int(port_text)):
            f.fail(f"url {url[:80]!r} has no valid port (0 to {MAX_PORT})")
        port = int(port_text)
    return scheme, host, port, target


def _open(f: Fields) -> Open:
    conn = _conn(f)
    assert conn is not None
    status = f.get("status")
    if not is_status(status):
        f.fail(f"status {str(status)[:40]} is not an HTTP status ({MIN_STATUS} to {MAX_STATUS})")
    ext = f.opt_sub(EXT)
    if ext is not None:
        started_at = ext.req_num("started_at")
    else:
        text = f.req_str("started_at")
        parsed = parse_time(text)
        if parsed is None:
            f.fail(f"started_at is not an ISO 8601 time with a zone: {text[:40]!r}")
        started_at = parsed
    if not is_epoch(started_at):
        f.fail(f"started_at {started_at!r} is not a date")
    subprotocols = f.strs("subprotocols_offered")
    if len(subprotocols) > MAX_ITEMS:
        f.fail(f"more than {MAX_ITEMS} offered subprotocols")
    method = f.req_str("method", "GET")
    subprotocol = f.opt_str("subprotocol")
    if ext is None:
        scheme, host, port, target = _split_url(f, f.req_str("url"))
        request_headers = _text_headers(f, "request_headers")
        return Open(
            conn=conn,
            started_at=started_at,
            method=method,
            scheme=scheme,
            host=host,
            port=port,
            target=target,
            http_version="HTTP/1.1",
            request_headers=request_headers,
            status=status,
            response_headers=_text_headers(f, "response_headers"),
            subprotocols=subprotocols,
            extensions=_offers(request_headers, b"sec-websocket-extensions"),
            subprotocol=subprotocol,
            # a wss connection had TLS; the export does not say which version, SNI, ALPN
            tls=TlsInfo() if scheme == "wss" else None,
        )
    port = ext.req_int("port")
    if not is_port(port):
        f.fail(f"{EXT}.port {port} is not a port (0 to {MAX_PORT})")
    extensions = ext.strs("extensions")
    if len(extensions) > MAX_ITEMS:
        f.fail(f"more than {MAX_ITEMS} offered extensions")
    tls_f = ext.opt_sub("tls")
    return Open(
        conn=conn,
        started_at=started_at,
        method=method,
        scheme=ext.req_str("scheme"),
        host=ext.req_str("host"),
        port=port,
        target=ext.req_str("target"),
        http_version=ext.req_str("http_version"),
        request_headers=_raw_headers(f, ext, "request_headers"),
        status=status,
        response_headers=_raw_headers(f, ext, "response_headers"),
        subprotocols=subprotocols,
        extensions=extensions,
        subprotocol=subprotocol,
        client=ext.opt_str("client"),
        tls=None
        if tls_f is None
        else TlsInfo(tls_f.opt_str("version"), tls_f.opt_str("sni"), tls_f.opt_str("alpn")),
        reason=ext.req_str("reason", ""),
        body=f.b64(ext.req_str("body", ""), f"{EXT}.body"),
    )


def _message(f: Fields) -> Message:
    conn = _conn(f)
    assert conn is not None
    side = _side(f, "from")
    assert side is not None
    opcode = f.get("opcode")
    if opcode not in ("text", "binary"):
        f.fail('opcode must be "text" or "binary"')
    if f.has("text") == f.has("base64"):
        f.fail('a message has either "text" or "base64"')
    if f.has("text"):
        payload = f.req_str("text").encode("utf-8")
    else:
        payload = f.b64(f.get("base64"), "base64")
    return Message(conn, _time(f), side, Opcode(opcode), payload)


def _close(f: Fields) -> Close:
    conn = _conn(f)
    assert conn is not None
    code = f.get("code")
    if code is not None and not is_close_code(code):
        f.fail(f"code {str(code)[:40]} is not a close code (0 to {MAX_CLOSE_CODE})")
    return Close(
        conn=conn,
        t=_time(f),
        by=_side(f, "by", optional=True),
        code=code,
        reason=f.req_str("reason", ""),
        on_wire=f.req_bool("on_wire"),
    )


def _record(path: Path, number: int, obj: dict[str, Any]) -> Record:
    f = Fields(path, number, obj, "line", what="line")
    kind = obj.get("type")
    if kind == "connection":
        return _open(f)
    if kind == "message":
        return _message(f)
    if kind == "close":
        return _close(f)
    if kind == "note":
        return Note(conn=_conn(f, optional=True), text=f.req_str("text"), t=f.opt_num("t"))
    if kind == "header":
        f.fail("a header line must be the first line")
    shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:40] + "..."
    f.fail(f'type {shown} is not "connection", "message", "close" or "note"')


def read_jsonl(path: str | Path) -> JsonlImport:
    """Open a JSONL export for import: reads its header line (an exact export) or looks
    ahead for the first connection, whose start the cassette header takes.

    Raises InterchangeError for a file that cannot be read or a first line that is not a
    JSON object; later lines are checked as :meth:`JsonlImport.records` reaches them.
    """
    path = Path(path)
    creator = f"wstape {__version__} (imported from a JSONL export)"
    started_at = 0.0
    exact = False
    with open_input(path) as f:
        for number, obj in _lines(path, f):
            if number == 1 and obj.get("type") == "header":
                h = Fields(path, number, obj, "line", what="line")
                ext = h.opt_sub(EXT)
                creator = h.req_str("creator")
                if ext is not None and ext.has("started_at"):
                    started_at = ext.req_num("started_at")
                else:
                    parsed = parse_time(h.req_str("started_at"))
                    if parsed is None:
                        h.fail("started_at is not an ISO 8601 time with a zone")
                    started_at = parsed
                if not is_epoch(started_at):
                    h.fail(f"started_at {started_at!r} is not a date")
                exact = True
                break
            if obj.get("type") == "connection":
                opened = _open(Fields(path, number, obj, "line", what="line"))
                started_at = opened.started_at
                break
            if number >= LOOKAHEAD:
                break
    problem = header_problem(Header(FORMAT_VERSION, creator, started_at))
    if problem is not None:
        raise InterchangeError(path, problem, index=1, what="line")
    return JsonlImport(path=path, creator=creator, started_at=started_at, exact=exact)


__all__ = ["LOOKAHEAD", "MAX_LINE", "REUSED_NOTE", "JsonlImport", "read_jsonl"]
