"""Import mitmproxy flow dumps (``mitmdump -w flows.mitm``) into cassette records.

The file is read with mitmproxy's own :class:`mitmproxy.io.FlowReader` (which also
upgrades flow files written by older mitmproxy versions), one flow at a time. Each
WebSocket flow becomes an ``open`` (built like the recorder builds it from the live flow),
its messages and a ``close``; an ``Upgrade: websocket`` request the server refused becomes
an ``open`` with that status and body. Other flows (plain HTTP, TCP, UDP, DNS) are skipped
and counted.

The same conversion from a mitmproxy flow to an ``open`` record serves the recorder addon
(:func:`open_from_flow`). This is the one module outside ``addons`` that imports
mitmproxy (tests/test_layers.py), and only ``wstape import`` of a flow file loads it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NoReturn

from mitmproxy import http
from mitmproxy.connection import Client
from mitmproxy.io import FlowReader

from wstape.core.closecodes import NEVER_ON_WIRE
from wstape.core.model import (
    Close,
    Message,
    Note,
    Opcode,
    Open,
    Record,
    Side,
    TlsInfo,
    split_header_list,
)
from wstape.interchange.errors import InterchangeError
from wstape.interchange.sources import looks_like_flow_file, open_input
from wstape.interchange.values import (
    MAX_CLOSE_CODE,
    MAX_OFFSET,
    MAX_PORT,
    MAX_STATUS,
    MIN_STATUS,
    is_close_code,
    is_epoch,
    is_number,
    is_port,
    is_status,
    is_text,
    percent_escape,
    record_problem,
    repair_text,
)

DROPPED_NOTE = "mitmproxy dropped this message: it was not relayed to the other side"
INJECTED_NOTE = "mitmproxy injected this message: the other side never sent it"
STOPPED_NOTE = "recording stopped while the connection was open; no close was seen"
REPAIRED_NOTE = (
    "imported from a mitmproxy flow: {what} had bytes that are not UTF-8; they were replaced"
)
EARLY_NOTE = (
    "imported from a mitmproxy flow: {n} message times before the connection's start were "
    "set to 0 (its start)"
)


def format_address(address: Any) -> str | None:
    """``host:port`` (``[v6]:port``) of a peername tuple, or None."""
    if not isinstance(address, tuple) or len(address) < 2:
        return None
    host, port = str(address[0]), address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_upgrade_request(request: http.Request) -> bool:
    """True when the request asks for a WebSocket upgrade (``Upgrade: websocket``)."""
    return any(
        token.lower() == "websocket"
        for value in request.headers.get_all("upgrade")
        for token in split_header_list(value)
    )


def _tls_info(client: Client) -> TlsInfo | None:
    if not client.tls_established:
        return None
    alpn = client.alpn.decode("ascii", "replace") if client.alpn else None
    return TlsInfo(version=client.tls_version, sni=client.sni, alpn=alpn)


def _offers(request: http.Request, name: str) -> tuple[str, ...]:
    """Every comma-separated item of every header called ``name``, in order."""
    return tuple(
        item for value in request.headers.get_all(name) for item in split_header_list(value)
    )


def open_from_flow(flow: http.HTTPFlow, conn: int) -> Open:
    """The ``open`` record of a flow that has its response (a 101 or a refusal), as
    mitmproxy saw it (the recorder redacts it before writing)."""
    request = flow.request
    response = flow.response
    assert response is not None  # both hooks that build an Open run after the response
    started_at = response.timestamp_end or request.timestamp_start or time.time()
    client = flow.client_conn
    refused = response.status_code != 101
    return Open(
        conn=conn,
        started_at=float(started_at),
        method=request.method,
        scheme="wss" if client.tls_established else "ws",
        host=request.host,
        port=request.port,
        target=request.path,
        http_version=request.http_version,
        request_headers=tuple(request.headers.fields),
        status=response.status_code,
        response_headers=tuple(response.headers.fields),
        subprotocols=_offers(request, "sec-websocket-protocol"),
        extensions=_offers(request, "sec-websocket-extensions"),
        subprotocol=None if refused else response.headers.get("sec-websocket-protocol"),
        client=format_address(client.peername),
        tls=_tls_info(client),
        reason=response.reason,
        body=(response.raw_content or b"") if refused else b"",
    )


@dataclass
class FlowImport:
    """Counters of one import, filled while :func:`iter_flow_records` runs."""

    path: Path
    connections: int = 0
    refused: int = 0
    messages: int = 0
    skipped: int = 0
    """Flows that are not WebSocket upgrades."""
    failed: int = 0
    """Upgrade requests that never got a response (nothing to replay)."""
    started_at: float | None = None


def _repaired(opened: Open) -> tuple[Open, list[str]]:
    """``opened`` with text mitmproxy decoded from bytes that were not UTF-8 made valid
    (a path's bytes percent-encoded, other text's replaced by U+FFFD), and what changed."""
    changed: dict[str, Any] = {}
    what: list[str] = []

    def fix(name: str, label: str, value: Any, repair: Any = repair_text) -> None:
        if isinstance(value, str) and not is_text(value):
            changed[name] = repair(value)
            what.append(label)

    fix("target", "the request path (percent-encoded)", opened.target, percent_escape)
    fix("method", "the method", opened.method)
    fix("http_version", "the HTTP version", opened.http_version)
    fix("host", "the host", opened.host)
    fix("reason", "the reason phrase", opened.reason)
    fix("subprotocol", "the chosen subprotocol", opened.subprotocol)
    fix("client", "the client address", opened.client)
    for name, label in (("subprotocols", "an offered subprotocol"), ("extensions", "an offer")):
        items = getattr(opened, name)
        if any(isinstance(x, str) and not is_text(x) for x in items):
            changed[name] = tuple(repair_text(x) if isinstance(x, str) else x for x in items)
            what.append(label)
    tls = opened.tls
    if tls is not None and not all(is_text(x) for x in (tls.version, tls.sni, tls.alpn) if x):
        changed["tls"] = TlsInfo(
            *(repair_text(x) if isinstance(x, str) else x for x in (tls.version, tls.sni, tls.alpn))
        )
        what.append("the TLS facts")
    return (replace(opened, **changed) if changed else opened), what


def _checked_open(flow: http.HTTPFlow, conn: int, fail: Callable[[str], NoReturn]) -> Open:
    request, response = flow.request, flow.response
    assert response is not None
    if not is_port(request.port):
        fail(f"request port {str(request.port)[:40]} is out of range (0 to {MAX_PORT})")
    if not is_status(response.status_code):
        fail(
            f"response status {str(response.status_code)[:40]} is not an HTTP status "
            f"({MIN_STATUS} to {MAX_STATUS})"
        )
    started = response.timestamp_end or request.timestamp_start
    if started is None:
        fail("the response has no timestamp: when the connection opened is unknown")
    if not is_epoch(started):
        fail(f"the response timestamp {str(started)[:40]} is not a date")
    return open_from_flow(flow, conn)


def records_from_flow(
    flow: http.HTTPFlow, conn: int, fail: Callable[[str], NoReturn]
) -> Iterator[Record]:
    """Open, messages and close of one WebSocket flow (or just the open of a refusal),
    checked: ``fail`` is called with what is wrong for a value no cassette can hold."""
    opened, repaired = _repaired(_checked_open(flow, conn, fail))
    yield opened
    if repaired:
        yield Note(conn=conn, text=REPAIRED_NOTE.format(what=", ".join(repaired)))
    ws = flow.websocket
    if ws is None:
        return
    start = opened.started_at
    last_t = 0.0
    early = 0
    for i, message in enumerate(ws.messages):
        if not is_number(message.timestamp):
            fail(f"message {i}: timestamp {str(message.timestamp)[:40]} is not a finite number")
        t = float(message.timestamp) - start
        if t < 0:
            early += 1
            t = 0.0
        elif t > MAX_OFFSET:
            fail(f"message {i}: timestamp is more than 10 years after the connection opened")
        last_t = max(last_t, t)
        yield Message(
            conn=conn,
            t=t,
            side=Side.CLIENT if message.from_client else Side.SERVER,
            opcode=Opcode.TEXT if message.is_text else Opcode.BINARY,
            payload=message.content,
        )
        if message.dropped:
            yield Note(conn=conn, text=DROPPED_NOTE, t=t)
        if message.injected:
            yield Note(conn=conn, text=INJECTED_NOTE, t=t)
    if early:
        yield Note(conn=conn, text=EARLY_NOTE.format(n=early), t=0.0)
    end = last_t
    if ws.timestamp_end:
        if not is_number(ws.timestamp_end):
            fail(f"the WebSocket end timestamp {str(ws.timestamp_end)[:40]} is not finite")
        end = max(last_t, float(ws.timestamp_end) - start)
        if end > MAX_OFFSET:
            fail("the WebSocket end timestamp is more than 10 years after it opened")
    if ws.closed_by_client is None:
        # The dump was written while the connection was still open: its end is unknown.
        yield Close(conn=conn, t=end, by=None, code=None, reason="", on_wire=False)
        yield Note(conn=conn, text=STOPPED_NOTE, t=end)
        return
    code = ws.close_code
    if code is not None and not is_close_code(code):
        fail(f"close code {str(code)[:40]} is not a close code (0 to {MAX_CLOSE_CODE})")
    reason = ws.close_reason or ""
    if isinstance(reason, str) and not is_text(reason):
        reason = repair_text(reason)
        yield Note(conn=conn, text=REPAIRED_NOTE.format(what="the close reason"), t=end)
    yield Close(
        conn=conn,
        t=end,
        by=Side.CLIENT if ws.closed_by_client else Side.SERVER,
        code=code,
        reason=reason,
        on_wire=code is not None and code not in NEVER_ON_WIRE,
    )


def iter_flow_records(path: str | Path, stats: FlowImport | None = None) -> Iterator[Record]:
    """Stream the cassette records of every WebSocket flow in a mitmproxy flow file.

    Connection ids are 1, 2, ... in file order. Raises InterchangeError (naming the file
    and the 0-based flow index) for a file mitmproxy cannot read, a HAR or JSON file (which
    mitmproxy's reader would turn into plain HTTP flows, dropping every message), and a
    flow with a value no cassette can hold.
    """
    path = Path(path)
    stats = stats if stats is not None else FlowImport(path)
    with open_input(path) as f:
        head = f.read(4).removeprefix(b"\xef\xbb\xbf")
        if head.lstrip()[:1] in (b"{", b"["):
            raise InterchangeError(
                path, "is a JSON (HAR) file, not a mitmproxy flow dump: import it as --format har"
            )
        f.seek(0)
        index = 0
        flows = iter(FlowReader(f).stream())
        conn = 0
        while True:
            try:
                flow = next(flows)
            except StopIteration:
                break
            except Exception as e:  # mitmproxy raises several kinds for a broken dump
                detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                raise InterchangeError(
                    path, f"not a readable mitmproxy flow file ({detail})", index=index, what="flow"
                ) from e

            def fail(message: str, index: int = index) -> NoReturn:
                raise InterchangeError(path, message, index=index, what="flow")

            try:
                if not isinstance(flow, http.HTTPFlow) or not is_upgrade_request(flow.request):
                    stats.skipped += 1
                    continue
                if flow.response is None:
                    stats.failed += 1
                    continue
                conn += 1
                for record in records_from_flow(flow, conn, fail):
                    problem = record_problem(record)
                    if problem is not None:
                        fail(problem)
                    if isinstance(record, Open):
                        if stats.started_at is None:
                            stats.started_at = record.started_at
                        if record.accepted:
                            stats.connections += 1
                        else:
                            stats.refused += 1
                    elif isinstance(record, Message):
                        stats.messages += 1
                    yield record
            except (AttributeError, TypeError, ValueError, OverflowError) as e:
                detail = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                fail(f"unexpected flow contents ({detail})")
            finally:
                index += 1


__all__ = [
    "DROPPED_NOTE",
    "EARLY_NOTE",
    "INJECTED_NOTE",
    "REPAIRED_NOTE",
    "STOPPED_NOTE",
    "FlowImport",
    "format_address",
    "is_upgrade_request",
    "iter_flow_records",
    "looks_like_flow_file",
    "open_from_flow",
    "records_from_flow",
]
