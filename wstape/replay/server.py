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
from dataclasses import dataclass, field, replace
from pathlib import Path

from wstape.core.errors import ConfigError
from wstape.core.model import TlsInfo
from wstape.core.options import coerce_fields, field_names
from wstape.core.replay.connection import LiveConnection
from wstape.core.replay.echo import ECHO_CASSETTE, EchoSession
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.session import ReplaySession
from wstape.core.report import Report
from wstape.core.rules import RuleConfig, Violation
from wstape.replay.index import CassetteIndex
from wstape.replay.tls import TlsOptions

STOP_GRACE = 1.0
"""Seconds :meth:`ReplayServer.stop` lets connections flush their goodbye."""


@dataclass(frozen=True)
class ReplayOptions:
    """Everything ``wstape replay`` can be told, as one value.

    Each option lives in exactly one place: ``rules`` (which rules, how strict), ``play``
    (how recordings are played), ``tls`` (None: plain ws://) and the listener itself.
    :meth:`build` takes the flat names the CLI and the pytest marker use. Invalid values
    raise ConfigError (a ValueError).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    """0 binds any free port (see :attr:`ReplayServer.port`)."""
    rules: RuleConfig = field(default_factory=RuleConfig)
    play: PlayOptions = field(default_factory=PlayOptions)
    tls: TlsOptions | None = None
    echo: bool = False
    """Serve no cassette: accept every upgrade and echo each message (wstape.core.replay.echo)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")

    @classmethod
    def build(cls, **values: object) -> ReplayOptions:
        """Options from flat names, each routed to the dataclass that has the field
        (``ReplayOptions.build(port=0, speed=0, profile="wechat", hostnames=["a.b"])``).

        ``tls=True``, or any TLS field (``hostnames``, ``confdir``, ``cert``, ``key``,
        ``context``), turns TLS on. Values are coerced to the field's type (``"0"`` for
        a float is fine).
        Raises ConfigError for an unknown name or a value that does not fit.
        """
        parts: dict[type, dict[str, object]] = {
            cls: {},
            RuleConfig: {},
            PlayOptions: {},
            TlsOptions: {},
        }
        own = field_names(cls) - {"rules", "play", "tls"}
        tls_on = bool(values.pop("tls", False))
        for name, value in values.items():
            for target in (RuleConfig, PlayOptions, TlsOptions):
                if name in field_names(target):
                    parts[target][name] = value
                    break
            else:
                if name not in own:
                    known = sorted(
                        own
                        | field_names(RuleConfig)
                        | field_names(PlayOptions)
                        | field_names(TlsOptions)
                    )
                    raise ConfigError(f"unknown option {name}; known: {', '.join(known)}")
                parts[cls][name] = value
        top = parts[cls]
        tls_fields = parts[TlsOptions]
        tls = coerce_fields(TlsOptions, tls_fields) if tls_on or tls_fields else None
        return coerce_fields(
            cls,
            {
                **top,
                "rules": coerce_fields(RuleConfig, parts[RuleConfig]),
                "play": coerce_fields(PlayOptions, parts[PlayOptions]),
                "tls": tls,
            },
        )


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
        self.server._protocols.add(self)
        self.server._idle.clear()

        def connect() -> None:
            self.live = session.connect(
                client=client,
                scheme="wss" if tls is not None else "ws",
                tls=tls,
                now=self.loop.time(),
                wall=time.time(),
            )

        self._guard(connect)

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
        if live is not None and not self._guard(
            lambda: live.connection_lost(self.loop.time()), flush=False
        ):
            session = self.server.session
            if session is not None:
                session.forget(live)
        self.server._connection_ended()

    def pause_writing(self) -> None:
        self._paused = True
        self._cancel_timer()

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule(self.loop.time())

    # plumbing -----------------------------------------------------------------------

    def _guard(self, step: Callable[[], None], *, flush: bool = True) -> bool:
        """Run a core step; a bug in wstape ends this connection (and fails the run),
        never the server. False if the step raised."""
        try:
            step()
        except Exception as e:  # a bug in wstape: fail the run, keep serving the others
            self.server._internal_error(self.live, e)
            if self.transport is not None:
                self.transport.abort()
            return False
        if flush:
            self.flush()
        return True

    def flush(self) -> None:
        live, transport = self.live, self.transport
        if live is None or transport is None or transport.is_closing():
            return
        data = live.data_to_send()
        if data:
            transport.write(data)
        if live.hangup:
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
    line per connection event (open, close, refusal), ``on_internal_error`` with one line
    per wstape bug caught (the run then fails); all run on the event loop.
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
        on_internal_error: Callable[[str], None] | None = None,
        index: CassetteIndex | None = None,
    ) -> None:
        self.options = options or ReplayOptions()
        if cassette is None and not self.options.echo:
            raise ValueError("a cassette is needed unless echo=True")
        if cassette is not None and self.options.echo:
            raise ValueError("echo mode serves no cassette")
        self.cassette = Path(cassette) if cassette is not None else Path(ECHO_CASSETTE)
        """The cassette (``(echo)`` in echo mode)."""
        self.cfg = self.options.rules
        self.on_violation = on_violation
        self.on_log = on_log
        self.on_internal_error = on_internal_error
        self.index = index
        self.session: ReplaySession | None = None
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._extra_servers: list[asyncio.Server] = []
        self._protocols: set[_Connection] = set()
        self._done: asyncio.Event | None = None
        self._idle = asyncio.Event()
        """Set while no client connection is open (by the last one to end)."""
        self._idle.set()
        self.internal_errors: list[str] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def url(self) -> str:
        """``ws://host:port`` (or ``wss://``) once started."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        scheme = "wss" if self.options.tls is not None else "ws"
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
            self.index = CassetteIndex.build(self.cassette, self.options.play)
        return self.index

    async def start(self) -> int:
        """Index the cassette, bind, and start serving. Returns the bound port."""
        if self.index is None and not self.options.echo:
            self.index = await asyncio.to_thread(
                CassetteIndex.build, self.cassette, self.options.play
            )
        tls = self.options.tls
        ctx = await asyncio.to_thread(tls.server_context) if tls is not None else None
        index = self.index
        if index is None:
            self.session = EchoSession(
                self.cfg, self.options.play, on_violation=self.on_violation, on_log=self.on_log
            )
        else:
            self.session = ReplaySession(
                index.connections,
                index.events,
                self.cfg,
                self.options.play,
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
        if not self._protocols:
            self._idle.set()
        if self.session is not None and self._done is not None and self.session.all_played():
            self._done.set()

    def _internal_error(self, live: LiveConnection | None, error: Exception) -> None:
        where = ""
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"
        conn = live.conn if live is not None and live.conn is not None else "?"
        text = (
            f"wstape bug on connection {conn}: {type(error).__name__}: {error}{where} "
            "(the connection was aborted; please report this)"
        )
        self.internal_errors.append(text)
        if self.on_internal_error is not None:
            self.on_internal_error(text)

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

    async def settle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until no client connection is open.

        True when none is (anymore), False when some still were at the timeout.
        """
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def unfinished(self) -> list[int]:
        """Recorded connection ids being played right now with recorded messages not
        reached yet (a client still connected mid-recording)."""
        return self.session.unfinished() if self.session is not None else []

    async def stop(self) -> None:
        """Stop listening, say goodbye to open connections, settle the report."""
        for extra in self._extra_servers:
            extra.close()
        self._extra_servers = []
        if self._server is not None:
            self._server.close()
            for proto in list(self._protocols):
                proto.shutdown()
            await self.settle(STOP_GRACE)
            for proto in list(self._protocols):
                if proto.transport is not None:
                    proto.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), STOP_GRACE)
            self._server = None
        if self.session is not None:
            self.session.finish()

    def report(self) -> Report:
        """The report so far (after :meth:`stop`: final, with unplayed connections).

        A wstape bug caught during the run is in ``internal_errors`` and fails it.
        """
        if self.session is None:
            report = Report(self.cfg.profile.value, str(self.cassette))
        else:
            report = self.session.report(str(self.cassette))
        if self.internal_errors:
            report = replace(report, internal_errors=tuple(self.internal_errors))
        return report

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


__all__ = ["ReplayOptions", "ReplayServer"]
