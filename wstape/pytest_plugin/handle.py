"""What the ``wstape_server`` fixture yields: a replay (or a recording) for one test.

The server always runs in a background thread with its own event loop
(:class:`~wstape.pytest_plugin.loop.LoopThread`), so the fixture is the same for sync and
async tests, whatever loop scope pytest-asyncio gives them. Everything it does goes
through the library's public API: :class:`wstape.replay.ReplayServer` and
:func:`wstape.addons.runner.record`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wstape.core.errors import ConfigError
from wstape.core.report import Report
from wstape.pytest_plugin.judging import (
    failure_text,
    problems,
    still_open_lines,
    without_fixture_host,
)
from wstape.pytest_plugin.lock import CassetteLock
from wstape.pytest_plugin.loop import LoopThread
from wstape.pytest_plugin.settings import Settings, WstapeUsageError

if TYPE_CHECKING:
    from wstape.addons.runner import Recording, RecordResult
    from wstape.replay.server import ReplayServer

RECORD_WAIT = 600.0
"""How long a worker waits for another one recording the same cassette (``once``)."""
SETTLE = 1.0
"""Seconds to wait after the test body for the test's connections to end."""
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
LOCAL_NAMES = ("127.0.0.1", "localhost")
"""Names a wss:// certificate of the fixture always covers."""


class WstapeServer:
    """Where to connect, and the report so far.

    ``url`` is the base ``ws://127.0.0.1:PORT`` (``wss://`` with ``tls=True``), without a
    trailing slash: append the recorded path. ``ca_path`` is the PEM of the CA a wss client
    must trust (None for ws). ``recording`` is True when this run records through a proxy
    in front of the upstream instead of replaying.
    """

    def __init__(self, settings: Settings, confdir: Path, *, run: str = "") -> None:
        self.settings = settings
        self.run = run
        """The test run this test belongs to (record mode ``all``: its first test replaces
        the cassette, the others append)."""
        self.cassette = settings.cassette
        self.recording = settings.records
        self.confdir = confdir
        self.url = ""
        self.port = 0
        self.ca_path: Path | None = None
        self._thread: LoopThread | None = None
        self._server: ReplayServer | None = None
        self._recording: Recording | None = None
        self._record_future: concurrent.futures.Future[RecordResult] | None = None
        self._record_stop: asyncio.Event | None = None
        self._judged = 0
        self._stopped = False
        self._lock: CassetteLock | None = None
        self._append = False
        """Record mode ``all``: this run replaced the cassette already, append to it."""

    def __repr__(self) -> str:
        mode = "recording" if self.recording else "replaying"
        return f"<WstapeServer {mode} {self.cassette} at {self.url or '(not started)'}>"

    # -- starting -------------------------------------------------------------------

    def start(self) -> None:
        """Start replaying (or recording). Raises WstapeUsageError with a readable message.

        In record mode ``once`` several processes (pytest-xdist workers) may want the same
        missing cassette: they take its lock (:mod:`~wstape.pytest_plugin.lock`), the first
        records it while holding the lock, the others wait for it and then replay what it
        recorded.
        """
        if self.settings.record_mode == "all" and self.recording:
            # The run's first test to record the cassette replaces it, the others append:
            # tests that share it, in one process or in several workers, all keep theirs.
            lock = CassetteLock(self.cassette)
            if not lock.acquire(START_TIMEOUT):
                raise WstapeUsageError(
                    f"cassette {self.cassette}: its lock {lock.path} stayed taken for "
                    f"{START_TIMEOUT:g} s"
                )
            try:
                self._append = not lock.first_of_run(self.run)
                self._start(None)
            finally:
                lock.release()  # (the writer is open by now: the next test appends)
            return
        if self.settings.record_mode == "once":
            self._lock = CassetteLock(self.cassette)
            if not self._lock.acquire(START_TIMEOUT + RECORD_WAIT):
                raise WstapeUsageError(
                    f"cassette {self.cassette}: another process has been recording it for "
                    f"over {START_TIMEOUT + RECORD_WAIT:g} s (lock {self._lock.path})"
                )
            self.recording = self.settings.records
            if not self.recording:
                self._lock.release()  # it exists now: replay it, let the others read too
        self._start(self._lock)

    def _start(self, lock: CassetteLock | None) -> None:
        self._thread = LoopThread(f"wstape {self.cassette.name}")
        try:
            if self.recording:
                self._start_recording()
            else:
                self._start_replay()
        except BaseException:
            self._thread.close()
            if lock is not None:
                lock.release()
            raise

    def _start_replay(self) -> None:
        from wstape.cassettes import CassetteError
        from wstape.replay.server import ReplayServer
        from wstape.replay.tls import TlsOptions, TlsSetupError

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
        options = s.options
        if s.tls:
            names = tuple(dict.fromkeys((*s.hostnames, *LOCAL_NAMES)))
            options = replace(options, tls=TlsOptions(hostnames=names, confdir=self.confdir))
        server = ReplayServer(s.cassette, options)
        assert self._thread is not None
        try:
            self.port = self._thread.run(server.start(), START_TIMEOUT)
        except CassetteError as e:
            raise WstapeUsageError(f"cannot replay: {e}") from None
        except TlsSetupError as e:
            raise WstapeUsageError(f"cannot set up TLS: {e}") from None
        except ConfigError as e:  # a fault aimed at no recorded connection
            raise WstapeUsageError(f"cannot replay {s.cassette}: {e}") from None
        self._server = server
        self.url = server.url
        if options.tls is not None:
            self.ca_path = options.tls.ca_path

    def _start_recording(self) -> None:
        with warnings.catch_warnings():
            # mitmproxy's dependencies warn about their own deprecations on import; that is
            # nothing the test suite using the plugin can act on.
            warnings.simplefilter("ignore", DeprecationWarning)
            from wstape.addons.runner import RecordConfig, RecordError, record
        from wstape.cassettes import WriteMode

        RECORD_WRITE_MODES = {
            "once": WriteMode.CREATE,
            "new_episodes": WriteMode.APPEND,
            "all": WriteMode.OVERWRITE,
        }

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
            write=WriteMode.APPEND if self._append else RECORD_WRITE_MODES[s.record_mode],
            confdir=str(self.confdir),
            ssl_insecure=s.ssl_insecure,
            default_redaction=s.redaction.default_redaction,
            redact_headers=s.redaction.redact_headers,
            redact_json_keys=s.redaction.redact_json_keys,
            redact_query=s.redaction.redact_query,
            secret_env=s.redaction.secret_env,
            secret_files=s.redaction.secret_files,
        )
        listening: concurrent.futures.Future[Recording] = concurrent.futures.Future()
        stop = asyncio.Event()
        assert self._thread is not None
        future = self._thread.submit(record(config, stop=stop, on_listening=listening.set_result))
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
        self._recording = listening.result()
        self.port = self._recording.port
        self.url = f"{'wss' if s.tls else 'ws'}://127.0.0.1:{self.port}"
        if s.tls:
            self.ca_path = self.confdir / "mitmproxy-ca-cert.pem"

    # -- while the test runs ----------------------------------------------------------

    def report(self) -> Report:
        """The replay report so far (empty while recording: nothing is checked then)."""
        server = self._server
        if server is None or self._thread is None:
            return Report(self.settings.profile, str(self.cassette))
        if self._stopped:
            return without_fixture_host(server.report())

        async def snapshot() -> Report:
            return server.report()

        return without_fixture_host(self._thread.run(snapshot(), STOP_TIMEOUT))

    def inject(self, spec: str) -> None:
        """Inject a fault now (``drop@after=1``, ``mute-heartbeats``; docs/faults.md) on
        the connections it aims at, open ones included. Replay only."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            raise WstapeUsageError("inject() works while replaying, not while recording")

        async def go() -> None:
            server.inject(spec)

        try:
            thread.run(go(), STOP_TIMEOUT)
        except ConfigError as e:
            raise WstapeUsageError(f"inject({spec!r}): {e}") from None

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
        thread.run(server.settle(timeout), timeout + STOP_TIMEOUT)

    def problems(self, *, final: bool) -> list[str]:
        """Lines for the violations that fail the test, not returned before.

        ``final`` adds the connections still open with recorded messages unreached (only
        once nothing else can close them).
        """
        if self._server is None:
            return []
        report = self.report()
        allow = self.settings.allow_unplayed
        lines = problems(report, since=self._judged, allow_unplayed=allow)
        self._judged = len(report.violations)
        if final and not allow:
            lines += still_open_lines(self._unfinished())
        return lines

    def _unfinished(self) -> list[int]:
        server, thread = self._server, self._thread
        if server is None or thread is None or self._stopped:
            return []

        async def scan() -> list[int]:
            return server.unfinished()

        return thread.run(scan(), STOP_TIMEOUT)

    def failure_text(self, lines: list[str]) -> str:
        return failure_text(str(self.cassette), self.settings.profile, lines)

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
            if self._lock is not None:
                self._lock.release()

    def _stop_recording(self, thread: LoopThread) -> None:
        future, stop, recording = self._record_future, self._record_stop, self._recording
        if future is None or stop is None:
            return
        if recording is not None:
            # A connection the test just closed is recorded with its close, not cut off.
            thread.run(recording.wait_idle(SETTLE), SETTLE + STOP_TIMEOUT)
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
        stats = result.stats
        if stats.upstream_failure is not None and not stats.open + stats.closed + stats.refused:
            # The upstream was never reached: a cassette of nothing would be replayed from
            # now on (record mode once) instead of recorded, each connection a 404.
            if self.settings.record_mode == "once":
                self.cassette.unlink(missing_ok=True)
                kept = "no cassette was kept"
            elif self.settings.record_mode == "all" and not self._append:
                kept = "the cassette now holds no connection"
            else:
                kept = "nothing was appended to the cassette"
            why = stats.upstream_failure
            if stats.upstream_unverified and not self.settings.ssl_insecure:
                why += " (--wstape-ssl-insecure or ssl_insecure=True skips the check)"
            raise WstapeUsageError(f"recording to {self.cassette} recorded nothing: {why}; {kept}")


__all__ = ["LOCAL_NAMES", "SETTLE", "WstapeServer"]
