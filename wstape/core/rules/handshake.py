"""Rules on the opening handshake (RFC 6455 §4) and the server's side of a connection.

``check_request`` looks only at what the client sent (method, headers, URL, TLS), so the
replay server can run it before it answers. ``check_response`` looks at the server's 101,
whether recorded (``wstape check``) or built by the replay server.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import re
from dataclasses import dataclass, replace
from operator import attrgetter, itemgetter

from wstape.core.closecodes import SENDABLE_RANGES_TEXT, CloseCode, describe, is_sendable
from wstape.core.model import Headers, Open, decode_header_value
from wstape.core.redaction import is_redacted, matches_redacted
from wstape.core.rules.catalogue import WX_APPID, Profile, RuleConfig, Severity, Violation
from wstape.core.rules.close import MAX_REASON_BYTES
from wstape.core.rules.helpers import (
    Report,
    clipped,
    header_items,
    header_tokens,
    header_values,
    preview,
)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""The magic string of RFC 6455 §1.3 appended to the key before hashing."""

# RFC 7230 §3.2.6: token = 1*tchar. RFC 6455 §4.1 makes each subprotocol such a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_NOT_CONTROL = bytes(0 if (b < 0x20 and b != 0x09) or b == 0x7F else 1 for b in range(256))
"""A ``bytes.translate`` table: 0 for a control character, 1 for any other byte (a
translate and a search for 0 is several times faster than a regular expression)."""


def has_control(value: bytes) -> bool:
    """True if ``value`` holds a control character no header value may carry: any but
    HTAB, CR and LF included (RFC 7230 §3.2: a field value is VCHAR, obs-text, SP, HTAB)."""
    return 0 in value.translate(_NOT_CONTROL)


# "https://servicewechat.com/{appid}/{version}/page-frame.html" (WeChat network guide).
# appid: "wx" + 16 hex digits (upper case accepted: the shape matters, not the case), or
# "touristappid" when no appid is set; version: 0 (develop/trial/review), "devtools", or a
# release number.
APPID = WX_APPID.pattern
WX_REFERER = re.compile(
    rf"^https://servicewechat\.com/({APPID}|touristappid)/(0|devtools|\d+)"
    r"/page-frame\.html$"
)

# WeChat refuses its own API host as a socket legal domain.
_FORBIDDEN_HOSTS = frozenset({"api.weixin.qq.com"})

_TLS_VERSION = re.compile(r"^tls\s*v?\s*1[._](\d)$", re.IGNORECASE)

_WX_PLATFORM = re.compile(r"miniprogramenv/([A-Za-z0-9_-]+)", re.IGNORECASE)


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2).

    >>> accept_key("dGhlIHNhbXBsZSBub25jZQ==")
    's3pPLMBiTxaQ9kYGzzhZRbK+xOo='
    """
    digest = hashlib.sha1(
        (key + GUID).encode("utf-8", "surrogatepass"), usedforsecurity=False
    ).digest()
    return base64.b64encode(digest).decode("ascii")


_CANONICAL_KEY = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==")
"""The canonical base64 of 16 bytes: 21 digits, a 22nd with its low 4 bits 0 (16 bytes
are 128 bits, 22 digits 132), the padding."""
_CANONICAL_KEY_BYTES = re.compile(_CANONICAL_KEY.pattern.encode("ascii"))


def key_problem(key: str) -> str | None:
    """None if ``key`` is the base64 encoding of exactly 16 bytes (RFC 6455 §4.1), else why.

    The encoding must be canonical (what ``base64.b64encode`` gives for the decoded bytes):
    24 characters ending in ``==``.
    """
    if _CANONICAL_KEY.fullmatch(key):
        return None  # (what a client sends: 22 base64 digits and the padding)
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return "is not base64"
    if len(raw) != 16:
        return f"decodes to {len(raw)} bytes, not 16"
    if base64.b64encode(raw).decode("ascii") != key:
        return "is not canonical base64"
    return None


def offered_subprotocols(op: Open) -> tuple[str, ...]:
    """Subprotocols the client offered, from every ``Sec-WebSocket-Protocol`` header.

    Falls back to ``op.subprotocols`` for records made without the raw headers.
    """
    if header_values(op.request_headers, "Sec-WebSocket-Protocol"):
        return tuple(i for i in header_items(op.request_headers, "Sec-WebSocket-Protocol") if i)
    return op.subprotocols


def offered_extensions(op: Open) -> tuple[str, ...]:
    """Extension offers, normalised (``permessage-deflate; client_max_window_bits``)."""
    if header_values(op.request_headers, "Sec-WebSocket-Extensions"):
        offers = header_items(op.request_headers, "Sec-WebSocket-Extensions")
    else:
        offers = list(op.extensions)
    return tuple("; ".join(p.strip() for p in offer.split(";") if p.strip()) for offer in offers)


def request_host(req: Open) -> str:
    """The host name the client asked for: from ``Host``, else ``req.host``; no port.

    Lower-cased, without the brackets of an IPv6 literal or a trailing dot.
    """
    value = req.request_header("Host")
    return _bare_host(value if value else req.host)


def _bare_host(value: str) -> str:
    value = value.strip()
    if "://" in value:  # tolerate "wss://example.com/path" in --allow-host
        value = value.split("://", 1)[1].split("/", 1)[0]
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.lower().rstrip(".")


def _ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def is_ip_literal(host: str) -> bool:
    """True for an IP address, including forms the WHATWG URL parser reads as IPv4.

    A host whose last label is a number (``2130706433``, ``0x7f.1``, ``10.1``) is parsed as
    IPv4 by browsers, so it is an IP literal too.
    """
    if _ip_address(host) is not None:
        return True
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return bool(re.fullmatch(r"\d+|0[xX][0-9a-fA-F]*", last))


def is_lan_host(host: str) -> bool:
    """True for a private, loopback or link-local IP literal, or ``localhost``."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip_address(host)
    return ip is not None and (ip.is_private or ip.is_loopback or ip.is_link_local)


def wechat_platform(user_agent: str | None) -> str | None:
    """The platform in a mini-program User-Agent (``MiniProgramEnv/android`` -> ``android``)."""
    if not user_agent:
        return None
    found = _WX_PLATFORM.search(user_agent)
    return found.group(1) if found else None


_HTTP_VERSION = re.compile(r"(?:HTTP/)?0*(\d{1,9})(?:\.0*(\d{1,9}))?", re.IGNORECASE)
"""(No version has ten digits: a longer one is no version, never an int of 5,000 digits,
which Python refuses to make.)"""
_versions: dict[str, tuple[int, int] | None] = {}
"""Short version strings already parsed (a cassette's requests share one or two)."""


def _http_version(text: str) -> tuple[int, int] | None:
    if text in _versions:
        return _versions[text]
    found = _HTTP_VERSION.fullmatch(text.strip())
    version = None if not found else (int(found.group(1)), int(found.group(2) or 0))
    if len(text) <= 16 and len(_versions) < 64:  # (a hostile cassette's stay unkept)
        _versions[text] = version
    return version


def check_request(
    req: Open, cfg: RuleConfig, *, seen_keys: frozenset[str] = frozenset()
) -> list[Violation]:
    """The client's upgrade request: RFC 6455 §4.1 and, under ``wechat``, wx.connectSocket.

    ``seen_keys`` are the ``Sec-WebSocket-Key`` values of earlier connections in the same
    run: a repeated key means the client's nonce is not random (§4.1 "randomly selected").
    The response fields of ``req`` are ignored (``status`` is 0 before the answer).
    """
    report = Report(cfg, req.conn)
    headers = req.request_headers

    version = _http_version(req.http_version)
    if req.method != "GET" or version is None or version < (1, 1):
        report.add(
            "RFC-HS-METHOD",
            Severity.ERROR,
            f"upgrade request is {clipped(req.method)} {clipped(req.http_version)}; expected "
            "GET over HTTP/1.1 or later (a wx connectSocket `method` option cannot change this)",
            expected="GET HTTP/1.1",
            actual=f"{req.method} {req.http_version}",
        )

    _check_header_values(report, headers)
    _check_host(report, header_values(headers, "Host"))

    upgrade = {token.split("/", 1)[0] for token in header_tokens(headers, "Upgrade")}
    if "websocket" not in upgrade:
        report.add(
            "RFC-HS-UPGRADE",
            Severity.ERROR,
            f"Upgrade header is {_shown_header(_joined_header(req, 'Upgrade'))}; expected "
            "one containing websocket",
            expected="websocket",
            actual=_joined_header(req, "Upgrade"),
        )
    if "upgrade" not in header_tokens(headers, "Connection"):
        report.add(
            "RFC-HS-UPGRADE",
            Severity.ERROR,
            f"Connection header is {_shown_header(_joined_header(req, 'Connection'))}; "
            "expected one containing Upgrade",
            expected="Upgrade",
            actual=_joined_header(req, "Connection"),
        )

    _check_key(report, header_values(headers, "Sec-WebSocket-Key"), seen_keys)

    versions = header_values(headers, "Sec-WebSocket-Version")
    if versions != ["13"]:
        report.add(
            "RFC-HS-VERSION",
            Severity.ERROR,
            f"Sec-WebSocket-Version is {_shown_header(versions)}; expected 13 (the "
            "server answers 426 Upgrade Required with Sec-WebSocket-Version: 13)",
            expected="13",
            actual=", ".join(versions) if versions else None,
        )

    _check_subprotocol_syntax(report, header_values(headers, "Sec-WebSocket-Protocol"))

    # The WX- rules only exist under the wechat profile; skip the work elsewhere.
    if cfg.profile is Profile.WECHAT:
        _check_wechat_request(report, req, cfg)
    return report.items


def _joined_header(req: Open, name: str) -> str | None:
    """Every value of request header ``name`` joined by ``, ``, or None if absent."""
    values = header_values(req.request_headers, name)
    return ", ".join(values) if values else None


def _shown_header(value: str | list[str] | None) -> str:
    if isinstance(value, list):
        value = ", ".join(value) if value else None
    return "missing" if value is None else preview(value)


def _check_header_values(report: Report, headers: Headers) -> None:
    """RFC-HS-HEADER-SYNTAX: one violation naming every request header whose value holds
    a control character (the request parser refuses under the same rule what an ``Open``
    cannot hold: lines without a colon, names that are not tokens, folded lines)."""
    bad = [(k, v) for k, v in headers if has_control(v)]
    if not bad:
        return
    names = [decode_header_value(k) for k, _ in bad]
    byte = f"0x{next(b for b in bad[0][1] if not _NOT_CONTROL[b]):02x}"
    said = (
        f"request header {preview(names[0], 30)} holds control character {byte}"
        if len(bad) == 1
        else f"request headers {_items_shown(names)} hold control characters ({byte} in the first)"
    )
    report.add(
        "RFC-HS-HEADER-SYNTAX",
        Severity.ERROR,
        f"{said}; expected none in a header value but HTAB (a server answers 400)",
        expected="no control character but HTAB",
        actual=names,
    )


def _check_host(report: Report, hosts: list[str]) -> None:
    """RFC-HS-HOST: exactly one Host, naming a host (RFC 6455 §4.1; RFC 7230 §5.4 makes
    a server answer 400 to none, to more than one, equal or not, and to an invalid one:
    a WebSocket URI always has a host, so an empty Host is one)."""
    if len(hosts) == 1 and hosts[0]:
        return
    if not hosts:
        problem = "no Host header"
    elif len(hosts) > 1:
        problem = f"{len(hosts)} Host headers ({_items_shown(hosts, distinct=False)})"
    else:
        problem = "an empty Host header"
    report.add(
        "RFC-HS-HOST",
        Severity.ERROR,
        f"upgrade request has {problem}; expected exactly one Host naming the server "
        "(a server answers 400)",
        expected="one Host",
        actual=hosts or None,
    )


def _check_key(report: Report, keys: list[str], seen_keys: frozenset[str]) -> None:
    if not keys:
        report.add(
            "RFC-HS-KEY",
            Severity.ERROR,
            "Sec-WebSocket-Key is missing; expected base64 of 16 random bytes",
            expected="base64 of 16 bytes",
        )
        return
    if len(keys) > 1:
        report.add(
            "RFC-HS-KEY",
            Severity.ERROR,
            f"Sec-WebSocket-Key sent {len(keys)} times; expected exactly one",
            expected=1,
            actual=keys,
        )
        return
    key = keys[0]
    problem = key_problem(key)
    if problem is not None:
        report.add(
            "RFC-HS-KEY",
            Severity.ERROR,
            f"Sec-WebSocket-Key {preview(key)} {problem}; expected base64 of exactly 16 bytes",
            expected="base64 of 16 bytes",
            actual=key,
        )
    elif key in seen_keys:
        report.add(
            "RFC-HS-KEY",
            Severity.WARN,
            f"Sec-WebSocket-Key {preview(key)} was already used by another connection of this run; "
            "expected a fresh random nonce per connection",
            expected="a new key",
            actual=key,
        )


def _check_subprotocol_syntax(report: Report, values: list[str]) -> None:
    """One violation per ``Sec-WebSocket-Protocol`` header that breaks the syntax, naming
    all it breaks (its empty entries, its non-tokens, what it offers again), never one
    per item: ``Sec-WebSocket-Protocol: ,`` is one mistake, not two."""
    seen: set[str] = set()
    for value in values:
        empty = 0
        bad: list[str] = []
        again: list[str] = []
        for item in (i.strip() for i in value.split(",")):
            if not item:
                empty += 1
            elif is_redacted(item):
                pass  # a recorded offer whose token was redacted: nothing left to judge
            elif not _TOKEN.fullmatch(item):
                bad.append(item)
            elif item in seen:
                again.append(item)
            seen.add(item)
        problems = []
        if empty:
            problems.append("has an empty entry" if empty == 1 else f"has {empty} empty entries")
        if bad:
            problems.append(
                f"has {_items_shown(bad)}, not an HTTP token"
                if len(set(bad)) == 1
                else f"has entries that are not HTTP tokens ({_items_shown(bad)})"
            )
        if again:
            problems.append(f"offers {_items_shown(again)} again")
        if problems:
            report.add(
                "RFC-HS-SUBPROTOCOL-SYNTAX",
                Severity.ERROR,
                f"Sec-WebSocket-Protocol {preview(value)} {_and(problems)}; expected distinct "
                "non-empty tokens of letters, digits and !#$%&'*+-.^_`|~ (browsers throw "
                "SyntaxError)",
                expected="distinct non-empty tokens",
                actual=value,
            )


def _items_shown(items: list[str], most: int = 3, *, distinct: bool = True) -> str:
    """The (distinct) ``items``, the first ``most`` quoted and clipped, and how many more."""
    if distinct:
        items = list(dict.fromkeys(items))
    shown = ", ".join(preview(i, 30) for i in items[:most])
    return shown if len(items) <= most else f"{shown} and {len(items) - most} more"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _check_wechat_request(report: Report, req: Open, cfg: RuleConfig) -> None:
    host = request_host(req)

    if req.scheme.lower() not in ("wss", "https"):
        lan = is_lan_host(host)
        report.add(
            "WX-URL-SCHEME",
            Severity.WARN if lan else Severity.ERROR,
            f"connected over {req.scheme}:// to {host}; wx.connectSocket requires wss://"
            + (" (plain ws:// only to a LAN address, base library 2.4.0+)" if lan else ""),
            expected="wss",
            actual=req.scheme,
        )

    problem: str | None = None
    if not host:
        problem = "no host name"
    elif is_ip_literal(host):
        problem = "an IP literal"
    elif host == "localhost" or host.endswith(".localhost"):
        problem = "localhost"
    elif host in _FORBIDDEN_HOSTS:
        problem = "WeChat's own API host, which cannot be a socket legal domain"
    elif cfg.allow_hosts:
        allowed = sorted({_bare_host(h) for h in cfg.allow_hosts})
        if host not in allowed:
            problem = (
                f"not in the allowed hosts ({', '.join(allowed)}); names must match "
                "exactly, parent domains do not count"
            )
    if problem is not None:
        report.add(
            "WX-URL-HOST",
            Severity.ERROR,
            f"host {preview(host)} is {problem}; expected a DNS name from the mini-program's "
            "socket legal domains",
            expected=list(cfg.allow_hosts) or "a DNS name",
            actual=host,
        )

    if req.tls is not None and req.tls.version:
        found = _TLS_VERSION.fullmatch(req.tls.version.strip())
        if found is None or int(found.group(1)) < 2:
            report.add(
                "WX-TLS-VERSION",
                Severity.ERROR,
                f"negotiated {clipped(req.tls.version)}; expected TLSv1.2 or TLSv1.3",
                expected="TLSv1.2+",
                actual=req.tls.version,
            )

    _check_referer(report, req.request_header("Referer"), cfg)

    ua = req.request_header("User-Agent")
    lowered = (ua or "").lower()
    missing = [m for m in ("MicroMessenger/", "MiniProgramEnv/") if m.lower() not in lowered]
    if missing:
        shown = f"User-Agent {preview(ua, 80)} lacks" if ua else "no User-Agent, so no"
        platform = wechat_platform(ua)
        on = f" (it names the platform {platform})" if platform else ""
        report.add(
            "WX-HS-USER-AGENT",
            Severity.WARN,
            f"{shown} {' and '.join(missing)}{on}; expected a WeChat mini-program client",
            expected="MicroMessenger/ ... MiniProgramEnv/",
            actual=ua,
        )


def _check_referer(report: Report, referer: str | None, cfg: RuleConfig) -> None:
    expected = f"https://servicewechat.com/{cfg.appid or '{appid}'}/{{version}}/page-frame.html"
    if referer is None:
        report.add(
            "WX-HS-REFERER",
            Severity.INFO,
            f"no Referer; WeChat clients send {expected} (browsers and some PC WeChat "
            "builds do not)",
            expected=expected,
        )
        return
    found = WX_REFERER.fullmatch(referer.strip())
    if found is None:
        report.add(
            "WX-HS-REFERER",
            Severity.ERROR,
            f"Referer {preview(referer)} is not {expected}; the mini-program cannot set it, so "
            "another client (or a proxy) sent it",
            expected=expected,
            actual=referer,
        )
    elif cfg.appid and found.group(1).lower() != cfg.appid.lower():
        report.add(
            "WX-HS-REFERER",
            Severity.ERROR,
            f"Referer names appid {found.group(1)}; expected {cfg.appid}",
            expected=cfg.appid,
            actual=found.group(1),
        )


def check_early_data(nbytes: int, cfg: RuleConfig, conn: int | None = None) -> list[Violation]:
    """RFC-HS-EARLY-DATA: the client sent ``nbytes`` after its request, before the 101.

    §4.1: the client "MUST" wait for the server's handshake response before sending data
    (a mini-program may send only after ``onOpen``). Such bytes are not frames yet, so
    they are only counted.
    """
    report = Report(cfg, conn)
    if nbytes > 0:
        report.add(
            "RFC-HS-EARLY-DATA",
            Severity.ERROR,
            f"client sent {nbytes} bytes before the 101 was sent; expected nothing until "
            "the handshake completed (wx: send only after onOpen)",
            expected=0,
            actual=nbytes,
        )
    return report.items


def check_subprotocol_change(req: Open, recorded: Open, cfg: RuleConfig) -> list[Violation]:
    """WX-HS-SUBPROTOCOL-CHANGED: the live offer differs from the recorded one.

    Order counts: servers pick the first offered subprotocol they support (§4.2.2), so a
    reordered offer can change what a real server would choose.
    """
    report = Report(cfg, req.conn)
    for what, live, then in (
        ("subprotocols", offered_subprotocols(req), offered_subprotocols(recorded)),
        ("extensions", offered_extensions(req), offered_extensions(recorded)),
    ):
        if not _same_offers(live, then):
            report.add(
                "WX-HS-SUBPROTOCOL-CHANGED",
                Severity.WARN,
                f"client offered {what} {_listing(live)}; the recording offered {_listing(then)}",
                expected=list(then),
                actual=list(live),
            )
    return report.items


def _same_offers(live: tuple[str, ...], recorded: tuple[str, ...]) -> bool:
    """Equal offers, a redacted recorded item (``<redacted>``) fitting any live one."""
    return len(live) == len(recorded) and all(
        matches_redacted(then, now) for now, then in zip(live, recorded, strict=True)
    )


def _listing(items: tuple[str, ...]) -> str:
    """An offer as a report line shows it (clipped: a hostile offer can be long)."""
    if not items:
        return "none"
    shown = ", ".join(items)
    return f"({shown})" if len(shown) <= 120 else f"({shown[:120]}...; {len(items)} items)"


def check_response(op: Open, cfg: RuleConfig) -> list[Violation]:
    """The server's answer to an upgrade (RFC 6455 §4.2.2), recorded or replayed.

    Only a 101 is checked: a refused upgrade carries no WebSocket headers to judge.
    """
    report = Report(cfg, op.conn)
    if op.status != 101:
        return report.items
    offered = offered_subprotocols(op)
    chosen_values = header_values(op.response_headers, "Sec-WebSocket-Protocol")
    chosen = ", ".join(chosen_values) if chosen_values else op.subprotocol
    if chosen:
        if len(chosen_values) > 1 or "," in chosen:
            report.add(
                "RFC-SRV-SUBPROTOCOL",
                Severity.ERROR,
                f"server answered Sec-WebSocket-Protocol {preview(chosen)}; expected a single "
                f"subprotocol from {_listing(offered)}",
                expected=list(offered),
                actual=chosen,
            )
        elif chosen not in offered:
            report.add(
                "RFC-SRV-SUBPROTOCOL",
                Severity.ERROR,
                f"server chose subprotocol {preview(chosen)}; the client offered "
                f"{_listing(offered)}",
                expected=list(offered),
                actual=chosen,
            )
    elif offered:
        report.add(
            "BROWSER-SRV-SUBPROTOCOL-ECHO",
            Severity.ERROR,
            f"client offered {_listing(offered)} and the server chose none; browsers fail "
            "such a connection",
            expected=list(offered),
            actual=None,
        )

    accept = op.response_header("Sec-WebSocket-Accept")
    keys = header_values(op.request_headers, "Sec-WebSocket-Key")
    if accept is not None and len(keys) == 1:
        wanted = accept_key(keys[0])
        if accept.strip() != wanted:
            report.add(
                "RFC-SRV-ACCEPT",
                Severity.ERROR,
                f"Sec-WebSocket-Accept is {preview(accept.strip())}; expected {wanted!r} for "
                f"key {preview(keys[0])}",
                expected=wanted,
                actual=accept.strip(),
            )
    return report.items


class HandshakeChecks:
    """:func:`check_request` then :func:`check_response` of one cassette's opens, for a
    run of one ``cfg``: what ``wstape check`` asks of every open.

    A cassette of many connections repeats one handshake over and over, but for its
    nonce, its URL's query and headers no rule reads (cookies, dates, request ids). So an
    open whose ``Sec-WebSocket-Key`` is canonical, new to the run and answered by its
    ``Sec-WebSocket-Accept`` (or not answered at all) gets the violations of the first
    open alike in what the rules read, remade for its own connection. That is sound
    because the rules read an open's ``conn`` only to name it in a violation; of its
    other fields only :data:`SHAPE_FIELDS` (never ``started_at``, ``client`` or
    ``target``); of its headers only those of :data:`READ_HEADERS`, but for the search
    for a control character in every request header value (RFC-HS-HEADER-SYNTAX); and
    the key and the accept only in ``_check_key`` and the accept check, which find
    nothing in such an open (tests/core/rules/test_handshake.py holds the rules to all
    three). Any other open (no key, two keys, a bad or repeated key, a wrong accept, a
    control character in a request header) is checked in full. An open that is the last
    one whose shape was taken but for its key and accept is told apart without taking
    its shape (:meth:`_like_last`).
    """

    MEMO = 1024
    """Shapes kept at most, each of at most :data:`MAX_SHAPE_BYTES` (forgotten all at
    once: a cassette of many shapes costs a few MB at most, never an entry per
    connection)."""

    def __init__(self, cfg: RuleConfig) -> None:
        self.cfg = cfg
        self._seen: dict[tuple[object, ...], tuple[Violation, ...]] = {}
        self._cleared = 0
        """How many times the memo was forgotten (an entry is never replaced otherwise)."""
        self._last: _Last | None = None

    def check(self, op: Open, seen_keys: frozenset[str] = frozenset()) -> list[Violation]:
        """The violations of ``op``'s request and response, in that order; ``seen_keys``
        as :func:`check_request` takes it."""
        got = self._like_last(op, seen_keys)
        if got is None:
            found = _shape(op, seen_keys)
            if found is None:
                return [
                    *check_request(op, self.cfg, seen_keys=seen_keys),
                    *check_response(op, self.cfg),
                ]
            shape, key_at, accept_at = found
            got = self._seen.get(shape)
            if got is None:
                if len(self._seen) >= self.MEMO:
                    self._seen.clear()
                    self._cleared += 1
                got = self._seen[shape] = (
                    *check_request(op, self.cfg, seen_keys=seen_keys),
                    *check_response(op, self.cfg),
                )
            self._last = _Last(op, key_at, accept_at, shape[0], got, self._cleared)
        conn = op.conn
        return [v if v.conn == conn else replace(v, conn=conn) for v in got]

    def _like_last(self, op: Open, seen_keys: frozenset[str]) -> tuple[Violation, ...] | None:
        """What the memo holds for ``op`` if it is the last open :func:`_shape` was taken
        of, byte for byte, but for its key and accept, and those are ones the rules find
        nothing in: a canonical key (no whitespace around it) not in ``seen_keys``, and
        its accept exactly. Then :func:`_shape` would give the last shape (an open of a
        many-connection cassette mostly is the one before it with another nonce), and
        this is a few comparisons of tuples in place of a pass over the headers. Else
        None (:meth:`check` takes the shape)."""
        last = self._last
        if last is None or last.cleared != self._cleared:
            return None  # (the memo forgot the last shape since: the long way)
        request, was = op.request_headers, last.op.request_headers
        i = last.key_at
        if not (
            len(request) == len(was)
            and request[:i] == was[:i]
            and request[i + 1 :] == was[i + 1 :]
            and request[i][0] == was[i][0]
            and _CANONICAL_KEY_BYTES.fullmatch(request[i][1])
        ):
            return None
        key = request[i][1].decode("ascii")
        if key in seen_keys:
            return None
        response, was = op.response_headers, last.op.response_headers
        j = last.accept_at
        if j < 0:
            if response != was:
                return None
        elif not (
            len(response) == len(was)
            and response[:j] == was[:j]
            and response[j + 1 :] == was[j + 1 :]
            and response[j][0] == was[j][0]
        ):
            return None
        if _shape_fields(op) != last.fields:
            return None
        if j >= 0 and op.status == 101 and response[j][1] != accept_key(key).encode("ascii"):
            return None
        return last.found


@dataclass(frozen=True, slots=True)
class _Last:
    """The last open :func:`_shape` was taken of, where its key and first accept are,
    its :data:`SHAPE_FIELDS` and the violations the memo holds for its shape."""

    op: Open
    key_at: int
    accept_at: int
    """-1: no Sec-WebSocket-Accept."""
    fields: object
    found: tuple[Violation, ...]
    cleared: int
    """:attr:`HandshakeChecks._cleared` when the memo held them."""


READ_HEADERS = frozenset(
    {
        b"host",
        b"upgrade",
        b"connection",
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-protocol",
        b"sec-websocket-extensions",
        b"sec-websocket-accept",
        b"referer",
        b"user-agent",
    }
)
"""The headers (lower case) the handshake rules read, of a request or a response."""
SHAPE_FIELDS = (
    "method",
    "scheme",
    "host",
    "port",
    "http_version",
    "subprotocols",
    "extensions",
    "tls",
    "status",
    "reason",
    "subprotocol",
    "body",
)
"""The fields of an open the handshake rules read, but for ``conn`` and the headers."""
_shape_fields = attrgetter(*SHAPE_FIELDS)
_value = itemgetter(1)
MAX_SHAPE_BYTES = 4096
"""An open whose headers the rules read (and host, reason and body) hold more bytes than
this is checked in full, never kept (an everyday handshake holds a few hundred)."""
_KEY = b"sec-websocket-key"
_ACCEPT = b"sec-websocket-accept"


def _shape(op: Open, seen_keys: frozenset[str]) -> tuple[tuple[object, ...], int, int] | None:
    """What the handshake rules read of ``op``, its key and accept left out, if they are
    ones the rules find nothing in; else None (see :class:`HandshakeChecks`). With it,
    where the key is in the request headers and the first accept in the response's (-1:
    none)."""
    request: list[tuple[bytes, bytes | None]] = []
    keys: list[bytes] = []
    key_at = -1
    size = len(op.body) + len(op.host) + len(op.reason)
    if has_control(b"".join(map(_value, op.request_headers))):
        return None  # (RFC-HS-HEADER-SYNTAX reads every header: such an open is rare)
    for at, (k, v) in enumerate(op.request_headers):
        name = k.lower()
        if name in READ_HEADERS:
            if name == _KEY:
                keys.append(v)
                key_at = at
                request.append((name, None))
            else:
                request.append((name, v))
                size += len(v)
    if len(keys) != 1 or size > MAX_SHAPE_BYTES:
        return None
    key = decode_header_value(keys[0]).strip()  # (as header_values gives it)
    if key in seen_keys or key_problem(key) is not None:
        return None
    response: list[tuple[bytes, bytes | None]] = []
    accept: bytes | None = None
    accept_at = -1
    for at, (k, v) in enumerate(op.response_headers):
        name = k.lower()
        if name in READ_HEADERS:
            if name == _ACCEPT:
                if accept is None:
                    accept = v
                    accept_at = at
                response.append((name, None))
            else:
                response.append((name, v))
                size += len(v)
    if size > MAX_SHAPE_BYTES:
        return None
    if (
        accept is not None
        and op.status == 101
        and decode_header_value(accept).strip() != accept_key(key)
    ):
        return None
    return (_shape_fields(op), tuple(request), tuple(response)), key_at, accept_at


def check_server_close(
    code: int | None, cfg: RuleConfig, conn: int | None = None, reason: str = ""
) -> list[Violation]:
    """RFC-SRV-CLOSE-CODE and RFC-SRV-CLOSE-REASON: a server's Close (RFC 6455 §7.4.1, §5.5).

    ``None`` (a Close without a code) is allowed. 1010 is a warning: it means "the server
    did not negotiate an extension the client needs", so only a client sends it. The
    reason must fit a control frame: at most 123 bytes of UTF-8.
    """
    report = Report(cfg, conn)
    if code is None:
        return report.items
    if code == CloseCode.MANDATORY_EXTENSION:
        report.add(
            "RFC-SRV-CLOSE-CODE",
            Severity.WARN,
            f"server closed with {describe(code)}; expected a server code (1010 is sent "
            "by clients only)",
            expected="not 1010",
            actual=code,
        )
    elif not is_sendable(code):
        report.add(
            "RFC-SRV-CLOSE-CODE",
            Severity.ERROR,
            f"server closed with {describe(code)}; expected {SENDABLE_RANGES_TEXT}",
            expected=SENDABLE_RANGES_TEXT,
            actual=code,
        )
    size = len(reason.encode("utf-8", "surrogatepass"))
    if size > MAX_REASON_BYTES:
        report.add(
            "RFC-SRV-CLOSE-REASON",
            Severity.ERROR,
            f"server Close reason is {size} bytes of UTF-8; expected at most "
            f"{MAX_REASON_BYTES} (a control frame carries at most 125 bytes)",
            expected=MAX_REASON_BYTES,
            actual=size,
        )
    return report.items


__all__ = [
    "GUID",
    "READ_HEADERS",
    "SHAPE_FIELDS",
    "WX_REFERER",
    "HandshakeChecks",
    "accept_key",
    "check_early_data",
    "check_request",
    "check_response",
    "check_server_close",
    "check_subprotocol_change",
    "has_control",
    "is_ip_literal",
    "is_lan_host",
    "key_problem",
    "offered_extensions",
    "offered_subprotocols",
    "request_host",
    "wechat_platform",
]
