"""The one fold over records: which connection each record belongs to."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.records import interleave, make_open, sessions
from wstape.core.connections import (
    CASSETTE,
    STRAY,
    ConnectionTracker,
    MessageRun,
    StrayKind,
    fold_connections,
    summarize_connections,
)
from wstape.core.model import (
    Close,
    ConnectionSummary,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
)


def opened(conn: int, status: int = 101) -> Open:
    return make_open(conn, f"/{conn}", status=status, started_at=10.0)


def msg(conn: int, t: float = 0.1) -> Message:
    return Message(conn, t, Side.CLIENT, Opcode.TEXT, b"x")


def closed(conn: int, t: float = 1.0) -> Close:
    return Close(conn, t, Side.CLIENT, 1000)


def routes(records: list[Record]) -> tuple[list[int], ConnectionTracker]:
    tracker = ConnectionTracker()
    return [tracker.route(r) for r in records], tracker


def test_records_follow_their_connection_until_it_closes() -> None:
    got, tracker = routes(
        [
            Note(None, "about the cassette"),
            opened(7),
            opened(3),
            msg(3),
            msg(7),
            closed(7),
            Note(7, "closed by the recorder"),  # a note after the close still belongs
            msg(3),
            closed(3),
        ]
    )
    assert got == [CASSETTE, 0, 1, 1, 0, 0, 0, 1, 1]
    assert tracker.strays.count == 0 and tracker.unclosed() == []


def test_one_policy_for_strays() -> None:
    got, tracker = routes(
        [
            msg(9),  # never opened
            opened(1),
            closed(1),
            msg(1),  # after its close
            closed(1),  # a second close
            opened(2, status=403),
            Note(2, "refused"),  # notes of a refused upgrade belong to it
            msg(2),  # nothing follows a refusal
            Note(5, "who?"),  # a note of an id never opened
        ]
    )
    assert got == [STRAY, 0, 0, STRAY, STRAY, 1, 1, STRAY, STRAY]
    strays = tracker.strays
    assert strays.count == 5
    assert strays.by_kind == {
        StrayKind.ORPHAN: 2,
        StrayKind.AFTER_CLOSE: 2,
        StrayKind.REFUSED: 1,
    }
    assert strays.first == (1, "a message of connection 9", StrayKind.ORPHAN)
    assert strays.describe() == (
        "5 records belong to no open connection and are left out "
        "(first: record 1, a message of connection 9 which was never opened)"
    )


def test_a_reused_id_owns_the_records_up_to_its_close() -> None:
    got, tracker = routes(
        [
            opened(1),  # slot 0
            msg(1),
            opened(1),  # slot 1: the same id again (two recorders appended at once)
            msg(1),
            closed(1),  # ends slot 1
            msg(1),  # slot 0 is still open: it owns them again
            closed(1),
            msg(1),  # both closed
        ]
    )
    assert got == [0, 0, 1, 1, 1, 0, 0, STRAY]
    assert tracker.reused == [1] and tracker.ids == [1, 1]
    assert tracker.strays.by_kind == {StrayKind.AFTER_CLOSE: 1}


def test_unclosed_connections_in_opening_order() -> None:
    _, tracker = routes([opened(5), opened(2), opened(9, status=404), opened(4), closed(4)])
    assert tracker.unclosed() == [0, 1]
    assert tracker.is_open(0) and not tracker.is_open(2) and not tracker.is_open(3)


@given(groups=sessions(max_conns=5), seed=st.integers(0, 1000))
@settings(max_examples=60, deadline=None)
def test_fold_gives_back_each_connection(groups: list[list[Record]], seed: int) -> None:
    records = [*groups[0], *interleave(groups[1:], seed)]
    folded = fold_connections(records, lambda o: [o], lambda state, r: state.append(r))
    in_opening_order = sorted(groups[1:], key=lambda g: records.index(g[0]))
    assert folded.connections == in_opening_order
    assert folded.notes == groups[0]
    assert folded.strays.count == 0 and folded.reused == []


def test_summaries_count_only_what_belongs() -> None:
    folded = summarize_connections(
        [opened(1), msg(1, 0.5), closed(1, 2.0), msg(1, 9.0), replace(msg(1), side=Side.SERVER)]
    )
    (s,) = folded.connections
    assert (s.messages_client, s.messages_server, s.duration) == (1, 0, 2.0)
    assert folded.strays.count == 2


def _figures(s: ConnectionSummary) -> tuple[object, ...]:
    return (
        s.open,
        s.messages_client,
        s.messages_server,
        s.bytes_client,
        s.bytes_server,
        s.last_t,
        s.close,
    )


@given(groups=sessions(max_conns=6), seed=st.integers(0, 1000), stray=st.booleans())
@settings(max_examples=60, deadline=None)
def test_finished_summaries_are_the_summaries_once_each_in_opening_order(
    groups: list[list[Record]], seed: int, stray: bool
) -> None:
    records = [*groups[0], *interleave(groups[1:], seed)]
    if stray:
        records += [msg(99), opened(98, status=404), Note(98, "refused")]
    whole = summarize_connections(records)
    finished: list[ConnectionSummary] = []

    def finish(s: ConnectionSummary) -> int:
        finished.append(s)
        return len(finished) - 1

    kept = summarize_connections(records, finish)
    assert sorted(kept.connections) == list(range(len(whole.connections)))  # once each
    in_place = [finished[i] for i in kept.connections]
    assert [_figures(s) for s in in_place] == [_figures(s) for s in whole.connections]
    assert kept.strays == whole.strays and kept.notes == whole.notes


def test_a_connection_is_finished_at_its_close_and_a_refusal_at_once() -> None:
    seen: list[int] = []
    records: list[Record] = [opened(1), opened(2, status=403), msg(1), closed(1), opened(3)]

    def finish(s: ConnectionSummary) -> str:
        seen.append(s.open.conn)
        return f"row {s.open.conn}"

    folded = summarize_connections(records, finish)
    assert folded.connections == ["row 1", "row 2", "row 3"]
    assert seen == [2, 1, 3]  # the refusal, the close, then the end


def _as_runs(records: list[Record], cuts: list[int]) -> list[object]:
    """``records`` as the reader's iter_runs hands them out: messages as their fields, and
    stretches of messages (cut at ``cuts``) as MessageRuns."""
    kind = {
        (Side.CLIENT, Opcode.TEXT): 0,
        (Side.CLIENT, Opcode.BINARY): 1,
        (Side.SERVER, Opcode.TEXT): 2,
        (Side.SERVER, Opcode.BINARY): 3,
    }
    out: list[object] = []
    stretch: list[Message] = []

    def flush() -> None:
        if stretch:
            out.append(
                MessageRun(
                    tuple(m.conn for m in stretch),
                    tuple(m.t for m in stretch),
                    tuple(kind[m.side, m.opcode] for m in stretch),
                    tuple(m.payload for m in stretch),
                )
            )
            stretch.clear()

    for i, r in enumerate(records):
        if i in cuts:
            flush()
        if isinstance(r, Message):
            stretch.append(r)
        else:
            flush()
            out.append(r)
    flush()
    return out


def _fields(records: list[Record]) -> list[object]:
    return [
        (r.conn, r.t, r.side, r.opcode, r.payload) if isinstance(r, Message) else r for r in records
    ]


@given(
    groups=sessions(max_conns=6),
    seed=st.integers(0, 1000),
    stray=st.booleans(),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    finish=st.booleans(),
)
@settings(max_examples=100, deadline=None)
def test_summaries_of_runs_are_the_summaries_of_their_messages(
    groups: list[list[Record]], seed: int, stray: bool, cuts: list[int], finish: bool
) -> None:
    # ls takes the reader's iter_runs: a run of one live connection counted in one go
    # (add_run_to_summary), any other (of several connections, of a closed one) message
    # by message; the same summaries, strays (first position too) and notes either way.
    records = [*groups[0], *interleave(groups[1:], seed)]
    if stray:
        records[len(records) // 2 : len(records) // 2] = [msg(99), msg(99, 0.2)]
        records += [opened(98, status=404), msg(98), Note(98, "refused")]
    done = (lambda s: _figures(s)) if finish else None
    by_message = summarize_connections(_fields(records), done)  # type: ignore[arg-type]
    by_run = summarize_connections(_as_runs(records, cuts), done)  # type: ignore[arg-type]
    if not finish:
        by_message.connections = [_figures(s) for s in by_message.connections]
        by_run.connections = [_figures(s) for s in by_run.connections]
    assert by_run.connections == by_message.connections
    assert by_run.strays == by_message.strays and by_run.notes == by_message.notes
