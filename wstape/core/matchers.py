"""Named message matchers: does a live client message match the recorded one?

VCR.py style: matchers are plain functions in a registry, chosen by name on the command
line (``--match json``), and every verdict carries a short human diff so a
REPLAY-MESSAGE-MISMATCH says *what* differs, not just that something does.

- ``exact``: same opcode, same bytes.
- ``json``: same opcode, both payloads parse as JSON and are equal once the ignored paths
  are dropped; if either payload is not JSON, ``exact`` decides.

A value redacted in the recording (``<redacted>``, see :mod:`wstape.core.redaction`)
matches whatever the client sends in its place, under ``exact`` and ``json``.
- ``type``: same opcode, any payload.
- ``any``: always matches.

Ignored paths are JSONPath-lite: ``$.ts``, ``$.data.id``, ``$.items[*].ts``,
``$.items[0]``, ``$["odd key"]``, ``$.*``. A path also ignores everything below it, and a
key present on one side only is ignored too when its path is.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wstape.core.model import Message, Opcode
from wstape.core.redaction import MARKER, matches_redacted

if TYPE_CHECKING:
    from wstape.core.codecs.base import Codec

MAX_DIFF_LINES = 20
"""Differences listed per diff before the rest is summarised as "... and N more"."""
MAX_VALUE_CHARS = 80


@dataclass(frozen=True)
class MatchResult:
    """A matcher's verdict. ``diff`` is empty when ``ok``."""

    ok: bool
    diff: str = ""
    of_bytes: bool = False
    """The diff is only one of the payloads' bytes (:func:`payload_diff`: a unified text
    diff, a first differing byte), not of decoded fields, JSON paths or the opcode: a
    protocol's decoded view of the two units says more (REPLAY-MESSAGE-MISMATCH)."""


MATCHED = MatchResult(True)
"""The verdict of every match (frozen, so one object serves them all)."""


Matcher = Callable[[Message, Opcode, bytes, Sequence[str]], MatchResult]

MATCHERS: dict[str, Matcher] = {}


def register(name: str) -> Callable[[Matcher], Matcher]:
    """Decorator adding a matcher to :data:`MATCHERS` under ``name``."""

    def add(func: Matcher) -> Matcher:
        MATCHERS[name] = func
        return func

    return add


def matcher_names() -> list[str]:
    return sorted(MATCHERS)


def match(
    name: str,
    expected: Message,
    opcode: Opcode,
    payload: bytes,
    ignore_paths: Sequence[str] = (),
) -> MatchResult:
    """Run matcher ``name`` on a live message against the recorded ``expected``.

    Raises ``ValueError`` for an unknown matcher name or a malformed ignore path: both
    are usage errors and must not turn into "everything matches".
    """
    try:
        func = MATCHERS[name]
    except KeyError:
        raise ValueError(
            f"unknown matcher {name!r}; choose one of {', '.join(matcher_names())}"
        ) from None
    return func(expected, opcode, payload, ignore_paths)


def match_unit(
    name: str,
    codec: Codec | None,
    expected: Message,
    opcode: Opcode,
    payload: bytes,
    ignore_paths: Sequence[str] = (),
) -> MatchResult:
    """:func:`match`, for a unit of a protocol ``codec`` speaks: ``json`` then compares
    the JSON the application wrote in it (:meth:`Codec.json_parts`: a Socket.IO
    packet's payload, a STOMP body, an MQTT PUBLISH payload) with ``ignore_paths``
    relative to that JSON, and the rest of the unit exactly. A unit without such JSON,
    or a protocol of JSON messages (whose payload is the JSON), goes to :func:`match`."""
    if name == "json" and codec is not None and codec.json_root != ():
        found = _match_decoded(codec, expected, opcode, payload, ignore_paths)
        if found is not None:
            return found
    return match(name, expected, opcode, payload, ignore_paths)


def _match_decoded(
    codec: Codec, expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str]
) -> MatchResult | None:
    if opcode is not expected.opcode:
        return None
    old = codec.decode(expected.side, expected.opcode, expected.payload)
    new = codec.decode(expected.side, opcode, payload)
    if old is None or new is None or old.kind != new.kind:
        return None
    old_parts, new_parts = codec.json_parts(old), codec.json_parts(new)
    if old_parts is None or new_parts is None:
        return None
    patterns = [parse_path(p) for p in ignore_paths]
    found: list[str] = []
    _compare(_plain(old_parts[1]), _plain(new_parts[1]), (), [], found)
    found = [f"{old.kind} {line}" for line in found]  # the unit's own fields
    _compare(old_parts[0], new_parts[0], (), patterns, found)
    return MatchResult(not found, _cap(found))


def _plain(value: object) -> object:
    """A decoded value with bytes as text, for a diff (JSON cannot show bytes)."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes {value[:16].hex()}>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def match_all(
    expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str] = ()
) -> dict[str, MatchResult]:
    """Every registered matcher's verdict, for explaining a failed match."""
    return {name: match(name, expected, opcode, payload, ignore_paths) for name in MATCHERS}


# -- diffs -------------------------------------------------------------------------------


def _clip(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cap(lines: list[str]) -> str:
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... and {more} more"]
    return "\n".join(lines)


_CAPPED = re.compile(r"\.\.\. and (\d+) more")


def differences(lines: Sequence[str]) -> int:
    """How many differences the lines of a (non-unified) diff name, the ones
    :func:`_cap` left out included."""
    capped = _CAPPED.fullmatch(lines[-1]) if lines else None
    return len(lines) - 1 + int(capped.group(1)) if capped else len(lines)


def _opcode_line(expected: Opcode, actual: Opcode) -> list[str]:
    return [] if expected is actual else [f"opcode: expected {expected.value}, got {actual.value}"]


def payload_diff(expected: bytes, actual: bytes, *, text: bool = True) -> str:
    """A short diff of two payloads: a unified diff when ``text`` and both are UTF-8,
    else the first differing byte offset and both sizes."""
    if expected == actual:
        return ""
    if not text:
        return _binary_diff(expected, actual)
    try:
        old, new = expected.decode("utf-8"), actual.decode("utf-8")
    except UnicodeDecodeError:
        return _binary_diff(expected, actual)
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), "expected", "actual", lineterm="", n=1
    )
    out = [_clip(line, 200) for line in lines]
    if not out:  # only line endings differ, which splitlines() hides
        out = [f"expected {_clip(repr(old))}", f"actual   {_clip(repr(new))}"]
    return _cap(out)


def _binary_diff(expected: bytes, actual: bytes) -> str:
    sizes = f"expected {len(expected)} bytes, got {len(actual)}"
    for offset, (a, b) in enumerate(zip(expected, actual, strict=False)):
        if a != b:
            return f"first difference at byte {offset} (expected 0x{a:02x}, got 0x{b:02x}); {sizes}"
    shorter = "actual" if len(actual) < len(expected) else "expected"
    return (
        f"{shorter} is a prefix of the other, first difference at byte "
        f"{min(len(expected), len(actual))}; {sizes}"
    )


# -- matchers ----------------------------------------------------------------------------


@register("exact")
def match_exact(
    expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str] = ()
) -> MatchResult:
    """Same opcode and byte-identical payload; where the recording was redacted
    (``<redacted>``), any bytes match."""
    if expected.opcode is opcode and (
        expected.payload == payload or matches_redacted(expected.payload, payload)
    ):
        return MATCHED
    lines = _opcode_line(expected.opcode, opcode)
    body = payload_diff(expected.payload, payload, text=expected.opcode is Opcode.TEXT)
    return MatchResult(False, "\n".join([*lines, body] if body else lines), of_bytes=not lines)


@register("type")
def match_type(
    expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str] = ()
) -> MatchResult:
    """Same opcode (text or binary); the payload is not compared."""
    if expected.opcode is opcode:
        return MATCHED
    return MatchResult(False, "\n".join(_opcode_line(expected.opcode, opcode)))


@register("any")
def match_any(
    expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str] = ()
) -> MatchResult:
    """Every message matches (only the order and count of client messages matter)."""
    return MATCHED


@register("json")
def match_json(
    expected: Message, opcode: Opcode, payload: bytes, ignore_paths: Sequence[str] = ()
) -> MatchResult:
    """Same opcode and equal JSON values, ignoring ``ignore_paths``; else ``exact``.

    JSON equality is by value: key order and whitespace do not count, ``1`` equals ``1.0``,
    but ``true`` is not ``1`` (Python's ``True == 1`` would say otherwise).
    """
    patterns = [parse_path(p) for p in ignore_paths]
    old, new = _load_json(expected.payload), _load_json(payload)
    if old is _NOT_JSON or new is _NOT_JSON:
        return match_exact(expected, opcode, payload, ())
    found: list[str] = _opcode_line(expected.opcode, opcode)
    _compare(old, new, (), patterns, found)
    return MatchResult(not found, _cap(found))


_NOT_JSON = object()


def _load_json(payload: bytes) -> object:
    try:
        return json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _NOT_JSON


# -- JSONPath-lite -----------------------------------------------------------------------


class _Wildcard:
    def __repr__(self) -> str:
        return "*"


WILDCARD = _Wildcard()
Segment = str | int | _Wildcard
"""A path step: an object key, a list index, or ``*`` (any key or index)."""

_STEP = re.compile(
    r"""\.(?P<name>[^.\[\]]+)                # .name or .*
      | \[(?P<index>-?\d+)\]                 # [0]
      | \[(?P<star>\*)\]                     # [*]
      | \["(?P<json>(?:[^"\\]|\\.)*)"\]    # ["key"], a JSON string (as format_path writes)
      | \['(?P<key>[^']*)'\]                  # ['key'], taken literally
    """,
    re.VERBOSE,
)


def parse_path(path: str) -> tuple[Segment, ...]:
    """Parse ``$.a.b[0][*]["c d"]`` into segments. Raises ``ValueError`` if malformed.

    A path without the leading ``$`` is read as starting at the root (``ts`` = ``$.ts``).
    A double-quoted key is a JSON string, so every path :func:`format_path` prints (in a
    mismatch diff) can be passed back as an ignore path. Negative indices raise
    ``ValueError``: a path is matched without knowing the list's length, so ``[-1]``
    would silently ignore nothing.
    """
    text = path.strip()
    if not text.startswith("$"):
        text = "$" + ("" if text.startswith("[") else ".") + text
    pos, steps = 1, []
    while pos < len(text):
        found = _STEP.match(text, pos)
        if found is None:
            raise ValueError(f"bad JSON path {path!r} at character {pos}: {text[pos:]!r}")
        if found.group("name") is not None:
            name = found.group("name")
            steps.append(WILDCARD if name == "*" else name)
        elif found.group("index") is not None:
            index = int(found.group("index"))
            if index < 0:
                raise ValueError(
                    f"bad JSON path {path!r}: negative index [{index}] is not supported "
                    "(use [*] for any element)"
                )
            steps.append(index)
        elif found.group("star") is not None:
            steps.append(WILDCARD)
        elif found.group("json") is not None:
            try:
                steps.append(json.loads(f'"{found.group("json")}"'))
            except ValueError:
                raise ValueError(
                    f"bad JSON path {path!r} at character {pos}: {text[pos:]!r}"
                ) from None
        else:
            steps.append(found.group("key"))
        pos = found.end()
    return tuple(steps)


def format_path(path: Sequence[str | int]) -> str:
    """Render concrete segments as ``$.data.items[2]["odd key"]``."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", step):
            out += f".{step}"
        else:
            out += f"[{json.dumps(step, ensure_ascii=False)}]"
    return out


def _ignored(path: tuple[str | int, ...], patterns: list[tuple[Segment, ...]]) -> bool:
    for pattern in patterns:
        if len(pattern) != len(path):
            continue
        if all(p is WILDCARD or _same_step(p, s) for p, s in zip(pattern, path, strict=True)):
            return True
    return False


def _same_step(pattern: Segment, step: str | int) -> bool:
    # A key "0" must not match index 0: bool/int/str types have to agree.
    return type(pattern) is type(step) and pattern == step


def _dump(value: object) -> str:
    return _clip(json.dumps(value, ensure_ascii=False, sort_keys=True))


def _scalar_equal(a: object, b: object) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _compare(
    old: object,
    new: object,
    path: tuple[str | int, ...],
    patterns: list[tuple[Segment, ...]],
    out: list[str],
) -> None:
    if _ignored(path, patterns) or old == MARKER:
        return  # a value redacted in the recording matches whatever the client sends
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        for key in keys:
            sub = (*path, key)
            if key not in new:
                if not _ignored(sub, patterns):
                    out.append(f"{format_path(sub)}: missing (expected {_dump(old[key])})")
            elif key not in old:
                if not _ignored(sub, patterns):
                    out.append(f"{format_path(sub)}: unexpected (got {_dump(new[key])})")
            else:
                _compare(old[key], new[key], sub, patterns, out)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = (*path, i)
            if i >= len(new):
                if not _ignored(sub, patterns):
                    out.append(f"{format_path(sub)}: missing (expected {_dump(old[i])})")
            elif i >= len(old):
                if not _ignored(sub, patterns):
                    out.append(f"{format_path(sub)}: unexpected (got {_dump(new[i])})")
            else:
                _compare(old[i], new[i], sub, patterns, out)
    elif not _scalar_equal(old, new):
        out.append(f"{format_path(path)}: expected {_dump(old)}, got {_dump(new)}")


__all__ = [
    "MATCHERS",
    "WILDCARD",
    "MatchResult",
    "Matcher",
    "format_path",
    "match",
    "match_all",
    "match_any",
    "match_exact",
    "match_json",
    "match_type",
    "match_unit",
    "matcher_names",
    "parse_path",
    "payload_diff",
    "register",
]
