"""Redaction: rewrite a cassette without its secrets, streaming, and count what was replaced.

Three kinds of rule, each replacing a value with ``<redacted>`` (the marker the recorder
uses):

- ``headers``: request and response header values, by header name (case-insensitive);
- ``json_keys``: the values of these keys (case-insensitive, at any depth) in text
  messages that are JSON. Only the value's characters are replaced: the rest of the
  message keeps its exact bytes (spacing, key order, escapes);
- ``patterns``: regular expression matches anywhere in text: text messages, the request
  target (path and query), header values, close reasons, note texts and the body of a
  refused upgrade. Binary messages are never touched (a length-prefixed binary format
  would be corrupted by a shorter value);
- ``query``: the values of these query parameters in the request target.

A value already equal to ``<redacted>`` is not counted again, so a second run reports 0.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wstape.cassettes.reader import CassetteReader
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Headers, Message, Note, Opcode, Open, Record
from wstape.tools.edit import copy_records

# json's own string scanner (C-accelerated): (decoded string, index after the closing quote)
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

REDACTED = "<redacted>"
REDACTED_BYTES = REDACTED.encode("ascii")
_REDACTED_JSON = json.dumps(REDACTED)

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null|NaN|-?Infinity")


class RedactError(ConfigError):
    """A redaction rule is invalid (e.g. a pattern that does not compile)."""


@dataclass(frozen=True)
class RedactRules:
    headers: frozenset[str] = frozenset()
    """Lower-case header names."""
    json_keys: frozenset[str] = frozenset()
    """Lower-case JSON keys."""
    patterns: tuple[re.Pattern[str], ...] = ()
    query: frozenset[str] = frozenset()
    """Query parameter names (exact)."""

    @classmethod
    def build(
        cls,
        *,
        headers: Iterable[str] = (),
        json_keys: Iterable[str] = (),
        patterns: Iterable[str] = (),
        query: Iterable[str] = (),
    ) -> RedactRules:
        """Rules from the command-line strings; raises RedactError for a bad one."""
        compiled = []
        for p in patterns:
            if not p:
                raise RedactError("empty --pattern")
            try:
                rx = re.compile(p)
            except re.error as e:
                raise RedactError(f"--pattern {p!r}: {e}") from e
            if rx.match(""):
                raise RedactError(f"--pattern {p!r} matches the empty string")
            compiled.append(rx)
        rules = cls(
            headers=frozenset(h.strip().lower() for h in headers),
            json_keys=frozenset(k.lower() for k in json_keys),
            patterns=tuple(compiled),
            query=frozenset(query),
        )
        if "" in rules.headers or "" in rules.json_keys or "" in rules.query:
            raise RedactError("an empty header name, JSON key or query parameter")
        return rules

    @property
    def empty(self) -> bool:
        return not (self.headers or self.json_keys or self.patterns or self.query)


@dataclass
class RedactCounts:
    """How many values were replaced, by rule kind."""

    headers: int = 0
    json_keys: int = 0
    patterns: int = 0
    query: int = 0
    records: int = 0
    """Records written."""
    changed_records: int = 0
    by_location: dict[str, int] = field(default_factory=dict)
    """Pattern matches by where they were found (``message``, ``target``, ``header``...)."""

    @property
    def total(self) -> int:
        return self.headers + self.json_keys + self.patterns + self.query

    def to_json(self) -> dict[str, Any]:
        return {
            "replaced": {
                "headers": self.headers,
                "json_keys": self.json_keys,
                "patterns": self.patterns,
                "query": self.query,
            },
            "total": self.total,
            "records": self.records,
            "changed_records": self.changed_records,
        }


# -- JSON values by key ----------------------------------------------------------------


def _skip_value(s: str, i: int) -> int:
    """End index of the (valid) JSON value starting at ``s[i]``."""
    depth = 0
    while True:
        c = s[i]
        if c == '"':
            _, i = scanstring(s, i + 1)
        elif c in "{[":
            depth += 1
            i += 1
        elif c in "}]":
            depth -= 1
            i += 1
        elif c in ",: \t\n\r":
            i += 1
            continue
        else:
            m = _SCALAR.match(s, i)
            assert m is not None, "validated JSON"
            i = m.end()
        if depth == 0:
            return i


def json_value_spans(text: str, keys: frozenset[str]) -> list[tuple[int, int]]:
    """Spans of the values of ``keys`` (lower-case) anywhere in a JSON document.

    Returns [] for text that is not JSON. Nested matches inside a matched value are not
    listed separately (the outer value is replaced as a whole).
    """
    stripped = text.lstrip(" \t\n\r")
    if not stripped or stripped[0] not in "{[":
        return []
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return []
    spans: list[tuple[int, int]] = []
    stack: list[str] = []
    i = _WS.match(text, 0).end()  # type: ignore[union-attr]
    expect_key = False
    n = len(text)
    while i < n:
        c = text[i]
        if c == "{":
            stack.append("{")
            expect_key = True
            i += 1
        elif c == "[":
            stack.append("[")
            expect_key = False
            i += 1
        elif c in "}]":
            stack.pop()
            expect_key = False
            i += 1
        elif c == ",":
            expect_key = bool(stack) and stack[-1] == "{"
            i += 1
        elif c == '"':
            value, end = scanstring(text, i + 1)
            i = end
            if expect_key:
                expect_key = False
                colon = _WS.match(text, i).end()  # type: ignore[union-attr]
                start = _WS.match(text, colon + 1).end()  # type: ignore[union-attr]
                if value.lower() in keys:
                    stop = _skip_value(text, start)
                    spans.append((start, stop))
                    i = stop
                else:
                    i = start
        elif c in " \t\n\r:":
            i += 1
        else:
            m = _SCALAR.match(text, i)
            assert m is not None, "validated JSON"
            i = m.end()
    return spans


# -- the redactor ----------------------------------------------------------------------


class Redactor:
    """Apply :class:`RedactRules` to records, one at a time, counting replacements."""

    def __init__(self, rules: RedactRules) -> None:
        self.rules = rules
        self.counts = RedactCounts()

    def _sub(self, text: str, where: str) -> str:
        for rx in self.rules.patterns:
            hits = 0

            def repl(m: re.Match[str]) -> str:
                nonlocal hits
                if m.group(0) != REDACTED:
                    hits += 1
                return REDACTED

            text = rx.sub(repl, text)
            if hits:
                self.counts.patterns += hits
                self.counts.by_location[where] = self.counts.by_location.get(where, 0) + hits
        return text

    def _sub_bytes(self, data: bytes, where: str) -> bytes:
        if not self.rules.patterns:
            return data
        # surrogateescape keeps bytes that are not UTF-8 exactly as they were
        text = data.decode("utf-8", "surrogateescape")
        out = self._sub(text, where)
        return data if out == text else out.encode("utf-8", "surrogateescape")

    def _headers(self, headers: Headers) -> Headers:
        out = []
        for name, value in headers:
            if self.rules.headers and name.decode("latin-1").lower() in self.rules.headers:
                if value != REDACTED_BYTES:
                    self.counts.headers += 1
                value = REDACTED_BYTES
            else:
                value = self._sub_bytes(value, "header")
            out.append((name, value))
        return tuple(out)

    def _target(self, target: str) -> str:
        if self.rules.query and "?" in target:
            path, query = target.split("?", 1)
            parts = []
            for part in query.split("&"):
                name, eq, value = part.partition("=")
                if eq and name in self.rules.query and value != REDACTED:
                    self.counts.query += 1
                    part = f"{name}={REDACTED}"
                parts.append(part)
            target = f"{path}?{'&'.join(parts)}"
        return self._sub(target, "target")

    def _payload(self, payload: bytes) -> bytes:
        if self.rules.json_keys:
            try:
                text = payload.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                spans = json_value_spans(text, self.rules.json_keys)
                if spans:
                    pieces = []
                    last = 0
                    for start, stop in spans:
                        pieces.append(text[last:start])
                        pieces.append(_REDACTED_JSON)
                        if text[start:stop] != _REDACTED_JSON:
                            self.counts.json_keys += 1
                        last = stop
                    pieces.append(text[last:])
                    payload = "".join(pieces).encode("utf-8")
        return self._sub_bytes(payload, "message")

    def redact(self, record: Record) -> Record:
        """The record with every rule applied (the same object when nothing changed)."""
        out: Record
        if isinstance(record, Message):
            if record.opcode is not Opcode.TEXT:
                out = record
            else:
                payload = self._payload(record.payload)
                out = record if payload == record.payload else replace(record, payload=payload)
        elif isinstance(record, Open):
            out = replace(
                record,
                target=self._target(record.target),
                request_headers=self._headers(record.request_headers),
                response_headers=self._headers(record.response_headers),
                body=self._sub_bytes(record.body, "body"),
            )
            if out == record:
                out = record
        elif isinstance(record, Close):
            reason = self._sub(record.reason, "close reason")
            out = record if reason == record.reason else replace(record, reason=reason)
        else:
            text = self._sub(record.text, "note")
            out = record if text == record.text else Note(conn=record.conn, text=text, t=record.t)
        self.counts.records += 1
        if out is not record:
            self.counts.changed_records += 1
        return out

    def redact_all(self, records: Iterable[Record]) -> Iterator[Record]:
        for record in records:
            yield self.redact(record)


def redact_cassette(reader: CassetteReader, output: str | Path, rules: RedactRules) -> RedactCounts:
    """Write a redacted copy of the cassette to ``output`` (which may be its own path).

    Raises CassetteError (including TruncatedCassette) and CassetteWriteError; the output
    is only replaced once the whole cassette was written.
    """
    redactor = Redactor(rules)
    copy_records(redactor.redact_all(reader), output, reader.header)
    return redactor.counts
