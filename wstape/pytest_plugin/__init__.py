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

import asyncio
import concurrent.futures
import inspect
import re
import threading
import time
from collections.abc import Coroutine, Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from wstape.core.report import Report
from wstape.core.rules import Severity, Violation, unknown_rule_ids

if TYPE_CHECKING:
    from wstape.replay.server import ReplayServer

RECORD_MODES = ("none", "once", "new_episodes", "all")
"""As in VCR.py: never record, record a missing cassette, append a new session, re-record."""

MARKER_KWARGS = frozenset(
    {
        "cassette",
        "profile",
        "appid",
        "allow_hosts",
        "platform",
        "max_sockets",
        "ignore",
        "match",
        "ignore_json_paths",
        "ignore_query",
        "speed",
        "timeout",
        "tls",
        "hostnames",
        "allow_unplayed",
        "upstream",
        "record_mode",
    }
)

SETTLE = 1.0
"""Seconds to wait after the test body for the test's connections to end."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCAL_NAMES = ("127.0.0.1", "localhost")
FIXTURE_HOSTS = frozenset({"127.0.0.1", "localhost"})
"""Hosts the fixture hands out: WX-URL-HOST does not judge them (see docs/pytest.md)."""

_T = TypeVar("_T")


class WstapeUsageError(Exception):
    """The marker or the command line asks for something impossible (one line of text)."""


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
        "--wstape-confdir",
        action="store",
        default=None,
        metavar="DIR",
        help="mitmproxy configuration directory whose CA signs wss:// certificates "
        "[default: a fresh one per test session].",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "wstape(cassette, **options): replay (or record) the cassette for the wstape_server "
        "fixture; options: " + ", ".join(sorted(MARKER_KWARGS - {"cassette"})) + ". "
        "The cassette path is relative to the test file's folder.",
    )


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


@dataclass(frozen=True)
class Settings:
    """The merged ``wstape`` markers and command-line options of one test."""

    cassette: Path
    record_mode: str = "none"
    upstream: str | None = None
    allow_unplayed: bool = False
    tls: bool = False
    hostnames: tuple[str, ...] = ()
    replay: dict[str, Any] = field(default_factory=dict)
    """ReplayOptions fields (rules, matching, timing)."""

    @property
    def records(self) -> bool:
        """Whether this run records instead of replaying."""
        if self.record_mode == "none":
            return False
        if self.record_mode == "once":
            return not self.cassette.exists()
        return True


def _seq(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(v) for v in value)
    raise WstapeUsageError(f"{name}= takes a string or a list of strings, not {value!r}")


def _default_cassette(item: pytest.Item) -> Path:
    name = re.sub(r"[^\w.-]+", "_", item.name).strip("_") or "test"
    return Path("cassettes") / item.path.stem / f"{name}.msgpack"


def settings_for(item: pytest.Item) -> Settings:
    """Merge the test's ``wstape`` markers (closest wins) with the command line.

    Raises WstapeUsageError for an unknown argument or value.
    """
    cassette: str | Path | None = None
    kwargs: dict[str, Any] = {}
    for mark in item.iter_markers("wstape"):  # closest first
        if len(mark.args) > 1:
            raise WstapeUsageError(
                f"@pytest.mark.wstape takes one positional argument (the cassette), "
                f"got {len(mark.args)}"
            )
        unknown = sorted(set(mark.kwargs) - MARKER_KWARGS)
        if unknown:
            raise WstapeUsageError(
                f"@pytest.mark.wstape: unknown argument {', '.join(unknown)}; "
                f"known: {', '.join(sorted(MARKER_KWARGS))}"
            )
        if cassette is None and mark.args:
            cassette = mark.args[0]
        for k, v in mark.kwargs.items():
            kwargs.setdefault(k, v)
    if cassette is None:
        cassette = kwargs.pop("cassette", None)
    else:
        kwargs.pop("cassette", None)
    path = Path(cassette) if cassette is not None else _default_cassette(item)
    if not path.is_absolute():
        path = item.path.parent / path

    config = item.config
    record_mode = kwargs.pop("record_mode", None) or config.getoption("wstape_record_mode")
    record_mode = record_mode or "none"
    if record_mode not in RECORD_MODES:
        raise WstapeUsageError(
            f"record_mode={record_mode!r}: choose one of {', '.join(RECORD_MODES)}"
        )
    upstream = kwargs.pop("upstream", None) or config.getoption("wstape_upstream")
    if upstream is not None and not re.match(r"(?i)^(ws|wss|http|https)://[^/]", str(upstream)):
        raise WstapeUsageError(f"upstream={upstream!r}: expected ws://HOST:PORT or wss://...")

    replay: dict[str, Any] = {"speed": 0.0}
    for name in ("profile", "appid", "platform", "match"):
        if kwargs.get(name) is not None:
            replay[name] = str(kwargs[name])
    for name in ("allow_hosts", "ignore_json_paths"):
        if name in kwargs:
            replay[name] = _seq(name, kwargs[name])
    if "ignore" in kwargs:
        ignored = tuple(i.upper() for i in _seq("ignore", kwargs["ignore"]))
        unknown_ids = unknown_rule_ids(list(ignored))
        if unknown_ids:
            raise WstapeUsageError(f"ignore=: unknown rule ID {', '.join(unknown_ids)}")
        replay["ignore"] = frozenset(ignored)
    for name, kind in (("speed", float), ("timeout", float), ("max_sockets", int)):
        if kwargs.get(name) is not None:
            try:
                replay[name] = kind(kwargs[name])
            except (TypeError, ValueError):
                raise WstapeUsageError(f"{name}={kwargs[name]!r} is not a number") from None
    if "ignore_query" in kwargs:
        replay["ignore_query"] = bool(kwargs["ignore_query"])
    return Settings(
        cassette=path,
        record_mode=record_mode,
        upstream=str(upstream) if upstream is not None else None,
        allow_unplayed=bool(kwargs.get("allow_unplayed", False)),
        tls=bool(kwargs.get("tls", False)),
        hostnames=_seq("hostnames", kwargs["hostnames"]) if "hostnames" in kwargs else (),
        replay=replay,
    )


# -- a private event loop in a thread ----------------------------------------------------


class LoopThread:
    """An event loop running in a daemon thread; coroutines are submitted from outside."""

    def __init__(self, name: str = "wstape") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            try:
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
                self.loop.run_until_complete(self.loop.shutdown_default_executor())
            finally:
                self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float) -> _T:
        """Run ``coro`` on the loop and wait for its result (TimeoutError after ``timeout``)."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"wstape: gave up after {timeout:g} s") from None

    def close(self) -> None:
        """Cancel whatever still runs, stop the loop and join the thread."""
        if self.loop.is_closed() or not self._thread.is_alive():
            return

        async def cancel_all() -> None:
            me = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not me]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all(), 10)
        except (TimeoutError, RuntimeError):
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


# -- the fixture's object ------------------------------------------------------------------


def _format_violation(v: Violation) -> str:
    data = v.to_json()
    conn = "-" if v.conn is None else str(v.conn)
    line = f"{v.severity.value:5} {v.rule} conn {conn}: {v.message}"
    extra = []
    if data.get("expected") is not None:
        extra.append(f"expected {_short(data['expected'])}")
    if data.get("actual") is not None:
        extra.append(f"actual {_short(data['actual'])}")
    return line + (f" ({', '.join(extra)})" if extra else "")


def _short(value: object, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _without_fixture_host(report: Report) -> Report:
    """Drop WX-URL-HOST findings about the fixture's own address.

    The test's client connects where ``url`` says, 127.0.0.1: that host is the fixture's
    choice, not the client's, so judging it would fail every wechat test. A client that
    connects by the recorded name (``hostnames=``) still has its host checked.
    """
    kept = tuple(
        v
        for v in report.violations
        if not (v.rule == "WX-URL-HOST" and str(v.actual).lower() in FIXTURE_HOSTS)
    )
    if len(kept) == len(report.violations):
        return report
    return replace(report, violations=kept)


class WstapeServer:
    """What ``wstape_server`` yields: where to connect, and the report so far.

    ``url`` is the base ``ws://127.0.0.1:PORT`` (``wss://`` with ``tls=True``), without a
    trailing slash: append the recorded path. ``ca_path`` is the PEM of the CA a wss client
    must trust (None for ws). ``recording`` is True when this run records through a proxy
    in front of the upstream instead of replaying.
    """

    def __init__(self, settings: Settings, confdir: Path) -> None:
        self.settings = settings
        self.cassette = settings.cassette
        self.recording = settings.records
        self.confdir = confdir
        self.url = ""
        self.port = 0
        self.ca_path: Path | None = None
        self._thread: LoopThread | None = None
        self._server: ReplayServer | None = None
        self._record_future: concurrent.futures.Future[Any] | None = None
        self._record_stop: asyncio.Event | None = None
        self._judged = 0
        self._stopped = False

    def __repr__(self) -> str:
        mode = "recording" if self.recording else "replaying"
        return f"<WstapeServer {mode} {self.cassette} at {self.url or '(not started)'}>"

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        """Start replaying (or recording). Raises WstapeUsageError with a readable message."""
        self._thread = LoopThread(f"wstape {self.cassette.name}")
        try:
            if self.recording:
                self._start_recording()
            else:
                self._start_replay()
        except BaseException:
            self._thread.close()
            raise

    def _start_replay(self) -> None:
        from wstape.cassettes import CassetteError
        from wstape.replay.server import ReplayOptions, ReplayServer
        from wstape.replay.tls import TlsSetupError

        s = self.settings
        if not s.cassette.exists():
            hint = (
                "record it with --wstape-record-mode=once --wstape-upstream ws://HOST:PORT"
                if s.record_mode == "none"
                else "and no upstream to record it from"
            )
            raise WstapeUsageError(
                f"cassette {s.cassette} not found (record mode {s.record_mode}); {hint}"
            )
        fields = dict(s.replay)
        if s.tls:
            names = tuple(dict.fromkeys((*s.hostnames, *LOCAL_NAMES)))
            fields.update(tls=True, hostnames=names, confdir=self.confdir)
        try:
            server = ReplayServer(s.cassette, ReplayOptions(host="127.0.0.1", port=0, **fields))
        except ValueError as e:
            raise WstapeUsageError(f"@pytest.mark.wstape: {e}") from None
        assert self._thread is not None
        try:
            self.port = self._thread.run(server.start(), START_TIMEOUT)
        except CassetteError as e:
            raise WstapeUsageError(f"cannot replay: {e}") from None
        except TlsSetupError as e:
            raise WstapeUsageError(f"cannot set up TLS: {e}") from None
        self._server = server
        self.url = server.url
        if s.tls:
            self.ca_path = self.confdir / "mitmproxy-ca-cert.pem"

    def _start_recording(self) -> None:
        from wstape.addons.runner import RecordConfig, RecordError, record

        s = self.settings
        if s.upstream is None:
            why = "is missing" if s.record_mode == "once" else f"is {s.record_mode}"
            raise WstapeUsageError(
                f"cassette {s.cassette}: record mode {s.record_mode} needs an upstream to "
                f"record from (the record mode {why}); pass --wstape-upstream ws://HOST:PORT "
                "or @pytest.mark.wstape(..., upstream=...)"
            )
        upstream = s.upstream
        if upstream.lower().startswith(("http://", "https://")):
            upstream = "ws" + upstream[4:]
        s.cassette.parent.mkdir(parents=True, exist_ok=True)
        config = RecordConfig(
            output=s.cassette,
            mode=f"reverse:{upstream}",
            listen_host="127.0.0.1",
            listen_port=0,
            append=s.record_mode == "new_episodes",
            overwrite=s.record_mode == "all",
            confdir=str(self.confdir),
        )
        listening: concurrent.futures.Future[int] = concurrent.futures.Future()

        def on_listening(_host: str, port: int) -> None:
            listening.set_result(port)

        stop = asyncio.Event()
        assert self._thread is not None
        future = self._thread.submit(record(config, stop=stop, on_listening=on_listening))
        self._record_future, self._record_stop = future, stop
        waitables: list[concurrent.futures.Future[Any]] = [listening, future]
        done, _ = concurrent.futures.wait(
            waitables, START_TIMEOUT, concurrent.futures.FIRST_COMPLETED
        )
        if future in done:
            try:
                future.result()
            except RecordError as e:
                raise WstapeUsageError(f"cannot record {s.cassette}: {e}") from None
            raise WstapeUsageError(f"cannot record {s.cassette}: the recorder stopped at once")
        if listening not in done:
            raise WstapeUsageError(f"cannot record {s.cassette}: the proxy did not start")
        self.port = listening.result()
        self.url = f"{'wss' if s.tls else 'ws'}://127.0.0.1:{self.port}"
        if s.tls:
            self.ca_path = self.confdir / "mitmproxy-ca-cert.pem"

    # -- while the test runs ----------------------------------------------------------

    def report(self) -> Report:
        """The replay report so far (empty while recording: nothing is checked then)."""
        server = self._server
        if server is None or self._thread is None:
            return Report(str(self.settings.replay.get("profile", "rfc6455")), str(self.cassette))
        if self._stopped:
            return _without_fixture_host(server.report())

        async def snapshot() -> Report:
            return server.report()

        return _without_fixture_host(self._thread.run(snapshot(), STOP_TIMEOUT))

    def wait_played(self, timeout: float = 10.0) -> bool:
        """Wait until every recorded connection was played (replay only)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return False
        return thread.run(server.wait_played(timeout), timeout + STOP_TIMEOUT)

    # -- judging ------------------------------------------------------------------------

    def settle(self, timeout: float = SETTLE) -> None:
        """Wait up to ``timeout`` for the test's connections to end (replay only)."""
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopped:
            return

        async def wait() -> None:
            deadline = time.monotonic() + timeout
            while server.session is not None and server.session.connections:
                if time.monotonic() >= deadline:
                    return
                await asyncio.sleep(0.01)

        thread.run(wait(), timeout + STOP_TIMEOUT)

    def problems(self, *, final: bool) -> list[str]:
        """Lines for the violations that fail the test, not returned before.

        ``final`` adds the connections still open with recorded messages unreached (only
        once nothing else can close them).
        """
        server = self._server
        if server is None:
            return []
        report = self.report()
        opened = {c.conn for c in report.connections}
        lines = []
        for v in report.violations[self._judged :]:
            if v.severity is Severity.ERROR:
                lines.append(_format_violation(v))
            elif (
                v.rule == "REPLAY-UNPLAYED"
                and v.conn in opened
                and not self.settings.allow_unplayed
            ):
                lines.append(_format_violation(v) + " [allow_unplayed=True accepts this]")
        self._judged = len(report.violations)
        if final and not self.settings.allow_unplayed:
            lines += self._still_open_unplayed()
        return lines

    def _still_open_unplayed(self) -> list[str]:
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopped:
            return []
        from wstape.core.script import Step

        async def scan() -> list[str]:
            found = []
            session = server.session
            for live in list(session.connections.values()) if session else []:
                script = live.script
                if script is not None and script.state is Step.RUNNING:
                    found.append(
                        f"warn  REPLAY-UNPLAYED conn {live.conn}: still open at the end of the "
                        "test with recorded messages never reached "
                        "[allow_unplayed=True accepts this]"
                    )
            return found

        return thread.run(scan(), STOP_TIMEOUT)

    def failure_text(self, lines: list[str]) -> str:
        n = len(lines)
        head = (
            f"wstape: {n} problem{'s' if n != 1 else ''} replaying {self.cassette} "
            f"(profile {self.settings.replay.get('profile', 'rfc6455')}):"
        )
        return "\n".join([head, *(f"  {line}" for line in lines)])

    # -- stopping -------------------------------------------------------------------------

    def stop(self) -> list[str]:
        """Stop the server or the recording; return the final problems (see :meth:`problems`).

        Idempotent. Raises WstapeUsageError when the recording failed.
        """
        if self._stopped or self._thread is None:
            return []
        thread = self._thread
        try:
            if self._server is not None:
                try:
                    self.settle()
                    lines = self.problems(final=True)
                finally:  # close the listener and the connections whatever happened
                    thread.run(self._server.stop(), STOP_TIMEOUT)
                    self._stopped = True
                return lines + self.problems(final=False)
            self._stopped = True
            self._stop_recording(thread)
            return []
        finally:
            self._stopped = True
            thread.close()

    def _stop_recording(self, thread: LoopThread) -> None:
        future, stop = self._record_future, self._record_stop
        if future is None or stop is None:
            return
        thread.run(_proxy_idle(SETTLE), SETTLE + STOP_TIMEOUT)
        from wstape.addons.runner import RecordError

        thread.loop.call_soon_threadsafe(stop.set)
        try:
            result = future.result(STOP_TIMEOUT)
        except concurrent.futures.TimeoutError:
            raise WstapeUsageError(
                f"recording to {self.cassette} did not stop within {STOP_TIMEOUT:g} s"
            ) from None
        except RecordError as e:
            raise WstapeUsageError(f"recording to {self.cassette} failed: {e}") from None
        if result.failure is not None:
            raise WstapeUsageError(f"recording to {self.cassette} failed: {result.failure}")


async def _proxy_idle(timeout: float) -> None:
    """Wait (up to ``timeout``) until the recording proxy has no client connection left,
    so a connection the test just closed is recorded with its close, not cut off."""
    from mitmproxy import ctx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            proxyserver = ctx.master.addons.get("proxyserver")  # type: ignore[no-untyped-call]
            busy = bool(proxyserver.connections) if proxyserver is not None else False
        except Exception:
            return
        if not busy:
            return
        await asyncio.sleep(0.01)


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
    try:
        handle = WstapeServer(settings_for(item), _wstape_confdir)
        handle.start()
    except WstapeUsageError as e:
        pytest.fail(f"wstape: {e}", pytrace=False)
    item.stash[_SERVER_KEY] = handle
    try:
        yield handle
    finally:
        try:
            lines = handle.stop()
        except WstapeUsageError as e:
            pytest.fail(f"wstape: {e}", pytrace=False)
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
