"""Hostile cassettes, made by hand: for the reader tests and ``bench/fuzz_reader.py``.

Everything here is built with msgpack directly (never with wstape's writer, which refuses
most of it), so the same corpus can be run against any wstape version.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

import msgpack

START = 1_790_000_000.0


def pack(obj: Any) -> bytes:
    return bytes(msgpack.packb(obj, use_bin_type=True, datetime=False))


def header(**changes: Any) -> dict[str, Any]:
    return {
        "type": "header",
        "format": "wstape-cassette",
        "version": 1,
        "creator": "hostile",
        "started_at": START,
        **changes,
    }


def open_(conn: int = 1, status: int = 101, **changes: Any) -> dict[str, Any]:
    return {
        "type": "open",
        "conn": conn,
        "started_at": START + conn,
        "method": "GET",
        "scheme": "ws",
        "host": "127.0.0.1",
        "port": 9000,
        "target": f"/chat?n={conn}",
        "http_version": "HTTP/1.1",
        "request_headers": [[b"Host", b"127.0.0.1:9000"], [b"Upgrade", b"websocket"]],
        "subprotocols": ["chat.v1"],
        "extensions": [],
        "client": "127.0.0.1:5000",
        "tls": None,
        "status": status,
        "reason": "Switching Protocols" if status == 101 else "Forbidden",
        "response_headers": [[b"Upgrade", b"websocket"]],
        "subprotocol": "chat.v1",
        "body": b"" if status == 101 else b"no",
        **changes,
    }


def message(conn: int = 1, t: float = 0.5, **changes: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "conn": conn,
        "t": t,
        "from": "client",
        "opcode": "text",
        "data": b'{"type":"ping"}',
        **changes,
    }


def close(conn: int = 1, t: float = 1.0, **changes: Any) -> dict[str, Any]:
    return {
        "type": "close",
        "conn": conn,
        "t": t,
        "by": "client",
        "code": 1000,
        "reason": "bye",
        "on_wire": True,
        **changes,
    }


def note(conn: int | None = 1, **changes: Any) -> dict[str, Any]:
    return {"type": "note", "conn": conn, "t": 0.7, "text": "a note", **changes}


def cassette(*records: dict[str, Any] | bytes) -> bytes:
    """A header, then each record (a map to pack, or raw bytes as they are)."""
    return pack(header()) + b"".join(r if isinstance(r, bytes) else pack(r) for r in records)


def sample() -> bytes:
    """A small valid cassette: two accepted connections (one binary), a refused one,
    notes; a few kilobytes."""
    return cassette(
        note(None, text="recorded by hand"),
        open_(1),
        message(1, 0.1),
        message(1, 0.2, **{"from": "server", "data": b'{"type":"pong","n":1}'}),
        open_(2, target="/feed"),
        message(2, 0.3, opcode="binary", data=bytes(range(64))),
        open_(3, status=403),
        note(3, text="refused"),
        message(1, 0.4, data="用户".encode() * 20),
        close(2, 0.5, by="server", code=1006, reason="", on_wire=False),
        close(1, 1.0, code=4001, reason="用户主动退出登录"),
        note(1, text="closed"),
    )


# -- format version 2 -------------------------------------------------------------------


def message_v2(
    conn: int = 1, t: float = 0.5, kind: int = 0, data: Any = b'{"type":"ping"}'
) -> list[Any]:
    return [conn, t, kind, data]


def end_v2(records: Any, conns: Any = None, **changes: Any) -> bytes:
    """An end record as a writer packs it: ``size`` last, a uint32 of its own length."""
    body = pack({"type": "end", "records": records, "conns": conns, **changes})
    head = body[0]
    assert 0x80 <= head < 0x8F
    size = len(body) + 10
    return bytes([head + 1]) + body[1:] + b"\xa4size\xce" + struct.pack(">I", size)


def cassette_v2(*records: dict[str, Any] | list[Any] | bytes, version: int = 2) -> bytes:
    """A version-2 header (or ``version``), then each record (packed, or raw bytes as
    they are)."""
    return pack(header(version=version)) + b"".join(
        r if isinstance(r, bytes) else pack(r) for r in records
    )


def sample_v2() -> bytes:
    """:func:`sample` in version 2: messages as arrays, ended by an end record."""
    records = _sample_records()
    return cassette_v2(*records, end_v2(len(records), [[1, 6], [2, 3]]))


def _sample_records() -> list[dict[str, Any] | list[Any]]:
    """The records of :func:`sample_v2` and :func:`sample_v3`."""
    return [
        note(None, text="recorded by hand"),
        open_(1),
        message_v2(1, 0.1),
        message_v2(1, 0.2, 2, b'{"type":"pong","n":1}'),
        open_(2, target="/feed"),
        message_v2(2, 0.3, 1, bytes(range(64))),
        open_(3, status=403),
        note(3, text="refused"),
        message_v2(1, 0.4, 0, "用户".encode() * 20),
        close(2, 0.5, by="server", code=1006, reason="", on_wire=False),
        close(1, 1.0, code=4001, reason="用户主动退出登录"),
        note(1, text="closed"),
    ]


def _v2(big: bool) -> Iterator[tuple[str, bytes]]:
    """Version-2 shapes: message arrays and end records, wrong in every way."""
    opened = open_(1)
    for n in (0, 1, 3, 5, 16, 4096):
        yield f"v2 array of {n}", cassette_v2(opened, [1] * n)
    yield (
        "v2 array16 of 4",
        cassette_v2(opened, b"\xdc\x00\x04\x01\xcb" + bytes(8) + b"\x00\xc4\x00"),
    )
    yield "v2 array32 of 4", cassette_v2(opened, b"\xdd\x00\x00\x00\x04\x01\x00\x00\xc4\x00")
    for name, item in (
        ("conn", 0),
        ("t", 1),
        ("kind", 2),
        ("data", 3),
    ):
        for value_name, value in (
            ("nil", None),
            ("true", True),
            ("-1", -1),
            ("2**64-1", 2**64 - 1),
            ("1e308", 1e308),
            ("nan", float("nan")),
            ("str", "x"),
            ("bytes", b"x"),
            ("array", [1]),
            ("map", {"a": 1}),
            ("4", 4),
        ):
            items: list[Any] = [1, 0.5, 0, b"x"]
            items[item] = value
            yield f"v2 {name} {value_name}", cassette_v2(opened, items)
    yield "v2 message map", cassette_v2(opened, message(1))
    yield "v2 message of a refused", cassette_v2(open_(1, status=403), message_v2(1))
    yield "v2 message never opened", cassette_v2(message_v2(7), end_v2(1))
    yield (
        "v2 nested in an item",
        cassette_v2(opened, b"\x94\x01" + nested_arrays(5) + b"\x00\xc4\x00"),
    )
    yield (
        "v2 2 MiB binary as t",
        cassette_v2(opened, b"\x94\x01\xc6\x00\x20\x00\x00" + b"z" * 2**21),
    )
    yield "v2 4 GiB payload", cassette_v2(opened, b"\x94\x01\x00\x00\xc6\xff\xff\xff\xff")
    yield "v2 ext item", cassette_v2(opened, b"\x94\x01\x00\x00" + pack(msgpack.ExtType(5, b"x")))
    yield "v2 no end record", cassette_v2(opened, message_v2(1))
    yield "v2 end first", cassette_v2(end_v2(0), opened)
    yield "v2 end claims too many", cassette_v2(opened, end_v2(5))
    yield "v2 end claims too few", cassette_v2(opened, message_v2(1), end_v2(1))
    yield "v2 only an end", cassette_v2(end_v2(0))
    yield "v2 end twice", cassette_v2(opened, end_v2(1), end_v2(0))
    yield (
        "v2 end conns 4096",
        cassette_v2(opened, end_v2(1, [[i, 0] for i in range(4096)])),
    )
    yield (
        "v2 end conns 4097",
        cassette_v2(opened, end_v2(1, [[i, 0] for i in range(4097)])),
    )
    yield "v2 end conns not a list", cassette_v2(opened, end_v2(1, "all"))
    yield "v2 end conns short item", cassette_v2(opened, end_v2(1, [[1, 1, 1]]))
    yield "v2 end conns bad id", cassette_v2(opened, end_v2(1, [[-1, 1]]))
    yield "v2 end conns bool count", cassette_v2(opened, end_v2(1, [[1, True]]))
    yield "v2 end records huge", cassette_v2(opened, end_v2(2**64 - 1))
    yield "v2 end records str", cassette_v2(opened, end_v2("1"))
    yield "v2 end extra field", cassette_v2(opened, end_v2(1, extra=1))
    yield (
        "v2 end without size",
        cassette_v2(opened, pack({"type": "end", "records": 1, "conns": None})),
    )
    yield (
        "v2 end with a lying size",
        cassette_v2(opened, pack({"type": "end", "records": 1, "conns": None, "size": 3})),
    )
    yield "v2 end in v1", cassette(opened, end_v2(1))
    yield "v2 payload ending like an end record", cassette_v2(opened, message_v2(1, data=end_v2(0)))
    many_ends = [end_v2(0) for _ in range(5000)]
    yield "v2 5000 end records", cassette_v2(opened, end_v2(1), *many_ends)
    if big:
        yield "v2 95 MB binary as conn", cassette_v2(opened, [b"z" * 95_000_000, 0.5, 0, b""])
        strays = [message_v2(i) for i in range(1, 200_001)]
        yield "v2 200k stray ids", cassette_v2(*strays, end_v2(len(strays)))


# -- format version 3 -------------------------------------------------------------------


def cassette_v3(*records: dict[str, Any] | list[Any] | bytes) -> bytes:
    """A version-3 header, then each record (packed, or raw bytes as they are)."""
    return cassette_v2(*records, version=3)


def _listed(
    records: list[dict[str, Any] | list[Any]],
) -> tuple[list[list[Any]], list[list[int]], list[int]]:
    """The listing and the ``conns`` a writer of ``records`` (after a version-3 header)
    would write, and the byte offset of each record."""
    offsets, at = [], len(pack(header(version=3)))
    for r in records:
        offsets.append(at)
        at += len(pack(r))
    entries: dict[int, list[Any]] = {}
    counts: dict[int, int] = {}
    for r, offset in zip(records, offsets, strict=True):
        conn = r[0] if isinstance(r, list) else r["conn"]
        if conn is not None:
            counts[conn] = counts.get(conn, 0) + 1
        if isinstance(r, list):
            e = entries[r[0]]
            e[3 if r[2] < 2 else 4] += 1
            e[5 if r[2] < 2 else 6] += len(r[3])
            e[7] = max(e[7], r[1])
        elif r["type"] == "open":
            entries[r["conn"]] = [r["conn"], offset, None, 0, 0, 0, 0, 0.0]
        elif r["type"] == "close":
            e = entries[r["conn"]]
            e[2], e[7] = offset, max(e[7], r["t"])
    return list(entries.values()), [[c, n] for c, n in counts.items()], offsets


def sample_v3() -> bytes:
    """A version-3 cassette one writer wrote: its end record lists the connections."""
    records = _sample_records()
    listing, conns, _ = _listed(records)
    return cassette_v3(*records, end_v2(len(records), conns, listing=listing))


def _v3() -> Iterator[tuple[str, bytes]]:
    """Version-3 listings that do not hold, or are malformed, in every way."""
    records = _sample_records()
    good, counted, offsets = _listed(records)

    def with_listing(listing: Any, conns: Any = counted) -> bytes:
        listed = None if conns is None else [list(c) for c in conns]
        return cassette_v3(*records, end_v2(len(records), listed, listing=listing))

    def changed(i: int, item: int, value: Any) -> list[list[Any]]:
        out = [list(e) for e in good]
        out[i][item] = value
        return out

    yield "v3 listing of the sample", with_listing(good)
    yield "v3 listing empty", with_listing([])
    yield "v3 listing nil", with_listing(None)
    yield "v3 listing not a list", with_listing("all")
    yield "v3 listing in v2", cassette_v2(*records, end_v2(len(records), None, listing=good))
    for name, item, value in (
        ("open_at a message", 1, offsets[2]),
        ("open_at the other open", 1, offsets[4]),
        ("open_at the header", 1, 1),
        ("open_at inside a record", 1, offsets[1] + 3),
        ("open_at the end record", 1, len(with_listing(good)) - 10),
        ("open_at past the end", 1, 2**40),
        ("open_at 0", 1, 0),
        ("open_at -1", 1, -1),
        ("open_at float", 1, 86.0),
        ("close_at an open", 2, offsets[1]),
        ("close_at the other close", 2, offsets[9]),
        ("close_at a note", 2, offsets[0]),
        ("conn of another", 0, 2),
        ("conn never opened", 0, 99),
        ("conn -1", 0, -1),
        ("count -1", 3, -1),
        ("count 2**64-1", 4, 2**64 - 1),
        ("count true", 5, True),
        ("bytes 2**53", 6, 2**53),
        ("last_t nan", 7, float("nan")),
        ("last_t inf", 7, float("inf")),
        ("last_t -1", 7, -1.0),
        ("last_t int", 7, 1),
        ("last_t str", 7, "1.0"),
    ):
        yield f"v3 listing {name}", with_listing(changed(0, item, value))
    yield "v3 listing twice the same", with_listing([good[0], good[0]])
    yield "v3 listing without conns", with_listing(good, None)
    yield "v3 listing and conns in another order", with_listing(good, ((2, 3), (1, 6), (3, 2)))
    yield "v3 listing of one less", with_listing(good[:2], ((1, 6), (2, 3)))
    yield "v3 listing of more than conns count", with_listing(changed(0, 3, 6))
    yield "v3 conns of more than the records", with_listing(good, ((1, 60), (2, 3), (3, 2)))
    yield "v3 listing close before open", with_listing(changed(0, 2, offsets[1] - 1))
    yield "v3 listing short item", with_listing([good[0][:7]])
    yield "v3 listing long item", with_listing([[*good[0], 0]])
    yield "v3 listing nested", with_listing([[good[0]]])
    yield "v3 listing 3000", with_listing([good[0]] * 3000)
    yield "v3 listing 3001", with_listing([good[0]] * 3001)
    yield "v3 listing 4097", with_listing([good[0]] * 4097)


# -- msgpack pieces ----------------------------------------------------------------------


def nested_arrays(depth: int, inner: bytes = b"\xc0") -> bytes:
    return b"\x91" * depth + inner


def nested_maps(depth: int, inner: bytes = b"\xc0") -> bytes:
    return b"\x81\xa1a" * depth + inner


def array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def map_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x80 | n])
    if n < 1 << 16:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def empty_array_bomb(total: int, per: int = 100_000) -> bytes:
    """About ``total`` bytes of empty arrays, in arrays of ``per`` (the old reader's cap)."""
    groups = max(1, total // per)
    return array_header(groups) + (array_header(per) + b"\x90" * per) * groups


def record_with(field_bytes: dict[str, bytes], base: dict[str, Any]) -> bytes:
    """``base`` packed by hand with the raw msgpack bytes of some field values."""
    out = map_header(len(base))
    for key, value in base.items():
        out += pack(key) + (field_bytes[key] if key in field_bytes else pack(value))
    return out


WRONG_VALUES: list[tuple[str, bytes]] = [
    ("nil", b"\xc0"),
    ("true", b"\xc3"),
    ("-1", pack(-1)),
    ("2**64-1", b"\xcf" + b"\xff" * 8),
    ("-2**63", b"\xd3\x80" + b"\x00" * 7),
    ("1e308", pack(1e308)),
    ("-1e308", pack(-1e308)),
    ("nan", pack(float("nan"))),
    ("inf", pack(float("inf"))),
    ("-inf", pack(float("-inf"))),
    ("empty str", pack("")),
    ("long str", pack("x" * 5000)),
    ("2 MiB str", pack("y" * (2 << 20))),
    ("empty bin", pack(b"")),
    ("bin", pack(b"\x00\xff" * 300)),
    ("empty array", b"\x90"),
    ("empty map", b"\x80"),
    ("array of array", b"\x91\x90"),
    ("map", pack({"a": 1})),
    ("nested 1000", nested_arrays(1000)),
    ("timestamp", pack(msgpack.Timestamp(1, 2))),
    ("ext 42", pack(msgpack.ExtType(42, b"boom"))),
    ("bad utf-8", b"\xa2\xff\xfe"),
    ("float32", b"\xca\x7f\x80\x00\x00"),
]


_TLS = {"version": "TLSv1.3", "sni": None, "alpn": None}


def _wrong_typed(big: bool) -> Iterator[tuple[str, bytes]]:
    values = [(n, v) for n, v in WRONG_VALUES if big or len(v) < 1 << 20]
    bases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("open", open_),
        ("message", message),
        ("close", close),
        ("note", note),
    ]
    for kind, make in bases:
        base = make()
        for field in base:
            for name, raw in values:
                body = record_with({field: raw}, base)
                yield f"wrong-{kind}-{field}-{name}", cassette(open_(1), body)
            missing = {k: v for k, v in base.items() if k != field}
            yield f"missing-{kind}-{field}", cassette(open_(1), missing)
    for field in header():
        for name, raw in values:
            yield f"wrong-header-{field}-{name}", record_with({field: raw}, header())
    # Nested values inside the lists and the tls map of an open.
    for name, raw in values:
        for where, field, wrap in (
            ("header", "request_headers", lambda r: b"\x91" + r),
            ("name", "request_headers", lambda r: b"\x91\x92" + r + pack(b"v")),
            ("value", "response_headers", lambda r: b"\x91\x92" + pack(b"k") + r),
            ("item", "subprotocols", lambda r: b"\x91" + r),
            ("sni", "tls", lambda r: record_with({"sni": r}, _TLS)),
        ):
            body = record_with({field: wrap(raw)}, open_(1))
            yield f"nested-{field}-{where}-{name}", cassette(body)


def _claims() -> Iterator[tuple[str, bytes]]:
    heads = {
        "str8": b"\xd9\xff",
        "str16": b"\xda\xff\xff",
        "str32-2G": b"\xdb\x80\x00\x00\x00",
        "str32-4G": b"\xdb\xff\xff\xff\xff",
        "bin8": b"\xc4\xff",
        "bin16": b"\xc5\xff\xff",
        "bin32-257M": b"\xc6" + struct.pack(">I", 257 << 20),
        "bin32-4G": b"\xc6\xff\xff\xff\xff",
        "array16": b"\xdc\xff\xff",
        "array32": b"\xdd\xff\xff\xff\xff",
        "map16": b"\xde\xff\xff",
        "map32": b"\xdf\xff\xff\xff\xff",
        "ext32": b"\xc9\xff\xff\xff\xff\x01",
    }
    for name, head in heads.items():
        for tail in (b"", b"xyz" * 10):
            yield f"claim-top-{name}-{len(tail)}", cassette(open_(1), head + tail)
            yield (
                f"claim-data-{name}-{len(tail)}",
                cassette(open_(1), record_with({"data": head + tail}, message()), close()),
            )
            yield (
                f"claim-host-{name}-{len(tail)}",
                cassette(record_with({"host": head + tail}, open_(1))),
            )


def _structure(big: bool) -> Iterator[tuple[str, bytes]]:
    for depth in (2, 3, 4, 5, 10, 100, 500, 990, 1000, 1010, 1023, 1024, 1025, 2000, 100_000):
        yield f"deep-arrays-{depth}", cassette(open_(1), nested_arrays(depth))
        yield f"deep-maps-{depth}", cassette(open_(1), nested_maps(depth))
        yield (
            f"deep-in-t-{depth}",
            cassette(open_(1), record_with({"t": nested_arrays(depth)}, message())),
        )
        yield (
            f"deep-in-headers-{depth}",
            cassette(record_with({"request_headers": nested_arrays(depth)}, open_(1))),
        )
    for size in (1 << 10, 1 << 16, 1 << 20):
        yield f"bomb-empty-arrays-{size}", cassette(open_(1), empty_array_bomb(size, 1 << 12))
        maps = array_header(size) + b"\x80" * size
        yield f"bomb-empty-maps-{size}", cassette(open_(1), maps)
        strs = array_header(size // 3) + b"\xa2ab" * (size // 3)
        yield f"bomb-short-strs-{size}", cassette(open_(1), strs)
        in_field = record_with({"data": empty_array_bomb(size, 1 << 12)}, message())
        yield f"bomb-in-data-{size}", cassette(open_(1), in_field)
        headers = array_header(size // 5) + b"\x92\xc4\x01a\xc4\x00" * (size // 5)
        yield f"bomb-headers-{size}", cassette(record_with({"request_headers": headers}, open_(1)))
    for code in (-1, 0, 1, 42, 127, -128):
        for head in (b"\xd4", b"\xd5", b"\xd6", b"\xd7", b"\xd8"):
            size = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}[head[0]]
            ext = head + struct.pack(">b", code) + b"\x00" * size
            yield f"ext-fix{size}-{code}", cassette(open_(1), ext)
            yield (
                f"ext-fix{size}-{code}-unused-field",
                cassette(record_with({"junk": ext}, {**note(), "junk": 0})),
            )
        ext8 = b"\xc7\x03" + struct.pack(">b", code) + b"abc"
        yield f"ext8-{code}", cassette(open_(1), record_with({"t": ext8}, message()))
    for name, raw in (
        ("int key", b"\x81\x01\x02"),
        ("bin key", b"\x81\xc4\x04type\xa4note"),
        ("nil key", b"\x81\xc0\x02"),
        ("array key", b"\x81\x91\x01\x02"),
        ("map key", b"\x81\x81\xa1a\x01\x02"),
        ("float key", b"\x81\xcb" + b"\x00" * 8 + b"\x02"),
        ("c1", b"\xc1"),
        ("c1 in map", b"\x81\xa4type\xc1"),
        ("bad utf-8 key", b"\x81\xa2\xff\xfe\x01"),
        ("65 fields", map_header(65) + b"".join(pack(f"k{i}") + b"\x00" for i in range(65))),
        ("tls with int keys", record_with({"tls": b"\x81\x01\x02"}, open_(1))),
        (
            "header pairs of 3",
            record_with({"request_headers": pack([[b"a", b"b", b"c"]])}, open_(1)),
        ),
        ("5000 headers", record_with({"request_headers": pack([[b"k", b"v"]] * 5000)}, open_(1))),
        ("4096 headers", record_with({"request_headers": pack([[b"k", b"v"]] * 4096)}, open_(1))),
        (
            "2 MiB header value",
            record_with({"request_headers": pack([[b"k", b"v" * (2 << 20)]])}, open_(1)),
        ),
        ("fixint", b"\x05"),
        ("nil", b"\xc0"),
        ("string", pack("a record")),
        ("array", pack([1, 2, 3])),
    ):
        yield f"bytes-{name}", cassette(open_(1), raw)


def _semantics(big: bool) -> Iterator[tuple[str, bytes]]:
    yield "empty", b""
    yield "one zero byte", b"\x00"
    yield "text", b"hello world, not msgpack\n"
    yield "header only", pack(header())
    yield "two headers", cassette(header())
    yield "newer version", pack(header(version=99)) + pack(open_(1))
    for name, version in (
        ("version 0", 0),
        ("version str", "1"),
        ("version bool", True),
        ("version huge", 2**63),
    ):
        yield name, pack(header(version=version))
    yield "other format", pack(header(format="other"))
    yield "header missing format", pack({"type": "header"})
    yield "trailing garbage", sample() + b"\xff\xfe\xfd"
    yield "trailing nil", sample() + b"\xc0"
    yield "duplicate open", cassette(open_(1), message(1), open_(1), message(1), close(1))
    yield "duplicate open after close", cassette(open_(1), close(1), open_(1), message(1), close(1))
    yield "duplicate refused", cassette(open_(1, status=403), open_(1))
    yield "orphan message", cassette(message(7), close(7))
    yield "after close", cassette(open_(1), close(1), message(1), close(1))
    yield "message of refused", cassette(open_(1, status=403), message(1), close(1))
    yield "orphan note", cassette(note(9))
    yield "t at ten years", cassette(open_(1), message(1, 315_576_000.0), close(1, 315_576_000.0))
    yield "t past ten years", cassette(open_(1), message(1, 315_576_001.0))
    yield "started_at 9999", cassette(open_(1, started_at=253402300799.0), close(1))
    yield "started_at 1e308", cassette(open_(1, started_at=1e308))
    yield "huge t and date", cassette(open_(1, started_at=7.2e9), message(1, 3e8), close(1, 3e8))
    yield "conn 2**53", cassette(open_(2**53), close(2**53))
    yield "conn 2**64-1", cassette(open_(2**64 - 1))
    yield "status 0", cassette(open_(1, status=0))
    yield "port 70000", cassette(open_(1, port=70000))
    yield "code 70000", cassette(open_(1), close(1, code=70000))
    yield "code 65535", cassette(open_(1), close(1, code=65535))
    many = [open_(i) for i in range(1, 2001)] + [close(i) for i in range(1, 2001)]
    yield "2000 connections", cassette(*many)
    yield "big text message", cassette(open_(1), message(1, data=b"x" * (1 << 20)), close(1))
    if big:
        yield "wrong-typed 95 MB data", cassette(open_(1), message(1, data="z" * 95_000_000))
        yield "wrong-typed 95 MB t", cassette(open_(1), message(1, t=b"z" * 95_000_000))
        yield "empty arrays 16.8 MB", cassette(open_(1), empty_array_bomb(16_800_000))


def hand_made(*, big: bool = True) -> Iterator[tuple[str, bytes]]:
    """About 1,400 hostile cassettes, each with a name; ``big=False`` leaves out the
    files of a megabyte or more (95 MB records, a 16.8 MB bomb, 2 MiB values)."""
    yield from _semantics(big)
    yield from _v2(big)
    yield from _v3()
    yield from _structure(big)
    yield from _claims()
    yield from _wrong_typed(big)


INTERESTING = bytes.fromhex("007f808f909fa0bfc0c1c4c6c7c9cbcfd3d4d8d9dbdcdddedfff")
"""Bytes that start containers, lengths and extensions, or are never used."""


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one to eight random edits (bytes set, flipped, inserted, removed,
    repeated)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not out:
            out.append(rng.randrange(256))
            continue
        i = rng.randrange(len(out))
        op = rng.randrange(6)
        if op == 0:
            out[i] = rng.randrange(256)
        elif op == 1:
            out[i] ^= 1 << rng.randrange(8)
        elif op == 2:
            out[i] = rng.choice(INTERESTING)
        elif op == 3:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            del out[i : i + rng.randint(1, 16)]
        else:
            j = rng.randrange(len(out))
            out[i:i] = out[j : j + rng.randint(1, 64)]
    return bytes(out)


def mutations(count: int, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)
    bases = (sample(), sample_v2(), sample_v3())
    for n in range(count):
        yield f"mutation-{n}", mutate(bases[n % len(bases)], rng)


def truncations() -> Iterator[tuple[str, bytes]]:
    for version, base in ((1, sample()), (2, sample_v2()), (3, sample_v3())):
        for n in range(len(base)):
            yield f"v{version}-truncated-at-{n}", base[:n]
