"""The check of a record's bytes before msgpack builds it."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hostile
from tests.helpers.records import records
from wstape.cassettes import v2
from wstape.cassettes.scan import NotAMap, RecordScanner, RecordTruncated, ShapeError
from wstape.cassettes.schema import MAX_ITEMS, MAX_TOKENS, record_to_dict
from wstape.core.model import Message, Record

SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def scan(
    tmp_path: Path, data: bytes, start: int = 0, *, window: int = 4096, version: int = 2
) -> int:
    path = tmp_path / "s.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        return RecordScanner(fd, len(data), window=window, version=version).scan(start)
    finally:
        os.close(fd)


def ends(tmp_path: Path, data: bytes, window: int) -> list[int]:
    """Every record boundary the scanner finds, from the start."""
    path = tmp_path / "s.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        scanner = RecordScanner(fd, len(data), window=window)
        out, pos = [], 0
        while pos < len(data):
            pos = scanner.scan(pos)
            out.append(pos)
        return out
    finally:
        os.close(fd)


@given(recs=st.lists(records, min_size=1, max_size=12), window=st.sampled_from([16, 97, 4096]))
@SETTINGS
def test_record_boundaries_are_msgpacks(tmp_path: Path, recs: list[Record], window: int) -> None:
    # Whatever the window (records straddle it), the scanner ends each record where
    # msgpack does, and the fast path for messages agrees with the general one; v1 maps
    # and v2 arrays alike.
    data = b"".join(
        msgpack.packb(
            v2.message_to_array(r) if isinstance(r, Message) and i % 2 else record_to_dict(r),
            use_bin_type=True,
        )
        for i, r in enumerate(recs)
    )
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    expected = []
    for _ in recs:
        unpacker.skip()
        expected.append(unpacker.tell())
    assert ends(tmp_path, data, window) == expected


@pytest.mark.parametrize(
    ("version", "record"),
    [
        (1, hostile.message(3, data=b"x" * 300)),
        (2, [3, 0.5, 1, b"x" * 300]),
        (2, [300, 0.5, 3, b"x" * 70_000]),
    ],
)
def test_fast_and_general_paths_agree(tmp_path: Path, version: int, record: object) -> None:
    data = hostile.pack(record)
    path = tmp_path / "m.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        scanner = RecordScanner(fd, len(data), version=version)
        assert scanner._message.match(data) is not None
        assert scanner.scan(0) == scanner._scan_any(0) == len(data)
        if version == 2:
            items = scanner.fields(0)
            assert [start == at for start, at, _ in items] == [True] * 4
            assert items[-1][2] == len(data)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (hostile.nested_arrays(1000), "an array is a message of 4 items, not 1"),
        (hostile.pack([1, 2, 3, 4, 5]), "an array is a message of 4 items, not 5"),
        (b"\x94\x01\x00\x00" + hostile.nested_arrays(3), "nested more than 3 deep"),
        (b"\x94\x01\x00\x00\xd9\xff" + b"x" * 255, ""),  # (a long string item passes the scan)
        (b"\x94\x01\x00\x00\xdb\x00\x20\x00\x00", "a string claims 2097152 bytes"),
        (b"\x94\x01\x00\x00\xc6\xff\xff\xff\xff", "claims 4294967295 bytes"),
        (b"\x94\xc6\x00\x20\x00\x00", "a binary value claims 2097152 bytes"),  # not data
        (b"\xc3", "must be a map \\(or, for a message, an array\\), not a boolean"),
        (b"\x81\xa1a" + hostile.nested_arrays(3), "nested more than 3 deep"),
        (hostile.nested_maps(100_000), "nested more than 3 deep"),
        (b"\x81\xa4data\xc6\xff\xff\xff\xff", "claims 4294967295 bytes"),
        (b"\x81\xa4host\xc6\x00\x20\x00\x00", "claims 2097152 bytes"),  # only data/body are big
        (b"\x81\xa4type\xdb\xff\xff\xff\xff", "a string claims 4294967295 bytes"),
        (b"\x81\xa1a\xdd\x00\x01\x00\x00", f"at most {MAX_ITEMS}"),
        (b"\xdf\x00\x00\x00\x41", "at most 64"),
        (b"\x81\xa1a" + hostile.pack(msgpack.Timestamp(1, 0)), "(a msgpack timestamp)"),
        (hostile.pack(msgpack.ExtType(42, b"x")), "extension type 42"),
        (b"\x81\xa1a\xc1", "0xc1"),
        (b"\x81\x01\x02", "a map key must be a string, not an integer"),
        (b"\x81\xa1a\x81\x91\x00\x01", "a map key must be a string, not an array"),
    ],
)
def test_shapes_no_record_has(tmp_path: Path, data: bytes, needle: str) -> None:
    if not needle:
        assert scan(tmp_path, data) == len(data)
        return
    if "\\(" not in needle:
        needle = needle.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ShapeError, match=needle):
        scan(tmp_path, data)


def test_a_record_is_a_map_in_v1_and_a_map_or_message_array_in_v2(tmp_path: Path) -> None:
    with pytest.raises(NotAMap, match="must be a map, not an array"):
        scan(tmp_path, hostile.pack([1, 0.5, 0, b""]), version=1)
    assert scan(tmp_path, hostile.pack([1, 0.5, 0, b""]), version=2) == 14
    with pytest.raises(NotAMap):
        scan(tmp_path, hostile.pack("text"), version=2)


def test_too_many_values(tmp_path: Path) -> None:
    pairs = [[b"k", b"v"]] * MAX_ITEMS
    record = {"a": pairs, "b": pairs, "c": pairs, "d": pairs}
    assert 4 * 3 * MAX_ITEMS > MAX_TOKENS
    with pytest.raises(ShapeError, match=f"more than {MAX_TOKENS} values"):
        scan(tmp_path, hostile.pack(record))


@pytest.mark.parametrize("cut", [1, 2, 5, 20, 40])
def test_a_cut_record_is_truncated_not_corrupt(tmp_path: Path, cut: int) -> None:
    data = hostile.pack(hostile.open_(1))
    with pytest.raises(RecordTruncated):
        scan(tmp_path, data[:-cut])


def test_a_length_past_the_cap_is_corrupt_even_at_the_end_of_the_file(tmp_path: Path) -> None:
    # A recorder killed mid-write leaves a length it was about to honour; no recorder
    # writes a 4 GiB payload, so the file is corrupt, not cut short.
    whole = hostile.pack(hostile.message(1))
    head = whole[: whole.rindex(b"\xa4data") + 5]
    with pytest.raises(ShapeError, match="4294967295"):
        scan(tmp_path, head + b"\xc6\xff\xff\xff\xff")
    with pytest.raises(RecordTruncated):
        scan(tmp_path, head + b"\xc6\x00\x00\x10\x00")
