"""Redaction: the one engine that keeps secrets out of cassettes.

The recorder runs it on every record before writing, and ``wstape redact`` on every
record of an existing cassette, so both agree on what a secret is and where it goes. It
does no I/O: the values of ``--secret-env`` / ``--secret-file`` arrive as bytes.

What is replaced (each value becomes ``<redacted>``, :data:`MARKER`):

- **headers** by name, case-insensitive, ``*`` a wildcard (``*-Token``); the name stays.
  ``Sec-WebSocket-Protocol`` and ``Sec-WebSocket-Extensions`` are redacted item by item,
  and the ``subprotocols``, ``subprotocol`` and ``extensions`` fields that were parsed from
  them get the same items replaced, so no derived copy keeps the value;
- **subprotocol tokens** (with the defaults on): an offered subprotocol that follows a
  credential word (``access_token``, ``token``, ``bearer``, ...: ``["access_token", T]``),
  the part after such a word (``base64url.bearer.authorization.k8s.io.T``,
  ``openai-insecure-api-key.T``), a JWT, or a long opaque token (32+ characters of
  letters, digits and ``+/=_~-``, with both letters and digits);
- **query parameters** by name in the request target, and in the URL headers
  ``Referer``, ``Origin``, ``Location`` and ``Content-Location``;
- **JSON keys**: the value of every such key at any depth (whatever its type) in a text
  message that is JSON, or that carries JSON after a prefix (Socket.IO's ``42[...]``), and
  inside JSON strings that are JSON themselves (up to :data:`MAX_EMBEDDED` levels). Only
  the value's span changes: every other byte of the message stays. The scan is
  iterative, so any depth of nesting works;
- **patterns** (``wstape redact --pattern``): regular expression matches in any text;
- **secret values** (``--secret-env``, ``--secret-file``): every occurrence, anywhere: header
  values, the target, subprotocols, text and binary payloads, close reasons, notes. In a
  binary payload the value is overwritten in place with as many bytes (``<redacted>`` then
  ``*``), so length-prefixed formats keep their framing. Its percent-encoded and JSON-escaped
  spellings are found too.

Names are compared case-insensitively with ``-`` and ``_`` alike (``api-key`` is
``API_KEY``).

It fails closed. A text message where a JSON key to redact may sit (a quoted key followed
by ``:``) outside any JSON value the scanner could parse is written as ``<redacted>``, with
a note saying why: never a silent secret, and never an exception that would let a proxy
relay the message unrecorded.

A value already equal to ``<redacted>`` is not counted again, so redacting twice reports 0
the second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar
from urllib.parse import quote, unquote_plus

from wstape.core.codecs import jsontext
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Headers, Message, Note, Opcode, Open, Record

MARKER = "<redacted>"
"""What every redacted value is replaced with."""
MARKER_BYTES = MARKER.encode("ascii")
MARKER_JSON = json.dumps(MARKER)
"""The marker as a JSON string: what a redacted JSON value becomes."""

DEFAULT_HEADERS: tuple[str, ...] = (
    "Authorization",
    "Proxy-Authorization",
    "Cookie",
    "Set-Cookie",
    "X-Api-Key",
    "Api-Key",
    "X-Auth-Token",
    "*-Token",
)
"""Headers whose values are redacted unless the defaults are switched off."""

DEFAULT_KEYS: tuple[str, ...] = (
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "auth_token",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "api_key",
    "apikey",
    "signature",
    "sig",
    "session",
    "sessionid",
    "session_id",
    "authorization",
)
"""Query parameters and JSON keys redacted unless the defaults are switched off."""

CREDENTIAL_WORDS: frozenset[str] = frozenset({*DEFAULT_KEYS, "bearer", "auth", "jwt"})
"""A subprotocol that is one of these words announces a credential in the next one."""

MAX_EMBEDDED = 8
"""How many levels of JSON-inside-a-JSON-string are looked into; deeper, a string that
may hold a key to redact is replaced whole."""
MIN_SECRET = 4
"""Shortest ``--secret-env`` / ``--secret-file`` value: a shorter one would match
everywhere (and is no secret)."""

SUBPROTOCOL_HEADER = b"sec-websocket-protocol"
EXTENSIONS_HEADER = b"sec-websocket-extensions"
URL_HEADERS = frozenset({b"referer", b"origin", b"location", b"content-location"})

WITHHELD_NOTE = (
    "payload withheld (written as <redacted>): it may hold a JSON key to redact ({key}) "
    "that is not inside JSON wstape could parse"
)
SECRET_NOTE = "{n} occurrence{s} of a --secret-env/--secret-file value redacted in this {what}"

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_JWT = re.compile(r"^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_OPAQUE = re.compile(r"^(?=.*[0-9])(?=.*[A-Za-z])[A-Za-z0-9+/=_~-]{32,}$")
_WS = " \t\n\r"
_ESCAPE = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u.{4}|\\.")
_OPENERS = re.compile(r"[\[{]")
_SHORT = 256
"""Below this many bytes one regular expression is the cheapest first check."""
_WILDCARD = re.compile(rb'\\*"<redacted>\\*"|<redacted>\**')
"""A redacted value in a recorded payload, as :func:`matches_redacted` reads it."""

Edit = tuple[int, int, str]
"""Replace ``text[start:end]`` with the string."""
S = TypeVar("S", str, bytes)


def normalize(name: str) -> str:
    """How names are compared: case-insensitive, ``-`` and ``_`` alike."""
    return name.lower().replace("-", "_")


# -- what to redact ----------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a :class:`Redactor` replaces; build it with :meth:`build`."""

    headers: tuple[str, ...] = ()
    """Lower-case header names; ``*`` matches any run of characters."""
    json_keys: frozenset[str] = frozenset()
    """Normalized (:func:`normalize`) JSON keys."""
    query: frozenset[str] = frozenset()
    """Normalized query parameter names."""
    patterns: tuple[re.Pattern[str], ...] = ()
    secrets: tuple[bytes, ...] = ()
    """Values never written anywhere."""
    subprotocol_tokens: bool = False
    """Look for credentials among the offered subprotocols (part of the defaults)."""

    @classmethod
    def build(
        cls,
        *,
        defaults: bool = True,
        headers: Iterable[str] = (),
        json_keys: Iterable[str] = (),
        query: Iterable[str] = (),
        patterns: Iterable[str] = (),
        secrets: Iterable[bytes] = (),
    ) -> Policy:
        """The defaults (unless ``defaults`` is False) plus the given names and values.

        Raises ConfigError naming the option (``header``, ``json_key``, ``query``,
        ``pattern``, ``secret``) for an empty or malformed one.
        """
        names = [*(DEFAULT_HEADERS if defaults else ()), *headers]
        for name in names:
            if not _HEADER_NAME.match(name.strip()):
                raise ConfigError(f"not a header name: {name!r}", option="header")
        keys = [*(DEFAULT_KEYS if defaults else ()), *json_keys]
        params = [*(DEFAULT_KEYS if defaults else ()), *query]
        for option, values in (("json_key", keys), ("query", params)):
            if any(not v for v in values):
                raise ConfigError("empty name", option=option)
        compiled = []
        for p in patterns:
            if not p:
                raise ConfigError("empty pattern", option="pattern")
            try:
                rx = re.compile(p)
            except re.error as e:
                raise ConfigError(f"{p!r}: {e}", option="pattern") from None
            if rx.match(""):
                raise ConfigError(f"{p!r} matches the empty string", option="pattern")
            compiled.append(rx)
        secret_values = tuple(dict.fromkeys(secrets))
        for value in secret_values:
            if len(value) < MIN_SECRET:
                raise ConfigError(
                    f"a value of {len(value)} bytes is too short to redact safely "
                    f"(at least {MIN_SECRET})",
                    option="secret",
                )
        return cls(
            headers=tuple(dict.fromkeys(n.strip().lower() for n in names)),
            json_keys=frozenset(normalize(k) for k in keys),
            query=frozenset(normalize(q) for q in params),
            patterns=tuple(compiled),
            secrets=secret_values,
            subprotocol_tokens=defaults,
        )

    @property
    def empty(self) -> bool:
        return not (
            self.headers
            or self.json_keys
            or self.query
            or self.patterns
            or self.secrets
            or self.subprotocol_tokens
        )


@dataclass
class Counts:
    """How many values were replaced, by kind."""

    headers: int = 0
    subprotocols: int = 0
    query: int = 0
    json_keys: int = 0
    patterns: int = 0
    secrets: int = 0
    """Occurrences of a ``--secret-env`` / ``--secret-file`` value."""
    withheld: int = 0
    """Payloads written as ``<redacted>`` because they could not be redacted precisely."""
    records: int = 0
    changed_records: int = 0
    by_location: dict[str, int] = field(default_factory=dict)
    """Pattern matches by where they were found (``message``, ``target``, ``header``...)."""

    @property
    def total(self) -> int:
        return (
            self.headers
            + self.subprotocols
            + self.query
            + self.json_keys
            + self.patterns
            + self.secrets
            + self.withheld
        )

    def summary(self) -> str:
        """``redacted 3 values (headers 2, JSON keys 1)`` ("" if none): the line ``wstape
        record`` and ``wstape import`` end with, the kinds named as ``wstape redact``
        names them."""
        if not self.total:
            return ""
        parts = [
            f"{what} {n}"
            for what, n in (
                ("headers", self.headers),
                ("subprotocols", self.subprotocols),
                ("query", self.query),
                ("JSON keys", self.json_keys),
                ("secret values", self.secrets),
                ("payloads withheld", self.withheld),
            )
            if n
        ]
        values = "value" if self.total == 1 else "values"
        return f"redacted {self.total} {values} ({', '.join(parts)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "replaced": {
                "headers": self.headers,
                "subprotocols": self.subprotocols,
                "query": self.query,
                "json_keys": self.json_keys,
                "patterns": self.patterns,
                "secrets": self.secrets,
                "withheld": self.withheld,
            },
            "total": self.total,
            "records": self.records,
            "changed_records": self.changed_records,
        }


# -- the engine --------------------------------------------------------------------------


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of normalized names, ``_`` matching ``-`` too (longest first)."""
    parts = sorted({re.escape(w).replace("_", "[-_]") for w in words}, key=len, reverse=True)
    return "|".join(parts)


def _needles(keys: Iterable[str]) -> list[str]:
    """Few substrings such that every key contains one (``sig`` stands for ``signature``)."""
    out: list[str] = []
    for key in sorted(keys, key=len):
        if not any(n in key for n in out):
            out.append(key)
    return out


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def _spellings(value: bytes) -> list[bytes]:
    """A secret as it may appear: raw, percent-encoded, JSON-escaped (also with ``\\/``)."""
    out = [value]
    out.append(quote(value, safe="").encode("ascii"))
    out.append(quote(value, safe="/:@").encode("ascii"))
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None:
        for ascii_only in (False, True):
            escaped = json.dumps(text, ensure_ascii=ascii_only)[1:-1].encode("utf-8")
            out.append(escaped)
            out.append(escaped.replace(b"/", b"\\/"))
    return sorted(set(out), key=len, reverse=True)


class Redactor:
    """Apply a :class:`Policy` to records one at a time, counting what was replaced.

    :meth:`record` returns the redacted record and the notes to write after it (a secret
    value found, a payload withheld). Nothing here raises for hostile input.
    """

    def __init__(self, policy: Policy, *, counts: Counts | None = None) -> None:
        self.policy = policy
        self.counts = Counts() if counts is None else counts
        """What was replaced so far (pass one in to keep counting across policies)."""
        self._header_exact = frozenset(n.encode("latin-1") for n in policy.headers if "*" not in n)
        self._header_globs = tuple(_glob(n) for n in policy.headers if "*" in n)
        self._whole_protocols = self._header_named(SUBPROTOCOL_HEADER)
        self._whole_extensions = self._header_named(EXTENSIONS_HEADER)
        keys = policy.json_keys
        self._keys = keys
        self._probe: re.Pattern[bytes] | None = None
        self._needles: tuple[bytes, ...] = ()
        self._probe_text: re.Pattern[str] | None = None
        self._net: re.Pattern[str] | None = None
        if keys:
            alternation = _alternation(keys)
            # An ASCII letter written as \u00XX could spell a key: look at those too.
            needles = _needles(keys)
            probe = f"(?:{_alternation(needles)})|\\\\u00[2-7][0-9a-f]"
            self._probe_text = re.compile(probe)
            if all(k.isascii() for k in keys):
                self._probe = re.compile(probe.encode("ascii"))
                self._needles = tuple(
                    {v.encode("ascii") for n in needles for v in (n, n.replace("_", "-"))}
                )
            self._net = re.compile(
                f'\\\\*"(?P<key>{alternation})\\\\*"[{_WS}]*:(?![{_WS}]*\\\\*"<redacted>)',
                re.IGNORECASE,
            )
        self._secret: re.Pattern[bytes] | None = None
        self._spellings: tuple[bytes, ...] = ()
        self._secret_text: re.Pattern[str] | None = None
        if policy.secrets:
            spellings = [s for v in policy.secrets for s in _spellings(v)]
            spellings.sort(key=len, reverse=True)
            self._spellings = tuple(spellings)
            self._secret = re.compile(b"|".join(re.escape(s) for s in spellings))
            self._secret_text = re.compile(
                "|".join(re.escape(s.decode("utf-8", "surrogateescape")) for s in spellings)
            )

    def _header_named(self, lname: bytes) -> bool:
        if lname in self._header_exact:
            return True
        if self._header_globs:
            text = lname.decode("latin-1")
            return any(g.match(text) for g in self._header_globs)
        return False

    # -- records ---------------------------------------------------------------------

    def redact(self, record: Record) -> Record:
        """The record with the policy applied (the same object when nothing changed)."""
        return self.record(record)[0]

    def record(self, record: Record) -> tuple[Record, list[str]]:
        """The redacted record, and the notes to write after it (empty when none)."""
        notes: list[str] = []
        out: Record
        if isinstance(record, Message):
            payload = self.payload(record.payload, record.opcode is Opcode.TEXT, notes)
            out = record if payload == record.payload else replace(record, payload=payload)
        elif isinstance(record, Open):
            out = self.open(record, notes)
        elif isinstance(record, Close):
            reason = self._text(record.reason, "close reason", notes, "close reason")
            out = record if reason == record.reason else replace(record, reason=reason)
        else:
            text = self._text(record.text, "note", notes, "note")
            out = record if text == record.text else replace(record, text=text)
        self.counts.records += 1
        if out is not record:
            self.counts.changed_records += 1
        return out, notes

    def records(self, records: Iterable[Record]) -> Iterator[Record]:
        """Every record redacted, each followed by its notes (same connection and time)."""
        for record in records:
            out, notes = self.record(record)
            yield out
            for text in notes:
                yield Note(conn=out.conn, text=text, t=getattr(out, "t", None))

    # -- messages (the recorder's hot path) ------------------------------------------

    def payload(
        self, payload: bytes, text: bool, notes: list[str] | None = None, where: str = "message"
    ) -> bytes:
        """A message payload redacted; notes (if a list is given) say what was withheld
        or which secret values were found. The cheap checks come first: a message with
        no key name and no secret value in it costs two regular expression searches."""
        out = payload
        if text:
            if self._keys and self._may_hold_key(payload):
                out = self._json_bytes(out, notes)
            if self.policy.patterns and out != MARKER_BYTES:
                out = self._sub_bytes(out, where)
        if self._secret is not None and self._has_secret(out):
            # A body's secret values are part of the upgrade's note.
            kept = notes if where == "message" else None
            out = self._secret_bytes(out, binary=not text, notes=kept, what=where)
        return out

    def _may_hold_key(self, payload: bytes) -> bool:
        """False when no key to redact can be in ``payload`` (the cheap check first)."""
        if self._probe is None:
            return True  # a key that is not ASCII: bytes.lower() cannot fold it
        low = payload.lower()  # 4x cheaper than an IGNORECASE search
        if len(low) < _SHORT:
            return self._probe.search(low) is not None
        # Longer, a substring search per needle beats one alternation (~5 vs ~20 ns/byte).
        if any(n in low for n in self._needles):
            return True
        return b"\\u00" in low and self._probe.search(low) is not None

    def _has_secret(self, data: bytes) -> bool:
        assert self._secret is not None
        if len(data) < _SHORT:
            return self._secret.search(data) is not None
        return any(s in data for s in self._spellings)  # as in _may_hold_key

    def _json_bytes(self, payload: bytes, notes: list[str] | None) -> bytes:
        text = payload.decode("utf-8", "surrogateescape")
        edits, count, failed = self._json_text(text, 0)
        if failed is not None:
            self.counts.withheld += 1
            if notes is not None:
                notes.append(WITHHELD_NOTE.format(key=failed))
            return MARKER_BYTES
        if not edits:
            return payload
        self.counts.json_keys += count
        return jsontext.apply_edits(text, edits).encode("utf-8", "surrogateescape")

    def _json_text(self, text: str, depth: int) -> tuple[list[Edit], int, str | None]:
        """Edits masking the keys in ``text``, how many values they replace, and the key
        that makes the text unsafe to keep (None when it is safe).

        Every JSON value in the text is redacted: a whole document, or values after a
        prefix (``42["ev",{...}]``), or several in a row. Whatever is not inside a value
        the scanner could parse is searched for a quoted key followed by ``:`` (the net):
        one there means the text may hold a secret that cannot be masked precisely. The
        time is linear in the text: after a failed value the scan resumes where it stopped.
        """
        edits: list[Edit] = []
        count = 0
        outside: list[tuple[int, int]] = []  # the parts not inside a parsed value
        pos = 0
        gap = 0  # where the current part outside values started
        while True:
            found = _OPENERS.search(text, pos)
            if found is None:
                break
            try:
                more, n, end = self._value(text, found.start(), depth, whole=False)
            except jsontext.ScanError as e:
                pos = max(found.start() + 1, e.pos)
                continue
            outside.append((gap, found.start()))
            edits += more
            count += n
            pos = gap = end
        outside.append((gap, len(text)))
        assert self._net is not None
        for a, b in outside:
            hit = self._net.search(text, a, b) if a < b else None
            if hit is not None:
                return [], 0, hit.group("key")
        return edits, count, None

    def _value(
        self, text: str, start: int, depth: int, *, whole: bool
    ) -> tuple[list[Edit], int, int]:
        """Edits for the JSON value at ``start`` and where it ends; ValueError if none."""
        edits: list[Edit] = []
        count = 0
        end = len(text)
        for path, s, e in jsontext.keyed(text, self._is_key, start, whole=whole, strings=True):
            if path is jsontext.KEY:
                edits.append((s, e, MARKER_JSON))
                if text[s:e] != MARKER_JSON:
                    count += 1
            elif path is jsontext.STRING:
                found = self._in_string(text, s, e, depth)
                if found is not None:
                    edits += found[0]
                    count += found[1]
            else:
                end = e
        return edits, count, end

    def _is_key(self, key: str) -> bool:
        return normalize(key) in self._keys

    def _in_string(self, text: str, s: int, e: int, depth: int) -> tuple[list[Edit], int] | None:
        """Edits inside the JSON string ``text[s:e]`` when it holds JSON with a key."""
        assert self._probe_text is not None
        raw = text[s:e]
        if e - s < 4 or self._probe_text.search(raw.lower()) is None:
            return None
        inner: str = json.loads(raw)
        if inner.lstrip(_WS)[:1] not in ("{", "["):
            return None
        if depth >= MAX_EMBEDDED:
            return [(s, e, MARKER_JSON)], 1
        edits, count, failed = self._json_text(inner, depth + 1)
        if failed is not None:
            return [(s, e, MARKER_JSON)], 1
        if not edits:
            return None
        offsets = _offsets(raw)
        if len(offsets) != len(inner) + 1:  # pragma: no cover - _offsets mirrors json
            return [
                (s, e, json.dumps(jsontext.apply_edits(inner, edits), ensure_ascii=False))
            ], count
        return [
            (s + offsets[a], s + offsets[b], json.dumps(new, ensure_ascii=False)[1:-1])
            for a, b, new in edits
        ], count

    # -- the opening handshake --------------------------------------------------------

    def open(self, op: Open, notes: list[str] | None = None) -> Open:
        """The upgrade with header values, subprotocols, query and body redacted."""
        before = self.counts.secrets
        items = self._subprotocol_secrets(op)
        self.counts.subprotocols += sum(1 for k, v in items.items() if k != v)
        # The same item in a header and in the field parsed from it is redacted (and
        # counted) once.
        protocols = _Items(lambda item: self._item(item, items))
        extensions = _Items(lambda item: self._extension(item))
        request_headers = self._headers(op.request_headers, protocols, extensions)
        response_headers = self._headers(op.response_headers, protocols, extensions)
        out = replace(
            op,
            host=self._secret_str(op.host),
            target=self._target(op.target),
            request_headers=request_headers,
            response_headers=response_headers,
            subprotocols=tuple(protocols(i) for i in op.subprotocols),
            subprotocol=None if op.subprotocol is None else protocols(op.subprotocol),
            extensions=tuple(extensions(i) for i in op.extensions),
            reason=self._text(op.reason, "reason"),
            body=self._body(op.body, notes),
        )
        found = self.counts.secrets - before
        if found and notes is not None:
            notes.append(SECRET_NOTE.format(n=found, s="" if found == 1 else "s", what="upgrade"))
        return op if out == op else out

    def _subprotocol_secrets(self, op: Open) -> dict[str, str]:
        """Each offered (or chosen) subprotocol that carries a credential, and what it becomes."""
        offered = [
            item
            for name, value in op.request_headers
            if name.lower() == SUBPROTOCOL_HEADER
            for item in (i.strip() for i in value.decode("latin-1").split(","))
            if item
        ] or list(op.subprotocols)
        chosen = [op.subprotocol] if op.subprotocol else []
        chosen += [
            v.decode("latin-1").strip()
            for k, v in op.response_headers
            if k.lower() == SUBPROTOCOL_HEADER
        ]
        out: dict[str, str] = {}
        if self._whole_protocols:
            return {item: MARKER for item in (*offered, *chosen)}
        if not self.policy.subprotocol_tokens:
            return out
        for i, item in enumerate(offered):
            if (
                i > 0
                and normalize(offered[i - 1]) in CREDENTIAL_WORDS
                and (normalize(item) not in CREDENTIAL_WORDS)
            ):
                out[item] = MARKER
                continue
            redacted = subprotocol_token(item)
            if redacted != item:
                out[item] = redacted
        for item in chosen:
            if item not in out and item not in offered:
                redacted = subprotocol_token(item)
                if redacted != item:
                    out[item] = redacted
        return out

    def _item(self, item: str, secrets: dict[str, str]) -> str:
        value = secrets.get(item, item)
        if value == item:
            value = self._sub(value, "header")
        return self._secret_str(value)

    def _extension(self, item: str) -> str:
        if self._whole_extensions:
            if item != MARKER:
                self.counts.headers += 1
            return MARKER
        return self._secret_str(self._sub(item, "header"))

    def _headers(self, headers: Headers, protocols: _Items, extensions: _Items) -> Headers:
        out = []
        for name, value in headers:
            lname = name.lower()
            if lname == SUBPROTOCOL_HEADER:
                new = _header_items(value, protocols)
            elif lname == EXTENSIONS_HEADER:
                new = _header_items(value, extensions)
            elif self._header_named(lname):
                if value != MARKER_BYTES:
                    self.counts.headers += 1
                new = MARKER_BYTES
            else:
                text = value.decode("utf-8", "surrogateescape")
                if lname in URL_HEADERS and self.policy.query and "?" in text:
                    text = self._query_of_url(text)
                new = self._secret_str(self._sub(text, "header")).encode("utf-8", "surrogateescape")
                if new == value:
                    new = value
            out.append((name, new))
        return tuple(out)

    def _target(self, target: str) -> str:
        if self.policy.query and "?" in target:
            target = self._query_of_url(target)
        return self._secret_str(self._sub(target, "target"))

    def _query_of_url(self, url: str) -> str:
        head, query = url.split("?", 1)
        fragment = ""
        if "#" in query:
            query, fragment = query.split("#", 1)
            fragment = "#" + fragment
        parts = []
        for part in query.split("&"):
            name, eq, value = part.partition("=")
            if eq and normalize(unquote_plus(name)) in self.policy.query:
                if value != MARKER:
                    self.counts.query += 1
                part = f"{name}={MARKER}"
            parts.append(part)
        return f"{head}?{'&'.join(parts)}{fragment}"

    def _body(self, body: bytes, notes: list[str] | None) -> bytes:
        if not body:
            return body
        return self.payload(body, True, notes, "body")

    # -- text fields and secret values -----------------------------------------------

    def _text(
        self, text: str, where: str, notes: list[str] | None = None, what: str | None = None
    ) -> str:
        before = self.counts.secrets
        out = self._secret_str(self._sub(text, where))
        found = self.counts.secrets - before
        if found and notes is not None and what is not None:
            notes.append(SECRET_NOTE.format(n=found, s="" if found == 1 else "s", what=what))
        return out

    def _sub(self, text: str, where: str) -> str:
        for rx in self.policy.patterns:
            hits = 0
            # The markers already in the text (the defaults', an earlier run's): a match
            # inside one or across its edge is made of the marker's characters, no value
            # of the recording, and replacing it would cut the marker up.
            markers = _marker_spans(text)

            def repl(m: re.Match[str], markers: list[tuple[int, int]] = markers) -> str:
                nonlocal hits
                found = m.group(0)
                if not found or found == MARKER:
                    return found  # an empty match replaces nothing ("(?=a)", "\\b")
                start, end = m.span()
                for a, b in markers:
                    if start < b and end > a and not (start <= a and end >= b):
                        return found
                hits += 1
                return MARKER

            text = rx.sub(repl, text)
            if hits:
                self.counts.patterns += hits
                self.counts.by_location[where] = self.counts.by_location.get(where, 0) + hits
        return text

    def _sub_bytes(self, data: bytes, where: str) -> bytes:
        # surrogateescape keeps bytes that are not UTF-8 exactly as they were
        text = data.decode("utf-8", "surrogateescape")
        out = self._sub(text, where)
        return data if out == text else out.encode("utf-8", "surrogateescape")

    def _secret_str(self, text: str) -> str:
        if self._secret_text is None or self._secret_text.search(text) is None:
            return text
        out, n = self._secret_text.subn(MARKER, text)
        self.counts.secrets += n
        return out

    def _secret_bytes(
        self, data: bytes, *, binary: bool, notes: list[str] | None, what: str
    ) -> bytes:
        assert self._secret is not None
        if binary:
            out, n = self._secret.subn(lambda m: _fill(len(m.group(0))), data)
        else:
            out, n = self._secret.subn(MARKER_BYTES, data)
        self.counts.secrets += n
        if notes is not None:
            notes.append(SECRET_NOTE.format(n=n, s="" if n == 1 else "s", what=what))
        return out


class _Items:
    """Redact comma-list items (subprotocols, extensions) once each, remembering the result."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self.redact = redact
        self.done: dict[str, str] = {}

    def __call__(self, item: str) -> str:
        key = item.strip()
        if key not in self.done:
            self.done[key] = self.redact(key)
        new = self.done[key]
        return item if new == key else new  # unchanged items keep their spacing


def _header_items(value: bytes, items: _Items) -> bytes:
    """A comma-list header with its items redacted as the field parsed from it is."""
    text = value.decode("latin-1")
    parts = []
    for part in text.split(","):
        item = part.strip()
        if not item:
            parts.append(part)
            continue
        lead = part[: len(part) - len(part.lstrip())]
        tail = part[len(part.rstrip()) :]
        parts.append(lead + items(item) + tail)
    joined = ",".join(parts)
    if joined == text:
        return value
    return joined.encode("latin-1", "replace")


def _marker_spans(text: str) -> list[tuple[int, int]]:
    """Where ``<redacted>`` stands in ``text``: (start, end) of each."""
    if MARKER not in text:
        return []
    spans = []
    at = text.find(MARKER)
    while at >= 0:
        spans.append((at, at + len(MARKER)))
        at = text.find(MARKER, at + len(MARKER))
    return spans


def _fill(n: int) -> bytes:
    """``n`` bytes standing for a redacted value in a binary payload."""
    return MARKER_BYTES + b"*" * (n - len(MARKER_BYTES)) if n >= len(MARKER_BYTES) else b"*" * n


def _offsets(raw: str) -> list[int]:
    """For a JSON string literal, where (in ``raw``) each decoded character starts, plus
    the index of the closing quote."""
    out: list[int] = []
    i, stop = 1, len(raw) - 1
    while i < stop:
        if raw[i] == "\\":
            found = _ESCAPE.match(raw, i)
            out.append(i)
            i = found.end() if found is not None else i + 2
        else:
            j = raw.find("\\", i, stop)
            j = stop if j < 0 else j
            out.extend(range(i, j))
            i = j
    out.append(stop)
    return out


def subprotocol_token(item: str) -> str:
    """``item`` with a credential it carries replaced by the marker (``item`` if none).

    ``base64url.bearer.authorization.k8s.io.TOKEN`` keeps everything up to its last
    credential word; a JWT or a long opaque token is replaced whole.
    """
    parts = item.split(".")
    for i in range(len(parts) - 2, -1, -1):
        word = normalize(parts[i])
        if any(word == w or word.endswith("_" + w) for w in CREDENTIAL_WORDS):
            return ".".join([*parts[: i + 1], MARKER])
    if _JWT.match(item) or _OPAQUE.match(item):
        return MARKER
    return item


# -- replaying what was redacted ---------------------------------------------------------


def is_redacted(value: str | bytes) -> bool:
    """Whether ``value`` holds a redacted part."""
    if isinstance(value, str):
        return MARKER in value
    return MARKER_BYTES in value


def matches_redacted(recorded: S, live: S) -> bool:
    """Whether ``live`` could be what was recorded as ``recorded`` before redaction.

    Each redacted part of ``recorded`` (``<redacted>``, the JSON string ``"<redacted>"``
    that replaced a value of any type, a binary fill ``<redacted>***``) matches any run of
    ``live``; the rest must be equal. Without a redacted part this is ``==``.
    """
    data = recorded.encode("utf-8", "surrogateescape") if isinstance(recorded, str) else recorded
    other = live.encode("utf-8", "surrogateescape") if isinstance(live, str) else live
    pieces = _WILDCARD.split(data)
    if len(pieces) == 1:
        return data == other
    first, last = pieces[0], pieces[-1]
    if len(first) + len(last) > len(other):
        return False
    if not other.startswith(first) or not other.endswith(last):
        return False
    pos, stop = len(first), len(other) - len(last)
    for piece in pieces[1:-1]:
        found = other.find(piece, pos, stop)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def choose_redacted(
    recorded: str, offered: Sequence[str], recorded_offers: Sequence[str]
) -> str | None:
    """The live offer that a redacted recorded choice stands for, or None.

    The offer at the recorded choice's position wins when it fits (the same client offers
    in the same order); else the first offer that fits.
    """
    fits = [o for o in offered if matches_redacted(recorded, o)]
    if not fits:
        return None
    for i, item in enumerate(recorded_offers):
        if item == recorded and i < len(offered) and offered[i] in fits:
            return offered[i]
    return fits[0]


__all__ = [
    "CREDENTIAL_WORDS",
    "DEFAULT_HEADERS",
    "DEFAULT_KEYS",
    "MARKER",
    "MARKER_BYTES",
    "MARKER_JSON",
    "Counts",
    "Policy",
    "Redactor",
    "choose_redacted",
    "is_redacted",
    "matches_redacted",
    "normalize",
    "subprotocol_token",
]
