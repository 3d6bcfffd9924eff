"""Where each value of a JSON text is, so a value can be replaced without re-encoding the rest.

:func:`spans` walks one JSON text and yields ``(path, start, end)`` for every value in it
(``text[start:end]`` is that value's JSON), with paths as :data:`~.base.Path` tuples:
object keys (decoded, so ``"a\\u0062"`` is the key ``ab``) and list indices. It is
iterative, so a text nested a million levels deep costs memory, never a RecursionError.
It accepts what :func:`json.loads` accepts (including ``NaN`` and ``Infinity``) and raises
:class:`ValueError` for anything else.

:func:`replace` uses it to put new values at some paths while keeping every other byte
(whitespace, key order, escapes) as it was. :func:`keyed` finds values by their key at
any depth instead of by path (what redaction needs), in the same single pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from wstape.core.codecs.base import Path

Span = tuple[Path, int, int]

_STRING = re.compile(r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")


class ScanError(ValueError):
    """Not JSON: ``pos`` is where the scanner gave up (a caller may resume after it)."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


def _skip(text: str, pos: int, stop: int) -> int:
    while pos < stop and text[pos] in " \t\n\r":
        pos += 1
    return pos


class _Frame:
    __slots__ = ("is_object", "node", "start")

    def __init__(self, is_object: bool, start: int, node: _Trie | None) -> None:
        self.is_object = is_object
        self.start = start
        self.node = node


_Trie = dict[object, Any]
"""Wanted paths, one step per level; a path's last node holds it under :data:`_END`."""
_END = object()


def _trie(paths: Iterable[Path]) -> _Trie:
    root: _Trie = {}
    for path in paths:
        node = root
        for step in path:
            node = node.setdefault(step, {})
        node[_END] = tuple(path)
    return root


def value_end(text: str, pos: int) -> int:
    """The index just past the JSON value starting at ``text[pos]`` (no leading space).

    Raises :class:`ValueError` when no value starts there. Text after the value is not
    looked at, so this finds where an embedded value ends (``42["a"]trailing``).
    """
    for _path, _start, end in _scan(text, pos, len(text), whole=False, trie=_trie([()])):
        return end
    raise ValueError(f"no JSON value at {pos}")  # pragma: no cover - _scan raises first


def spans(text: str, start: int = 0, end: int | None = None) -> Iterator[Span]:
    """Every value of the JSON text ``text[start:end]`` as ``(path, start, end)``.

    Containers come after their members (a value's span is known when it closes); the
    root (path ``()``) is last. Offsets index ``text``. Leading and trailing whitespace
    is allowed; anything else after the root value raises :class:`ValueError`. Each
    path is a new tuple, so this costs the text's length times its depth; :func:`find`
    looks for given paths in one pass whatever the depth.
    """
    return _scan(text, start, len(text) if end is None else end, whole=True)


def find(
    text: str, paths: Iterable[Path], start: int = 0, end: int | None = None
) -> Iterator[Span]:
    """The spans of the values at ``paths`` only (a path twice when a key repeats).

    Same rules as :func:`spans`, in time linear in the text.
    """
    wanted = _trie(paths)
    return _scan(text, start, len(text) if end is None else end, whole=True, trie=wanted)


def _child(node: _Trie | None, step: str | int) -> _Trie | None:
    return None if node is None else node.get(step)


KEY: Path = ("key",)
"""What :func:`keyed` yields for a value under a wanted key."""
STRING: Path = ("string",)
"""What :func:`keyed` yields for a string value (with ``strings=True``)."""
ROOT: Path = ("root",)
"""What :func:`keyed` yields last for the whole value (with ``whole=False``)."""
_STRINGS = object()
"""Trie entry: yield the string scalars right under this node, as this path."""


class _Keyed(dict[object, Any]):
    """A trie node computed on the fly: every value whose object key ``wanted`` accepts is
    a hit (:data:`KEY`), and nothing inside a hit is looked at again. Other nodes may ask
    for string scalars (:data:`STRING`)."""

    def __init__(self, wanted: Callable[[str], bool], strings: bool, *, root: bool) -> None:
        super().__init__()
        self.wanted = wanted
        if strings:
            self[_STRINGS] = STRING
        if root:
            self[_END] = ROOT
        self.plain = self if not root else _Keyed(wanted, strings, root=False)

    def get(self, step: object, default: Any = None) -> Any:
        if isinstance(step, str) and self.wanted(step):
            return _HIT
        return self.plain


_HIT: _Trie = {_END: KEY}
"""A wanted key's value: yielded whole, with no children (nothing below it is looked at)."""


def keyed(
    text: str,
    wanted: Callable[[str], bool],
    start: int = 0,
    end: int | None = None,
    *,
    whole: bool = True,
    strings: bool = False,
) -> Iterator[Span]:
    """The spans of the values of object keys that ``wanted`` accepts, at any depth, as
    ``(KEY, start, end)``; a value inside such a value is not listed again.

    With ``strings``, every other string value (not a key) is listed too, as
    ``(STRING, start, end)``: a string that holds JSON of its own can then be looked
    into. With ``whole=False`` the value starting at ``start`` may be followed by other
    text and is listed last as ``(ROOT, start, end)``, so the caller learns where it ends.
    Spans come in text order. Raises :class:`ScanError` (a :class:`ValueError` telling
    where the scan stopped) for text that is not JSON; iterative, so any depth of
    nesting works.
    """
    node = _Keyed(wanted, strings, root=not whole)
    stop = len(text) if end is None else end
    return _scan(text, start, stop, whole=whole, trie=node)


def _scan(
    text: str, pos: int, stop: int, *, whole: bool, trie: _Trie | None = None
) -> Iterator[Span]:
    """The scanner. With ``trie``, only the values at its paths are yielded (and no path
    tuple is built for the others); without, every value is."""
    every = trie is None
    path: list[str | int] = []
    stack: list[_Frame] = []
    node = trie  # the trie node of the value that starts at pos
    if whole:
        pos = _skip(text, pos, stop)
    while True:
        # -- one value starts at pos
        if pos >= stop:
            raise ScanError(f"JSON value expected at {pos}", pos)
        ch = text[pos]
        if ch == "{" or ch == "[":
            frame = _Frame(ch == "{", pos, node)
            pos = _skip(text, pos + 1, stop)
            if pos < stop and text[pos] == ("}" if frame.is_object else "]"):
                pos += 1
                if every:
                    yield (tuple(path), frame.start, pos)
                elif node is not None and _END in node:
                    yield (node[_END], frame.start, pos)
            else:
                stack.append(frame)
                if frame.is_object:
                    pos = _key(text, pos, stop, path)
                else:
                    path.append(0)
                node = _child(frame.node, path[-1])
                continue
        else:
            scalar_end = _scalar_end(text, pos, stop)
            if every:
                yield (tuple(path), pos, scalar_end)
            elif node is not None and _END in node:
                yield (node[_END], pos, scalar_end)
            elif node is not None and ch == '"' and _STRINGS in node:
                yield (node[_STRINGS], pos, scalar_end)
            pos = scalar_end
        # -- after a value: a separator, a closing bracket, or the end
        while True:
            if not stack:
                if whole:
                    pos = _skip(text, pos, stop)
                    if pos != stop:
                        raise ScanError(f"extra data after JSON value at {pos}", pos)
                return
            pos = _skip(text, pos, stop)
            if pos >= stop:
                raise ScanError("unterminated JSON container", pos)
            frame = stack[-1]
            ch = text[pos]
            if ch == ",":
                pos = _skip(text, pos + 1, stop)
                if frame.is_object:
                    path.pop()
                    pos = _key(text, pos, stop, path)
                else:
                    last = path[-1]
                    assert isinstance(last, int)
                    path[-1] = last + 1
                node = _child(frame.node, path[-1])
                break
            if ch == ("}" if frame.is_object else "]"):
                pos += 1
                path.pop()
                stack.pop()
                if every:
                    yield (tuple(path), frame.start, pos)
                elif frame.node is not None and _END in frame.node:
                    yield (frame.node[_END], frame.start, pos)
                continue
            raise ScanError(f"',' or a closing bracket expected at {pos}", pos)


def _key(text: str, pos: int, stop: int, path: list[str | int]) -> int:
    """Read ``"key" :`` at ``pos``, push the key, and return where its value starts."""
    found = _STRING.match(text, pos, stop)
    if found is None:
        raise ScanError(f"object key expected at {pos}", pos)
    raw = found.group()
    path.append(json.loads(raw) if "\\" in raw else raw[1:-1])
    pos = _skip(text, found.end(), stop)
    if pos >= stop or text[pos] != ":":
        raise ScanError(f"':' expected at {pos}", pos)
    return _skip(text, pos + 1, stop)


def _scalar_end(text: str, pos: int, stop: int) -> int:
    ch = text[pos]
    if ch == '"':
        found = _STRING.match(text, pos, stop)
        if found is None:
            raise ScanError(f"bad JSON string at {pos}", pos)
        return found.end()
    for literal in _LITERALS:
        if text.startswith(literal, pos, stop):
            return pos + len(literal)
    number = _NUMBER.match(text, pos, stop)
    if number is None:
        raise ScanError(f"JSON value expected at {pos}", pos)
    return number.end()


def encode_scalar(value: object) -> str:
    """``value`` as JSON (non-ASCII kept as is, like most WebSocket senders do)."""
    return json.dumps(value, ensure_ascii=False)


def edits(
    text: str, replacements: Mapping[Path, object], start: int = 0, end: int | None = None
) -> list[tuple[int, int, str]]:
    """``(start, end, new JSON)`` for each value of ``text[start:end]`` a path names.

    A repeated key is replaced at every occurrence (``json.loads`` keeps the last, other
    parsers the first: both then read the new value). A span inside another one that is
    replaced is dropped. Raises :class:`ValueError` when the text is not JSON.
    """
    if not replacements:
        return []
    wanted = {tuple(p): encode_scalar(v) for p, v in replacements.items()}
    found = sorted(
        ((s, e, wanted[p]) for p, s, e in find(text, wanted, start, end)),
        key=lambda item: (item[0], -item[1]),
    )
    out: list[tuple[int, int, str]] = []
    for s, e, new in found:
        if out and s < out[-1][1]:
            continue
        out.append((s, e, new))
    return out


def apply_edits(text: str, changes: list[tuple[int, int, str]]) -> str:
    """``text`` with non-overlapping ``(start, end, new)`` spans replaced."""
    if not changes:
        return text
    parts: list[str] = []
    pos = 0
    for s, e, new in sorted(changes):
        parts.append(text[pos:s])
        parts.append(new)
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def replace(text: str, replacements: Mapping[Path, object]) -> str:
    """The JSON text ``text`` with the value at each path replaced by its new value.

    Only the replaced values' characters change. Paths the text does not have are
    ignored; raises :class:`ValueError` when ``text`` is not JSON.
    """
    return apply_edits(text, edits(text, replacements))


__all__ = [
    "KEY",
    "ROOT",
    "STRING",
    "ScanError",
    "Span",
    "apply_edits",
    "edits",
    "encode_scalar",
    "find",
    "keyed",
    "replace",
    "spans",
    "value_end",
]
