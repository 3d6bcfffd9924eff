"""Replay through the device's own proxy: ``wstape replay CASSETTE --via-proxy PORT``.

A phone or WeChat DevTools set up for capture sends everything through an HTTP proxy
(mitmproxy, port 8080) and trusts mitmproxy's CA. To replay without changing a setting on
the device, this module runs an in-process mitmproxy on that port, in regular proxy mode,
in front of a running :class:`~wstape.replay.server.ReplayServer`:

- every WebSocket upgrade, for any host, ws or wss, goes to the replay server; the
  request keeps its ``Host`` header, so host rules (WX-URL-HOST, ...) see the name the
  device used;
- anything else is answered by the proxy itself with a 502 and
  ``wstape replay: only recorded WebSocket traffic is served``;
- nothing leaves the machine: ``connection_strategy=lazy`` keeps mitmproxy from opening
  a connection for a CONNECT before the request inside the tunnel is seen (so a name that
  does not resolve is never looked up), and the ``server_connect`` hook kills any server
  connection that is not to the replay server.

The device's TLS (wss) ends at mitmproxy, with a certificate for the requested name from
the CA in ``confdir``. The upgrade then reaches the replay server over TLS too, on a
second listener of the same replay session (a certificate for 127.0.0.1 from the same CA,
not verified by the proxy), so the scheme rules see ``wss`` exactly when the device used
wss; plain ws upgrades reach a plain listener. The TLS facts the rules see (version,
ALPN) are those of that local hop; mitmproxy itself refuses device TLS below 1.2.

The device's frames are relayed by mitmproxy, which parses and re-frames them: frame-level
findings (masking, fragmentation, RSV bits, control frame sizes) are about mitmproxy's
frames, and a device frame that breaks the protocol is refused by mitmproxy before it
reaches the replay server. Messages, their types and the close code and reason arrive
unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import exceptions, http, master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.proxy import server_hooks

from wstape.replay.server import ReplayServer, _Connection
from wstape.replay.tls import DEFAULT_CONFDIR, minted_context

NOT_SERVED = "wstape replay: only recorded WebSocket traffic is served"
"""First line of the 502 body for every request that is not a WebSocket upgrade."""
BLOCKED = "wstape replay: no connection leaves this machine"
DRAIN_TIMEOUT = 3.0
LOCAL = "127.0.0.1"

Address = tuple[str, int]


class ViaProxyError(Exception):
    """The device proxy could not start (a usage problem: port in use, bad option)."""


def is_websocket_upgrade(request: http.Request) -> bool:
    """An upgrade to WebSocket, or a request carrying a WebSocket key (a broken upgrade,
    which the replay server then reports under its rule)."""
    upgrade = request.headers.get("upgrade", "")
    tokens = {t.strip().lower() for t in upgrade.split(",")}
    return "websocket" in tokens or "sec-websocket-key" in request.headers


def not_served_body(request: http.Request, what: str) -> bytes:
    url = request.pretty_url
    return (
        f"{NOT_SERVED}.\n"
        f"{request.method} {url} is not a WebSocket upgrade; this proxy replays {what} "
        "and never connects anywhere else.\n"
    ).encode()


@dataclass
class ViaProxyStats:
    routed: int = 0
    """WebSocket upgrades sent to the replay server."""
    refused: int = 0
    """Other requests answered with 502."""
    server_connections: list[Address] = field(default_factory=list)
    """Every server address mitmproxy was about to connect to (all the replay server's)."""
    blocked: list[Address] = field(default_factory=list)
    """Server connections killed because they were not to the replay server (none, unless
    something in mitmproxy tries to reach an upstream)."""


class ViaProxy:
    """The mitmproxy addon: upgrades to the replay server, 502 for the rest, no upstream.

    ``plain`` and ``tls`` are the replay server's listeners for ws and wss upgrades.
    ``on_log`` gets one line per notable event (the first refused request per host, a
    blocked connection).
    """

    def __init__(
        self,
        plain: Address,
        tls: Address,
        *,
        what: str = "a cassette",
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.plain = plain
        self.tls = tls
        self.what = what
        self.on_log = on_log
        self.stats = ViaProxyStats()
        self._refused_hosts: set[str] = set()

    def _log(self, text: str) -> None:
        if self.on_log is not None:
            self.on_log(text)

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if flow.response is not None or request.method == "CONNECT":
            return
        if is_websocket_upgrade(request):
            # Set the destination without the Host-rewriting setters: the replay server
            # must see the name the device asked for.
            host, port = self.tls if request.scheme == "https" else self.plain
            request.data.host = host
            request.data.port = port
            self.stats.routed += 1
            return
        self.stats.refused += 1
        flow.response = http.Response.make(
            502,
            not_served_body(request, self.what),
            {"Content-Type": "text/plain; charset=utf-8", "X-Wstape": "via-proxy"},
        )
        host = request.pretty_host
        if host not in self._refused_hosts:
            self._refused_hosts.add(host)
            self._log(
                f"502 for {request.method} {request.pretty_url}: not a WebSocket upgrade "
                f"(further requests to {host} are answered the same, silently)"
            )

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        address = data.server.address
        if address is None:
            data.server.error = BLOCKED
            return
        addr = (str(address[0]), int(address[1]))
        self.stats.server_connections.append(addr)
        if addr not in (self.plain, self.tls):
            self.stats.blocked.append(addr)
            data.server.error = f"{BLOCKED} (refused a connection to {addr[0]}:{addr[1]})"
            self._log(f"blocked a connection to {addr[0]}:{addr[1]}")


class _LogRelay(logging.Handler):
    """mitmproxy's warnings (a device that does not trust the CA, ...) as one line each."""

    def __init__(self, on_log: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.on_log = on_log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            lines = record.getMessage().strip().splitlines()
        except Exception:  # pragma: no cover - a broken log call must not stop the proxy
            return
        self.on_log("mitmproxy: " + (lines[0] if lines else ""))


@contextlib.contextmanager
def _relay_logs(on_log: Callable[[str], None] | None) -> Iterator[None]:
    if on_log is None:
        yield
        return
    handler = _LogRelay(on_log)
    logger = logging.getLogger("mitmproxy")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@dataclass(frozen=True)
class DeviceProxyConfig:
    listen_host: str = ""
    """Where the proxy listens; "" = every interface (a phone reaches it over the LAN)."""
    listen_port: int = 8080
    """0 = any free port (see :attr:`DeviceProxy.port`)."""
    confdir: Path | None = None
    """mitmproxy's configuration directory, whose CA the device trusts [~/.mitmproxy]."""


class DeviceProxy:
    """An in-process mitmproxy in front of a started :class:`ReplayServer` (same loop).

    Usage::

        proxy = DeviceProxy(server, DeviceProxyConfig(listen_port=8080))
        port = await proxy.start()   # raises ViaProxyError
        ...
        await proxy.stop()           # before server.stop()

    Only one mitmproxy master can run in a process at a time.
    """

    def __init__(
        self,
        server: ReplayServer,
        config: DeviceProxyConfig | None = None,
        *,
        on_log: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.config = config or DeviceProxyConfig()
        self.on_log = on_log
        self.addon: ViaProxy | None = None
        self.host = ""
        self.port = 0
        self._master: master.Master | None = None
        self._proxyserver: proxyserver.Proxyserver | None = None
        self._listeners: list[asyncio.Server] = []
        self._logs: contextlib.ExitStack | None = None

    @property
    def confdir(self) -> Path:
        return (self.config.confdir or DEFAULT_CONFDIR).expanduser()

    @property
    def ca_path(self) -> Path:
        """The CA certificate the device must trust for wss (mitmproxy's)."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    async def _listen(self, ctx: ssl.SSLContext | None) -> Address:
        """One more listener of the replay server's session, on 127.0.0.1."""
        server = self.server
        listener = await asyncio.get_running_loop().create_server(
            lambda: _Connection(server), LOCAL, 0, ssl=ctx, backlog=1024
        )
        self._listeners.append(listener)
        return (LOCAL, int(listener.sockets[0].getsockname()[1]))

    async def _replay_addresses(self) -> tuple[Address, Address]:
        """Two more listeners of the replay session on 127.0.0.1: (plain, tls).

        The replay server's own listener stays for direct clients; whatever its host and
        TLS settings, upgrades from the proxy come in on these.
        """
        if self.server.port is None or self.server.session is None:
            raise ViaProxyError("the replay server must be started before the device proxy")
        tls_ctx = await asyncio.to_thread(minted_context, [LOCAL, "localhost"], self.confdir)
        return await self._listen(None), await self._listen(tls_ctx)

    async def start(self) -> int:
        """Start listening; returns the bound port. Raises ViaProxyError."""
        try:
            plain, tls = await self._replay_addresses()
        except ViaProxyError:
            await self._close_listeners()
            raise
        except Exception as e:
            await self._close_listeners()
            raise ViaProxyError(f"cannot open the local replay listeners: {e}") from e
        what = str(self.server.cassette)
        self.addon = ViaProxy(plain, tls, what=what, on_log=self.on_log)
        loop = asyncio.get_running_loop()
        opts = options.Options()
        m = master.Master(opts, event_loop=loop)
        ps = proxyserver.Proxyserver()  # type: ignore[no-untyped-call]
        m.addons.add(  # type: ignore[no-untyped-call]
            core.Core(), ps, next_layer.NextLayer(), tlsconfig.TlsConfig(), self.addon
        )
        updates: dict[str, Any] = {
            "mode": ["regular"],
            "listen_host": self.config.listen_host,
            "listen_port": self.config.listen_port,
            "confdir": str(self.confdir),
            # Never reach out before the request is seen (CONNECT to a name that does not
            # resolve), never ask an upstream for its certificate.
            "connection_strategy": "lazy",
            "upstream_cert": False,
            # The only server connections are ours, to a certificate minted for 127.0.0.1.
            "ssl_insecure": True,
            # WebSocket runs over HTTP/1.1; h2 would only carry requests we refuse anyway.
            "http2": False,
        }
        try:
            opts.update(**updates)  # type: ignore[no-untyped-call]
        except exceptions.OptionsError as e:
            await m.done()
            await self._close_listeners()
            raise ViaProxyError(str(e).strip().splitlines()[0]) from None
        self._logs = contextlib.ExitStack()
        self._logs.enter_context(_relay_logs(self.on_log))
        ok = await ps.setup_servers()
        addrs = ps.listen_addrs()
        if not ok or not addrs:
            message = _listen_error(ps, self.config)
            await ps.servers.update([])
            await m.done()
            await self._close_listeners()
            self._logs.close()
            raise ViaProxyError(message)
        await m.running()
        self._master, self._proxyserver = m, ps
        self.host, self.port = str(addrs[0][0]), int(addrs[0][1])
        return self.port

    async def stop(self) -> None:
        """Close the proxy (listener, live connections, master) and the extra listeners."""
        m, ps = self._master, self._proxyserver
        self._master = self._proxyserver = None
        if m is not None and ps is not None:
            await ps.servers.update([])
            for handler in list(ps.connections.values()):
                for io in list(handler.transports.values()):
                    if io.handler is not None:
                        io.handler.cancel("wstape replay is shutting down")
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while ps.connections and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await m.done()
        await self._close_listeners()
        if self._logs is not None:
            self._logs.close()
            self._logs = None

    async def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), 1.0)
        self._listeners = []


def _listen_error(ps: proxyserver.Proxyserver, config: DeviceProxyConfig) -> str:
    host = config.listen_host or "*"
    where = f"[{host}]:{config.listen_port}" if ":" in host else f"{host}:{config.listen_port}"
    for instance in ps.servers:
        exc = instance.last_exception
        if exc is None:
            continue
        text = str(exc).strip().splitlines()
        detail = getattr(exc, "strerror", None) or (text[0] if text else type(exc).__name__)
        return f"--via-proxy: cannot listen on {where}: {detail}"
    return f"--via-proxy: cannot listen on {where}"


__all__ = [
    "BLOCKED",
    "NOT_SERVED",
    "DeviceProxy",
    "DeviceProxyConfig",
    "ViaProxy",
    "ViaProxyError",
    "ViaProxyStats",
    "is_websocket_upgrade",
    "not_served_body",
]
