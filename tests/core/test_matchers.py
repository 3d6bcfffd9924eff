"""Message matchers (wstape.core.matchers): verdicts, JSONPath-lite ignores, diffs."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstape.core.matchers import (
    MATCHERS,
    WILDCARD,
    MatchResult,
    format_path,
    match,
    match_all,
    matcher_names,
    parse_path,
    payload_diff,
)
from wstape.core.model import Message, Opcode, Side

T, B = Opcode.TEXT, Opcode.BINARY


def rec(payload: bytes | str, opcode: Opcode = T) -> Message:
    data = payload.encode() if isinstance(payload, str) else payload
    return Message(conn=1, t=0.5, side=Side.CLIENT, opcode=opcode, payload=data)


CHAT = '{"type":"chat","ts":1700000000,"data":{"id":7,"text":"hi"},"items":[{"ts":1,"v":2}]}'

CASES: list[tuple[str, str, Message, Opcode, str, Sequence[str], bool]] = [
    # name, matcher, expected, live opcode, live payload, ignore paths, ok
    ("exact same", "exact", rec("hi"), T, "hi", (), True),
    ("exact differs", "exact", rec("hi"), T, "ho", (), False),
    ("exact opcode differs", "exact", rec("hi"), B, "hi", (), False),
    ("type same opcode", "type", rec("hi"), T, "completely different", (), True),
    ("type opcode differs", "type", rec("hi"), B, "hi", (), False),
    ("any", "any", rec("hi"), B, "\x00", (), True),
    ("json reordered", "json", rec('{"a":1,"b":[1,2]}'), T, '{ "b": [1, 2], "a": 1 }', (), True),
    ("json value differs", "json", rec('{"a":1}'), T, '{"a":2}', (), False),
    ("json ignore $.ts", "json", rec(CHAT), T, CHAT.replace("1700000000", "1"), ["$.ts"], True),
    (
        "json ignore nested",
        "json",
        rec(CHAT),
        T,
        CHAT.replace('"id":7', '"id":8'),
        ["$.data.id"],
        True,
    ),
    (
        "json ignore wildcard index",
        "json",
        rec(CHAT),
        T,
        CHAT.replace('{"ts":1,', '{"ts":99,'),
        ["$.items[*].ts"],
        True,
    ),
    (
        "json ignored path but another differs",
        "json",
        rec(CHAT),
        T,
        CHAT.replace('"hi"', '"ho"').replace("1700000000", "2"),
        ["$.ts"],
        False,
    ),
    ("json ignored key missing live", "json", rec('{"a":1,"ts":5}'), T, '{"a":1}', ["ts"], True),
    ("json ignored key only live", "json", rec('{"a":1}'), T, '{"a":1,"ts":5}', ["$.ts"], True),
    ("json ignore subtree", "json", rec('{"d":{"x":1}}'), T, '{"d":{"x":2,"y":3}}', ["$.d"], True),
    ("json 1 equals 1.0", "json", rec('{"n":1}'), T, '{"n":1.0}', (), True),
    ("json true is not 1", "json", rec('{"n":true}'), T, '{"n":1}', (), False),
    ("json null is not 0", "json", rec("[null]"), T, "[0]", (), False),
    ("json list longer", "json", rec("[1,2]"), T, "[1,2,3]", (), False),
    ("json opcode differs", "json", rec('{"a":1}'), B, '{"a":1}', (), False),
    ("json falls back to exact", "json", rec("not json"), T, "not json", (), True),
    ("json fallback differs", "json", rec("not json"), T, '{"a":1}', (), False),
    ("json string key is not an index", "json", rec('{"0":1}'), T, '{"0":2}', ["$[0]"], False),
    ("json quoted key", "json", rec('{"a b":1}'), T, '{"a b":2}', ['$["a b"]'], True),
    ("json star key", "json", rec('{"a":1,"b":2}'), T, '{"a":3,"b":4}', ["$.*"], True),
]


@pytest.mark.parametrize(
    ("name", "expected", "opcode", "payload", "ignore", "ok"),
    [pytest.param(m, e, o, p, i, ok, id=n) for n, m, e, o, p, i, ok in CASES],
)
def test_match(
    name: str, expected: Message, opcode: Opcode, payload: str, ignore: Sequence[str], ok: bool
) -> None:
    result = match(name, expected, opcode, payload.encode(), ignore)
    assert result.ok is ok
    assert (result.diff == "") is ok


def test_json_diff_names_paths_and_both_values() -> None:
    live = CHAT.replace('"hi"', '"ho"').replace('"id":7', '"id":"7"')
    result = match("json", rec(CHAT), T, live.encode(), ["$.ts"])
    assert result.diff.splitlines() == [
        '$.data.id: expected 7, got "7"',
        '$.data.text: expected "hi", got "ho"',
    ]


def test_json_diff_missing_and_unexpected() -> None:
    result = match("json", rec('{"a":1,"b":2}'), T, b'{"a":1,"c":3}')
    assert result.diff.splitlines() == ["$.b: missing (expected 2)", "$.c: unexpected (got 3)"]


def test_json_diff_is_capped() -> None:
    old = json.dumps({f"k{i}": i for i in range(30)})
    new = json.dumps({f"k{i}": -i - 1 for i in range(30)})
    lines = match("json", rec(old), T, new.encode()).diff.splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 10 more"


def test_exact_text_diff_is_unified() -> None:
    result = match("exact", rec("line1\nline2\n"), T, b"line1\nLINE2\n")
    assert "-line2" in result.diff and "+LINE2" in result.diff
    assert result.diff.startswith("--- expected\n+++ actual")


def test_exact_opcode_diff() -> None:
    result = match("exact", rec("hi"), B, b"hi")
    assert result.diff == "opcode: expected text, got binary"


def test_binary_diff_first_offset_and_sizes() -> None:
    result = match("exact", rec(b"\x00\x01\x02\x03", B), B, b"\x00\x01\xff\x03\x04")
    assert result.diff == (
        "first difference at byte 2 (expected 0x02, got 0xff); expected 4 bytes, got 5"
    )
    prefix = payload_diff(b"abcdef", b"abc", text=False)
    assert "at byte 3" in prefix and "expected 6 bytes, got 3" in prefix


def test_text_diff_of_invalid_utf8_falls_back_to_bytes() -> None:
    assert payload_diff(b"ok\xff", b"ok\xfe").startswith("first difference at byte 2")


def test_unknown_matcher_and_bad_path_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown matcher"):
        match("fuzzy", rec("a"), T, b"a")
    with pytest.raises(ValueError, match="bad JSON path"):
        match("json", rec("{}"), T, b"{}", ["$.a["])


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.ts", ("ts",)),
        ("ts", ("ts",)),
        ("$.data.id", ("data", "id")),
        ("$.items[*].ts", ("items", WILDCARD, "ts")),
        ("$.items[0]", ("items", 0)),
        ("$['a.b']", ("a.b",)),
        ('$["a b"][2]', ("a b", 2)),
        ("$.*", (WILDCARD,)),
        ("[0]", (0,)),
    ],
)
def test_parse_path(path: str, steps: tuple[object, ...]) -> None:
    assert parse_path(path) == steps


@pytest.mark.parametrize("bad", ["$..a", "$.a[", "$[x]", "$.a]", "$ .a"])
def test_parse_path_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_path(bad)


def test_format_path() -> None:
    assert format_path(["data", "items", 2, "odd key", "ts"]) == '$.data.items[2]["odd key"].ts'


@pytest.mark.parametrize("bad", ["$.items[-1]", '$["\\q"]'])
def test_parse_path_rejects_what_would_silently_ignore_nothing(bad: str) -> None:
    with pytest.raises(ValueError, match="bad JSON path"):
        parse_path(bad)


@pytest.mark.parametrize("key", ['say "hi"', "back\\slash", "tab\t", "x]y", "名字"])
def test_a_path_from_a_diff_can_be_passed_back_as_an_ignore_path(key: str) -> None:
    expected = rec(json.dumps({key: 1, "n": 1}))
    result = match("json", expected, T, json.dumps({key: 2, "n": 1}).encode())
    path = result.diff.split(":", 1)[0]
    assert parse_path(path) == (key,)
    assert match("json", expected, T, json.dumps({key: 2, "n": 1}).encode(), [path]).ok


def test_registry() -> None:
    assert matcher_names() == ["any", "exact", "json", "type"]
    verdicts = match_all(rec('{"a":1}'), T, b'{"a": 1}')
    assert verdicts == {
        "exact": verdicts["exact"],
        "type": MatchResult(True),
        "any": MatchResult(True),
        "json": MatchResult(True),
    }
    assert not verdicts["exact"].ok
    assert set(MATCHERS) == set(verdicts)


# Any JSON document matches itself re-serialised with other whitespace and key order.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_matcher_ignores_formatting(value: object) -> None:
    a = json.dumps(value).encode()
    b = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).encode()
    assert match("json", rec(a), T, b).ok


@given(json_values, json_values)
def test_json_matcher_agrees_with_equality_of_distinct_documents(a: object, b: object) -> None:
    result = match("json", rec(json.dumps(a)), T, json.dumps(b).encode())
    if json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
        # Distinct canonical forms differ unless only int/float spelling differs (1 vs 1.0).
        if result.ok:
            assert json.loads(json.dumps(a)) == json.loads(json.dumps(b))
        else:
            assert result.diff
    else:
        assert result.ok


@pytest.mark.parametrize(
    ("name", "recorded", "live", "ok"),
    [
        ("exact", b'{"op":"auth","token":"<redacted>"}', b'{"op":"auth","token":"T0K3N"}', True),
        ("exact", b'{"op":"auth","token":"<redacted>"}', b'{"op":"quit","token":"T0K3N"}', False),
        ("exact", b'42["auth",{"token":"<redacted>"}]', b'42["auth",{"token":7}]', True),
        ("json", b'{"op":"auth","token":"<redacted>"}', b'{"token":{"a":1},"op":"auth"}', True),
        ("json", b'{"op":"auth","token":"<redacted>"}', b'{"op":"auth"}', False),
        ("json", b'{"op":"auth","n":[1,"<redacted>"]}', b'{"op":"auth","n":[1,2]}', True),
    ],
)
def test_a_value_redacted_in_the_recording_matches_any_live_value(
    name: str, recorded: bytes, live: bytes, ok: bool
) -> None:
    expected = Message(1, 0.0, Side.CLIENT, Opcode.TEXT, recorded)
    assert match(name, expected, Opcode.TEXT, live).ok is ok
