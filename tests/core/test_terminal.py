"""safe()'s fast path (a printable text is returned as it is) against the patterns."""

from __future__ import annotations

import sys

import pytest

from wstape.core import terminal
from wstape.core.terminal import safe


def _slow(text: object, newlines: bool = False) -> str:
    """What safe() did before its fast path: every text through the pattern."""
    pattern = terminal._UNSAFE if newlines else terminal._UNSAFE_WITH_NEWLINES
    return pattern.sub(terminal._escape, str(text))


def test_every_printable_code_point_is_one_the_patterns_leave_alone() -> None:
    # The fast path's proof: both patterns are sets of single characters, and
    # str.isprintable() is true only when every character is printable, so a printable
    # text holds no character either pattern matches.
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if ch.isprintable():
            assert terminal._UNSAFE_WITH_NEWLINES.search(ch) is None, hex(code)
            assert terminal._UNSAFE.search(ch) is None, hex(code)


HOSTILE = [
    "",
    "plain ascii",
    "wss://example.com/socket?session=1",
    "\x1b]0;PWNED\x07",
    "a\nb\rc\td",
    "\x00\x7f\x80\x9f\xa0",
    "\u202eevil\u202c",
    "\u061c\u200e\u200f\u2066\u2069",
    "\u2028\u2029\x85",
    "日本語 é ß \U0001f600",
    "\ud800 lone surrogate",
    "\\x1b already escaped",
    "x" * 100_000 + "\x1b",
    "y" * 100_000,
    "\u00ad soft hyphen",
    "\ufeff bom",
    "\U000e0001 tag",
]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("newlines", [False, True])
def test_safe_agrees_with_the_patterns(text: str, newlines: bool) -> None:
    assert safe(text, newlines=newlines) == _slow(text, newlines)
    assert type(safe(text, newlines=newlines)) is str


def test_safe_of_other_objects() -> None:
    class Odd(str):
        def __str__(self) -> str:
            return "odd\x1b"

    for value in (12, None, 1.5, b"\x1b", Odd("fine"), Odd("\x1b")):
        assert safe(value) == _slow(value)
        assert type(safe(value)) is str
