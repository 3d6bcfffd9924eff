"""The JSONL export's fast message lines (interchange/jsonl.py)."""

from __future__ import annotations

import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from wstape.core.model import Message, Note, Opcode, Side
from wstape.interchange.jsonl import iter_jsonl, one_line, write_jsonl


@given(
    payload=st.binary(max_size=40)
    | st.text(max_size=20).map(lambda s: s.encode("utf-8", "surrogatepass")),
    t=st.floats(0, 315_576_000),
    side=st.sampled_from(Side),
    opcode=st.sampled_from(Opcode),
    conn=st.integers(0, 2**53),
)
@settings(max_examples=300, deadline=None)
def test_a_message_line_from_fields_is_the_dumped_object(
    payload: bytes, t: float, side: Side, opcode: Opcode, conn: int
) -> None:
    # The export builds a message line as one string (most of an export is messages):
    # byte for byte what dumping the documented object gives, exact or not.
    fields = (conn, t, side, opcode, payload)
    message = Message(*fields)
    assert list(iter_jsonl([fields])) == list(iter_jsonl([message]))
    assert list(iter_jsonl([fields], exact=True)) == list(iter_jsonl([message], exact=True))


LINE_BREAKS = "\x85\u2028\u2029"


@given(text=st.text(alphabet=st.sampled_from(["a", "\n", "é", "大", *LINE_BREAKS]), max_size=30))
@settings(max_examples=200, deadline=None)
def test_a_line_is_one_line_for_every_line_reader(text: str) -> None:
    """NEL, U+2028 and U+2029 are line breaks to str.splitlines (and to JavaScript's
    line readers); JSON keeps them raw in strings, so the export escapes them."""
    records = [Message(1, 0.5, Side.CLIENT, Opcode.TEXT, text.encode()), Note(1, text, 0.6)]
    fields = (1, 0.5, Side.SERVER, Opcode.TEXT, text.encode())
    lines = list(iter_jsonl([*records, fields], notes=True))
    out = io.StringIO()
    assert write_jsonl([*records, fields], out, notes=True) == 3
    assert out.getvalue().splitlines() == lines
    for line in lines:
        assert len(line.splitlines()) == 1 and not any(c in line for c in LINE_BREAKS)
    assert [json.loads(line).get("text") for line in lines] == [text, text, text]


def test_one_line_leaves_other_text_alone() -> None:
    for text in ['{"a":"b"}', '{"a":"é大\\n"}', ""]:
        assert one_line(text) is text
    assert one_line('{"a":"x\x85"}') == '{"a":"x\\u0085"}'
