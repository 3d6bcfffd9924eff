"""The in-process runner behind ``wstape record``, driven as a library on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.helpers.records import records_so_far
from tests.helpers.servers import ScenarioServer
from wstape.addons import runner
from wstape.addons.recorder import RecorderStats
from wstape.addons.runner import (
    RecordCassetteError,
    RecordConfig,
    RecordUsageError,
    StatusLine,
    human_bytes,
    normalize_mode,
    record,
    render_redaction,
    render_stats,
)
from wstape.cassettes import WriteMode, read_cassette
from wstape.core.model import Close, Message, Note, Open


@pytest.fixture(scope="module")
def server() -> Iterator[ScenarioServer]:
    with ScenarioServer() as s:
        yield s


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("regular", "regular"),
        ("reverse:ws://127.0.0.1:9000", "reverse:http://127.0.0.1:9000"),
        ("reverse:wss://chat.example.com", "reverse:https://chat.example.com"),
        ("reverse:http://127.0.0.1:9000", "reverse:http://127.0.0.1:9000"),
        ("upstream:http://proxy:3128", "upstream:http://proxy:3128"),
        ("socks5", "socks5"),
        ("transparent", "transparent"),
        ("regular@9090", "regular@9090"),
    ],
)
def test_normalize_mode(given: str, expected: str) -> None:
    assert normalize_mode(given) == expected


@pytest.mark.parametrize("bad", ["bogus", "reverse:", "local", "dns", "wireguard"])
def test_normalize_mode_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid --mode"):
        normalize_mode(bad)


def test_status_rendering() -> None:
    stats = RecorderStats(open=2, closed=5, refused=1, messages_client=3, messages_server=4)
    stats.bytes_client = 1536
    assert render_stats(stats) == (
        "connections 2 open, 5 closed, 1 refused; messages 7 (c->s 3, s->c 4); 1.5 KiB"
    )
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 2**20, 3 * 2**30)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3.0 GiB",
    ]


def test_status_line_is_plain_off_a_terminal() -> None:
    out = io.StringIO()
    line = StatusLine(out, plain_interval=0)
    line.update(RecorderStats())  # nothing happened yet: no line
    stats = RecorderStats(open=1)
    line.update(stats)
    line.update(stats)  # unchanged: no second line
    line.print("wstape: something")
    assert out.getvalue().splitlines() == [
        "wstape: connections 1 open, 0 closed; messages 0 (c->s 0, s->c 0); 0 B",
        "wstape: something",
    ]


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_redraws_in_place_on_a_terminal() -> None:
    out = FakeTty()
    line = StatusLine(out)
    line.update(RecorderStats(open=1))
    line.print("wstape: a warning")
    line.update(RecorderStats(open=2))
    line.clear()
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 4
    assert "wstape: a warning\n" in text
    assert "\n" not in text.split("a warning\n", 1)[1]


async def test_record_as_a_library(tmp_path: Path, server: ScenarioServer) -> None:
    out = tmp_path / "lib.msgpack"
    stop = asyncio.Event()
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    config = RecordConfig(output=out, mode=f"reverse:ws://127.0.0.1:{server.port}", listen_port=0)
    task = asyncio.create_task(
        record(config, stop=stop, on_listening=lambda rec: listening.set_result(rec.port))
    )
    port = await asyncio.wait_for(listening, 20)
    async with connect(f"ws://127.0.0.1:{port}/done", proxy=None) as ws:
        await ws.send("one")
        assert await ws.recv() == "one"
    held = await connect(f"ws://127.0.0.1:{port}/held", proxy=None)
    await held.send("two")
    assert await held.recv() == "two"
    # Give the close of /done its hook before stopping (it runs just after the relay).
    for _ in range(200):
        if any(isinstance(r, Close) for r in records_so_far(out)):
            break
        await asyncio.sleep(0.01)
    stop.set()
    result = await asyncio.wait_for(task, 20)
    await asyncio.wait_for(held.wait_closed(), 10)
    assert result.failure is None
    assert result.closed_out == 1
    assert (result.stats.closed, result.stats.open, result.stats.messages) == (2, 0, 4)
    _, records = read_cassette(out)
    assert [type(r) for r in records] == [
        Open,
        Message,
        Message,
        Close,
        Open,
        Message,
        Message,
        Close,
        Note,
    ]


async def test_cancelling_the_task_still_ends_the_cassette(
    tmp_path: Path, server: ScenarioServer
) -> None:
    out = tmp_path / "cancelled.msgpack"
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    config = RecordConfig(output=out, mode=f"reverse:ws://127.0.0.1:{server.port}", listen_port=0)
    task = asyncio.create_task(
        record(config, on_listening=lambda rec: listening.set_result(rec.port))
    )
    port = await asyncio.wait_for(listening, 20)
    ws = await connect(f"ws://127.0.0.1:{port}/open", proxy=None)
    await ws.send("hi")
    await ws.recv()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    *_, close, note = read_cassette(out)[1]
    assert isinstance(close, Close) and close.by is None
    assert isinstance(note, Note)
    with socket.socket() as s:  # the listener is gone
        assert s.connect_ex(("127.0.0.1", port)) != 0
    await ws.close()


async def test_startup_errors(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "x.msgpack"
        with pytest.raises(RecordUsageError, match="address already in use"):
            await record(RecordConfig(output=out, listen_port=port))
        assert not out.exists()  # nothing left behind
    with pytest.raises(RecordUsageError, match="invalid --filter"):
        await record(RecordConfig(output=out, filter="~q ("))
    with pytest.raises(RecordUsageError, match="idle-timeout"):
        await record(RecordConfig(output=out, idle_timeout=0))
    junk = tmp_path / "junk.msgpack"
    junk.write_bytes(b"\x00junk")
    with pytest.raises(RecordCassetteError, match="not a wstape cassette"):
        await record(RecordConfig(output=junk, write=WriteMode.APPEND))
    with pytest.raises(RecordUsageError, match="already exists"):
        await record(RecordConfig(output=junk))
    assert junk.read_bytes() == b"\x00junk"
    with pytest.raises(RecordUsageError, match="--ready-file"):
        await record(
            RecordConfig(output=out, listen_port=0, ready_file=tmp_path / "nowhere" / "port")
        )
    assert not out.exists()  # nothing recorded, nothing left behind


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"secret_env": ["WSTAPE_SURELY_UNSET"]}, "--secret-env: WSTAPE_SURELY_UNSET is not set"),
        ({"secret_files": [Path("/nonexistent/s.txt")]}, "--secret-file: /nonexistent/s.txt"),
        ({"redact_headers": ["a b"]}, "--redact-header: not a header name: 'a b'"),
        ({"redact_json_keys": [""]}, "--redact-json-key: empty name"),
    ],
)
async def test_redaction_errors_are_usage_errors_before_anything_is_written(
    tmp_path: Path, config: dict[str, object], message: str
) -> None:
    out = tmp_path / "x.msgpack"
    with pytest.raises(RecordUsageError) as info:
        await record(RecordConfig(output=out, listen_port=0, **config))  # type: ignore[arg-type]
    assert str(info.value) == message or str(info.value).startswith(message)
    assert not out.exists()


def test_redaction_summary() -> None:
    stats = RecorderStats()
    assert render_redaction(stats) == ""
    stats.redacted.headers, stats.redacted.json_keys, stats.redacted.secrets = 2, 1, 1
    assert (
        render_redaction(stats) == "; redacted 4 values (headers 2, JSON keys 1, secret values 1)"
    )


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc ")  # type: ignore[union-attr]
    except (ValueError, OSError, AttributeError):
        return False


GLIBC = _glibc()


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_malloc_thresholds_are_fixed_with_glibc() -> None:
    assert runner.keep_freed_heap()
    assert runner.keep_freed_heap()  # (again: the same values)


@pytest.mark.parametrize("answer", ["musl 1.2", None, ValueError("unknown name")])
def test_malloc_is_left_alone_without_glibc(
    monkeypatch: pytest.MonkeyPatch, answer: str | Exception | None
) -> None:
    def confstr(name: str) -> str | None:
        if isinstance(answer, Exception):
            raise answer
        return answer

    monkeypatch.setattr(os, "confstr", confstr)
    assert runner.keep_freed_heap() is False


def test_the_blocking_entry_point_tunes_malloc_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(runner, "keep_freed_heap", lambda: calls.append("malloc") or True)

    async def fake_record(config: RecordConfig, **kwargs: object) -> str:
        calls.append("record")
        assert kwargs["handle_signals"] is True
        return "result"

    monkeypatch.setattr(runner, "record", fake_record)
    assert runner.run(RecordConfig(output=tmp_path / "c.msgpack"), status=None) == "result"
    assert calls == ["malloc", "record"]
