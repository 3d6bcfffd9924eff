"""``import_file``: the import pipeline as a library function."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import pytest

import wstape
from tests.cli.helpers import CHROME, V1
from wstape.cassettes import read_cassette
from wstape.core.errors import ConfigError
from wstape.interchange.errors import InterchangeError
from wstape.interchange.importer import ImportResult, import_file
from wstape.interchange.sources import ImportFormat


def flow_file(path: Path) -> Path:
    from mitmproxy.io import FlowWriter
    from mitmproxy.test import tflow

    with open(path, "wb") as f:
        FlowWriter(f).add(tflow.twebsocketflow())
    return path


def test_public_api(tmp_path: Path) -> None:
    out = tmp_path / "chrome.msgpack"
    result = wstape.import_file(CHROME, out)
    assert isinstance(result, wstape.ImportResult)
    doc = result.to_dict()
    assert doc.pop("redacted")["total"] == 0
    assert doc == {
        "input": str(CHROME),
        "output": str(out),
        "format": "har",
        "connections": 1,
        "refused": 1,
        "messages": 4,
        "skipped": 1,
    }
    assert result.notes == 2  # the unknown close, the refusal's error
    assert len(read_cassette(out)[1]) == 9


def test_every_format(tmp_path: Path) -> None:
    jsonl = tmp_path / "v1.jsonl"
    from wstape.cassettes import CassetteReader
    from wstape.interchange.jsonl import write_jsonl

    with open(jsonl, "w", encoding="utf-8") as f:
        write_jsonl(CassetteReader(V1), f)
    flows = flow_file(tmp_path / "flows.bin")
    for source, fmt in ((CHROME, "har"), (jsonl, "jsonl"), (flows, "mitm")):
        out = tmp_path / f"{fmt}.msgpack"
        assert import_file(source, out).format is ImportFormat(fmt)
        assert import_file(source, out, fmt).format is ImportFormat(fmt)
        read_cassette(out)


@pytest.mark.parametrize(
    ("make", "forced", "message"),
    [
        (lambda p: CHROME, "mitm", "is a HAR file, not a mitmproxy flow dump (--format mitm)"),
        (flow_file, "har", "is a mitmproxy flow dump, not a HAR file (--format har)"),
        (
            lambda p: (p.write_text('{"type":"note","text":"x"}\n'), p)[1],
            "har",
            "is a wstape JSONL export, not a HAR file",
        ),
        (lambda p: CHROME, "jsonl", "leave out --format to import it as har"),
    ],
)
def test_a_forced_format_the_content_contradicts_is_refused(
    tmp_path: Path, make: object, forced: str, message: str
) -> None:
    source = make(tmp_path / "input.x")  # type: ignore[operator]
    out = tmp_path / "out.msgpack"
    with pytest.raises(InterchangeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_file(source, out, forced)
    assert not out.exists()


def test_a_forced_format_wins_when_the_content_shows_none(tmp_path: Path) -> None:
    source = tmp_path / "junk"
    source.write_bytes(b"\x00\x01\x02")
    with pytest.raises(InterchangeError, match="not a readable mitmproxy flow file"):
        import_file(source, tmp_path / "out.msgpack", "mitm")


def test_options_that_cannot_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        import_file(CHROME, tmp_path / "o.msgpack", "xml")
    assert e.value.option == "format"
    copy = tmp_path / "c.har"
    copy.write_bytes(CHROME.read_bytes())
    with pytest.raises(ConfigError) as e:
        import_file(copy, copy)
    assert e.value.option == "output" and copy.read_bytes() == CHROME.read_bytes()
    with pytest.raises(ConfigError) as e:
        import_file(CHROME, tmp_path / "o.msgpack", max_inflated=0)
    assert e.value.option == "max_inflated"
    with pytest.raises(InterchangeError, match="already a wstape cassette"):
        import_file(V1, tmp_path / "o.msgpack")


def test_a_failed_import_leaves_the_old_output_and_no_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "out.msgpack"
    out.write_bytes(V1.read_bytes())
    har = json.loads(CHROME.read_text(encoding="utf-8"))
    har["log"]["entries"][1]["_webSocketMessages"][2]["data"] = "%%% not base64"
    bad = tmp_path / "bad.har"
    bad.write_text(json.dumps(har), encoding="utf-8")
    with pytest.raises(InterchangeError, match=r"bad.har, entry 1: _webSocketMessages\[2\]"):
        import_file(bad, out)
    assert out.read_bytes() == V1.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.har", "out.msgpack"]
    result = import_file(CHROME, out)
    assert isinstance(result, ImportResult) and read_cassette(out)[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.har", "out.msgpack"]


def test_a_zip_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zhar"
    entry = b'{"_resourceType": "other"},'
    bomb.write_bytes(zlib.compress(b'{"log": {"entries": [' + entry * 40_000 + b"{}]}}", 9))
    assert bomb.stat().st_size < 20_000
    out = tmp_path / "out.msgpack"
    with pytest.raises(InterchangeError, match="inflates to more than 100000 bytes"):
        import_file(bomb, out, max_inflated=100_000)
    assert not out.exists()
    # within the default limit, 1 MB of plain entries is read whole, and holds no WebSocket
    with pytest.raises(InterchangeError, match=r"\(40001 entries that are not WebSocket"):
        import_file(bomb, out)
    assert not out.exists()


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ([{"_resourceType": "xhr"}], "1 entry that is not a WebSocket upgrade"),
        (
            [
                {"_resourceType": "xhr"},
                {"_resourceType": "xhr"},
                {
                    "startedDateTime": "2026-01-01T00:00:00Z",
                    "request": {"method": "GET", "url": "wss://h/ws", "headers": []},
                    "response": {"status": 0, "statusText": "", "headers": []},
                    "_resourceType": "websocket",
                },
            ],
            "2 entries that are not WebSocket upgrades and 1 WebSocket upgrade that got no "
            "response",
        ),
    ],
)
def test_an_input_with_no_websocket_writes_nothing(
    tmp_path: Path, entries: list[object], why: str
) -> None:
    # QA: a HAR of ordinary requests only (DevTools opened after the page connected) gave
    # a cassette of no connection, exit 0, whose replay tested nothing.
    har, out = tmp_path / "page.har", tmp_path / "out.msgpack"
    har.write_text(json.dumps({"log": {"entries": entries}}), encoding="utf-8")
    out.write_bytes(b"an older output")
    with pytest.raises(InterchangeError) as e:
        import_file(har, out)
    assert f"holds no WebSocket connection ({why}); nothing written" in str(e.value)
    assert out.read_bytes() == b"an older output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.msgpack", "page.har"]
    empty = tmp_path / "empty.har"
    empty.write_text(json.dumps({"log": {"entries": []}}), encoding="utf-8")
    assert import_file(empty, tmp_path / "none.msgpack").connections == 0  # still imports


REFUSED_WITH_MESSAGES = {
    "har": json.dumps(
        {
            "log": {
                "entries": [
                    {
                        "startedDateTime": "2026-01-01T00:00:00Z",
                        "request": {"method": "GET", "url": "wss://h/ws", "headers": []},
                        "response": {"status": 403, "statusText": "Forbidden", "headers": []},
                        "_webSocketMessages": [
                            {"type": "send", "time": 1767225600.25, "opcode": 1, "data": "a"}
                        ],
                    }
                ]
            }
        }
    ),
    "jsonl": '{"type": "message", "conn": 4, "t": 0.1, "from": "client", "opcode": "text", '
    '"text": "hi", "size": 2}\n',
}


@pytest.mark.parametrize("fmt", sorted(REFUSED_WITH_MESSAGES))
def test_records_that_belong_to_no_connection_are_counted(tmp_path: Path, fmt: str) -> None:
    """QA: a HAR entry whose upgrade was refused (403) but that holds messages, or a
    JSONL message of a connection never opened, was imported with exit 0 and not a word;
    every command after it warned that those records belong to no open connection and
    left them out. The import writes what the input holds and says so at once."""
    source, out = tmp_path / f"in.{fmt}", tmp_path / "out.msgpack"
    source.write_text(REFUSED_WITH_MESSAGES[fmt], encoding="utf-8")
    result = import_file(source, out)
    assert result.strays.count == 1
    why = "whose upgrade was refused" if fmt == "har" else "which was never opened"
    assert why in result.strays.describe()
    assert import_file(CHROME, tmp_path / "chrome.msgpack").strays.count == 0


@pytest.mark.parametrize(
    ("name", "pack", "kind"),
    [
        ("s.har", "gzip", "gzip"),
        ("s.har.gz", "gzip", "gzip"),
        ("s.jsonl.bz2", "bz2", "bzip2"),
        ("s.har.xz", "lzma", "xz"),
    ],
)
@pytest.mark.parametrize("fmt", ["auto", "har"])
def test_a_compressed_input_is_named_as_such(
    tmp_path: Path, name: str, pack: str, kind: str, fmt: str
) -> None:
    """QA: a gzipped HAR (`session.har`, `session.har.gz`, as people mail them) was
    refused as "not a HAR file (not UTF-8 text: UTF-16 or UTF-32? save it as UTF-8)",
    or as neither format at all: the wrong advice. Only mitmproxy's zlib .zhar is read
    compressed; the others are named, with what to do."""
    import importlib

    module = importlib.import_module(pack)
    source = tmp_path / name
    source.write_bytes(module.compress(CHROME.read_bytes()))
    out = tmp_path / "out.msgpack"
    with pytest.raises(InterchangeError, match=f"is {kind}-compressed: decompress it first"):
        import_file(source, out, fmt)
    assert not out.exists()
