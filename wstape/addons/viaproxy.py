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
the CA in ``confdir``. The upgrade then reaches the replay session over TLS too, on a
listener of its own (``tls``: a certificate for 127.0.0.1 from the same CA, not verified
by the proxy), so the scheme rules see ``wss`` exactly when the device used wss; plain ws
upgrades reach a plain listener (``plain``). The TLS facts the rules see (version, ALPN)
are those of that local hop; mitmproxy itself refuses device TLS below 1.2.

This module is the mitmproxy side only (the addons layer does not import the replay
server); ``wstape.device_proxy.start_device_proxy`` opens the two listeners on a running
:class:`~wstape.replay.server.ReplayServer` and starts the proxy in front of them.

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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitmproxy import exceptions, http, master, options
from mitmproxy.addons import proxyserver
from mitmproxy.proxy import server_hooks

from wstape.addons.proxy import bare_master, cancel_connections, listen_error
from wstape.core.errors import WstapeError
from wstape.replay.server import Listener, ReplayServer
from wstape.replay.tls import minted_context

NOT_SERVED = "wstape replay: only recorded WebSocket traffic is served"
"""First line of the 502 body for every request that is not a WebSocket upgrade."""
BLOCKED = "wstape replay: no connection leaves this machine"
DRAIN_TIMEOUT = 3.0

Address = tuple[str, int]


class ViaProxyError(WstapeError):
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


DEFAULT_CONFDIR = Path("~/.mitmproxy")


@dataclass(frozen=True)
class DeviceProxyConfig:
    listen_host: str = ""
    """Where the proxy listens; "" = every interface (a phone reaches it over the LAN)."""
    listen_port: int = 8080
    """0 = any free port (see :attr:`DeviceProxy.port`)."""
    confdir: Path | None = None
    """mitmproxy's configuration directory, whose CA the device trusts [~/.mitmproxy]."""


class DeviceProxy:
    """An in-process mitmproxy (regular mode) with the :class:`ViaProxy` addon.

    ``plain`` and ``tls`` are where the replay session listens for upgrades the device
    made over ws and over wss (``wstape.device_proxy.start_device_proxy`` opens them on a
    running replay server and starts this). ``close_with`` are servers to close when the
    proxy stops (those listeners). Usage::

        proxy = DeviceProxy(plain, tls, DeviceProxyConfig(listen_port=8080))
        port = await proxy.start()   # raises ViaProxyError
        ...
        await proxy.stop()

    Only one mitmproxy master can run in a process at a time.
    """

    def __init__(
        self,
        plain: Address,
        tls: Address,
        config: DeviceProxyConfig | None = None,
        *,
        what: str = "a cassette",
        on_log: Callable[[str], None] | None = None,
        close_with: Sequence[Listener] = (),
    ) -> None:
        self.config = config or DeviceProxyConfig()
        self.on_log = on_log
        self.addon = ViaProxy(plain, tls, what=what, on_log=on_log)
        self.host = ""
        self.port = 0
        self._master: master.Master | None = None
        self._proxyserver: proxyserver.Proxyserver | None = None
        self._close_with = list(close_with)
        self._logs: contextlib.ExitStack | None = None

    @property
    def confdir(self) -> Path:
        return (self.config.confdir or DEFAULT_CONFDIR).expanduser()

    @property
    def ca_path(self) -> Path:
        """The CA certificate the device must trust for wss (mitmproxy's)."""
        return self.confdir / "mitmproxy-ca-cert.pem"

    async def start(self) -> int:
        """Start listening; returns the bound port. Raises ViaProxyError (and then closes
        the ``close_with`` servers too)."""
        try:
            return await self._start()
        except BaseException:
            await self._close_servers()
            raise

    async def _start(self) -> int:
        loop = asyncio.get_running_loop()
        opts = options.Options()
        m, ps = bare_master(opts, loop, self.addon)
        updates: dict[str, Any] = {
            "mode": ["regular"],
            "listen_host": self.config.listen_host,
            "listen_port": self.config.listen_port,
            "confdir": str(self.confdir),
            # Never reach out before the request is seen (CONNECT to a name that does not
            # resolve), never ask an upstream for its certificate.
            "connection_strategy": "lazy",
            "upstream_cert": False,
            # The only server connections are to the replay session's own listeners.
            "ssl_insecure": True,
            # WebSocket runs over HTTP/1.1; h2 would only carry requests we refuse anyway.
            "http2": False,
        }
        try:
            opts.update(**updates)  # type: ignore[no-untyped-call]
        except exceptions.OptionsError as e:
            await m.done()
            raise ViaProxyError(str(e).strip().splitlines()[0]) from None
        ok = await ps.setup_servers()  # its failure is reported below, in one line
        addrs = ps.listen_addrs()
        if not ok or not addrs:
            cfg = self.config
            message = "--via-proxy: " + listen_error(
                ps, cfg.listen_host, cfg.listen_port, "--via-proxy port"
            )
            await ps.servers.update([])
            await m.done()
            raise ViaProxyError(message)
        logs = contextlib.ExitStack()
        logs.enter_context(_relay_logs(self.on_log))
        await m.running()
        self._master, self._proxyserver, self._logs = m, ps, logs
        self.host, self.port = str(addrs[0][0]), int(addrs[0][1])
        return self.port

    async def stop(self) -> None:
        """Close the proxy (listener, live connections, master) and ``close_with``."""
        m, ps = self._master, self._proxyserver
        self._master = self._proxyserver = None
        if m is not None and ps is not None:
            await ps.servers.update([])
            await cancel_connections(ps, "wstape replay is shutting down", DRAIN_TIMEOUT)
            await m.done()
        await self._close_servers()
        if self._logs is not None:
            self._logs.close()
            self._logs = None

    async def _close_servers(self) -> None:
        servers, self._close_with = self._close_with, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)


async def start_device_proxy(
    server: ReplayServer,
    config: DeviceProxyConfig,
    *,
    on_log: Callable[[str], None] | None = None,
) -> DeviceProxy:
    """``--via-proxy`` as a library call, for a started ``server`` (same event loop).

    Opens the replay session on two more listeners on 127.0.0.1, plain and TLS (a
    certificate for 127.0.0.1 from the CA in ``config.confdir``), so an upgrade the device
    made over wss is replayed as wss, and starts the device proxy in front of them
    (:mod:`wstape.addons.viaproxy`). ``proxy.stop()`` closes both listeners too; stop it
    before the server. Raises ViaProxyError (port in use) or TlsSetupError.
    """
    names = ["127.0.0.1", "localhost"]
    ctx = await asyncio.to_thread(minted_context, names, config.confdir)
    listeners = [await server.listen("127.0.0.1", 0, tls) for tls in (None, ctx)]
    plain, secure = (("127.0.0.1", int(ls.sockets[0].getsockname()[1])) for ls in listeners)
    proxy = DeviceProxy(
        plain, secure, config, what=str(server.cassette), on_log=on_log, close_with=listeners
    )
    await proxy.start()
    return proxy


__all__ = [
    "BLOCKED",
    "DEFAULT_CONFDIR",
    "NOT_SERVED",
    "DeviceProxy",
    "DeviceProxyConfig",
    "ViaProxy",
    "ViaProxyError",
    "ViaProxyStats",
    "is_websocket_upgrade",
    "not_served_body",
    "start_device_proxy",
]
