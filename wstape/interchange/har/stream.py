"""Reading a HAR document incrementally: the log's small fields, then one entry at a time.

A HAR is one JSON document whose ``log.entries`` can hold millions of WebSocket messages
(in ``entries[i]._webSocketMessages``). :func:`walk_har` parses it with ijson's event
stream (its C backend when installed) and yields ``(kind, key, value)`` in file order:

- ``(LOG, name, value)`` for ``log.version``, ``log.creator`` and ``log._wstape``;
- ``(ITEMS, index, None)`` where the ``_webSocketMessages`` array of entry ``index``
  (0-based) begins, then ``(ITEM, i, value)`` for each of its items, one at a time;
- ``(ENTRY, index, (fields, has_messages))`` when the entry ends: ``fields`` holds the
  fields the import reads (:data:`ENTRY_FIELDS`; others, such as ``timings``,
  ``_initiator`` or ``cache``, are skipped without being built), ``has_messages`` whether
  it had a ``_webSocketMessages`` array;
- ``(OTHER, index, value)`` for an entry that is not an object.

Values are built with a depth limit (ijson's own prefix-tracking parser needs memory
quadratic in the nesting depth: 10,000 nested brackets cost 250 MB) and a budget of JSON
values each; integers must fit in 64 bits and numbers be finite. Every failure, whatever
the parser raised, is one :class:`InterchangeError` naming the file.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import ijson

from wstape.interchange.errors import InterchangeError
from wstape.interchange.sources import JsonSource, StreamError

LOG, ITEMS, ITEM, ENTRY, OTHER = range(5)
_EOF = ("eof", None)
LOG_FIELDS = frozenset({"version", "creator", "_wstape"})
ENTRY_FIELDS = frozenset({"startedDateTime", "request", "response", "_resourceType", "_wstape"})
MESSAGES = "_webSocketMessages"
MAX_DEPTH = 64
"""Deepest nesting of arrays and objects (a HAR needs about 8)."""
MAX_VALUES = 250_000
"""Most JSON values (scalars and containers) one built field or message item may hold."""
_INT64 = 2**63
READ_SIZE = 1024 * 1024

Event = tuple[int, Any, Any]


class _Walker:
    def __init__(self, source: JsonSource) -> None:
        self.source = source
        # A big read size: yajl re-reads a token cut by a read boundary, so a long string
        # costs time quadratic in its length over the read size (32 MiB: 3.4 s at 64 KiB
        # reads, 0.24 s at 1 MiB).
        self.events: Iterator[tuple[str, Any]] = ijson.basic_parse(
            source, use_float=True, buf_size=READ_SIZE
        )

        self.left = MAX_VALUES
        """JSON values the value being built may still hold."""
        self.entry: int | None = None
        """The entry being read, for error messages (with ``field`` and ``item``)."""
        self.field: str | None = None
        self.item: int | None = None

    def fail(self, problem: str) -> InterchangeError:
        """The error for ``problem``, naming the entry and field being read, if any."""
        if self.entry is None:
            return InterchangeError(self.source.path, f"not a HAR file ({problem})")
        if self.field is None:
            return InterchangeError(self.source.path, problem, index=self.entry)
        where = self.field if self.item is None else f"{self.field}[{self.item}]"
        return InterchangeError(self.source.path, f"{where}: {problem}", index=self.entry)

    def next(self) -> tuple[str, Any]:
        try:
            return next(self.events)
        except StopIteration:
            raise self.fail("the JSON document ends too early") from None

    def scalar(self, event: str, value: Any) -> Any:
        if event == "number":
            if type(value) is int:
                if not -_INT64 <= value < _INT64:
                    raise self.fail(f"an integer near byte {self.at} is out of range")
            elif not math.isfinite(value):
                raise self.fail(f"a number near byte {self.at} is not finite")
        return value

    @property
    def at(self) -> int:
        return self.source.position

    def build(self, event: str, value: Any, depth: int) -> Any:
        """The value that starts with ``(event, value)``, at nesting ``depth``, holding at
        most MAX_VALUES JSON values."""
        self.left = MAX_VALUES
        if event == "start_map":
            return self._map(depth + 1)
        if event == "start_array":
            return self._list(depth + 1)
        return self.scalar(event, value)

    def _spend(self) -> None:
        raise self.fail(f"holds more than {MAX_VALUES} JSON values (near byte {self.at})")

    def _deep(self) -> None:
        raise self.fail(f"nested deeper than {MAX_DEPTH} near byte {self.at}")

    def _map(self, depth: int) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            self._deep()
        obj: dict[str, Any] = {}
        key = ""
        for event, value in self.events:
            if event == "map_key":
                key = value
                continue
            if event == "end_map":
                return obj
            self.left -= 1
            if self.left < 0:
                self._spend()
            if event == "start_map":
                obj[key] = self._map(depth + 1)
            elif event == "start_array":
                obj[key] = self._list(depth + 1)
            elif event == "number":
                obj[key] = self.scalar(event, value)
            else:
                obj[key] = value
        raise self.fail("the JSON document ends too early")

    def _list(self, depth: int) -> list[Any]:
        if depth > MAX_DEPTH:
            self._deep()
        items: list[Any] = []
        append = items.append
        for event, value in self.events:
            if event == "end_array":
                return items
            self.left -= 1
            if self.left < 0:
                self._spend()
            if event == "start_map":
                append(self._map(depth + 1))
            elif event == "start_array":
                append(self._list(depth + 1))
            elif event == "number":
                append(self.scalar(event, value))
            else:
                append(value)
        raise self.fail("the JSON document ends too early")

    def skip(self, event: str) -> None:
        """Consume the value that starts with ``event`` without building it."""
        if event != "start_map" and event != "start_array":
            return
        depth = 1
        for event, _ in self.events:
            if event == "start_map" or event == "start_array":
                depth += 1
            elif event == "end_map" or event == "end_array":
                depth -= 1
                if depth == 0:
                    return
        raise self.fail("the JSON document ends too early")

    def walk(self) -> Iterator[Event]:
        event, _ = self.next()
        if event != "start_map":
            raise self.fail('no "log" object')
        seen_log = False
        log_keys = 0
        while True:
            event, key = self.next()
            if event == "end_map":
                break
            event, _ = self.next()
            if key == "log":
                # JSON.parse and Python's json take the last of two; this parser would
                # take the first: which session the file holds is not for us to choose.
                log_keys += 1
                if log_keys > 1:
                    raise self.fail('two "log" objects')
            if key == "log" and event == "start_map":
                seen_log = True
                yield from self.log()
            else:
                self.skip(event)
        for _ in self.events:  # the parser reports trailing garbage when drained
            pass
        if not seen_log:
            raise self.fail('no "log" object')

    def log(self) -> Iterator[Event]:
        seen_entries = False
        while True:
            event, key = self.next()
            if event == "end_map":
                break
            event, value = self.next()
            if key == "entries":
                if seen_entries:
                    raise self.fail("two log.entries arrays")
                if event != "start_array":
                    raise self.fail('no "log.entries" array')
                seen_entries = True
                yield from self.entries()
            elif key in LOG_FIELDS:
                yield (LOG, key, self.build(event, value, 2))
            else:
                self.skip(event)
        if not seen_entries:
            raise self.fail('no "log.entries" array')

    def entries(self) -> Iterator[Event]:
        events = self.events
        index = 0
        while True:
            self.entry = self.field = self.item = None
            event, value = next(events, _EOF)
            if event == "end_array":
                return
            self.entry = index
            if event != "start_map":
                if event == "eof":
                    raise self.fail("the JSON document ends too early")
                yield (OTHER, index, self.build(event, value, 3))
                index += 1
                continue
            head: dict[str, Any] = {}
            has_messages = False
            while True:
                self.field = self.item = None
                event, key = next(events, _EOF)
                if event == "end_map":
                    break
                if event == "eof":
                    raise self.fail("the JSON document ends too early")
                self.field = key if isinstance(key, str) and len(key) <= 40 else "a field"
                event, value = next(events, _EOF)
                if key == MESSAGES and event == "start_array":
                    has_messages = True
                    yield (ITEMS, index, None)
                    i = 0
                    while True:
                        self.item = i
                        event, value = next(events, _EOF)
                        if event == "end_array":
                            break
                        yield (ITEM, i, self.build(event, value, 5))
                        i += 1
                elif key in ENTRY_FIELDS or key == MESSAGES:
                    head[key] = self.build(event, value, 4)
                else:
                    self.skip(event)
            self.field = self.item = None
            yield (ENTRY, index, (head, has_messages))
            index += 1


_JSON_ERRORS = (ijson.JSONError, ValueError)


def _describe(e: Exception, source: JsonSource) -> str:
    """One line for a parser error (yajl's messages span lines and may be bytes)."""
    arg = e.args[0] if e.args else ""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
    detail = (text.strip().splitlines() or [type(e).__name__])[0].strip()[:200]
    detail = detail.removeprefix("parse error: ").removeprefix("lexical error: ")
    head = source.head
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4]:
        return "not UTF-8 text: UTF-16 or UTF-32? save it as UTF-8"
    if isinstance(e, UnicodeError):
        return f"not UTF-8 text, or a lone surrogate escape, near byte {source.position}"
    if "UTF8" in detail or "UTF-8" in detail:
        return f"not UTF-8 text near byte {source.position}"
    return f"invalid JSON near byte {source.position}: {detail}"


def walk_har(source: JsonSource) -> Iterator[Event]:
    """The events of the HAR document ``source`` reads (see the module doc).

    Raises InterchangeError for a document that is not a HAR's shape or not JSON, naming
    the entry and field being read when there is one.
    """
    walker = _Walker(source)
    try:
        yield from walker.walk()
    except StreamError as e:
        if walker.entry is None:
            raise
        # the source's limits: name the entry too, and the field for a value's
        if not e.about_value:
            walker.field = None
        raise walker.fail(e.detail) from e
    except _JSON_ERRORS as e:
        raise walker.fail(_describe(e, source)) from e
    except RecursionError as e:  # a backend that recurses: refuse, never crash
        raise walker.fail("nested too deeply") from e
    finally:
        # ijson's pure-Python parser raises again when closed after an error
        close = getattr(walker.events, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


__all__ = [
    "ENTRY",
    "ENTRY_FIELDS",
    "ITEM",
    "ITEMS",
    "LOG",
    "MAX_DEPTH",
    "MAX_VALUES",
    "MESSAGES",
    "OTHER",
    "Event",
    "walk_har",
]
