"""A bare in-process mitmproxy: what ``wstape record`` and ``wstape replay --via-proxy`` share.

Both run a :class:`mitmproxy.master.Master` with only the addons a proxy needs (``core``,
``proxyserver``, ``next_layer``, ``tlsconfig``) plus their own: mitmdump's default addons
run on every message and cost a third or more of the throughput. Both stop it the same
way, because ``Master.shutdown()`` alone leaves the listener open and live WebSockets
relaying: close the listeners, cancel the live connection handlers, then run ``done``.
"""

from __future__ import annotations

import asyncio
import errno
import time

from mitmproxy import master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig


def format_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bare_master(
    opts: options.Options, loop: asyncio.AbstractEventLoop, addon: object
) -> tuple[master.Master, proxyserver.Proxyserver]:
    """A master with the four addons a proxy needs, then ``addon``; and its proxyserver."""
    m = master.Master(opts, event_loop=loop)
    # Proxyserver.__init__ and AddonManager.add are unannotated upstream.
    ps = proxyserver.Proxyserver()  # type: ignore[no-untyped-call]
    m.addons.add(  # type: ignore[no-untyped-call]
        core.Core(), ps, next_layer.NextLayer(), tlsconfig.TlsConfig(), addon
    )
    return m, ps


def listen_error(ps: proxyserver.Proxyserver, host: str, port: int, port_option: str) -> str:
    """One line saying why ``ps.setup_servers()`` could not listen on ``host:port``;
    ``port_option`` is the option that chooses another port (named in the hint)."""
    where = format_hostport(host or "*", port)
    for instance in ps.servers:
        exc = instance.last_exception
        if exc is None:
            continue
        code = getattr(exc, "errno", None)
        if code == errno.EADDRINUSE:
            return (
                f"cannot listen on {where}: address already in use (another proxy running? "
                f"choose another {port_option}, or 0 for any free port)"
            )
        if code == errno.EACCES:
            return f"cannot listen on {where}: permission denied (ports below 1024 need root)"
        if code == errno.EADDRNOTAVAIL:
            return f"cannot listen on {where}: no such local address"
        first = str(exc).strip().splitlines()
        return f"cannot listen on {where}: {first[0] if first else type(exc).__name__}"
    return f"cannot listen on {where}"


async def cancel_connections(ps: proxyserver.Proxyserver, reason: str, timeout: float) -> None:
    """Cancel every live connection handler and wait (up to ``timeout``) for them to end."""
    for handler in list(ps.connections.values()):
        for io in list(handler.transports.values()):
            if io.handler is not None:
                io.handler.cancel(reason)
    deadline = time.monotonic() + timeout
    while ps.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
