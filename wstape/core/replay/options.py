"""How a recording is played: one frozen value, validated when it is made."""

from __future__ import annotations

from dataclasses import dataclass

from wstape.core.codecs import CODECS
from wstape.core.deflate import Compression, compression_names
from wstape.core.errors import ConfigError
from wstape.core.frames import DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_FRAME_SIZE
from wstape.core.matchers import MATCHERS, matcher_names, parse_path
from wstape.core.replay.faults import Fault, FaultKind, parse_fault
from wstape.core.replay.heartbeats import DeclaredHeartbeat, parse_heartbeat


@dataclass(frozen=True)
class PlayOptions:
    """How recorded connections are played to live clients: the ``wstape replay``
    options that are not rules and not about the listening socket.

    Raises ConfigError (a ValueError) for an unknown matcher, a malformed ignore path or
    a negative number; the message names the field as the library spells it.
    """

    match: str = "exact"
    """``exact``, ``json``, ``type`` or ``any`` (see :mod:`wstape.core.matchers`)."""
    ignore_json_paths: tuple[str, ...] = ()
    speed: float = 1.0
    """1 = recorded timing, 2 = twice as fast, 0.5 = half as fast, 0 = no delays."""
    timeout: float = 10.0
    """Seconds to wait for an expected client message or Close."""
    ignore_query: bool = False
    """Select recorded connections by path only."""
    loop: bool = False
    """Replay recorded connections again once all of a path have been played."""
    ping_interval: float = 0.0
    """Send a Ping every this many seconds while open (0 = never)."""
    fragment_size: int = 0
    """Send server messages longer than this in fragments, with a Ping after the first
    fragment (0 = never fragment)."""
    max_size: int = DEFAULT_MAX_FRAME_SIZE
    """Largest client frame and reassembled message, in bytes (1009 above it)."""
    max_fragments: int = DEFAULT_MAX_FRAGMENTS
    """Most frames one client message may have (1009 above it)."""
    handshake_delay: float = 0.0
    """Hold the 101 back this many seconds, to see when the client gives up
    (WX-CONNECT-TIMEOUT); 0 = answer at once."""
    connect_timeout: float = 60.0
    """The handshake timeout the client promises (wx.connectSocket's ``timeout``, 60 s
    unless the app's ``networkTimeout.connectSocket`` says otherwise)."""
    protocol: str = "auto"
    """The application protocol (:mod:`wstape.core.codecs`): ``auto`` (recognised from the
    subprotocol, path and first messages), ``none``, or a codec name."""
    correlate: tuple[str, ...] = ()
    """JSON paths of values the client makes up each session (``$.requestId``): the live
    value replaces the recorded one in later server messages."""
    correlate_uuids: bool = True
    """Correlate every UUID-shaped string that differs between recording and client."""
    heartbeats: tuple[str, ...] = ()
    """Declared heartbeats (:func:`wstape.core.replay.heartbeats.parse_heartbeat`):
    ``client:TEXT=>REPLY``, ``server:TEXT=>REPLY``, ``client:TEXT``, ``server:TEXT``."""
    detect_heartbeats: bool = True
    """Find heartbeats from the codec and the recording's timing (False: only declared)."""
    heartbeat_timeout: float = 5.0
    """Seconds the client has to answer a server ping, and, with its own pings left
    unanswered (``mute-heartbeats``), to give up on the connection (the wx network guide:
    5 s after the unanswered ping)."""
    ignore_query_params: tuple[str, ...] = ()
    """Query parameters not compared when a client is matched to a recorded connection
    (the protocol's own session parameters, e.g. Engine.IO's ``t``, are added)."""
    faults: tuple[str, ...] = ()
    """Faults to inject (:func:`wstape.core.replay.faults.parse_fault`), e.g.
    ``drop@conn=1,after=3``, ``refuse@status=503,times=2``."""
    expect_reconnect: float = 10.0
    """After a fault that breaks the connection (drop, close, refuse, blackhole), the
    client reconnects within this many seconds (REPLAY-FAULT-NO-RECONNECT)."""
    reconnect_delay: float = 1.0
    """After a close with 1008, 1011 or 1013 ("try again later"), the client waits at
    least this long before it reconnects (REPLAY-RECONNECT-TOO-SOON)."""
    allow_partial: bool = False
    """A connection the client left before its recorded end (or a recorded connection no
    client opened) is a warning, not an error."""
    compression: str = "auto"
    """permessage-deflate (RFC 7692, :mod:`wstape.core.deflate`): ``auto`` negotiates it
    when the client offers it and the recorded server accepted it (with the recorded
    parameters the offer allows), ``on`` whenever the client offers it, ``off`` never."""

    def __post_init__(self) -> None:
        for name in (
            "ignore_json_paths",
            "correlate",
            "heartbeats",
            "ignore_query_params",
            "faults",
        ):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.protocol not in ("auto", "none") and self.protocol not in CODECS.names():
            raise ConfigError(
                f"unknown protocol {self.protocol!r}; choose one of {', '.join(protocol_names())}",
                option="protocol",
            )
        for path in self.correlate:
            try:
                parse_path(path)
            except ValueError as e:
                raise ConfigError(str(e), option="correlate") from None
        for spec in self.heartbeats:
            parse_heartbeat(spec)
        for spec in self.faults:
            parse_fault(spec)
        if self.compression not in compression_names():
            raise ConfigError(
                f"unknown compression {self.compression!r}; choose one of "
                f"{', '.join(compression_names())}",
                option="compression",
            )
        if self.match not in MATCHERS:
            raise ConfigError(
                f"unknown matcher {self.match!r}; choose one of {', '.join(matcher_names())}",
                option="match",
            )
        for path in self.ignore_json_paths:
            try:
                parse_path(path)
            except ValueError as e:
                raise ConfigError(str(e), option="ignore_json_paths") from None
        for name in (
            "speed",
            "ping_interval",
            "fragment_size",
            "handshake_delay",
            "heartbeat_timeout",
            "expect_reconnect",
            "reconnect_delay",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be 0 or more, not {getattr(self, name)}", option=name)
        for name in ("timeout", "connect_timeout", "max_size", "max_fragments"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be positive, not {getattr(self, name)}", option=name)

    @property
    def heartbeat_wait(self) -> float:
        """Seconds the client has to answer a server ping (0: ``timeout``)."""
        return self.heartbeat_timeout or self.timeout

    def fault_list(self) -> tuple[Fault, ...]:
        """The faults to inject: ``faults``, and the two options that are faults too
        (``handshake_delay`` is ``stall@for=S``, ``fragment_size`` is ``fragment@size=N``)."""
        out = [parse_fault(spec) for spec in self.faults]
        if self.handshake_delay > 0:
            out.append(
                Fault(
                    FaultKind.STALL,
                    f"stall@for={self.handshake_delay:g}s",
                    seconds=self.handshake_delay,
                )
            )
        if self.fragment_size > 0:
            out.append(
                Fault(
                    FaultKind.FRAGMENT,
                    f"fragment@size={self.fragment_size}",
                    size=self.fragment_size,
                )
            )
        return tuple(out)

    @property
    def compression_mode(self) -> Compression:
        return Compression(self.compression)

    def declared_heartbeats(self) -> tuple[DeclaredHeartbeat, ...]:
        return tuple(parse_heartbeat(spec) for spec in self.heartbeats)


def protocol_names() -> list[str]:
    """What ``--protocol`` takes: ``auto``, ``none`` and every codec's name."""
    return ["auto", "none", *CODECS.names()]


__all__ = ["PlayOptions", "protocol_names"]
