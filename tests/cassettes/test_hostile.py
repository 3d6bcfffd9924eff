"""The reader against hostile input: only ever one CassetteError, one line, bounded memory.

A bounded run of what ``bench/fuzz_reader.py`` does at length: the hand-made corpus of
``tests/helpers/hostile.py`` (the small files), seeded mutations of a valid cassette, and
every truncation of it.
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hostile
from wstape.cassettes import CassetteError, CassetteReader, TruncatedCassette, UnendedCassette
from wstape.cassettes import reader as reader_module
from wstape.core.connections import MessageRun, summarize_connections
from wstape.tools.edit import repair_cassette
from wstape.tools.stats import compute_stats

SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SMALL = [(name, data) for name, data in hostile.hand_made(big=False) if len(data) < 256 * 1024]


def read_all(path: Path, **options: bool) -> CassetteReader | CassetteError:
    """Read every record; the error if there is one (anything else fails the test)."""
    try:
        reader = CassetteReader(path, **options)
        for _ in reader:
            pass
        return reader
    except CassetteError as e:
        return e


def one_line(e: CassetteError, path: Path, name: str = "") -> None:
    text = str(e)
    assert "\n" not in text and text.startswith(str(path)), (name, text)
    assert len(text) < 400, (name, text)
    assert not text.endswith(": ") and "()" not in text, (name, text)  # always a reason


def test_the_hand_made_corpus_is_about_a_thousand_files() -> None:
    assert 900 < len(SMALL) < 2000


def test_every_small_hand_made_file_gives_one_clean_line(tmp_path: Path) -> None:
    path = tmp_path / "h.msgpack"
    refused = 0
    for name, data in SMALL:
        path.write_bytes(data)
        got = read_all(path, allow_truncated=True)
        if isinstance(got, CassetteError):
            refused += 1
            one_line(got, path, name)
        else:
            # What the reader lets through, the fold and the tools take without a fuss.
            summarize_connections(got)
            compute_stats(got).to_json()
    assert refused > 800


@pytest.mark.parametrize("depth", [990, 1000, 1023, 1024, 100_000])
def test_deep_nesting_is_named(tmp_path: Path, depth: int) -> None:
    for body in (hostile.nested_arrays(depth), hostile.nested_maps(depth)):
        path = tmp_path / "deep.msgpack"
        path.write_bytes(hostile.cassette(hostile.open_(1), body))
        got = read_all(path)
        assert isinstance(got, CassetteError)
        one_line(got, path)
        assert "record 2" in str(got)
    path.write_bytes(
        hostile.cassette(
            hostile.open_(1),
            hostile.record_with({"t": hostile.nested_arrays(depth)}, hostile.message()),
        )
    )
    got = read_all(path)
    assert isinstance(got, CassetteError) and "nested more than 3 deep" in str(got)


def test_an_array_bomb_costs_no_memory(tmp_path: Path) -> None:
    # 4 MB of empty arrays: msgpack alone would build 4 million lists (about 300 MiB).
    path = tmp_path / "bomb.msgpack"
    path.write_bytes(hostile.cassette(hostile.open_(1), hostile.empty_array_bomb(4_000_000)))
    tracemalloc.start()
    try:
        got = read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(got, CassetteError) and "record 2" in str(got)
    assert peak < 32 * 1024 * 1024


def test_a_wrong_typed_big_value_is_refused_before_it_is_built(tmp_path: Path) -> None:
    path = tmp_path / "big.msgpack"
    path.write_bytes(hostile.cassette(hostile.open_(1), hostile.message(1, data="z" * 8_000_000)))
    tracemalloc.start()
    try:
        got = read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(got, CassetteError) and "a string claims 8000000 bytes" in str(got)
    assert peak < 4 * 1024 * 1024


HEADER = len(hostile.pack(hostile.header()))


@given(seed=st.integers(0, 2**32 - 1), keep_header=st.booleans())
@SETTINGS
def test_mutations_only_raise_cassette_error(tmp_path: Path, seed: int, keep_header: bool) -> None:
    path = tmp_path / "m.msgpack"
    sample = hostile.sample() if seed % 2 else hostile.sample_v2()
    if keep_header:  # most mutations then reach the records
        body = hostile.mutate(sample[HEADER:], random.Random(seed))
        path.write_bytes(sample[:HEADER] + body)
    else:
        path.write_bytes(hostile.mutate(sample, random.Random(seed)))
    got = read_all(path, allow_truncated=True, allow_reused_ids=True)
    if isinstance(got, CassetteError):
        one_line(got, path)
        return
    summarize_connections(got)
    compute_stats(got).to_json()
    result = repair_cassette(got, tmp_path / "fixed.msgpack")
    fixed = read_all(tmp_path / "fixed.msgpack")
    assert isinstance(fixed, CassetteReader), fixed  # a repaired cassette always reads
    assert result.records >= 0


def test_every_truncation_is_reported_as_one(tmp_path: Path) -> None:
    sample = hostile.sample()
    unpacker = msgpack.Unpacker()
    unpacker.feed(sample)
    boundaries = set()
    while unpacker.tell() < len(sample):
        unpacker.skip()
        boundaries.add(unpacker.tell())
    header = min(boundaries)
    path = tmp_path / "t.msgpack"
    for n in range(len(sample)):
        path.write_bytes(sample[:n])
        got = read_all(path)
        if n in boundaries:  # cut between records: a shorter, whole cassette
            assert isinstance(got, CassetteReader), got
            continue
        assert isinstance(got, CassetteError)
        one_line(got, path)
        if n > header:  # past the header: truncated, and everything before it readable
            assert isinstance(got, TruncatedCassette), got
            kept = read_all(path, allow_truncated=True)
            assert isinstance(kept, CassetteReader) and kept.truncated_at == got.offset
            if n % 9 == 0:
                repair_cassette(kept, tmp_path / "fixed.msgpack")
                assert isinstance(read_all(tmp_path / "fixed.msgpack"), CassetteReader)


def test_every_truncation_of_a_v2_cassette_is_reported_even_at_a_record_boundary(
    tmp_path: Path,
) -> None:
    sample = hostile.sample_v2()
    unpacker = msgpack.Unpacker()
    unpacker.feed(sample)
    boundaries = set()
    while unpacker.tell() < len(sample):
        unpacker.skip()
        boundaries.add(unpacker.tell())
    header = min(boundaries)
    path = tmp_path / "t.msgpack"
    assert isinstance(read_all(path_with(path, sample)), CassetteReader)
    for n in range(len(sample)):
        got = read_all(path_with(path, sample[:n]))
        assert isinstance(got, CassetteError), n
        one_line(got, path)
        if n >= header:
            assert isinstance(got, TruncatedCassette), got
            assert isinstance(got, UnendedCassette) == (n in boundaries), (n, got)
            kept = read_all(path, allow_truncated=True)
            assert isinstance(kept, CassetteReader) and kept.truncated_at == got.offset
            if n % 9 == 0 or n in boundaries:
                repair_cassette(kept, tmp_path / "fixed.msgpack")
                assert isinstance(read_all(tmp_path / "fixed.msgpack"), CassetteReader)


def path_with(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_hostile_listing_is_never_used_for_a_file_a_pass_refuses(tmp_path: Path) -> None:
    path = tmp_path / "v3.msgpack"
    cases = [(n, d) for n, d in SMALL if n.startswith("v3 ")]
    assert len(cases) > 30
    used = 0
    for name, data in cases:
        path.write_bytes(data)
        listed = CassetteReader(path).listed()  # (never raises)
        got = read_all(path)
        if isinstance(got, CassetteError):
            one_line(got, path, name)
            assert listed is None, name
        elif listed is not None:
            used += 1
            assert {s.open.conn for s in listed} <= {1, 2, 3}, name
    # The sample's own listing, and one that gives connection 3's records to the notes
    # about the whole cassette (what only a pass sees: `wstape check` reports it); one
    # with figures that do not fit the file ("bytes 2**53") is no longer used.
    assert used >= 2


def _long_v2() -> bytes:
    """A version-2 cassette whose connection 1 has long stretches of messages only (what the
    run pass hands out as MessageRuns), with records of other kinds between them."""
    records: list[Any] = [hostile.open_(1), hostile.open_(2, target="/feed")]
    for k in range(900):
        records.append(hostile.message_v2(1, k * 0.01, k % 4, b"m" * (k % 50)))
        if k % 300 == 299:
            records.append(hostile.note(1, text="between"))
            records.append(hostile.message_v2(2, k * 0.01, 1, bytes(range(40))))
    records += [hostile.close(2, 9.5), hostile.close(1, 10.0)]
    return hostile.cassette_v2(*records, hostile.end_v2(len(records), [[1, 902], [2, 5]]))


def _passes(path: Path) -> tuple[list[object], int]:
    """What each fields pass gives: its records (a run's messages one by one) and where it
    was cut, or its error's text; and how many runs the run pass handed out."""
    got: list[object] = []
    count = 0
    for runs in (False, True):
        try:
            reader = CassetteReader(path, allow_truncated=True, allow_reused_ids=True)
            items: list[object] = []
            for item in reader.iter_runs() if runs else reader.iter_fields():
                if isinstance(item, MessageRun):
                    count += 1
                    items.extend(item.fields())
                else:
                    items.append(item)
            got.append((items, reader.truncated_at))
        except CassetteError as e:
            got.append(str(e))
    return got, count


def test_a_long_stretch_of_messages_comes_as_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "FEED", 1024)  # (chunks of messages only)
    (fields, runs), count = _passes(path_with(tmp_path / "c.msgpack", _long_v2()))
    assert runs == fields and count > 10


@given(seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_the_run_pass_refuses_and_cuts_as_the_record_pass_does(tmp_path: Path, seed: int) -> None:
    # A mutated cassette of long message stretches: the run pass gives the same records,
    # the same cut and the same error (to the byte offset) as a record at a time.
    sample = _long_v2()
    body = hostile.mutate(sample[HEADER:], random.Random(seed))
    path = path_with(tmp_path / "m.msgpack", sample[:HEADER] + body)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(reader_module, "FEED", 1024)
        (fields, runs), _ = _passes(path)
    assert runs == fields


def test_every_truncation_of_long_runs_cuts_where_the_record_pass_cuts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader_module, "FEED", 1024)
    sample = _long_v2()
    path = tmp_path / "t.msgpack"
    for n in range(HEADER, len(sample), 97):
        (fields, runs), _ = _passes(path_with(path, sample[:n]))
        assert runs == fields, n
