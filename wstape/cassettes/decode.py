"""The reader's fast decode: a record map exactly as the writer lays it out, checked with a
few type tests, into its model object.

Each function here returns what :func:`wstape.cassettes.schema.record_from_dict` returns for
the same map, or None for anything else (a field more or fewer, another type, a value out
of range), and the reader then takes the long way: the byte scan
(:mod:`wstape.cassettes.scan`) and the full schema check, which name what is wrong. So a
decoder here is a shortcut, never a second opinion (tests/cassettes/test_decode.py holds
them to the same answers). The reader picks one decoder per file, by format version
(:meth:`wstape.cassettes.reader.CassetteReader.decoder`).

The reader hands these functions only records of at most ``MAX_FAST_BYTES``, built by a
``msgpack.Unpacker`` with tight limits, so they need no length check: no string or bytes
value of such a record can pass a limit of the schema. That Unpacker builds arrays as
tuples (``use_list=False``): a header list or a v2 message is then kept as msgpack built
it, with no copy; a list takes the long way.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from sys import intern
from typing import Any, cast

from wstape.cassettes.schema import MAX_CONN, MAX_EPOCH, MAX_OFFSET, MAX_TEXT_BYTES
from wstape.cassettes.v2 import MESSAGE_ITEMS
from wstape.core.connections import KIND_OPCODE, KIND_SIDE, MessageFields, MessageRun
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side, TlsInfo

MAX_FAST_BYTES = 128 * 1024
"""The largest record the reader decodes here (larger ones take the long way)."""
assert MAX_FAST_BYTES <= MAX_TEXT_BYTES  # so no length check is needed below

Decoder = Callable[[Any], "Record | MessageFields | None"]
"""What msgpack built for one record -> its record, or None to take the long way."""

_new = object.__new__
"""Model objects are built by filling their ``__dict__`` in field order: the same object
as the frozen dataclass's ``__init__`` makes (which sets each field through
``object.__setattr__``, some three times slower; the model has no ``__post_init__``)."""

_SIDES = {"client": Side.CLIENT, "server": Side.SERVER}
_OPCODES = {"text": Opcode.TEXT, "binary": Opcode.BINARY}
_OPEN_KEYS = (
    "type",
    "conn",
    "started_at",
    "method",
    "scheme",
    "host",
    "port",
    "target",
    "http_version",
    "request_headers",
    "subprotocols",
    "extensions",
    "client",
    "tls",
    "status",
    "reason",
    "response_headers",
    "subprotocol",
    "body",
)
"""The fields of an open record in the order the writer writes them (schema.record_to_dict):
a map in another order takes the long way."""
_TLS_KEYS = ("version", "sni", "alpn")
_CLOSE_KEYS = ("type", "conn", "t", "by", "code", "reason", "on_wire")


def _is_headers(v: Any) -> bool:
    """Whether ``v`` is a header list as the fast Unpacker builds it: a tuple of
    (name, value) tuples of bytes."""
    if type(v) is not tuple:
        return False
    for pair in v:
        if type(pair) is not tuple or len(pair) != 2:
            return False
        name, value = pair
        if type(name) is not bytes or type(value) is not bytes:
            return False
    return True


def _is_strs(v: Any) -> bool:
    """Whether ``v`` is a tuple of strings."""
    if type(v) is not tuple:
        return False
    for item in v:
        if type(item) is not str:
            return False
    return True


def _opt_str(v: Any) -> bool:
    return v is None or type(v) is str


def _open(d: dict[str, Any]) -> Open | None:
    if tuple(d) != _OPEN_KEYS:  # (one comparison, then the values in order: no lookups)
        return None
    (
        _,
        conn,
        started_at,
        method,
        scheme,
        host,
        port,
        target,
        http_version,
        request_headers,
        subprotocols,
        extensions,
        client,
        tls,
        status,
        reason,
        response_headers,
        subprotocol,
        body,
    ) = d.values()
    if not (
        type(conn) is int
        and 0 <= conn <= MAX_CONN
        and type(started_at) is float
        and 0.0 <= started_at < MAX_EPOCH
        and type(port) is int
        and 0 <= port <= 65535
        and type(status) is int
        and 100 <= status <= 999
        and type(method) is str
        and type(scheme) is str
        and type(host) is str
        and type(target) is str
        and type(http_version) is str
        and type(reason) is str
        and type(body) is bytes
        and _opt_str(client)
        and _opt_str(subprotocol)
    ):
        return None
    info = None
    if tls is not None:
        if type(tls) is not dict or tuple(tls) != _TLS_KEYS:
            return None
        version, sni, alpn = tls.values()
        if not (_opt_str(version) and _opt_str(sni) and _opt_str(alpn)):
            return None
        info = TlsInfo(version, sni, alpn)
    if not (
        _is_headers(request_headers)
        and _is_headers(response_headers)
        and _is_strs(subprotocols)
        and _is_strs(extensions)
    ):
        return None
    op = _new(Open)
    f = op.__dict__  # (see _new)
    f["conn"] = conn
    f["started_at"] = started_at
    f["method"] = intern(method)  # (these repeat from connection to connection)
    f["scheme"] = intern(scheme)
    f["host"] = intern(host)
    f["port"] = port
    f["target"] = target
    f["http_version"] = intern(http_version)
    f["request_headers"] = request_headers
    f["status"] = status
    f["response_headers"] = response_headers
    f["subprotocols"] = subprotocols
    f["extensions"] = extensions
    f["subprotocol"] = subprotocol
    f["client"] = client
    f["tls"] = info
    f["reason"] = intern(reason)
    f["body"] = body
    return op


def _other(d: Any) -> Record | None:
    """An open, close or note record (messages are the callers' own fast case)."""
    if type(d) is not dict:
        return None
    kind = d.get("type")
    if kind == "open":
        return _open(d)
    if kind == "close":
        if tuple(d) != _CLOSE_KEYS:
            return None
        _, conn, t, by, code, reason, on_wire = d.values()
        if not (
            type(conn) is int
            and 0 <= conn <= MAX_CONN
            and type(t) is float
            and 0.0 <= t <= MAX_OFFSET
            and (by is None or (type(by) is str and by in _SIDES))
            and (code is None or (type(code) is int and 0 <= code <= 0xFFFF))
            and type(reason) is str
            and type(on_wire) is bool
        ):
            return None
        close = _new(Close)
        f = close.__dict__
        f["conn"] = conn
        f["t"] = t
        f["by"] = None if by is None else _SIDES[by]
        f["code"] = code
        f["reason"] = reason
        f["on_wire"] = on_wire
        return close
    if kind == "note":
        if len(d) != 4:
            return None
        conn, t, text = d.get("conn"), d.get("t"), d.get("text")
        if not (
            (conn is None or (type(conn) is int and 0 <= conn <= MAX_CONN))
            and (t is None or (type(t) is float and 0.0 <= t <= MAX_OFFSET))
            and type(text) is str
            and "t" in d
        ):
            return None
        return Note(conn, text, t)
    return None


def decode_v1(d: Any) -> Record | None:
    """A version-1 record map -> its record (None: take the long way)."""
    try:
        if len(d) != 6 or d["type"] != "message":
            return _other(d)
        conn, t, data = d["conn"], d["t"], d["data"]
        side, opcode = _SIDES[d["from"]], _OPCODES[d["opcode"]]
    except (KeyError, TypeError):  # no map, a field missing, a side or opcode unknown
        return None
    if (
        type(conn) is int
        and type(t) is float
        and type(data) is bytes
        and 0 <= conn <= MAX_CONN
        and 0.0 <= t <= MAX_OFFSET
    ):
        message = _new(Message)
        f = message.__dict__
        f["conn"] = conn
        f["t"] = t
        f["side"] = side
        f["opcode"] = opcode
        f["payload"] = data
        return message
    return None


def decode_v1_fields(d: Any) -> Record | MessageFields | None:
    """:func:`decode_v1`, with a message as the plain tuple of its fields
    (:data:`wstape.core.connections.MessageFields`), for the folds that need no Message."""
    try:
        if len(d) != 6 or d["type"] != "message":
            return _other(d)
        conn, t, data = d["conn"], d["t"], d["data"]
        fields = (conn, t, _SIDES[d["from"]], _OPCODES[d["opcode"]], data)
    except (KeyError, TypeError):  # no map, a field missing, a side or opcode unknown
        return None
    if (
        type(conn) is int
        and type(t) is float
        and type(data) is bytes
        and 0 <= conn <= MAX_CONN
        and 0.0 <= t <= MAX_OFFSET
    ):
        return fields
    return None


def _v2_map(d: Any) -> Record | None:
    # An end record takes the long way: the reader holds the pass to it (one per writer).
    if type(d) is not dict or d.get("type") in ("end", "message"):
        return None
    return _other(d)


def decode_v2_fields(obj: Any) -> Record | MessageFields | None:
    """A version-2 record (:mod:`wstape.cassettes.v2`: a message array ``[conn, t, kind,
    data]``, else a map) -> its record, a message as the plain tuple of its fields (None:
    take the long way)."""
    if type(obj) is not tuple:
        return _v2_map(obj)
    if len(obj) != MESSAGE_ITEMS:
        return None
    conn, t, kind, data = obj
    if (
        type(conn) is int
        and type(t) is float
        and type(kind) is int
        and type(data) is bytes
        and 0 <= conn <= MAX_CONN
        and 0.0 <= t <= MAX_OFFSET
        and 0 <= kind <= 3
    ):
        return (conn, t, KIND_SIDE[kind], KIND_OPCODE[kind], data)
    return None


_TUPLE, _MESSAGE_ITEMS = {tuple}, {MESSAGE_ITEMS}
_INT, _FLOAT, _BYTES = {int}, {float}, {bytes}
_DICT, _V1_MESSAGE_FIELDS, _V1_MESSAGE = {dict}, {6}, {"message"}
_V1_FIELDS = itemgetter("type", "conn", "t", "from", "opcode", "data")
_V1_KINDS = {
    ("client", "text"): 0,
    ("client", "binary"): 1,
    ("server", "text"): 2,
    ("server", "binary"): 3,
}
"""A v1 message's ``from`` and ``opcode`` -> its kind (:data:`KIND_SIDE`, :data:`KIND_OPCODE`)."""


def v2_run(objs: list[Any]) -> MessageRun | None:
    """What msgpack built for consecutive version-2 records -> the messages they are, as a
    :class:`~wstape.core.connections.MessageRun`, when :func:`decode_v2_fields` takes every
    one of them as a message; else None (the caller then decodes them one by one). The
    same tests as :func:`decode_v2_fields`, made a column at a time in C: exact types (a
    bool is no int), every value in range (a NaN time fails the sum), none skipped."""
    if not objs or set(map(type, objs)) != _TUPLE or set(map(len, objs)) != _MESSAGE_ITEMS:
        return None
    conns, ts, kinds, payloads = zip(*objs, strict=True)
    if set(map(type, kinds)) != _INT or min(kinds) < 0 or max(kinds) > 3:
        return None
    return _run(conns, ts, kinds, payloads)


def v1_run(objs: list[Any]) -> MessageRun | None:
    """:func:`v2_run` for version-1 records: a run when :func:`decode_v1_fields` takes
    every one of them as a message (a map of six fields, ``type`` "message", a known
    ``from`` and ``opcode``, the same tests of the values), a column at a time."""
    if not objs or set(map(type, objs)) != _DICT or set(map(len, objs)) != _V1_MESSAGE_FIELDS:
        return None
    try:
        types, conns, ts, sides, opcodes, payloads = zip(*map(_V1_FIELDS, objs), strict=True)
        kinds = tuple(map(_V1_KINDS.get, zip(sides, opcodes, strict=True)))
    except (KeyError, TypeError):  # (a field missing; an unhashable from or opcode)
        return None
    if set(types) != _V1_MESSAGE or None in kinds:
        return None
    return _run(conns, ts, cast(tuple[int, ...], kinds), payloads)


def _run(
    conns: tuple[Any, ...], ts: tuple[Any, ...], kinds: tuple[int, ...], payloads: tuple[Any, ...]
) -> MessageRun | None:
    """The columns of a run, held to :func:`decode_v2_fields`'s tests of conn, t and data
    (the kinds checked by the caller)."""
    total = sum(ts) if set(map(type, ts)) == _FLOAT else None
    if (
        total is not None
        and total == total  # (no NaN: min and max would pass one by)
        and set(map(type, conns)) == _INT
        and set(map(type, payloads)) == _BYTES
        and min(conns) >= 0
        and max(conns) <= MAX_CONN
        and min(ts) >= 0.0
        and max(ts) <= MAX_OFFSET
    ):
        return MessageRun(conns, ts, kinds, payloads)
    return None


def decode_v2(obj: Any) -> Record | None:
    """:func:`decode_v2_fields`, with a message as a Message."""
    got = decode_v2_fields(obj)
    if not isinstance(got, tuple):
        return got
    message = _new(Message)
    f = message.__dict__  # (see _new)
    f["conn"], f["t"], f["side"], f["opcode"], f["payload"] = got
    return message
