"""Several writers appending to one cassette at once (two ``wstape record --append``,
pytest-xdist workers in new_episodes mode): ids unique, every record present, one header.
Real processes here; the recorder and plugin tests do it through wstape itself."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path
from typing import Any

import pytest

from tests.cassettes.test_reader_writer import sample_open
from wstape.cassettes import (
    CassetteBusy,
    CassetteReader,
    CassetteWriter,
    UnendedAppend,
    WriteMode,
    read_cassette,
)
from wstape.core.model import Close, Message, Opcode, Open, Side

CONNS = 60
MESSAGES = 5


def _append(path: str, worker: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(30)  # every process opens the missing file at the same moment
    with CassetteWriter(path, mode=WriteMode.APPEND) as w:
        for i in range(CONNS):
            with w.reserve_conn() as conn:
                w.write(sample_open(conn))
            for m in range(MESSAGES):
                payload = f"w{worker} c{i} m{m}".encode()
                w.write(Message(conn, m / 10, Side.CLIENT, Opcode.TEXT, payload))
            w.write(Close(conn, 1.0, Side.CLIENT, 1000, ""))


@pytest.mark.parametrize("workers", [2, 4])
def test_processes_appending_at_once_keep_ids_unique_and_every_record(
    tmp_path: Path, workers: int
) -> None:
    path = tmp_path / "shared.msgpack"
    # (spawn: forking a process that has threads, as a pytest-xdist worker has, is
    # deprecated from Python 3.12)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_append, args=(str(path), n, barrier)) for n in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    _, records = read_cassette(path)  # refuses a reused id and a second header
    opens = [r for r in records if isinstance(r, Open)]
    assert sorted(r.conn for r in opens) == list(range(1, workers * CONNS + 1))
    texts = {r.payload for r in records if isinstance(r, Message)}
    assert len(texts) == workers * CONNS * MESSAGES  # every message, none torn
    by_conn: dict[int, list[str]] = {}
    for r in records:
        if isinstance(r, Message):
            by_conn.setdefault(r.conn, []).append(r.payload.decode())
    for conn, texts_of in by_conn.items():  # each connection's messages are its writer's
        prefix = texts_of[0].rsplit(" ", 1)[0]
        assert texts_of == [f"{prefix} m{m}" for m in range(MESSAGES)], conn
    assert sum(isinstance(r, Close) for r in records) == workers * CONNS
    assert CassetteReader(path).truncated_at is None


def test_a_writer_learns_the_ids_another_took(tmp_path: Path) -> None:
    path = tmp_path / "two.msgpack"
    a = CassetteWriter(path, mode=WriteMode.APPEND)
    b = CassetteWriter(path, mode=WriteMode.APPEND)  # the header is written once
    try:
        seen = []
        for writer in (a, b, b, a, a, b):
            with writer.reserve_conn() as conn:
                writer.write(sample_open(conn))
            seen.append(conn)
        assert seen == [1, 2, 3, 4, 5, 6]
        assert b.new_conn_id() == 7
        b.write(sample_open(7))
        assert a.new_conn_id() == 8  # new_conn_id catches up with what others wrote too
    finally:
        a.close()
        b.close()
    _, records = read_cassette(path)
    assert [r.conn for r in records] == [1, 2, 3, 4, 5, 6, 7]


def _hold_open(path: str, ready: multiprocessing.synchronize.Event, done: Any) -> None:
    with CassetteWriter(path, mode=WriteMode.APPEND) as w:
        with w.reserve_conn() as conn:
            w.write(sample_open(conn))
        w.write(Message(conn, 0.1, Side.CLIENT, Opcode.TEXT, b"still recording"))
        ready.set()
        done.wait(30)
        w.write(Close(conn, 1.0, Side.CLIENT, 1000, ""))


def test_overwriting_a_cassette_another_process_is_writing_is_refused(tmp_path: Path) -> None:
    # QA: `record --overwrite` truncated a cassette another recorder was still writing; both
    # said they had recorded, and the file was unreadable. Now the second one is refused,
    # and the first one's recording is whole.
    path = tmp_path / "busy.msgpack"
    ctx = multiprocessing.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_open, args=(str(path), ready, done))
    proc.start()
    try:
        assert ready.wait(30)
        with pytest.raises(CassetteBusy, match="another recorder is writing this cassette"):
            CassetteWriter(path, mode=WriteMode.OVERWRITE)
        # Appending beside it is still fine, though the file has not ended yet.
        with CassetteWriter(path, mode=WriteMode.APPEND) as w:
            w.write(sample_open(w.new_conn_id()))
    finally:
        done.set()
        proc.join(30)
    assert proc.exitcode == 0
    _, records = read_cassette(path)
    assert [type(r).__name__ for r in records] == ["Open", "Message", "Open", "Close"]
    with CassetteWriter(path, mode=WriteMode.OVERWRITE) as w:  # nobody writes it now
        w.write(sample_open(1))
    assert len(read_cassette(path)[1]) == 1


def test_a_writer_of_this_process_counts_too(tmp_path: Path) -> None:
    path = tmp_path / "mine.msgpack"
    with CassetteWriter(path, mode=WriteMode.CREATE) as first:
        first.write(sample_open(1))
        with pytest.raises(CassetteBusy):
            CassetteWriter(path, mode=WriteMode.OVERWRITE)
    assert len(read_cassette(path)[1]) == 1


def test_appending_to_a_cassette_whose_recorder_was_killed_is_refused(tmp_path: Path) -> None:
    # QA: `record --append` onto what a `kill -9`ed recorder left exited 0, and the result
    # could be neither checked nor replayed.
    path = tmp_path / "killed.msgpack"
    w = CassetteWriter(path, mode=WriteMode.CREATE)
    w.write(sample_open(1))
    w.abort()  # (as a killed recorder leaves it: no end record)
    with pytest.raises(UnendedAppend, match=r"run `wstape repair .*killed.msgpack -o FIXED"):
        CassetteWriter(path, mode=WriteMode.APPEND)
    assert len(list(CassetteReader(path, allow_truncated=True))) == 1
