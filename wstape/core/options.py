"""Build an options dataclass from loosely typed values, validating on the way.

Every option of wstape is a field of one frozen dataclass (:class:`~wstape.core.rules.
RuleConfig`, :class:`~wstape.core.replay.options.PlayOptions`, the replay server's
``ReplayOptions`` and ``TlsOptions``), validated in its ``__post_init__``. The CLI fills
them from typed flags; the pytest marker and library callers may pass plain values
(``speed="0"``, ``ignore=["RFC-FRAME-MASK"]``): :func:`coerce_fields` turns those into the
field's type, so each option is modelled and validated in one place.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from wstape.core.errors import ConfigError

T = TypeVar("T")


def field_names(cls: type) -> frozenset[str]:
    """The init fields of dataclass ``cls``."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.init)


def coerce_fields(cls: type[T], values: Mapping[str, object]) -> T:
    """``cls(**values)`` with each value turned into its field's type first.

    Raises ConfigError naming the field for an unknown name or a value that does not
    fit (``speed='fast' is not a number``), and whatever ``cls`` raises itself.
    """
    known = field_names(cls)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown option {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    hints = typing.get_type_hints(cls)
    return cls(**{name: coerce(name, value, hints[name]) for name, value in values.items()})


def coerce(name: str, value: object, hint: Any) -> object:
    """``value`` as type ``hint`` (str, int, float, bool, enums, optionals, tuples and
    frozensets of those); ConfigError naming ``name`` when it cannot be."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return coerce(name, value, inner[0])
        for a in inner:
            if isinstance(a, type) and isinstance(value, a):
                return value
        return value
    if origin in (tuple, frozenset):
        items = _items(name, value)
        item_hint = args[0] if args else str
        converted = [coerce(name, item, item_hint) for item in items]
        return tuple(converted) if origin is tuple else frozenset(converted)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in (
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        ):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ConfigError(f"{value!r} is not true or false", option=name)
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{value!r} is not a number", option=name)
        try:
            number = hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{value!r} is not a number", option=name) from None
        if hint is int and isinstance(value, float) and value != number:
            raise ConfigError(f"{value!r} is not a whole number", option=name)
        return number
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{value!r}: choose one of {choices}", option=name) from None
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{value!r} is not a string", option=name)
    return value


def _items(name: str, value: object) -> Iterable[object]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return value
    raise ConfigError(f"takes a string or a list of strings, not {value!r}", option=name)


__all__ = ["coerce", "coerce_fields", "field_names"]
