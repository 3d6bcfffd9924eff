"""How a recording is played: one frozen value, validated when it is made."""

from __future__ import annotations

from dataclasses import dataclass

from wstape.core.errors import ConfigError
from wstape.core.frames import DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_FRAME_SIZE
from wstape.core.matchers import MATCHERS, matcher_names, parse_path


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "ignore_json_paths", tuple(self.ignore_json_paths))
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
        for name in ("speed", "ping_interval", "fragment_size", "handshake_delay"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be 0 or more, not {getattr(self, name)}", option=name)
        for name in ("timeout", "connect_timeout", "max_size", "max_fragments"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"must be positive, not {getattr(self, name)}", option=name)


__all__ = ["PlayOptions"]
