"""The replay server: asyncio plumbing around :mod:`wstape.core.replay`.

This module moves bytes and keeps time; it decides nothing. Each accepted connection
gets a :class:`~wstape.core.replay.connection.LiveConnection`; bytes from the socket go to its
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

Hostile clients: the request is due ``--timeout`` after the accept (TLS handshake
included); at most ``max_connections`` are open at once (fewer if the open-file limit
is lower), and at that limit a connection that has sent no request for
:data:`SHED_AFTER` seconds is dropped to make room, else new ones wait in the backlog;
running out of file descriptors pauses accepting for :data:`ACCEPT_RETRY` seconds with
one line said; every connection honours its transport's write buffer (see
:class:`_Connection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import socket
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
from wstape.core.replay.faults import check_aims, parse_fault
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.session import ReplaySession
from wstape.core.report import Report
from wstape.core.rules import RuleConfig, Violation
from wstape.replay.index import CassetteIndex
from wstape.replay.tls import TlsOptions

STOP_GRACE = 1.0
"""Seconds :meth:`ReplayServer.stop` lets connections flush their goodbye."""
DEFAULT_MAX_CONNECTIONS = 1024
"""Client connections open at once unless told otherwise (``--max-connections``)."""
BACKLOG = 4096
ACCEPT_BATCH = 64
"""Connections accepted per wake-up of a listening socket."""
ACCEPT_RETRY = 0.5
"""Seconds without accepting after the process ran out of file descriptors."""
SHED_AFTER = 1.0
"""At the connection limit, a connection that has sent no complete request for this many
seconds is dropped to make room for a new one."""
FD_RESERVE = 32
"""File descriptors kept for anything but client sockets (at least; 1/8 of the limit)."""
NOTICE_INTERVAL = 10.0
"""Seconds between two lines about the same kind of trouble (the limit, EMFILE)."""
WRITE_HIGH = 256 * 1024
WRITE_LOW = 64 * 1024
"""A connection's write buffer limits: above the high mark it takes no more frames and
sends nothing new until the buffer is back under the low mark."""
READ_SIZE = 256 * 1024
"""Bytes read from a socket at most at a time (asyncio's own read size), into one buffer
the server's connections share: a read allocates nothing (asyncio's ``recv`` allocates
this much per read and shrinks it, which glibc may serve with an mmap and a munmap)."""

log = logging.getLogger(__name__)


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
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    """Client connections open at once (fewer if the open-file limit is lower)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0-65535, not {self.port}")
        if self.max_connections < 1:
            raise ConfigError(
                f"must be at least 1, not {self.max_connections}", option="max_connections"
            )

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


class _Connection(asyncio.BufferedProtocol):
    """One socket, from its accept; hands everything to its LiveConnection.

    The client's bytes are read into the server's one read buffer
    (:attr:`ReplayServer.read_buffer`) and handed on as a view of it, which the
    LiveConnection copies what it keeps out of before the next read.

    Flow control: while the transport's write buffer is over its high-water mark
    (``pause_writing``) the connection takes no frames, produces nothing and reads
    nothing from the client (:attr:`LiveConnection.wants_input`); if the client reads
    nothing for ``--timeout`` meanwhile, or never drains what a closing connection still
    has to write, the transport is aborted.
    """

    def __init__(self, server: ReplayServer, accepted_at: float) -> None:
        self.server = server
        self.loop = server.loop
        self.accepted_at = accepted_at
        self.transport: asyncio.Transport | None = None
        self.live: LiveConnection | None = None
        self.task: asyncio.Task[object] | None = None
        """Setting the transport up (the TLS handshake), until connection_made."""
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._stall: asyncio.TimerHandle | None = None
        self._stall_mark = 0
        """Bytes waiting in the write buffer when the stall timer was armed."""
        self._more: asyncio.Handle | None = None
        self._paused = False
        self._reading = True

    # asyncio callbacks -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH, low=WRITE_LOW)
        peer = transport.get_extra_info("peername")
        client = _hostport(peer)
        sslobj = transport.get_extra_info("ssl_object")
        tls = None
        if sslobj is not None:
            tls = TlsInfo(version=sslobj.version(), alpn=sslobj.selected_alpn_protocol())
        session = self.server.session
        assert session is not None
        # The request is due --timeout after the accept, TLS handshake included.
        now = self.loop.time()
        since = now - self.accepted_at

        def connect() -> None:
            self.live = session.connect(
                client=client,
                scheme="wss" if tls is not None else "ws",
                tls=tls,
                now=self.accepted_at,
                wall=time.time() - since,
            )

        self._guard(connect)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        live = self.live
        if live is None:
            return
        # _guard without a closure to build for every read.
        now = self.loop.time()
        try:
            live.receive_data(self.server.read_buffer[:nbytes], now)
        except Exception as e:
            self._failed(e)
            return
        self.flush(now)

    def eof_received(self) -> bool:
        live = self.live
        if live is not None:
            self._guard(lambda: live.receive_eof(self.loop.time()))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._cancel_stall()
        if self._more is not None:
            self._more.cancel()
            self._more = None
        live = self.live
        if live is not None and not self._guard(
            lambda: live.connection_lost(self.loop.time()), flush=False
        ):
            session = self.server.session
            if session is not None:
                session.forget(live)
        self.server._connection_ended(self)

    def pause_writing(self) -> None:
        self._paused = True
        self._cancel_timer()
        if self.live is not None:
            self.live.pause_output()
        self._arm_stall()
        self._update_reading()

    def resume_writing(self) -> None:
        self._paused = False
        self._cancel_stall()
        live, transport = self.live, self.transport
        if transport is not None and transport.is_closing():
            if transport.get_write_buffer_size():
                self._arm_stall()  # the rest must drain in time too
            return
        if live is None:
            return
        # Take the frames that waited; flush() schedules the next deadline.
        self._guard(lambda: live.resume_output(self.loop.time()))

    # plumbing -----------------------------------------------------------------------

    def _guard(self, step: Callable[[], None], *, flush: bool = True) -> bool:
        """Run a core step; a bug in wstape ends this connection (and fails the run),
        never the server. False if the step raised."""
        try:
            step()
        except Exception as e:
            self._failed(e)
            return False
        if flush:
            self.flush()
        return True

    def _failed(self, error: Exception) -> None:
        """A bug in wstape: fail the run, end this connection, keep serving the others."""
        self.server._internal_error(self.live, error)
        if self.transport is not None:
            self.transport.abort()

    def flush(self, now: float | None = None) -> None:
        """Write what the connection has to send and schedule its next deadline
        (``now``: the clock of the step just taken; read again if not given)."""
        live, transport = self.live, self.transport
        if live is None or transport is None or transport.is_closing():
            return
        waiting = self.server._waiting
        if self in waiting and not live.waiting_for_request:
            del waiting[self]
        data = live.data_to_send(self.loop.time() if now is None else now)
        if data:
            transport.write(data)  # may call pause_writing at once
        if live.hangup:
            self._cancel_timer()
            transport.close()
            if transport.get_write_buffer_size():
                self._arm_stall()  # a client that never reads must not keep it open
            return
        if live.backlogged and not self._paused and self._more is None:
            # Frames wait for the output just written: take them on the next turn.
            self._more = self.loop.call_soon(self._take_more)
        self._update_reading()
        deadline = live.next_deadline()
        if deadline is None:
            self._cancel_timer()
        elif not self._paused:
            self._schedule(deadline)

    def _take_more(self) -> None:
        self._more = None
        live = self.live
        if live is not None and not self._paused:
            self._guard(lambda: live.receive_data(b"", self.loop.time()))

    def _update_reading(self) -> None:
        live, transport = self.live, self.transport
        if live is None or transport is None:
            return
        want = live.wants_input and not self._paused
        if want != self._reading:
            self._reading = want
            if want:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _arm_stall(self) -> None:
        if self._stall is None and self.transport is not None:
            self._stall_mark = self.transport.get_write_buffer_size()
            self._stall = self.loop.call_later(self.server.options.play.timeout, self._stalled)

    def _cancel_stall(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None

    def _stalled(self) -> None:
        """The client read nothing for --timeout while output waited: drop it."""
        self._stall = None
        transport, live = self.transport, self.live
        if transport is None:
            return
        buffered = transport.get_write_buffer_size()
        if buffered < self._stall_mark:
            self._arm_stall()  # it reads, slowly: give it another --timeout
            return
        if live is not None:
            self._guard(lambda: live.stalled(self.loop.time(), buffered), flush=False)
        transport.abort()

    def _schedule(self, at: float) -> None:
        timer_at = self._timer_at
        if self._timer is not None and timer_at is not None and timer_at <= at:
            # Waking early is harmless (the wake-up schedules the real deadline), and
            # a deadline that moves on with every message (the wait for the client's
            # next one) must not cost a timer per message.
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

    def wake(self) -> None:
        """Let the connection act now (a fault was injected into it)."""
        live, transport = self.live, self.transport
        if self._paused:
            return  # resume_writing flushes, and schedules the fault's deadline
        if live is not None and transport is not None and not transport.is_closing():
            self._cancel_timer()
            self._guard(lambda: live.tick(self.loop.time()))

    def shutdown(self) -> None:
        live = self.live
        if live is not None:
            self._guard(lambda: live.shutdown(self.loop.time()))
        elif self.task is not None:
            self.task.cancel()  # still in its TLS handshake

    def drop(self) -> None:
        """Close at once, without a word (shed to make room, or the server is stopping)."""
        if self.transport is not None:
            self.transport.abort()
        elif self.task is not None:
            self.task.cancel()


def _hostport(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """Listening sockets with the server's own accept loop (not :class:`asyncio.Server`),
    so the server decides when to accept: never above its connection limit, and after
    running out of file descriptors (EMFILE) it pauses a moment and says so in one line,
    instead of asyncio's traceback per attempt.

    At the limit the socket just accepted is parked (one per listener; its clock runs
    from that accept) and served first once there is room.

    ``sockets``, :meth:`close` and :meth:`wait_closed` are those of an asyncio.Server.
    """

    def __init__(
        self,
        server: ReplayServer,
        sockets: list[socket.socket],
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.server = server
        self.sockets = sockets
        self.ssl_context = ssl_context
        self._loop = server.loop
        self._accepting = False
        self._closed = False
        self._retry: asyncio.TimerHandle | None = None
        self._parked: tuple[socket.socket, float] | None = None

    @classmethod
    async def bind(
        cls,
        server: ReplayServer,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        backlog: int = BACKLOG,
    ) -> Listener:
        """Bind every address of ``host`` on ``port`` (as loop.create_server does) and
        start accepting. Raises OSError when an address cannot be bound."""
        loop = server.loop
        infos = await loop.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(address)
                sock.listen(backlog)
                sock.setblocking(False)
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        if not sockets:
            raise OSError(f"no address to listen on for {host!r}")
        listener = cls(server, sockets, ssl_context)
        listener.resume()
        return listener

    def resume(self) -> None:
        """Accept again (idempotent; nothing once closed or while waiting after EMFILE),
        the parked socket first."""
        if self._closed or self._accepting or self._retry is not None:
            return
        if self._parked is not None:
            if not self.server._room():
                self.server._full()
                return
            sock, accepted_at = self._parked
            self._parked = None
            self.server._accepted(sock, self.ssl_context, accepted_at)
        self._accepting = True
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._readable, sock)

    def pause(self) -> None:
        if not self._accepting:
            return
        self._accepting = False
        for sock in self.sockets:
            self._loop.remove_reader(sock.fileno())

    def close(self) -> None:
        self.pause()
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self.sockets:
            sock.close()
        if self._parked is not None:
            self._parked[0].close()
            self._parked = None

    async def wait_closed(self) -> None:
        """For asyncio.Server's callers: nothing is left to wait for after :meth:`close`."""

    def _readable(self, sock: socket.socket) -> None:
        server = self.server
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                self.pause()
                self._retry = self._loop.call_later(ACCEPT_RETRY, self._retried)
                server._accept_failed(e)
                return
            conn.setblocking(False)
            now = self._loop.time()
            if not server._room():
                self._parked = (conn, now)
                server._full()
                return
            server._accepted(conn, self.ssl_context, now)

    def _retried(self) -> None:
        self._retry = None
        self.resume()


class ReplayServer:
    """Replay ``cassette`` as a ws:// or wss:// server and check every client.

    With ``options.echo`` there is no cassette (pass None): every connection echoes.

    ``on_violation`` is called with each violation as it happens, ``on_log`` with one
    line per connection event (open, close, refusal), ``on_internal_error`` with one line
    per wstape bug caught (the run then fails), ``on_notice`` with one line about the
    server itself (the connection limit reached, out of file descriptors; at most one per
    kind every :data:`NOTICE_INTERVAL` seconds; default: the ``wstape.replay.server``
    logger); all run on the event loop.
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
        on_notice: Callable[[str], None] | None = None,
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
        self.on_notice = on_notice
        self.index = index
        self.session: ReplaySession | None = None
        self.port: int | None = None
        self.max_connections = self.options.max_connections
        """The limit in force: ``options.max_connections``, or fewer if the open-file
        limit is lower (set by :meth:`start`)."""
        self.shed = 0
        """Connections dropped at the limit because they had sent no request."""
        self._listener: Listener | None = None
        self._extra_listeners: list[Listener] = []
        self._conns: dict[_Connection, None] = {}
        """Every accepted connection, oldest first (TLS handshakes included)."""
        self._waiting: dict[_Connection, None] = {}
        """Those without a complete request yet, oldest first: sheddable at the limit."""
        self._full_since: float | None = None
        self._wake_listeners: asyncio.TimerHandle | None = None
        self._notices: dict[str, tuple[float, int]] = {}
        self._done: asyncio.Event | None = None
        self._session_timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        """Set while no client connection is open (by the last one to end)."""
        self._idle.set()
        self.internal_errors: list[str] = []
        self.read_buffer = memoryview(bytearray(READ_SIZE))
        """Where every connection's socket is read into (see :class:`_Connection`)."""

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
            self.index = self._aimed(CassetteIndex.build(self.cassette, self.options.play))
        return self.index

    def _aimed(self, index: CassetteIndex) -> CassetteIndex:
        """``index``, once every ``--fault`` aimed at a connection or path has one to
        strike in it (else ConfigError)."""
        check_aims(
            self.options.play.fault_list(), ((r.conn, r.open.path) for r in index.connections)
        )
        return index

    async def start(self) -> int:
        """Index the cassette, bind, and start serving. Returns the bound port."""
        if self.index is None and not self.options.echo:
            self.index = self._aimed(
                await asyncio.to_thread(CassetteIndex.build, self.cassette, self.options.play)
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
        self.max_connections = min(self.options.max_connections, _fd_budget())
        try:
            self._listener = await Listener.bind(self, self.options.host, self.options.port, ctx)
        except OSError:
            self.session = None  # nothing was served: there is nothing to judge at the stop
            raise
        self.port = int(self._listener.sockets[0].getsockname()[1])
        return self.port

    async def listen(
        self, host: str, port: int = 0, ssl_context: ssl.SSLContext | None = None
    ) -> Listener:
        """Serve this same replay session on one more listener (e.g. a TLS one next to a
        plain one, for ``--via-proxy``); :meth:`stop` closes it too. Start first. The
        connection limit counts the connections of every listener."""
        if self.session is None:
            raise RuntimeError("the server is not started")
        extra = await Listener.bind(self, host, port, ssl_context)
        self._extra_listeners.append(extra)
        return extra

    # -- connections, and the limit ---------------------------------------------------

    def _listeners(self) -> list[Listener]:
        main = [self._listener] if self._listener is not None else []
        return main + self._extra_listeners

    def _accepted(
        self, sock: socket.socket, ssl_context: ssl.SSLContext | None, accepted_at: float
    ) -> None:
        proto = _Connection(self, accepted_at)
        self._conns[proto] = None
        self._waiting[proto] = None
        self._idle.clear()
        timeout = None
        if ssl_context is not None:
            timeout = max(0.001, accepted_at + self.options.play.timeout - self.loop.time())
        proto.task = self.loop.create_task(self._connect(proto, sock, ssl_context, timeout))

    async def _connect(
        self,
        proto: _Connection,
        sock: socket.socket,
        ssl_context: ssl.SSLContext | None,
        timeout: float | None,
    ) -> None:
        peer = "a client"
        if ssl_context is not None:  # named if its TLS handshake fails
            with contextlib.suppress(OSError):
                peer = _hostport(sock.getpeername())
        try:
            await self.loop.connect_accepted_socket(
                lambda: proto, sock, ssl=ssl_context, ssl_handshake_timeout=timeout
            )
        except (Exception, asyncio.CancelledError) as e:
            # A failed or timed-out TLS handshake, a client gone already, or shed or
            # stopped meanwhile: the socket is closed, the connection never existed.
            if isinstance(e, ssl.SSLError):
                self._tls_failed(peer, e)
            sock.close()
            if proto.transport is None:
                self._connection_ended(proto)
        finally:
            proto.task = None

    def _tls_failed(self, peer: str, error: ssl.SSLError) -> None:
        """One line (rate-limited: hostile clients) about a TLS handshake that failed, so a
        client that refuses the certificate or speaks plain ws:// is not left unexplained."""
        reason = str(error.reason or error)
        if reason == "HTTP_REQUEST":
            why = "it sent plain HTTP to this wss:// port (a ws:// URL?)"
        elif "ALERT" in reason:
            alert = reason.split("ALERT_", 1)[-1].replace("_", " ").lower()
            ca = self.options.tls.ca_path if self.options.tls is not None else None
            trust = f"; it must trust the CA {ca}" if ca is not None else ""
            why = f"the client refused the certificate (alert: {alert}){trust}"
        else:
            why = reason.replace("_", " ").lower()
        self._notice(f"tls {reason}", f"TLS handshake from {peer} failed: {why}")

    def _room(self) -> bool:
        """May one more connection be accepted now? At the limit, drops the oldest
        connection that has sent no request for :data:`SHED_AFTER` seconds to make it so."""
        if len(self._conns) < self.max_connections:
            return True
        oldest = next(iter(self._waiting), None)
        if oldest is None or self.loop.time() - oldest.accepted_at < SHED_AFTER:
            return False
        self._forget(oldest)
        oldest.drop()
        self.shed += 1
        self._notice(
            "shed",
            f"{self.max_connections} connections open{self._limit_why()}: dropping those "
            f"that sent no request within {SHED_AFTER:g} s to make room",
        )
        return True

    def _full(self) -> None:
        """No room: stop accepting until a connection ends or one becomes sheddable."""
        for each in self._listeners():
            each.pause()
        if self._full_since is None:
            self._full_since = self.loop.time()
            self._notice(
                "full",
                f"{len(self._conns)} connections open{self._limit_why()}: new connections "
                "wait until one ends",
            )
        oldest = next(iter(self._waiting), None)
        if oldest is not None and self._wake_listeners is None:
            at = oldest.accepted_at + SHED_AFTER
            self._wake_listeners = self.loop.call_at(at, self._resume_listeners)

    def _resume_listeners(self) -> None:
        self._wake_listeners = None
        self._full_since = None
        for each in self._listeners():
            each.resume()

    def _limit_why(self) -> str:
        if self.max_connections < self.options.max_connections:
            return (
                f", the most the open-file limit allows (ulimit -n; --max-connections "
                f"{self.options.max_connections})"
            )
        return f" (--max-connections {self.max_connections})"

    def _accept_failed(self, error: OSError) -> None:
        """accept() failed (out of file descriptors, most likely): one line, and the
        oldest connection without a request makes room if it has waited long enough."""
        if error.errno in _OUT_OF_RESOURCES:
            self._notice(
                "accept",
                f"cannot accept: {error.strerror or error} with {len(self._conns)} "
                f"connections open; pausing new connections for {ACCEPT_RETRY:g} s "
                "(raise ulimit -n, or lower --max-connections)",
            )
            oldest = next(iter(self._waiting), None)
            if oldest is not None and self.loop.time() - oldest.accepted_at >= SHED_AFTER:
                self._forget(oldest)
                oldest.drop()
                self.shed += 1
        else:
            self._notice("accept", f"cannot accept: {error.strerror or error}")

    def _notice(self, kind: str, text: str) -> None:
        """Say ``text``, at most once per :data:`NOTICE_INTERVAL` per ``kind``; the
        lines left out are counted in the next one."""
        now = self.loop.time()
        last, skipped = self._notices.get(kind, (-NOTICE_INTERVAL, 0))
        if now - last < NOTICE_INTERVAL:
            self._notices[kind] = (last, skipped + 1)
            return
        self._notices[kind] = (now, 0)
        if skipped:
            text += f" (again {skipped} times since the last such line)"
        if self.on_notice is not None:
            self.on_notice(text)
        else:
            log.warning("%s", text)

    def _forget(self, proto: _Connection) -> None:
        self._conns.pop(proto, None)
        self._waiting.pop(proto, None)

    def _connection_ended(self, proto: _Connection) -> None:
        self._forget(proto)
        if not self._conns:
            self._idle.set()
        if self._full_since is not None and len(self._conns) < self.max_connections:
            if self._wake_listeners is not None:
                self._wake_listeners.cancel()
            self._resume_listeners()
        self._session_changed()

    def _session_changed(self) -> None:
        """After a connection ended: wake the session when it has something to settle
        (a reconnect that may not come), and say when every recording was played."""
        session = self.session
        if session is None:
            return
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        deadline = session.next_deadline()
        if deadline is not None:
            self._session_timer = self.loop.call_at(deadline, self._session_tick)
        if self._done is not None and session.all_played():
            self._done.set()

    def _session_tick(self) -> None:
        self._session_timer = None
        session = self.session
        if session is not None:
            try:
                session.tick(self.loop.time())
            except Exception as e:  # a wstape bug: fail the run, keep serving
                self._internal_error(None, e)
        self._session_changed()

    def inject(self, spec: str) -> None:
        """Inject a fault now (the ``--fault`` grammar, docs/faults.md), on the open
        connections it aims at and on the ones to come. Call it on the server's loop.

        Raises ConfigError for a spec that does not parse, RuntimeError before start.
        """
        if self.session is None:
            raise RuntimeError("the server is not started")
        armed = self.session.inject(parse_fault(spec), self.loop.time())
        for proto in list(self._conns):
            if proto.live in armed:
                proto.wake()  # fire it now, or schedule its point

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

    async def stop(self, *, judge: bool = True) -> None:
        """Stop listening, say goodbye to open connections, settle the report
        (``judge=False``: the run never got going, e.g. a second listener could not bind;
        nothing is judged, not even that no client came)."""
        if self._wake_listeners is not None:
            self._wake_listeners.cancel()
            self._wake_listeners = None
        for extra in self._extra_listeners:
            extra.close()
        self._extra_listeners = []
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            for proto in list(self._conns):
                proto.shutdown()
            await self.settle(STOP_GRACE)
            for proto in list(self._conns):
                proto.drop()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), STOP_GRACE)
        if self._session_timer is not None:
            self._session_timer.cancel()
            self._session_timer = None
        if self.session is not None and judge:
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


def _fd_budget() -> int:
    """Client connections the open-file limit leaves room for (each takes one)."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return DEFAULT_MAX_CONNECTIONS
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return 1 << 30
    return max(1, soft - max(FD_RESERVE, soft // 8))


__all__ = ["DEFAULT_MAX_CONNECTIONS", "Listener", "ReplayOptions", "ReplayServer"]
