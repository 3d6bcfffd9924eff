"""The rule catalogue as data: profiles, severities, rule metadata and violations.

Every rule of ``RULES.md`` has one :class:`Rule` entry in :data:`CATALOGUE`, in the
document's order. The check functions live in the ``rules_*`` modules and are re-exported,
with everything here, by :mod:`wstape.core.rules`; import from there.

A violation is data, never an exception: checks return ``list[Violation]``, empty when the
client behaved. Whether a rule runs at all is decided by :func:`is_active` (the profile
includes the rule and ``--ignore`` does not name it); :func:`violation` folds that test
into building the record, so a check can build violations unconditionally.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from wstape.core.errors import ConfigError

WX_APPID = re.compile(r"wx[0-9a-fA-F]{16}")
"""A mini-program appid: ``wx`` and 16 hex digits."""


class Severity(StrEnum):
    """How bad a violation is. Errors fail a run (exit code 1); warnings and info do not."""

    ERROR = "error"
    WARN = "warn"
    INFO = "info"


class Profile(StrEnum):
    """Which contract the client is held to. Each profile includes the one before it."""

    RFC6455 = "rfc6455"
    BROWSER = "browser"
    WECHAT = "wechat"


# rfc6455 < browser < wechat: WeChat DevTools and PC WeChat run on Chromium, so the browser
# contract applies under the wechat profile too.
_PROFILE_ORDER: dict[Profile, int] = {Profile.RFC6455: 0, Profile.BROWSER: 1, Profile.WECHAT: 2}


class Platform(StrEnum):
    """Where a mini-program runs, for the rules that differ (BROWSER-CLOSE-CODE)."""

    DEVICE = "device"
    """Phone WeChat: a close code Chromium refuses is a warning."""
    DEVTOOLS = "devtools"
    """WeChat DevTools / PC WeChat (Chromium): an error."""


PLATFORMS = tuple(p.value for p in Platform)


def profile_includes(profile: Profile, introduced_in: Profile) -> bool:
    """True if ``profile`` contains the rules introduced by ``introduced_in``."""
    return _PROFILE_ORDER[Profile(profile)] >= _PROFILE_ORDER[Profile(introduced_in)]


def _json_safe(value: object) -> object:
    """Convert ``value`` into something ``json.dumps`` accepts without a custom encoder.

    Bytes become text when they are valid UTF-8 and lower-case hex otherwise, so a report
    stays readable for JSON payloads and lossless for binary ones.
    """
    if isinstance(value, Enum):
        return _json_safe(value.value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    if isinstance(value, Mapping):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((_json_safe(v) for v in value), key=repr)
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_safe(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


@dataclass(frozen=True)
class Violation:
    """One broken rule: what was expected, what came, and where.

    ``expected`` and ``actual`` may be any value (bytes, dicts, ints); they are left out of
    the hash so a violation carrying a dict can still go into a set.
    """

    rule: str
    severity: Severity
    conn: int | None
    message: str
    expected: object = field(default=None, hash=False)
    actual: object = field(default=None, hash=False)
    t: float | None = None
    """Seconds since the connection opened, when the rule concerns one moment."""

    def to_json(self) -> dict[str, object]:
        """The violation as JSON-safe data (bytes become UTF-8 text or hex)."""
        return {
            "rule": self.rule,
            "severity": str(self.severity.value),
            "conn": self.conn,
            "message": self.message,
            "expected": _json_safe(self.expected),
            "actual": _json_safe(self.actual),
        }


@dataclass(frozen=True)
class RuleConfig:
    """What the rules are checked against (the ``check`` / ``replay`` options).

    Raises ``ValueError`` for an unknown profile or platform, or ``max_sockets < 1``:
    a typo in an option must not silently check against the wrong contract.
    """

    profile: Profile = Profile.RFC6455
    appid: str | None = None
    """Expected appid in the wx Referer (``--appid``)."""
    allow_hosts: tuple[str, ...] = ()
    """The mini-program's "socket legal domain" list (``--allow-host``)."""
    max_sockets: int = 5
    platform: str = "device"
    """``device`` (phone WeChat) or ``devtools`` (WeChat DevTools / PC WeChat)."""
    ignore: frozenset[str] = frozenset()
    """Rule IDs not to report (``--ignore``), compared case-insensitively."""

    def __post_init__(self) -> None:
        # Accept plain strings and any iterables from callers; store canonical types.
        try:
            object.__setattr__(self, "profile", Profile(self.profile))
        except ValueError:
            raise ConfigError(
                f"unknown profile {self.profile!r}; choose one of {', '.join(Profile)}",
                option="profile",
            ) from None
        object.__setattr__(self, "allow_hosts", tuple(self.allow_hosts))
        object.__setattr__(self, "ignore", frozenset(i.upper() for i in self.ignore))
        if self.platform not in PLATFORMS:
            raise ConfigError(
                f"unknown platform {self.platform!r}; choose one of {', '.join(PLATFORMS)}",
                option="platform",
            )
        if self.max_sockets < 1:
            raise ConfigError(
                f"max_sockets must be at least 1, not {self.max_sockets}", option="max_sockets"
            )
        if self.appid is not None and not WX_APPID.fullmatch(self.appid):
            raise ConfigError(
                f"{self.appid!r} is not an appid (wx and 16 hex digits, e.g. wx0123456789abcdef)",
                option="appid",
            )
        unknown = unknown_rule_ids(self.ignore)
        if unknown:
            raise ConfigError(
                f"unknown rule ID {', '.join(sorted(unknown))} (see `wstape rules`)",
                option="ignore",
            )


@dataclass(frozen=True)
class Rule:
    """Metadata of one rule, as printed by ``wstape rules`` and docs/rules.md."""

    id: str
    side: str
    """``handshake``, ``server``, ``frame``, ``close`` or ``session``."""
    profiles: tuple[Profile, ...]
    """The profiles that run the rule, starting with the one that introduces it."""
    severity: str
    """Human description of the severity per profile, as in RULES.md."""
    source: str
    description: str
    extra: bool = False
    """Not a row of RULES.md: a rule wstape adds where a protocol break had none (the
    catalogue keeps RULES.md's own rules in its order, and these among them)."""

    @property
    def introduced_in(self) -> Profile:
        return self.profiles[0]


_ALL = (Profile.RFC6455, Profile.BROWSER, Profile.WECHAT)
_BROWSER = (Profile.BROWSER, Profile.WECHAT)
_WECHAT = (Profile.WECHAT,)

CATALOGUE: tuple[Rule, ...] = (
    # -- client handshake ----------------------------------------------------------------
    Rule(
        "RFC-HS-METHOD",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1",
        "The request is GET, HTTP/1.1 or later. The old wx `method` option (POST, PUT, ...) "
        "cannot open a WebSocket.",
    ),
    Rule(
        "RFC-HS-HEADER-SYNTAX",
        "handshake",
        _ALL,
        "error",
        "RFC 7230 §3.2, §3.2.4",
        "Every header line is `name: value`: the name a token with no space before the "
        "colon, no obsolete line folding, no control character in the value but HTAB "
        "(NUL, CR, ...). Otherwise the server answers 400.",
        extra=True,
    ),
    Rule(
        "RFC-HS-HOST",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1, §4.2.1; RFC 7230 §5.4",
        "The request carries exactly one `Host` header, naming the host. None, an empty "
        "one or two (even equal) get a 400. Browsers and the wx client always send one.",
        extra=True,
    ),
    Rule(
        "RFC-HS-UPGRADE",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1, §4.2.1",
        "`Upgrade` contains `websocket` and `Connection` contains `Upgrade`.",
    ),
    Rule(
        "RFC-HS-KEY",
        "handshake",
        _ALL,
        "error / warn",
        "RFC 6455 §4.1",
        "`Sec-WebSocket-Key` is base64 of exactly 16 bytes (error); the same key on two "
        "connections of one run is a warning.",
    ),
    Rule(
        "RFC-HS-VERSION",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1, §4.2.2",
        "`Sec-WebSocket-Version: 13`; otherwise the server answers 426 with the supported version.",
    ),
    Rule(
        "RFC-HS-SUBPROTOCOL-SYNTAX",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1; RFC 7230 §3.2.6; WHATWG WebSocket constructor",
        "Offered subprotocols are non-empty tokens with no duplicates (browsers throw "
        "SyntaxError).",
    ),
    Rule(
        "RFC-HS-EARLY-DATA",
        "handshake",
        _ALL,
        "error",
        "RFC 6455 §4.1; wx SocketTask.send",
        "No frame bytes before the 101 was sent (wx: send only after onOpen).",
    ),
    Rule(
        "WX-URL-SCHEME",
        "handshake",
        _WECHAT,
        "wechat: error",
        "wx.connectSocket; WeChat network guide (LAN communication)",
        "The upgrade arrived over TLS (wss). Plain ws only to a LAN address (base library "
        "2.4.0+), then a warning.",
    ),
    Rule(
        "WX-URL-HOST",
        "handshake",
        _WECHAT,
        "wechat: error",
        "WeChat network guide (server domain names)",
        "The Host is a DNS name: not an IP literal, not `localhost`, not "
        "`api.weixin.qq.com`; with `--allow-host`, exactly one of the listed names (no "
        "parent-domain match; any port).",
    ),
    Rule(
        "WX-TLS-VERSION",
        "handshake",
        _WECHAT,
        "wechat: error",
        "WeChat network guide (TLS)",
        "The negotiated TLS version is 1.2 or newer.",
    ),
    Rule(
        "WX-HS-REFERER",
        "handshake",
        _WECHAT,
        "wechat: error if malformed, info if absent",
        "WeChat network guide (Referer)",
        "A `Referer` that is present matches "
        "`https://servicewechat.com/{appid}/{version}/page-frame.html` (version `0`, "
        "`devtools` or a release number) and, with `--appid`, names that appid; the app "
        "cannot set Referer itself.",
    ),
    Rule(
        "WX-HS-USER-AGENT",
        "handshake",
        _WECHAT,
        "wechat: warn",
        "WeChat network guide",
        "The User-Agent contains `MicroMessenger/` and `MiniProgramEnv/` "
        "(case-insensitive); the platform is reported.",
    ),
    Rule(
        "WX-HS-SUBPROTOCOL-CHANGED",
        "handshake",
        _ALL,
        "warn",
        "wstape replay",
        "Offered subprotocols or extensions differ from the recording (the client code changed).",
    ),
    # -- server side ---------------------------------------------------------------------
    Rule(
        "RFC-SRV-ACCEPT",
        "server",
        _ALL,
        "error",
        "RFC 6455 §4.2.2",
        "Sec-WebSocket-Accept is computed for the live key, never copied from the "
        "recording (`dGhlIHNhbXBsZSBub25jZQ==` gives `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`).",
    ),
    Rule(
        "RFC-SRV-SUBPROTOCOL",
        "server",
        _ALL,
        "error",
        "RFC 6455 §4.1, §4.2.2",
        "A chosen subprotocol is one the client offered.",
    ),
    Rule(
        "BROWSER-SRV-SUBPROTOCOL-ECHO",
        "server",
        _BROWSER,
        "browser: error",
        "WHATWG WebSockets Standard, establish a WebSocket connection",
        "The client offered subprotocols and the server chose none: browsers, DevTools "
        "and (reportedly) mini-programs fail the connection.",
    ),
    Rule(
        "RFC-SRV-CLOSE-CODE",
        "server",
        _ALL,
        "error",
        "RFC 6455 §7.4.1",
        "A server Close code is sendable; 1010 from a server is a warning (only clients send it).",
    ),
    Rule(
        "RFC-SRV-CLOSE-REASON",
        "server",
        _ALL,
        "error",
        "RFC 6455 §5.5, §5.5.1",
        "A server Close reason is at most 123 bytes of UTF-8 (a control frame carries at "
        "most 125); replay cuts a longer recorded reason and sends an unsendable recorded "
        "code as an empty Close.",
        extra=True,
    ),
    # -- client frames -------------------------------------------------------------------
    Rule(
        "RFC-FRAME-MASK",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.1, §5.3",
        "Every client frame is masked.",
    ),
    Rule(
        "RFC-FRAME-RSV",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.2; RFC 7692 §6",
        "RSV bits are 0 unless an extension was negotiated; with permessage-deflate, RSV1 "
        "only on the first frame of a data message.",
    ),
    Rule(
        "RFC-FRAME-OPCODE",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.2",
        "The opcode is continuation, text, binary, close, ping or pong.",
    ),
    Rule(
        "RFC-FRAME-CONTROL",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.5",
        "Control frames carry at most 125 bytes and are not fragmented.",
    ),
    Rule(
        "RFC-FRAME-LENGTH",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.2",
        "The payload length is encoded in the fewest bytes, and a 64-bit length has its "
        "most significant bit clear.",
        extra=True,
    ),
    Rule(
        "RFC-FRAME-FRAGMENTS",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.4",
        "Continuation frames only inside an unfinished message; no new data message "
        "before it finishes.",
    ),
    Rule(
        "RFC-TEXT-UTF8",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.6, §8.1",
        "A text message is valid UTF-8.",
    ),
    Rule(
        "RFC-MESSAGE-TOO-BIG",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §10.4, §7.4.1 (1009); wstape replay --max-size, --max-fragments",
        "A frame, and a message reassembled from its fragments, fit the server's limits: "
        "at most --max-size bytes, at most --max-fragments frames. Over them the server "
        "fails the connection with 1009.",
        extra=True,
    ),
    Rule(
        "RFC-DEFLATE-DATA",
        "frame",
        _ALL,
        "error",
        "RFC 7692 §6.2, §7.2.2",
        "With permessage-deflate negotiated, a compressed message (RSV1 on its first "
        "frame) inflates as DEFLATE data; otherwise the server fails the connection "
        "with 1002.",
        extra=True,
    ),
    Rule(
        "RFC-PONG-ECHO",
        "frame",
        _ALL,
        "error (missing: warn)",
        "RFC 6455 §5.5.2, §5.5.3",
        "A Pong answering our Ping carries the same payload.",
    ),
    Rule(
        "RFC-DATA-AFTER-CLOSE",
        "frame",
        _ALL,
        "error",
        "RFC 6455 §5.5.1",
        "No data frame after the client sent Close.",
    ),
    Rule(
        "WX-SEND-TYPE",
        "frame",
        _ALL,
        "error",
        "wx SocketTask.send",
        "A message has the recorded type: `send({data: string})` gives text, an "
        "ArrayBuffer gives binary.",
    ),
    # -- client close --------------------------------------------------------------------
    Rule(
        "RFC-CLOSE-PAYLOAD",
        "close",
        _ALL,
        "error",
        "RFC 6455 §5.5.1; Autobahn 7.3.2",
        "The Close body is empty or at least 2 bytes.",
    ),
    Rule(
        "RFC-CLOSE-CODE",
        "close",
        _ALL,
        "error",
        "RFC 6455 §7.4; IANA close code registry",
        "The code is sendable: 1000-1003, 1007-1014 or 3000-4999.",
    ),
    Rule(
        "RFC-CLOSE-REASON-LENGTH",
        "close",
        _ALL,
        "error",
        "RFC 6455 §5.5; wx SocketTask.close",
        "The reason is at most 123 bytes of UTF-8 (bytes, not characters).",
    ),
    Rule(
        "RFC-CLOSE-REASON-UTF8",
        "close",
        _ALL,
        "error",
        "RFC 6455 §5.5.1",
        "The reason is valid UTF-8, not cut inside a character.",
    ),
    Rule(
        "RFC-CLOSE-HANDSHAKE",
        "close",
        _ALL,
        "warn",
        "RFC 6455 §5.5.1, §7.1.1",
        "After the server's Close the client answers with Close; the client does not drop "
        "TCP without a Close (the app then sees 1006).",
    ),
    Rule(
        "BROWSER-CLOSE-CODE",
        "close",
        _BROWSER,
        "browser: error; wechat: warn on devices, error with `--platform devtools`",
        "WHATWG WebSockets Standard, close(); wx SocketTask.close",
        "A close the client starts uses 1000 or 3000-4999; anything else throws "
        "InvalidAccessError in browsers, WeChat DevTools and PC WeChat. An echo of the "
        "server's code is not client-started.",
    ),
    Rule(
        "WX-CLOSE-DEFAULT",
        "close",
        _WECHAT,
        "wechat: warn",
        "wx SocketTask.close",
        "A Close without a code (server sees 1005): `SocketTask.close()` documents 1000 as "
        "its default, so an empty body means a browser-like client or a PC WeChat bug.",
    ),
    Rule(
        "REPLAY-CLOSE-CHANGED",
        "close",
        _ALL,
        "warn",
        "wstape replay",
        "The client closed with another code/reason than recorded.",
    ),
    # -- session -------------------------------------------------------------------------
    Rule(
        "WX-SOCKET-LIMIT",
        "session",
        _WECHAT,
        "wechat: error above 5",
        "wx.connectSocket",
        "At most 5 connections open at once per client (by appid from the Referer, else "
        "client address + User-Agent); more than 2 is a warning.",
    ),
    Rule(
        "WX-CONNECT-TIMEOUT",
        "session",
        _WECHAT,
        "wechat: warn",
        "app.json networkTimeout.connectSocket",
        "With a delayed handshake, the client gives up near its timeout (default 60 s).",
    ),
    Rule(
        "RFC-RECONNECT-BACKOFF",
        "session",
        _ALL,
        "warn",
        "RFC 6455 §7.2.3",
        "After an abnormal close, reconnects are delayed and back off: more than 3 "
        "reconnects within 2 s is a warning.",
    ),
    Rule(
        "REPLAY-UNMATCHED-CONNECTION",
        "session",
        _ALL,
        "error",
        "wstape replay",
        "A client connected to a path no recorded connection has.",
    ),
    Rule(
        "REPLAY-MESSAGE-MISMATCH",
        "session",
        _ALL,
        "error",
        "wstape replay",
        "A client message differs from the recorded one under the chosen matcher.",
    ),
    Rule(
        "REPLAY-CLIENT-SILENT",
        "session",
        _ALL,
        "error",
        "wstape replay",
        "The client did not send an expected message within the timeout.",
    ),
    Rule(
        "REPLAY-CLIENT-STALLED",
        "session",
        _ALL,
        "error",
        "wstape replay",
        "The client read nothing the server sent for the timeout while the server's send "
        "buffer was full; the server drops the connection.",
        extra=True,
    ),
    Rule(
        "REPLAY-UNPLAYED",
        "session",
        _ALL,
        "error (warn with --allow-partial)",
        "wstape replay",
        "Recorded connections or messages were never reached: a client that left before "
        "its recorded end, a recorded connection no client opened, a run no client "
        "connected to (that one is an error even with --allow-partial).",
    ),
    Rule(
        "REPLAY-HEARTBEAT-UNANSWERED",
        "session",
        _ALL,
        "error",
        "wstape replay; Engine.IO v4 heartbeats, MQTT keep-alive, STOMP heart-beating",
        "The client answers the server's heartbeat pings (sent on the recorded clock) "
        "within the pingTimeout the recording negotiated (Engine.IO), else "
        "--heartbeat-timeout; a real server would drop a client that does not.",
        extra=True,
    ),
    Rule(
        "REPLAY-HEARTBEAT-MISSED",
        "session",
        _ALL,
        "error",
        "MQTT 3.1.1 §3.1.2.10 (keep alive, 1.5 times); STOMP 1.2 heart-beating; Engine.IO v3",
        "The client sends something at least as often as the keep-alive the recording "
        "negotiated (MQTT CONNECT keep alive, STOMP CONNECT/CONNECTED heart-beat, Engine.IO "
        "v3 pingInterval + pingTimeout) requires; a real server drops a client that does not.",
        extra=True,
    ),
    Rule(
        "REPLAY-PROTOCOL-MISFIT",
        "session",
        _ALL,
        "warn",
        "wstape replay / check --protocol (docs/protocols.md, Selection)",
        "The protocol named with --protocol fits the recorded connection: its first "
        "messages look like that protocol. Named for one that does not, its units are "
        "decoded, matched and correlated as that protocol anyway, and the verdict says "
        "little; the finding names what auto recognises instead.",
        extra=True,
    ),
    Rule(
        "REPLAY-HEARTBEAT-DETECTED",
        "session",
        _ALL,
        "info",
        "wstape replay (docs/replay.md, Heartbeats)",
        "Recorded units were taken as heartbeats by detection (no --heartbeat, no protocol "
        "codec): they are played apart and not checked in order. The finding names them; "
        "declare them with --heartbeat, or check them as data with --no-heartbeats.",
        extra=True,
    ),
    Rule(
        "REPLAY-HEARTBEAT-DEAD",
        "session",
        _ALL,
        "error",
        "wx network guide (close the socket 5 s after an unanswered ping); wstape faults",
        "With its heartbeats unanswered or the server's own stopped (the mute-heartbeats "
        "fault), the client closes or reconnects within --heartbeat-timeout (default 5 s) "
        "of its first unanswered ping, or of the first server heartbeat left out (plus "
        "Engine.IO's pingTimeout), and does not keep sending into the dead connection.",
        extra=True,
    ),
    Rule(
        "REPLAY-FAULT-NO-RECONNECT",
        "session",
        _ALL,
        "error",
        "wx network guide (reconnect on onSocketClose); RFC 6455 §7.2.3; wstape faults",
        "After a fault that breaks the connection (a drop, a blackhole, a refused or "
        "stalled upgrade, a close with 1001, 1011, 1012, 1013 or 1014, a dead heartbeat it "
        "gave up on), the client reconnects within --expect-reconnect (default 10 s).",
        extra=True,
    ),
    Rule(
        "REPLAY-RECONNECT-TOO-SOON",
        "session",
        _ALL,
        "error",
        "RFC 6455 §7.2.3, §7.4.1 (1013 try again later); wstape faults",
        "After a close with 1008, 1011 or 1013, the client waits at least "
        "--reconnect-delay (default 1 s) before it reconnects (no tight reconnect loop).",
        extra=True,
    ),
    Rule(
        "REPLAY-RECONNECT-SETUP",
        "session",
        _ALL,
        "error",
        "wstape faults",
        "After a reconnect, the client repeats its recorded setup (authentication, "
        "subscriptions: what it had sent on the broken connection before the fault, at "
        "least its first message) before anything else.",
        extra=True,
    ),
)

SEVERITY_CHANGES: dict[str, str] = {
    "REPLAY-UNPLAYED": "issue 9: the exit code alone is a CI gate, so a client that "
    "left half way fails the run unless --allow-partial",
}
"""Rules whose severity differs on purpose from RULES.md's, with why."""

RULES_BY_ID: dict[str, Rule] = {rule.id: rule for rule in CATALOGUE}


def get_rule(rule_id: str) -> Rule:
    """The catalogue entry for ``rule_id``. Raises ``KeyError`` for an unknown ID."""
    try:
        return RULES_BY_ID[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule ID: {rule_id!r}") from None


def unknown_rule_ids(rule_ids: Iterable[str]) -> list[str]:
    """The IDs in ``rule_ids`` that are not in the catalogue (for validating ``--ignore``)."""
    return [r for r in rule_ids if r.upper() not in RULES_BY_ID]


def rules_for(profile: Profile) -> list[Rule]:
    """The rules a profile runs, in catalogue order."""
    return [rule for rule in CATALOGUE if profile_includes(profile, rule.introduced_in)]


def is_active(rule_id: str, cfg: RuleConfig) -> bool:
    """True if ``cfg``'s profile runs ``rule_id`` and ``--ignore`` does not name it.

    Raises ``KeyError`` for an unknown rule ID: a misspelt ID in a check would otherwise
    silently never fire.
    """
    rule = get_rule(rule_id)
    return rule_id.upper() not in cfg.ignore and profile_includes(cfg.profile, rule.introduced_in)


def violation(
    rule_id: str,
    severity: Severity,
    cfg: RuleConfig,
    conn: int | None,
    message: str,
    expected: object = None,
    actual: object = None,
    t: float | None = None,
) -> Violation | None:
    """Build a :class:`Violation`, or None if the rule is inactive under ``cfg``."""
    if not is_active(rule_id, cfg):
        return None
    return Violation(rule_id, Severity(severity), conn, message, expected, actual, t)


def catalogue_markdown() -> str:
    """docs/rules.md: the catalogue as a Markdown table (regenerate, never hand-edit)."""
    lines = [
        "# Rules",
        "",
        "<!-- Generated from wstape.core.rules.CATALOGUE; regenerate with:",
        "     python -c 'from wstape.core.rules import catalogue_markdown as m; "
        'print(m(), end="")\' > docs/rules.md -->',
        "",
        "Profiles include each other: `rfc6455` < `browser` < `wechat`. A rule runs in the",
        "profile that introduces it and every later one. Silence a rule with `--ignore ID`.",
        "",
        "| ID | side | profiles | severity | source | description |",
        "|---|---|---|---|---|---|",
    ]
    for rule in CATALOGUE:
        cells = [
            f"`{rule.id}`",
            rule.side,
            ", ".join(p.value for p in rule.profiles),
            rule.severity,
            rule.source,
            rule.description,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
