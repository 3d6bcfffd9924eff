"""Typed, strict access to the JSON objects of an import (HAR entries, JSONL lines).

Every accessor raises :class:`InterchangeError` naming the file, the place (the HAR
entry, the JSONL line) and the field (``session.har, entry 4: request.url must be a
string``); strings are checked to be valid Unicode (JSON can spell a lone surrogate,
``"\\ud800"``, which no cassette can hold) and numbers to be finite.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

from wstape.interchange.errors import InterchangeError
from wstape.interchange.values import is_int, is_number, is_text

EXT = "_wstape"
"""Name of wstape's extension objects in a HAR (custom fields start with an underscore)
and in the exact JSONL export."""
EXT_VERSION = 1
"""Version of the ``_wstape`` extension fields, written in ``log._wstape.version``."""


def parse_time(value: str) -> float | None:
    """Epoch seconds of an ISO 8601 time with a zone (``2026-01-01T00:00:00.25Z``), or
    None when ``value`` is not one."""
    text = value.strip()
    if text.endswith("z"):
        text = text[:-1] + "Z"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):
        return None


class Fields:
    """One JSON object of an import (``where`` is its path, e.g. ``request.headers[2]``;
    ``index`` and ``what`` name the entry or line it belongs to)."""

    def __init__(
        self,
        path: str | Path,
        index: int | None,
        obj: Any,
        where: str,
        *,
        what: str = "entry",
    ) -> None:
        self.path = path
        self.index = index
        self.where = where
        self.what = what
        if not isinstance(obj, dict):
            self.fail(f"{where} must be an object")
        self.obj: dict[str, Any] = obj

    def fail(self, message: str) -> NoReturn:
        raise InterchangeError(self.path, message, index=self.index, what=self.what)

    def name(self, field: str) -> str:
        """The dotted name of ``field`` for messages (``entry.`` is left out)."""
        return field if self.where == self.what else f"{self.where}.{field}"

    def get(self, name: str) -> Any:
        return self.obj.get(name)

    def has(self, name: str) -> bool:
        return self.obj.get(name) is not None

    def sub(self, name: str) -> Fields:
        return Fields(self.path, self.index, self.obj.get(name), self.name(name), what=self.what)

    def opt_sub(self, name: str) -> Fields | None:
        return None if self.obj.get(name) is None else self.sub(name)

    def text(self, value: Any, what: str) -> str:
        """``value`` as a string, checked to be valid Unicode."""
        if not isinstance(value, str):
            self.fail(f"{what} must be a string")
        if not is_text(value):
            self.fail(f"{what} is not valid Unicode (a lone surrogate)")
        return value

    def req_str(self, name: str, default: str | None = None) -> str:
        return self.text(self.obj.get(name, default), self.name(name))

    def opt_str(self, name: str) -> str | None:
        return None if self.obj.get(name) is None else self.req_str(name)

    def req_int(self, name: str) -> int:
        v: Any = self.obj.get(name)
        if not is_int(v):
            self.fail(f"{self.name(name)} must be an integer")
        return int(v)

    def opt_int(self, name: str) -> int | None:
        return None if self.obj.get(name) is None else self.req_int(name)

    def req_num(self, name: str) -> float:
        v: Any = self.obj.get(name)
        if not is_number(v):
            self.fail(f"{self.name(name)} must be a finite number")
        return float(v)

    def opt_num(self, name: str) -> float | None:
        return None if self.obj.get(name) is None else self.req_num(name)

    def req_bool(self, name: str) -> bool:
        v = self.obj.get(name)
        if not isinstance(v, bool):
            self.fail(f"{self.name(name)} must be true or false")
        return v

    def req_list(self, name: str) -> list[Any]:
        v = self.obj.get(name, [])
        if not isinstance(v, list):
            self.fail(f"{self.name(name)} must be an array")
        return v

    def strs(self, name: str) -> tuple[str, ...]:
        items = self.req_list(name)
        return tuple(self.text(x, f"{self.name(name)}[{i}]") for i, x in enumerate(items))

    def b64(self, value: Any, what: str) -> bytes:
        if not isinstance(value, str):
            self.fail(f"{what} must be a base64 string")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            self.fail(f"{what} is not valid base64")


__all__ = ["EXT", "EXT_VERSION", "Fields", "parse_time"]
