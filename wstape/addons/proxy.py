"""A bare in-process mitmproxy: what ``wstape record`` and ``wstape replay --via-proxy`` share.

Both run a :class:`mitmproxy.master.Master` with only the addons a proxy needs (``core``,
``proxyserver``, ``next_layer``, ``tlsconfig``) plus their own: mitmdump's default addons
run on every message and cost a third or more of the throughput. Its addon manager is a
:class:`HookTable`, which looks up once which addons handle a hook instead of on every
event: mitmproxy fires two hooks per WebSocket message (``websocket_message`` and
``update``), and asking every addon for both cost ~7% of the recorder's CPU time per
message (11% with mitmproxy 12). Its proxyserver runs each connection's hooks as they
come out of mitmproxy's layers (:class:`InlineHooks`), not in a task of their own a turn
of the event loop later whose end takes another pass of the connection's event handler:
10-15% less CPU time per message one at a time, a third less pipelined. Both stop it the
same way, because ``Master.shutdown()`` alone leaves the listener open and live
WebSockets relaying: close the listeners, cancel the live connection handlers, then run
``done``.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from contextlib import contextmanager
from typing import Any

from mitmproxy import addonmanager, exceptions, flow, hooks, master, options
from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
from mitmproxy.proxy import commands, events, layer, server
from mitmproxy.proxy.mode_servers import ProxyConnectionHandler

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
        rest = self.start_lifecycle(event)
        if rest is not None:
            await rest

    def start_lifecycle(
        self, event: hooks.Hook, args: list[Any] | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """:meth:`handle_lifecycle` started at once: the handlers are called until one
        returns an awaitable; what is left (awaiting it, the handlers after it, and
        ``update``) is returned as a coroutine to await, None when nothing is. ``args``:
        ``event.args()``, when the caller has them already."""
        if args is None:
            args = event.args()
        handlers = self._handlers(event)
        rest = self._call_now(handlers, args) if handlers else None
        if isinstance(args[0], flow.Flow) and self._table.get(hooks.UpdateHook.name) != []:
            update = hooks.UpdateHook([args[0]])
            if rest is None:
                return self._call_now(self._handlers(update), update.args())
            return self._then(rest, update)
        return rest

    async def _then(self, rest: Awaitable[None], update: hooks.Hook) -> None:
        await rest
        await self.trigger_event(update)

    async def _call(self, handlers: list[list[Callable[..., Any]]], args: list[Any]) -> None:
        rest = self._call_now(handlers, args)
        if rest is not None:
            await rest

    def _call_now(
        self, handlers: list[list[Callable[..., Any]]], args: list[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """Call the handlers up to the first that returns an awaitable; the rest (awaiting
        it, then the handlers after it) as a coroutine, None if none returned one."""
        steps = self._steps(handlers, args)
        for awaitable in steps:
            return self._await_rest(steps, awaitable)
        return None

    @staticmethod
    def _steps(
        handlers: list[list[Callable[..., Any]]], args: list[Any]
    ) -> Generator[Awaitable[Any], None, None]:
        """Each addon's handlers in one ``safecall``, an ``AddonHalt`` ending the event, as
        in mitmproxy; an awaitable a handler returns is yielded, for the caller to await
        and to throw its exception back in (so ``safecall`` sees it, as it would there)."""
        for funcs in handlers:
            try:
                with addonmanager.safecall():
                    for func in funcs:
                        res = func(*args)
                        if res is not None and inspect.isawaitable(res):
                            yield res
            except exceptions.AddonHalt:
                return

    @staticmethod
    async def _await_rest(
        steps: Generator[Awaitable[Any], None, None], awaitable: Awaitable[Any]
    ) -> None:
        while True:
            try:
                await awaitable
            except BaseException as e:  # (into the handler's safecall; what it lets out, out)
                try:
                    awaitable = steps.throw(e)
                except StopIteration:
                    return
                continue
            try:
                awaitable = next(steps)
            except StopIteration:
                return


class InlineHooks:
    """A connection's top layer, with the hooks it asks for run at once.

    mitmproxy runs each hook a layer yields in a task of its own, which then feeds a
    ``HookCompleted`` back to the layers through the connection's ``server_event`` (and
    its lock): every WebSocket message costs a task, a turn of the event loop and a
    second ``server_event`` (with Python 3.12's eager tasks the handlers run at once, but
    the task still waits for the lock). Here the handlers are called as the hook comes out
    of the layers, as that task would call them (:meth:`HookTable.start_lifecycle`), and
    the ``HookCompleted`` goes back in within the same ``server_event``, after the rest of
    the event's commands (as the task's came after them). A handler that returns an
    awaitable, or a flow left intercepted, finishes in a task as in mitmproxy.

    The connection handler only calls its top layer's ``handle_event``; this wraps the one
    mitmproxy made (:class:`InliningProxyserver` puts it in place).
    """

    def __init__(self, handler: server.ConnectionHandler, table: HookTable) -> None:
        self.layer = handler.layer
        self.context = handler.layer.context
        self._handler = handler
        self._table = table
        self._tasks: set[asyncio.Task[None]] = set()

    def handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        pending = collections.deque([event])
        while pending:
            for command in self.layer.handle_event(pending.popleft()):
                if not isinstance(command, commands.StartHook):
                    yield command
                    continue
                args = command.args()
                rest = self._table.start_lifecycle(command, args)
                data = args[0]
                if rest is not None or (isinstance(data, flow.Flow) and data.intercepted):
                    self._finish_later(command, rest)
                elif command.blocking:
                    pending.append(events.HookCompleted(command))

    def _finish_later(
        self, hook: commands.StartHook, rest: Coroutine[Any, Any, None] | None
    ) -> None:
        task = asyncio.ensure_future(self._finish(hook, rest))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(
        self, hook: commands.StartHook, rest: Coroutine[Any, Any, None] | None
    ) -> None:
        handler = self._handler
        with handler.timeout_watchdog.disarm():
            if rest is not None:
                await rest
            data = hook.args()[0]
            if isinstance(data, flow.Flow):
                await data.wait_for_resume()  # type: ignore[no-untyped-call]
        if hook.blocking:
            await handler.server_event(events.HookCompleted(hook))


class InliningProxyserver(proxyserver.Proxyserver):
    """mitmproxy's, with each connection's hooks run at once (:class:`InlineHooks`)."""

    name = "proxyserver"  # (what addons look it up by: ``addons.get("proxyserver")``)

    def __init__(self, table: HookTable) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._hook_table = table

    @contextmanager
    def register_connection(
        self, connection_id: tuple[Any, ...] | str, handler: ProxyConnectionHandler
    ) -> Iterator[None]:
        # (the handler only calls its top layer's ``handle_event``; NextLayer itself swaps
        # its ``handle_event`` for its child's the same way)
        handler.layer = InlineHooks(handler, self._hook_table)  # type: ignore[assignment]
        with super().register_connection(connection_id, handler):
            yield


def bare_master(
    opts: options.Options, loop: asyncio.AbstractEventLoop, addon: object
) -> tuple[master.Master, proxyserver.Proxyserver]:
    """A master with the four addons a proxy needs, then ``addon``; and its proxyserver.
    Its addon manager is a :class:`HookTable`."""
    m = master.Master(opts, event_loop=loop)
    addons = m.addons = HookTable(m)  # (Master adds no addon of its own without a termlog)
    ps = InliningProxyserver(addons)
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
