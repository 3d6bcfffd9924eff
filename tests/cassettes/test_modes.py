"""Permission bits of files made from cassettes (wstape.cassettes.modes)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from wstape.cassettes.modes import current_umask, derived_mode, opener


@pytest.fixture
def umask_027() -> Iterator[None]:
    before = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(before)


def test_current_umask_reads_without_changing_it(umask_027: None) -> None:
    assert current_umask() == 0o027
    assert current_umask() == 0o027


def test_derived_mode_is_the_umask_less_what_the_sources_lack(
    tmp_path: Path, umask_027: None
) -> None:
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.write_bytes(b"")
    private.write_bytes(b"")
    shared.chmod(0o666)
    private.chmod(0o600)
    assert derived_mode() == derived_mode(None) == 0o640
    assert derived_mode(shared) == 0o640
    assert derived_mode(private) == 0o600
    assert derived_mode(shared, private) == 0o600
    assert derived_mode(tmp_path / "missing") == 0o640


def test_opener_sets_the_mode_on_a_file_already_there(tmp_path: Path, umask_027: None) -> None:
    private, out = tmp_path / "private", tmp_path / "out"
    private.write_bytes(b"")
    private.chmod(0o600)
    out.write_bytes(b"old")
    out.chmod(0o644)
    with open(out, "w", encoding="utf-8", opener=opener(private)) as f:
        f.write("new")
    assert out.stat().st_mode & 0o777 == 0o600 and out.read_text() == "new"
