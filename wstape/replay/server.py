"""The replay server: asyncio plumbing around :mod:`wstape.core.script`.

This module moves bytes and keeps time; it decides nothing. Each accepted connection
gets a :class:`~wstape.core.script.LiveConnection`; bytes from the socket go to its
``receive_data``, its ``data_to_send`` goes back, and one timer per connection wakes it
at its ``next_deadline``. Recorded events are streamed from the cassette through a
:class:`~wstape.replay.index.CassetteIndex`.

Library use::

    server = ReplayServer("chat.msgpack", ReplayOptions(port=0, speed=0))
    port = await server.start()
    ...  # point a client at server.url
    await server.wait_played(timeout=30) # every recorded connection played
    await server.stop()
    report = server.report()             # wstape.core.report.Report; .to_dict() for JSON

Echo mode (no cassette; every connection echoes its messages, see wstape.core.replay.echo)::

    server = ReplayServer(None, ReplayOptions(port=0, echo=True))
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from wstape.core.frames import DEFAULT_MAX_FRAME_SIZE
from wstape.core.model import TlsInfo
from wstape.core.replay.echo import ECHO_CASSETTE, EchoSession
from wstape.core.report import Report
from wstape.core.rules import Profile, RuleConfig, Violation
from wstape.core.script import LiveConnection, ReplaySession, ScriptOptions
from wstape.replay.index import CassetteIndex
from wstape.replay.tls import server_context

STOP_GRACE = 1.0
"""Seconds :meth:`ReplayServer.stop` lets connections flush their goodbye."""


@dataclass(frozen=True)
class ReplayOptions:
    """Everything ``wstape replay`` can be told, as one value. Invalid values raise ValueError."""

    host: str = "127.0.0.1"
    port: int = 8765
    """0 binds any free port (see :attr:`ReplayServer.port`)."""
    # rules (``rules`` wins over the separate fields when given)
    rules: RuleConfig | None = None
    profile: Profile | str = Profile.RFC6455
    appid: str | None = None
    allow_hosts: tuple[str, ...] = ()
    platform: str = "device"
    max_sockets: int = 5
    ignore: frozenset[str] = frozenset()
    # script
    match: str = "exact"
    ignore_json_paths: tuple[str, ...] = ()
    speed: float = 1.0
    timeout: float = 10.0
    loop: bool = False
    ignore_query: bool = False
    ping_interval: float = 0.0
    fragment_size: int = 0
    handshake_delay: float = 0.0
    connect_timeout: float = 60.0
    echo: bool = False
    """Serve no cassette: accept every upgrade and echo each message (wstape.core.replay.echo)."""
    max_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest client frame and reassembled message, in bytes (1009 above it)."""
    # TLS
    tls: bool = False
    hostnames: tuple[str, ...] = ()
    confdir: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False)
    """A ready-made server context (library use); implies TLS."""

    def rule_config(self) -> RuleConfig:
        if self.rules is not None:
            return self.rules
        return RuleConfig(
            profile=Profile(self.profile),
            appid=self.appid,
            allow_hosts=tuple(self.allow_hosts),
            max_sockets=self.max_sockets,
            platform=self.platform,
            ignore=frozenset(self.ignore),
        )

    def script_options(self) -> ScriptOptions:
        return ScriptOptions(
            match=self.match,
            ignore_json_paths=tuple(self.ignore_json_paths),
            speed=self.speed,
            timeout=self.timeout,
            ignore_query=self.ignore_query,
            loop=self.loop,
            ping_interval=self.ping_interval,
            fragment_size=self.fragment_size,
            handshake_delay=self.handshake_delay,
            connect_timeout=self.connect_timeout,
            max_frame_size=self.max_size,
            max_message_size=self.max_size,
        )

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ssl_context is not None or self.cert is not None


class _Connection(asyncio.Protocol):
    """One socket; hands everything to its LiveConnection."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.live: LiveConnection | None = None
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._paused = False

    # asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        client = _hostport(peer)
        sslobj = transport.get_extra_info("ssl_object")
        tls = None
        if sslobj is not None:
            tls = TlsInfo(version=sslobj.version(), alpn=sslobj.selected_alpn_protocol())
        session = self.server.session
        assert session is not None
        self.live = session.connect(
            client=client,
            scheme="wss" if tls is not None else "ws",
            tls=tls,
            now=self.loop.time(),
            wall=time.time(),
        )
        self.server._protocols.add(self)

    def data_received(self, data: bytes) -> None:
        live = self.live
        if live is None:
            return
        self._guard(lambda: live.receive_data(data, self.loop.time()))

    def eof_received(self) -> bool:
        live = self.live
        if live is not None:
            self._guard(lambda: live.receive_eof(self.loop.time()))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.server._protocols.discard(self)
        live = self.live
        if live is not None:
            self._guard(lambda: live.connection_lost(self.loop.time()), flush=False)
        self.server._connection_ended()

    def pause_writing(self) -> None:
        self._paused = True
        self._cancel_timer()

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule(self.loop.time())

    # plumbing -----------------------------------------------------------------------

    def _guard(self, step: Callable[[], None], *, flush: bool = True) -> None:
        """Run a core step; a bug in wstape ends this connection, never the server."""
        try:
            step()
        except Exception as e:  # pragma: no cover - a bug, reported loudly
            self.server._internal_error(self.live, e)
            if self.transport is not None:
                self.transport.abort()
            return
        if flush:
            self.flush()

    def flush(self) -> None:
        live, transport = self.live, self.transport
        if live is None or transport is None or transport.is_closing():
            return
        data = live.data_to_send()
        if data:
            transport.write(data)
        if live.close_after_flush:
            self._cancel_timer()
            transport.close()
            return
        deadline = live.next_deadline()
        if deadline is None:
            self._cancel_timer()
        elif not self._paused:
            self._schedule(deadline)

    def _schedule(self, at: float) -> None:
        if self._timer is not None and self._timer_at == at:
            return
        self._cancel_timer()
        self._timer_at = at
        if at <= self.loop.time():
            self._timer = self.loop.call_soon(self._wake)
        else:
            self._timer = self.loop.call_at(at, self._wake)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None

    def _wake(self) -> None:
        self._timer = None
        self._timer_at = None
        live = self.live
        if live is not None:
            self._guard(lambda: live.tick(self.loop.time()))

    def shutdown(self) -> None:
        live = self.live
        if live is not None:
            self._guard(lambda: live.shutdown(self.loop.time()))


def _hostport(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


class ReplayServer:
    """Replay ``cassette`` as a ws:// or wss:// server and check every client.

    With ``options.echo`` there is no cassette (pass None): every connection echoes.

    ``on_violation`` is called with each violation as it happens, ``on_log`` with one
    line per connection event (open, close, refusal); both run on the event loop.
    :meth:`start` raises CassetteError for an unreadable or truncated cassette,
    TlsSetupError for bad TLS settings, OSError when the port cannot be bound.
    """

    def __init__(
        self,
        cassette: str | Path | None,
        options: ReplayOptions | None = None,
        *,
        on_violation: Callable[[Violation], None] | None = None,
        on_log: Callable[[LiveConnection, str], None] | None = None,
        index: CassetteIndex | None = None,
    ) -> None:
        self.options = options or ReplayOptions()
        if cassette is None and not self.options.echo:
            raise ValueError("a cassette is needed unless echo=True")
        if cassette is not None and self.options.echo:
            raise ValueError("echo mode serves no cassette")
        self.cassette = Path(cassette) if cassette is not None else Path(ECHO_CASSETTE)
        """The cassette (``(echo)`` in echo mode)."""
        self.cfg = self.options.rule_config()
        self.script_options = self.options.script_options()
        self.on_violation = on_violation
        self.on_log = on_log
        self.index = index
        self.session: ReplaySession | None = None
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._extra_servers: list[asyncio.Server] = []
        self._protocols: set[_Connection] = set()
        self._done: asyncio.Event | None = None
        self._all_closed: asyncio.Event | None = None
        """Set by the last connection to end while :meth:`stop` waits for them."""
        self.internal_errors: list[str] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def url(self) -> str:
        """``ws://host:port`` (or ``wss://``) once started."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        scheme = "wss" if self.options.uses_tls else "ws"
        host = self.options.host
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    def load(self) -> CassetteIndex:
        """Index the cassette now (raises CassetteError); :meth:`start` does it otherwise.

        Raises ValueError in echo mode, which has no cassette.
        """
        if self.options.echo:
            raise ValueError("echo mode has no cassette to index")
        if self.index is None:
            self.index = CassetteIndex.build(self.cassette)
        return self.index

    async def start(self) -> int:
        """Index the cassette, bind, and start serving. Returns the bound port."""
        if self.index is None and not self.options.echo:
            self.index = await asyncio.to_thread(CassetteIndex.build, self.cassette)
        ctx = self.options.ssl_context
        if ctx is None and self.options.uses_tls:
            opts = self.options
            ctx = await asyncio.to_thread(
                server_context,
                hostnames=opts.hostnames,
                confdir=opts.confdir,
                cert=opts.cert,
                key=opts.key,
            )
        index = self.index
        if index is None:
            self.session = EchoSession(
                self.cfg, self.script_options, on_violation=self.on_violation, on_log=self.on_log
            )
        else:
            self.session = ReplaySession(
                index.connections,
                index.events,
                self.cfg,
                self.script_options,
                on_violation=self.on_violation,
                on_log=self.on_log,
            )
        self._done = asyncio.Event()
        if index is not None and not index.connections:
            self._done.set()
        self._server = await self.loop.create_server(
            lambda: _Connection(self),
            self.options.host,
            self.options.port,
            ssl=ctx,
            backlog=4096,
            reuse_address=True,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def listen(
        self, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> asyncio.Server:
        """Serve this same replay session on one more listener (e.g. a TLS one next to a
        plain one, for ``--via-proxy``); :meth:`stop` closes it too. Start first."""
        if self.session is None:
            raise RuntimeError("the server is not started")
        extra = await self.loop.create_server(
            lambda: _Connection(self), host, port, ssl=ssl_context, reuse_address=True
        )
        self._extra_servers.append(extra)
        return extra

    def _connection_ended(self) -> None:
        if not self._protocols and self._all_closed is not None:
            self._all_closed.set()
        if self.session is not None and self._done is not None and self.session.all_played():
            self._done.set()

    def _internal_error(self, live: LiveConnection | None, error: Exception) -> None:
        text = f"internal error on connection {live.conn if live else '?'}: {error!r}"
        self.internal_errors.append(text)
        if self.on_log is not None and live is not None:
            self.on_log(live, text)

    @property
    def played(self) -> bool:
        """Every recorded connection has been played (never, with ``loop``)."""
        return self._done is not None and self._done.is_set()

    async def wait_played(self, timeout: float | None = None) -> bool:
        """Wait until every recorded connection was played; False if ``timeout`` passed."""
        if self._done is None:
            raise RuntimeError("the server is not started")
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop listening, say goodbye to open connections, settle the report."""
        for extra in self._extra_servers:
            extra.close()
        self._extra_servers = []
        if self._server is not None:
            self._server.close()
            for proto in list(self._protocols):
                proto.shutdown()
            if self._protocols:
                self._all_closed = asyncio.Event()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._all_closed.wait(), STOP_GRACE)
                self._all_closed = None
            for proto in list(self._protocols):
                if proto.transport is not None:
                    proto.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), STOP_GRACE)
            self._server = None
        if self.session is not None:
            self.session.finish()

    def report(self) -> Report:
        """The report so far (after :meth:`stop`: final, with unplayed connections)."""
        if self.session is None:
            return Report(Profile(self.cfg.profile).value, str(self.cassette))
        return self.session.report(str(self.cassette))

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = ["ReplayOptions", "ReplayServer"]
