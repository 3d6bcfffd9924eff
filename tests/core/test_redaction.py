"""The redaction engine: what it replaces, what it keeps byte for byte, how it fails closed."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.records import make_open
from wstape.core.errors import ConfigError
from wstape.core.model import Close, Message, Note, Opcode, Open, Side
from wstape.core.redaction import (
    MARKER,
    MARKER_BYTES,
    MAX_EMBEDDED,
    Policy,
    Redactor,
    choose_redacted,
    matches_redacted,
    subprotocol_token,
)

SECRET = "sk-Zq7secretVALUE42"


def keys_only(*keys: str) -> Redactor:
    return Redactor(Policy.build(defaults=False, json_keys=keys))


def text(r: Redactor, payload: str | bytes) -> tuple[bytes, list[str]]:
    notes: list[str] = []
    data = payload.encode() if isinstance(payload, str) else payload
    return r.payload(data, True, notes), notes


def opened(**kw: Any) -> Open:
    return make_open(**{"started_at": 1.0, **kw})


# -- JSON keys -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "keys", "expected"),
    [
        ('{"token": "abc"}', ("token",), '{"token": "<redacted>"}'),
        ('{"Token" : 12.5e3 , "x": 1}', ("token",), '{"Token" : "<redacted>" , "x": 1}'),
        (
            '{"a": {"b": [1, {"token": null}]}}',
            ("token",),
            '{"a": {"b": [1, {"token": "<redacted>"}]}}',
        ),
        (
            '[{"token": {"token": 1, "y": [2]}}, {"token": true}]',
            ("token",),
            '[{"token": "<redacted>"}, {"token": "<redacted>"}]',
        ),
        ('{"a": "token", "b": ["token"]}', ("token",), '{"a": "token", "b": ["token"]}'),
        (
            '{"pwd": "x", "token": [1, 2]}',
            ("pwd", "token"),
            '{"pwd": "<redacted>", "token": "<redacted>"}',
        ),
        (
            '{"token": NaN, "t2": -Infinity}',
            ("token", "t2"),
            '{"token": "<redacted>", "t2": "<redacted>"}',
        ),
        ('\n {"token":"x"} \n', ("token",), '\n {"token":"<redacted>"} \n'),
        ('{"\\u0074oken": "x"}', ("token",), '{"\\u0074oken": "<redacted>"}'),
        (
            '{"API-KEY": 1, "api_key": 2}',
            ("api_key",),
            '{"API-KEY": "<redacted>", "api_key": "<redacted>"}',
        ),
        ('"token"', ("token",), '"token"'),
        ("token=abc", ("token",), "token=abc"),
        # Socket.IO and friends: JSON after a prefix, and several values in one text
        ('42["auth",{"token":"abc"}]', ("token",), '42["auth",{"token":"<redacted>"}]'),
        ('{"token":1}\n{"token":2}', ("token",), '{"token":"<redacted>"}\n{"token":"<redacted>"}'),
        # the rest of the message keeps its exact bytes: spacing, order, escapes
        (
            '{ "user":"小明", "token": "abc",\n "e": "\\u00e9\\/", "n": {"password": [1]}}',
            ("token", "PassWord"),
            '{ "user":"小明", "token": "<redacted>",\n "e": "\\u00e9\\/", '
            '"n": {"password": "<redacted>"}}',
        ),
    ],
)
def test_json_keys(payload: str, keys: tuple[str, ...], expected: str) -> None:
    out, notes = text(keys_only(*keys), payload)
    assert out.decode() == expected
    assert notes == []


def test_json_inside_json_strings_is_looked_into_keeping_its_escapes() -> None:
    inner = json.dumps({"token": SECRET, "é": "x/y"})
    twice = json.dumps({"payload": json.dumps({"wrapped": inner})})
    r = keys_only("token")
    out, _ = text(r, json.dumps({"a": inner, "b": twice, "c": "{not json, token"}))
    assert SECRET.encode() not in out
    doc = json.loads(out)
    assert json.loads(doc["a"]) == {"token": MARKER, "é": "x/y"}
    assert json.loads(json.loads(json.loads(doc["b"])["payload"])["wrapped"])["token"] == MARKER
    assert doc["c"] == "{not json, token"  # a string that only looks like JSON stays
    assert r.counts.json_keys == 2
    # only the secret's characters changed: the \u00e9 escape json.dumps wrote is still there
    assert "\\u00e9" in doc["a"]


def test_embedding_deeper_than_the_limit_replaces_the_whole_string() -> None:
    doc: Any = {"token": SECRET}
    for _ in range(MAX_EMBEDDED + 1):
        doc = {"s": json.dumps(doc)}
    out, _ = text(keys_only("token"), json.dumps(doc))
    assert SECRET.encode() not in out
    assert json.loads(out) is not None


@pytest.mark.parametrize("depth", [1000, 100_000])
def test_any_depth_of_nesting(depth: int) -> None:
    r = keys_only("token")
    lists = "[" * depth + f'{{"token":"{SECRET}"}}' + "]" * depth
    objects = '{"a":' * depth + f'{{"token":"{SECRET}"}}' + "}" * depth
    for doc in (lists, objects):
        out, notes = text(r, doc)
        assert SECRET.encode() not in out and notes == []
        assert out == doc.replace(f'"{SECRET}"', '"<redacted>"').encode()


@pytest.mark.parametrize(
    "payload",
    [
        f'{{"token": "{SECRET}"',  # cut short
        f'{{"token": "{SECRET}",}}',  # trailing comma
        f'{{"a": [1, 2}}, "token": "{SECRET}"}}',
        f'42["auth",{{"token":"{SECRET}"]',
        f'{{\\"token\\": \\"{SECRET}\\"',
        "[" * 100_000 + f'"token": "{SECRET}"',
        f'{{"a": ["token": "{SECRET}"]}}',  # the scan stops right before the colon
        "[x " * 10_000 + f'"token": "{SECRET}"',
    ],
)
def test_unparseable_text_that_may_hold_a_key_is_withheld(payload: str) -> None:
    r = keys_only("token")
    out, notes = text(r, payload)
    assert out == MARKER_BYTES
    assert len(notes) == 1 and "withheld" in notes[0] and "(token)" in notes[0]
    assert r.counts.withheld == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"token=abc",
        b"my token is here",
        b'{"text": "set \\"token\\": x"}',
        b"\xff\xfe token {",
        b"",
        b"{",
    ],
)
def test_text_without_a_quoted_key_stays_byte_for_byte(payload: bytes) -> None:
    out, notes = text(keys_only("token"), payload)
    assert out == payload and notes == []


@given(
    data=st.binary(max_size=200) | st.text(max_size=200).map(str.encode),
    secret=st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=16),
    at=st.integers(0, 200),
    binary=st.booleans(),
)
@settings(max_examples=200, deadline=None)
def test_hostile_payloads_never_raise_and_never_keep_a_secret_value(
    data: bytes, secret: str, at: int, binary: bool
) -> None:
    value = ("S3" + secret).encode()
    payload = data[:at] + value + data[at:]
    r = Redactor(Policy.build(secrets=[value]))
    out = r.payload(payload, not binary, [])
    assert value not in out
    if binary:
        assert len(out) == len(payload)  # overwritten in place: framing survives


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "Token", "b", "é", "id"]), inner, max_size=3)
    ),
    max_leaves=10,
)
styles = st.sampled_from(
    [{}, {"indent": 2}, {"ensure_ascii": False}, {"separators": (" , ", " : ")}]
)


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MARKER if k.lower() == "token" else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


@given(documents, styles)
@settings(max_examples=150, deadline=None)
def test_json_redaction_masks_exactly_the_keys_and_keeps_the_rest(
    doc: Any, style: dict[str, Any]
) -> None:
    payload = json.dumps(doc, **style)
    out, notes = text(keys_only("token"), payload)
    assert notes == []
    assert json.loads(out) == masked(doc)
    if masked(doc) == doc:
        assert out == payload.encode()
    r = keys_only("token")
    again, _ = text(r, out)
    assert again == out and r.counts.json_keys == 0  # a second run finds nothing new


# -- headers, subprotocols, query --------------------------------------------------------


def test_default_headers_and_query() -> None:
    r = Redactor(Policy.build())
    out = r.open(
        opened(
            target="/c?token=abc&room=1&Access_Token=zz&sig=&x=%61",
            request_headers=(
                (b"authorization", b"Bearer s3cret"),
                (b"Cookie", b"sid=abc"),
                (b"X-API-KEY", b"k1"),
                (b"X-Csrf-Token", b"k2"),
                (b"Referer", b"https://app.example/page?access_token=zz#top"),
                (b"Host", b"h"),
            ),
            response_headers=((b"Set-Cookie", b"sid=def"), (b"X-Trace", b"42")),
        )
    )
    assert out.target == "/c?token=<redacted>&room=1&Access_Token=<redacted>&sig=<redacted>&x=%61"
    assert out.request_headers == (
        (b"authorization", MARKER_BYTES),
        (b"Cookie", MARKER_BYTES),
        (b"X-API-KEY", MARKER_BYTES),
        (b"X-Csrf-Token", MARKER_BYTES),
        (b"Referer", b"https://app.example/page?access_token=<redacted>#top"),
        (b"Host", b"h"),
    )
    assert out.response_headers == ((b"Set-Cookie", MARKER_BYTES), (b"X-Trace", b"42"))
    assert (r.counts.headers, r.counts.query) == (5, 4)
    assert r.open(out) == out and r.counts.headers == 5  # nothing new the second time


def test_defaults_off_redacts_only_what_is_named() -> None:
    r = Redactor(Policy.build(defaults=False, headers=["X-*-Key"], query=["room"]))
    out = r.open(
        opened(
            target="/c?token=abc&room=1",
            request_headers=((b"Authorization", b"a"), (b"X-Team-Key", b"k")),
        )
    )
    assert out.target == "/c?token=abc&room=<redacted>"
    assert out.request_headers == ((b"Authorization", b"a"), (b"X-Team-Key", MARKER_BYTES))


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("chat.v1", "chat.v1"),
        ("graphql-transport-ws", "graphql-transport-ws"),
        ("com.microsoft.signalr.json.v1", "com.microsoft.signalr.json.v1"),
        (
            "base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lP",
            "base64url.bearer.authorization.<redacted>",
        ),
        ("openai-insecure-api-key.sk-proj-abc", "openai-insecure-api-key.<redacted>"),
        ("bearer.abc", "bearer.<redacted>"),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", MARKER),
        ("a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6", MARKER),
        ("abcdefghijklmnopqrstuvwxyzabcdefgh", "abcdefghijklmnopqrstuvwxyzabcdefgh"),
    ],
)
def test_subprotocol_tokens(item: str, expected: str) -> None:
    assert subprotocol_token(item) == expected


def test_a_subprotocol_token_is_gone_from_the_header_and_every_field() -> None:
    r = Redactor(Policy.build())
    token = "tok-" + SECRET
    out = r.open(
        opened(
            request_headers=(
                (b"Sec-WebSocket-Protocol", f"chat.v1, access_token,  {token}".encode()),
            ),
            response_headers=((b"Sec-WebSocket-Protocol", token.encode()),),
            subprotocols=("chat.v1", "access_token", token),
            subprotocol=token,
        )
    )
    assert out.request_headers == (
        (b"Sec-WebSocket-Protocol", b"chat.v1, access_token,  <redacted>"),
    )
    assert out.response_headers == ((b"Sec-WebSocket-Protocol", MARKER_BYTES),)
    assert out.subprotocols == ("chat.v1", "access_token", MARKER)
    assert out.subprotocol == MARKER
    assert r.counts.subprotocols == 1
    assert SECRET not in repr(out)


def test_a_listed_subprotocol_or_extensions_header_is_redacted_item_by_item() -> None:
    r = Redactor(
        Policy.build(defaults=False, headers=["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"])
    )
    out = r.open(
        opened(
            request_headers=(
                (b"Sec-WebSocket-Protocol", b"chat.v1, v2"),
                (b"Sec-WebSocket-Extensions", b"permessage-deflate; client_max_window_bits"),
            ),
            response_headers=((b"Sec-WebSocket-Protocol", b"v2"),),
            subprotocols=("chat.v1", "v2"),
            extensions=("permessage-deflate; client_max_window_bits",),
            subprotocol="v2",
        )
    )
    assert out.request_headers == (
        (b"Sec-WebSocket-Protocol", b"<redacted>, <redacted>"),
        (b"Sec-WebSocket-Extensions", MARKER_BYTES),
    )
    assert out.subprotocols == (MARKER, MARKER) and out.subprotocol == MARKER
    assert out.extensions == (MARKER,)


# -- secret values -----------------------------------------------------------------------


def test_secret_values_everywhere_with_notes() -> None:
    value = "S3CRET/val+ue"
    r = Redactor(Policy.build(defaults=False, secrets=[value.encode()]))
    notes: list[str] = []
    out = r.open(
        opened(
            host="h",
            target="/c?k=S3CRET%2Fval%2Bue&p=/x/" + value,
            request_headers=((b"X-Anything", f"v={value}".encode()),),
            subprotocols=(value,),
            body=f'{{"echo":"{value.replace("/", chr(92) + "/")}"}}'.encode(),
            status=403,
        ),
        notes,
    )
    assert value not in repr(out) and "S3CRET%2F" not in out.target
    assert out.target == "/c?k=<redacted>&p=/x/<redacted>"
    assert len(notes) == 1 and "5 occurrences" in notes[0] and "upgrade" in notes[0]
    binary, notes = b"\x00\x05" + value.encode() + b"\xff", []
    assert r.payload(binary, False, notes) == b"\x00\x05<redacted>***\xff"
    assert notes == ["1 occurrence of a --secret-env/--secret-file value redacted in this message"]
    closed, notes = r.record(Close(1, 1.0, Side.SERVER, 4001, f"bad {value}"))
    assert closed == Close(1, 1.0, Side.SERVER, 4001, "bad <redacted>") and len(notes) == 1
    assert r.redact(Note(1, f"x {value}")) == Note(1, "x <redacted>")
    assert r.counts.secrets >= 7


def test_short_binary_secrets_are_starred() -> None:
    r = Redactor(Policy.build(defaults=False, secrets=[b"abcdef"]))
    assert r.payload(b"<abcdef>", False) == b"<******>"


def test_records_are_followed_by_their_notes() -> None:
    r = Redactor(Policy.build(secrets=[b"S3CRET-1"]))
    m = Message(3, 0.5, Side.CLIENT, Opcode.BINARY, b"S3CRET-1")
    out = list(r.records([m, Message(3, 0.6, Side.SERVER, Opcode.TEXT, b'{"token": 1')]))
    assert [type(x).__name__ for x in out] == ["Message", "Note", "Message", "Note"]
    assert isinstance(out[1], Note) and (out[1].conn, out[1].t) == (3, 0.5)
    assert isinstance(out[2], Message) and out[2].payload == MARKER_BYTES
    assert (r.counts.records, r.counts.changed_records) == (2, 2)


# -- patterns --------------------------------------------------------------------------


def test_patterns_everywhere_in_text_but_not_binary() -> None:
    r = Redactor(Policy.build(defaults=False, patterns=[r"sk-[A-Za-z0-9]+"]))
    out = r.redact(
        opened(
            target=f"/chat?key={SECRET}",
            request_headers=((b"Referer", f"https://x/?k={SECRET}".encode()),),
            status=403,
            body=f"bad key {SECRET}".encode(),
        )
    )
    assert isinstance(out, Open)
    assert out.target == "/chat?key=<redacted>"
    assert out.request_headers == ((b"Referer", b"https://x/?k=<redacted>"),)
    assert out.body == b"bad key <redacted>"
    m = r.redact(
        Message(1, 0.1, Side.CLIENT, Opcode.TEXT, b"\xff\xfe " + SECRET.encode() + b" \xc3")
    )
    assert isinstance(m, Message) and m.payload == b"\xff\xfe <redacted> \xc3"
    b = Message(1, 0.1, Side.CLIENT, Opcode.BINARY, SECRET.encode())
    assert r.redact(b) is b
    assert r.counts.by_location == {"target": 1, "header": 1, "body": 1, "message": 1}


@pytest.mark.parametrize("pattern", [r"(?=a)", r"\b", r"(?<=e)", r"x*(?=t)"])
def test_a_pattern_that_matches_only_empty_strings_inserts_nothing(pattern: str) -> None:
    """QA: `wstape redact --pattern '(?=a)'` passed the check that a pattern does not
    match the empty string (it does not match "" itself) and then put `<redacted>` at
    every place it matched: `/ch<redacted>at`, `Upgr<redacted>ade`, in every header,
    target and subprotocol. An empty match replaces nothing."""
    r = Redactor(Policy.build(defaults=False, patterns=[pattern]))
    out = r.redact(opened(target="/chat?a=1", request_headers=((b"Upgrade", b"websocket"),)))
    assert isinstance(out, Open)
    assert (out.target, out.request_headers) == ("/chat?a=1", ((b"Upgrade", b"websocket"),))
    assert r.counts.patterns == 0


@pytest.mark.parametrize("pattern", ["dact", "[a-z]{6,}", "<red", "ed>&x"])
def test_a_pattern_leaves_the_markers_already_there_whole(pattern: str) -> None:
    """QA: a pattern matching part of `<redacted>` (`--pattern dact`, `[a-z]{6,}`) cut
    into the markers the defaults had just written: `token=<re<redacted>ed>`, counted
    again on every later run (2 values redacted in 0 records). A match inside or across
    a marker is no value of the recording."""
    r = Redactor(Policy.build(patterns=[pattern]))
    out = r.redact(opened(target="/chat?token=abc&x=1"))
    assert isinstance(out, Open) and out.target == "/chat?token=<redacted>&x=1"
    again = Redactor(Policy.build(patterns=[pattern]))
    assert again.redact(out) == out and again.counts.total == 0


def test_a_pattern_may_take_a_marker_whole_with_what_surrounds_it() -> None:
    r = Redactor(Policy.build(patterns=[r"token=\S+"]))
    out = r.redact(opened(target="/chat?token=abc"))
    assert isinstance(out, Open) and out.target == "/chat?<redacted>"


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"patterns": ["("]}, "pattern"),
        ({"patterns": ["a*"]}, "pattern"),
        ({"patterns": [""]}, "pattern"),
        ({"headers": ["bad name"]}, "header"),
        ({"headers": [""]}, "header"),
        ({"json_keys": [""]}, "json_key"),
        ({"query": [""]}, "query"),
        ({"secrets": [b"abc"]}, "secret"),
    ],
)
def test_bad_policies(kwargs: dict[str, Any], option: str) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.build(**kwargs)
    assert info.value.option == option


def test_a_value_already_redacted_is_not_counted() -> None:
    r = Redactor(Policy.build())
    op = opened(target="/?token=<redacted>", request_headers=((b"Cookie", MARKER_BYTES),))
    assert r.open(op) is op
    assert r.counts.total == 0


# -- replaying what was redacted -------------------------------------------------------


@pytest.mark.parametrize(
    ("recorded", "live", "ok"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ('{"token":"<redacted>","x":1}', '{"token":"abc","x":1}', True),
        ('{"token":"<redacted>","x":1}', '{"token":{"a":[1]},"x":1}', True),
        ('{"token":"<redacted>","x":1}', '{"token":"abc","x":2}', False),
        ("a.<redacted>", "a.XYZ", True),
        ("a.<redacted>", "b.XYZ", False),
        ("<redacted>", "", True),
        ("x<redacted>y<redacted>z", "xAyByz", True),
        ("x<redacted>y<redacted>z", "xAz", False),
        ("ab<redacted>ba", "aba", False),
    ],
)
def test_matches_redacted(recorded: str, live: str, ok: bool) -> None:
    assert matches_redacted(recorded, live) is ok
    assert matches_redacted(recorded.encode(), live.encode()) is ok


def test_binary_fill_matches_the_live_secret() -> None:
    r = Redactor(Policy.build(defaults=False, secrets=[b"S3CRET-VALUE-1"]))
    live = b"\x01S3CRET-VALUE-1\x02"
    assert matches_redacted(r.payload(live, False), live)


@pytest.mark.parametrize(
    ("recorded", "offered", "recorded_offers", "chosen"),
    [
        (MARKER, ("access_token", "T1"), ("access_token", MARKER), "T1"),
        (MARKER, ("T0", "T1"), (MARKER, MARKER), "T0"),
        ("bearer.<redacted>", ("chat", "bearer.XYZ"), ("chat", "bearer.<redacted>"), "bearer.XYZ"),
        ("bearer.<redacted>", ("chat",), ("chat", "bearer.<redacted>"), None),
    ],
)
def test_choose_redacted(
    recorded: str, offered: tuple[str, ...], recorded_offers: tuple[str, ...], chosen: str | None
) -> None:
    assert choose_redacted(recorded, offered, recorded_offers) == chosen


def test_open_redaction_keeps_everything_else() -> None:
    op = opened(
        target="/c?token=x",
        request_headers=((b"Authorization", b"a"),),
        client="127.0.0.1:5",
        reason="Switching Protocols",
    )
    out = Redactor(Policy.build()).open(op)
    assert replace(out, target=op.target, request_headers=op.request_headers) == op


@pytest.mark.parametrize("pad", [0, 300, 5000])
@pytest.mark.parametrize("spelled", ["TOKEN", "Api-Key", "\\u0074oken"])
def test_the_cheap_checks_find_keys_and_values_at_any_size(pad: int, spelled: str) -> None:
    """Short and long payloads take different first checks: both must see everything."""
    r = Redactor(Policy.build(secrets=[SECRET.encode()]))
    doc = f'{{"pad": "{"x" * pad}", "{spelled}": "v", "note": "{SECRET}"}}'
    out, notes = text(r, doc)
    assert out.decode().endswith(f'"{spelled}": "<redacted>", "note": "<redacted>"}}')
    assert len(notes) == 1
    binary = b"\x00" * pad + SECRET.encode()
    assert SECRET.encode() not in r.payload(binary, False)


@given(
    st.text(alphabet='{}[]":, \\/tokenu0074abcé\n', max_size=120),
    st.sampled_from(['"token": "S3CRET-v4lue"', '"token":"S3CRET-v4lue"', "S3CRET-v4lue"]),
    st.integers(0, 120),
)
@settings(max_examples=300, deadline=None)
def test_json_like_noise_never_raises_and_never_keeps_the_planted_pair(
    noise: str, planted: str, at: int
) -> None:
    """Text built from JSON's own characters: every path of the scanner (whole values,
    values after a prefix, strings that look like JSON, failures) without an exception,
    and a planted ``"token": value`` never survives as such."""
    payload = (noise[:at] + planted + noise[at:]).encode()
    r = Redactor(Policy.build())
    out = r.payload(payload, True, [])
    if planted.startswith('"token"'):
        assert planted.encode() not in out
