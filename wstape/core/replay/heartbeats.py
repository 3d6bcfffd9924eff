"""Heartbeats of a recorded connection: which units only keep it alive, who sends them,
who answers them, and on whose clock.

A :class:`HeartbeatPlan` is decided once per recorded connection, while the index reads
it (:class:`HeartbeatAnalysis`), from three sources, the first that speaks wins:

1. **declared** (``--heartbeat``, :func:`parse_heartbeat`): ``client:PING=>PONG`` (the
   client asks, the server answers), ``server:PING=>PONG`` (the server asks on its clock,
   the client answers), ``client:BEAT`` / ``server:BEAT`` (a keep-alive nobody answers);
2. **the protocol codec** (``Decoded.heartbeat``): Engine.IO's server ``2`` and client
   ``3``, MQTT ``PINGREQ``/``PINGRESP``, STOMP's EOL, graphql ``ping``/``pong``/``ka``;
3. **detection from the recording's timing** (unless turned off), among the units
   that *look like* heartbeats (:func:`heartbeat_shaped`: a keep-alive word such as
   ``ping`` as the whole payload or as a JSON type/op/event value, an empty payload or
   JSON container, whitespace, a bare number; repeated data such as a transfer request
   and its ``{"status":"done"}`` never is): a unit one side sends at least twice, each
   time followed by the same heartbeat-shaped unit from the other side sooner than half
   its own spacing, is a request and its reply (a "reply" that comes about one interval
   later is the other side's timer, not a reply: Engine.IO's client ``3`` is always
   followed by the server's next ``2``, a second later); a small unit one side sends at
   least three times at a steady spacing, unanswered, is a keep-alive.

What replay does with each kind (:mod:`.script`): a client ping is answered with its
recorded reply whenever it comes; a client pong or keep-alive is taken whenever it comes;
none of them is matched in order. The server's pings and keep-alives are sent on their own
clock, keeping the recorded spacing at every ``--speed`` (speed scales think time, not
protocol timers), for as long as the connection lives; a server ping the client does not
answer in time is a finding (REPLAY-HEARTBEAT-UNANSWERED).

**Deadlines the recording negotiated** (:class:`Negotiated`, from the codec's decoded
units) replace ``--heartbeat-timeout``: Engine.IO's ``pingTimeout`` (open packet) for the
answer to a server ping; and how long the client may send nothing at all: MQTT 1.5 times
the CONNECT keep alive (the broker's limit, MQTT 3.1.1 §3.1.2.10), STOMP twice the
heart-beat the client agreed to send (CONNECT ``heart-beat: cx,cy`` with CONNECTED
``sx,sy``: every max(cx, sy) ms), Engine.IO v3 (the client pings) pingInterval +
pingTimeout. A client past it is REPLAY-HEARTBEAT-MISSED.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from wstape.core.codecs.base import Codec, Decoded, HeartbeatRole
from wstape.core.errors import ConfigError
from wstape.core.model import Message, Opcode, Side

MessageKey = tuple[Opcode, bytes]

MAX_PAYLOAD = 512
"""Longer units are never heartbeats (keeps the analysis small for huge cassettes)."""
MAX_CANDIDATES = 4096
MIN_REPEATS = 2
"""A request/reply pair seen this often is a heartbeat."""
KEEPALIVE_REPEATS = 3
KEEPALIVE_MAX_PAYLOAD = 32
"""A keep-alive is tiny (``\\n``, ``2``, ``{"type":"ka"}``): larger repeated messages are data."""
REPLY_FRACTION = 0.5
"""A reply comes sooner than this fraction of the request's own spacing."""
STEADY = 2.0
"""A keep-alive's longest gap is at most this many times its shortest."""
MIN_KEEPALIVE_GAP = 0.05
NEGOTIATION_UNITS = 16
"""The first units of a connection are read for what it negotiated, whatever their size."""
NEGOTIATION_MAX_PAYLOAD = 64 * 1024
MQTT_GRACE = 1.5
"""A broker disconnects a client silent for 1.5 times its keep alive (MQTT 3.1.1 §3.1.2.10)."""
STOMP_GRACE = 2.0
"""STOMP asks for an error margin on heart-beats (1.2, "Heart-beating"); wstape allows twice
the interval."""
SHAPE_MAX_PAYLOAD = 128
"""A detected heartbeat is at most this long (``{"type":"ping","ts":1700000000000}``)."""
KEEPALIVE_WORDS = frozenset(
    {"ping", "pong", "heartbeat", "keepalive", "hb", "beat", "alive", "ka", "noop"}
)
"""The words a detected heartbeat is made of (``keep-alive``, ``heart_beat``,
``client_ping`` and ``clientPing`` count: a word is a run of letters, camelCase split, and
the parts joined count too)."""
TYPE_KEYS = frozenset({"type", "op", "event", "action", "cmd", "command", "method", "kind", "t"})
"""The keys whose value names a JSON message's kind."""
MAX_SHAPE_KEYS = 4
"""A heartbeat object has few members (its kind, a timestamp or a counter, an id)."""
_NUMBER = re.compile(rb"-?[0-9]{1,20}(?:\.[0-9]{1,20})?")
_WORD_PARTS = re.compile(r"[^a-z]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")


@dataclass(frozen=True)
class HeartbeatPlan:
    """How one recorded connection's heartbeats are played (see the module docstring)."""

    client_pings: Mapping[MessageKey, MessageKey] = field(default_factory=dict)
    """A client ping -> the recorded server reply, sent whenever the ping comes."""
    client_pongs: frozenset[MessageKey] = frozenset()
    """The client's answers to the server's pings."""
    client_beats: frozenset[MessageKey] = frozenset()
    server_pings: frozenset[MessageKey] = frozenset()
    """Sent on the server's clock; the client must answer each (with a client pong)."""
    server_beats: frozenset[MessageKey] = frozenset()
    """Sent on the server's clock; nobody answers."""
    server_replies: frozenset[MessageKey] = frozenset()
    """The recorded answers to client pings (sent when the live client pings)."""
    source: str = "none"
    """``declared``, the codec's name, ``detected`` or ``none``: for the report and docs."""
    ping_timeout: float | None = None
    """Seconds the client has to answer a server ping, as the recording negotiated it
    (Engine.IO ``pingTimeout``); None: ``--heartbeat-timeout``."""
    client_limit: float | None = None
    """The longest the client may send nothing, as the recording negotiated it (MQTT keep
    alive, STOMP heart-beat, Engine.IO v3); None: no such limit."""
    negotiated: str = ""
    """What the recording negotiated, for findings (``MQTT keep alive 1 s``)."""

    def skipped(self, side: Side, key: MessageKey) -> bool:
        """Whether a recorded unit is played outside the ordered script."""
        if side is Side.CLIENT:
            return key in self.client_pings or key in self.client_pongs or key in self.client_beats
        return key in self.server_pings or key in self.server_beats or key in self.server_replies

    def timer(self, key: MessageKey) -> bool:
        """A server unit sent on the server's own clock."""
        return key in self.server_pings or key in self.server_beats

    def describe(self) -> list[str]:
        """One line per heartbeat, for the report (``client ping 'ping' => 'pong'``)."""

        def show(key: MessageKey) -> str:
            opcode, payload = key
            if opcode is Opcode.TEXT:
                try:
                    text = payload.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    return repr(text if len(text) <= 60 else text[:57] + "...")
            return "hex:" + payload[:30].hex()

        lines = [f"client ping {show(k)} => {show(v)}" for k, v in self.client_pings.items()]
        lines += [f"server ping {show(k)}" for k in sorted(self.server_pings)]
        lines += [f"client pong {show(k)}" for k in sorted(self.client_pongs)]
        lines += [f"client keep-alive {show(k)}" for k in sorted(self.client_beats)]
        lines += [f"server keep-alive {show(k)}" for k in sorted(self.server_beats)]
        return lines

    @property
    def empty(self) -> bool:
        return not (
            self.client_pings
            or self.client_pongs
            or self.client_beats
            or self.server_pings
            or self.server_beats
            or self.server_replies
        )


NO_HEARTBEATS = HeartbeatPlan()


# -- what a detected heartbeat looks like ---------------------------------------------------


def _keepalive_word(text: str) -> bool:
    """``ping``, ``Heartbeat``, ``keep-alive``, ``client_ping``, ``pusher:pong``."""
    if not text or len(text) > 40:
        return False
    parts = [p for p in _WORD_PARTS.split(_CAMEL.sub(r"\1 \2", text).lower()) if p]
    if not parts:
        return False
    return any(p in KEEPALIVE_WORDS for p in parts) or "".join(parts) in KEEPALIVE_WORDS


def _shaped_json(value: object) -> bool:
    if isinstance(value, str):
        return _keepalive_word(value)
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, list):
        if not value:
            return True
        return len(value) <= MAX_SHAPE_KEYS and any(
            isinstance(v, str) and _keepalive_word(v) for v in value
        )
    if isinstance(value, dict):
        if not value:
            return True
        if len(value) > MAX_SHAPE_KEYS:
            return False
        for key, v in value.items():
            if _keepalive_word(key):
                return True  # {"ping": 1700000000}, {"heartbeat": true}
            if key.lower() in TYPE_KEYS and isinstance(v, str) and _keepalive_word(v):
                return True  # {"type": "ping"}, {"op": "heartbeat", "seq": 4}
        return False
    return False


def heartbeat_shaped(opcode: Opcode, payload: bytes) -> bool:
    """Whether a unit looks like a heartbeat, for detection (never for declared or codec
    heartbeats): at most :data:`SHAPE_MAX_PAYLOAD` bytes and one of

    - empty, or whitespace only (STOMP's EOL, ``\\r\\n``);
    - a bare number (Engine.IO ``2`` / ``3``, a counter or a timestamp);
    - a keep-alive word (:data:`KEEPALIVE_WORDS`) as the whole text (``ping``,
      ``"pong"``, ``keep-alive``);
    - a JSON ``{}`` or ``[]``; an object of at most :data:`MAX_SHAPE_KEYS` members with a
      keep-alive word as a key (``{"ping": 1700000000}``) or as the value of a
      :data:`TYPE_KEYS` key (``{"type":"ping"}``, ``{"op":"heartbeat","seq":3}``); a
      short array with such a word in it (``["ping"]``);
    - binary: at most 2 bytes.

    A repeated request and its reply are data otherwise, however regular (a transfer
    request and ``{"status":"done"}``, an event the client sends four times).
    """
    if len(payload) > SHAPE_MAX_PAYLOAD:
        return False
    if opcode is not Opcode.TEXT:
        return len(payload) <= 2
    text = payload.strip()
    if not text or _NUMBER.fullmatch(text):
        return True
    if text[:1] in (b"{", b"[", b'"'):
        try:
            return _shaped_json(json.loads(text))
        except ValueError:
            return False
    try:
        return _keepalive_word(text.decode("utf-8"))
    except UnicodeDecodeError:
        return False


ACK_MAX_PAYLOAD = 64
"""Largest reply to a heartbeat-shaped ping that is taken as a bare acknowledgement."""
ACK_WORDS = frozenset({"ok", "ack", "success", "alive"})
ACK_KEYS = TYPE_KEYS | frozenset(
    {"status", "code", "ok", "success", "result", "ack", "errcode", "errmsg", "errno",
     "ret", "retcode", "rc", "msg", "id", "seq", "ref", "req_id", "reply_to", "ts", "time",
     "timestamp", "jsonrpc"}
)  # fmt: skip
"""Keys an acknowledgement is made of (``{"code":0}``, ``{"errcode":0,"errmsg":"ok"}``,
JSON-RPC's ``{"jsonrpc":"2.0","result":"pong","id":7}``)."""


def _ack_value(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= 16
    return value is None or isinstance(value, bool | int | float)


def ack_shaped(opcode: Opcode, payload: bytes) -> bool:
    """Whether the reply to a heartbeat-shaped ping is a bare acknowledgement, not data:
    heartbeat-shaped itself, or at most :data:`ACK_MAX_PAYLOAD` bytes of an
    :data:`ACK_WORDS` word or a JSON object of at most :data:`MAX_SHAPE_KEYS` scalar
    members, each under an :data:`ACK_KEYS` key (``{"status":"ok"}``, ``{"code":0}``). A
    ping answered with anything else (``{"balance":100}``, a list) asks for data: a
    request."""
    if heartbeat_shaped(opcode, payload):
        return True
    if opcode is not Opcode.TEXT or len(payload) > ACK_MAX_PAYLOAD:
        return False
    text = payload.strip()
    if text[:1] != b"{":
        return text.decode("latin-1").strip('"').lower() in ACK_WORDS
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if not isinstance(value, dict) or len(value) > MAX_SHAPE_KEYS:
        return False
    return all(
        isinstance(k, str) and k.lower() in ACK_KEYS and _ack_value(v) for k, v in value.items()
    )


# -- declared heartbeats -----------------------------------------------------------------


@dataclass(frozen=True)
class DeclaredHeartbeat:
    """One ``--heartbeat`` declaration."""

    side: Side
    """Who starts it."""
    unit: MessageKey
    reply: MessageKey | None = None


_ESCAPES = re.compile(r"\\(x[0-9a-fA-F]{2}|[nrt0\\])")


def _unit(text: str, spec: str) -> MessageKey:
    if text.startswith("hex:"):
        try:
            return (Opcode.BINARY, bytes.fromhex(text[4:]))
        except ValueError:
            raise ConfigError(f"{spec!r}: {text!r} is not hex", option="heartbeats") from None

    def escape(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] == "x":
            return chr(int(code[1:], 16))
        return {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\"}[code]

    return (Opcode.TEXT, _ESCAPES.sub(escape, text).encode("utf-8"))


def parse_heartbeat(spec: str) -> DeclaredHeartbeat:
    """``client:TEXT=>REPLY``, ``server:TEXT=>REPLY``, ``client:TEXT`` or ``server:TEXT``.

    TEXT and REPLY are text messages (``\\n``, ``\\t``, ``\\xHH`` escapes) or ``hex:...``
    binary ones. Raises ConfigError for anything else.
    """
    side_text, colon, rest = spec.partition(":")
    if not colon or side_text not in ("client", "server") or not rest:
        raise ConfigError(
            f"{spec!r}: expected client:TEXT=>REPLY, server:TEXT=>REPLY, client:TEXT or "
            "server:TEXT",
            option="heartbeats",
        )
    unit_text, arrow, reply_text = rest.partition("=>")
    if not unit_text or (arrow and not reply_text):
        raise ConfigError(f"{spec!r}: a heartbeat and its reply are not empty", option="heartbeats")
    return DeclaredHeartbeat(
        Side(side_text),
        _unit(unit_text, spec),
        _unit(reply_text, spec) if arrow else None,
    )


# -- deadlines the recording negotiated ---------------------------------------------------


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value > 0 and math.isfinite(value) else None


def _heart_beat(value: object) -> tuple[int, int] | None:
    """STOMP's ``heart-beat: x,y`` header (milliseconds)."""
    if not isinstance(value, str):
        return None
    x, comma, y = value.partition(",")
    try:
        return (int(x.strip()), int(y.strip())) if comma else None
    except ValueError:
        return None


@dataclass
class Negotiated:
    """The heartbeat parameters a connection's handshake units set (:meth:`see` each)."""

    ping_interval: float | None = None
    """Engine.IO, seconds."""
    ping_timeout: float | None = None
    keepalive: float | None = None
    """MQTT CONNECT keep alive, seconds (0: none)."""
    stomp_client: tuple[int, int] | None = None
    """STOMP CONNECT ``heart-beat`` (cx, cy), milliseconds."""
    stomp_server: tuple[int, int] | None = None
    """STOMP CONNECTED ``heart-beat`` (sx, sy)."""

    def see(self, codec: str, side: Side, kind: str, value: object) -> None:
        if not isinstance(value, dict):
            return
        if codec == "socketio" and side is Side.SERVER and kind == "open":
            data = value.get("data")
            if isinstance(data, dict) and self.ping_timeout is None:
                interval, timeout = (
                    _number(data.get("pingInterval")),
                    _number(data.get("pingTimeout")),
                )
                if timeout is not None:
                    self.ping_timeout = timeout / 1000
                    self.ping_interval = interval / 1000 if interval is not None else None
        elif codec == "mqtt" and side is Side.CLIENT and kind == "CONNECT":
            if self.keepalive is None:
                self.keepalive = _number(value.get("keepalive")) or 0.0
        elif codec == "stomp" and kind in ("CONNECT", "STOMP", "CONNECTED"):
            headers = value.get("headers")
            beat = _heart_beat(headers.get("heart-beat")) if isinstance(headers, dict) else None
            if side is Side.CLIENT and self.stomp_client is None:
                self.stomp_client = beat or (0, 0)
            elif side is Side.SERVER and kind == "CONNECTED" and self.stomp_server is None:
                self.stomp_server = beat or (0, 0)

    def client_limit(self, client_pings: bool) -> tuple[float | None, str]:
        """The longest the client may send nothing, and what says so."""
        if self.keepalive:
            return (
                MQTT_GRACE * self.keepalive,
                f"MQTT keep alive {self.keepalive:g} s (a broker disconnects a client silent "
                f"for {MQTT_GRACE:g} times that)",
            )
        if self.stomp_client is not None and self.stomp_server is not None:
            cx, sy = self.stomp_client[0], self.stomp_server[1]
            if cx > 0 and sy > 0:
                every = max(cx, sy) / 1000
                return (
                    STOMP_GRACE * every,
                    f"STOMP heart-beat: the client sends one every {every:g} s (CONNECT "
                    f"heart-beat:{cx},{self.stomp_client[1]}, CONNECTED "
                    f"heart-beat:{self.stomp_server[0]},{sy}); allowed {STOMP_GRACE:g} times that",
                )
        if client_pings and self.ping_timeout is not None and self.ping_interval is not None:
            limit = self.ping_interval + self.ping_timeout
            return (
                limit,
                f"Engine.IO pingInterval {self.ping_interval:g} s + pingTimeout "
                f"{self.ping_timeout:g} s (the server closes a client that has not pinged)",
            )
        return (None, "")


# -- analysis ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    side: Side
    count: int = 0
    last_t: float | None = None
    min_gap: float = math.inf
    max_gap: float = 0.0
    follower: MessageKey | None = None
    followed: int = 0
    consistent: bool = True
    max_delay: float = 0.0


class HeartbeatAnalysis:
    """Read one connection's units in order; :meth:`plan` says what its heartbeats are.

    ``codec`` (the connection's protocol, if any) is asked about every small unit;
    without one, and with ``detect``, the timing rules of the module docstring decide.
    Memory is bounded: only units up to :data:`MAX_PAYLOAD` bytes are looked at, and at
    most :data:`MAX_CANDIDATES` distinct ones are tracked.
    """

    def __init__(
        self,
        *,
        codec: Codec | None = None,
        declared: Sequence[DeclaredHeartbeat] = (),
        detect: bool = True,
    ) -> None:
        self.codec = codec
        self.declared = tuple(declared)
        self.detect = detect and codec is None and not declared
        self._candidates: dict[tuple[Side, Opcode, bytes], _Candidate] = {}
        self._pending: tuple[_Candidate, float] | None = None
        # codec heartbeats
        self._codec_roles: dict[tuple[Side, MessageKey], HeartbeatRole] = {}
        self._codec_ping_waiting: dict[str, MessageKey] = {}
        self._codec_replies: dict[MessageKey, MessageKey] = {}
        self._client_counts: dict[MessageKey, int] = {}
        self.negotiated = Negotiated()
        self._seen = 0

    def add(self, unit: Message) -> None:
        self._seen += 1
        if len(unit.payload) > MAX_PAYLOAD:
            if (
                self.codec is not None
                and self._seen <= NEGOTIATION_UNITS
                and len(unit.payload) <= NEGOTIATION_MAX_PAYLOAD
            ):
                self._decode(unit)  # a big CONNECT (a will, a password) still negotiates
            self._pending = None
            return
        key = (unit.opcode, unit.payload)
        if unit.side is Side.CLIENT:
            counts = self._client_counts
            if key in counts:
                counts[key] += 1
            elif len(counts) < MAX_CANDIDATES:
                counts[key] = 1
        if self.codec is not None:
            self._add_codec(unit, key)
        if self.detect:
            self._add_detect(unit, key)

    def _decode(self, unit: Message) -> Decoded | None:
        assert self.codec is not None
        decoded = self.codec.decode(unit.side, unit.opcode, unit.payload)
        if decoded is not None and self._seen <= NEGOTIATION_UNITS:
            self.negotiated.see(self.codec.name, unit.side, decoded.kind, decoded.value)
        return decoded

    def _add_codec(self, unit: Message, key: MessageKey) -> None:
        decoded = self._decode(unit)
        beat = decoded.heartbeat if decoded is not None else None
        if beat is None:
            return
        self._codec_roles.setdefault((unit.side, key), beat.role)
        if unit.side is Side.CLIENT and beat.role is HeartbeatRole.PING:
            self._codec_ping_waiting[beat.name] = key
        elif unit.side is Side.SERVER and beat.role is HeartbeatRole.PONG:
            ping = self._codec_ping_waiting.pop(beat.name, None)
            if ping is not None:
                self._codec_replies.setdefault(ping, key)

    def _add_detect(self, unit: Message, key: MessageKey) -> None:
        pending = self._pending
        if pending is not None:
            candidate, at = pending
            if candidate.side is not unit.side:
                delay = max(0.0, unit.t - at)
                candidate.max_delay = max(candidate.max_delay, delay)
                candidate.followed += 1
                if candidate.follower is None:
                    candidate.follower = key
                elif candidate.follower != key:
                    candidate.consistent = False
        full = (unit.side, *key)
        entry = self._candidates.get(full)
        if entry is None:
            if len(self._candidates) >= MAX_CANDIDATES:
                self._pending = None
                return
            entry = self._candidates[full] = _Candidate(unit.side)
        if entry.last_t is not None:
            gap = max(0.0, unit.t - entry.last_t)
            entry.min_gap = min(entry.min_gap, gap)
            entry.max_gap = max(entry.max_gap, gap)
        entry.last_t = unit.t
        entry.count += 1
        self._pending = (entry, unit.t)

    def client_count(self, plan: HeartbeatPlan) -> int:
        """How many of the client units seen are played outside the script by ``plan``."""
        return sum(n for key, n in self._client_counts.items() if plan.skipped(Side.CLIENT, key))

    def plan(self) -> HeartbeatPlan:
        if self.declared:
            return _declared_plan(self.declared)
        if self.codec is not None:
            return self._codec_plan()
        if self.detect:
            return self._detected_plan()
        return NO_HEARTBEATS

    def _codec_plan(self) -> HeartbeatPlan:
        assert self.codec is not None
        sets: dict[tuple[Side, HeartbeatRole], set[MessageKey]] = {}
        for (side, key), role in self._codec_roles.items():
            sets.setdefault((side, role), set()).add(key)

        def of(side: Side, role: HeartbeatRole) -> frozenset[MessageKey]:
            return frozenset(sets.get((side, role), ()))

        pings = of(Side.CLIENT, HeartbeatRole.PING)
        server_pings = of(Side.SERVER, HeartbeatRole.PING)
        negotiated = self.negotiated
        limit, why = negotiated.client_limit(bool(pings))
        ping_timeout = negotiated.ping_timeout if server_pings else None
        if ping_timeout is not None:
            why = why or f"Engine.IO pingTimeout {ping_timeout:g} s"
        client_pings = {k: self._codec_replies[k] for k in pings if k in self._codec_replies}
        client_beats = of(Side.CLIENT, HeartbeatRole.BEAT) | frozenset(
            k for k in pings if k not in self._codec_replies
        )  # (a client ping the recording never answered is just taken, like a keep-alive)
        known = {key for side, key in self._codec_roles if side is Side.CLIENT}
        for opcode, payload, reply in self.codec.client_heartbeats:
            # The protocol's own, though the recording has none: a client's timer may fire
            # where the recorder's did not.
            if (opcode, payload) in known:
                continue
            if reply is None:
                client_beats |= {(opcode, payload)}
            else:
                client_pings.setdefault((opcode, payload), reply)
        return HeartbeatPlan(
            client_pings=client_pings,
            client_pongs=of(Side.CLIENT, HeartbeatRole.PONG),
            client_beats=client_beats,
            server_pings=server_pings,
            server_beats=of(Side.SERVER, HeartbeatRole.BEAT),
            server_replies=of(Side.SERVER, HeartbeatRole.PONG),
            source=self.codec.name,
            ping_timeout=ping_timeout,
            client_limit=limit,
            negotiated=why,
        )

    def _detected_plan(self) -> HeartbeatPlan:
        client_pings: dict[MessageKey, MessageKey] = {}
        client_pongs: set[MessageKey] = set()
        client_beats: set[MessageKey] = set()
        server_pings: set[MessageKey] = set()
        server_beats: set[MessageKey] = set()
        server_replies: set[MessageKey] = set()
        for (side, opcode, payload), c in self._candidates.items():
            key = (opcode, payload)
            if not heartbeat_shaped(opcode, payload):
                continue  # repeated data is still data
            if _is_request(c, shaped_reply=False) and not _is_request(c):
                continue  # answered with data, every time: a request for it
            if _is_request(c):
                assert c.follower is not None
                if side is Side.CLIENT:
                    client_pings[key] = c.follower
                    server_replies.add(c.follower)
                else:
                    server_pings.add(key)
                    client_pongs.add(c.follower)
            elif _is_keepalive(c, payload):
                (client_beats if side is Side.CLIENT else server_beats).add(key)
        # A unit that is both (a server keep-alive the client answers) counts as a ping;
        # an answer to the other side's pings, sent as steadily as they come, is an answer.
        server_beats -= server_pings | server_replies
        client_beats -= client_pongs | set(client_pings)
        if not (client_pings or client_beats or server_pings or server_beats):
            return NO_HEARTBEATS
        return HeartbeatPlan(
            client_pings=client_pings,
            client_pongs=frozenset(client_pongs),
            client_beats=frozenset(client_beats),
            server_pings=frozenset(server_pings),
            server_beats=frozenset(server_beats),
            server_replies=frozenset(server_replies),
            source="detected",
        )


def _is_request(c: _Candidate, *, shaped_reply: bool = True) -> bool:
    if not c.consistent or c.follower is None or c.count < MIN_REPEATS:
        return False
    if shaped_reply and not ack_shaped(*c.follower):
        return False
    # Every time, except maybe the last (the recording can end between a ping and its pong).
    if c.followed < max(MIN_REPEATS, c.count - 1):
        return False
    return c.max_delay < REPLY_FRACTION * c.min_gap


def _is_keepalive(c: _Candidate, payload: bytes) -> bool:
    if c.count < KEEPALIVE_REPEATS or len(payload) > KEEPALIVE_MAX_PAYLOAD:
        return False
    if c.min_gap < MIN_KEEPALIVE_GAP or math.isinf(c.min_gap):
        return False
    return c.max_gap <= STEADY * c.min_gap


def _declared_plan(declared: Iterable[DeclaredHeartbeat]) -> HeartbeatPlan:
    client_pings: dict[MessageKey, MessageKey] = {}
    client_pongs: set[MessageKey] = set()
    client_beats: set[MessageKey] = set()
    server_pings: set[MessageKey] = set()
    server_beats: set[MessageKey] = set()
    server_replies: set[MessageKey] = set()
    for d in declared:
        if d.side is Side.CLIENT:
            if d.reply is None:
                client_beats.add(d.unit)
            else:
                client_pings[d.unit] = d.reply
                server_replies.add(d.reply)
        elif d.reply is None:
            server_beats.add(d.unit)
        else:
            server_pings.add(d.unit)
            client_pongs.add(d.reply)
    return HeartbeatPlan(
        client_pings=client_pings,
        client_pongs=frozenset(client_pongs),
        client_beats=frozenset(client_beats),
        server_pings=frozenset(server_pings),
        server_beats=frozenset(server_beats),
        server_replies=frozenset(server_replies),
        source="declared",
    )


__all__ = [
    "KEEPALIVE_WORDS",
    "NO_HEARTBEATS",
    "DeclaredHeartbeat",
    "HeartbeatAnalysis",
    "HeartbeatPlan",
    "MessageKey",
    "Negotiated",
    "ack_shaped",
    "heartbeat_shaped",
    "parse_heartbeat",
]
