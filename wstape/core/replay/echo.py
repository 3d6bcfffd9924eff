"""Echo mode: a script that answers every client message with itself, for any path.

``wstape replay --echo`` serves no cassette. Every upgrade (any path) is accepted and its
connection plays an :class:`EchoScript`: each complete data message comes straight back
(text as text, binary as binary, reassembled from its fragments), and everything else
is what :class:`~wstape.core.replay.connection.LiveConnection` always does: Pings answered with
Pongs, the client's Close echoed (or answered with 1002 / 1007 when it is invalid), every
frame through the rules of the profile, the connection failed as RFC 6455 §7.1.7 says when
the client breaks the protocol; permessage-deflate is negotiated whenever it is offered.
That makes it the server Autobahn|Testsuite's ``fuzzingclient`` expects (docs/autobahn.md),
and an echo backend for smoke tests.

The report has one connection per client, numbered 1, 2, ... in the order they
connected; ``messages_expected`` and ``messages_matched`` both count the echoed messages.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace

from wstape.core.deflate import DEFAULT_PARAMS, offers_deflate
from wstape.core.model import Close, Headers, Message, Opcode, Open
from wstape.core.replay.connection import LiveConnection
from wstape.core.replay.options import PlayOptions
from wstape.core.replay.recorded import RecordedConnection
from wstape.core.replay.script import Action, Script, SendMessage
from wstape.core.replay.session import ReplaySession
from wstape.core.rules import RuleConfig, Violation

ECHO_CASSETTE = "(echo)"
"""What the report names as the cassette in echo mode."""

ECHO_SERVER_HEADER = (b"Server", b"wstape-echo")


def echo_open(req: Open, conn: int) -> Open:
    """The "recording" an echo connection plays: the live request, accepted.

    The first subprotocol the client offered is chosen (an echo server speaks anything),
    so clients that insist on one (browsers, ``wx.connectSocket`` with ``protocols``)
    connect; a permessage-deflate offer is accepted as websockets' own server would
    (:data:`~wstape.core.deflate.DEFAULT_PARAMS`, unless ``compression`` is ``off``).
    """
    headers: Headers = (ECHO_SERVER_HEADER,)
    if offers_deflate(req.extensions):
        headers += ((b"Sec-WebSocket-Extensions", DEFAULT_PARAMS.encode("ascii")),)
    return replace(
        req,
        conn=conn,
        status=101,
        reason="Switching Protocols",
        response_headers=headers,
        subprotocol=req.subprotocols[0] if req.subprotocols else None,
        body=b"",
    )


def _no_events(conn: int) -> Iterator[Message | Close]:
    return iter(())


class EchoScript(Script):
    """Send every complete client message back, unchanged; never ends by itself.

    The connection ends when the client closes (its Close is echoed), drops TCP, breaks
    the protocol, or the server stops (1001).
    """

    def __init__(
        self, recorded: RecordedConnection, cfg: RuleConfig, options: PlayOptions, now: float
    ) -> None:
        super().__init__(recorded, (), cfg, options, now)
        self.echoed = 0

    def on_message(self, opcode: Opcode, payload: bytes, now: float) -> list[Action]:
        self.echoed += 1
        self.matched += 1
        return [SendMessage(opcode, payload)]

    def poll(self, now: float) -> list[Action]:
        self.deadline = None
        return []

    def unplayed_messages(self) -> tuple[int, Message | None]:
        return 0, None

    @property
    def messages_expected(self) -> int:
        return self.echoed


class EchoSession(ReplaySession):
    """A replay session without a cassette: every upgrade is accepted and echoed.

    It never counts as "all played": an echo server runs until it is stopped.
    """

    serves_cassette = False

    def __init__(
        self,
        cfg: RuleConfig,
        options: PlayOptions,
        *,
        on_violation: Callable[[Violation], None] | None = None,
        on_log: Callable[[LiveConnection, str], None] | None = None,
    ) -> None:
        super().__init__([], _no_events, cfg, options, on_violation=on_violation, on_log=on_log)
        self._conn_ids = itertools.count(1)

    def select(self, req: Open) -> RecordedConnection | None:
        conn = next(self._conn_ids)
        return RecordedConnection(open=echo_open(req, conn))

    def claim(self, rec: RecordedConnection) -> None:
        pass  # nothing is used up: every path is served, any number of times

    def known_paths(self) -> list[str]:
        return []

    def new_script(self, rec: RecordedConnection, now: float, *, setup: int = 0) -> Script:
        return EchoScript(rec, self.cfg, self.options, now)

    def all_played(self) -> bool:
        return False


__all__ = ["ECHO_CASSETTE", "EchoScript", "EchoSession", "echo_open"]
