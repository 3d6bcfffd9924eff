"""Text from a cassette, a client or the network, made safe to print on a terminal.

:func:`safe` escapes every control character (C0, C1, DEL) and bidi control, so a
recorded ``ESC]0;PWNED`` or a request line from the network prints as ``\\x1b]0;PWNED``
and cannot retitle, clear or reorder the terminal. Every human output of wstape (the CLI,
``wstape record -v``, the replay log) goes through it.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_WITH_NEWLINES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def _escape(m: re.Match[str]) -> str:
    ch = m.group(0)
    code = ord(ch)
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object, *, newlines: bool = False) -> str:
    """``text`` with control and bidi characters escaped (``newlines=True`` keeps line
    breaks and tabs, for multi-line text such as a diff)."""
    s = str(text)
    if type(s) is str and s.isprintable():
        # (the common case, checked in C: every character the patterns match is one that
        # str.isprintable() refuses, a control (Cc) or format (Cf) character, so a
        # printable text has nothing to escape; tests/core/test_terminal.py checks every
        # code point)
        return s
    pattern = _UNSAFE if newlines else _UNSAFE_WITH_NEWLINES
    return pattern.sub(_escape, s)


__all__ = ["safe"]
