"""pytest plugin: replay a cassette for a test (or record it), and fail the test on violations.

Registered through the ``pytest11`` entry point, so it is active wherever wstape is
installed::

    @pytest.mark.wstape("cassettes/chat.msgpack", profile="wechat", match="json")
    async def test_chat(wstape_server):
        async with websockets.connect(wstape_server.url + "/chat") as ws:
            ...

``wstape_server`` runs the replay server (:class:`wstape.replay.ReplayServer`) on a free
port of 127.0.0.1 for the one test. The server always runs in a background thread with
its own event loop, so the fixture is the same for sync tests and for async tests,
whatever loop scope pytest-asyncio gives them.

When the test body has returned, the plugin waits briefly for the test's connections to
end and fails the test with the violation list when an error-severity violation occurred,
or when a connection the test opened did not reach all of its recorded messages
(``REPLAY-UNPLAYED``; ``allow_unplayed=True`` accepts that). Recorded connections the test
never opened are not a failure. Whatever happens after that (a connection a fixture
closes later) is judged when the fixture is torn down.

Record modes follow VCR.py (``--wstape-record-mode`` or the marker's ``record_mode``):
``none`` (default: never touch the network), ``once`` (record when the cassette is
missing), ``new_episodes`` (record and append the whole session to the cassette), ``all``
(record and overwrite). Recording runs ``wstape record`` in reverse mode in front of
``--wstape-upstream`` (or the marker's ``upstream``) and points ``url`` at the proxy.

See docs/pytest.md.
"""

from __future__ import annotations

import inspect
import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from wstape.pytest_plugin.handle import WstapeServer
from wstape.pytest_plugin.loop import LoopThread
from wstape.pytest_plugin.settings import (
    DEFAULTS_SHARED,
    MARKER_KWARGS,
    RECORD_MODES,
    Settings,
    WstapeUsageError,
    find_shared_defaults,
    settings_for,
)

# -- options and markers ---------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wstape", "WebSocket record/replay (wstape)")
    group.addoption(
        "--wstape-record-mode",
        action="store",
        default=None,
        choices=RECORD_MODES,
        help="none (default): replay only, never touch the network; once: record cassettes "
        "that are missing; new_episodes: record and append the session to the cassette; "
        "all: record and overwrite. A marker's record_mode= wins over this.",
    )
    group.addoption(
        "--wstape-upstream",
        action="store",
        default=None,
        metavar="URL",
        help="The real WebSocket server to record from (ws://host:port or wss://...); "
        "a marker's upstream= wins over this.",
    )
    group.addoption(
        "--wstape-ssl-insecure",
        action="store_true",
        default=False,
        help="When recording, do not verify the upstream's TLS certificate (a self-signed "
        "wss:// backend); a marker's ssl_insecure= wins over this.",
    )
    group.addoption(
        "--wstape-confdir",
        action="store",
        default=None,
        metavar="DIR",
        help="mitmproxy configuration directory whose CA signs wss:// certificates "
        "[default: a fresh one per test session].",
    )


def run_id(config: pytest.Config) -> str:
    """This test run: in a pytest-xdist worker, the run id all its workers share (xdist's
    ``testrunuid``: not the environment, which a pytest started inside a test inherits),
    else this session's own."""
    worker = getattr(config, "workerinput", None)
    shared = worker.get("testrunuid") if isinstance(worker, dict) else None
    if isinstance(shared, str):
        return shared
    if not hasattr(config, "_wstape_run"):
        config._wstape_run = f"{os.getpid()}-{uuid.uuid4().hex}"  # type: ignore[attr-defined]
    return str(config._wstape_run)  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wstape(cassette, **options): replay (or record) the cassette for the wstape_server "
        "fixture; options: " + ", ".join(sorted(MARKER_KWARGS - {"cassette"})) + ". "
        "The cassette path is relative to the test file's folder.",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Find the default cassettes collected tests would share (before ``-k`` deselects
    any): each such test fails at setup naming the others."""
    config.stash[DEFAULTS_SHARED] = find_shared_defaults(items)


@pytest.hookimpl(tryfirst=True, wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Let pytest-asyncio run ``async def`` tests marked ``wstape`` even in strict mode."""
    if (
        inspect.iscoroutinefunction(obj)
        and collector.config.pluginmanager.hasplugin("asyncio")
        and _has_mark(obj, collector, "wstape")
        and not _has_mark(obj, collector, "asyncio")
    ):
        pytest.mark.asyncio(obj)
    return (yield)


def _has_mark(obj: object, collector: pytest.Module | pytest.Class, name: str) -> bool:
    marks = getattr(obj, "pytestmark", [])
    if any(getattr(m, "name", None) == name for m in marks):
        return True
    return any(True for _ in collector.iter_markers(name))


# -- fixtures and the hook that fails the test -----------------------------------------------

_SERVER_KEY = pytest.StashKey[WstapeServer]()


@pytest.fixture(scope="session")
def _wstape_confdir(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    given = request.config.getoption("wstape_confdir")
    if given:
        return Path(given).expanduser()
    return tmp_path_factory.mktemp("wstape-mitmproxy")


@pytest.fixture
def wstape_server(request: pytest.FixtureRequest, _wstape_confdir: Path) -> Iterator[WstapeServer]:
    """Replay (or record) the cassette named by ``@pytest.mark.wstape`` for this test."""
    item = request.node
    if item.get_closest_marker("wstape") is None:
        pytest.fail(
            "wstape_server needs @pytest.mark.wstape('cassettes/NAME.msgpack', ...) on the test",
            pytrace=False,
        )
    problem: str | None = None
    try:
        handle = WstapeServer(settings_for(item), _wstape_confdir, run=run_id(request.config))
        handle.start()
    except WstapeUsageError as e:
        problem = f"wstape: {e}"
    if problem is not None:  # failed outside the except block: one message, not two
        pytest.fail(problem, pytrace=False)
    item.stash[_SERVER_KEY] = handle
    lines: list[str] = []
    try:
        yield handle
    finally:
        try:
            lines = handle.stop()
        except WstapeUsageError as e:
            problem = f"wstape: {e}"
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    if lines:
        pytest.fail(handle.failure_text(lines), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """After the test body: fail the test when the replay found problems."""
    try:
        result = yield
    except BaseException:
        handle = item.stash.get(_SERVER_KEY, None)
        if handle is not None and not handle.recording:
            try:
                handle.settle()
                lines = handle.problems(final=False)
            except Exception:  # never hide the test's own failure behind ours
                lines = []
            if lines:
                item.add_report_section("call", "wstape", handle.failure_text(lines))
        raise
    handle = item.stash.get(_SERVER_KEY, None)
    if handle is not None and not handle.recording:
        handle.settle()
        lines = handle.problems(final=False)
        if lines:
            pytest.fail(handle.failure_text(lines), pytrace=False)
    return result


__all__ = [
    "MARKER_KWARGS",
    "RECORD_MODES",
    "LoopThread",
    "Settings",
    "WstapeServer",
    "WstapeUsageError",
    "settings_for",
    "wstape_server",
]
