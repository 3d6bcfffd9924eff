"""Start-up: a command loads only what it needs (``wstape ls`` never imports mitmproxy,
the replay server or the HAR code); the figures themselves are in bench/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wstape.cli.demo import SAMPLE_CASSETTE

SAMPLE = str(SAMPLE_CASSETTE)
NEVER = ("mitmproxy", "wstape.addons", "pydantic")


SCRIPT = """
import atexit, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
sys.argv = ["wstape", *sys.argv[2:]]
from wstape.cli.app import main
main()
"""


def imported(tmp: Path, *args: str) -> set[str]:
    """The modules a real ``wstape ARGS`` process had loaded when it exited."""
    listing = tmp / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(listing), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return set(listing.read_text().split())


@pytest.mark.parametrize(
    "args",
    [
        ["ls", SAMPLE],
        ["show", SAMPLE],
        ["stats", SAMPLE],
        ["check", SAMPLE],
        ["export", SAMPLE],
        ["diff", SAMPLE, SAMPLE],
        ["rules"],
    ],
    ids=lambda a: a[0],
)
def test_offline_commands_import_no_proxy_and_no_server(tmp_path: Path, args: list[str]) -> None:
    modules = imported(tmp_path, *args)
    assert "wstape.cli.inspect" in modules or args[0] not in ("ls", "show", "stats")
    for prefix in NEVER:
        assert not any(m == prefix or m.startswith(prefix + ".") for m in modules), prefix
    assert "wstape.replay.server" not in modules
    if args[0] in ("ls", "show", "stats", "rules"):
        assert "wstape.interchange.har" not in modules
        assert "wstape.cli.replay" not in modules and "wstape.cli.record" not in modules


def test_help_still_lists_every_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wstape", "--help"], capture_output=True, text=True, timeout=60
    )
    for command in ("demo", "record", "replay", "check", "ls", "import", "view"):
        assert f"  {command} " in result.stdout
