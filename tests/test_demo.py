"""``wstape demo`` end to end, as a user runs it: a real process, real mitmproxy, real
sockets on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from wstape.cassettes import read_cassette
from wstape.core.model import Close, Message, Open, Side


def test_demo_records_replays_and_reports(tmp_path: Path) -> None:
    kept = tmp_path / "chat.msgpack"
    proc = subprocess.run(
        [sys.executable, "-m", "wstape", "demo", "-o", str(kept)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "received exactly the recorded server messages" in out
    assert "passed under browser" in out
    assert "REPLAY-MESSAGE-MISMATCH" in out and "BROWSER-CLOSE-CODE" in out
    assert "Traceback" not in proc.stderr

    _, records = read_cassette(kept)
    opens = [r for r in records if isinstance(r, Open)]
    assert len(opens) == 1 and opens[0].subprotocol == "chat.v1"
    messages = [r for r in records if isinstance(r, Message)]
    assert [m.side for m in messages].count(Side.CLIENT) == 4
    closes = [r for r in records if isinstance(r, Close)]
    assert closes == [Close(1, closes[0].t, Side.CLIENT, 4001, "用户主动退出登录", True)]


def test_bundled_sample_cassette_is_readable_and_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wstape", "demo", "--sample-path"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0
    path = Path(proc.stdout.strip())
    assert path.is_file()
    _, records = read_cassette(path)
    assert sum(isinstance(r, Message) for r in records) == 9
    check = subprocess.run(
        [sys.executable, "-m", "wstape", "check", str(path), "--profile", "browser"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_demo_refuses_an_unwritable_output_before_running(tmp_path: Path) -> None:
    for bad in (tmp_path / "no-such-dir" / "chat.msgpack", tmp_path):
        proc = subprocess.run(
            [sys.executable, "-m", "wstape", "demo", "-o", str(bad)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("wstape: error: --output ") and "Traceback" not in proc.stderr
        assert "recorded" not in proc.stdout  # refused before the demo ran


def test_sample_path_is_the_samples_own() -> None:
    from wstape import sample
    from wstape.cli.demo import SAMPLE_CASSETTE

    assert SAMPLE_CASSETTE == sample.SAMPLE_CASSETTE and SAMPLE_CASSETTE.exists()
