"""The JSONL export's fast message lines (interchange/jsonl.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wstape.core.model import Message, Opcode, Side
from wstape.interchange.jsonl import iter_jsonl


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
