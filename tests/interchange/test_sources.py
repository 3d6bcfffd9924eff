"""Telling import formats apart, and the bounded byte stream the HAR parser reads."""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest

from tests.cli.helpers import CHROME, V1
from wstape.interchange.errors import InterchangeError
from wstape.interchange.sources import (
    ImportFormat,
    JsonSource,
    detect_format,
    sniff_file,
    sniff_format,
)

JSONL_LINE = b'{"type":"connection","conn":1,"url":"ws://h/"}\n'


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'{"log": {"version": "1.2"', ImportFormat.HAR),
        (b'\xef\xbb\xbf\n  {\n "log" :', ImportFormat.HAR),
        (b'{"_comment": "x", "log": {}}', ImportFormat.HAR),
        (zlib.compress(b'{"log": {}}'), ImportFormat.HAR),
        (JSONL_LINE, ImportFormat.JSONL),
        (b'{"conn":1,"type":"message","t":0}\n{"type":"close"}', ImportFormat.JSONL),
        (b'{"type":"header","creator":"x"}\n', ImportFormat.JSONL),
        (b"1234:5:hello,", ImportFormat.MITM),
        (b"", None),
        (b"\x00garbage", None),
        (b"hello world", None),
    ],
)
def test_sniff_format(head: bytes, expected: ImportFormat | None) -> None:
    assert sniff_format(head) is expected


def test_sniff_real_files(tmp_path: Path) -> None:
    assert sniff_file(CHROME) is ImportFormat.HAR
    assert sniff_file(V1) is None  # a cassette is not an import source
    assert sniff_file(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.jsonl", b"", ImportFormat.JSONL),
        ("x.mitm", b"", ImportFormat.MITM),
        ("x.har", b"garbage", ImportFormat.HAR),
        ("x.dump", b"garbage", ImportFormat.MITM),
        ("x.bin", JSONL_LINE, ImportFormat.JSONL),
    ],
)
def test_detect_by_content_then_name(
    tmp_path: Path, name: str, content: bytes, expected: ImportFormat
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert detect_format(path) is expected


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.bin", b"", "empty file"),
        ("x.bin", b"\x00\x01", "neither"),
        ("x.har", V1.read_bytes(), "already a wstape cassette"),
    ],
)
def test_detect_refuses(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InterchangeError, match=message):
        detect_format(path)


def read_all(source: JsonSource, size: int = 1000) -> bytes:
    out = b""
    while chunk := source.read(size):
        out += chunk
    return out


def test_plain_and_inflated_read_the_same() -> None:
    doc = json.dumps({"log": {"entries": [{"a": "b" * 500}] * 20}}).encode()
    plain = JsonSource(io.BytesIO(b"\xef\xbb\xbf" + doc), "x.har")
    assert read_all(plain) == doc and not plain.compressed
    inflated = JsonSource(io.BytesIO(zlib.compress(doc)), "x.zhar")
    assert read_all(inflated, 7) == doc and inflated.compressed
    assert inflated.position == len(doc)


def test_inflating_stops_at_the_limit() -> None:
    bomb = zlib.compress(b'{"log": {"entries": [' + b" " * 10_000_000, 9)
    assert len(bomb) < 20_000
    source = JsonSource(io.BytesIO(bomb), "bomb.zhar", max_inflated=1_000_000)
    with pytest.raises(InterchangeError, match="inflates to more than 1000000 bytes"):
        read_all(source, 65536)
    assert source.position < 1_200_000


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (zlib.compress(b'{"log": 1}')[:-3], "cut short"),
        (zlib.compress(b'{"log": 1}') + b"junk", "after the end"),
        (b"\x78\x9c\x00\x00\x00junk", "bad zlib data"),
    ],
)
def test_broken_zlib(data: bytes, message: str) -> None:
    with pytest.raises(InterchangeError, match=message):
        read_all(JsonSource(io.BytesIO(data), "x.zhar"))


def test_a_run_without_a_quote_is_bounded() -> None:
    long_string = b'{"log": {"entries": ["' + b"A" * 5000 + b'"]}}'
    with pytest.raises(InterchangeError, match="longer than"):
        read_all(JsonSource(io.BytesIO(long_string), "x.har", max_string=4096), 100)
    padding = b'{"log": ' + b" " * 5000 + b"{}}"
    with pytest.raises(InterchangeError, match="near byte"):
        read_all(JsonSource(io.BytesIO(padding), "x.har", max_string=4096), 4096)
    # escaped quotes do not end a string, even across a chunk boundary
    escaped = b'{"a": "' + b'\\"' * 3000 + b'"}'
    with pytest.raises(InterchangeError, match="longer than"):
        read_all(JsonSource(io.BytesIO(escaped), "x.har", max_string=4096), 4095)
    fine = b'{"a": ' + b'"xyz", ' * 2000 + b'"b"}'
    assert read_all(JsonSource(io.BytesIO(fine), "x.har", max_string=64), 10) == fine
