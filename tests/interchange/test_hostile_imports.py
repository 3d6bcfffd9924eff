"""Hostile HAR, JSONL and mitmproxy flow files: ``wstape import`` never shows a traceback,
and never exits 0 with a cassette that ``wstape ls`` / ``check`` / ``show`` refuse.

A hand-made corpus (every value issue 10 found, and their neighbours), then the same
files mutated by hypothesis: JSON values replaced at random paths, bytes changed or cut,
flow attributes set to values mitmproxy's writer accepts but no recording has.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.cli.helpers import CHROME, V1
from wstape.cassettes import CassetteReader, read_cassette
from wstape.cli.app import app
from wstape.interchange.har import export_har

runner = CliRunner()
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_import(source: Path, out: Path, *args: str) -> int:
    """Import ``source``; assert it failed in one line with nothing written, or wrote a
    cassette every reading command accepts. Returns the exit code."""
    out.unlink(missing_ok=True)
    result = runner.invoke(app, ["import", str(source), "-o", str(out), *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"import of {source.name} crashed") from result.exception
    assert "Traceback" not in result.stderr
    if result.exit_code != 0:
        assert result.exit_code == 3, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not out.exists()
        return result.exit_code
    for command, codes in (("ls", (0,)), ("check", (0, 1))):
        after = runner.invoke(app, [command, str(out)])
        if after.exception is not None and not isinstance(after.exception, SystemExit):
            raise AssertionError(f"{command} of {source.name}'s import crashed") from (
                after.exception
            )
        assert after.exit_code in codes, (command, after.stderr)
    read_cassette(out)
    return 0


def _har(entries: list[Any], **log: Any) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, **log,
                    "entries": entries}}  # fmt: skip


def _entry(**over: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "startedDateTime": "2026-01-01T00:00:00+00:00",
        "request": {"method": "GET", "url": "wss://h.example/ws", "headers": []},
        "response": {"status": 101, "statusText": "Switching Protocols", "headers": []},
        "_webSocketMessages": [{"type": "send", "time": 1767225600.5, "opcode": 1, "data": "hi"}],
    }
    entry.update(over)
    return entry


def _ext(**over: Any) -> dict[str, Any]:
    ext: dict[str, Any] = {"conn": 1, "subprotocols": [], "extensions": [], "notes": [],
                           "close": {"t": 1, "by": "client", "code": 1000, "reason": "",
                                     "on_wire": True}}  # fmt: skip
    ext.update(over)
    return ext


def _close(**over: Any) -> dict[str, Any]:
    close = {"t": 1, "by": "client", "code": 1000, "reason": "", "on_wire": True}
    close.update(over)
    return close


def _msg(**over: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"type": "send", "time": 1767225600.5, "opcode": 1, "data": "x"}
    msg.update(over)
    return msg


HAR_CORPUS: dict[str, Any] = {
    "status 10**40": _har([_entry(response={"status": 10**40, "headers": []})]),
    "status -1": _har([_entry(response={"status": -1, "headers": []})]),
    "status 99": _har([_entry(response={"status": 99, "headers": []})]),
    "status 1000": _har([_entry(response={"status": 1000, "headers": []})]),
    "status float": _har([_entry(response={"status": 101.0, "headers": []})]),
    "conn 10**40": _har([_entry(_wstape=_ext(conn=10**40))]),
    "conn 2**60": _har([_entry(_wstape=_ext(conn=2**60))]),
    "conn -1": _har([_entry(_wstape=_ext(conn=-1))]),
    "conn twice": _har([_entry(_wstape=_ext()), _entry(_wstape=_ext())]),
    "started_at 1e308": _har([_entry(_wstape=_ext(started_at=1e308))]),
    "started_at -1": _har([_entry(_wstape=_ext(started_at=-1))]),
    "started_at 2300": _har([_entry(startedDateTime="2300-01-01T00:00:00Z")]),
    "started_at year 1": _har([_entry(startedDateTime="0001-01-01T00:00:00+00:00")]),
    "log started_at 1e308": _har([_entry()], _wstape={"version": 1, "started_at": 1e308}),
    "close code 70000": _har([_entry(_wstape=_ext(close=_close(code=70000)))]),
    "close code -1": _har([_entry(_wstape=_ext(close=_close(code=-1)))]),
    "close t 1e300": _har([_entry(_wstape=_ext(close=_close(t=1e300)))]),
    "close t -1": _har([_entry(_wstape=_ext(close=_close(t=-1)))]),
    "close reason 2 MiB": _har([_entry(_wstape=_ext(close=_close(reason="r" * 2**21)))]),
    "close frame 70000": _har(
        [_entry(_webSocketMessages=[_msg(opcode=8, data=base64.b64encode(b"\xff\xff").decode())])]
    ),
    "message time 1e308": _har([_entry(_webSocketMessages=[_msg(time=1e308)])]),
    "message time -1e308": _har([_entry(_webSocketMessages=[_msg(time=-1e308)])]),
    "message ext t -5": _har([_entry(_webSocketMessages=[_msg(_wstape={"t": -5})])]),
    "message ext t 1e10": _har([_entry(_webSocketMessages=[_msg(_wstape={"t": 1e10})])]),
    "message time text": _har([_entry(_webSocketMessages=[_msg(time="later")])]),
    "message continues nothing": _har([_entry(_webSocketMessages=[_msg(opcode=0)])]),
    "message opcode 10**40": _har([_entry(_webSocketMessages=[_msg(opcode=10**40)])]),
    "message lone surrogate": _har([_entry(_webSocketMessages=[_msg(data="\ud800")])]),
    "message low surrogate": _har([_entry(_webSocketMessages=[_msg(data="a\udcffb")])]),
    "messages not a list": _har([_entry(_webSocketMessages="x")]),
    "message not an object": _har([_entry(_webSocketMessages=[7])]),
    "ext port 10**40": _har([_entry(_wstape=_ext(port=10**40))]),
    "ext port 70000": _har([_entry(_wstape=_ext(port=70000))]),
    "url port 99999": _har([_entry(request={"url": "ws://h:99999/"})]),
    "url bad ipv6": _har([_entry(request={"url": "ws://[::1/"})]),
    "header surrogate": _har(
        [_entry(request={"url": "ws://h/", "headers": [{"name": "X", "value": "\udcff"}]})]
    ),
    "header 2 MiB": _har(
        [_entry(request={"url": "ws://h/", "headers": [{"name": "X", "value": "v" * 2**21}]})]
    ),
    "5000 headers": _har(
        [_entry(request={"url": "ws://h/", "headers": [{"name": "X", "value": "v"}] * 5000})]
    ),
    "6000 subprotocols": _har([_entry(_wstape=_ext(subprotocols=["p"] * 6000))]),
    "note t -1": _har([_entry(_wstape=_ext(notes=[{"t": -1, "text": "n", "after": 0}]))]),
    "note after 10**40": _har([_entry(_wstape=_ext(notes=[{"text": "n", "after": 10**40}]))]),
    "log note t 1e300": _har(
        [_entry()], _wstape={"version": 1, "notes": [{"t": 1e300, "text": "n", "after": 0}]}
    ),
    "creator 2 MiB": _har([_entry()], _wstape={"version": 1, "creator": "c" * 2**21}),
    "refused with messages": _har([_entry(response={"status": 403, "headers": []})]),
    "entry not an object": _har([[]]),
    "no entries": {"log": {}},
    "not an object": [1, 2],
}

RAW_HAR_CORPUS: dict[str, bytes] = {
    "empty": b"",
    "infinity": json.dumps(_har([_entry(_webSocketMessages=[_msg(time=math.inf)])])).encode(),
    "overflowing float": b'{"log": {"entries": [{"_webSocketMessages": [{"time": 1e400}]}]}}',
    "deep nesting": b'{"log": {"entries": [{"request": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}]}}",
    "trailing garbage": b'{"log": {"entries": []}} garbage',
    "truncated": json.dumps(_har([_entry()])).encode()[:-20],
    "utf-16": json.dumps(_har([_entry()])).encode("utf-16"),
    "not utf-8": b'{"log": {"entries": [{"request": "\xff"}]}}',
    "bom": b"\xef\xbb\xbf" + json.dumps(_har([_entry()])).encode(),
    "zlib cut": zlib.compress(json.dumps(_har([_entry()])).encode())[:-4],
    "zlib ok": zlib.compress(json.dumps(_har([_entry()])).encode()),
}


@pytest.mark.parametrize("name", sorted(HAR_CORPUS))
def test_hand_made_har(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.har"
    path.write_text(json.dumps(HAR_CORPUS[name]), encoding="utf-8")
    check_import(path, tmp_path / "out.msgpack")


@pytest.mark.parametrize("name", sorted(RAW_HAR_CORPUS))
def test_hand_made_raw_har(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.har"
    path.write_bytes(RAW_HAR_CORPUS[name])
    check_import(path, tmp_path / "out.msgpack")


def test_the_values_issue_10_found_are_refused_or_mapped(tmp_path: Path) -> None:
    """Each of these crashed or wrote an unreadable cassette with exit 0 before."""
    out = tmp_path / "out.msgpack"
    for name in ("status 10**40", "conn 10**40", "started_at 1e308", "log started_at 1e308",
                 "close code 70000", "close code -1", "message time 1e308",
                 "message lone surrogate"):  # fmt: skip
        path = tmp_path / "x.har"
        path.write_text(json.dumps(HAR_CORPUS[name]), encoding="utf-8")
        assert check_import(path, out) == 3, name
    path = tmp_path / "x.har"
    path.write_text(json.dumps(HAR_CORPUS["conn 2**60"]), encoding="utf-8")
    assert check_import(path, out) == 0  # a fresh id, and a note saying so


# -- hypothesis: JSON values replaced at random paths ----------------------------------


def _base_har(tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "base.har"
    with open(out, "w", encoding="utf-8") as f:
        export_har(CassetteReader(V1), f)
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    chrome = json.loads(CHROME.read_text(encoding="utf-8"))
    doc["log"]["entries"] += chrome["log"]["entries"]
    return doc


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


SPECIAL = [
    10**40, -(10**40), 2**63, 2**64, 2**53 + 1, -1, 0, 65536, 70000, 1e308, -1e308, 1.5,
    7.3e9, 1e10, "", "\ud800", "x\udcffy", None, True, False, [], {}, [[[[]]]],
    "9999-12-31T23:59:59Z", "ws://h:99999/", "ftp://h/", "%%%", "AAAA", math.inf,
]  # fmt: skip
HOSTILE = st.one_of(
    st.sampled_from(SPECIAL), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)
)
_BASE: dict[str, Any] = {}


@given(data=st.data())
@SETTINGS
def test_mutated_har_values(tmp_path: Path, data: st.DataObject) -> None:
    if not _BASE:
        _BASE["doc"] = _base_har(tmp_path)
        _BASE["paths"] = _paths(_BASE["doc"])
    doc = copy.deepcopy(_BASE["doc"])
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        doc = _set(doc, data.draw(st.sampled_from(paths)), data.draw(HOSTILE))
    path = tmp_path / "m.har"
    path.write_text(json.dumps(doc, allow_nan=True), encoding="utf-8")
    check_import(path, tmp_path / "out.msgpack")


@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10**6),
    compressed=st.booleans(),
)
@SETTINGS
def test_mutated_har_bytes(
    tmp_path: Path, edits: list[tuple[int, int]], cut: int | None, compressed: bool
) -> None:
    data = bytearray(CHROME.read_bytes())
    if compressed:
        data = bytearray(zlib.compress(bytes(data)))
    for position, byte in edits:
        data[position % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "m.har"
    path.write_bytes(bytes(data))
    check_import(path, tmp_path / "out.msgpack")


# -- mitmproxy flow files ----------------------------------------------------------------


def _dump(path: Path, flows: list[Any]) -> bool:
    from mitmproxy.io import FlowWriter

    try:
        with open(path, "wb") as f:
            for flow in flows:
                FlowWriter(f).add(flow)
    except (TypeError, ValueError, UnicodeError, OverflowError):
        return False  # mitmproxy's own writer refuses it: no such file can exist
    return True


def _flow(**changes: Any) -> Any:
    from mitmproxy.test import tflow

    flow = tflow.twebsocketflow()
    assert flow.response is not None and flow.websocket is not None
    where = {
        "port": (flow.request.data, "port"),
        "path": (flow.request.data, "path"),
        "method": (flow.request.data, "method"),
        "status": (flow.response.data, "status_code"),
        "reason": (flow.response.data, "reason"),
        "started": (flow.response, "timestamp_end"),
        "end": (flow.websocket, "timestamp_end"),
        "code": (flow.websocket, "close_code"),
        "close_reason": (flow.websocket, "close_reason"),
        "by_client": (flow.websocket, "closed_by_client"),
        "message_time": (flow.websocket.messages[0], "timestamp"),
        "content": (flow.websocket.messages[1], "content"),
    }
    for name, value in changes.items():
        target, attr = where[name]
        setattr(target, attr, value)
    return flow


FLOW_CORPUS: dict[str, dict[str, Any]] = {
    "port 2**70": {"port": 2**70},
    "port -1": {"port": -1},
    "path not UTF-8": {"path": b"/chat\xff\xfe?q=\xc3"},
    "method not UTF-8": {"method": b"G\xffT"},
    "reason not UTF-8": {"reason": b"\xff\xfe"},
    "status 10**40": {"status": 10**40},
    "status 0": {"status": 0},
    "started 1e308": {"started": 1e308},
    "started nan": {"started": math.nan},
    "end inf": {"end": math.inf},
    "message time inf": {"message_time": math.inf},
    "message time -1e308": {"message_time": -1e308},
    "message time 1e12": {"message_time": 1e12},
    "close code 70000": {"code": 70000},
    "close code -1": {"code": -1},
    "close reason 2 MiB": {"close_reason": "r" * 2**21},
    "still open": {"by_client": None, "code": None, "end": None},
}


@pytest.mark.parametrize("name", sorted(FLOW_CORPUS))
def test_hand_made_flows(tmp_path: Path, name: str) -> None:
    path = tmp_path / "hostile.mitm"
    assert _dump(path, [_flow(**FLOW_CORPUS[name])])
    check_import(path, tmp_path / "out.msgpack")


def test_flow_values_issue_10_found(tmp_path: Path) -> None:
    out = tmp_path / "out.msgpack"
    for name in ("port 2**70", "status 10**40", "message time inf", "close code 70000"):
        path = tmp_path / "x.mitm"
        assert _dump(path, [_flow(**FLOW_CORPUS[name])])
        assert check_import(path, out) == 3, name
    path = tmp_path / "x.mitm"
    assert _dump(path, [_flow(**FLOW_CORPUS["path not UTF-8"])])
    assert check_import(path, out) == 0
    opened = read_cassette(out)[1][0]
    assert opened.target == "/chat%FF%FE?q=%C3"  # type: ignore[union-attr]


@given(
    port=st.integers(-(2**70), 2**70) | st.integers(0, 65535),
    path=st.binary(max_size=8).map(lambda b: b"/" + b),
    status=st.integers(-(2**40), 2**40) | st.sampled_from([101, 403]),
    started=st.floats() | st.sampled_from([1.7e9]),
    message_time=st.floats(),
    code=st.none() | st.integers(-(2**40), 2**40),
    close_reason=st.text(max_size=4),
)
@SETTINGS
def test_mutated_flows(tmp_path: Path, **changes: Any) -> None:
    path = tmp_path / "m.mitm"
    if _dump(path, [_flow(**changes)]):
        check_import(path, tmp_path / "out.msgpack")


@given(
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.none() | st.integers(0, 10**6),
)
@SETTINGS
def test_mutated_flow_bytes(tmp_path: Path, edits: list[tuple[int, int]], cut: int | None) -> None:
    path = tmp_path / "m.mitm"
    assert _dump(path, [_flow(), _flow(code=4001)])
    data = bytearray(path.read_bytes())
    for position, byte in edits:
        data[position % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path.write_bytes(bytes(data))
    check_import(path, tmp_path / "out.msgpack", "--format", "mitm")


@given(edits=st.lists(st.tuples(st.integers(0, 10**5), st.integers(0, 255)), max_size=4))
@SETTINGS
def test_mutated_jsonl_bytes(tmp_path: Path, edits: list[tuple[int, int]]) -> None:
    path = tmp_path / "m.jsonl"
    if not _BASE.get("jsonl"):
        result = runner.invoke(app, ["export", str(V1), "--format", "jsonl", "--exact"])
        _BASE["jsonl"] = result.stdout.encode()
    data = bytearray(_BASE["jsonl"])
    for position, byte in edits:
        data[position % len(data)] = byte
    path.write_bytes(bytes(data))
    check_import(path, tmp_path / "out.msgpack", "--format", "jsonl")
