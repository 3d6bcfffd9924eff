"""Helpers for the real-client tests (tests/clients): Chromium, Node.js ``ws``,
``websocket-client``.

Everything here is synchronous from the test's point of view, because Playwright's sync
API must not run inside an asyncio loop:

- :class:`BackgroundLoop` runs asyncio servers (the backend) on a thread of their own;
- :class:`Backend` is a ``websockets`` chat server (ws or wss) on that loop;
- :class:`PageServer` serves ``tests/clients/pages`` over HTTP on 127.0.0.1;
- :class:`Wstape` runs ``wstape record`` / ``wstape replay`` as real processes (the CLI a
  user runs next to a browser), waits on their ``--ready-file`` and reads the report;
- :func:`launch_chromium` starts Debian's Chromium through Playwright with the flags this
  network needs, trusting a mitmproxy CA by its public-key pin.

Facts behind the choices are in ../shared/notes/clients.md and docs/clients.md.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import http.server
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from websockets.asyncio.server import Server, ServerConnection

REPO = Path(__file__).resolve().parents[2]
PAGES = REPO / "tests" / "clients" / "pages"

CHROMIUM = Path(os.environ.get("WSTAPE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Without the background-networking flags Chromium's connections to the outside are
refused many at a time on this network (see docs/clients.md)."""

NODE_MODULES_ENV = "WSTAPE_NODE_MODULES"
DEFAULT_NODE_MODULES = REPO / ".ci" / "node_modules"
"""Where ``.ci/setup-clients.sh`` installs the npm package ``ws`` (gitignored)."""

SETUP_HINT = "run `bash .ci/setup-clients.sh` (CI does)"
REQUIRE_ENV = "WSTAPE_REQUIRE_CLIENTS"
"""Set (by .ci/run) to make a missing client an error instead of a skip."""
TIMEOUT = 15.0
"""Seconds any single wait in these tests may take before it fails."""

T = TypeVar("T")


# -- what is installed ------------------------------------------------------------------


def chromium_missing() -> str | None:
    """Why the Chromium tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing: {SETUP_HINT} or apt-get install chromium"
    return None


def websocket_client_missing() -> str | None:
    """Why the websocket-client test cannot run here, or None."""
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "websocket-client is not installed (pip install -e '.[dev]')"
    return None


def skip_unless_installed(reason: str | None) -> pytest.MarkDecorator:
    """A ``skipif`` marker for a missing client; with $WSTAPE_REQUIRE_CLIENTS set (CI),
    a missing client fails the collection instead, so CI cannot skip these silently."""
    if reason is not None and os.environ.get(REQUIRE_ENV):
        raise RuntimeError(f"${REQUIRE_ENV} is set but {reason}")
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def node_modules() -> Path | None:
    """The node_modules folder that holds ``ws``: $WSTAPE_NODE_MODULES or .ci/node_modules."""
    configured = os.environ.get(NODE_MODULES_ENV)
    for candidate in (Path(configured) if configured else None, DEFAULT_NODE_MODULES):
        if candidate is not None and (candidate / "ws" / "package.json").is_file():
            return candidate
    return None


def node_missing() -> str | None:
    """Why the Node.js ``ws`` test cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if node_modules() is None:
        return (
            f"the npm package ws is not in ${NODE_MODULES_ENV} or {DEFAULT_NODE_MODULES}: "
            f"{SETUP_HINT}"
        )
    return None


# -- TLS ------------------------------------------------------------------------------


def spki_pin(cert_pem: Path) -> str:
    """base64 of the SHA-256 of a certificate's SubjectPublicKeyInfo (DER).

    Chromium's ``--ignore-certificate-errors-spki-list`` takes these: a chain with a
    certificate whose key matches is accepted, so pinning the mitmproxy CA makes Chromium
    trust exactly the certificates that CA mints (the recording proxy's and the replay's).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(cert_pem.read_bytes())
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def make_ca(confdir: Path) -> Path:
    """Create the mitmproxy CA in ``confdir`` (if missing); return its certificate path."""
    from wstape.replay.tls import mint

    _, _, ca = mint(["localhost"], confdir)
    return ca


# -- Chromium -----------------------------------------------------------------------------


def launch_chromium(playwright: Any, *, trust: Sequence[Path] = ()) -> Any:
    """Debian's Chromium through Playwright (never ``playwright install``).

    ``trust``: CA certificates whose public keys Chromium accepts for wss (SPKI pins).
    Playwright's ``launch`` gives every browser a fresh, temporary ``--user-data-dir``.
    """
    args = list(CHROMIUM_ARGS)
    if trust:
        pins = ",".join(spki_pin(p) for p in trust)
        args.append(f"--ignore-certificate-errors-spki-list={pins}")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=args, headless=True, timeout=TIMEOUT * 1000
    )


def proxy_settings(port: int) -> dict[str, str]:
    """A Playwright context proxy through ``wstape record`` on ``port``.

    Playwright adds ``<-loopback>`` to the bypass list itself (Chromium otherwise never
    proxies 127.0.0.1 and localhost), which is what ``--proxy-server=http://127.0.0.1:PORT
    --proxy-bypass-list=<-loopback>`` does on a plain Chromium command line.
    """
    return {"server": f"http://127.0.0.1:{port}", "bypass": "<-loopback>"}


# -- a thread with an event loop ------------------------------------------------------------


class BackgroundLoop:
    """An asyncio loop on a daemon thread; :meth:`run` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float = TIMEOUT) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(TIMEOUT)
        if not self._thread.is_alive():
            self.loop.close()


# -- the backend -----------------------------------------------------------------------------


@dataclass
class BackendConnection:
    path: str
    received: list[str | bytes] = field(default_factory=list)
    close_rcvd: tuple[int, str] | None = None
    """The Close the client sent (code, reason): its own, or its answer to ours."""


class Backend:
    """The "real" server the clients are recorded against (a ``websockets`` server).

    Per connection: sends ``{"type":"hello"}``, answers ``{"type":"ping"}`` with
    ``{"type":"pong"}``, ``kick me`` with a Close 4003 "kicked", any other text ``t`` with
    ``echo: t`` and a binary message with its bytes reversed, until the client closes.
    """

    HELLO = '{"type":"hello"}'
    PING = '{"type":"ping"}'
    PONG = '{"type":"pong"}'

    def __init__(self, loop: BackgroundLoop, *, tls: ssl.SSLContext | None = None) -> None:
        self.loop = loop
        self.tls = tls
        self.connections: list[BackendConnection] = []
        self._server: Server | None = None
        self.port = 0

    def __enter__(self) -> Backend:
        self.port = self.loop.run(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run(self._stop())

    @property
    def url(self) -> str:
        if self.tls:
            return f"wss://localhost:{self.port}"
        return f"ws://127.0.0.1:{self.port}"

    async def _start(self) -> int:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handle, "127.0.0.1", 0, ssl=self.tls)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), TIMEOUT)

    async def _handle(self, ws: ServerConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        assert ws.request is not None
        conn = BackendConnection(ws.request.path)
        self.connections.append(conn)
        try:
            await ws.send(self.HELLO)
            async for message in ws:
                conn.received.append(message)
                if isinstance(message, bytes):
                    await ws.send(message[::-1])
                elif message == self.PING:
                    await ws.send(self.PONG)
                elif message == "kick me":
                    await ws.close(4003, "kicked")
                else:
                    await ws.send(f"echo: {message}")
        except ConnectionClosed:
            pass
        finally:
            rcvd = ws.protocol.close_rcvd
            conn.close_rcvd = (rcvd.code, rcvd.reason) if rcvd is not None else None


# -- the page server ---------------------------------------------------------------------------


class PageServer:
    """``tests/clients/pages`` over HTTP on 127.0.0.1 (a thread; quiet)."""

    def __init__(self, directory: Path = PAGES) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


# -- wstape as a process ----------------------------------------------------------------------


class Wstape:
    """``python -m wstape record|replay ... --ready-file F`` as a subprocess.

    Entering waits until the ready file holds the port (no sleeps for readiness: the file
    is polled, and a process that dies first fails the test with its stderr).
    """

    def __init__(self, tmp: Path, command: str, *args: str | Path) -> None:
        self.tmp = tmp
        self.ready = tmp / f"{command}-{time.monotonic_ns()}.port"
        self.argv = [
            sys.executable, "-m", "wstape", command, *map(str, args),
            "--ready-file", str(self.ready),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.stderr = ""
        self.returncode: int | None = None

    def __enter__(self) -> Wstape:
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            if self.proc.poll() is not None:
                self.finish(0)
                raise AssertionError(
                    f"{' '.join(self.argv[2:4])} exited with {self.returncode}:\n{self.stderr}"
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"{' '.join(self.argv[2:4])} never wrote its ready file")
            time.sleep(0.02)
        self.port = int(self.ready.read_text().strip())
        return self

    def stop(self, timeout: float = TIMEOUT) -> int:
        """SIGTERM (``wstape record`` stops cleanly on it), then wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = TIMEOUT) -> int:
        """Wait for the process to exit by itself (``wstape replay`` does once played)."""
        assert self.proc is not None
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
            self.stderr = err.decode("utf-8", "replace")
            raise AssertionError(
                f"{' '.join(self.argv[2:4])} did not exit within {timeout:g} s:\n{self.stderr}"
            ) from None
        self.stderr = err.decode("utf-8", "replace")
        self.returncode = self.proc.returncode
        return self.returncode

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def record(tmp: Path, cassette: Path, *args: str | Path) -> Wstape:
    """``wstape record -o CASSETTE --port 0 ARGS`` (stop it with :meth:`Wstape.stop`)."""
    return Wstape(tmp, "record", "-o", cassette, "--port", "0", "--overwrite", *args)


def replay(tmp: Path, cassette: Path, report: Path, *args: str | Path) -> Wstape:
    """``wstape replay CASSETTE --port 0 --report REPORT ARGS`` (exits once played)."""
    return Wstape(
        tmp, "replay", cassette, "--port", "0", "--report", report, "--timeout", "5",
        "--max-wait", "60", *args,
    )  # fmt: skip


def read_report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def violations(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(rule, severity) of every violation in a JSON report, in order (less the note
    that heartbeats were detected)."""
    return [
        (v["rule"], v["severity"])
        for v in report["violations"]
        if v["rule"] != "REPLAY-HEARTBEAT-DETECTED"
    ]
