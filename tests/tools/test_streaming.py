"""The cassette tools stream: no command keeps a long connection in memory."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import pytest

from tests.cli.helpers import (
    opened,
)
from wstape.cassettes import CassetteReader, CassetteWriter, read_cassette
from wstape.core.model import Close, Message, Note, Opcode, Record, Side
from wstape.core.redaction import Policy
from wstape.interchange.har import export_har
from wstape.tools.edit import Selection, cut_cassette, repair_cassette
from wstape.tools.redact import redact_cassette
from wstape.tools.stats import compute_stats


@pytest.mark.slow
def test_commands_stream_in_bounded_memory(tmp_path: Path) -> None:
    """40 000 messages of 300 bytes (12 MB of payload): no command keeps them all."""
    src = tmp_path / "big.msgpack"
    n = 40_000
    with CassetteWriter(src, creator="t", started_at=1.0) as w:
        w.write(opened(1))
        w.write(opened(2, "/feed"))
        for i in range(n):
            side = Side.CLIENT if i % 2 else Side.SERVER
            w.write(
                Message(
                    1 + i % 2,
                    i / 100,
                    side,
                    Opcode.TEXT,
                    b'{"token": "%06d", "pad": "%s"}' % (i, b"x" * 270),
                )
            )
        w.write(Note(1, "end"))
        w.write(Close(1, n / 100, Side.CLIENT, 1000))
    limit = 6 * 1024 * 1024
    har_out = open(tmp_path / "big.har", "w", encoding="utf-8")
    jobs = {
        "stats": lambda: compute_stats(CassetteReader(src)),
        "export har": lambda: export_har(CassetteReader(src), har_out),
        "cut": lambda: cut_cassette(CassetteReader(src), tmp_path / "cut.msgpack", Selection([1])),
        "redact": lambda: redact_cassette(
            CassetteReader(src), tmp_path / "red.msgpack", Policy.build(json_keys=["token"])
        ),
        "repair": lambda: repair_cassette(
            CassetteReader(src, allow_truncated=True), tmp_path / "rep.msgpack"
        ),
    }
    for name, job in jobs.items():
        tracemalloc.start()
        try:
            job()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < limit, f"{name} peaked at {peak} bytes"
    har_out.close()
    assert len(json.loads((tmp_path / "big.har").read_text())["log"]["entries"]) == 2
    records: list[Record] = read_cassette(tmp_path / "red.msgpack")[1]
    assert b"<redacted>" in records[2].payload  # type: ignore[union-attr]
