"""The HTTP/1.1 side of a WebSocket opening handshake (RFC 6455 §4), without I/O.

The replay server reads the client's upgrade request with :class:`RequestParser` (bytes in,
an :class:`~wstape.core.model.Open` with ``status`` 0 out, or a :class:`BadRequest`), asks
:func:`judge_request` for the :class:`Verdict` (refuse or go ahead, and the rules the
request broke, decided together from :func:`wstape.core.rules.check_request`), and answers
with one of the :class:`Response` builders: :func:`accept_response` (101 with a fresh
``Sec-WebSocket-Accept``), :func:`recorded_refusal` (a recorded 403 and the like),
:func:`error_response` (400, 404, 426). ``wstape check`` runs the same rules offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from http import HTTPStatus

from wstape.core.model import Headers, Open, TlsInfo
from wstape.core.redaction import choose_redacted, is_redacted
from wstape.core.rules import (
    RuleConfig,
    Severity,
    Violation,
    accept_key,
    check_request,
    has_control,
)
from wstape.core.rules.helpers import header_items, header_values

MAX_REQUEST_HEAD = 16 * 1024
"""Largest request line plus headers accepted before answering 431."""

# Headers the replayed 101 sets itself, and hop-by-hop headers (RFC 7230 §6.1) that
# described the recorded connection, not the live one.
_DROPPED_FROM_101 = frozenset(
    {
        b"connection",
        b"upgrade",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"content-length",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-version",
    }
)
_DROPPED_FROM_REFUSAL = _DROPPED_FROM_101 - {
    b"sec-websocket-version",
    b"upgrade",
} | {b"content-encoding"}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/(\d)\.(\d)")
_BAD_PHRASE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class BadRequest:
    """What :class:`RequestParser` returns for bytes that are not an HTTP request this
    server can read (not an exception): answer ``status`` and close. ``rule`` is the rule
    the bytes broke, and ``expected`` what it wants instead."""

    status: int
    message: str
    rule: str = "RFC-HS-METHOD"
    expected: str = "GET over HTTP/1.1"


def _bad_header(message: str) -> BadRequest:
    """A header line this parser cannot read (RFC 7230 §3.2, §3.2.4: answer 400)."""
    return BadRequest(
        400,
        message,
        "RFC-HS-HEADER-SYNTAX",
        "header lines of a token, a colon and a value, none folded",
    )


@dataclass(frozen=True)
class Response:
    """An HTTP response about to be sent."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The response on the wire. Nothing in it can add a line: the reason phrase is
        :func:`safe_phrase`, and a header whose name is not a token or whose value holds
        a control character (CR, LF, NUL, ...) is left out."""
        status = f"HTTP/1.1 {self.status} {safe_phrase(self.reason)}"
        lines = [status.encode("latin-1", "replace")]
        lines += [
            name + b": " + value
            for name, value in self.headers
            if _TOKEN.fullmatch(name) and not has_control(value)
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode("ascii")
        for k, v in self.headers:
            if k.lower() == wanted:
                return v.decode("latin-1")
        return None


class RequestParser:
    """Read an upgrade request incrementally.

    :meth:`feed` returns None until the header block is complete, then the request as an
    ``Open`` (``conn`` 0, ``status`` 0) or an :class:`BadRequest` for garbage. Bytes that
    came after the header block are in :attr:`leftover`: from a client that does not wait
    for the 101 they are early frames (RFC-HS-EARLY-DATA). After the first result the
    parser is done and ignores further input.
    """

    def __init__(
        self,
        *,
        scheme: str = "ws",
        client: str | None = None,
        tls: TlsInfo | None = None,
        started_at: float = 0.0,
        max_size: int = MAX_REQUEST_HEAD,
    ) -> None:
        self.scheme = scheme
        self.client = client
        self.tls = tls
        self.started_at = started_at
        self.max_size = max_size
        self._buf = bytearray()
        self.leftover = b""
        self.done = False

    def feed(self, data: bytes | bytearray | memoryview) -> Open | BadRequest | None:
        if self.done:
            return None
        self._buf += data
        end, sep = _find_head_end(self._buf)
        if end < 0:
            if self._buf and not _could_be_http(bytes(self._buf[:16])):
                self.done = True
                return BadRequest(400, "not an HTTP request")
            if len(self._buf) > self.max_size:
                self.done = True
                return BadRequest(431, "request header block too large")
            return None
        self.done = True
        if end > self.max_size:
            return BadRequest(431, "request header block too large")
        head = bytes(self._buf[:end])
        self.leftover = bytes(self._buf[end + sep :])
        self._buf = bytearray()
        return self._parse(head)

    def _parse(self, head: bytes) -> Open | BadRequest:
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[1]:
            return BadRequest(400, "malformed request line")
        method, target, version = parts
        if not _TOKEN.fullmatch(method):
            return BadRequest(400, "malformed request method")
        if not _VERSION.fullmatch(version):
            return BadRequest(400, "malformed HTTP version")
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                return _bad_header("obsolete header line folding")
            name, colon, value = line.partition(b":")
            if not colon or not _TOKEN.fullmatch(name):
                return _bad_header(f"malformed header line {line[:40]!r}")
            headers.append((name, value.strip(b" \t")))
        text_target = target.decode("latin-1")
        if "://" in text_target:  # absolute-form (a client talking as if to a proxy)
            rest = text_target.split("://", 1)[1]
            text_target = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        elif not text_target.startswith("/"):
            return BadRequest(400, "request target is not a path")
        request_headers = tuple(headers)
        hosts = header_values(request_headers, "Host")
        host, port = _split_host(hosts[0] if hosts else "", 443 if self.scheme == "wss" else 80)
        return Open(
            conn=0,
            started_at=self.started_at,
            method=method.decode("ascii"),
            scheme=self.scheme,
            host=host,
            port=port,
            target=text_target,
            http_version=version.decode("ascii"),
            request_headers=request_headers,
            status=0,
            response_headers=(),
            subprotocols=_items(request_headers, "Sec-WebSocket-Protocol"),
            extensions=_items(request_headers, "Sec-WebSocket-Extensions"),
            client=self.client,
            tls=self.tls,
        )


def _find_head_end(buf: bytearray) -> tuple[int, int]:
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return crlf, 4


def _could_be_http(start: bytes) -> bool:
    """False once the first bytes cannot begin ``TOKEN SP``: a frame, TLS, or noise."""
    return _TOKEN.fullmatch(start.split(b" ", 1)[0]) is not None


def _items(headers: Headers, name: str) -> tuple[str, ...]:
    return tuple(item for item in header_items(headers, name) if item)


def _split_host(value: str, default_port: int) -> tuple[str, int]:
    value = value.strip()
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
    else:
        host, port_text = value, ""
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        port = default_port
    return host, port


@dataclass(frozen=True)
class Verdict:
    """What a server does with an upgrade request, and which rules the request broke.

    ``refusal`` is the answer to send instead of a 101 (None: go ahead). Both come from
    one pass over the request (:func:`judge_request`), so the server never refuses a
    request without a rule saying why, and never accepts one a rule says it must refuse.
    """

    refusal: Response | None
    violations: list[Violation]


# The rules whose error means no RFC 6455 server can answer 101 (§4.2.1, §4.2.2, §4.4;
# RFC 7230 §3.2 for header syntax, §5.4 for Host), in the order a server checks them.
_REFUSING_RULES = (
    "RFC-HS-HEADER-SYNTAX",
    "RFC-HS-METHOD",
    "RFC-HS-HOST",
    "RFC-HS-UPGRADE",
    "RFC-HS-VERSION",
    "RFC-HS-KEY",
)


def judge_request(
    req: Open, cfg: RuleConfig, *, seen_keys: frozenset[str] = frozenset()
) -> Verdict:
    """Decide whether ``req`` can be upgraded, and report the rules it broke.

    §4.2.1 lists what a server requires: GET over HTTP/1.1+, one ``Host`` (RFC 7230 §5.4:
    none, an empty one or two get 400), ``Upgrade: websocket``, ``Connection: Upgrade``,
    one valid ``Sec-WebSocket-Key``; a version other than 13 gets 426 with the supported
    version (§4.2.2, §4.4). The refusal does not depend on
    ``--ignore``: ignoring a rule silences its report, it does not make the server accept
    what no server would.
    """
    found = check_request(req, replace(cfg, ignore=frozenset()), seen_keys=seen_keys)
    broken = {v.rule for v in found if v.severity is Severity.ERROR}
    refusal: Response | None = None
    for rule in _REFUSING_RULES:
        if rule in broken:
            refusal = _refusal(rule, req)
            break
    return Verdict(refusal, [v for v in found if v.rule not in cfg.ignore])


def _refusal(rule: str, req: Open) -> Response:
    if rule == "RFC-HS-HEADER-SYNTAX":
        return error_response(400, "a header value holds a control character")
    if rule == "RFC-HS-METHOD":
        return error_response(
            405 if req.method != "GET" else 400,
            f"a WebSocket upgrade must be GET over HTTP/1.1, not {req.method} {req.http_version}",
            extra=((b"Allow", b"GET"),) if req.method != "GET" else (),
        )
    if rule == "RFC-HS-HOST":
        hosts = header_values(req.request_headers, "Host")
        problem = "no" if not hosts else "more than one" if len(hosts) > 1 else "an empty"
        return error_response(400, f"{problem} Host header; a request needs exactly one")
    if rule == "RFC-HS-UPGRADE":
        return error_response(400, "missing Upgrade: websocket or Connection: Upgrade")
    if rule == "RFC-HS-VERSION":
        return error_response(
            426,
            "unsupported Sec-WebSocket-Version; this server speaks 13",
            extra=((b"Sec-WebSocket-Version", b"13"),),
        )
    return error_response(400, "Sec-WebSocket-Key must be base64 of 16 bytes")


def chosen_subprotocol(req: Open, recorded: Open) -> str | None:
    """The recorded subprotocol, if the live client offered it (§4.2.2 /subprotocol/).

    A recorded choice that was redacted (a token the server echoed, recorded as
    ``<redacted>``) stands for the live offer it fits, preferably at the same position.
    """
    if recorded.subprotocol and recorded.subprotocol in req.subprotocols:
        return recorded.subprotocol
    if recorded.subprotocol and is_redacted(recorded.subprotocol):
        return choose_redacted(recorded.subprotocol, req.subprotocols, recorded.subprotocols)
    return None


def accept_response(req: Open, recorded: Open, *, extensions: str | None = None) -> Response:
    """The 101 for ``req``, replaying ``recorded``'s answer.

    ``Sec-WebSocket-Accept`` is computed for the live key (never copied); the recorded
    subprotocol is chosen only if the client offered it; ``extensions`` is the one
    extension accepted (the ``Sec-WebSocket-Extensions`` value that
    :func:`wstape.core.deflate.negotiate` agreed on; None: none, so the client must not
    set RSV bits), never the recorded header; the other recorded response headers are
    kept, minus hop-by-hop ones. ``req`` must have passed :func:`judge_request`.
    """
    key = header_values(req.request_headers, "Sec-WebSocket-Key")[0]
    headers: list[tuple[bytes, bytes]] = [
        (b"Upgrade", b"websocket"),
        (b"Connection", b"Upgrade"),
        (b"Sec-WebSocket-Accept", accept_key(key).encode("ascii")),
    ]
    protocol = chosen_subprotocol(req, recorded)
    if protocol is not None:
        headers.append((b"Sec-WebSocket-Protocol", protocol.encode("latin-1", "replace")))
    if extensions is not None:
        headers.append((b"Sec-WebSocket-Extensions", extensions.encode("latin-1", "replace")))
    headers += _kept(recorded.response_headers, _DROPPED_FROM_101)
    return Response(101, "Switching Protocols", tuple(headers))


def recorded_refusal(recorded: Open) -> Response:
    """The recorded non-101 answer: its status, reason, headers and body.

    ``Content-Length`` is recomputed for the body and the connection is closed after it.
    ``Content-Encoding`` is kept only for a body that still looks gzip-compressed: the
    recorder may have stored the decoded body.
    """
    headers = _kept(recorded.response_headers, _DROPPED_FROM_REFUSAL)
    encoding = recorded.response_header("Content-Encoding")
    if encoding and encoding.strip().lower() == "gzip" and recorded.body[:2] == b"\x1f\x8b":
        headers.append((b"Content-Encoding", b"gzip"))
    headers += [
        (b"Content-Length", str(len(recorded.body)).encode("ascii")),
        (b"Connection", b"close"),
    ]
    return Response(
        recorded.status,
        safe_phrase(recorded.reason) or _phrase(recorded.status),
        tuple(headers),
        recorded.body,
    )


def error_response(status: int, message: str, *, extra: Headers = ()) -> Response:
    """A plain-text error answer (400, 404, 405, 426, 431) that closes the connection."""
    body = (message + "\n").encode("utf-8")
    headers: Headers = (
        *extra,
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"Content-Length", str(len(body)).encode("ascii")),
        (b"Connection", b"close"),
    )
    return Response(status, _phrase(status), headers, body)


def answered(req: Open, response: Response) -> Open:
    """``req`` with the live answer filled in, for :func:`~wstape.core.rules.check_response`."""
    return replace(
        req,
        status=response.status,
        reason=response.reason,
        response_headers=response.headers,
        subprotocol=response.header("Sec-WebSocket-Protocol"),
        body=response.body,
    )


def _kept(headers: Headers, dropped: frozenset[bytes]) -> list[tuple[bytes, bytes]]:
    return [
        (k, v)
        for k, v in headers
        if k.lower() not in dropped and _TOKEN.fullmatch(k) and not has_control(v)
    ]


def safe_phrase(reason: str) -> str:
    """``reason`` fit for a status line (RFC 7230 §3.1.2: HTAB, SP, visible characters):
    every control character, CR and LF included, becomes a space, so a recorded reason
    (a HAR ``statusText``) cannot start a header line of its own."""
    return _BAD_PHRASE.sub(" ", reason)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


__all__ = [
    "MAX_REQUEST_HEAD",
    "BadRequest",
    "RequestParser",
    "Response",
    "Verdict",
    "accept_response",
    "answered",
    "chosen_subprotocol",
    "error_response",
    "judge_request",
    "recorded_refusal",
    "safe_phrase",
]
