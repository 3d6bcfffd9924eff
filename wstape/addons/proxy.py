"""A bare in-process mitmproxy: what ``wstape record`` and ``wstape replay --via-proxy`` share.

Both run a :class:`mitmproxy.master.Master` with only the addons a proxy needs (``core``,
``proxyserver``, ``next_layer``, ``tlsconfig``) plus their own: mitmdump's default addons
run on every message and cost a third or more of the throughput. Its addon manager is a
:class:`HookTable`, which looks up once which addons handle a hook instead of on every
event: mitmproxy fires two hooks per WebSocket message (``websocket_message`` and
``update``), and asking every addon for both cost ~7% of the recorder's CPU time per
message (11% with mitmproxy 12). Both stop it the same way, because
``Master.shutdown()`` alone leaves the listener open and live WebSockets relaying: close
the listeners, cancel the live connection handlers, then run ``done``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks, master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig

from wstape.core.listening import format_hostport
from wstape.core.listening import listen_error as core_listen_error


class HookTable(addonmanager.AddonManager):
    """mitmproxy's addon manager, with each hook's handlers looked up once.

    :meth:`trigger_event` does what mitmproxy's does (each addon in order, its handlers
    and its children's in one ``safecall``, an ``AddonHalt`` ends the event, a coroutine a
    handler returns is awaited), but from a table of the handlers, keyed by hook name,
    built the first time a hook fires and dropped whenever an addon is added or removed.
    Addons that handle nothing are skipped, and an event nobody handles costs a dictionary
    look-up: the ``update`` hook mitmproxy fires after every message is not even built.
    So addons must not gain or lose hook methods once added; wstape's own and mitmproxy's
    built-in ones do not.
    """

    def __init__(self, m: master.Master) -> None:
        super().__init__(m)  # type: ignore[no-untyped-call]
        self._table: dict[str, list[list[Callable[..., Any]]]] = {}
        """Per hook name, for each addon with a handler, its handlers (its children's too)."""

    def add(self, *addons: Any) -> None:
        self._table.clear()
        super().add(*addons)  # type: ignore[no-untyped-call]
        self._table.clear()  # (its ``load``/``configure`` may have fired hooks meanwhile)

    def remove(self, addon: Any) -> None:
        self._table.clear()
        super().remove(addon)  # type: ignore[no-untyped-call]
        self._table.clear()

    def clear(self) -> None:
        self._table.clear()
        super().clear()  # type: ignore[no-untyped-call]
        self._table.clear()

    def _handlers(self, event: hooks.Hook) -> list[list[Callable[..., Any]]]:
        handlers = self._table.get(event.name)
        if handlers is None:
            handlers = []
            for addon in self.chain:
                with addonmanager.safecall():  # a handler that is not callable: logged
                    funcs = [func for _, func in self._iter_hooks(addon, event)]
                    if funcs:
                        handlers.append(funcs)
            self._table[event.name] = handlers
        return handlers

    async def trigger_event(self, event: hooks.Hook) -> None:
        handlers = self._handlers(event)
        if handlers:
            await self._call(handlers, event.args())

    async def handle_lifecycle(self, event: hooks.Hook) -> None:
        """As mitmproxy's: the hook, then ``update`` for a flow's hook (and that only when
        some addon handles ``update``, which none of wstape's proxies do)."""
        args = event.args()
        handlers = self._handlers(event)
        if handlers:
            await self._call(handlers, args)
        if isinstance(args[0], flow.Flow) and self._table.get(hooks.UpdateHook.name) != []:
            await self.trigger_event(hooks.UpdateHook([args[0]]))

    async def _call(self, handlers: list[list[Callable[..., Any]]], args: list[Any]) -> None:
        for funcs in handlers:
            try:
                with addonmanager.safecall():
                    for func in funcs:
                        res = func(*args)
                        if res is not None and inspect.isawaitable(res):
                            await res
            except exceptions.AddonHalt:
                return


def bare_master(
    opts: options.Options, loop: asyncio.AbstractEventLoop, addon: object
) -> tuple[master.Master, proxyserver.Proxyserver]:
    """A master with the four addons a proxy needs, then ``addon``; and its proxyserver.
    Its addon manager is a :class:`HookTable`."""
    m = master.Master(opts, event_loop=loop)
    addons = m.addons = HookTable(m)  # (Master adds no addon of its own without a termlog)
    ps = proxyserver.Proxyserver()  # type: ignore[no-untyped-call]  # unannotated upstream
    addons.add(core.Core(), ps, next_layer.NextLayer(), tlsconfig.TlsConfig(), addon)
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
