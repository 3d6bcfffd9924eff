"""The JSON texts built as one string (``ls --json``'s objects, the closes) agree with the
encoder they stand in for, on ordinary, unusual and hostile values."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from tests.helpers.records import make_open
from wstape.core.model import Close, ConnectionSummary, Open, Side
from wstape.interchange import jsonl
from wstape.interchange.jsonl import close_fields, close_json, spaced, summary_json
from wstape.interchange.jsonl import summary_to_json as slow_summary

compact = jsonl._encode


class Text(str):
    """A str of another type (the encoder writes its text)."""


class Number(int):
    pass


STRINGS = ["", "bye", '"quoted" \\ back', "\x00\x1b\x7f\x85\u2028\ud800", "日本語 😀", "x" * 10_000]
CODES: list[Any] = [None, 1000, 1005, 4999, 0, -1, 10**30, True, False, Number(1000)]
BYS: list[Any] = [None, Side.CLIENT, Side.SERVER]
WIRES: list[Any] = [True, False, 1, 0, None]


def _slow_close(close: Close | None, compact_separators: bool) -> str:
    encode = compact if compact_separators else spaced
    return "null" if close is None else encode(close_fields(close))


def _outcome(f: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    try:
        return ("ok", f(*args, **kwargs))
    except Exception as e:  # (the same exception, whichever path)
        return ("raised", type(e))


def test_close_json_agrees_with_the_encoder() -> None:
    closes: list[Close | None] = [None]
    for by, code, reason, wire in itertools.product(BYS, CODES, [*STRINGS, Text("t")], WIRES):
        closes.append(Close(1, 0.5, by, code, reason, wire))
    closes.append(Close(1, 0.5, "client", 1000))  # type: ignore[arg-type]  # (raises, both ways)
    for _ in range(2):  # (the second time from the cache)
        for close in closes:
            for flag in (False, True):
                assert _outcome(close_json, close, compact=flag) == _outcome(
                    _slow_close, close, flag
                ), close


def test_close_json_cache_is_bounded() -> None:
    for i in range(5000):
        close = Close(1, 0.5, Side.CLIENT, 1000, f"reason {i}")
        assert close_json(close) == _slow_close(close, False)
    assert len(jsonl._CLOSE_TEXTS) <= 4096


def _open(**fields: Any) -> Open:
    base: dict[str, Any] = dict(
        target="/socket?x=1",
        scheme="wss",
        host="h.example",
        started_at=1_700_000_000.123456,
        request_headers=(),
    )
    return make_open(**{**base, **fields})


OPENS = [
    _open(),
    _open(conn=0, status=403, subprotocol="mqtt"),
    _open(conn=10**20, subprotocol=""),
    _open(conn=True),
    _open(conn=Number(3)),
    _open(status=Number(101)),
    _open(subprotocol=Text("chat")),
    _open(subprotocol="\x1b[2J\u2028\ud800"),
    _open(host="::1", port=8080, target='/"q"\\\x00' + "é" * 100),
    _open(host="x" * 20_000),
    _open(started_at=0.0),
    _open(started_at=1),
    _open(started_at=1e-7),
    _open(started_at=4_102_444_800.999999),
]
TIMES: list[Any] = [0.0, 0.02, 1e-7, 123.4567891, 315576000.0, 5e-324, 1, 2**60, math.inf, math.nan]
COUNTS: list[Any] = [0, 1, 10**25, True, Number(2), 1.0]


@pytest.mark.parametrize("op", OPENS)
def test_summary_json_agrees_with_the_encoder(op: Open) -> None:
    closes = [None, Close(1, 0.5, Side.SERVER, 4000, "bye", False), Close(1, 0.5, None, None)]
    for last_t, count, close in itertools.product(TIMES, COUNTS, closes):
        s = ConnectionSummary(op, 1, count, 14, count, last_t, close)
        assert _outcome(summary_json, s) == _outcome(lambda s: spaced(slow_summary(s)), s), (
            op,
            last_t,
            count,
            close,
        )


HEADER_VALUES = [
    b"",
    b"websocket",
    b"caf\xc3\xa9",
    b"caf\xe9",  # (not UTF-8: Latin-1)
    b"\xff\xfe\x80",
    b"a\x00b",
    b'"quoted" \\ back',
    b"\x1b[31mred\r\n",
    "\u2028 日本 😀".encode(),
    b"\xed\xa0\x80",  # (a UTF-8 surrogate: not valid UTF-8)
    b"x" * 5000,
]
HEADER_SETS: list[Any] = [
    (),
    ((b"Host", b"h"),),
    tuple((b"X-" + bytes([65 + i % 26]), v) for i, v in enumerate(HEADER_VALUES)),
    tuple((v, v) for v in HEADER_VALUES),
    ((b"Host", b"h"), (bytearray(b"X"), b"v")),  # (not bytes: the encoder's way)
    ((b"Host", b"h"), [b"X", b"v"]),
    ((b"Host", b"h"), (b"X", b"v", b"w")),
    ((b"Host", b"h"), (b"X",)),
    ((b"Host", "text"),),
]


def _slow_line(record: Any) -> tuple[str, Any]:
    return _outcome(lambda r: jsonl._dumps(jsonl.record_to_json(r)), record)


@pytest.mark.parametrize("headers", HEADER_SETS)
@pytest.mark.parametrize("op", OPENS)
def test_an_open_line_agrees_with_the_encoder(op: Open, headers: Any) -> None:
    from dataclasses import replace

    for offered in [(), ("mqtt", "chat"), ("\x1b",), (Text("x"),), ["list"]]:
        o = replace(op, request_headers=headers, response_headers=headers[:1], subprotocols=offered)
        for _ in range(2):  # (the second time from the cache)
            assert _outcome(jsonl._line, o, False, False) == _slow_line(o), (o, headers)


@pytest.mark.parametrize("t", TIMES)
def test_a_close_line_agrees_with_the_encoder(t: Any) -> None:
    for by, code, reason, wire in itertools.product(BYS, CODES[:6], STRINGS, WIRES[:3]):
        for conn in (1, True, Number(2), 10**20):
            close = Close(conn, t, by, code, reason, wire)
            assert _outcome(jsonl._line, close, False, False) == _slow_line(close), close


def test_the_header_cache_is_bounded_and_keeps_short_headers() -> None:
    for i in range(5000):
        headers = ((b"Sec-WebSocket-Key", str(i).encode()), (b"Long", b"y" * 300))
        assert jsonl._headers_json(headers) == compact(jsonl.headers_as_text(headers))
    assert len(jsonl._HEADER_TEXTS) <= jsonl._HEADER_CACHE
    assert all(len(text) <= 256 for text in jsonl._HEADER_TEXTS.values())
