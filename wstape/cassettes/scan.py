"""Checking a record's bytes before msgpack builds it.

msgpack builds whatever the bytes describe, and has no limit on how deep or how many: a
16 MB record of empty arrays becomes 16 million lists (1.3 GB), a record nested a thousand
levels deep breaks whatever walks it later, and a string that claims 4 GiB looks like a
file that was cut short. So before the reader's ``msgpack.Unpacker`` builds a record,
:class:`RecordScanner` walks the record's msgpack headers (types and lengths; it never
reads a payload) and holds them to the limits of :mod:`wstape.cassettes.schema`: a map at
the top (from format version 2, or an array of four items: a message), containers at
most ``MAX_DEPTH`` deep, lists of at most ``MAX_ITEMS``, strings and header bytes of at
most ``MAX_TEXT_BYTES`` (payloads and bodies up to the record cap), at most
``MAX_TOKENS`` values, no extension types, and no length that reaches past the record cap.
A record that passes costs no more memory to build than a valid record of the same size.

A length that reaches past the end of the file is a truncated record (a recorder killed
mid-write); a length past the record cap is corruption, whatever the file size.

The scanner reads the file through a window of its own (``os.pread``), so it does not
disturb the Unpacker's reads, and a message record as the writer lays it out is matched
by one regular expression instead of value by value.
"""

from __future__ import annotations

import os
import re

from wstape.cassettes.schema import (
    BIG_BINARY_FIELDS,
    MAX_DEPTH,
    MAX_FIELDS,
    MAX_ITEMS,
    MAX_RECORD_BYTES,
    MAX_TEXT_BYTES,
    MAX_TOKENS,
)

WINDOW = 256 * 1024
"""Bytes the scanner reads at a time."""
_FAST_SPAN = 96
"""Bytes in front of a message's payload, at most (what the fast path needs at hand)."""


class ShapeError(Exception):
    """The record's bytes are not a cassette record: corruption, not truncation."""


class NotAMap(ShapeError):
    """The value at a record's place is no map (for the header: not a cassette at all)."""


class RecordTruncated(Exception):
    """The file ends inside the record."""


_UINT = rb"(?:[\x00-\x7f]|\xcc.|\xcd..|\xce....|\xcf........)"
_MESSAGE = re.compile(
    rb"\x86\xa4type\xa7message\xa4conn"
    + _UINT
    + rb"\xa1t(?:\xcb........|\xca....|"
    + _UINT[3:]
    + rb"\xa4from\xa6(?:client|server)\xa6opcode(?:\xa4text|\xa6binary)"
    rb"\xa4data(?:\xc4(.)|\xc5(..)|\xc6(....))",
    re.DOTALL,
)
"""A version-1 message record exactly as the writer packed it, up to the payload's length."""
_MESSAGE_V2 = re.compile(
    rb"\x94" + _UINT + rb"(?:\xcb........|\xca....|" + _UINT[3:] + rb"[\x00-\x03]"
    rb"(?:\xc4(.)|\xc5(..)|\xc6(....))",
    re.DOTALL,
)
"""A version-2 message record, ``[conn, t, kind, data]`` (:mod:`wstape.cassettes.v2`), up
to the payload's length."""
_BIG = frozenset(name.encode() for name in BIG_BINARY_FIELDS)

# Sizes of the scalars whose size the first byte tells.
_FIXED: dict[int, int] = {0xC0: 1, 0xC2: 1, 0xC3: 1, 0xCA: 5, 0xCB: 9}
_FIXED.update({0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9, 0xD0: 2, 0xD1: 3, 0xD2: 5, 0xD3: 9})
_LENGTH_SIZE = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}
"""bin8/16/32 and str8/16/32: how many bytes the length takes."""
_CONTAINER_SIZE = {0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}
"""array16/32 and map16/32."""
_EXT_TYPE_AT = {0xD4: 1, 0xD5: 1, 0xD6: 1, 0xD7: 1, 0xD8: 1, 0xC7: 2, 0xC8: 3, 0xC9: 5}
"""fixext and ext8/16/32: where the extension's type byte is."""


def kind_name(first: int) -> str:
    """What a msgpack value is, from its first byte (for error messages)."""
    if first <= 0x7F or first >= 0xE0 or 0xCC <= first <= 0xD3:
        return "an integer"
    if first <= 0x8F or first in (0xDE, 0xDF):
        return "a map"
    if first <= 0x9F or first in (0xDC, 0xDD):
        return "an array"
    if first <= 0xBF or first in (0xD9, 0xDA, 0xDB):
        return "a string"
    return {
        0xC0: "nil",
        0xC1: "the unused byte 0xc1",
        0xC2: "a boolean",
        0xC3: "a boolean",
        0xC4: "bytes",
        0xC5: "bytes",
        0xC6: "bytes",
        0xCA: "a float",
        0xCB: "a float",
    }.get(first, "an extension value")


class RecordScanner:
    """Check records of the file open as ``fd`` (``size`` bytes) before they are built.

    ``version`` is the cassette's format version: from 2, a record may also be an array
    of four items (a message), whose binary item may be as long as a payload.
    """

    def __init__(self, fd: int, size: int, *, window: int = WINDOW, version: int = 2) -> None:
        self._fd = fd
        self._arrays = version >= 2
        self._message = _MESSAGE_V2 if version >= 2 else _MESSAGE
        self._size = size
        self._window = window
        self._data = b""
        self._base = 0

    def _at(self, pos: int, n: int) -> int:
        """Index in ``self._data`` of file byte ``pos``, with ``n`` bytes there."""
        p = pos - self._base
        if p < 0 or p + n > len(self._data):
            if pos + n > self._size:
                raise RecordTruncated
            self._data = os.pread(self._fd, max(n, self._window), pos)
            self._base = pos
            p = 0
            if len(self._data) < n:  # the file shrank under us
                raise RecordTruncated
        return p

    def scan(self, start: int) -> int:
        """Check the record at byte ``start``; return the offset just after it.

        Raises ShapeError for bytes that are no cassette record and RecordTruncated when
        the file ends inside it.
        """
        p = start - self._base
        if p < 0 or (
            p + _FAST_SPAN > len(self._data) and self._base + len(self._data) < self._size
        ):
            p = self._at(start, min(_FAST_SPAN, self._size - start))
        found = self._message.match(self._data, p)
        if found is None:
            return self._scan_any(start)
        length = int.from_bytes(found.group(found.lastindex or 1), "big")
        end = self._base + found.end() + length
        if end - start > MAX_RECORD_BYTES:
            raise ShapeError(_too_long("a binary value", length, MAX_RECORD_BYTES))
        if end > self._size:
            raise RecordTruncated
        return end

    def fields(self, start: int) -> list[tuple[int, int, int]]:
        """Where each entry of the record map at ``start`` lies: ``(key start, value
        start, value end)`` offsets, in order (for building a big record piece by piece).
        For an array record, each item's ``(start, start, end)``."""
        entries: list[tuple[int, int, int]] = []
        self._scan_any(start, entries)
        return entries

    def _scan_any(self, start: int, entries: list[tuple[int, int, int]] | None = None) -> int:
        pos = start
        key_at = value_at = -1
        todo = [1]
        """Values still to read in each open container, innermost last."""
        keyed = [False]
        """Whether that container is a map (so an even count left means a key is next)."""
        tokens = 0
        field: bytes | None = None
        """The name of the record field whose value is being read."""
        top_array = False
        """Whether the record is an array (a v2 message: its last item is the payload)."""
        while todo:
            left = todo[-1]
            if left == 0:
                todo.pop()
                keyed.pop()
                continue
            todo[-1] = left - 1
            depth = len(todo) - 1
            is_key = keyed[-1] and left % 2 == 0
            tokens += 1
            if tokens > MAX_TOKENS:
                raise ShapeError(f"more than {MAX_TOKENS} values in one record")
            p = self._at(pos, 1)  # (may move the window: index self._data after it)
            first = self._data[p]
            if entries is not None and depth == 1:
                if is_key or top_array:
                    if key_at >= 0:
                        entries.append((key_at, value_at, pos))
                    key_at = pos
                if not is_key:
                    value_at = pos
            if depth == 0 and not (
                0x80 <= first <= 0x8F or first in (0xDE, 0xDF) or first in _EXT_TYPE_AT
            ):
                if not self._arrays:
                    raise NotAMap(f"a record must be a map, not {kind_name(first)}")
                if not (0x90 <= first <= 0x9F or first in (0xDC, 0xDD)):
                    raise NotAMap(
                        f"a record must be a map (or, for a message, an array), not "
                        f"{kind_name(first)}"
                    )
                top_array = True
            if is_key and not (0xA0 <= first <= 0xBF or first in _LENGTH_SIZE):
                raise ShapeError(f"a map key must be a string, not {kind_name(first)}")

            count = -1  # a container's item count
            length = -1  # a string's or binary's byte count
            if first <= 0x7F or first >= 0xE0:
                pos += 1
            elif first <= 0x8F:
                count, pos = 2 * (first & 0x0F), pos + 1
            elif first <= 0x9F:
                count, pos = first & 0x0F, pos + 1
            elif first <= 0xBF:
                length, pos = first & 0x1F, pos + 1
            elif first in _FIXED:
                pos += _FIXED[first]
            elif first in _LENGTH_SIZE:
                size = _LENGTH_SIZE[first]
                p = self._at(pos + 1, size)
                length = int.from_bytes(self._data[p : p + size], "big")
                pos += 1 + size
            elif first in _CONTAINER_SIZE:
                size = _CONTAINER_SIZE[first]
                p = self._at(pos + 1, size)
                count = int.from_bytes(self._data[p : p + size], "big")
                pos += 1 + size
                if first >= 0xDE:
                    count *= 2
            elif first in _EXT_TYPE_AT:
                p = self._at(pos + _EXT_TYPE_AT[first], 1)
                code = int.from_bytes(self._data[p : p + 1], "big", signed=True)
                what = " (a msgpack timestamp)" if code == -1 else ""
                raise ShapeError(
                    f"msgpack extension type {code}{what}: cassettes use no extension types"
                )
            else:
                raise ShapeError("byte 0xc1, which msgpack never uses")

            if count >= 0:
                is_map = first <= 0x8F or first >= 0xDE
                if depth == 0 and top_array and count != 4:
                    raise ShapeError(
                        f"a record that is an array is a message of 4 items, not {count}"
                    )
                if depth >= MAX_DEPTH:
                    raise ShapeError(
                        f"containers nested more than {MAX_DEPTH} deep; no cassette record is"
                    )
                limit = 2 * MAX_FIELDS if is_map else MAX_ITEMS
                if count > limit:
                    what = (
                        f"a map of {count // 2} entries" if is_map else f"an array of {count} items"
                    )
                    most = limit // 2 if is_map else limit
                    raise ShapeError(f"{what}; at most {most} fit in a cassette record")
                todo.append(count)
                keyed.append(is_map)
            elif length >= 0:
                binary = first in (0xC4, 0xC5, 0xC6)
                if is_key and depth == 1:
                    field = None
                    if length <= 8:
                        p = self._at(pos, length)
                        field = self._data[p : p + length]
                    limit = MAX_TEXT_BYTES
                elif binary and depth == 1 and (field in _BIG or (top_array and left == 1)):
                    limit = MAX_RECORD_BYTES
                else:
                    limit = MAX_TEXT_BYTES
                what = "a binary value" if binary else "a string"
                if length > limit:
                    raise ShapeError(_too_long(what, length, limit))
                pos += length
                if pos - start > MAX_RECORD_BYTES:
                    raise ShapeError(_too_long(what, length, MAX_RECORD_BYTES))
        if pos > self._size:
            raise RecordTruncated
        if entries is not None and key_at >= 0:
            entries.append((key_at, value_at, pos))
        return pos

    def read(self, start: int, end: int) -> bytes:
        """The file's bytes from ``start`` to ``end`` (read directly, not windowed)."""
        data = os.pread(self._fd, end - start, start)
        if len(data) < end - start:  # the file shrank under us
            raise RecordTruncated
        return data


def _too_long(what: str, length: int, limit: int) -> str:
    where = "a cassette record" if limit == MAX_RECORD_BYTES else "this field of a cassette record"
    return f"{what} claims {length} bytes, more than {where} may hold ({limit // 1048576} MiB)"
