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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from wstape.interchange.har import InterchangeError, open_input

DROPPED_NOTE = "mitmproxy dropped this message: it was not relayed to the other side"
INJECTED_NOTE = "mitmproxy injected this message: the other side never sent it"
STOPPED_NOTE = "recording stopped while the connection was open; no close was seen"


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


def records_from_flow(flow: http.HTTPFlow, conn: int) -> Iterator[Record]:
    """Open, messages and close of one WebSocket flow (or just the open of a refusal)."""
    opened = open_from_flow(flow, conn)
    yield opened
    ws = flow.websocket
    if ws is None:
        return
    start = opened.started_at
    last_t = 0.0
    for message in ws.messages:
        t = max(0.0, float(message.timestamp) - start)
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
    end = max(last_t, float(ws.timestamp_end) - start) if ws.timestamp_end else last_t
    if ws.closed_by_client is None:
        # The dump was written while the connection was still open: its end is unknown.
        yield Close(conn=conn, t=end, by=None, code=None, reason="", on_wire=False)
        yield Note(conn=conn, text=STOPPED_NOTE, t=end)
        return
    code = ws.close_code
    yield Close(
        conn=conn,
        t=end,
        by=Side.CLIENT if ws.closed_by_client else Side.SERVER,
        code=code,
        reason=ws.close_reason or "",
        on_wire=code is not None and code not in NEVER_ON_WIRE,
    )


def iter_flow_records(path: str | Path, stats: FlowImport | None = None) -> Iterator[Record]:
    """Stream the cassette records of every WebSocket flow in a mitmproxy flow file.

    Connection ids are 1, 2, ... in file order. Raises InterchangeError (naming the file
    and the 0-based flow index) for a file mitmproxy cannot read.
    """
    path = Path(path)
    stats = stats if stats is not None else FlowImport(path)
    with open_input(path) as f:
        index = 0
        flows = iter(FlowReader(f).stream())
        conn = 0
        while True:
            try:
                flow = next(flows)
            except StopIteration:
                break
            except Exception as e:  # mitmproxy raises several kinds for a broken dump
                raise InterchangeError(
                    path, f"not a readable mitmproxy flow file ({e})", index=index, what="flow"
                ) from e
            try:
                if not isinstance(flow, http.HTTPFlow) or not is_upgrade_request(flow.request):
                    stats.skipped += 1
                    continue
                if flow.response is None:
                    stats.failed += 1
                    continue
                conn += 1
                for record in records_from_flow(flow, conn):
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
            except (AttributeError, TypeError, ValueError) as e:
                raise InterchangeError(
                    path, f"unexpected flow contents ({e})", index=index, what="flow"
                ) from e
            finally:
                index += 1


def looks_like_flow_file(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) starts like a tnetstring flow dump."""
    digits = head[:12].split(b":", 1)[0]
    return bool(digits) and digits.isdigit() and b":" in head[:12]
