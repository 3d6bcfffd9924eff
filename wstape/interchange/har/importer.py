"""HAR import: Chrome, Playwright, mitmproxy's ``savehar`` and wstape's own export.

:func:`read_har` streams the HAR (:mod:`wstape.interchange.har.stream`, one entry and one
``_webSocketMessages`` item at a time) and checks each item as it comes, writing what it
will need to a temporary spool file: each WebSocket entry's message items (decoded, with
their raw times) and then its other fields. Memory does not grow with the number of
messages, nor with ordinary entries; it keeps about 100 bytes per WebSocket entry (where
its records are in the spool). :meth:`HarImport.records` then yields the cassette records from the
spool, one connection after the other, in the order the connections started (a wstape
HAR keeps its own order); the spool is needed because the fields that say when an entry
started, which connection id it had and how it ended may come after its messages, and
other tools write entries in the order connections ended.

Whatever a HAR does not say stays unknown and is never invented (a connection whose end
is not recorded gets ``Close(by=None, code=None)`` and a note). Values no cassette can hold
are refused with one line naming the entry and field (a status of 10**40, a close code of
70000, a start time in the year 10**300, a lone surrogate), or mapped to a valid value
with a note saying so (a ``_wstape.conn`` that is no connection id gets a fresh one, a
message time before its connection's start becomes 0). The field mapping is documented
in docs/interchange.md.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit

import msgpack

from wstape.cassettes.schema import FORMAT_VERSION
from wstape.core.closecodes import NEVER_ON_WIRE
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
from wstape.interchange.fields import EXT, EXT_VERSION, Fields, parse_time
from wstape.interchange.har import stream
from wstape.interchange.sources import JsonSource, open_input
from wstape.interchange.values import (
    MAX_CLOSE_CODE,
    MAX_EPOCH,
    MAX_ITEMS,
    MAX_OFFSET,
    MAX_PAYLOAD,
    MAX_PORT,
    MAX_STATUS,
    MIN_STATUS,
    header_problem,
    is_close_code,
    is_conn,
    is_epoch,
    is_port,
    is_status,
    is_text,
    record_problem,
)

UNKNOWN_END_NOTE = (
    "imported from HAR: how the connection ended is not recorded there (close unknown)"
)
EARLY_NOTE = (
    "imported from HAR: {n} message times before the connection's start were set to 0 (its start)"
)
CONN_NOTE = "imported from HAR: _wstape.conn {value} is not a connection id; numbered {conn}"
REUSED_NOTE = (
    "imported from HAR: _wstape.conn {value} was used by an earlier entry; numbered {conn}"
)

_HTTP_VERSION = re.compile(r"^(?:http/)?(\d(?:\.\d)?)$", re.IGNORECASE)

# Spooled message items: [kind, exact t, epoch time, side, opcode, payload].
_DATA, _CONT, _CLOSE, _ERROR, _TICK = range(5)
_SIDES = (Side.CLIENT, Side.SERVER)
_OPCODES = {1: Opcode.TEXT, 2: Opcode.BINARY}


@dataclass(slots=True)
class _Spooled:
    """One WebSocket entry of the HAR, as the spool holds it."""

    index: int
    start: float
    """When it started (epoch seconds): connections are imported in this order."""
    head: int
    """Spool offset of the entry's fields (everything but the message items)."""
    items: int
    """Spool offset of its first message item; ``count`` items follow."""
    count: int
    messages: int
    """Data messages among the items."""
    extras: dict[int, array[int]] | None
    """Continuation frames: message position -> their spool offsets and lengths, in
    pairs (an array: a HAR of tiny frames must not cost a tuple each)."""
    conn: int | None
    """``_wstape.conn`` when it is a valid connection id."""
    bad_conn: Any = None
    """A ``_wstape.conn`` that had to be replaced (for the note saying so)."""


@dataclass(slots=True)
class _EntryState:
    """What :func:`read_har` tracks while one entry streams by."""

    index: int
    items: int = -1
    count: int = 0
    messages: int = 0
    last: dict[int, tuple[int, bool]] = field(default_factory=dict)
    """Side -> (position, is text) of its last data message, for continuation frames."""
    extras: dict[int, array[int]] | None = None


class HarImport:
    """A streamed HAR, ready to be written as a cassette (made by :func:`read_har`).

    ``creator`` and ``started_at`` are the cassette header's; ``records()`` yields the
    records in order (once: it closes the spool) and fills the counters.
    """

    def __init__(self, path: Path, spool: IO[bytes]) -> None:
        self.path = path
        self.creator = ""
        self.started_at = 0.0
        self.has_ext = False
        self.connections = 0
        self.messages = 0
        self.skipped = 0
        """Entries that are not WebSocket upgrades (ordinary HTTP requests)."""
        self.failed = 0
        """WebSocket entries without a response (status 0): nothing to replay."""
        self._spool = spool
        self._entries: list[_Spooled] = []
        self._notes: list[tuple[int, Note]] = []

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> HarImport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self) -> Iterator[Record]:
        """The cassette records, one connection after the other.

        Raises InterchangeError naming the entry for a value no cassette can hold.
        """
        try:
            yield from self._records()
        finally:
            self.close()

    def _records(self) -> Iterator[Record]:
        pending = sorted(self._notes, key=lambda n: n[0])
        # Ids from _wstape.conn are kept; an entry without one, with one that is no id, or
        # with an id an earlier entry has, gets the lowest id nobody has.
        wanted = {e.conn for e in self._entries if e.conn is not None}
        used: set[int] = set()
        order = self._entries if self.has_ext else sorted(self._entries, key=lambda e: e.start)
        next_id = 1
        emitted = 0
        for spooled in order:
            while pending and pending[0][0] <= emitted:
                yield self._checked(pending.pop(0)[1], None)
            conn = spooled.conn
            note = None
            if conn is None or conn in used:
                while next_id in used or next_id in wanted:
                    next_id += 1
                if conn is not None:
                    note = REUSED_NOTE.format(value=conn, conn=next_id)
                elif spooled.bad_conn is not None:
                    note = CONN_NOTE.format(value=spooled.bad_conn, conn=next_id)
                conn = next_id
            used.add(conn)
            yield from self._entry_records(spooled, conn, note)
            self.connections += 1
            emitted += 1
        for _, note_record in pending:
            yield self._checked(note_record, None)

    def _checked(self, record: Record, index: int | None) -> Record:
        problem = record_problem(record)
        if problem is not None:
            raise InterchangeError(self.path, problem, index=index)
        return record

    def _read_at(self, offset: int, length: int) -> Any:
        return msgpack.unpackb(
            os.pread(self._spool.fileno(), length, offset),
            raw=False,
            unicode_errors="surrogatepass",
        )

    def _entry_records(self, spooled: _Spooled, conn: int, note: str | None) -> Iterator[Record]:
        """The records of one spooled entry: its open, then messages, close and notes."""
        index = spooled.index
        spool = self._spool
        spool.seek(spooled.head)
        entry = _Entry(self.path, index, _unpacker(spool).unpack(), has_messages=True)
        opened = self._checked(entry.open(conn), index)
        assert isinstance(opened, Open)
        yield opened
        if note is not None:
            yield self._checked(Note(conn=conn, text=note), index)
        ext = entry.ext
        plan = (
            _Plan(entry, conn, spooled.messages) if ext is not None and "close" in ext.obj else None
        )
        started = opened.started_at
        extras = spooled.extras or {}
        last_t = 0.0
        early = 0
        position = 0  # data messages so far
        frame_close: Close | None = None
        spool.seek(spooled.items)
        unpacker = _unpacker(spool)
        for i in range(spooled.count):
            kind, exact, epoch, side, opcode, payload = unpacker.unpack()
            if exact is not None:
                t = exact
            elif epoch is not None:
                if epoch >= MAX_EPOCH:
                    # Past 2200 in seconds: epoch milliseconds, as Playwright writes them
                    # (wallTimeMs); every date a cassette holds is one or the other.
                    epoch /= 1000.0
                t = round(epoch - started, 6)
            else:
                t = last_t  # not recorded: keep the order, invent no time
            if t < 0:
                early += 1
                t = 0.0
            elif t > MAX_OFFSET:
                entry.fail(
                    f"{stream.MESSAGES}[{i}] is more than 10 years after the connection's start"
                )
            if t > last_t:
                last_t = t
            if kind == _DATA:
                if position in extras:
                    parts, size = [payload], len(payload)
                    pairs = extras[position]
                    for j in range(0, len(pairs), 2):
                        parts.append(self._read_at(pairs[j], pairs[j + 1])[5])
                        size += len(parts[-1])
                        if size > MAX_PAYLOAD:
                            break
                    payload = b"".join(parts)
                if len(payload) > MAX_PAYLOAD:
                    entry.fail(f"{stream.MESSAGES}[{i}] is larger than a cassette holds")
                if plan is not None:
                    yield from plan.before_message(position)
                position += 1
                self.messages += 1
                yield Message(conn, t, _SIDES[side], _OPCODES[opcode], payload)
            elif kind == _ERROR:
                yield self._checked(
                    Note(conn=conn, text=f"client reported an error: {payload}", t=t), index
                )
            elif kind == _CLOSE:
                if frame_close is None:
                    frame_close = _close_from_frame(conn, t, _SIDES[side], payload)
            # _CONT: appended to its message above; _TICK (ping, pong): only its time counts
        if plan is not None:
            yield from plan.end()
        elif opened.accepted:
            if frame_close is not None:
                yield self._checked(frame_close, index)
            else:
                yield Close(conn=conn, t=last_t, by=None, code=None, reason="", on_wire=False)
                yield Note(conn=conn, text=UNKNOWN_END_NOTE, t=last_t)
        if early:
            yield Note(conn=conn, text=EARLY_NOTE.format(n=early), t=0.0)


def _unpacker(spool: IO[bytes]) -> Any:
    # The spool is ours (written above), so no limits beyond what one item can be.
    return msgpack.Unpacker(
        spool,
        raw=False,
        unicode_errors="surrogatepass",
        max_buffer_size=2**31 - 1,
        read_size=64 * 1024,
    )


class _Plan:
    """Where a wstape HAR's close and notes go among the messages of its entry
    (``_wstape.close.after`` and ``_wstape.notes[].after``)."""

    def __init__(self, entry: _Entry, conn: int, messages: int) -> None:
        ext = entry.ext
        assert ext is not None
        self.har_path = entry.path
        self.index = entry.index
        self.close: Close | None = None
        self.close_at = messages
        cf = ext.opt_sub("close")
        if cf is not None:
            by = cf.opt_str("by")
            if by not in (None, "client", "server"):
                cf.fail(f'{cf.name("by")} must be "client", "server" or null')
            code = cf.opt_int("code")
            if code is not None and not is_close_code(code):
                cf.fail(f"{cf.name('code')} {code} is not a close code (0 to {MAX_CLOSE_CODE})")
            self.close = Close(
                conn=conn,
                t=_offset(cf, "t"),
                by=None if by is None else Side(by),
                code=code,
                reason=cf.req_str("reason", ""),
                on_wire=cf.req_bool("on_wire"),
            )
            after = cf.opt_int("after")
            if after is not None:
                self.close_at = min(max(after, 0), messages)
        notes: list[tuple[int, Note]] = []
        for i, n in enumerate(ext.req_list("notes")):
            nf = Fields(entry.path, entry.index, n, f"{EXT}.notes[{i}]")
            t = _offset(nf, "t") if nf.has("t") else None
            notes.append((nf.req_int("after"), Note(conn, nf.req_str("text"), t)))
        notes.sort(key=lambda n: n[0])
        self.notes = notes
        self.next_note = 0
        self.done = 0
        """Records of the sequence (messages and the close) yielded so far."""

    def _notes_until(self, done: int) -> Iterator[Record]:
        notes = self.notes
        while self.next_note < len(notes) and notes[self.next_note][0] <= done:
            yield self._checked(notes[self.next_note][1])
            self.next_note += 1

    def _checked(self, record: Record) -> Record:
        problem = record_problem(record)
        if problem is not None:
            raise InterchangeError(self.har_path, problem, index=self.index)
        return record

    def before_message(self, position: int) -> Iterator[Record]:
        if self.close is not None and position == self.close_at:
            yield from self._close()
        if self.next_note < len(self.notes):
            yield from self._notes_until(self.done)
        self.done += 1

    def _close(self) -> Iterator[Record]:
        assert self.close is not None
        yield from self._notes_until(self.done)
        yield self._checked(self.close)
        self.close = None
        self.done += 1

    def end(self) -> Iterator[Record]:
        if self.close is not None:
            yield from self._close()
        yield from self._notes_until(self.done)
        for _, note in self.notes[self.next_note :]:
            yield self._checked(note)


def _offset(f: Fields, name: str) -> float:
    t = f.req_num(name)
    if not 0.0 <= t <= MAX_OFFSET:
        f.fail(f"{f.name(name)} {t!r} is not a time from 0 to 10 years (in seconds)")
    return t


def _close_from_frame(conn: int, t: float, side: Side, data: str) -> Close:
    """A Close from a captured Close frame (Chrome sends its payload base64-encoded)."""
    try:
        body = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return Close(conn=conn, t=t, by=side, code=None, reason="", on_wire=True)
    if not body:
        return Close(conn=conn, t=t, by=side, code=1005, reason="", on_wire=False)
    if len(body) == 1:
        return Close(conn=conn, t=t, by=side, code=None, reason="", on_wire=True)
    code = int.from_bytes(body[:2], "big")
    return Close(
        conn=conn,
        t=t,
        by=side,
        code=code,
        reason=body[2:].decode("utf-8", "replace"),
        on_wire=code not in NEVER_ON_WIRE,
    )


def _header(headers: Headers, name: bytes) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return decode_header_value(v)
    return None


def _offers(headers: Headers, name: bytes) -> tuple[str, ...]:
    return tuple(
        item
        for k, v in headers
        if k.lower() == name
        for item in split_header_list(decode_header_value(v))
    )


class _Entry:
    """One HAR entry's fields (all but the message items), read strictly."""

    def __init__(self, path: Path, index: int, head: Any, *, has_messages: bool) -> None:
        self.path = path
        self.index = index
        self.f = Fields(path, index, head, "entry")
        self.has_messages = has_messages
        self.ext = self.f.opt_sub(EXT)

    def fail(self, message: str) -> NoReturn:
        self.f.fail(message)

    def is_websocket(self) -> bool:
        f = self.f
        kind = f.get("_resourceType")
        if isinstance(kind, str) and kind.lower() == "websocket":
            return True
        if self.has_messages or stream.MESSAGES in f.obj or self.ext is not None:
            return True
        request = f.get("request")
        if not isinstance(request, dict):
            return False
        url = request.get("url")
        if isinstance(url, str) and url.lower().startswith(("ws:", "wss:")):
            return True
        headers = request.get("headers")
        if isinstance(headers, list):
            for h in headers:
                if (
                    isinstance(h, dict)
                    and str(h.get("name", "")).lower() == "upgrade"
                    and any(
                        t.lower() == "websocket" for t in split_header_list(str(h.get("value")))
                    )
                ):
                    return True
        return False

    def status(self) -> int:
        response = self.f.get("response")
        if not isinstance(response, dict):
            return 0
        status = response.get("status", 0)
        if isinstance(status, bool) or not isinstance(status, int):
            self.fail("response.status must be an integer")
        if status == -1:
            return 0  # no response: Playwright's -1 (HAR's "not available"), Chrome's 0
        if status != 0 and not is_status(status):
            self.fail(
                f"response.status {status} is not an HTTP status ({MIN_STATUS} to {MAX_STATUS})"
            )
        return status

    def started_at(self) -> float:
        if self.ext is not None and self.ext.has("started_at"):
            t = self.ext.req_num("started_at")
            if not is_epoch(t):
                self.fail(f"{EXT}.started_at {t!r} is not a date")
            return t
        value = self.f.req_str("startedDateTime")
        parsed = parse_time(value)
        if parsed is None or not is_epoch(parsed):
            self.fail(f"startedDateTime is not an ISO 8601 time with a zone: {value[:40]!r}")
        return parsed

    def conn(self) -> tuple[int | None, Any]:
        """``(connection id, None)`` from ``_wstape.conn``; ``(None, bad value)`` when it is
        there but no connection id; ``(None, None)`` when it is not there."""
        if self.ext is None or not self.ext.has("conn"):
            return None, None
        value = self.ext.get("conn")
        if is_conn(value):
            return int(value), None
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        return None, shown

    def _headers(self, part: Fields, raw_name: str) -> Headers:
        if self.ext is not None and self.ext.has(raw_name):
            pairs = self.ext.req_list(raw_name)
            if len(pairs) > MAX_ITEMS:
                self.fail(f"{EXT}.{raw_name} has more than {MAX_ITEMS} headers")
            out = []
            for i, pair in enumerate(pairs):
                what = f"{EXT}.{raw_name}[{i}]"
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail(f"{what} must be a [name, value] pair")
                out.append((self.f.b64(pair[0], what), self.f.b64(pair[1], what)))
            return tuple(out)
        items = part.req_list("headers")
        if len(items) > MAX_ITEMS:
            self.fail(f"{part.name('headers')} has more than {MAX_ITEMS} headers")
        out = []
        for i, h in enumerate(items):
            hf = Fields(self.path, self.index, h, f"{part.name('headers')}[{i}]")
            name, value = hf.req_str("name"), hf.req_str("value", "")
            out.append((name.encode("utf-8"), value.encode("utf-8")))
        return tuple(out)

    def open(self, conn: int) -> Open:
        f = self.f
        request = f.sub("request")
        response = f.sub("response")
        ext = self.ext
        url = request.req_str("url")
        try:
            parts = urlsplit(url)
            parsed_port = parts.port
        except ValueError as e:
            self.fail(f"request.url {url[:80]!r}: {e}")
        scheme = parts.scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            self.fail(f"request.url {url[:80]!r} is not a ws, wss, http or https URL")
        scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        host = parts.hostname or ""
        port = parsed_port if parsed_port is not None else (443 if scheme == "wss" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        request_headers = self._headers(request, "request_headers")
        response_headers = self._headers(response, "response_headers")
        status = response.req_int("status")
        if not is_status(status):
            self.fail(
                f"response.status {status} is not an HTTP status ({MIN_STATUS} to {MAX_STATUS})"
            )
        accepted = status == 101
        body = b""
        content = response.get("content")
        if isinstance(content, dict) and content.get("text"):
            cf = response.sub("content")
            text = cf.req_str("text")
            if cf.get("encoding") == "base64":
                body = cf.b64(text, "response.content.text")
            else:
                body = text.encode("utf-8")
        version = request.get("httpVersion") or response.get("httpVersion") or ""
        m = _HTTP_VERSION.match(str(version))
        # An upgrade is HTTP/1.1 unless the HAR says otherwise (RFC 6455 §4.1).
        http_version = f"HTTP/{m.group(1)}" if m else "HTTP/1.1"
        if ext is not None:
            if ext.has("scheme"):
                scheme = ext.req_str("scheme")
            if ext.has("host"):
                host = ext.req_str("host")
            if ext.has("port"):
                port = ext.req_int("port")
                if not is_port(port):
                    self.fail(f"{EXT}.port {port} is not a port (0 to {MAX_PORT})")
            if ext.has("target"):
                target = ext.req_str("target")
        if ext is not None and "subprotocols" in ext.obj:
            subprotocols = ext.strs("subprotocols")
            extensions = ext.strs("extensions")
            subprotocol = ext.opt_str("subprotocol")
            client = ext.opt_str("client")
            tls_f = ext.opt_sub("tls")
            tls = (
                None
                if tls_f is None
                else TlsInfo(
                    version=tls_f.opt_str("version"),
                    sni=tls_f.opt_str("sni"),
                    alpn=tls_f.opt_str("alpn"),
                )
            )
        else:
            subprotocols = _offers(request_headers, b"sec-websocket-protocol")
            extensions = _offers(request_headers, b"sec-websocket-extensions")
            chosen = _header(response_headers, b"sec-websocket-protocol")
            subprotocol = chosen if accepted else None
            client = None
            # A wss connection had TLS, but a HAR does not say which version, SNI or ALPN.
            tls = TlsInfo() if scheme == "wss" else None
        if len(subprotocols) > MAX_ITEMS or len(extensions) > MAX_ITEMS:
            self.fail(f"more than {MAX_ITEMS} offered subprotocols or extensions")
        return Open(
            conn=conn,
            started_at=self.started_at(),
            method=request.req_str("method", "GET"),
            scheme=scheme,
            host=host,
            port=port,
            target=target,
            http_version=http_version,
            request_headers=request_headers,
            status=status,
            response_headers=response_headers,
            subprotocols=subprotocols,
            extensions=extensions,
            subprotocol=subprotocol,
            client=client,
            tls=tls,
            reason=response.req_str("statusText", ""),
            body=body,
        )


_NUMBERS = (int, float)


def _item(path: Path, index: int, state: _EntryState, i: int, raw: Any) -> list[Any]:
    """One ``_webSocketMessages`` item as a spool item, ``[kind, exact t, epoch time,
    side, opcode, payload]``, checked. For a continuation frame the opcode field holds
    the position of the data message it continues."""
    # The common shapes first (Chrome's, and wstape's with its exact time), without a
    # Fields object; anything else, and every error, goes the strict way below.
    if type(raw) is dict:
        kind = raw.get("type")
        opcode = raw.get("opcode", 1)
        data = raw.get("data", "")
        when = raw.get("time")
        ext = raw.get(EXT)
        exact = None
        if ext is not None:
            t: Any = ext.get("t") if type(ext) is dict and len(ext) == 1 else None
            exact = float(t) if type(t) in _NUMBERS else None
        if (
            (kind == "send" or kind == "receive")
            and (opcode == 1 or opcode == 2)
            and type(opcode) is int
            and type(data) is str
            and (ext is None or exact is not None)
            and (when is None or exact is not None or type(when) in _NUMBERS)
        ):
            side = 0 if kind == "send" else 1
            try:
                if opcode == 1:
                    payload = data.encode("utf-8")
                else:
                    payload = base64.b64decode(data, validate=True)
            except (UnicodeEncodeError, binascii.Error, ValueError):
                pass  # reported with the field's name below
            else:
                state.last[side] = (state.messages, opcode == 1)
                epoch = None if exact is not None or when is None else float(when)
                return [_DATA, exact, epoch, side, opcode, payload]
    return _item_strict(path, index, state, i, raw)


def _item_strict(path: Path, index: int, state: _EntryState, i: int, raw: Any) -> list[Any]:
    mf = Fields(path, index, raw, f"{stream.MESSAGES}[{i}]")
    where = mf.where
    kind = mf.get("type")
    m_ext = mf.opt_sub(EXT)
    exact = m_ext.req_num("t") if m_ext is not None and m_ext.has("t") else None
    epoch: float | None = None
    when = mf.get("time")
    if exact is None and when is not None:
        if isinstance(when, str):
            epoch = parse_time(when)
            if epoch is None:
                mf.fail(f"{where}.time is not a number or an ISO 8601 time")
        else:
            epoch = mf.req_num("time")
    if kind == "error":
        return [_ERROR, exact, epoch, 0, 0, mf.req_str("data", "")]
    if kind not in ("send", "receive"):
        shown = repr(kind) if len(repr(kind)) <= 40 else repr(kind)[:40] + "..."
        mf.fail(f'{where}.type must be "send", "receive" or "error", not {shown}')
    side = 0 if kind == "send" else 1
    opcode = mf.req_int("opcode") if mf.has("opcode") else 1
    data = mf.req_str("data", "")
    if opcode == 1:
        if m_ext is not None and m_ext.get("encoding") == "base64":
            payload = mf.b64(data, f"{where}.data")
        else:
            payload = data.encode("utf-8")
        state.last[side] = (state.messages, True)
        return [_DATA, exact, epoch, side, 1, payload]
    if opcode == 2:
        state.last[side] = (state.messages, False)
        return [_DATA, exact, epoch, side, 2, mf.b64(data, f"{where}.data")]
    if opcode == 0:
        # A continuation frame (frame-level capture): appended to the message it
        # continues. Text continuations carry text, binary ones base64.
        prev = state.last.get(side)
        if prev is None:
            mf.fail(f"{where} continues no earlier message")
        position, is_text_message = prev
        extra = data.encode("utf-8") if is_text_message else mf.b64(data, f"{where}.data")
        return [_CONT, exact, epoch, side, position, extra]
    if opcode == 8:
        return [_CLOSE, exact, epoch, side, 8, data]
    if opcode in (9, 10):
        return [_TICK, exact, epoch, side, opcode, b""]  # ping/pong: only the time counts
    mf.fail(f"{where}.opcode {opcode} is not a WebSocket data opcode")


def read_har(
    path: str | Path,
    *,
    max_inflated: int | None = None,
    spool_dir: str | Path | None = None,
) -> HarImport:
    """Stream a HAR file (``.har`` JSON, or mitmproxy's zlib ``.zhar``) into a spool.

    ``max_inflated`` caps the inflated size of a ``.zhar`` (default: see
    :func:`wstape.interchange.sources.default_inflate_limit`); ``spool_dir`` is where the
    temporary spool goes (default: the system's temporary directory).

    Raises InterchangeError for a file that is not a HAR document, and for an entry that
    cannot be used (naming the file, the entry index and the field).
    """
    path = Path(path)
    with open_input(path) as raw:
        spool = tempfile.TemporaryFile(dir=spool_dir)
        har = HarImport(path, spool)
        try:
            _spool(har, JsonSource(raw, path, max_inflated=max_inflated))
        except BaseException:
            spool.close()
            raise
    spool.flush()
    return har


def _spool(har: HarImport, source: JsonSource) -> None:
    path = har.path
    spool = har._spool
    packer = msgpack.Packer(use_bin_type=True, unicode_errors="surrogatepass")
    log: dict[str, Any] = {}
    state: _EntryState | None = None
    for kind, key, value in stream.walk_har(source):
        if kind == stream.ITEM:
            assert state is not None
            item = _item(path, state.index, state, key, value)
            if state.items < 0:
                state.items = spool.tell()
            if item[0] == _CONT:
                offset = spool.tell()
                data = packer.pack(item)
                spool.write(data)
                if state.extras is None:
                    state.extras = {}
                pairs = state.extras.get(item[4])
                if pairs is None:
                    pairs = state.extras[item[4]] = array("q")
                pairs.append(offset)
                pairs.append(len(data))
            else:
                if item[0] == _DATA:
                    state.messages += 1
                spool.write(packer.pack(item))
            state.count += 1
        elif kind == stream.ENTRY:
            head, has_messages = value
            if state is None or state.index != key:
                state = _EntryState(index=key)
            _entry_done(har, state, head, has_messages, packer)
            state = None
        elif kind == stream.ITEMS:
            state = _EntryState(index=key)
        elif kind == stream.OTHER:
            Fields(path, key, value, "entry")  # raises: an entry must be an object
        elif kind == stream.LOG:
            log[key] = value
            if key == EXT:
                _check_ext_version(path, value)
    _log_done(har, log)


def _maybe_websocket(head: dict[str, Any], has_messages: bool) -> bool:
    """False for an entry that is plainly no WebSocket (most of a page's HAR), cheaply;
    :meth:`_Entry.is_websocket` decides the rest."""
    if has_messages or EXT in head or stream.MESSAGES in head:
        return True
    kind = head.get("_resourceType")
    if isinstance(kind, str) and kind.lower() == "websocket":
        return True
    request = head.get("request")
    return isinstance(request, dict) and ("url" in request or "headers" in request)


def _entry_done(
    har: HarImport, state: _EntryState, head: dict[str, Any], has_messages: bool, packer: Any
) -> None:
    if not _maybe_websocket(head, has_messages):
        har.skipped += 1
        return
    if stream.MESSAGES in head and not isinstance(head[stream.MESSAGES], list):
        Fields(har.path, state.index, head, "entry").req_list(stream.MESSAGES)
    entry = _Entry(har.path, state.index, head, has_messages=has_messages)
    if not entry.is_websocket():
        har.skipped += 1
        return
    if entry.status() == 0:
        har.failed += 1
        return
    start = entry.started_at()
    conn, bad = entry.conn()
    spool = har._spool
    offset = spool.tell()
    spool.write(packer.pack(head))
    har._entries.append(
        _Spooled(
            index=state.index,
            start=start,
            head=offset,
            items=state.items if state.items >= 0 else offset,
            count=state.count,
            messages=state.messages,
            extras=state.extras,
            conn=conn,
            bad_conn=bad,
        )
    )


def _check_ext_version(path: Path, ext: Any) -> None:
    if isinstance(ext, dict):
        version = ext.get("version")
        if isinstance(version, int) and not isinstance(version, bool) and version > EXT_VERSION:
            raise InterchangeError(
                path,
                f"{EXT} extension version {version} is newer than this wstape reads: "
                "upgrade wstape",
            )


def _log_done(har: HarImport, log: dict[str, Any]) -> None:
    path = har.path
    ext = log.get(EXT)
    har.has_ext = isinstance(ext, dict)
    creator = None
    started_at = None
    if isinstance(ext, dict):
        g = Fields(path, None, ext, f"log.{EXT}")
        creator = g.opt_str("creator")
        started_at = g.opt_num("started_at")
        if started_at is not None and not is_epoch(started_at):
            g.fail(f"log.{EXT}.started_at {started_at!r} is not a date")
        for i, n in enumerate(g.req_list("notes")):
            ng = Fields(path, None, n, f"log.{EXT}.notes[{i}]")
            note = Note(conn=None, text=ng.req_str("text"), t=ng.opt_num("t"))
            har._notes.append((ng.req_int("after"), note))
    if creator is None:
        who = log.get("creator")
        name = who.get("name") if isinstance(who, dict) else None
        version = who.get("version") if isinstance(who, dict) else None
        source = " ".join(str(x) for x in (name, version) if x) or "an unknown tool"
        if not is_text(source):
            source = "an unknown tool"
        creator = f"wstape {__version__} (imported from a HAR by {source[:200]})"
    if started_at is None:
        started_at = min((e.start for e in har._entries), default=0.0)
    har.creator = creator
    har.started_at = started_at
    problem = header_problem(Header(FORMAT_VERSION, creator, started_at))
    if problem is not None:
        raise InterchangeError(path, problem)


__all__ = ["CONN_NOTE", "EARLY_NOTE", "REUSED_NOTE", "UNKNOWN_END_NOTE", "HarImport", "read_har"]
