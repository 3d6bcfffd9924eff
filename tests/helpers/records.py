"""Cassette records for tests: hypothesis strategies, whole sessions, and a writer."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from hypothesis import strategies as st

from wstape.cassettes import CassetteReader, CassetteWriter, WriteMode
from wstape.core.model import Close, Message, Note, Opcode, Open, Record, Side, TlsInfo

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


# -- a strategy for well-formed cassettes ----------------------------------------------


@st.composite
def connection_records(draw: st.DrawFn, conn: int) -> list[Record]:
    """One connection: open, then messages and notes, then maybe a close and notes."""
    opened = replace(draw(opens), conn=conn)
    out: list[Record] = [opened]
    if opened.accepted:
        body = draw(st.lists(st.one_of(messages, notes), max_size=6))
        out.extend(replace(r, conn=conn) for r in body)
        close = draw(st.none() | closes)
        if close is not None:
            out.append(replace(close, conn=conn))
            out.extend(replace(n, conn=conn) for n in draw(st.lists(notes, max_size=2)))
    else:
        out.extend(replace(n, conn=conn) for n in draw(st.lists(notes, max_size=2)))
    return out


@st.composite
def sessions(draw: st.DrawFn, max_conns: int = 4) -> list[list[Record]]:
    """Connections (each a list of records) with unique ids; the first list holds notes
    about the whole cassette (conn None) that come before every connection."""
    ids = draw(st.lists(st.integers(0, 2**31), max_size=max_conns, unique=True))
    cassette_notes = [replace(n, conn=None) for n in draw(st.lists(notes, max_size=2))]
    return [cassette_notes, *(draw(connection_records(c)) for c in ids)]


def interleave(groups: list[list[Record]], seed: int) -> list[Record]:
    """Merge the connections' records in a random order, keeping each one's order."""
    rng = random.Random(seed)
    queues = [list(g) for g in groups if g]
    out: list[Record] = []
    while queues:
        q = rng.choice(queues)
        out.append(q.pop(0))
        if not q:
            queues.remove(q)
    return out


def write(path: Path, records: list[Record], *, started_at: float = 1.5) -> None:
    with CassetteWriter(path, mode=WriteMode.OVERWRITE, creator="test", started_at=started_at) as w:
        for r in records:
            w.write(r)


def cut_last_record(path: Path, n: int) -> None:
    """Cut ``n`` bytes off the last record of ``path`` as a recorder killed mid-write
    leaves it: inside the record, and without the end record it would have written."""
    end = CassetteReader(path).end_summary()
    data = path.read_bytes()
    path.write_bytes(data[: -end.size - n] if end is not None else data[:-n])


def records_so_far(path: Path) -> list[Record]:
    """The records of a cassette a recorder is still writing (so without an end record
    yet); asserts that every record is whole."""
    reader = CassetteReader(path, allow_truncated=True)
    out = list(reader)
    assert reader.truncated_at in (None, reader.size), reader.truncated_at
    return out


def make_open(
    conn: int = 1,
    target: str = "/chat",
    *,
    status: int = 101,
    scheme: str = "ws",
    host: str = "h",
    port: int | None = None,
    started_at: float = 100.0,
    request_headers: tuple[tuple[bytes, bytes], ...] = (),
    response_headers: tuple[tuple[bytes, bytes], ...] = (),
    **fields: object,
) -> Open:
    """The one ``Open`` factory of the tests: a GET upgrade of ``target`` answered with
    ``status``; any other field by keyword (``subprotocol=``, ``client=``, ``tls=``...)."""
    record = Open(
        conn=conn,
        started_at=started_at,
        method="GET",
        scheme=scheme,
        host=host,
        port=port if port is not None else (443 if scheme == "wss" else 80),
        target=target,
        http_version="HTTP/1.1",
        request_headers=request_headers,
        status=status,
        response_headers=response_headers,
    )
    return replace(record, **fields)  # type: ignore[arg-type]
