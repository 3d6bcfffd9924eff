"""Run mitmproxy in-process with the recorder: the library function behind ``wstape record``.

The master is a bare :class:`mitmproxy.master.Master` with only the addons a recording
proxy needs (``core``, ``proxyserver``, ``next_layer``, ``tlsconfig`` and the
:class:`~wstape.addons.recorder.Recorder`): mitmdump's default addons run on every message
and cost a third or more of the throughput. Nothing here calls ``sys.exit``; startup
problems raise :class:`RecordUsageError` or :class:`RecordCassetteError` with one line of
text, and a write failure while recording ends the run with ``RecordResult.failure`` set.

Stopping (SIGINT/SIGTERM, a ``stop`` event, or a write failure) is done in this order,
because ``Master.shutdown()`` alone leaves the listener open and live WebSockets relaying,
and mitmproxy never calls ``websocket_end`` for connections still open:

1. close the listeners, so no new connection arrives unrecorded;
2. end every open connection in the cassette (``Close(by=None)`` and a note);
3. cancel the live connection handlers and wait briefly for them to finish;
4. run mitmproxy's ``done`` hooks and close the cassette.

:func:`run`, which owns its process, also fixes glibc's malloc thresholds
(:func:`keep_freed_heap`) so that relaying big messages does not shrink and regrow the
heap for every one of them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from mitmproxy import exceptions, flowfilter, options
from mitmproxy.proxy import mode_specs
from mitmproxy.utils import asyncio_utils

from wstape.addons.proxy import bare_master, cancel_connections, listen_error
from wstape.addons.recorder import Recorder, RecorderStats, build_redactor, private_writer
from wstape.cassettes import (
    CassetteError,
    CassetteExists,
    CassetteWriteError,
    CassetteWriter,
    WriteMode,
)
from wstape.core.errors import ConfigError, WstapeError
from wstape.core.listening import format_hostport
from wstape.core.model import Record
from wstape.tools.timeline import plain, record_segments

STOP_NOTE = "recording stopped (wstape record shut down) while the connection was open"
DRAIN_TIMEOUT = 3.0
"""Seconds to wait for cancelled connection handlers before shutting down anyway."""


class RecordError(WstapeError):
    """``wstape record`` could not start; the message is one line for the user."""


class RecordUsageError(RecordError):
    """A bad option, an output that exists, a port in use (exit code 2)."""


class RecordExists(RecordUsageError):
    """The output cassette exists and the config asks neither to append nor to overwrite
    (the caller adds how to ask: ``--append``, ``record_mode=``)."""


class RecordCassetteError(RecordError):
    """The cassette to append to is unreadable or from a newer wstape (exit code 3)."""


@dataclass(frozen=True)
class RecordConfig:
    """Everything ``wstape record`` takes; see ``wstape record --help``."""

    output: Path
    mode: str = "regular"
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    write: WriteMode = WriteMode.CREATE
    """What to do with an existing ``output``: refuse it, append to it, overwrite it."""
    confdir: str | None = None
    """mitmproxy's configuration directory (its CA lives there); None: ``~/.mitmproxy``."""
    ssl_insecure: bool = False
    idle_timeout: int | None = None
    """Seconds without traffic before mitmproxy cuts a connection; None: its 600."""
    filter: str | None = None
    default_redaction: bool = True
    """Redact the common secret names (:mod:`wstape.core.redaction`); False: only the
    names and values below."""
    redact_headers: Sequence[str] = ()
    """Headers redacted on top of the defaults."""
    redact_json_keys: Sequence[str] = ()
    redact_query: Sequence[str] = ()
    secret_env: Sequence[str] = ()
    """Environment variables whose values are never written."""
    secret_files: Sequence[Path] = ()
    """Files of values (one a line) never written."""
    ready_file: Path | None = None
    """Written with the listening port (and a newline) once the proxy accepts connections."""
    verbosity: int = 0
    """-1 (``-q``): only warnings and errors; 0: the listening line, a live status and a
    summary; 1 (``-v``): also one line per record written, as ``wstape show`` prints it."""


@dataclass
class RecordResult:
    output: Path
    listen: tuple[str, int]
    stats: RecorderStats
    closed_out: int = 0
    """Connections still open at the stop, ended with ``Close(by=None)``."""
    failure: CassetteWriteError | None = None
    duration: float = 0.0


_REDACTION_FLAGS = {
    "header": "--redact-header",
    "json_key": "--redact-json-key",
    "query": "--redact-query",
    "secret_env": "--secret-env",
    "secret_file": "--secret-file",
    "secret": "--secret-env/--secret-file",
}
"""The ``wstape record`` flag of each redaction option, for error messages."""


def _redaction(config: RecordConfig) -> dict[str, Any]:
    return {
        "defaults": config.default_redaction,
        "headers": list(config.redact_headers),
        "json_keys": list(config.redact_json_keys),
        "query": list(config.redact_query),
        "secret_env": list(config.secret_env),
        "secret_files": [str(f) for f in config.secret_files],
    }


def render_redaction(stats: RecorderStats) -> str:
    """``; redacted 3 values (headers 2, JSON keys 1)`` for the summary line ("" if none)."""
    line = stats.redacted.summary()
    return f"; {line}" if line else ""


def normalize_mode(mode: str) -> str:
    """mitmproxy's mode spec for ``mode``, accepting ``reverse:ws://`` and ``reverse:wss://``.

    Raises ValueError with a one-line explanation when the spec is not valid.
    """
    spec = mode.strip()
    if spec.startswith("reverse:ws://"):
        spec = "reverse:http://" + spec[len("reverse:ws://") :]
    elif spec.startswith("reverse:wss://"):
        spec = "reverse:https://" + spec[len("reverse:wss://") :]
    try:
        parsed = mode_specs.ProxyMode.parse(spec)
    except ValueError as e:
        raise ValueError(f"invalid --mode {mode!r}: {e}") from None
    if parsed.type_name not in ("regular", "reverse", "upstream", "socks5", "transparent"):
        raise ValueError(
            f"invalid --mode {mode!r}: wstape record supports regular, reverse:URL, "
            "upstream:URL, socks5 and transparent"
        )
    return spec


def validate_filter(expression: str) -> None:
    """Raise ValueError (one line) when ``expression`` is not a mitmproxy filter."""
    try:
        flowfilter.parse(expression)
    except ValueError as e:
        raise ValueError(f"invalid --filter: {e}") from None


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def render_stats(stats: RecorderStats) -> str:
    refused = f", {stats.refused} refused" if stats.refused else ""
    return (
        f"connections {stats.open} open, {stats.closed} closed{refused}; "
        f"messages {stats.messages} (c->s {stats.messages_client}, "
        f"s->c {stats.messages_server}); {human_bytes(stats.bytes)}"
    )


class StatusLine:
    """The live status on stderr: redrawn in place on a terminal, plain lines otherwise.

    Every other line printed while recording goes through :meth:`print` so it does not
    collide with the status.
    """

    def __init__(
        self, stream: TextIO | None, *, plain_interval: float = 2.0, quiet: bool = False
    ) -> None:
        self.stream = stream
        self.quiet = quiet
        """Only :meth:`print` (warnings, errors) writes: no status, no :meth:`info`."""
        self.tty = bool(stream is not None and stream.isatty())
        self.interval = 0.25 if self.tty else plain_interval
        self._drawn = False
        self._last = f"wstape: {render_stats(RecorderStats())}"  # nothing to report yet
        self._last_time = 0.0

    def print(self, line: str) -> None:
        if self.stream is None:
            return
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(line + "\n")
        self.stream.flush()

    def info(self, line: str) -> None:
        """A line that ``-q`` leaves out."""
        if not self.quiet:
            self.print(line)

    def update(self, stats: RecorderStats, *, force: bool = False) -> None:
        if self.stream is None or self.quiet:
            return
        text = f"wstape: {render_stats(stats)}"
        now = time.monotonic()
        if text == self._last and not force:
            return
        if not self.tty and not force and now - self._last_time < self.interval:
            return
        self._last, self._last_time = text, now
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.stream is not None and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    async def run(self, stats: RecorderStats) -> None:
        if self.tty:
            self.update(stats, force=True)
        while True:
            await asyncio.sleep(0.25)
            self.update(stats)


class _LogRelay(logging.Handler):
    """mitmproxy's and the recorder's warnings and errors, one line each, via the status."""

    def __init__(self, status: StatusLine) -> None:
        super().__init__(logging.WARNING)
        self.status = status
        self.muted = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.muted:
            return
        try:
            text = record.getMessage().strip().splitlines()
        except Exception:  # pragma: no cover - a broken log call must not stop recording
            return
        line = text[0] if text else ""
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" ({type(exc).__name__}: {exc})"
        if record.name.startswith("wstape"):
            line = line.removeprefix("wstape: ")
            prefix = "wstape: error: " if record.levelno >= logging.ERROR else "wstape: warning: "
        else:
            prefix = "wstape: mitmproxy: "
        self.status.print(prefix + line)


@contextmanager
def _relay_logs(status: StatusLine) -> Iterator[_LogRelay]:
    relay = _LogRelay(status)
    loggers = [logging.getLogger("mitmproxy"), logging.getLogger("wstape")]
    for lg in loggers:
        lg.addHandler(relay)
    try:
        yield relay
    finally:
        for lg in loggers:
            lg.removeHandler(relay)


@contextmanager
def _idle_timeout_11(opts: options.Options, seconds: int | None) -> Iterator[None]:
    """mitmproxy 11.0 has no ``tcp_timeout`` option, only a module constant."""
    if seconds is None or "tcp_timeout" in opts:
        yield
        return
    from mitmproxy.proxy import server

    old = getattr(server, "TCP_TIMEOUT", None)
    setattr(server, "TCP_TIMEOUT", seconds)  # noqa: B010 - absent from 12.x's stubs
    try:
        yield
    finally:
        setattr(server, "TCP_TIMEOUT", old)  # noqa: B010


def _open_writer(config: RecordConfig) -> tuple[CassetteWriter, bool]:
    """The cassette writer, and whether this run created the file."""
    existed = config.output.exists() and config.output.stat().st_size > 0
    try:
        writer = private_writer(config.output, config.write)
    except CassetteExists as e:
        raise RecordExists(str(e)) from None
    except CassetteError as e:
        raise RecordCassetteError(str(e)) from None
    except CassetteWriteError as e:
        raise RecordUsageError(str(e)) from None
    return writer, not (existed and config.write is WriteMode.APPEND)


def check_confdir(confdir: str | None) -> None:
    """Refuse, before anything listens, a ``--confdir`` where mitmproxy's CA can be
    neither created nor loaded (mitmproxy would only log an addon error, then reset every
    wss client). Creates the CA when missing, as mitmproxy would."""
    from mitmproxy.certs import CertStore

    directory = Path(os.path.expanduser(confdir or "~/.mitmproxy"))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        CertStore.from_store(directory, "mitmproxy", 2048)
    except (OSError, ValueError, TypeError) as e:
        detail = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordUsageError(
            f"--confdir {directory}: cannot create or load mitmproxy's CA there: {detail}"
        ) from None


def _write_ready_file(path: Path, port: int) -> None:
    """Write the port so a poller never sees half of it; RecordUsageError if it cannot."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(f"{port}\n", encoding="ascii")
        os.replace(tmp, path)
    except OSError as e:
        with suppress(OSError):
            tmp.unlink()
        raise RecordUsageError(f"--ready-file {path}: cannot write: {e.strerror or e}") from None


def _hint(mode: str, host: str, port: int, confdir: str) -> str:
    addr = format_hostport(host, port)
    ca = os.path.join(os.path.expanduser(confdir), "mitmproxy-ca-cert.pem")
    if mode.startswith("reverse:"):
        upstream = mode.split(":", 1)[1]
        return (
            f"wstape: clients connect to ws://{addr}/... (or wss://, trusting {ca}); "
            f"forwarding to {upstream}"
        )
    if mode.startswith("socks5"):
        return f"wstape: point the client's SOCKS5 proxy at {addr}; for wss trust {ca}"
    if mode.startswith("transparent"):
        return f"wstape: redirect traffic to {addr} (see docs/recording.md); for wss trust {ca}"
    return f"wstape: point the client's HTTP proxy at http://{addr}; for wss trust {ca}"


@dataclass(frozen=True)
class Recording:
    """A recording in progress, as ``record(on_listening=...)`` hands it over."""

    host: str
    port: int
    recorder: Recorder

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no recorded WebSocket is open (False at the timeout)."""
        return await self.recorder.wait_idle(timeout)


async def record(
    config: RecordConfig,
    *,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[Recording], None] | None = None,
    status: TextIO | None = None,
    handle_signals: bool = False,
) -> RecordResult:
    """Record through an in-process mitmproxy until ``stop`` is set (or a signal arrives).

    ``on_listening`` is called once the proxy listens, with the :class:`Recording`
    (where it listens, and a way to wait until the recorded connections have ended).
    ``status`` is the stream for the listening line, the live status line and the summary
    (None: silent). ``handle_signals`` installs SIGINT/SIGTERM handlers that stop recording.
    Raises RecordUsageError / RecordCassetteError when recording cannot start; a write
    failure during recording is returned in ``RecordResult.failure``.
    """
    try:
        mode = normalize_mode(config.mode)
        if config.filter:
            validate_filter(config.filter)
    except ValueError as e:
        raise RecordUsageError(str(e)) from None
    if config.idle_timeout is not None and config.idle_timeout < 1:
        raise RecordUsageError("--idle-timeout must be at least 1 second")
    try:  # the recorder builds it again from the options: this reports a bad one first
        build_redactor(**_redaction(config))
    except ConfigError as e:
        flag = _REDACTION_FLAGS.get(e.option or "")
        raise RecordUsageError(f"{flag}: {e.message}" if flag else e.message) from None

    check_confdir(config.confdir)
    writer, created = _open_writer(config)
    started = False
    try:
        result = await _record(
            config,
            mode,
            writer,
            stop=stop,
            on_listening=on_listening,
            status=status,
            handle_signals=handle_signals,
        )
        started = True
        return result
    finally:
        with suppress(CassetteWriteError):
            writer.close()
        if not started and created and writer.records_written == 0:
            with suppress(OSError):
                config.output.unlink()  # only the header was written: leave nothing behind


async def _record(
    config: RecordConfig,
    mode: str,
    writer: CassetteWriter,
    *,
    stop: asyncio.Event | None,
    on_listening: Callable[[Recording], None] | None,
    status: TextIO | None,
    handle_signals: bool,
) -> RecordResult:
    loop = asyncio.get_running_loop()
    opts = options.Options()
    line = StatusLine(status, quiet=config.verbosity < 0)

    def show(record: Record) -> None:
        line.print(plain(record_segments(record)))

    recorder = Recorder(
        writer=writer,
        trim_messages=True,
        on_failure=lambda _e: m.shutdown(),  # type: ignore[no-untyped-call]
        on_record=show if config.verbosity > 0 else None,
    )
    m, ps = bare_master(opts, loop, recorder)
    updates: dict[str, Any] = {
        "mode": [mode],
        "listen_host": config.listen_host,
        "listen_port": config.listen_port,
        "ssl_insecure": config.ssl_insecure,
        "wstape_cassette": str(config.output),
        "wstape_filter": config.filter or None,
        "wstape_default_redaction": config.default_redaction,
        "wstape_redact_headers": list(config.redact_headers),
        "wstape_redact_json_keys": list(config.redact_json_keys),
        "wstape_redact_query": list(config.redact_query),
        "wstape_secret_env": list(config.secret_env),
        "wstape_secret_file": [str(f) for f in config.secret_files],
        "wstape_trim_messages": True,
    }
    if mode.startswith("reverse:"):
        # Connect to the backend once the request is read: a backend that is down is then
        # a 502 naming why, not a client connection closed without a word (QA: reverse
        # mode connects before reading anything, and gives up with no answer).
        updates["connection_strategy"] = "lazy"
    if config.confdir:
        updates["confdir"] = config.confdir
    if config.idle_timeout is not None and "tcp_timeout" in opts:
        updates["tcp_timeout"] = config.idle_timeout
    try:
        opts.update(**updates)  # type: ignore[no-untyped-call]
    except exceptions.OptionsError as e:
        await m.done()
        raise RecordUsageError(str(e).strip().splitlines()[0]) from None

    def request_stop(*_: object) -> None:
        m.shutdown()  # type: ignore[no-untyped-call]

    signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, request_stop)
    stop_task = None
    if stop is not None:
        stop_task = asyncio.ensure_future(stop.wait())
        stop_task.add_done_callback(lambda _t: request_stop())
    status_task: asyncio.Task[None] | None = None
    t0 = time.monotonic()
    closed_out = 0
    host, port = config.listen_host, config.listen_port
    try:
        with (
            _relay_logs(line) as relay,
            _idle_timeout_11(opts, config.idle_timeout),
            asyncio_utils.install_exception_handler(m._asyncio_exception_handler),
            asyncio_utils.set_eager_task_factory(),
        ):
            listening = False
            try:
                relay.muted = True  # a failed listen is reported below, in one line
                ok = await ps.setup_servers()
                addrs = ps.listen_addrs()
                if not ok or not addrs:
                    message = listen_error(ps, config.listen_host, config.listen_port, "--port")
                    await ps.servers.update([])  # logs a bare AssertionError: keep muted
                    raise RecordUsageError(message)
                relay.muted = False
                listening = True
                await m.running()
                host, port = str(addrs[0][0]), int(addrs[0][1])
                if config.ready_file is not None:
                    _write_ready_file(config.ready_file, port)
                line.info(
                    f"wstape: recording to {config.output}, proxy listening on "
                    f"{format_hostport(host, port)}"
                )
                line.info(_hint(mode, host, port, opts.confdir))
                if on_listening is not None:
                    on_listening(Recording(host, port, recorder))
                status_task = asyncio.ensure_future(line.run(recorder.stats))

                await m.should_exit.wait()
            finally:
                # Also on errors and cancellation: never leave the proxy relaying unrecorded.
                if listening:
                    await ps.servers.update([])
                    closed_out = recorder.stop_recording(STOP_NOTE)
                    await cancel_connections(ps, "wstape record is shutting down", DRAIN_TIMEOUT)
                if status_task is not None:
                    status_task.cancel()
                await m.done()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        if stop_task is not None:
            stop_task.cancel()
        line.clear()

    stats = recorder.stats
    result = RecordResult(
        output=config.output,
        listen=(host, port),
        stats=stats,
        closed_out=closed_out,
        failure=recorder.failure,
        duration=time.monotonic() - t0,
    )
    total = stats.closed + stats.open + stats.refused
    still = f", {closed_out} still open at the stop" if closed_out else ""
    refused = f", {stats.refused} refused" if stats.refused else ""
    line.info(
        f"wstape: recorded {total} connection{'s' if total != 1 else ''}{refused}{still}; "
        f"{stats.messages} messages, {human_bytes(stats.bytes)} to {config.output}"
        f"{render_redaction(stats)}"
    )
    return result


MMAP_THRESHOLD = 32 * 1024 * 1024
"""Blocks up to this size come from glibc malloc's heap; larger ones get their own mmap()."""
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD
"""Free memory at the top of the heap kept rather than given back to the system."""


def keep_freed_heap() -> bool:
    """Fix glibc's malloc thresholds where its dynamic ones would end up (its ceiling for
    the mmap threshold, 32 MiB on 64-bit systems, and twice that for trimming), for the
    whole process; False (nothing changed) without glibc.

    A recording proxy frees each message it relayed (``wstape record`` trims
    ``flow.websocket.messages``). With glibc's dynamic thresholds, a freed megabyte
    message leaves more free memory at the top of the heap than the trim threshold
    (twice the largest block freed), so the heap is shrunk and grown again for the next
    message: ~300 page faults a 1 MiB message, a fifth of the proxy's CPU time per
    message (bench/bench_record.py). Fixed thresholds let the next message reuse that
    memory; the process then keeps up to :data:`TRIM_THRESHOLD` bytes it freed.
    """
    import ctypes

    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc "):  # type: ignore[union-attr]
            return False
    except (ValueError, OSError, AttributeError):  # not glibc, or no confstr (Windows)
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MMAP_THRESHOLD)) and bool(
        mallopt(m_trim_threshold, TRIM_THRESHOLD)
    )


def run(config: RecordConfig, *, status: TextIO | None = sys.stderr) -> RecordResult:
    """Record until SIGINT/SIGTERM; the blocking entry point of ``wstape record`` (which
    owns its process, so it also tunes malloc: :func:`keep_freed_heap`)."""
    keep_freed_heap()
    return asyncio.run(record(config, status=status, handle_signals=True))
