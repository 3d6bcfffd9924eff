"""``wstape replay --via-proxy``: the device's own proxy in front of a replay server.

This module joins the two adapters (the replay server and the mitmproxy device proxy), so
it sits above both layers, like the CLI and the pytest plugin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from wstape.addons.viaproxy import DeviceProxy, DeviceProxyConfig
from wstape.replay.server import ReplayServer
from wstape.replay.tls import minted_context


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
