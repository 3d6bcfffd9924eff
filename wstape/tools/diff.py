"""Compare two cassettes connection by connection and message by message.

Memory: one pass over each cassette builds, per connection, its open and close records
and an index of its messages (an 8-byte digest and the byte offset of each), never the
payloads. Messages are aligned on their digests (common prefix and suffix first, then
``difflib`` on the part in between when it is small enough, position by position
otherwise); only the messages reported as changed, added or removed are read back from
the files, a few at a time.

Connections are paired by path: the n-th connection to ``/chat`` in one cassette with the
n-th connection to ``/chat`` in the other, the way replay picks a recorded connection for
a client. Times are not compared (two recordings of the same session never have the same
timing), nor are values that change on every connection: the client address and the
``Sec-WebSocket-Key``, ``Sec-WebSocket-Accept`` and ``Date`` headers.

A changed message is explained JSON-aware when both sides are JSON text (the paths whose
values differ), otherwise by the first differing byte (binary) or character (text), with
the number of differing bytes, so one changed byte in a 1 MiB message is found.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from wstape.cassettes.reader import CassetteReader
from wstape.core.codecs import Codec
from wstape.core.connections import ConnectionTracker, Strays
from wstape.core.model import Close, Message, Opcode, Open, headers_as_text
from wstape.interchange.jsonl import close_fields
from wstape.tools.decoded import ProtocolView

VOLATILE_HEADERS = frozenset({"sec-websocket-key", "sec-websocket-accept", "date"})
"""Headers that differ between any two recordings; not compared unless asked."""
MAX_ALIGN = 20_000
"""Longest differing middle section aligned with difflib; longer ones align by position."""
MAX_DETAILS = 50
"""Changes listed per connection by default (all of them are counted)."""
MAX_JSON_CHANGES = 20
"""JSON paths listed per changed message."""
_PREVIEW = 80


def _digest(m: Message) -> int:
    h = hashlib.blake2b(digest_size=8)
    h.update(b"c" if m.side.value == "client" else b"s")
    h.update(b"t" if m.opcode is Opcode.TEXT else b"b")
    h.update(m.payload)
    return int.from_bytes(h.digest(), "big")


@dataclass
class ConnIndex:
    """What diff keeps of one connection: its open and close and a digest per message."""

    open: Open
    close: Close | None = None
    digests: array[int] = field(default_factory=lambda: array("Q"))
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    indices: array[int] = field(default_factory=lambda: array("Q"))


def index_cassette(reader: CassetteReader) -> tuple[list[ConnIndex], Strays]:
    """One pass over the cassette: the index of every connection, in opening order, and
    the records of no connection (:mod:`wstape.core.connections`), which are left out."""
    conns: list[ConnIndex] = []
    tracker = ConnectionTracker()
    for index, offset, record in reader.iter_with_offsets():
        slot = tracker.route(record)
        if slot < 0:
            continue
        if isinstance(record, Open):
            conns.append(ConnIndex(open=record))
        elif isinstance(record, Message):
            owner = conns[slot]
            owner.digests.append(_digest(record))
            owner.offsets.append(offset)
            owner.indices.append(index)
        elif isinstance(record, Close):
            conns[slot].close = record
    return conns, tracker.strays


def _fetch(reader: CassetteReader, conn: ConnIndex, i: int) -> Message:
    for _, _, record in reader.iter_with_offsets(start=conn.offsets[i], index=conn.indices[i]):
        assert isinstance(record, Message)
        return record
    raise AssertionError("indexed message vanished")  # pragma: no cover


# -- alignment -------------------------------------------------------------------------


Opcodes = list[tuple[str, int, int, int, int]]


def align(a: Sequence[int], b: Sequence[int], *, max_align: int = MAX_ALIGN) -> Opcodes:
    """``difflib``-style opcodes (equal/replace/delete/insert) turning ``a`` into ``b``."""
    n, m = len(a), len(b)
    prefix = 0
    while prefix < min(n, m) and a[prefix] == b[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(n, m) - prefix and a[n - 1 - suffix] == b[m - 1 - suffix]:
        suffix += 1
    out: Opcodes = []
    if prefix:
        out.append(("equal", 0, prefix, 0, prefix))
    a_mid = list(a[prefix : n - suffix])
    b_mid = list(b[prefix : m - suffix])
    if a_mid or b_mid:
        if len(a_mid) <= max_align and len(b_mid) <= max_align:
            sm = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False)
            for tag, i1, i2, j1, j2 in sm.get_opcodes():
                out.append((tag, i1 + prefix, i2 + prefix, j1 + prefix, j2 + prefix))
        else:
            common = min(len(a_mid), len(b_mid))
            i = 0
            while i < common:  # runs of equal and unequal positions
                j = i
                same = a_mid[i] == b_mid[i]
                while j < common and (a_mid[j] == b_mid[j]) == same:
                    j += 1
                tag = "equal" if same else "replace"
                out.append((tag, prefix + i, prefix + j, prefix + i, prefix + j))
                i = j
            if len(a_mid) > common:
                out.append(
                    (
                        "delete",
                        prefix + common,
                        prefix + len(a_mid),
                        prefix + common,
                        prefix + common,
                    )
                )
            if len(b_mid) > common:
                out.append(
                    (
                        "insert",
                        prefix + common,
                        prefix + common,
                        prefix + common,
                        prefix + len(b_mid),
                    )
                )
    if suffix:
        out.append(("equal", n - suffix, n, m - suffix, m))
    return out


# -- explaining differences ------------------------------------------------------------


def _json_path(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _small(value: Any) -> Any:
    """A JSON value, or a short summary of a big one."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) <= 200:
        return value
    kind = "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "value"
    return f"<{kind} of {len(text)} characters>"


def json_changes(
    a: Any, b: Any, path: str = "$", limit: int = MAX_JSON_CHANGES
) -> list[dict[str, Any]]:
    """The paths at which two JSON documents differ (at most ``limit`` + 1 entries)."""
    out: list[dict[str, Any]] = []
    stack: list[tuple[str, Any, Any]] = [(path, a, b)]
    while stack and len(out) <= limit:
        p, x, y = stack.pop()
        if isinstance(x, dict) and isinstance(y, dict):
            items: list[tuple[str, Any, Any]] = []
            for k in x:
                if k not in y:
                    out.append(
                        {
                            "kind": "json",
                            "path": _json_path(p, k),
                            "change": "removed",
                            "a": _small(x[k]),
                        }
                    )
                else:
                    items.append((_json_path(p, k), x[k], y[k]))
            for k in y:
                if k not in x:
                    out.append(
                        {
                            "kind": "json",
                            "path": _json_path(p, k),
                            "change": "added",
                            "b": _small(y[k]),
                        }
                    )
            stack.extend(reversed(items))
        elif isinstance(x, list) and isinstance(y, list):
            items = [(_json_path(p, i), x[i], y[i]) for i in range(min(len(x), len(y)))]
            for i in range(len(y), len(x)):
                out.append(
                    {
                        "kind": "json",
                        "path": _json_path(p, i),
                        "change": "removed",
                        "a": _small(x[i]),
                    }
                )
            for i in range(len(x), len(y)):
                out.append(
                    {"kind": "json", "path": _json_path(p, i), "change": "added", "b": _small(y[i])}
                )
            stack.extend(reversed(items))
        elif type(x) is not type(y) or (x != y and not _both_nan(x, y)):
            out.append(_changed(p, x, y))
    return out


def _both_nan(x: Any, y: Any) -> bool:
    """NaN (which JSON readers take) is not equal to itself, but the values are the same."""
    return isinstance(x, float) and isinstance(y, float) and x != x and y != y


STRING_WINDOW = (40, 80)
"""Characters shown before and from the first difference of two long strings."""


def _first_difference(x: str, y: str) -> int:
    """The index of the first character where ``x`` and ``y`` differ (the shorter's length
    if one starts the other), comparing a block at a time."""
    common, block, start = min(len(x), len(y)), 4096, 0
    while start < common and x[start : start + block] == y[start : start + block]:
        start += block
    for i in range(start, min(start + block, common)):
        if x[i] != y[i]:
            return i
    return common


def _changed(path: str, x: Any, y: Any) -> dict[str, Any]:
    """A ``changed`` entry. Two strings too long to show whole are shown around their first
    difference, with its ``offset`` (QA: both read ``<value of 5000002 characters>``, so the
    change could not be seen)."""
    a, b = _small(x), _small(y)
    if not (isinstance(x, str) and isinstance(y, str) and (a is not x or b is not y)):
        return {"kind": "json", "path": path, "change": "changed", "a": a, "b": b}
    first = _first_difference(x, y)
    before, after = STRING_WINDOW
    lo = max(0, first - before)

    def around(text: str) -> str:
        part = text[lo : first + after]
        return ("..." if lo else "") + part + ("..." if first + after < len(text) else "")

    return {
        "kind": "json",
        "path": path,
        "change": "changed",
        "offset": first,
        "a": around(x),
        "b": around(y),
        "lengths": [len(x), len(y)],
    }


def _hex(data: bytes) -> str:
    return data.hex(" ")


def bytes_change(a: bytes, b: bytes) -> dict[str, Any] | None:
    """Where two payloads first differ and how many bytes differ; None when equal."""
    if a == b:
        return None
    common = min(len(a), len(b))
    first = common
    chunk = 4096
    differing = 0
    ma, mb = memoryview(a), memoryview(b)
    for start in range(0, common, chunk):
        stop = min(start + chunk, common)
        if ma[start:stop] != mb[start:stop]:
            for i in range(start, stop):
                if a[i] != b[i]:
                    first = min(first, i)
                    differing += 1
    lo = max(0, first - 8)
    out: dict[str, Any] = {
        "kind": "bytes",
        "offset": first,
        "a": a[first : first + 1].hex() or None,
        "b": b[first : first + 1].hex() or None,
        "differing": differing + abs(len(a) - len(b)),
        "context_a": _hex(a[lo : first + 9]),
        "context_b": _hex(b[lo : first + 9]),
    }
    if len(a) != len(b):
        out["size_a"] = len(a)
        out["size_b"] = len(b)
    return out


def text_change(a: str, b: str) -> dict[str, Any]:
    common = min(len(a), len(b))
    first = next((i for i in range(common) if a[i] != b[i]), common)
    lo = max(0, first - 20)
    return {
        "kind": "text",
        "offset": first,
        "a": a[lo : first + 40],
        "b": b[lo : first + 40],
    }


def _as_json(text: str | None) -> tuple[bool, Any]:
    if text is None:
        return False, None
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return False, None
    try:
        return True, json.loads(text)
    except (ValueError, RecursionError):
        return False, None


def message_details(a: Message, b: Message, codec: Codec | None = None) -> list[dict[str, Any]]:
    """Why two paired messages differ (field by field through ``codec`` when both decode:
    an MQTT packet id, a Socket.IO event argument)."""
    out: list[dict[str, Any]] = []
    if a.side is not b.side:
        out.append({"kind": "field", "field": "from", "a": a.side.value, "b": b.side.value})
    if a.opcode is not b.opcode:
        out.append({"kind": "field", "field": "opcode", "a": a.opcode.value, "b": b.opcode.value})
    if a.payload == b.payload:
        return out
    if codec is not None:
        da = codec.decode(a.side, a.opcode, a.payload)
        db = codec.decode(b.side, b.opcode, b.payload)
        if da is not None and db is not None:
            changes = json_changes(_plain(da.value), _plain(db.value))
            if changes:
                if len(changes) > MAX_JSON_CHANGES:
                    changes = [*changes[:MAX_JSON_CHANGES], {"kind": "json", "more": True}]
                return out + [{**c, "protocol": codec.name} for c in changes]
    ta, tb = a.text(), b.text()
    ja, va = _as_json(ta)
    jb, vb = _as_json(tb)
    if ja and jb:
        try:
            changes = json_changes(va, vb)
        except RecursionError:  # pragma: no cover - json_changes does not recurse
            changes = []
        if changes:
            if len(changes) > MAX_JSON_CHANGES:
                changes = [*changes[:MAX_JSON_CHANGES], {"kind": "json", "more": True}]
            return out + changes
        # Same JSON value, different bytes (spacing, key order, escapes): say where.
        out.append({**text_change(ta or "", tb or ""), "same_json": True})
        return out
    if ta is not None and tb is not None:
        out.append(text_change(ta, tb))
        return out
    change = bytes_change(a.payload, b.payload)
    if change is not None:
        out.append(change)
    return out


def _plain(value: Any) -> Any:
    """A decoded value with bytes as hex, so it diffs and prints as JSON."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- the comparison --------------------------------------------------------------------


def preview(m: Message, width: int = _PREVIEW) -> str:
    text = m.text()
    if text is not None:
        one = text.replace("\r", "\\r").replace("\n", "\\n")
        return one if len(one) <= width else one[:width] + "…"
    head = m.payload[:16].hex(" ")
    return head + (" …" if m.size > 16 else "")


def _open_fields(o: Open) -> dict[str, Any]:
    return {
        "method": o.method,
        "url": o.url,
        "http_version": o.http_version,
        "status": o.status,
        "reason": o.reason,
        "subprotocols": list(o.subprotocols),
        "extensions": list(o.extensions),
        "subprotocol": o.subprotocol,
        "tls": None
        if o.tls is None
        else {"version": o.tls.version, "sni": o.tls.sni, "alpn": o.tls.alpn},
        "body": o.body.decode("utf-8", "replace"),
    }


def _header_map(headers: Iterable[list[str]], ignore: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key not in ignore:
            out.setdefault(key, []).append(value)
    return out


def open_changes(a: Open, b: Open, ignore_headers: frozenset[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    fa, fb = _open_fields(a), _open_fields(b)
    for name in fa:
        if fa[name] != fb[name]:
            out.append({"field": name, "a": fa[name], "b": fb[name]})
    for which, ha, hb in (
        ("request header", a.request_headers, b.request_headers),
        ("response header", a.response_headers, b.response_headers),
    ):
        ma = _header_map(headers_as_text(ha), ignore_headers)
        mb = _header_map(headers_as_text(hb), ignore_headers)
        for key in sorted(set(ma) | set(mb)):
            va, vb = ma.get(key), mb.get(key)
            if va != vb:
                out.append({"field": which, "name": key, "a": va, "b": vb})
    return out


def close_changes(a: Close | None, b: Close | None) -> list[dict[str, Any]]:
    fa = None if a is None else close_fields(a)
    fb = None if b is None else close_fields(b)
    if fa is None or fb is None:
        return [] if fa == fb else [{"field": "close", "a": fa, "b": fb}]
    return [{"field": k, "a": fa[k], "b": fb[k]} for k in fa if fa[k] != fb[k]]


def _message_summary(m: Message) -> dict[str, Any]:
    return {"from": m.side.value, "opcode": m.opcode.value, "size": m.size, "preview": preview(m)}


@dataclass
class ConnectionDiff:
    status: str
    """``same``, ``changed``, ``added`` (only in b) or ``removed`` (only in a)."""
    a: ConnIndex | None
    b: ConnIndex | None
    open: list[dict[str, Any]] = field(default_factory=list)
    close: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    left_out: int = 0

    def to_json(self) -> dict[str, Any]:
        first = self.a or self.b
        assert first is not None
        return {
            "status": self.status,
            "a": None if self.a is None else self.a.open.conn,
            "b": None if self.b is None else self.b.open.conn,
            "url": first.open.url,
            "open": self.open,
            "messages": self.counts,
            "changes": self.changes,
            "changes_left_out": self.left_out,
            "close": self.close,
        }


@dataclass
class CassetteDiff:
    a: str
    b: str
    connections: list[ConnectionDiff]
    strays: tuple[Strays, Strays] = field(default_factory=lambda: (Strays(), Strays()))
    """Records of no connection in a and in b (not compared)."""

    @property
    def same(self) -> bool:
        return all(c.status == "same" for c in self.connections)

    def to_json(self) -> dict[str, Any]:
        """The ``wstape diff --json`` document (docs/interchange.md)."""
        return {
            "same": self.same,
            "a": self.a,
            "b": self.b,
            "connections": [c.to_json() for c in self.connections],
        }


def _pair(
    a: list[ConnIndex], b: list[ConnIndex]
) -> list[tuple[ConnIndex | None, ConnIndex | None]]:
    by_path: dict[str, list[ConnIndex]] = {}
    for c in b:
        by_path.setdefault(c.open.path, []).append(c)
    used: set[int] = set()
    pairs: list[tuple[ConnIndex | None, ConnIndex | None]] = []
    for c in a:
        candidates = by_path.get(c.open.path)
        if candidates:
            other = candidates.pop(0)
            used.add(id(other))
            pairs.append((c, other))
        else:
            pairs.append((c, None))
    pairs.extend((None, c) for c in b if id(c) not in used)
    return pairs


def _diff_connection(
    ra: CassetteReader,
    rb: CassetteReader,
    a: ConnIndex,
    b: ConnIndex,
    ignore_headers: frozenset[str],
    max_details: int,
    codec: Codec | None = None,
) -> ConnectionDiff:
    d = ConnectionDiff(status="same", a=a, b=b)
    d.open = open_changes(a.open, b.open, ignore_headers)
    d.close = close_changes(a.close, b.close)
    counts = {
        "a": len(a.digests),
        "b": len(b.digests),
        "same": 0,
        "changed": 0,
        "added": 0,
        "removed": 0,
    }

    def note(change: dict[str, Any]) -> None:
        if len(d.changes) < max_details:
            d.changes.append(change)
        else:
            d.left_out += 1

    for tag, i1, i2, j1, j2 in align(a.digests, b.digests):
        if tag == "equal":
            counts["same"] += i2 - i1
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for k in range(paired):
            counts["changed"] += 1
            if len(d.changes) < max_details:
                ma, mb = _fetch(ra, a, i1 + k), _fetch(rb, b, j1 + k)
                note(
                    {
                        "change": "changed",
                        "a_index": i1 + k + 1,
                        "b_index": j1 + k + 1,
                        "from": ma.side.value,
                        "opcode": ma.opcode.value,
                        "size": {"a": ma.size, "b": mb.size},
                        "details": message_details(ma, mb, codec),
                    }
                )
            else:
                d.left_out += 1
        for i in range(i1 + paired, i2):
            counts["removed"] += 1
            if len(d.changes) < max_details:
                note({"change": "removed", "a_index": i + 1, **_message_summary(_fetch(ra, a, i))})
            else:
                d.left_out += 1
        for j in range(j1 + paired, j2):
            counts["added"] += 1
            if len(d.changes) < max_details:
                note({"change": "added", "b_index": j + 1, **_message_summary(_fetch(rb, b, j))})
            else:
                d.left_out += 1
    d.counts = counts
    if d.open or d.close or counts["same"] != counts["a"] or counts["a"] != counts["b"]:
        d.status = "changed"
    return d


def diff_cassettes(
    ra: CassetteReader,
    rb: CassetteReader,
    *,
    ignore_headers: Iterable[str] = (),
    compare_volatile: bool = False,
    max_details: int = MAX_DETAILS,
    protocols: ProtocolView | None = None,
) -> CassetteDiff:
    """Compare two cassettes. Raises CassetteError for an unreadable one.

    ``ignore_headers`` adds header names (case-insensitive) not to compare;
    ``compare_volatile`` compares ``VOLATILE_HEADERS`` too; ``protocols`` (of the first
    cassette) explains changed messages field by field through their codec.
    """
    ignore = frozenset(h.lower() for h in ignore_headers)
    if not compare_volatile:
        ignore |= VOLATILE_HEADERS
    ia, strays_a = index_cassette(ra)
    ib, strays_b = index_cassette(rb)
    truncated = ra.truncated_at, rb.truncated_at
    result = CassetteDiff(
        a=str(ra.path), b=str(rb.path), connections=[], strays=(strays_a, strays_b)
    )
    for ca, cb in _pair(ia, ib):
        if ca is not None and cb is not None:
            codec = protocols.codec(ca.open.conn) if protocols is not None else None
            result.connections.append(_diff_connection(ra, rb, ca, cb, ignore, max_details, codec))
        elif ca is not None:
            result.connections.append(
                ConnectionDiff(
                    status="removed",
                    a=ca,
                    b=None,
                    counts={
                        "a": len(ca.digests),
                        "b": 0,
                        "same": 0,
                        "changed": 0,
                        "added": 0,
                        "removed": len(ca.digests),
                    },
                )
            )
        elif cb is not None:
            result.connections.append(
                ConnectionDiff(
                    status="added",
                    a=None,
                    b=cb,
                    counts={
                        "a": 0,
                        "b": len(cb.digests),
                        "same": 0,
                        "changed": 0,
                        "added": len(cb.digests),
                        "removed": 0,
                    },
                )
            )
    # Reading single messages back resets the readers' state; keep what the full pass saw.
    ra.truncated_at, rb.truncated_at = truncated
    return result
