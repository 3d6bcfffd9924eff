"""Redaction: JSON values by key, header values, patterns, query parameters."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers.records import sessions, write
from wstape.cassettes import CassetteReader, read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.tools.redact import (
    REDACTED,
    RedactError,
    Redactor,
    RedactRules,
    json_value_spans,
    redact_cassette,
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SECRET = "sk-Zq7secretVALUE42"


def spans_text(text: str, *keys: str) -> list[str]:
    return [text[a:b] for a, b in json_value_spans(text, frozenset(keys))]


@pytest.mark.parametrize(
    ("text", "keys", "values"),
    [
        ('{"token": "abc"}', ("token",), ['"abc"']),
        ('{"Token" : 12.5e3 , "x": 1}', ("token",), ["12.5e3"]),
        ('{"a": {"b": [1, {"token": null}]}}', ("token",), ["null"]),
        (
            '[{"token": {"token": 1, "y": [2]}}, {"token": true}]',
            ("token",),
            ['{"token": 1, "y": [2]}', "true"],
        ),
        ('{"k": "{\\"token\\": 1}", "token": "a\\"b"}', ("token",), ['"a\\"b"']),
        ('{"a": "token", "b": ["token"]}', ("token",), []),
        ('{"pwd": "x", "token": [1, 2]}', ("pwd", "token"), ['"x"', "[1, 2]"]),
        ('{"token": NaN, "t2": -Infinity}', ("token", "t2"), ["NaN", "-Infinity"]),
        ('\n {"token":"x"} \n', ("token",), ['"x"']),
        ('"token"', ("token",), []),
        ("not json {", ("token",), []),
        ('{"token": 1', ("token",), []),
    ],
)
def test_json_value_spans(text: str, keys: tuple[str, ...], values: list[str]) -> None:
    assert spans_text(text, *keys) == values


def msg(text: str | bytes, opcode: Opcode = Opcode.TEXT) -> Message:
    payload = text.encode() if isinstance(text, str) else text
    return Message(1, 0.5, Side.CLIENT, opcode, payload)


def test_json_keys_keep_the_rest_of_the_message() -> None:
    r = Redactor(RedactRules.build(json_keys=["token", "PassWord"]))
    out = r.redact(msg('{ "user":"小明", "token": "abc",\n "nested": {"password": [1]}}'))
    assert isinstance(out, Message)
    assert out.payload.decode() == (
        '{ "user":"小明", "token": "<redacted>",\n "nested": {"password": "<redacted>"}}'
    )
    assert r.counts.json_keys == 2
    again = r.redact(out)
    assert again is out and r.counts.json_keys == 2  # nothing left to replace


def test_binary_messages_are_never_changed() -> None:
    r = Redactor(RedactRules.build(json_keys=["token"], patterns=["sk-[a-z]+"]))
    m = msg(b'{"token": "sk-abc"}', Opcode.BINARY)
    assert r.redact(m) is m and r.counts.total == 0


def test_patterns_everywhere_in_text() -> None:
    r = Redactor(RedactRules.build(patterns=[r"sk-[A-Za-z0-9]+"]))
    opened = Open(
        conn=1,
        started_at=1.0,
        method="GET",
        scheme="ws",
        host="h",
        port=80,
        target=f"/chat?key={SECRET}",
        http_version="HTTP/1.1",
        request_headers=((b"Referer", f"https://x/?k={SECRET}".encode()),),
        status=403,
        response_headers=(),
        body=f"bad key {SECRET}".encode(),
    )
    out = r.redact(opened)
    assert isinstance(out, Open)
    assert out.target == "/chat?key=<redacted>"
    assert out.request_headers == ((b"Referer", b"https://x/?k=<redacted>"),)
    assert out.body == b"bad key <redacted>"
    assert r.redact(Close(1, 1.0, Side.SERVER, 4001, f"key {SECRET} revoked")) == Close(
        1, 1.0, Side.SERVER, 4001, "key <redacted> revoked"
    )
    assert r.redact(Note(1, f"saw {SECRET}")) == Note(1, "saw <redacted>")
    # text that is not valid UTF-8 keeps its other bytes
    out_msg = r.redact(msg(b"\xff\xfe " + SECRET.encode() + b" \xc3"))
    assert isinstance(out_msg, Message)
    assert out_msg.payload == b"\xff\xfe <redacted> \xc3"
    assert r.counts.patterns == 6
    assert r.counts.by_location == {
        "target": 1,
        "header": 1,
        "body": 1,
        "close reason": 1,
        "note": 1,
        "message": 1,
    }


def test_headers_and_query() -> None:
    r = Redactor(RedactRules.build(headers=["X-Token", "cookie"], query=["key", "sig"]))
    opened = Open(
        conn=1,
        started_at=1.0,
        method="GET",
        scheme="ws",
        host="h",
        port=80,
        target="/c?key=abc&room=1&sig=&key=def",
        http_version="HTTP/1.1",
        request_headers=((b"x-token", b"t0k3n"), (b"Cookie", b"a=b"), (b"Host", b"h")),
        status=101,
        response_headers=((b"X-TOKEN", b"<redacted>"),),
    )
    out = r.redact(opened)
    assert isinstance(out, Open)
    assert out.request_headers == (
        (b"x-token", b"<redacted>"),
        (b"Cookie", b"<redacted>"),
        (b"Host", b"h"),
    )
    assert out.target == "/c?key=<redacted>&room=1&sig=<redacted>&key=<redacted>"
    assert (r.counts.headers, r.counts.query) == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patterns": ["("]}, "--pattern"),
        ({"patterns": ["a*"]}, "matches the empty string"),
        ({"headers": [""]}, "empty"),
    ],
)
def test_bad_rules(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(RedactError, match=message):
        RedactRules.build(**kwargs)


# -- whole cassettes -------------------------------------------------------------------


def plant(records: list[Record]) -> list[Record]:
    """Put the secret in every place redaction must reach."""
    out: list[Record] = []
    for r in records:
        if isinstance(r, Message) and r.opcode is Opcode.TEXT:
            r = replace(r, payload=json.dumps({"token": SECRET, "n": [1, {"token": 2}]}).encode())
        elif isinstance(r, Open):
            r = replace(
                r,
                target=f"/p?token={SECRET}",
                request_headers=(*r.request_headers, (b"X-Token", SECRET.encode())),
            )
        elif isinstance(r, Close):
            r = replace(r, reason=f"bye {SECRET}")
        out.append(r)
    return out


def same_shape(a: Record, b: Record) -> bool:
    """Everything redaction must not touch is equal."""
    if type(a) is not type(b) or a.conn != b.conn:
        return False
    if isinstance(a, Message) and isinstance(b, Message):
        same_payload = a.opcode is Opcode.TEXT or a.payload == b.payload
        return (a.t, a.side, a.opcode) == (b.t, b.side, b.opcode) and same_payload
    if isinstance(a, Open) and isinstance(b, Open):
        return replace(a, target="", request_headers=(), response_headers=(), body=b"") == replace(
            b, target="", request_headers=(), response_headers=(), body=b""
        ) and [k for k, _ in a.request_headers] == [k for k, _ in b.request_headers]
    if isinstance(a, Close) and isinstance(b, Close):
        return (a.t, a.by, a.code, a.on_wire) == (b.t, b.by, b.code, b.on_wire)
    return True


@given(groups=sessions())
@SETTINGS
def test_redacted_cassette_has_no_secret_and_keeps_everything_else(
    tmp_path: Path, groups: list[list[Record]]
) -> None:
    records = plant([r for g in groups for r in g])
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    rules = RedactRules.build(
        headers=["x-token"], json_keys=["token"], patterns=[r"sk-[A-Za-z0-9]+"]
    )
    counts = redact_cassette(CassetteReader(src), out, rules)
    raw = out.read_bytes()
    assert SECRET.encode() not in raw
    header, back = read_cassette(out)
    assert header == read_cassette(src)[0]
    assert len(back) == len(records)
    assert all(same_shape(a, b) for a, b in zip(records, back, strict=True))
    texts = sum(1 for r in records if isinstance(r, Message) and r.opcode is Opcode.TEXT)
    assert counts.json_keys == 2 * texts
    assert counts.records == len(records)


@given(groups=sessions())
@SETTINGS
def test_rules_that_match_nothing_change_nothing(
    tmp_path: Path, groups: list[list[Record]]
) -> None:
    records = [r for g in groups for r in g]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    rules = RedactRules.build(json_keys=["\x00never"], patterns=["\x00never\x00"])
    counts = redact_cassette(CassetteReader(src), out, rules)
    assert read_cassette(out) == read_cassette(src)
    assert counts.total == 0 and counts.changed_records == 0


def test_redact_in_place(tmp_path: Path) -> None:
    src = tmp_path / "c.msgpack"
    write(src, [msg('{"token": "x"}')])
    counts = redact_cassette(CassetteReader(src), src, RedactRules.build(json_keys=["token"]))
    assert counts.json_keys == 1
    assert read_cassette(src)[1] == [msg('{"token": "<redacted>"}')]
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed into place
    assert REDACTED == "<redacted>"
