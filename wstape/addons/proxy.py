"""A bare in-process mitmproxy: what ``wstape record`` and ``wstape replay --via-proxy`` share.

Both run a :class:`mitmproxy.master.Master` with only the addons a proxy needs (``core``,
``proxyserver``, ``next_layer``, ``tlsconfig``) plus their own: mitmdump's default addons
run on every message and cost a third or more of the throughput. Both stop it the same
way, because ``Master.shutdown()`` alone leaves the listener open and live WebSockets
relaying: close the listeners, cancel the live connection handlers, then run ``done``.
"""

from __future__ import annotations

import asyncio
import time

from mitmproxy import master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig

from wstape.core.listening import format_hostport
from wstape.core.listening import listen_error as core_listen_error


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
    for instance in ps.servers:
        exc = instance.last_exception
        if exc is None:
            continue
        detail = str(exc) or type(exc).__name__
        code = getattr(exc, "errno", None)
        return core_listen_error(host, port, code, detail, port_option=port_option, who="proxy")
    return f"cannot listen on {format_hostport(host or '*', port)}"


async def cancel_connections(ps: proxyserver.Proxyserver, reason: str, timeout: float) -> None:
    """Cancel every live connection handler and wait (up to ``timeout``) for them to end."""
    for handler in list(ps.connections.values()):
        for io in list(handler.transports.values()):
            if io.handler is not None:
                io.handler.cancel(reason)
    deadline = time.monotonic() + timeout
    while ps.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
