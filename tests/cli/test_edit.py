"""``redact``, ``cut`` and ``repair`` through the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.cassettes.test_frozen_v2 import V2
from tests.cli.helpers import (
    SECRET,
    V1,
    invoke,
    ok,
    opened,
    secret_cassette,
    truncated,
)
from tests.helpers.records import write
from wstape.cassettes import CassetteReader, read_cassette
from wstape.core.model import Message, Note, Opcode, Side


def test_redact_removes_the_secret_and_counts(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    secret_cassette(src)
    doc = json.loads(
        ok(
            "redact",
            src,
            "-o",
            out,
            "--header",
            "X-Token",
            "--json-key",
            "token",
            "--pattern",
            "sk-[A-Za-z0-9]+",
            "--json",
        )
    )
    assert doc["replaced"] == {
        "headers": 2,
        "subprotocols": 0,
        "query": 0,
        "json_keys": 1,
        "patterns": 2,
        "secrets": 0,
        "withheld": 0,
    }
    assert doc["total"] == 5 and doc["input"] == str(src) and doc["output"] == str(out)
    raw = out.read_bytes()
    # the binary message is only rewritten for --secret-env/--secret-file: the rest is clean
    assert raw.count(SECRET.encode()) == 1 and b"\x00\x01" + SECRET.encode() in raw
    human = ok("redact", src, "-o", out, "--pattern", "sk-[A-Za-z0-9]+", "--overwrite")
    assert human.startswith("redacted 5 values in 4 of 7 records")
    assert "headers 2," in human and "JSON keys 1," in human  # the defaults
    assert "patterns 2 in message 1, target 1" in human


def test_redact_counts_one_value_in_the_singular(tmp_path: Path) -> None:
    src, out = tmp_path / "one.msgpack", tmp_path / "out.msgpack"
    write(src, [opened(1, "/chat?token=s3cret")])
    human = ok("redact", src, "-o", out, "--no-default-redaction", "--query", "token")
    assert human.startswith("redacted 1 value in 1 of 1 record →")


def test_redact_applies_the_defaults_without_options(tmp_path: Path) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    secret_cassette(src)
    doc = json.loads(ok("redact", src, "-o", out, "--json"))
    assert (doc["replaced"]["headers"], doc["replaced"]["json_keys"]) == (2, 1)
    assert b'"token":"<redacted>"' in out.read_bytes()


def test_redact_secret_env_reaches_binary_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    secret_cassette(src)
    monkeypatch.setenv("WSTAPE_TEST_SECRET", SECRET)
    human = ok("redact", src, "-o", out, "--secret-env", "WSTAPE_TEST_SECRET")
    assert SECRET.encode() not in out.read_bytes()
    assert "secret values 3" in human  # the target, the text and the binary message
    _, records = read_cassette(out)
    binary = next(r for r in records if isinstance(r, Message) and r.opcode is Opcode.BINARY)
    assert binary.payload == b"\x00\x01<redacted>*****"  # same length as the secret
    assert any(isinstance(r, Note) and "--secret-env" in r.text for r in records)


def test_redact_deep_json(tmp_path: Path) -> None:
    """Issue 8: 100,000 levels of nesting used to be skipped as "not JSON" (0 redactions)."""
    src, out = tmp_path / "in.msgpack", tmp_path / "out.msgpack"
    deep = "[" * 100_000 + f'{{"token":"{SECRET}"}}' + "]" * 100_000
    write(src, [Message(1, 0.1, Side.CLIENT, Opcode.TEXT, deep.encode())])
    doc = json.loads(ok("redact", src, "-o", out, "--json"))
    assert doc["replaced"]["json_keys"] == 1
    assert SECRET.encode() not in out.read_bytes()


def test_redact_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    src = tmp_path / "in.msgpack"
    secret_cassette(src)
    before = src.read_bytes()
    result = invoke("redact", src, "-o", src, "--json-key", "token")
    assert result.exit_code == 2 and "refusing to overwrite" in result.stderr  # type: ignore[attr-defined]
    assert src.read_bytes() == before
    ok("redact", src, "--in-place", "--json-key", "token")
    assert b'"token":"<redacted>"' in src.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-default-redaction"], "nothing to redact"),
        (["--json-key", "token"], "give --output"),
        (["-o", "x.msgpack", "--pattern", "("], "--pattern"),
        (["-o", "x.msgpack", "--header", "a b"], "--header: not a header name"),
        (["-o", "x.msgpack", "--secret-env", "WSTAPE_UNSET_VAR"], "--secret-env: WSTAPE_UNSET_VAR"),
        (["-o", "x.msgpack", "--secret-file", "/nonexistent/f"], "--secret-file: /nonexistent/f"),
    ],
)
def test_redact_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "in.msgpack"
    secret_cassette(src)
    result = invoke("redact", src, *args)
    assert result.exit_code == 2 and message in result.stderr  # type: ignore[attr-defined]


def test_redact_truncated_points_to_repair(tmp_path: Path) -> None:
    result = invoke("redact", truncated(tmp_path), "-o", tmp_path / "o.msgpack", "--json-key", "a")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "wstape repair" in result.stderr  # type: ignore[attr-defined]
    assert not (tmp_path / "o.msgpack").exists()


def test_cut(tmp_path: Path) -> None:
    out = tmp_path / "out.msgpack"
    doc = json.loads(ok("cut", V1, "-o", out, "--conn", "1", "--conn", "3", "--json"))
    assert doc == {
        "input": str(V1),
        "output": str(out),
        "connections": [1, 3],
        "records": 8,
        "messages": 3,
    }
    assert {r.conn for r in read_cassette(out)[1]} == {1, 3}
    assert "kept 1 connection (2)" in ok("cut", V1, "-o", out, "--path", "/admin", "--overwrite")
    result = invoke("cut", V1, "-o", out)
    assert result.exit_code == 2  # type: ignore[attr-defined]


def test_a_cut_that_keeps_nothing_writes_nothing(tmp_path: Path) -> None:
    # QA: `cut --conn 99` wrote an empty cassette and exited 0 with a warning: a typo made
    # an empty fixture. Now it is a usage error, and an existing output is left alone.
    out = tmp_path / "out.msgpack"
    ok("cut", V1, "-o", out, "--conn", "1")
    before = out.read_bytes()
    result = invoke("cut", V1, "-o", out, "--conn", "99", "--overwrite")
    assert result.exit_code == 2  # type: ignore[attr-defined]
    assert result.stderr == (  # type: ignore[attr-defined]
        f"wstape: error: {V1}: no connection matches --conn 99; nothing written\n"
    )
    assert out.read_bytes() == before
    assert list(tmp_path.iterdir()) == [out]  # (no temporary file left either)
    fresh = tmp_path / "new.msgpack"
    assert invoke("cut", V1, "-o", fresh, "--path", "/nope").exit_code == 2  # type: ignore[attr-defined]
    assert not fresh.exists()


def test_repair(tmp_path: Path) -> None:
    out = tmp_path / "fixed.msgpack"
    src = truncated(tmp_path)
    doc = json.loads(ok("repair", src, "-o", out, "--json"))
    assert doc["truncated_at"] is not None and doc["dropped_bytes"] > 0
    assert doc["ended_cleanly"] is False  # cut mid-record: it did not end cleanly either
    assert doc["closed"] == [3] and doc["records"] == 8
    _header, records = read_cassette(out)
    assert records[:8] == read_cassette(V1)[1][:8]
    assert "not truncated" in ok("repair", V1, "-o", out, "--overwrite")


def test_repair_ends_a_cassette_that_did_not_end_cleanly(tmp_path: Path) -> None:
    src, out = tmp_path / "killed.msgpack", tmp_path / "fixed.msgpack"
    write(src, read_cassette(V1)[1])
    data = src.read_bytes()
    end = CassetteReader(src).end_summary()
    assert end is not None
    cut = data[: len(data) - end.size]
    src.write_bytes(cut)  # killed between records
    shown = invoke("ls", src)
    assert shown.exit_code == 0  # type: ignore[attr-defined]
    assert "did not end cleanly" in shown.stderr and "wstape repair" in shown.stderr  # type: ignore[attr-defined]
    refused = invoke("check", src)
    assert refused.exit_code == 3  # type: ignore[attr-defined]
    (line,) = refused.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert "did not end cleanly" in line and "wstape repair" in line
    doc = json.loads(ok("repair", src, "-o", out, "--json"))
    assert doc["ended_cleanly"] is False and doc["dropped_bytes"] == 0
    assert doc["truncated_at"] == len(cut)
    assert read_cassette(out)[1] == read_cassette(V1)[1]  # nothing lost, and ended
    assert "had not ended cleanly (every record was whole): ended it" in ok(
        "repair", src, "-o", out, "--overwrite"
    )


def test_upgrade_rewrites_a_v1_cassette_in_the_current_version(tmp_path: Path) -> None:
    out = tmp_path / "v3.msgpack"
    assert ok("upgrade", V1, "-o", out).strip() == f"format version 1 → 3: 9 records → {out}"
    (header, records), (v1_header, v1_records) = read_cassette(out), read_cassette(V1)
    assert records == v1_records
    assert header == replace(v1_header, version=3)
    assert out.stat().st_size < V1.stat().st_size
    end = CassetteReader(out).end_summary()
    assert end is not None and end.listing is not None  # (ls reads it from the end)
    doc = json.loads(ok("upgrade", V1, "-o", out, "--overwrite", "--json"))
    assert doc == {
        "input": str(V1),
        "output": str(out),
        "from_version": 1,
        "version": 3,
        "records": 9,
    }
    again = tmp_path / "again.msgpack"
    assert "already format version 3, rewritten" in ok("upgrade", out, "-o", again)
    assert read_cassette(again) == read_cassette(out)


def test_upgrade_rewrites_a_v2_cassette_in_the_current_version(tmp_path: Path) -> None:
    out = tmp_path / "v3.msgpack"
    assert ok("upgrade", V2, "-o", out).strip() == f"format version 2 → 3: 14 records → {out}"
    assert read_cassette(out)[1] == read_cassette(V2)[1]
    assert end_listed(out)  # (the upgrade is one writer: its end record lists them)
    assert ok("ls", out, "--json") == ok("ls", V2, "--json")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["-o", "-"], 2, "-o -: this command writes a cassette (binary); give a file name"),
        (["-o", "{V1}"], 2, "refusing to overwrite the input file"),
        (["-o", "{out}"], 2, "exists; give --overwrite to replace it"),
    ],
)
def test_upgrade_output_policy(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    out = tmp_path / "exists.msgpack"
    out.write_bytes(b"keep me")
    result = invoke("upgrade", V1, *(a.format(V1=V1, out=out) for a in args))
    assert result.exit_code == code  # type: ignore[attr-defined]
    (line,) = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert needle in line
    assert out.read_bytes() == b"keep me"


def test_upgrade_refuses_a_truncated_cassette_and_names_repair(tmp_path: Path) -> None:
    result = invoke("upgrade", truncated(tmp_path), "-o", tmp_path / "out.msgpack")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    (line,) = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert "truncated" in line and "wstape repair" in line
    assert not (tmp_path / "out.msgpack").exists()


def end_listed(path: Path) -> bool:
    end = CassetteReader(path).end_summary()
    return end is not None and end.listing is not None


@pytest.mark.parametrize("command", ["ls", "check", "repair"])
def test_a_cut_inside_the_header_does_not_send_the_user_to_repair(
    tmp_path: Path, command: str
) -> None:
    """Nothing before the header is complete: advising repair, which then fails the
    same way, would be a dead end."""
    src = tmp_path / "cut.msgpack"
    src.write_bytes(V1.read_bytes()[:20])
    extra = ["-o", str(tmp_path / "out.msgpack")] if command == "repair" else []
    result = invoke(command, src, *extra)
    assert result.exit_code == 3  # type: ignore[attr-defined]
    (line,) = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert "inside the header record; nothing in it can be kept" in line
    assert "repair" not in line
