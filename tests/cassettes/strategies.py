"""Hypothesis strategies for cassette records."""

from __future__ import annotations

from hypothesis import strategies as st

from wstape.core.model import Close, Message, Note, Opcode, Open, Side, TlsInfo

conns = st.integers(min_value=0, max_value=2**31)
times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
header_pairs = st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40))
texts = st.text(max_size=40)

opens = st.builds(
    Open,
    conn=conns,
    started_at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    method=st.sampled_from(["GET", "POST"]),
    scheme=st.sampled_from(["ws", "wss"]),
    host=st.sampled_from(["127.0.0.1", "chat.example.com", "::1"]),
    port=st.integers(min_value=1, max_value=65535),
    target=st.text(min_size=1, max_size=30).map(lambda s: "/" + s),
    http_version=st.just("HTTP/1.1"),
    request_headers=st.lists(header_pairs, max_size=5).map(tuple),
    status=st.sampled_from([101, 403, 500]),
    response_headers=st.lists(header_pairs, max_size=5).map(tuple),
    subprotocols=st.lists(texts, max_size=3).map(tuple),
    extensions=st.lists(texts, max_size=2).map(tuple),
    subprotocol=st.none() | texts,
    client=st.none() | st.just("127.0.0.1:5555"),
    tls=st.none() | st.builds(TlsInfo, st.none() | texts, st.none() | texts, st.none() | texts),
    reason=texts,
    body=st.binary(max_size=50),
)
messages = st.builds(
    Message,
    conn=conns,
    t=times,
    side=st.sampled_from(Side),
    opcode=st.sampled_from(Opcode),
    payload=st.binary(max_size=300),
)
closes = st.builds(
    Close,
    conn=conns,
    t=times,
    by=st.none() | st.sampled_from(Side),
    code=st.none() | st.integers(min_value=0, max_value=65535),
    reason=texts,
    on_wire=st.booleans(),
)
notes = st.builds(Note, conn=st.none() | conns, text=texts, t=st.none() | times)
records = st.one_of(opens, messages, closes, notes)
