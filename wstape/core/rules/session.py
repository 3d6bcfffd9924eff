"""Rules over a whole session (several connections, timing) and the replay-only rules.

The replay-only builders (``unmatched_connection``, ``message_mismatch``, ...) decide
nothing themselves: the replay server knows when a client went silent or a path matched
nothing, and these turn that fact into a uniform :class:`Violation`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wstape.core.matchers import differences
from wstape.core.model import Message, Opcode, Side
from wstape.core.rules.catalogue import RuleConfig, Severity, Violation
from wstape.core.rules.helpers import Report, preview

WARN_SOCKETS = 2
"""Old WeChat DevTools and minigames allowed 2 sockets at once; more is a warning."""

RECONNECT_WINDOW = 2.0
RECONNECT_BURST = 3
"""More than this many reconnects within :data:`RECONNECT_WINDOW` seconds is a warning."""

WX_CONNECT_TIMEOUT = 60.0
"""wx.connectSocket's default timeout (app.json ``networkTimeout.connectSocket``), seconds."""

PAYLOAD_PREVIEW_BYTES = 4096
"""Payloads in replay violations are cut here, so a 1 MiB message does not bloat reports."""


def check_socket_limit(
    open_now: int, cfg: RuleConfig, conn: int | None = None, t: float | None = None
) -> list[Violation]:
    """WX-SOCKET-LIMIT: ``open_now`` connections of one client are open at once.

    Error above ``cfg.max_sockets`` (wx.connectSocket allows 5 since base library 1.7.0),
    warning above 2 (older DevTools and minigames).
    """
    if open_now <= WARN_SOCKETS and open_now <= cfg.max_sockets:
        return []  # (the common case: no report to make)
    report = Report(cfg, conn, t)
    if open_now > cfg.max_sockets:
        report.add(
            "WX-SOCKET-LIMIT",
            Severity.ERROR,
            f"{open_now} sockets open at once; expected at most {cfg.max_sockets} "
            "(wx.connectSocket fails beyond that)",
            expected=cfg.max_sockets,
            actual=open_now,
        )
    elif open_now > WARN_SOCKETS:
        report.add(
            "WX-SOCKET-LIMIT",
            Severity.WARN,
            f"{open_now} sockets open at once; expected at most {WARN_SOCKETS} for old "
            "DevTools and minigames",
            expected=WARN_SOCKETS,
            actual=open_now,
        )
    return report.items


def check_reconnects(
    times: Sequence[float], cfg: RuleConfig, conn: int | None = None
) -> list[Violation]:
    """RFC-RECONNECT-BACKOFF: reconnects after an abnormal close back off (§7.2.3).

    ``times`` are the connect times (seconds, any common origin) of the reconnects that
    followed an abnormal close. More than 3 of them inside any 2-second window is one
    warning, naming the busiest window.
    """
    report = Report(cfg, conn)
    ordered = sorted(times)
    worst, start = 0, 0
    worst_span = 0.0
    for end in range(len(ordered)):
        while ordered[end] - ordered[start] > RECONNECT_WINDOW:
            start += 1
        if end - start + 1 > worst:
            worst, worst_span = end - start + 1, ordered[end] - ordered[start]
    if worst > RECONNECT_BURST:
        report.add(
            "RFC-RECONNECT-BACKOFF",
            Severity.WARN,
            f"{worst} reconnects within {worst_span:.2f} s after an abnormal close; "
            f"expected delays that back off (at most {RECONNECT_BURST} within "
            f"{RECONNECT_WINDOW:g} s)",
            expected=RECONNECT_BURST,
            actual=worst,
        )
    return report.items


@dataclass
class ReconnectEpisode:
    """The connects of one client since its last abnormal close, for RFC-RECONNECT-BACKOFF.

    ``wstape check`` and the replay session keep one per client group while an episode
    runs. Memory is bounded: a burst is ``RECONNECT_BURST + 1`` connects, so only that
    many times are kept. The warning is given once per episode.
    """

    times: deque[float] = field(default_factory=lambda: deque(maxlen=RECONNECT_BURST + 1))
    reported: bool = False

    def reconnected(self, t: float, cfg: RuleConfig, conn: int | None = None) -> list[Violation]:
        """The client connected again at ``t`` (seconds, any origin common to the episode)."""
        self.times.append(t)
        recent = [x for x in self.times if t - x <= RECONNECT_WINDOW]
        if self.reported or len(recent) <= RECONNECT_BURST:
            return []
        found = check_reconnects(recent, cfg, conn)
        self.reported = bool(found)
        return found


def check_connect_timeout(
    delay: float,
    gave_up_after: float | None,
    cfg: RuleConfig,
    conn: int | None = None,
    *,
    timeout: float = WX_CONNECT_TIMEOUT,
    tolerance: float | None = None,
) -> list[Violation]:
    """WX-CONNECT-TIMEOUT: with the handshake held back ``delay`` seconds, the client
    gives up near its timeout.

    ``gave_up_after`` is when the client closed the TCP connection (seconds after it
    connected), or None if it never did. A client that waits far past ``timeout``, or
    gives up far before it, has a timeout other than the one its config promises.
    ``tolerance`` defaults to 10% of ``timeout`` (at least 2 s): timers are not exact.
    """
    report = Report(cfg, conn)
    slack = tolerance if tolerance is not None else max(2.0, 0.1 * timeout)
    gave_up = gave_up_after is not None and gave_up_after < delay
    if gave_up and gave_up_after is not None and abs(gave_up_after - timeout) > slack:
        report.add(
            "WX-CONNECT-TIMEOUT",
            Severity.WARN,
            f"client gave up on the handshake after {gave_up_after:.1f} s; expected about "
            f"{timeout:g} s (its connectSocket timeout)",
            expected=timeout,
            actual=round(gave_up_after, 3),
        )
    elif not gave_up and delay > timeout + slack:
        report.add(
            "WX-CONNECT-TIMEOUT",
            Severity.WARN,
            f"client waited {delay:.1f} s for the handshake; expected it to give up after "
            f"about {timeout:g} s",
            expected=timeout,
            actual=delay,
        )
    return report.items


def message_json(opcode: Opcode, payload: bytes) -> dict[str, object]:
    """A message as report data: opcode, size and the payload (cut to a preview).

    A binary payload is given as hex (``"payload_hex"``): bytes that happen to be valid
    UTF-8 would otherwise show up in a report as control characters.
    """
    data: dict[str, object] = {"opcode": opcode.value, "size": len(payload)}
    shown = payload[:PAYLOAD_PREVIEW_BYTES]
    if opcode is Opcode.BINARY:
        data["payload_hex"] = shown.hex()
    else:
        data["payload"] = shown
    if len(payload) > PAYLOAD_PREVIEW_BYTES:
        data["truncated"] = True
    return data


def unmatched_connection(
    path: str, cfg: RuleConfig, conn: int | None = None, *, known_paths: Sequence[str] = ()
) -> list[Violation]:
    """REPLAY-UNMATCHED-CONNECTION: no unplayed recorded connection has this path."""
    report = Report(cfg, conn)
    known = sorted(set(known_paths))
    listing = f" (recorded: {', '.join(known)})" if known else ""
    report.add(
        "REPLAY-UNMATCHED-CONNECTION",
        Severity.ERROR,
        f"client connected to {path}; expected a recorded path{listing}",
        expected=known,
        actual=path,
    )
    return report.items


def protocol_misfit(conn: int, why: str, cfg: RuleConfig) -> list[Violation]:
    """REPLAY-PROTOCOL-MISFIT: ``--protocol`` named a codec the connection does not
    speak (``why``: :meth:`~wstape.core.codecs.CodecRegistry.misfit`)."""
    report = Report(cfg, conn)
    report.add("REPLAY-PROTOCOL-MISFIT", Severity.WARN, why)
    return report.items


def _params(query: str) -> dict[str, str]:
    return dict(part.partition("=")[::2] for part in query.split("&") if part)


POLLING_UPGRADE_NOTE = (
    "Engine.IO upgraded this connection from HTTP long-polling (sid= in its URL): the "
    "polling part (the Engine.IO open packet, the Socket.IO connect and the first messages) "
    "is not in the cassette, so a replay cannot serve it; record the Socket.IO client with "
    "transports=['websocket']"
)
"""The recorder's note on such a connection (and its warning line)."""


def polling_upgrade(query: str) -> bool:
    """An Engine.IO WebSocket opened by upgrading a long-polling session (``EIO`` and a
    ``sid`` in the query): what came before it went over plain HTTP."""
    params = _params(query)
    return "EIO" in params and bool(params.get("sid")) and params.get("transport") == "websocket"


def not_a_websocket_request(
    method: str, target: str, query: str, cfg: RuleConfig
) -> list[Violation]:
    """REPLAY-UNMATCHED-CONNECTION for a plain HTTP request (no Upgrade, no
    Sec-WebSocket-Key): not a malformed upgrade but another transport, which a WebSocket
    replay cannot serve. Engine.IO's HTTP long-polling (Socket.IO's default first
    transport) is named, with what to change in the client."""
    report = Report(cfg, None)
    params = _params(query)
    if "EIO" in params and params.get("transport") == "polling":
        hint = (
            "; it is Engine.IO's HTTP long-polling, which wstape does not replay: connect "
            "the Socket.IO client with transports=['websocket'] (and record it that way)"
        )
    else:
        hint = "; wstape replays WebSocket connections only"
    report.add(
        "REPLAY-UNMATCHED-CONNECTION",
        Severity.ERROR,
        f"client sent a plain HTTP {method} {target}, not a WebSocket upgrade (no Upgrade "
        f"or Sec-WebSocket-Key header){hint}",
        expected="a WebSocket upgrade",
        actual=f"{method} {target}",
    )
    return report.items


def message_mismatch(
    conn: int | None,
    expected: Message,
    actual_opcode: Opcode,
    actual_payload: bytes,
    diff: str,
    cfg: RuleConfig,
    t: float | None = None,
    *,
    verdicts: Mapping[str, bool] | None = None,
    decoded: tuple[str, str] | None = None,
) -> list[Violation]:
    """REPLAY-MESSAGE-MISMATCH: a client message failed the matcher.

    ``diff`` is the matcher's explanation (:func:`wstape.core.matchers.match`); its first
    line goes into the message, all of it into ``actual["diff"]`` for reports.
    ``decoded`` is the protocol's one-line view of the recorded and the live unit (as
    ``wstape show`` prints them), given when the diff is only of the bytes
    (:attr:`~wstape.core.matchers.MatchResult.of_bytes`): when they differ, the message
    names them instead.
    ``verdicts`` (VCR.py style) is every registered matcher's verdict on the same pair:
    it goes into ``actual["matchers"]``, and the message names the looser matchers that
    would have accepted the message (``any`` and ``type`` left out: they accept nearly
    everything).
    """
    report = Report(cfg, conn, t)
    lines = diff.strip().splitlines()
    if decoded is not None and decoded[0] != decoded[1]:
        first = f"expected {decoded[0]}, got {decoded[1]}"
    elif not lines:
        first = "payload differs"
    elif lines[0].startswith("--- "):
        # A unified text diff: its header says nothing; show both payloads instead.
        first = f"expected {preview(expected.payload)}, got {preview(actual_payload)}"
    else:
        first = lines[0]
        more = differences(lines) - 1
        if more:
            first += f" (and {more} more difference{'s' if more > 1 else ''})"
    actual = message_json(actual_opcode, actual_payload)
    actual["diff"] = diff
    hint = ""
    if verdicts:
        actual["matchers"] = {name: "match" if ok else "differs" for name, ok in verdicts.items()}
        looser = [name for name, ok in verdicts.items() if ok and name not in ("any", "type")]
        if looser:
            plural = "s" if len(looser) > 1 else ""
            hint = f" (the {', '.join(looser)} matcher{plural} would accept it)"
    report.add(
        "REPLAY-MESSAGE-MISMATCH",
        Severity.ERROR,
        f"client {actual_opcode.value} message differs from the recorded "
        f"{expected.opcode.value} message at t={expected.t:.3f}s: {first}{hint}",
        expected=message_json(expected.opcode, expected.payload),
        actual=actual,
    )
    return report.items


def client_silent(
    conn: int | None,
    expected: Message,
    timeout: float,
    cfg: RuleConfig,
    t: float | None = None,
    unfinished: tuple[int, int] | None = None,
    decoded: str | None = None,
    heartbeats: int = 0,
    recorded_gap: float | None = None,
) -> list[Violation]:
    """REPLAY-CLIENT-SILENT: the client did not send the next recorded message in time
    (``unfinished``: it began one, of these frames and bytes, and sent no final frame);
    ``decoded``: that message as its protocol decodes it; ``heartbeats``: how many the
    client sent meanwhile (it was alive, not silent); ``recorded_gap``: the recording's
    wait for that message, when longer than the replay's (a timer of the client's own)."""
    report = Report(cfg, conn, t)
    shown = decoded or f"{expected.opcode.value} message {preview(expected.payload)}"
    want = f"expected its {shown}"
    if recorded_gap is not None:
        want += (
            f", which the recording has {recorded_gap:.1f} s after the client's previous "
            "message: if the client waits on a timer of its own, raise --timeout above "
            "that or replay at --speed 1"
        )
    if unfinished is None and heartbeats:
        text = f"client sent only heartbeats ({heartbeats}) within {timeout:g} s; {want}"
    elif unfinished is None:
        text = f"client sent nothing within {timeout:g} s; {want}"
    else:
        frames, size = unfinished
        text = (
            f"client left a message unfinished: {frames} frame{'s' if frames != 1 else ''} "
            f"({size:,} bytes) and no final frame within {timeout:g} s; {want}"
        )
    report.add(
        "REPLAY-CLIENT-SILENT",
        Severity.ERROR,
        text,
        expected=message_json(expected.opcode, expected.payload),
        actual=(
            {"frames": unfinished[0], "bytes": unfinished[1]}
            if unfinished is not None
            else {"heartbeats": heartbeats}
            if heartbeats
            else None
        ),
    )
    return report.items


def client_stalled(
    conn: int | None, seconds: float, buffered: int, cfg: RuleConfig, t: float | None = None
) -> list[Violation]:
    """REPLAY-CLIENT-STALLED: the client read nothing for ``seconds`` while ``buffered``
    bytes waited in the server's full send buffer."""
    report = Report(cfg, conn, t)
    report.add(
        "REPLAY-CLIENT-STALLED",
        Severity.ERROR,
        f"client read nothing for {seconds:g} s with {buffered} bytes waiting to be sent; "
        "expected it to read what the server sends (the connection was dropped)",
        expected="reading",
        actual={"seconds": seconds, "buffered": buffered},
    )
    return report.items


def unplayed(
    conn: int | None,
    what: str,
    cfg: RuleConfig,
    *,
    allow_partial: bool = False,
    first: Message | None = None,
    decoded: str | None = None,
) -> list[Violation]:
    """REPLAY-UNPLAYED: part of the recording was never reached.

    ``what`` names it, e.g. ``"connection 3 (/chat)"`` or ``"4 recorded messages"`` (the
    ``expected`` value), and ``first`` the first recorded message of it (then shown, as
    its protocol decodes it when ``decoded`` is given, and the ``expected`` value as a
    mismatch gives it). An
    error, so the exit code alone tells whether the client did what the recording did;
    a warning with ``allow_partial`` (``--allow-partial``).
    """
    report = Report(cfg, conn)
    where = ""
    if first is not None:
        whose = "client's" if first.side is Side.CLIENT else "server's"
        shown = decoded or f"{first.opcode.value} message {preview(first.payload)}"
        where = f", from the {whose} {shown} at {first.t:g} s"
    report.add(
        "REPLAY-UNPLAYED",
        Severity.WARN if allow_partial else Severity.ERROR,
        f"{what} never reached{where}; expected the client to play the whole recording",
        expected=what if first is None else message_json(first.opcode, first.payload),
        actual=None,
    )
    return report.items


def no_client(recorded: int, cfg: RuleConfig) -> list[Violation]:
    """REPLAY-UNPLAYED: no client connected during the whole run (an error always), or
    the cassette had no connection to play (the run ends before one could)."""
    report = Report(cfg, None)
    what = f"{recorded} recorded connection{'s' if recorded != 1 else ''}"
    if recorded:
        message = f"no client connected during the run ({what} waiting)"
    else:
        message = "the cassette holds no recorded connection, so no client could play one"
    report.add(
        "REPLAY-UNPLAYED",
        Severity.ERROR,
        f"{message}; a replay nobody used proves nothing",
        expected=what,
        actual=0,
    )
    return report.items


def heartbeat_unanswered(
    conn: int | None, timeout: float, cfg: RuleConfig, t: float | None = None
) -> list[Violation]:
    """REPLAY-HEARTBEAT-UNANSWERED: a server ping went unanswered for ``timeout`` s."""
    report = Report(cfg, conn, t)
    report.add(
        "REPLAY-HEARTBEAT-UNANSWERED",
        Severity.ERROR,
        f"client did not answer the server's heartbeat ping within {timeout:g} s; a real "
        "server drops such a client",
        expected="an answer to each server ping",
        actual=None,
    )
    return report.items


def send_type(
    conn: int | None,
    expected: Message,
    actual_opcode: Opcode,
    cfg: RuleConfig,
    t: float | None = None,
) -> list[Violation]:
    """WX-SEND-TYPE: the client sent text where binary was recorded, or the reverse.

    ``SocketTask.send({data})`` sends text for a string and binary for an ArrayBuffer, so
    a changed type means the client code changed what it passes.
    """
    report = Report(cfg, conn, t)
    if actual_opcode is not expected.opcode:
        report.add(
            "WX-SEND-TYPE",
            Severity.ERROR,
            f"client sent a {actual_opcode.value} message where the recording has "
            f"{expected.opcode.value}; send({{data: string}}) gives text, an ArrayBuffer "
            "binary",
            expected=expected.opcode.value,
            actual=actual_opcode.value,
        )
    return report.items


__all__ = [
    "PAYLOAD_PREVIEW_BYTES",
    "RECONNECT_BURST",
    "RECONNECT_WINDOW",
    "WARN_SOCKETS",
    "WX_CONNECT_TIMEOUT",
    "ReconnectEpisode",
    "check_connect_timeout",
    "check_reconnects",
    "check_socket_limit",
    "client_silent",
    "client_stalled",
    "message_json",
    "message_mismatch",
    "send_type",
    "unmatched_connection",
    "unplayed",
]


# -- the client's reaction to faults (issue 13; docs/faults.md) ---------------------------


def heartbeat_dead(
    conn: int | None, timeout: float, sent: int, cfg: RuleConfig, t: float | None = None
) -> list[Violation]:
    """REPLAY-HEARTBEAT-DEAD: with its heartbeat unanswered, the client kept the
    connection open past ``timeout`` s (and sent ``sent`` messages into it)."""
    report = Report(cfg, conn, t)
    more = f", and sent {sent} message{'s' if sent != 1 else ''} into it" if sent else ""
    report.add(
        "REPLAY-HEARTBEAT-DEAD",
        Severity.ERROR,
        f"client kept the connection open {timeout:g} s after its heartbeat went unanswered"
        f"{more}; expected it to close or reconnect (wx network guide: give up 5 s after "
        "an unanswered ping)",
        expected=f"close or reconnect within {timeout:g} s",
        actual={"open": True, "messages_sent_after": sent},
    )
    return report.items


def no_reconnect(
    conn: int | None,
    fault: str,
    seconds: float,
    cfg: RuleConfig,
    *,
    stopped: bool = False,
    did: str = "",
) -> list[Violation]:
    """REPLAY-FAULT-NO-RECONNECT: after ``fault`` broke the connection (the server ``did``
    it: "refused the upgrade with 503"), no reconnect within ``seconds`` (or before the
    server stopped)."""
    report = Report(cfg, conn)
    when = "before the server stopped" if stopped else f"within {seconds:g} s"
    why = f"after the server {did}" if did else "after a drop or an abnormal close"
    report.add(
        "REPLAY-FAULT-NO-RECONNECT",
        Severity.ERROR,
        f"client did not reconnect {when} after the fault {fault!r}; expected it to "
        f"reconnect {why} (onSocketClose -> connectSocket)",
        expected=f"a reconnect within {seconds:g} s",
        actual=None,
    )
    return report.items


def reconnect_too_soon(
    conn: int | None, code: int, after: float, wait: float, cfg: RuleConfig
) -> list[Violation]:
    """REPLAY-RECONNECT-TOO-SOON: a reconnect ``after`` s after a close with ``code``
    (1008, 1011, 1013) that asks the client to wait (``wait`` s at least)."""
    report = Report(cfg, conn)
    report.add(
        "REPLAY-RECONNECT-TOO-SOON",
        Severity.ERROR,
        f"client reconnected {after:.3f} s after the server closed with {code}; expected "
        f"it to wait at least {wait:g} s (1013 means try again later; 1008 and 1011 will "
        "not get better at once)",
        expected=f">= {wait:g} s",
        actual=round(after, 3),
    )
    return report.items


def reconnect_setup(
    conn: int | None,
    expected: Message,
    opcode: Opcode | None,
    payload: bytes | None,
    cfg: RuleConfig,
    t: float | None = None,
) -> list[Violation]:
    """REPLAY-RECONNECT-SETUP: after a reconnect, the client did not repeat the recorded
    setup (its authentication, its subscriptions: what it had sent on the broken
    connection before the fault); ``payload`` None: it sent nothing in its place."""
    report = Report(cfg, conn, t)
    sent = f"sent {preview(payload)}" if payload is not None else "sent nothing"
    actual = message_json(opcode, payload) if opcode is not None and payload is not None else None
    report.add(
        "REPLAY-RECONNECT-SETUP",
        Severity.ERROR,
        f"after the reconnect the client {sent} where the recording has "
        f"{preview(expected.payload)}; expected it to repeat its setup (auth, subscribe) "
        "before anything else",
        expected=message_json(expected.opcode, expected.payload),
        actual=actual,
    )
    return report.items
