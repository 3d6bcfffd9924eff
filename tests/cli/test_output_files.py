"""One policy for every command that writes a file: an existing --output needs
--overwrite, the input is never the output, ``-o -`` is standard output for text."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.cli.helpers import V1, invoke, ok
from wstape.cassettes import read_cassette

# command, arguments before -o (the input first), whether the output is text
WRITERS = [
    ("export", [V1], True),
    ("export", [V1, "--format", "har"], True),
    ("view", [V1], True),
    ("import", [V1.parent / "chrome-websocket.har"], False),
    ("redact", [V1], False),
    ("cut", [V1, "--conn", "1"], False),
    ("repair", [V1], False),
]
IDS = [" ".join(str(a) for a in [c, *args[1:]]) for c, args, _ in WRITERS]


@pytest.mark.parametrize(("command", "args", "text"), WRITERS, ids=IDS)
def test_an_existing_output_needs_overwrite(
    tmp_path: Path, command: str, args: list[object], text: bool
) -> None:
    out = tmp_path / "out"
    out.write_bytes(b"keep me")
    refused = invoke(command, *args, "-o", out)
    assert refused.exit_code == 2  # type: ignore[attr-defined]
    assert refused.stderr.strip().splitlines() == [  # type: ignore[attr-defined]
        f"wstape: error: --output {out}: exists; give --overwrite to replace it"
    ]
    assert out.read_bytes() == b"keep me"
    ok(command, *args, "-o", out, "--overwrite")
    assert out.read_bytes() != b"keep me"
    if not text:
        read_cassette(out)


@pytest.mark.parametrize(("command", "args", "text"), WRITERS, ids=IDS)
def test_dash_is_standard_output_for_text_only(
    tmp_path: Path, command: str, args: list[object], text: bool
) -> None:
    result = invoke(command, *args, "-o", "-")
    if text:
        assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
        out = result.stdout  # type: ignore[attr-defined]
        assert out.startswith(("{", "<!doctype html", "<!DOCTYPE html")), out[:80]
        assert not (tmp_path / "-").exists() and not Path("-").exists()
    else:
        assert result.exit_code == 2  # type: ignore[attr-defined]
        assert "-o -: this command writes a cassette" in result.stderr  # type: ignore[attr-defined]


def test_view_to_standard_output_keeps_the_summary_off_the_page() -> None:
    result = invoke("view", V1, "-o", "-")
    assert result.stdout.rstrip().endswith("</html>")  # type: ignore[attr-defined]
    assert "wrote standard output: 3 connections" in result.stderr  # type: ignore[attr-defined]


def test_export_to_standard_output_is_the_default() -> None:
    assert ok("export", V1) == ok("export", V1, "-o", "-")
    first = json.loads(ok("export", V1).splitlines()[0])
    assert first["type"] == "connection"


@pytest.mark.parametrize(("command", "args", "text"), WRITERS, ids=IDS)
def test_the_input_is_never_the_output(
    tmp_path: Path, command: str, args: list[object], text: bool
) -> None:
    source = tmp_path / Path(str(args[0])).name
    source.write_bytes(Path(str(args[0])).read_bytes())
    result = invoke(command, source, *args[1:], "-o", source, "--overwrite")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "refusing to overwrite the input file" in result.stderr  # type: ignore[attr-defined]
    assert source.read_bytes() == Path(str(args[0])).read_bytes()


def test_demo_refuses_an_existing_output_before_recording(tmp_path: Path) -> None:
    out = tmp_path / "demo.msgpack"
    out.write_bytes(b"keep me")
    result = invoke("demo", "-o", out)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert "exists; give --overwrite" in result.stderr  # type: ignore[attr-defined]
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize(("command", "args", "text"), WRITERS, ids=IDS)
def test_an_output_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, command: str, args: list[object], text: bool
) -> None:
    # Every output is written beside its path and renamed over it: that would turn a
    # FIFO, a device or a symlink into a plain file, so such a path is refused whole.
    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    link, fifo = tmp_path / "link", tmp_path / "fifo"
    link.symlink_to(target)
    os.mkfifo(fifo)
    for out in (link, fifo):
        refused = invoke(command, *args, "-o", out, "--overwrite")
        assert refused.exit_code == 2  # type: ignore[attr-defined]
        assert refused.stderr.strip().splitlines() == [  # type: ignore[attr-defined]
            f"wstape: error: --output {out}: not a regular file (wstape replaces its outputs whole)"
        ]
    assert link.is_symlink() and stat.S_ISFIFO(fifo.lstat().st_mode)
    assert target.read_bytes() == b"keep me"


@pytest.mark.parametrize("option", ["--report", "--junit"])
def test_a_report_over_the_cassette_is_refused(tmp_path: Path, option: str) -> None:
    source = tmp_path / "c.msgpack"
    source.write_bytes(V1.read_bytes())
    for command, given in [
        ("check", source),
        ("check", tmp_path / "." / "c.msgpack"),
        ("replay", source),  # (refused before it serves: no port is opened)
    ]:
        refused = invoke(command, source, option, given)
        assert refused.exit_code == 2  # type: ignore[attr-defined]
        assert "refusing to overwrite the input file" in refused.stderr  # type: ignore[attr-defined]
    assert source.read_bytes() == V1.read_bytes()


@pytest.mark.parametrize("private", [True, False], ids=["0600-input", "0644-input"])
@pytest.mark.parametrize(("command", "args", "text"), WRITERS, ids=IDS)
def test_an_output_is_no_more_readable_than_its_input(
    tmp_path: Path, command: str, args: list[object], text: bool, private: bool
) -> None:
    """A private recording (the recorder writes 0600: cookies, tokens) stays private in
    every file made from it; a shared one gives what the umask allows."""
    source = Path(str(args[0]))
    mine = tmp_path / source.name
    mine.write_bytes(source.read_bytes())
    mine.chmod(0o600 if private else 0o644)
    out = tmp_path / "out"
    umask = os.umask(0o022)
    try:
        ok(command, mine, *args[1:], "-o", out)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == (0o600 if private else 0o644)


@pytest.mark.parametrize("command", ["check", "replay"])
def test_a_report_is_no_more_readable_than_the_cassette(tmp_path: Path, command: str) -> None:
    mine = tmp_path / "private.msgpack"
    mine.write_bytes(V1.read_bytes())
    mine.chmod(0o600)
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    extra = ["--port", "0", "--max-wait", "0.1"] if command == "replay" else []
    umask = os.umask(0o022)
    try:
        invoke(command, mine, *extra, "--report", report, "--junit", junit)
    finally:
        os.umask(umask)
    assert json.loads(report.read_text())["cassette"]
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert stat.S_IMODE(junit.stat().st_mode) == 0o600


CASSETTE_WRITERS = [
    ("import", ["big.jsonl"]),
    ("redact", ["big.msgpack"]),
    ("cut", ["big.msgpack", "--conn", "1"]),
    ("repair", ["big.msgpack"]),
    ("upgrade", ["big.msgpack"]),
]


@pytest.mark.parametrize(
    ("command", "args"), CASSETTE_WRITERS, ids=[c for c, _ in CASSETTE_WRITERS]
)
def test_a_cassette_that_cannot_be_written_is_named_as_given(
    tmp_path: Path, command: str, args: list[str]
) -> None:
    """QA: when the output cassette could not be written (a full disk; here the file
    size limit, EFBIG), import, redact, cut, repair and upgrade named the hidden
    temporary file they had already removed (`/abs/.out.msgpack.1ty7qu8d.tmp: cannot
    write cassette: ...`), not the --output the user gave. A real process, a real
    write error; the old output stays as it was."""
    import resource
    import subprocess
    import sys

    from tests.helpers.records import make_open, write
    from wstape.core.model import Close, Message, Opcode, Side

    records = [make_open(1, "/chat")]
    records += [Message(1, i / 10, Side.CLIENT, Opcode.TEXT, b"x" * 4096) for i in range(64)]
    records.append(Close(1, 7.0, Side.CLIENT, 1000, ""))
    write(tmp_path / "big.msgpack", records)
    ok("export", tmp_path / "big.msgpack", "--format", "jsonl", "-o", tmp_path / "big.jsonl")
    out = tmp_path / "out.msgpack"
    out.write_bytes(b"the old output")

    def small_files() -> None:  # Python ignores SIGXFSZ: a write past it fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))

    proc = subprocess.run(
        [sys.executable, "-m", "wstape", command, *args, "-o", "out.msgpack", "--overwrite"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=small_files,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "wstape: error: out.msgpack: cannot write cassette: [Errno 27] File too large"
    ]
    assert out.read_bytes() == b"the old output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.jsonl", "big.msgpack", "out.msgpack"]
