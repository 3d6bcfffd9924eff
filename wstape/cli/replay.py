"""``wstape replay``: serve a cassette as a ws:// or wss:// server and check the client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from wstape.cassettes import CassetteError
from wstape.cli.check import SEVERITY_STYLE
from wstape.cli.common import (
    ExitCode,
    cassette_error,
    check_writable,
    config_error,
    console,
    fail,
    write_atomically,
)
from wstape.cli.options import (
    AllowHostOpt,
    AppidOpt,
    IgnoreOpt,
    JunitOpt,
    MaxSocketsOpt,
    PlatformOpt,
    ProfileOpt,
    ReportOpt,
    StrictOpt,
    choices,
    rule_config,
)
from wstape.cli.output import Column, plural, print_table, safe
from wstape.core.deflate import compression_names
from wstape.core.errors import ConfigError
from wstape.core.frames import DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_FRAME_SIZE
from wstape.core.listening import listen_error
from wstape.core.matchers import matcher_names
from wstape.core.replay.connection import LiveConnection
from wstape.core.replay.options import PlayOptions, protocol_names
from wstape.core.report import Report, junit_xml, to_json
from wstape.core.rules import Platform, Profile, Severity, Violation
from wstape.replay.server import DEFAULT_MAX_CONNECTIONS, ReplayOptions, ReplayServer
from wstape.replay.tls import TlsOptions, TlsSetupError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from wstape.addons.viaproxy import DeviceProxy


def _short(value: object, limit: int = 100) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _print_violation(v: Violation) -> None:
    data = v.to_json()
    conn = "-" if v.conn is None else str(v.conn)
    # Text pieces, never markup: the message quotes what the client sent ("[/red]" ...).
    line = (
        f" {v.rule} conn {conn}: {v.message} "
        f"(expected {_short(data['expected'])}, actual {_short(data['actual'])})"
    )
    console(stderr=True).print(
        Text.assemble((f"{v.severity.value:5}", SEVERITY_STYLE[v.severity]), safe(line))
    )


def _print_log(live: LiveConnection, text: str) -> None:
    conn = "-" if live.conn is None else str(live.conn)
    console(stderr=True).print(f"conn {conn}: {safe(text)}")


def _print_notice(text: str) -> None:
    console(stderr=True).print(f"wstape: {safe(text)}")


WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
"""``--host`` values that listen on every address (no one name to connect to)."""


def _print_internal_error(text: str) -> None:
    console(stderr=True).print(f"wstape: internal error: {safe(text)}")


def _summary(report: Report) -> None:
    out = console(stderr=True)
    if report.connections:
        columns = (
            Column("conn", keep=9, whole=True, justify="right"),
            Column("path", keep=8, min_width=16),
            Column("client", keep=2, whole=True),
            Column("matched", keep=7, whole=True, justify="right"),
            Column("close", keep=4, min_width=12),
            Column("errors", keep=6, whole=True, justify="right"),
            Column("warnings", keep=5, whole=True, justify="right"),
        )
        rows = []
        plays = Counter(c.conn for c in report.connections)
        found = Counter((v.conn, v.severity) for v in report.violations)
        for c in report.connections:
            errors, warnings = found[c.conn, Severity.ERROR], found[c.conn, Severity.WARN]
            if plays[c.conn] > 1 and c.errors is not None and c.warnings is not None:
                # played more than once: each play's own count, not the recording's total
                errors, warnings = c.errors, c.warnings
            close = "-" if c.close.by is None else f"{c.close.by} {c.close.code} {c.close.reason}"
            rows.append(
                (
                    str(c.conn),
                    c.path,
                    c.client or "",
                    f"{c.messages_matched}/{c.messages_expected}",
                    close.strip(),
                    str(errors),
                    str(warnings),
                )
            )
        print_table(out, f"{report.cassette} under {report.profile}", columns, rows)
    for f in report.faults:
        out.print(
            safe(
                f"fault {f['spec']} on conn {f['conn']} at {f['at']} s: {f['what']}; "
                f"then {f['then']}"
            )
        )
    for text in report.notes:
        out.print(f"note: {safe(text)}")
    for text in report.internal_errors:
        out.print(f"wstape: internal error: {safe(text)}")
    verdict = "passed" if report.passed else "FAILED"
    out.print(
        f"{verdict}: {plural(report.played, 'connection')} played, "
        f"{plural(report.count(Severity.ERROR), 'error')}, "
        f"{plural(report.count(Severity.WARN), 'warning')}, "
        f"{report.count(Severity.INFO)} info; rules: {', '.join(report.rule_ids()) or 'none'}"
    )


async def _start_device_proxy(
    server: ReplayServer, listen: tuple[str, int], confdir: Path | None, ready_file: Path | None
) -> DeviceProxy:
    """``--via-proxy``: a mitmproxy for the device in front of the started server."""
    from wstape.addons.viaproxy import DeviceProxyConfig, ViaProxyError, start_device_proxy

    out = console(stderr=True)
    try:
        proxy = await start_device_proxy(
            server,
            DeviceProxyConfig(listen[0], listen[1], confdir),
            on_log=lambda text: out.print(f"wstape: device proxy: {text}", highlight=False),
        )
    except ViaProxyError as e:
        fail(str(e))
    host = proxy.host if proxy.host not in WILDCARD_HOSTS else "0.0.0.0"
    where = f"[{host}]:{proxy.port}" if ":" in host else f"{host}:{proxy.port}"
    out.print(f"wstape: device proxy listening on {where}", highlight=False)
    out.print(
        f"wstape: the device's HTTP proxy (this machine, port {proxy.port}) now reaches the "
        f"recording for every WebSocket upgrade, ws or wss (trusting {proxy.ca_path}); "
        "anything else gets a 502",
        highlight=False,
    )
    if ready_file is not None:
        write_atomically(ready_file, f"{proxy.port}\n", "--proxy-ready-file")
    return proxy


def _cert_names(hostnames: list[str] | None, host: str) -> tuple[str, ...]:
    """The names a minted ``--tls`` certificate is for: every ``--hostname``, and the
    ``--host`` the listening line tells clients to connect to (unless it is a wildcard)."""
    names = [*(hostnames or ())]
    if hostnames and host not in WILDCARD_HOSTS:
        names.append(host)
    return tuple(dict.fromkeys(names))


def _listening_lines(server: ReplayServer) -> list[str]:
    """What ``wstape replay`` says once every listener is up: where, what to connect to,
    and for ``--tls`` which CA the client must trust."""
    url = server.url
    if server.options.echo:
        lines = [f"wstape: echoing every message (--echo, no cassette) on {url}"]
    else:
        recorded = server.index.connections if server.index is not None else []
        lines = [
            f"wstape: replaying {server.cassette} "
            f"({plural(len(recorded), 'recorded connection')}) on {url}"
        ]
        counts = Counter(r.open.target for r in recorded)
        if counts:
            shown = [
                f"{url}{target}" + (f" ({n}x)" if n > 1 else "")
                for target, n in list(counts.items())[:LISTED_PATHS]
            ]
            more = len(counts) - LISTED_PATHS
            tail = f", and {more} more (wstape ls {server.cassette})" if more > 0 else ""
            lines.append(f"wstape: connect to {', '.join(map(safe, shown))}{tail}")
    tls = server.options.tls
    ca = tls.ca_path if tls is not None else None
    if ca is not None:
        lines.append(f"wstape: clients must trust the CA {ca} (--tls)")
    return lines


LISTED_PATHS = 5
"""Recorded paths the listening line names (``wstape ls`` lists them all)."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Stop the server early; the report is still written."""


async def _serve(
    server: ReplayServer,
    ready_file: Path | None,
    max_wait: float | None,
    via_proxy: tuple[str, int] | None = None,
    proxy_ready_file: Path | None = None,
    confdir: Path | None = None,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    proxy: DeviceProxy | None = None
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    serving = False
    try:
        await server.start()
        if via_proxy is not None:
            proxy = await _start_device_proxy(server, via_proxy, confdir, proxy_ready_file)
        serving = True
        out = console(stderr=True)
        for line in _listening_lines(server):
            out.print(line, highlight=False)
        if ready_file is not None:
            write_atomically(ready_file, f"{server.port}\n", "--ready-file")
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait())]
        if not server.options.play.loop and not server.options.echo:
            waiters.append(asyncio.ensure_future(server.wait_played()))
        await asyncio.wait(waiters, timeout=max_wait, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()
    finally:
        if proxy is not None:
            await proxy.stop()
        await server.stop(judge=serving)
        _hold_signals(loop)


def _late_signal(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM once the server has stopped: the report is being written."""


def _hold_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Hand Ctrl-C and SIGTERM over from the event loop to :func:`_late_signal` until the
    report is written (:func:`_signals_restored`). The loop's removal puts back the
    default action, which would kill the process before the report reaches the disk;
    the signals are blocked during the swap, so none slips through between the two."""
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(sig, _late_signal)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def _signals_restored() -> Iterator[None]:
    """Put the process's own Ctrl-C and SIGTERM handling back once the report is out."""
    before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)


def replay(
    cassette: Annotated[
        Path | None,
        typer.Argument(
            metavar="CASSETTE",
            help="The cassette to replay (none with --echo).",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            "-p",
            metavar="PORT",
            min=0,
            max=65535,
            help="Port to listen on; 0 = any free.",
        ),
    ] = 8765,
    ready_file: Annotated[
        Path | None,
        typer.Option(
            "--ready-file", metavar="FILE", help="Write the bound port here once listening."
        ),
    ] = None,
    tls: Annotated[bool, typer.Option("--tls", help="Serve wss:// (TLS 1.2 or newer).")] = False,
    hostname: Annotated[
        list[str] | None,
        typer.Option(
            "--hostname",
            metavar="NAME",
            help="With --tls: a name for the certificate minted from the mitmproxy CA "
            "(repeatable).",
        ),
    ] = None,
    confdir: Annotated[
        Path | None,
        typer.Option(
            "--confdir",
            metavar="DIR",
            help="mitmproxy configuration directory holding the CA [default: ~/.mitmproxy].",
            show_default=False,
        ),
    ] = None,
    cert: Annotated[
        Path | None,
        typer.Option("--cert", metavar="PEM", help="With --tls: your own PEM certificate chain."),
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", metavar="PEM", help="The PEM key for --cert.")
    ] = None,
    profile: ProfileOpt = Profile.RFC6455,
    appid: AppidOpt = None,
    allow_host: AllowHostOpt = None,
    platform: PlatformOpt = Platform.DEVICE,
    max_sockets: MaxSocketsOpt = 5,
    ignore: IgnoreOpt = None,
    match: Annotated[
        str,
        typer.Option(
            "--match",
            metavar=choices(matcher_names()),
            help="How client messages are compared with the recording.",
            autocompletion=matcher_names,
        ),
    ] = "exact",
    ignore_json_path: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-json-path",
            metavar="PATH",
            help="With --match json: a path to ignore, e.g. '$.ts' (repeatable).",
        ),
    ] = None,
    ignore_query: Annotated[
        bool,
        typer.Option("--ignore-query", help="Select recorded connections by path only."),
    ] = False,
    ignore_query_param: Annotated[
        list[str] | None,
        typer.Option(
            "--ignore-query-param",
            metavar="NAME",
            help="A query parameter not compared when a client is matched to a recorded "
            "connection, e.g. a cache-buster (repeatable). The protocol's own session "
            "parameters (Engine.IO t, sid) are never compared.",
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            "--protocol",
            metavar=choices(protocol_names()),
            help="The application protocol: auto (recognised per connection from the "
            "subprotocol, path and first messages), none (plain messages), or one by name "
            "(docs/protocols.md). It decides how messages are split, which values the client "
            "generates, and which messages are heartbeats.",
            autocompletion=protocol_names,
        ),
    ] = "auto",
    correlate: Annotated[
        list[str] | None,
        typer.Option(
            "--correlate",
            metavar="PATH",
            help="A JSON path of a value the client makes up each session, e.g. "
            "'$.requestId' (repeatable): the live value replaces the recorded one in later "
            "server messages, and is not compared. A path no recorded client message played "
            "has is named in the report's notes.",
        ),
    ] = None,
    no_correlate_uuids: Annotated[
        bool,
        typer.Option(
            "--no-correlate-uuids",
            help="Do not correlate UUID-shaped values that differ between the recording "
            "and the client (on by default).",
        ),
    ] = False,
    heartbeat: Annotated[
        list[str] | None,
        typer.Option(
            "--heartbeat",
            metavar="SPEC",
            help="Declare a heartbeat (repeatable): 'client:PING=>PONG' (answered whenever "
            "the client sends it), 'server:PING=>PONG' (sent on the recorded clock, the "
            "client must answer), 'client:BEAT' or 'server:BEAT' (nobody answers). Escapes "
            "\\n \\t \\xHH; hex:... for binary.",
        ),
    ] = None,
    no_heartbeats: Annotated[
        bool,
        typer.Option(
            "--no-heartbeats",
            help="Do not find heartbeats in the protocol or the recording's timing; only "
            "--heartbeat declarations count.",
        ),
    ] = False,
    heartbeat_timeout: Annotated[
        float,
        typer.Option(
            "--heartbeat-timeout",
            min=0,
            metavar="SECONDS",
            help="How long the client has to answer a server heartbeat ping "
            "(REPLAY-HEARTBEAT-UNANSWERED), and to give up on a connection whose own pings "
            "go unanswered (REPLAY-HEARTBEAT-DEAD, with the mute-heartbeats fault); the wx "
            "network guide's 5 s.",
        ),
    ] = 5.0,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="SPEC",
            help="Inject a fault (repeatable): refuse, stall, drop, close, mute-heartbeats, "
            "blackhole, delay, jitter, throttle, fragment, aimed with conn=ID / path=P and "
            "timed with after=N (server messages), after=5s, after-client=N, e.g. "
            "'drop@conn=1,after=3', 'refuse@status=503,times=2' (docs/faults.md).",
        ),
    ] = None,
    expect_reconnect: Annotated[
        float,
        typer.Option(
            "--expect-reconnect",
            min=0,
            metavar="SECONDS",
            help="After a fault that breaks the connection, the client must reconnect "
            "within this long (REPLAY-FAULT-NO-RECONNECT; 0 = do not expect it).",
        ),
    ] = 10.0,
    reconnect_delay: Annotated[
        float,
        typer.Option(
            "--reconnect-delay",
            min=0,
            metavar="SECONDS",
            help="After a close with 1008, 1011 or 1013 the client waits at least this long "
            "before it reconnects (REPLAY-RECONNECT-TOO-SOON).",
        ),
    ] = 1.0,
    allow_partial: Annotated[
        bool,
        typer.Option(
            "--allow-partial",
            help="A client that leaves before its recorded end, or a recorded connection "
            "no client opens, is a warning instead of an error (REPLAY-UNPLAYED). A run no "
            "client connected to still fails.",
        ),
    ] = False,
    strict: StrictOpt = False,
    speed: Annotated[
        float,
        typer.Option(
            "--speed",
            metavar="FACTOR",
            min=0,
            help="1 = recorded timing, 2 = twice as fast, 0 = no delays.",
        ),
    ] = 1.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            min=0.001,
            help="Seconds to wait for an expected client message.",
        ),
    ] = 10.0,
    loop: Annotated[
        bool, typer.Option("--loop", help="Keep serving, replaying the recording again.")
    ] = False,
    max_wait: Annotated[
        float | None,
        typer.Option(
            "--max-wait",
            metavar="SECONDS",
            min=0,
            help="Stop after this many seconds even if recorded connections are unplayed.",
        ),
    ] = None,
    ping_interval: Annotated[
        float,
        typer.Option(
            "--ping-interval",
            metavar="SECONDS",
            min=0,
            help="Send a Ping every N seconds and check the Pong.",
        ),
    ] = 0.0,
    fragment_size: Annotated[
        int,
        typer.Option(
            "--fragment-size",
            metavar="BYTES",
            min=0,
            help="Send server messages longer than N bytes in fragments, with a Ping after "
            "the first (0 = never).",
        ),
    ] = 0,
    handshake_delay: Annotated[
        float,
        typer.Option(
            "--handshake-delay",
            metavar="SECONDS",
            min=0,
            help="Hold every 101 back this many seconds, to see when the client gives up "
            "(wechat: WX-CONNECT-TIMEOUT).",
        ),
    ] = 0.0,
    connect_timeout: Annotated[
        float,
        typer.Option(
            "--connect-timeout",
            metavar="SECONDS",
            min=0.001,
            help="The handshake timeout the client is configured with (wx.connectSocket "
            "timeout, networkTimeout.connectSocket); checked with --handshake-delay.",
        ),
    ] = 60.0,
    via_proxy: Annotated[
        int | None,
        typer.Option(
            "--via-proxy",
            min=0,
            max=65535,
            metavar="PORT",
            help="Also run a proxy for the device on PORT (the one it uses for capture; "
            "0 = any free): every WebSocket upgrade, ws or wss, for any host, is replayed; "
            "anything else gets a 502; nothing leaves the machine.",
        ),
    ] = None,
    proxy_host: Annotated[
        str,
        typer.Option(
            "--proxy-host",
            metavar="HOST",
            help="With --via-proxy: the address to listen on [default: every interface].",
            show_default=False,
        ),
    ] = "",
    proxy_ready_file: Annotated[
        Path | None,
        typer.Option(
            "--proxy-ready-file",
            metavar="FILE",
            help="With --via-proxy: write its bound port here.",
        ),
    ] = None,
    echo: Annotated[
        bool,
        typer.Option(
            "--echo",
            help="No cassette: accept any path and echo every message (Autobahn "
            "fuzzingclient target); serves until Ctrl-C, SIGTERM or --max-wait.",
        ),
    ] = False,
    max_size: Annotated[
        int,
        typer.Option(
            "--max-size",
            metavar="BYTES",
            min=1,
            help="Largest client frame and message in bytes; over it the connection is "
            "failed with 1009.",
        ),
    ] = DEFAULT_MAX_FRAME_SIZE,
    compression: Annotated[
        str,
        typer.Option(
            "--compression",
            metavar=choices(compression_names()),
            help="permessage-deflate (RFC 7692): auto negotiates it when the client offers "
            "it and the recorded server accepted it, with the recorded parameters the offer "
            "allows (--echo: whenever offered); on, whenever the client offers it; off, never. "
            "Client messages are inflated within --max-size.",
            autocompletion=compression_names,
        ),
    ] = "auto",
    max_fragments: Annotated[
        int,
        typer.Option(
            "--max-fragments",
            metavar="N",
            min=1,
            help="Most frames one client message may have; over it the connection is "
            "failed with 1009.",
        ),
    ] = DEFAULT_MAX_FRAGMENTS,
    max_connections: Annotated[
        int,
        typer.Option(
            "--max-connections",
            metavar="N",
            min=1,
            help="Client connections open at once (fewer if the open-file limit is lower). "
            "At the limit, connections that sent no request within 1 s are dropped to "
            "make room; otherwise new ones wait.",
        ),
    ] = DEFAULT_MAX_CONNECTIONS,
    report: ReportOpt = None,
    junit: JunitOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the JSON report on stdout at the end.")
    ] = False,
) -> None:
    """Replay a cassette as a real WebSocket server and check every client against it.

    Each client is matched to the first unplayed recorded connection of its path (and
    query), answered with the recorded handshake, sent the recorded server messages at
    the recorded pace, and its messages are compared with the recorded ones. Every
    handshake, frame and close goes through the rules of --profile. Without --loop the
    server exits once every recorded connection has been played (or after --max-wait);
    Ctrl-C or SIGTERM stop it early and still write the report.

    With --echo there is no cassette: every connection, on any path, gets each of its
    messages back, with the same rules checked (docs/autobahn.md).

    Exit codes: 0 exactly when every client did what the recording did (no error-severity
    violation; warnings alone pass, unless --strict), 1 violations, a client that left
    half way, or a run no client connected to,
    2 usage error (bad option, port in use, TLS setup), 3 cassette unreadable, truncated
    or from a newer wstape.
    """
    cfg = rule_config(profile, appid, allow_host, platform, max_sockets, ignore)
    if cassette is None and not echo:
        fail("missing argument CASSETTE (or --echo to serve an echo server without one)")
    if cassette is not None and echo:
        fail("--echo serves no cassette; drop the CASSETTE argument")
    if via_proxy is None and (proxy_host or proxy_ready_file is not None):
        fail("--proxy-host and --proxy-ready-file need --via-proxy PORT")
    if key is not None and cert is None:
        fail("--key needs --cert")
    if tls and cert is None and not hostname:
        fail("--tls needs --hostname NAME (or --cert/--key)")
    for path, option in (
        (ready_file, "--ready-file"),
        (proxy_ready_file, "--proxy-ready-file"),
        (report, "--report"),
        (junit, "--junit"),
    ):
        if path is not None:
            check_writable(path, option, source=cassette)
    try:
        play = PlayOptions(
            match=match,
            ignore_json_paths=tuple(ignore_json_path or ()),
            speed=speed,
            timeout=timeout,
            loop=loop,
            ignore_query=ignore_query,
            ping_interval=ping_interval,
            fragment_size=fragment_size,
            handshake_delay=handshake_delay,
            connect_timeout=connect_timeout,
            max_size=max_size,
            compression=compression,
            protocol=protocol,
            correlate=tuple(correlate or ()),
            correlate_uuids=not no_correlate_uuids,
            heartbeats=tuple(heartbeat or ()),
            detect_heartbeats=not no_heartbeats,
            heartbeat_timeout=heartbeat_timeout,
            ignore_query_params=tuple(ignore_query_param or ()),
            allow_partial=allow_partial,
            max_fragments=max_fragments,
            faults=tuple(fault or ()),
            expect_reconnect=expect_reconnect,
            reconnect_delay=reconnect_delay,
        )
        tls_options = (
            TlsOptions(hostnames=_cert_names(hostname, host), confdir=confdir, cert=cert, key=key)
            if tls or cert is not None
            else None
        )
        options = ReplayOptions(
            host=host,
            port=port,
            rules=cfg,
            play=play,
            tls=tls_options,
            echo=echo,
            max_connections=max_connections,
        )
        server = ReplayServer(
            cassette,
            options,
            on_violation=_print_violation,
            on_log=_print_log,
            on_internal_error=_print_internal_error,
            on_notice=_print_notice,
        )
    except ConfigError as e:
        config_error(e)
    try:
        if not echo:
            server.load()
    except CassetteError as e:
        cassette_error(e)
    except ConfigError as e:
        config_error(e)
    with _signals_restored():
        try:
            listen = (proxy_host, via_proxy) if via_proxy is not None else None
            asyncio.run(_serve(server, ready_file, max_wait, listen, proxy_ready_file, confdir))
        except TlsSetupError as e:
            fail(str(e))
        except OSError as e:
            detail = e.strerror or str(e)
            fail(listen_error(host, port, e.errno, detail, port_option="--port", who="replay"))
        except KeyboardInterrupt:  # a second Ctrl-C during shutdown
            pass
        result = replace(server.report(), strict=strict)
        _summary(result)
        if report is not None:
            write_atomically(report, to_json(result) + "\n", "--report", source=cassette)
        if junit is not None:
            write_atomically(junit, junit_xml(result), "--junit", source=cassette)
        if as_json:
            sys.stdout.write(to_json(result) + "\n")
            sys.stdout.flush()
    raise typer.Exit(int(ExitCode.OK if result.passed else ExitCode.VIOLATIONS))


def register(app: typer.Typer) -> None:
    app.command("replay", short_help="Replay a cassette as a WebSocket server; check the client.")(
        replay
    )
