"""Real processes and servers on 127.0.0.1 for integration tests, with timeouts everywhere.

- :func:`self_signed_cert`: a certificate for ``127.0.0.1``/``localhost`` made with
  ``cryptography`` (a mitmproxy dependency), for a wss:// upstream;
- :class:`ScenarioServer`: a ``websockets`` server on port 0 in a background thread whose
  behaviour is picked by the request path (echo, close with a code, drop TCP, refuse the
  upgrade, choose a subprotocol);
- :class:`RecorderProcess`: ``python -m wstape record ...`` as a subprocess, ready once it
  prints its listening line; stderr is drained in a thread so it never blocks;
- :func:`wait_for`, :func:`wait_for_port`, :func:`wait_for_records`: wait on a condition,
  never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from wstape.cassettes import CassetteError, CassetteReader
from wstape.core.model import Record

T = TypeVar("T")

MAX_SIZE = 4 * 1024 * 1024
"""websockets' max_size for both ends: 1 MiB messages (its default limit) must fit."""
REFUSE_BODY = b"forbidden: no token\n"
SUBPROTOCOL = "chat.v2"
LISTENING = re.compile(r"proxy listening on (\[[^\]]+\]|[^\s:]+):(\d+)")
PROXY_ENV = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


# -- waiting ---------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T], timeout: float, *, what: str = "condition", interval: float = 0.02
) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    """Wait until something accepts TCP connections on ``host:port``."""

    def accepting() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return True
        return False

    wait_for(accepting, timeout, what=f"{host}:{port} to accept connections")


def read_records(path: Path) -> list[Record]:
    """Every complete record of a cassette being written (a partial tail is skipped)."""
    try:
        return list(CassetteReader(path, allow_truncated=True))
    except CassetteError:
        return []


def wait_for_records(
    path: Path, predicate: Callable[[list[Record]], bool], timeout: float = 10.0
) -> list[Record]:
    """Re-read the cassette until ``predicate(records)`` holds."""
    result: list[Record] = []

    def check() -> bool:
        nonlocal result
        result = read_records(path)
        return predicate(result)

    wait_for(check, timeout, what=f"records in {path}", interval=0.05)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- TLS -------------------------------------------------------------------------------


def self_signed_cert(directory: Path, name: str = "upstream") -> tuple[Path, Path]:
    """Write ``name.pem`` and ``name.key`` for 127.0.0.1 and localhost; return both paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def client_ssl_context(cafile: Path) -> ssl.SSLContext:
    """A client context trusting only ``cafile`` (e.g. mitmproxy's CA in a temp confdir)."""
    return ssl.create_default_context(cafile=str(cafile))


# -- the scenario server ---------------------------------------------------------------


async def scenario_handler(ws: ServerConnection) -> None:
    """Behave according to the request path.

    ``/close4003...``: echo, and answer the text ``close please`` with Close 4003;
    ``/drop...``: abort TCP (no Close frame) on the first message; anything else: echo
    every message until the client closes. ``/refuse...`` never gets here (403).
    """
    path = ws.request.path if ws.request is not None else "/"
    try:
        async for message in ws:
            if path.startswith("/drop"):
                assert ws.transport is not None
                ws.transport.abort()
                return
            if path.startswith("/close4003") and message == "close please":
                await ws.close(4003, "server closes: 4003")
                return
            await ws.send(message)
    except Exception:  # a peer that vanishes is part of several scenarios
        return


def refuse_some(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.startswith("/refuse"):
        response = connection.respond(HTTPStatus.FORBIDDEN, REFUSE_BODY.decode())
        return response
    return None


def choose_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


class ScenarioServer:
    """A websockets server on 127.0.0.1 port 0, in its own thread and event loop.

    Usable from sync fixtures of any scope: ``with ScenarioServer(ssl=ctx) as s: s.port``.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        handler: Callable[[ServerConnection], Any] = scenario_handler,
        host: str = "127.0.0.1",
    ) -> None:
        self.ssl_context = ssl_context
        self.handler = handler
        self.host = host
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: Server | None = None

    @property
    def scheme(self) -> str:
        return "wss" if self.ssl_context is not None else "ws"

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def start(self) -> ScenarioServer:
        self._thread.start()

        async def start() -> Server:
            return await serve(
                self.handler,
                self.host,
                0,
                ssl=self.ssl_context,
                max_size=MAX_SIZE,
                process_request=refuse_some,
                select_subprotocol=choose_subprotocol,
            )

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        sock = next(iter(self._server.sockets))
        self.port = int(sock.getsockname()[1])
        return self

    def stop(self) -> None:
        server = self._server
        if server is not None:

            async def stop() -> None:
                server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 5)

            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ScenarioServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- wstape record as a subprocess ----------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without proxy variables (websockets clients honour them)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_ENV}
    env.update(extra)
    return env


class OutputReader:
    """Drain a text stream in a thread, keeping every line and waking up waiters."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream: Any) -> None:
        for line in stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, pattern: re.Pattern[str] | str, timeout: float) -> re.Match[str]:
        """The first line matching ``pattern``; TimeoutError (with the output) otherwise."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if m := rx.search(line):
                        return m
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise TimeoutError(
                        f"no line matching {rx.pattern!r}; output so far:\n" + self.text
                    )
                self._cond.wait(remaining)

    def join(self, timeout: float = 10.0) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class RecorderProcess:
    """``python -m wstape record`` in a subprocess.

    ``start()`` returns once the recorder printed ``... proxy listening on HOST:PORT``
    (``self.port``); ``stop()`` sends SIGINT (or another signal) and returns the exit code.
    """

    def __init__(
        self,
        output: Path,
        *args: str,
        python: str = sys.executable,
        listen_port: int = 0,
        confdir: Path | None = None,
        netns: str | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.output = output
        cmd = [python, "-m", "wstape", "record", "-o", str(output)]
        cmd += ["--port", str(listen_port)]
        if confdir is not None:
            cmd += ["--confdir", str(confdir)]
        cmd += list(args)
        if netns is not None:
            cmd = ["ip", "netns", "exec", netns, *cmd]
        self.cmd = cmd
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None
        self.stderr: OutputReader | None = None
        self.port = 0
        self.host = ""

    def start(self, timeout: float = 20.0) -> RecorderProcess:
        """Start and wait until listening; raises TimeoutError with the output if not."""
        self.spawn()
        assert self.stderr is not None
        try:
            m = self.stderr.wait_for(LISTENING, timeout)
        except TimeoutError:
            self.kill()
            raise
        self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
        return self

    def spawn(self) -> subprocess.Popen[str]:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=clean_env(PYTHONUNBUFFERED="1"),
            cwd=self.cwd,
        )
        self.stderr = OutputReader(self.proc.stderr)
        return self.proc

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None and self.stderr is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        self.stderr.join()
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.stderr is not None:
            self.stderr.join()

    @property
    def output_text(self) -> str:
        return self.stderr.text if self.stderr is not None else ""

    def __enter__(self) -> RecorderProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextlib.contextmanager
def recorder(output: Path, *args: str, **kw: Any) -> Iterator[RecorderProcess]:
    """A started :class:`RecorderProcess`, killed at the end if still running."""
    rec = RecorderProcess(output, *args, **kw)
    try:
        yield rec.start()
    finally:
        rec.kill()


MITMDUMP = Path(sys.executable).with_name("mitmdump")
"""The mitmdump of the Python running the tests (the venv's)."""
MITMDUMP_LISTENING = re.compile(r"listening at (?:\[[^\]]+\]|[\d.]+):(\d+)")


def wstape_addon_path() -> str:
    """What ``wstape addon-path`` prints, asked of the real command."""
    result = subprocess.run(
        [sys.executable, "-m", "wstape", "addon-path"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(),
    )
    return result.stdout.strip()


class Mitmdump:
    """A real ``mitmdump -s "$(wstape addon-path)"`` in reverse mode in front of
    ``upstream``, on a port of its own (read from its "listening at" line)."""

    def __init__(self, upstream: int, confdir: Path, *sets: str) -> None:
        cmd = [
            str(MITMDUMP),
            "-s",
            wstape_addon_path(),
            "--mode",
            f"reverse:http://127.0.0.1:{upstream}",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={confdir}",
            "--set",
            "flow_detail=0",
        ]
        for option in sets:
            cmd += ["--set", option]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            env=clean_env(),
        )
        self.output = OutputReader(self.proc.stdout)
        self.port = 0

    def wait_listening(self, timeout: float = 20) -> int:
        self.port = int(self.output.wait_for(MITMDUMP_LISTENING, timeout).group(1))
        return self.port

    def stop(self, timeout: float = 20) -> int:
        """SIGINT, as Ctrl-C; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout)
        self.output.join()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.output.join()
