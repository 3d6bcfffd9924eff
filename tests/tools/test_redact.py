"""``redact_cassette`` over whole cassettes, and reading secret values (``load_secrets``)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.records import records as any_record
from tests.helpers.records import sessions, write
from wstape.cassettes import CassetteReader, read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side
from wstape.core.redaction import Policy, Redactor
from wstape.tools.redact import (
    REDACTED,
    RedactError,
    build_rules,
    load_secrets,
    redact_cassette,
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SECRET = "sk-Zq7secretVALUE42"


def client_text(text: str) -> Message:
    return Message(1, 0.5, Side.CLIENT, Opcode.TEXT, text.encode())


def plant(records: list[Record]) -> list[Record]:
    """Put the secret in every place redaction must reach."""
    out: list[Record] = []
    for r in records:
        if isinstance(r, Message) and r.opcode is Opcode.TEXT:
            r = replace(r, payload=json.dumps({"token": SECRET, "n": [1, {"token": 2}]}).encode())
        elif isinstance(r, Message):
            r = replace(r, payload=b"\x00" + SECRET.encode() + b"\xff")
        elif isinstance(r, Open):
            r = replace(
                r,
                target=f"/p?token={SECRET}",
                request_headers=(*r.request_headers, (b"X-Token", SECRET.encode())),
                subprotocols=("access_token", SECRET),
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
        return (a.t, a.side, a.opcode, len(a.payload) if a.opcode is Opcode.BINARY else 0) == (
            b.t,
            b.side,
            b.opcode,
            len(b.payload) if b.opcode is Opcode.BINARY else 0,
        )
    if isinstance(a, Open) and isinstance(b, Open):
        blank = {
            "target": "",
            "request_headers": (),
            "response_headers": (),
            "body": b"",
            "subprotocols": (),
            "subprotocol": None,
            "host": "",
            "reason": "",
            "extensions": (),
        }
        return replace(a, **blank) == replace(b, **blank) and [k for k, _ in a.request_headers] == [
            k for k, _ in b.request_headers
        ]
    if isinstance(a, Close) and isinstance(b, Close):
        return (a.t, a.by, a.code, a.on_wire) == (b.t, b.by, b.code, b.on_wire)
    return True


@given(groups=sessions())
@SETTINGS
def test_a_redacted_cassette_has_no_secret_and_keeps_everything_else(
    tmp_path: Path, groups: list[list[Record]]
) -> None:
    records = plant([r for g in groups for r in g])
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    rules = Policy.build(secrets=[SECRET.encode()])
    counts = redact_cassette(CassetteReader(src), out, rules)
    assert SECRET.encode() not in out.read_bytes()
    header, back = read_cassette(out)
    assert header == read_cassette(src)[0]
    kept = [r for r in back if not (isinstance(r, Note) and "--secret-env" in r.text)]
    assert len(kept) == len(records)
    assert all(same_shape(a, b) for a, b in zip(records, kept, strict=True))
    texts = sum(1 for r in records if isinstance(r, Message) and r.opcode is Opcode.TEXT)
    assert counts.json_keys == 2 * texts
    assert counts.records == len(records)
    # a second run finds nothing left to replace
    again = redact_cassette(CassetteReader(out), tmp_path / "again.msgpack", rules)
    assert again.total == 0


@given(groups=sessions())
@SETTINGS
def test_rules_that_match_nothing_change_nothing(
    tmp_path: Path, groups: list[list[Record]]
) -> None:
    records = [r for g in groups for r in g]
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, records)
    rules = Policy.build(defaults=False, json_keys=["\x00never"], patterns=["\x00never\x00"])
    counts = redact_cassette(CassetteReader(src), out, rules)
    assert read_cassette(out) == read_cassette(src)
    assert counts.total == 0 and counts.changed_records == 0


@given(st.lists(any_record, max_size=8), st.binary(min_size=6, max_size=12))
@settings(max_examples=150, deadline=None)
def test_any_record_is_redacted_without_an_error_and_without_the_secret(
    records: list[Record], value: bytes
) -> None:
    """Hostile records (random bytes in headers, payloads, subprotocols): never an
    exception, never the secret value in what would be written."""
    value = b"Zq7" + value
    planted = [
        replace(r, payload=r.payload + value)
        if isinstance(r, Message)
        else replace(r, request_headers=(*r.request_headers, (b"X", value)))
        if isinstance(r, Open)
        else r
        for r in records
    ]
    r = Redactor(Policy.build(secrets=[value]))
    for out in r.records(planted):
        if isinstance(out, Message):
            assert value not in out.payload
        elif isinstance(out, Open):
            assert all(value not in v for _, v in out.request_headers)


def test_deep_json_is_redacted_not_skipped(tmp_path: Path) -> None:
    """Issue 8: nesting deeper than the recursion limit used to count as "not JSON"."""
    deep = "[" * 100_000 + f'{{"token": "{SECRET}"}}' + "]" * 100_000
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, [client_text(deep)])
    counts = redact_cassette(CassetteReader(src), out, Policy.build())
    assert counts.json_keys == 1
    assert SECRET.encode() not in out.read_bytes()
    (msg,) = read_cassette(out)[1]
    assert isinstance(msg, Message)
    assert msg.payload == deep.replace(f'"{SECRET}"', '"<redacted>"').encode()


def test_withheld_payloads_are_followed_by_a_note(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, [client_text(f'{{"token": "{SECRET}"')])
    counts = redact_cassette(CassetteReader(src), out, Policy.build())
    assert counts.withheld == 1
    msg, note = read_cassette(out)[1]
    assert isinstance(msg, Message) and msg.payload == b"<redacted>"
    assert isinstance(note, Note) and note.conn == 1 and note.t == 0.5 and "withheld" in note.text


def test_redact_in_place_keeps_a_private_cassette_private(tmp_path: Path) -> None:
    src = tmp_path / "c.msgpack"
    write(src, [client_text('{"token": "x"}')])
    os.chmod(src, 0o600)
    counts = redact_cassette(CassetteReader(src), src, Policy.build())
    assert counts.json_keys == 1
    assert read_cassette(src)[1] == [client_text('{"token": "<redacted>"}')]
    assert src.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed into place
    assert REDACTED == "<redacted>"


def test_the_output_is_a_valid_cassette_byte_stream(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    write(src, [client_text('{"token": "x"}')])
    redact_cassette(CassetteReader(src), out, Policy.build())
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(out.read_bytes())
    assert len(list(unpacker)) == 3  # header, message, end record


# -- secret values ----------------------------------------------------------------------


def test_load_secrets_from_env_and_files(tmp_path: Path) -> None:
    f = tmp_path / "secrets.txt"
    f.write_bytes(b"first-secret\r\n\nsecond secret with spaces \n")
    values = load_secrets(env=["A_TOKEN"], files=[f], environ={"A_TOKEN": "tok-123456"})
    assert values == (b"tok-123456", b"first-secret", b"second secret with spaces ")


@pytest.mark.parametrize(
    ("env", "content", "option", "message"),
    [
        (["MISSING"], None, "secret_env", "MISSING is not set"),
        (["EMPTY"], None, "secret_env", "EMPTY is empty"),
        (["SHORT"], None, "secret_env", "SHORT is shorter than 4 bytes"),
        ([""], None, "secret_env", "empty variable name"),
        ([], b"", "secret_file", "holds no value"),
        ([], b"ok-value\nabc\n", "secret_file", "line 2 is shorter than 4 bytes"),
    ],
)
def test_bad_secret_sources(
    tmp_path: Path, env: list[str], content: bytes | None, option: str, message: str
) -> None:
    files = []
    if content is not None:
        f = tmp_path / "s.txt"
        f.write_bytes(content)
        files.append(f)
    with pytest.raises(RedactError, match=message) as info:
        load_secrets(env=env, files=files, environ={"EMPTY": "", "SHORT": "abc"})
    assert info.value.option == option
    assert "abc" not in str(info.value)  # a value is never shown


def test_an_unreadable_secret_file(tmp_path: Path) -> None:
    with pytest.raises(RedactError, match="cannot read") as info:
        load_secrets(files=[tmp_path / "nope.txt"])
    assert info.value.option == "secret_file"


def test_build_rules_wraps_policy_errors() -> None:
    with pytest.raises(RedactError) as info:
        build_rules(patterns=["("])
    assert info.value.option == "pattern"
