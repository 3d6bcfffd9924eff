"""The bare master's HookTable: the same calls as mitmproxy's AddonManager, looked up once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from mitmproxy import addonmanager, exceptions, hooks, master, options
from mitmproxy.proxy.layers.websocket import WebsocketMessageHook
from mitmproxy.test import tflow

from wstape.addons.proxy import HookTable, bare_master, cancel_connections

Calls = list[tuple[str, str]]


class Plain:
    """Handles ``websocket_message`` and ``update``; its name makes it unique."""

    def __init__(self, name: str, calls: Calls) -> None:
        self.name, self.calls = name, calls

    def websocket_message(self, flow: object) -> None:
        self.calls.append((self.name, "websocket_message"))

    def update(self, flows: object) -> None:
        self.calls.append((self.name, "update"))


class Quiet:
    """Handles no per-message hook."""

    name = "quiet"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def running(self) -> None:
        self.calls.append((self.name, "running"))


class Async:
    name = "async"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def websocket_message(self, flow: object) -> None:
        await asyncio.sleep(0)
        self.calls.append((self.name, "websocket_message"))


class Parent(Plain):
    """An addon with children (mitmproxy traverses ``addons``)."""

    def __init__(self, name: str, calls: Calls) -> None:
        super().__init__(name, calls)
        self.addons = [Plain(f"{name}.child", calls)]


class Halting(Plain):
    def websocket_message(self, flow: object) -> None:
        super().websocket_message(flow)
        raise exceptions.AddonHalt


class Broken(Plain):
    def websocket_message(self, flow: object) -> None:
        super().websocket_message(flow)
        raise ValueError("boom")


def chain(calls: Calls) -> list[object]:
    return [
        Plain("first", calls),
        Quiet(calls),
        Async(calls),
        Parent("parent", calls),
        Broken("broken", calls),
        Plain("after-broken", calls),
        Halting("halting", calls),
        Plain("after-halt", calls),
    ]


async def fire(manager: addonmanager.AddonManager, *events: hooks.Hook) -> None:
    for event in events:
        await manager.trigger_event(event)


def managers(
    make: Callable[[Calls], list[object]],
) -> tuple[Calls, Calls, addonmanager.AddonManager, HookTable]:
    """mitmproxy's manager and a HookTable, each with the same addons."""
    theirs_calls: Calls = []
    ours_calls: Calls = []
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    theirs = m.addons
    theirs.add(*make(theirs_calls))  # type: ignore[no-untyped-call]
    m2 = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    ours = m2.addons = HookTable(m2)
    ours.add(*make(ours_calls))
    return theirs_calls, ours_calls, theirs, ours


async def test_the_same_calls_in_the_same_order_as_mitmproxy(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flow = tflow.twebsocketflow()
    theirs_calls, ours_calls, theirs, ours = managers(chain)
    events: list[hooks.Hook] = []
    for _ in range(3):  # (the table is built on the first, used on the others)
        events += [hooks.UpdateHook([flow]), hooks.RunningHook()]
        events.append(WebsocketMessageHook(flow))
    with caplog.at_level(logging.ERROR):
        await fire(theirs, *events)
        theirs_errors = [r.getMessage() for r in caplog.records]
        caplog.clear()
        await fire(ours, *events)
        ours_errors = [r.getMessage() for r in caplog.records]
    assert ours_calls == theirs_calls
    assert ("after-halt", "websocket_message") not in ours_calls  # AddonHalt ends the event
    assert ("after-broken", "websocket_message") in ours_calls  # an error ends one addon
    assert ("parent.child", "websocket_message") in ours_calls
    assert ours_errors == theirs_errors == ["Addon error: boom"] * 3


@pytest.mark.parametrize("with_update", [True, False])
async def test_a_lifecycle_event_then_update_as_in_mitmproxy(with_update: bool) -> None:
    """``handle_lifecycle`` (how the proxy fires every flow hook): the hook, then
    ``update`` with the flow, unless nobody handles ``update``."""

    def make(calls: Calls) -> list[object]:
        return chain(calls) if with_update else [Async(calls), Quiet(calls)]

    flow = tflow.twebsocketflow()
    theirs_calls, ours_calls, theirs, ours = managers(make)
    for _ in range(3):
        await theirs.handle_lifecycle(WebsocketMessageHook(flow))
        await ours.handle_lifecycle(WebsocketMessageHook(flow))
    assert ours_calls == theirs_calls
    assert (("first", "update") in ours_calls) is with_update
    assert ("async", "websocket_message") in ours_calls


async def test_an_addon_added_or_removed_later_is_seen() -> None:
    calls: Calls = []
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    ours = m.addons = HookTable(m)
    first = Plain("first", calls)
    ours.add(first)
    flow = tflow.twebsocketflow()
    await ours.trigger_event(hooks.UpdateHook([flow]))
    ours.add(Plain("second", calls))
    await ours.trigger_event(hooks.UpdateHook([flow]))
    ours.remove(first)
    await ours.trigger_event(hooks.UpdateHook([flow]))
    assert calls == [
        ("first", "update"),
        ("first", "update"),
        ("second", "update"),
        ("second", "update"),
    ]
    ours.clear()
    await ours.trigger_event(hooks.UpdateHook([flow]))
    assert len(calls) == 4


async def test_a_hook_nobody_handles_calls_nothing() -> None:
    calls: Calls = []
    m = master.Master(options.Options(), event_loop=asyncio.get_running_loop())
    ours = m.addons = HookTable(m)
    ours.add(Quiet(calls))
    await ours.trigger_event(hooks.UpdateHook([tflow.twebsocketflow()]))
    assert calls == []
    await ours.trigger_event(hooks.RunningHook())
    assert calls == [("quiet", "running")]


async def test_the_bare_master_uses_a_hook_table() -> None:
    class Addon:
        pass

    addon: Any = Addon()
    m, ps = bare_master(options.Options(), asyncio.get_running_loop(), addon)
    assert isinstance(m.addons, HookTable)
    assert [type(a).__name__ for a in m.addons.chain] == [
        "Core",
        "InliningProxyserver",
        "NextLayer",
        "TlsConfig",
        "Addon",
    ]
    assert m.addons.get("proxyserver") is ps
    await m.done()


# -- InlineHooks: a real proxy, hooks run as they come out of the layers ---------------


class Relay:
    """A WebSocket addon: logs its hooks; upper-cases text ``x...`` messages (sync, or
    after an ``await`` when ``slow``), drops ``drop``, intercepts ``hold`` until
    ``resume`` is called."""

    def __init__(self, *, slow: bool = False) -> None:
        self.calls: list[str] = []
        self.slow = slow
        self.held: list[Any] = []

    def websocket_start(self, flow: Any) -> None:
        self.calls.append("start")

    def websocket_message(self, flow: Any) -> Any:
        message = flow.websocket.messages[-1]
        side = "c" if message.from_client else "s"
        self.calls.append(f"{side}:{message.text}")
        if message.text == "drop":
            message.drop()
        elif message.text == "hold" and message.from_client:
            flow.intercept()
            self.held.append(flow)
        elif self.slow:
            return self._upper_later(message)
        elif message.from_client:
            message.text = message.text.upper()
        return None

    async def _upper_later(self, message: Any) -> None:
        await asyncio.sleep(0)
        if message.from_client:
            message.text = message.text.upper()
        self.calls.append("awaited")

    def resume(self) -> None:
        for flow in self.held:
            flow.resume()

    def websocket_end(self, flow: Any) -> None:
        self.calls.append("end")


async def _echo(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def _through_proxy(addon: Relay, talk: Callable[[Any], Any]) -> None:
    """``talk(client)`` through a bare master in reverse mode to an echo server."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async with serve(_echo, "127.0.0.1", 0, compression=None) as server:
        upstream = next(iter(server.sockets)).getsockname()[1]
        opts = options.Options()
        m, ps = bare_master(opts, asyncio.get_running_loop(), addon)
        opts.update(  # type: ignore[no-untyped-call]
            mode=[f"reverse:http://127.0.0.1:{upstream}"], listen_host="127.0.0.1", listen_port=0
        )
        assert await ps.setup_servers()
        port = ps.listen_addrs()[0][1]
        try:
            url = f"ws://127.0.0.1:{port}/"
            async with connect(url, proxy=None, compression=None) as client:
                await asyncio.wait_for(talk(client), 10)
            await asyncio.wait_for(_until(lambda: "end" in addon.calls), 10)
        finally:
            await ps.servers.update([])
            await cancel_connections(ps, "test over", 3.0)
            await m.done()


async def _until(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(0.005)


@pytest.mark.parametrize("slow", [False, True], ids=["sync", "awaitable"])
async def test_hooks_run_before_the_message_is_relayed(slow: bool) -> None:
    """A sync handler and one whose awaitable must finish first: either way the message
    is relayed (as changed) after it, and the hooks come in order."""
    addon = Relay(slow=slow)

    async def talk(client: Any) -> None:
        for text in ("xa", "xb"):
            await client.send(text)
            assert await client.recv() == text.upper()

    await _through_proxy(addon, talk)
    if slow:
        expected = ["start", "c:xa", "awaited", "s:XA", "awaited"]
        expected += ["c:xb", "awaited", "s:XB", "awaited", "end"]
    else:
        expected = ["start", "c:xa", "s:XA", "c:xb", "s:XB", "end"]
    assert addon.calls == expected


async def test_a_dropped_message_is_not_relayed() -> None:
    addon = Relay()

    async def talk(client: Any) -> None:
        await client.send("drop")
        await client.send("xc")
        assert await client.recv() == "XC"  # (the echo of "drop" would have come first)

    await _through_proxy(addon, talk)
    assert addon.calls == ["start", "c:drop", "c:xc", "s:XC", "end"]


async def test_an_intercepted_flow_waits_for_its_resume() -> None:
    addon = Relay()

    async def talk(client: Any) -> None:
        await client.send("hold")
        await _until(lambda: bool(addon.held))
        received = asyncio.ensure_future(client.recv())
        await asyncio.sleep(0.05)  # (a reply now would be a message relayed while held)
        assert not received.done()
        addon.resume()
        assert await received == "hold"

    await _through_proxy(addon, talk)
    assert addon.calls == ["start", "c:hold", "s:hold", "end"]
