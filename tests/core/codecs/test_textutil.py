"""The codecs' shared helpers: JSON that never raises, and the parse detection shares."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wstape.core.codecs.textutil import NOT_JSON, load_json, payload_json


def test_payload_json_parses_utf8_json() -> None:
    assert payload_json(b'{"type":"connection_init"}') == {"type": "connection_init"}
    assert payload_json(b"[1, 2]") == [1, 2]


def test_payload_json_tells_text_that_is_not_json_from_bytes_that_are_not_text() -> None:
    assert payload_json(b"hello") is NOT_JSON
    assert payload_json(b"\xff\xfe") is None
    assert payload_json(b"[" * 100_000) is NOT_JSON  # (nesting too deep: no RecursionError)


def test_payload_json_parses_one_payload_once_for_the_codecs_asking_in_turn() -> None:
    payload = b'{"jsonrpc":"2.0","method":"sum","id":1}'
    first = payload_json(payload)
    assert payload_json(payload) is first  # the same bytes object: the value kept
    other = bytes(bytearray(payload))  # equal bytes, another object: parsed anew
    assert other is not payload
    assert payload_json(other) == first and payload_json(other) is not first


def test_payload_json_keeps_only_a_few_payloads() -> None:
    payloads = [f'{{"n":{i}}}'.encode() for i in range(100)]
    values = [payload_json(p) for p in payloads]
    assert [v["n"] for v in values] == list(range(100))
    assert payload_json(payloads[0]) is not values[0]  # long gone from the few kept


@given(st.binary(max_size=64))
def test_payload_json_agrees_with_load_json(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        assert payload_json(data) is None
        return
    expected = load_json(text)
    got = payload_json(data)
    assert got is NOT_JSON if expected is NOT_JSON else got == expected or got != got
