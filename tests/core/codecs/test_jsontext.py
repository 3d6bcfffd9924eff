"""The iterative JSON span scanner: every value's path and exact span."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wstape.core.codecs import jsontext
from wstape.core.codecs.base import Path

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
styles = st.sampled_from(
    [
        {},
        {"indent": 2},
        {"indent": "\t", "ensure_ascii": False},
        {"separators": (",", ":")},
        {"separators": (" , ", " : "), "ensure_ascii": False},
    ]
)


def at(value: Any, path: Path) -> Any:
    for step in path:
        value = value[step]
    return value


def all_paths(value: Any) -> set[Path]:
    out: set[Path] = set()
    todo: list[tuple[Path, Any]] = [((), value)]
    while todo:
        path, v = todo.pop()
        out.add(path)
        if isinstance(v, dict):
            todo.extend(((*path, k), x) for k, x in v.items())
        elif isinstance(v, list):
            todo.extend(((*path, i), x) for i, x in enumerate(v))
    return out


@given(values, styles, st.data())
def test_find_agrees_with_spans(value: Any, style: dict[str, Any], data: st.DataObject) -> None:
    text = json.dumps(value, **style)
    every = list(jsontext.spans(text))
    some = data.draw(st.sets(st.sampled_from([p for p, _, _ in every] + [("nope",), (9,)])))
    assert list(jsontext.find(text, some)) == [span for span in every if span[0] in some]


@given(values, styles, st.sampled_from(["", " ", "\n\t "]))
def test_every_value_has_its_exact_span(value: Any, style: dict[str, Any], pad: str) -> None:
    text = pad + json.dumps(value, **style) + pad
    found = list(jsontext.spans(text))
    assert {p for p, _, _ in found} == all_paths(value)
    for path, start, end in found:
        assert json.loads(text[start:end]) == at(value, path)
    assert found[-1][0] == ()


@given(values, styles, st.data())
def test_replace_changes_only_that_span(
    value: Any, style: dict[str, Any], data: st.DataObject
) -> None:
    text = json.dumps(value, **style)
    path, start, end = data.draw(st.sampled_from(list(jsontext.spans(text))))
    new = data.draw(scalars)
    out = jsontext.replace(text, {path: new})
    assert out[:start] == text[:start]
    assert out[len(out) - (len(text) - end) :] == text[end:]
    assert at(json.loads(out), path) == new


@given(st.text(alphabet='[]{}",:0123456789.-eE+ tfnrulsaIN\\', max_size=16))
def test_accepts_exactly_what_json_loads_accepts(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            list(jsontext.spans(text))
    else:
        assert list(jsontext.spans(text))[-1][0] == ()


def test_keys_are_decoded_and_repeated_keys_all_replaced() -> None:
    text = '{"a\\u0062": 1, "x": [true, null], "ab" :2}'
    assert list(jsontext.find(text, [("ab",)])) == [(("ab",), 12, 13), (("ab",), 40, 41)]
    assert jsontext.replace(text, {("ab",): "z", ("x", 1): 7}) == (
        '{"a\\u0062": "z", "x": [true, 7], "ab" :"z"}'
    )


def test_nested_replacements_keep_the_outer_one() -> None:
    text = '{"a": {"b": 1}}'
    assert jsontext.replace(text, {("a",): 0, ("a", "b"): 5}) == '{"a": 0}'


def test_paths_it_does_not_have_change_nothing() -> None:
    text = '[1, {"a": 2}]'
    assert jsontext.replace(text, {(5,): 1, ("a",): 1, (1, "b"): 3}) == text


def test_nan_and_infinity_like_json_loads() -> None:
    assert [p for p, _, _ in jsontext.spans("[NaN, -Infinity, Infinity]")] == [(0,), (1,), (2,), ()]


def test_deep_nesting_is_no_recursion_error() -> None:
    depth = 100_000
    text = '{"a":' * depth + "1" + "}" * depth
    out = jsontext.replace(text, {("a",) * depth: 2})
    assert out == '{"a":' * depth + "2" + "}" * depth
    assert list(jsontext.find("[" * depth + "]" * depth, [(0,) * (depth - 1)])) == [
        ((0,) * (depth - 1), depth - 1, depth + 1)
    ]
    assert jsontext.value_end("[" * depth + "]" * depth + "x", 0) == 2 * depth


def test_value_end_finds_an_embedded_value() -> None:
    assert jsontext.value_end('42["a",{"b":"]"}]tail', 2) == 17
    with pytest.raises(ValueError):
        jsontext.value_end("42 x", 2)
