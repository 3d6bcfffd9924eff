"""Small helpers the codecs share: one-line summaries and JSON that never raises."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

SUMMARY_CHARS = 120
"""The longest summary a codec returns."""

_NOT_JSON: Any = object()


def printable(text: str) -> str:
    """``text`` with every non-printable character escaped.

    ``\\n`` becomes the two characters ``\\`` ``n``; other controls, format characters
    (bidi overrides), separators and unassigned code points become ``\\xNN`` /
    ``\\uNNNN`` / ``\\UNNNNNNNN``. Letters in any script are kept.
    """
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        else:
            code = ord(ch)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def clip(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, ending in ``…`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def line(text: str, limit: int = SUMMARY_CHARS) -> str:
    """A summary line: control characters escaped, then clipped."""
    return clip(printable(text), limit)


def short_json(value: Any, limit: int = 60) -> str:
    """Compact JSON of ``value`` for a summary (never raises; bytes shown as a size)."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_default)
    except (ValueError, TypeError, RecursionError):
        text = "…"
    return clip(printable(text), limit)


def _default(value: object) -> object:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    raise TypeError(type(value).__name__)


def load_json(text: str) -> Any:
    """``json.loads(text)``, or :data:`NOT_JSON` when it is not JSON (or nests too deep)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


_parsed: list[tuple[bytes, Any]] = []
"""The last few payloads :func:`payload_json` parsed, newest last, with their values."""


def payload_json(payload: bytes) -> Any:
    """``payload`` parsed as UTF-8 JSON, None when it is not UTF-8, :data:`NOT_JSON` when
    it is not JSON. Read the value, never change it: the values of the last few payloads
    are kept, because detection asks the JSON codecs in turn about the same messages."""
    for seen, value in _parsed:
        if seen is payload:
            return value
    text = utf8(payload)
    value = None if text is None else load_json(text)
    if len(_parsed) >= 8:
        del _parsed[0]
    _parsed.append((payload, value))
    return value


NOT_JSON: Any = _NOT_JSON
"""What :func:`load_json` returns for text that is not JSON."""

_CONTAINER_START = re.compile(rb"[ \t\n\r]*[\[{]")


def may_be_container(payload: bytes) -> bool:
    """False when ``payload`` cannot be a JSON object or array: its first byte after JSON
    whitespace is not ``{`` or ``[`` (what :func:`payload_json` would parse to something
    else, or find no JSON in), so detection need not parse it."""
    return _CONTAINER_START.match(payload) is not None


SMALL_PAYLOAD_BYTES = 256
"""The longest payload :func:`by_payload` keeps a result for."""

_T = TypeVar("_T")


def by_payload(fact: Callable[[bytes], _T], kept: int = 1024) -> Callable[[bytes], _T]:
    """``fact`` of a payload, kept for the last ``kept`` distinct payloads of at most
    :data:`SMALL_PAYLOAD_BYTES` (a cassette of many connections sends the same few small
    messages in each, and detection asks the same of each): keyed on the bytes' value, so
    ``fact`` must depend on nothing else and return an immutable value (a bool, a str).
    A longer payload (or one that is not ``bytes``) is asked each time; what is kept is a
    few hundred KB at most."""
    kept_fact = lru_cache(maxsize=kept)(fact)

    def get(payload: bytes) -> _T:
        if len(payload) <= SMALL_PAYLOAD_BYTES and type(payload) is bytes:
            return kept_fact(payload)
        return fact(payload)

    return get


def utf8(payload: bytes) -> str | None:
    """``payload`` as UTF-8 text, or None."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def show_id(value: Any, limit: int = 12) -> str:
    """A correlation id for a summary: long ids (UUIDs) are cut, ``8f3c2a1b…``."""
    text = value if isinstance(value, str) else short_json(value, 40)
    return line(text, limit) if len(text) <= limit else line(text[:8], 8) + "…"


def preview(data: bytes, limit: int = 40) -> str:
    """A binary payload for a summary: quoted and escaped when it is UTF-8 text (no
    control characters but tab and line ends), else its size, ``<12 bytes>``."""
    text = utf8(data)
    if text is None or any((ch < " " and ch not in "\t\n\r") or ch == "\x7f" for ch in text):
        return f"<{len(data)} byte{'' if len(data) == 1 else 's'}>"
    return clip(printable(json.dumps(text, ensure_ascii=False)), limit)


__all__ = [
    "NOT_JSON",
    "SMALL_PAYLOAD_BYTES",
    "SUMMARY_CHARS",
    "by_payload",
    "clip",
    "line",
    "load_json",
    "may_be_container",
    "payload_json",
    "preview",
    "printable",
    "short_json",
    "show_id",
    "utf8",
]
