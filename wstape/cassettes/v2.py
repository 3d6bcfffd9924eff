"""Format versions 2 and 3: message records as short arrays, and the end record.

Version 1 spelled every record as a map with string keys, so a 100-byte message cost 62
bytes of keys and type names. Version 2 keeps the maps for the rare records (header,
``open``, ``close``, ``note``) and packs a message as an array of four values::

    [conn, t, kind, data]        kind = 2 * (from server) + (binary): 0 to 3

which costs 14 bytes around a 100-byte payload (connection ids up to 127, a float64 ``t``,
a bin8 length). A writer that stops cleanly appends an **end record**, a map::

    {"type": "end", "records": N, "conns": [[conn, records], ...] or nil, "size": uint32}

``records`` counts every record that writer wrote (not the header, not the end record);
``conns`` the records of each connection it wrote (nil past :data:`MAX_END_CONNS`
connections); ``size`` is the end record's own length in bytes, packed as a uint32 so it
is always the file's last five bytes (a reader finds the record from the end). With
several writers appending to one cassette, each appends its own end record for what it
wrote. The reader (:class:`Tally`) holds a whole pass to them: a cassette is complete when
it ends with an end record and the end records' counts add up to its records; otherwise it
did not end cleanly (a recorder still running or killed, or the file cut at a record
boundary) and is reported as truncated. An end record that claims more than the file holds
is corruption.

Version 3 is version 2 plus one optional field of the end record, ``listing``: written by
a writer that wrote the whole file by itself (it created it, nobody appended), for at most
:data:`MAX_LISTED` connections, each as ``[conn, open_at, close_at, messages from the
client, from the server, bytes from the client, from the server, last_t]``: the byte
offsets of its open and close records (close_at nil when it has none) and its figures as a
pass folds them (:class:`ListedConn`). ``wstape ls`` lists such a cassette from its end
(:meth:`~wstape.cassettes.reader.CassetteReader.listed`), reading only the opens and closes.

docs/cassette-format.md documents every version; compat.py's ``convert_1_2`` turns a v1
message map into the array.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from wstape.cassettes.schema import (
    MAX_CONN,
    MAX_ITEMS,
    MAX_OFFSET,
    MAX_RECORD_BYTES,
    MAX_TOKENS,
    SchemaError,
    describe_value,
    record_from_dict,
)
from wstape.core.connections import KIND_OPCODE, KIND_SIDE
from wstape.core.model import Close, Message, Opcode, Open, Record, Side

MESSAGE_ITEMS = 4
"""Items of a message array."""
MAX_END_CONNS = 4096
"""Connections an end record lists one by one (a list holds at most ``MAX_ITEMS``)."""
MAX_COUNT = 2**53
MAX_END_BYTES = 1024 * 1024
"""Largest end record (4096 connections of two 9-byte integers fit in 80 KB)."""
SIZE_TRAILER = b"\xa4size\xce"
"""The last entry of an end record before its 4-byte length: ``"size": uint32``."""

_CLIENT, _SERVER, _TEXT, _BINARY = Side.CLIENT, Side.SERVER, Opcode.TEXT, Opcode.BINARY
_KIND = {
    (Side.CLIENT, Opcode.TEXT): 0,
    (Side.CLIENT, Opcode.BINARY): 1,
    (Side.SERVER, Opcode.TEXT): 2,
    (Side.SERVER, Opcode.BINARY): 3,
}
MESSAGE_SHAPE = "an array [conn, t, kind, data]"
BIG_PAYLOAD = 64 * 1024
"""A message payload from this many bytes on is written after its packed head, in one
``writev()`` (:func:`pack_message_head`), rather than copied into one buffer with it: below,
the copy costs less than the second buffer."""


# -- messages --------------------------------------------------------------------------


def message_to_array(m: Message) -> list[Any]:
    """The array a message is written as; raises SchemaError for a value the reader
    would refuse (so the writer never writes what it cannot read back)."""
    conn, t, side, opcode, data = m.conn, m.t, m.side, m.opcode, m.payload
    # (identity tests: hashing an enum member calls Python code)
    if (
        (side is _CLIENT or side is _SERVER)
        and (opcode is _TEXT or opcode is _BINARY)
        and type(conn) is int
        and 0 <= conn <= MAX_CONN
        and type(t) is float
        and 0.0 <= t <= MAX_OFFSET
        and type(data) is bytes
    ):
        return [conn, t, (side is _SERVER) * 2 + (opcode is _BINARY), data]
    # The slow path: the v1 schema check names the field that is wrong.
    checked = record_from_dict(
        {
            "type": "message",
            "conn": conn,
            "t": t,
            "from": getattr(m.side, "value", m.side),
            "opcode": getattr(m.opcode, "value", m.opcode),
            "data": data,
        }
    )
    assert isinstance(checked, Message)
    return [checked.conn, checked.t, _KIND[checked.side, checked.opcode], checked.payload]


def pack_message_head(pack: Callable[[Any], bytes], items: list[Any]) -> bytes:
    """The bytes ``pack(items)`` writes before the payload's own bytes, for an array of
    :func:`message_to_array`: so a big payload is written as it is, never copied. ``pack``
    packs one value (``msgpack.Packer(use_bin_type=True).pack``)."""
    conn, t, kind, data = items
    size = len(data)
    if size < 0x100:
        bin_head = b"\xc4" + size.to_bytes(1, "big")  # bin 8
    elif size < 0x10000:
        bin_head = b"\xc5" + size.to_bytes(2, "big")  # bin 16
    else:
        bin_head = b"\xc6" + size.to_bytes(4, "big")  # bin 32 (a record is < 4 GiB)
    return b"\x94" + pack(conn) + pack(t) + pack(kind) + bin_head  # fixarray of 4


def message_from_array(a: list[Any]) -> Message:
    """Validate a message array into a Message; raises SchemaError."""
    if len(a) == MESSAGE_ITEMS:
        conn, t, kind, data = a
        if (
            type(conn) is int
            and 0 <= conn <= MAX_CONN
            and type(t) is float
            and 0.0 <= t <= MAX_OFFSET
            and type(kind) is int
            and 0 <= kind <= 3
            and type(data) is bytes
            and len(data) <= MAX_RECORD_BYTES
        ):
            return Message(conn, t, KIND_SIDE[kind], KIND_OPCODE[kind], data)
    return _slow_message(a)


def _slow_message(a: list[Any]) -> Message:
    if len(a) != MESSAGE_ITEMS:
        raise SchemaError(f"a message record is {MESSAGE_SHAPE}, not an array of {len(a)} items")
    conn, t, kind, data = a
    if isinstance(conn, bool) or not isinstance(conn, int) or not 0 <= conn <= MAX_CONN:
        raise SchemaError(
            f"message item 1 (conn) must be a connection id from 0 to 2**53, not "
            f"{describe_value(conn)}"
        )
    if (
        isinstance(t, bool)
        or not isinstance(t, int | float)
        or not math.isfinite(float(t))
        or not 0.0 <= float(t) <= MAX_OFFSET
    ):
        raise SchemaError(
            f"message item 2 (t) must be a number of seconds from 0 to {MAX_OFFSET:.0f} "
            f"(10 years), not {describe_value(t)}"
        )
    if isinstance(kind, bool) or not isinstance(kind, int) or not 0 <= kind <= 3:
        raise SchemaError(
            "message item 3 (kind) must be 0 to 3 (client text, client binary, server text, "
            f"server binary), not {describe_value(kind)}"
        )
    if not isinstance(data, bytes):
        raise SchemaError(f"message item 4 (data) must be bytes, not {describe_value(data)}")
    if len(data) > MAX_RECORD_BYTES:  # pragma: no cover - the scanner refuses it first
        raise SchemaError(f"message item 4 (data): more than {MAX_RECORD_BYTES} bytes")
    return Message(conn, float(t), KIND_SIDE[kind], KIND_OPCODE[kind], data)


# -- the end record --------------------------------------------------------------------


class ConnCount(NamedTuple):
    """How many records one writer wrote of one connection."""

    conn: int
    records: int


class ListedConn(NamedTuple):
    """One connection of an end record's ``listing`` (format version 3): where its open
    and close records are, and what a pass over its messages would count."""

    conn: int
    open_at: int
    """The byte offset of its open record."""
    close_at: int | None
    """The byte offset of its close record; None when it has none."""
    messages_client: int
    messages_server: int
    bytes_client: int
    bytes_server: int
    last_t: float
    """The latest ``t`` of its messages and close (0.0 with neither)."""


LISTED_ITEMS = len(ListedConn._fields)
MAX_LISTED = 3000
"""Connections an end record lists (``listing``): each costs 12 msgpack values with its
``conns`` entry, and a record holds at most ``MAX_TOKENS`` (40,000) values."""
assert MAX_LISTED * (3 + 1 + LISTED_ITEMS) + 16 < MAX_TOKENS


@dataclass(frozen=True)
class End:
    """An end record: what one writer wrote, appended when it stopped cleanly."""

    records: int
    """Records the writer wrote (not counting the header or this record)."""
    conns: tuple[ConnCount, ...] | None
    """Per connection it wrote, in the order they were first written; None when it wrote
    more than :data:`MAX_END_CONNS` connections."""
    size: int
    """This record's length in bytes."""
    listing: tuple[ListedConn, ...] | None = None
    """Every connection of the file, in the order they opened (format version 3, from a
    writer that wrote the whole file; see the module's docstring); else None."""


def pack_end(
    records: int, conns: dict[int, int] | None, listing: list[ListedConn] | None = None
) -> bytes:
    """The end record's bytes. ``conns`` maps a connection id to its record count;
    ``listing`` (format version 3) is dropped past :data:`MAX_LISTED` connections."""
    listed = (
        None
        if conns is None or len(conns) > MAX_END_CONNS
        else [[conn, count] for conn, count in conns.items()]
    )
    fields: dict[str, Any] = {"type": "end", "records": records, "conns": listed}
    if listing is not None and len(listing) <= MAX_LISTED:
        fields["listing"] = [list(entry) for entry in listing]
    body = bytes(msgpack.packb(fields, use_bin_type=True))
    assert body[0] == 0x80 + len(fields)  # a fixmap: the size entry is added by hand
    size = len(body) + len(SIZE_TRAILER) + 4
    return bytes([body[0] + 1]) + body[1:] + SIZE_TRAILER + size.to_bytes(4, "big")


def _count(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_COUNT:
        raise SchemaError(f"{what} must be a count from 0 to 2**53, not {describe_value(v)}")
    return v


def end_from_dict(d: dict[str, Any]) -> End:
    """Validate an end record map (format version 3: compat.py refuses a ``listing`` in
    a version-2 file); raises SchemaError."""
    for key in d:
        if key not in ("type", "records", "conns", "size", "listing"):
            raise SchemaError(f"unknown field {describe_value(key, 40)} in an end record")
    for key in ("records", "conns", "size"):
        if key not in d:
            raise SchemaError(f"missing field {key!r}")
    records = _count(d["records"], "field 'records'")
    size = _count(d["size"], "field 'size'")
    raw = d["conns"]
    conns: tuple[ConnCount, ...] | None = None
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > MAX_ITEMS:
            raise SchemaError(
                f"field 'conns' must be nil or a list of at most {MAX_ITEMS} counts, not "
                f"{describe_value(raw)}"
            )
        out = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2:
                raise SchemaError(
                    f"field 'conns': each item must be [conn, records], not {describe_value(item)}"
                )
            conn = _conn_id(item[0], "field 'conns'")
            out.append(ConnCount(conn, _count(item[1], "field 'conns': a record count")))
        conns = tuple(out)
    listing = None if d.get("listing") is None else _listing(d["listing"])
    return End(records=records, conns=conns, size=size, listing=listing)


def _conn_id(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_CONN:
        raise SchemaError(f"{what}: connection id must be from 0 to 2**53, not {describe_value(v)}")
    return v


def _offset(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < MAX_COUNT:
        raise SchemaError(f"{what} must be a byte offset, not {describe_value(v)}")
    return v


def _listing(raw: Any) -> tuple[ListedConn, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_LISTED:
        raise SchemaError(
            f"field 'listing' must be nil or a list of at most {MAX_LISTED} connections, "
            f"not {describe_value(raw)}"
        )
    out = []
    for item in raw:
        if not isinstance(item, list) or len(item) != LISTED_ITEMS:
            raise SchemaError(
                "field 'listing': each item must be [conn, open_at, close_at, messages from "
                "the client, from the server, bytes from the client, from the server, "
                f"last_t], not {describe_value(item)}"
            )
        conn, open_at, close_at, client, server, bytes_client, bytes_server, last_t = item
        if (
            type(last_t) is not float
            or not math.isfinite(last_t)
            or not 0.0 <= last_t <= MAX_OFFSET
        ):
            raise SchemaError(
                f"field 'listing': last_t must be a number of seconds, not {describe_value(last_t)}"
            )
        out.append(
            ListedConn(
                _conn_id(conn, "field 'listing'"),
                _offset(open_at, "field 'listing': open_at"),
                None if close_at is None else _offset(close_at, "field 'listing': close_at"),
                _count(client, "field 'listing': a message count"),
                _count(server, "field 'listing': a message count"),
                _count(bytes_client, "field 'listing': a byte count"),
                _count(bytes_server, "field 'listing': a byte count"),
                last_t,
            )
        )
    return tuple(out)


def record_from_obj(obj: Any) -> Record | End:
    """Validate one version-2 record (an array for a message, else a map); raises
    SchemaError."""
    if type(obj) is list:
        return message_from_array(obj)
    if type(obj) is dict:
        kind = obj.get("type")
        if kind == "end":
            return end_from_dict(obj)
        if kind == "message":
            raise SchemaError(f"a message record of format version 2 is {MESSAGE_SHAPE}, not a map")
        return record_from_dict(obj)
    raise SchemaError(
        f"a record must be a map, or for a message {MESSAGE_SHAPE}; not {describe_value(obj)}"
    )


# -- checking a whole pass against the end records -------------------------------------


class Tally:
    """Holds a whole pass over a v2 cassette to its end records.

    The reader calls :meth:`end` for every end record and :meth:`verdict` when the file is
    read to its end. Only totals are compared, so the check costs nothing per record and
    no memory per connection (a hostile file of a million connection ids costs no more);
    the per-connection counts are the writer's summary (:meth:`CassetteReader.end_summary`).
    """

    def __init__(self) -> None:
        self.claimed = 0
        """Records the end records count, together."""
        self.ends = 0
        self.last_end = -1
        """The record index of the latest end record."""

    def end(self, end: End, index: int) -> None:
        self.claimed += end.records
        self.ends += 1
        self.last_end = index

    def verdict(self, records: int) -> tuple[bool, str] | None:
        """``records``: how many records the file has (the header included). None for a
        cassette that ended cleanly; else ``(corrupt, message)``: corrupt (True) when the
        end records count records the file does not have, incomplete (False, reported as
        truncation) when records are not accounted for."""
        total = records - 1 - self.ends
        if self.claimed > total:
            return True, (
                f"the end records count {self.claimed} records, the file has {total}: "
                "records were removed"
            )
        if self.last_end != records - 1:
            return False, (
                "the cassette did not end cleanly: no end record after the last record "
                "(the recorder is still running or was killed, or the file was cut at a "
                "record boundary)"
            )
        if self.claimed < total:
            return False, (
                f"the cassette did not end cleanly: {total - self.claimed} records are "
                "counted by no end record (a recorder that appended to it is still running "
                "or was killed, or the file was cut at a record boundary)"
            )
        return None


FIGURES_KEPT = 65536
"""Connections whose figures :class:`EndCheck` keeps, at most (then it checks nothing)."""


class EndCheck:
    """Holds a whole pass over a cassette to what its end records say per connection:
    each connection's records against the end records' ``conns`` (added up over every
    writer's end record), and the file's connections against a ``listing`` (format 3).
    The :class:`Tally` checks only totals, for nothing per record; this costs nothing
    per message either: the reader gives it the other records and their offsets
    (:meth:`record`), and the fold that reads the pass (``check``, ``stats``) gives it
    each connection's message figures when the connection is over (:meth:`connection`).
    It keeps a few integers per connection, for at most :data:`FIGURES_KEPT`.
    """

    def __init__(self) -> None:
        self.ends: list[End] = []
        self.others: dict[int, int] = {}
        """Connection id -> its records that are no message (open, close, notes)."""
        self.opens: list[tuple[int, int]] = []
        """(connection id, byte offset) of each open, in order."""
        self.closes: dict[int, int] = {}
        """Connection id -> the byte offset of its first close."""
        self.figures: dict[int, tuple[int, int, int, int, float]] = {}
        """Connection id -> messages from the client, from the server, bytes from each,
        last_t, as the fold counted them."""
        self.overflow = False

    def record(self, record: Any, offset: int) -> None:
        """A record of the pass other than a message (an open, close, note or end record),
        at byte ``offset``."""
        if type(record) is End:
            self.ends.append(record)
            return
        conn = record.conn
        if conn is None:
            return
        others = self.others
        if conn not in others and len(others) >= FIGURES_KEPT:
            self.overflow = True
            return
        others[conn] = others.get(conn, 0) + 1
        if type(record) is Open:
            self.opens.append((conn, offset))
        elif type(record) is Close:
            self.closes.setdefault(conn, offset)

    def connection(
        self,
        conn: int,
        messages_client: int,
        messages_server: int,
        bytes_client: int,
        bytes_server: int,
        last_t: float,
    ) -> None:
        """A connection of the pass is over: what the fold counted of it."""
        if len(self.figures) < FIGURES_KEPT:
            self.figures[conn] = (
                messages_client,
                messages_server,
                bytes_client,
                bytes_server,
                last_t,
            )
        else:
            self.overflow = True

    def disagreement(self, strays: int) -> str | None:
        """What the end records say that the records do not (None: they agree, or there is
        nothing to hold them to). ``strays``: records the fold left out; their ids'
        counts are then only held to be no more than the end records say."""
        ends = self.ends
        if not ends or self.overflow:
            return None
        if all(e.conns is not None for e in ends):
            expected: dict[int, int] = {}
            for e in ends:
                for c in e.conns or ():
                    expected[c.conn] = expected.get(c.conn, 0) + c.records
            actual = dict(self.others)
            for conn, (client, server, *_) in self.figures.items():
                actual[conn] = actual.get(conn, 0) + client + server
            for conn in [*expected, *(c for c in actual if c not in expected)]:
                want, got = expected.get(conn, 0), actual.get(conn, 0)
                if got != want and not (strays and got < want):
                    return f"connection {conn} has {got} records, the end records count {want}"
        listing = ends[-1].listing
        if listing is None:
            return None
        if len(ends) > 1 or strays:
            return "the end record lists the connections, but it is not the only writer's"
        if len(listing) != len(self.opens):
            return (
                f"the end record lists {len(listing)} connections, the file has {len(self.opens)}"
            )
        for entry, (conn, offset) in zip(listing, self.opens, strict=True):
            figures = self.figures.get(conn, (0, 0, 0, 0, 0.0))
            read = ListedConn(conn, offset, self.closes.get(conn), *figures)
            for name, said, found in zip(ListedConn._fields, entry, read, strict=True):
                if said != found:
                    return (
                        f"connection {entry.conn}'s {name} is {said} in the end record's "
                        f"listing, {found} in the file"
                    )
        return None
