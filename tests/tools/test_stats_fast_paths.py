"""``stats --json``'s objects built as one string agree with the encoder, and the totals
taken from a connection's short values agree with its figures."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from tests.helpers.records import make_open
from wstape.core.model import Close, Message, Opcode, Open, Side
from wstape.interchange.jsonl import spaced
from wstape.tools import stats
from wstape.tools.stats import ConnectionStats, _Totals


def _open(**fields: Any) -> Open:
    base: dict[str, Any] = dict(
        target="/socket?x=1",
        scheme="wss",
        host="h.example",
        started_at=1_700_000_000.5,
        request_headers=((b"X", b"\xff"),),
    )
    return make_open(**{**base, **fields})


class Number(int):
    pass


OPENS = [
    _open(),
    _open(conn=0, status=403, body=b"no"),
    _open(conn=10**20),
    _open(conn=True),
    _open(conn=Number(5)),
    _open(status=Number(101)),
    _open(target='/"q"\\\x00\x1b\u2028\ud800' + "日本" * 50),
    _open(host="x" * 20_000),
    _open(started_at=0.0),
    _open(started_at=7),
]
CLOSES: list[Close | None] = [
    None,
    Close(1, 0.5, Side.CLIENT, 1000),
    Close(1, 2.5, None, None, "", False),
    Close(1, 0.25, Side.SERVER, True, "\x1b bye"),  # type: ignore[arg-type]
    Close(1, 9, Side.SERVER, 4000, "int time"),
    Close(1, math.inf, Side.SERVER, 4000),
    Close(1, math.nan, Side.SERVER, 4000),
]


def _messages(n: int, seed: int) -> list[Message]:
    r = random.Random(seed)
    t = 0.0
    out = []
    for _ in range(n):
        t += r.choice([0.0, 1e-7, 0.001, 0.5, 3.0])
        side = r.choice([Side.CLIENT, Side.SERVER])
        out.append(Message(1, t, side, Opcode.TEXT, b"x" * r.choice([0, 1, 14, 3000, 70_000])))
    if n and seed % 2:  # (out of order: a negative gap)
        out.append(Message(1, 0.0, Side.CLIENT, Opcode.BINARY, b"late"))
    return out


@pytest.mark.parametrize("op", OPENS)
def test_json_text_agrees_with_the_encoder(op: Open) -> None:
    for n, close in itertools.product([0, 1, 2, 3, 17, 5000], CLOSES):
        c = ConnectionStats(op)
        for m in _messages(n, n):
            c.add(m)
        if close is not None:
            c.add(close)
        short = c.short_values()
        assert (short is None) == (n >= stats._PENDING)
        assert c.json_text(short) == spaced(c.to_json()), (op, n, close)


def test_totals_from_short_values_agree_with_the_properties() -> None:
    # _Totals.add takes a short connection's counts from its short values: what the
    # properties add up, since such a connection has flushed nothing.
    for k, (op, n, close) in enumerate(itertools.product(OPENS, [0, 1, 5, 5000], CLOSES)):
        c = ConnectionStats(op)
        for m in _messages(n, k):
            c.add(m)
        if close is not None:
            c.add(close)
        short = c.short_values()
        if short is not None:
            client, server, _ = short
            assert (len(client), len(server), sum(client), sum(server)) == (
                c.messages_client,
                c.messages_server,
                c.bytes_client,
                c.bytes_server,
            )
        totals = _Totals()
        totals.add(c, short)
        assert totals.messages == c.messages
        assert totals.bytes == c.bytes


def _spooled_records(seed: int) -> list[Any]:
    """Connections that end out of their opening order: a long one holding the spool
    back, refused ones, unclosed ones, notes after a close, strays, hostile text."""
    from wstape.core.model import Note

    r = random.Random(seed)
    records: list[Any] = []
    live: list[int] = []
    for conn in range(1, 700):
        status = 101 if r.random() < 0.9 else 403
        records.append(_open(conn=conn, status=status, target=f"/{conn}\u2028\x1b\ud800"))
        if status == 101:
            live.append(conn)
        for _ in range(r.randint(0, 3)):
            if live:
                records.append(
                    Message(r.choice(live), r.random(), Side.SERVER, Opcode.TEXT, b"\n\r")
                )
        if live and r.random() < 0.7 and (live[0] != 1 or conn > 600):
            c = live.pop(r.randrange(len(live)))
            records.append(Close(c, r.random() * 3, Side.CLIENT, 1000, "bye\n"))
            records.append(Note(c, "after the close"))
        if r.random() < 0.02:
            records.append(Message(99_999, 0.1, Side.CLIENT, Opcode.TEXT, b"stray"))
    return records


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_spooled_document_is_the_kept_one(tmp_path: Any, seed: int) -> None:
    import io
    import tempfile

    records = _spooled_records(seed)
    kept = stats.compute_stats(records)
    with tempfile.TemporaryFile(
        "w+", encoding="utf-8", errors="surrogatepass", newline="\n", dir=tmp_path
    ) as spool:
        spooled = stats.compute_stats(records, spool=spool)
        assert spooled.connections == []
        a, b = io.StringIO(), io.StringIO()
        kept.write_json(a)
        spooled.write_json(b)
        assert b.getvalue() == a.getvalue()
        assert spooled.to_json() == kept.to_json()
