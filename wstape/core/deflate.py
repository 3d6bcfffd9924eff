"""permessage-deflate (RFC 7692) for the replay server, without I/O.

Two things live here. :func:`negotiate` decides, at the handshake, whether a connection
compresses and with which parameters: the recorded answer's ``Sec-WebSocket-Extensions``
where the live offer allows them (RFC 7692 §7.1), nothing when the client offers nothing,
the recording declined and ``compression`` is ``auto``, or ``compression`` is ``off``.
A :class:`Deflate` is then one connection's compression state: it inflates the client's
data frames (never more than a given budget, so a compression bomb costs at most
``--max-size`` bytes) and deflates ours.

The extension itself is websockets' sans-I/O one
(``websockets.extensions.permessage_deflate``: ``ServerPerMessageDeflateFactory`` for the
parameter tables of RFC 7692 §7.1, ``PerMessageDeflate`` for the zlib streams). It is
imported only when a client offers compression, so the rest of :mod:`wstape.core` does not
pay for it; websockets' extension and header modules do no I/O.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from wstape.core.frames import Frame, OpCode
from wstape.core.model import Headers
from wstape.core.rules.helpers import header_items

if TYPE_CHECKING:
    from websockets.extensions.permessage_deflate import PerMessageDeflate

EXTENSION = "permessage-deflate"
"""The one extension replay negotiates (RFC 7692 §7)."""

DEFAULT_PARAMS = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
"""What the server asks for when the recording says nothing (``--compression on`` over a
recording without compression, and ``--echo``): websockets' own server defaults (4 KiB
windows, a fraction of zlib's default memory per connection). ``client_max_window_bits``
only goes back to a client that offered it (RFC 7692 §7.1.2.2)."""

COMPRESS_SETTINGS = {"memLevel": 5}
"""zlib settings of our compressor (websockets' defaults: about 40 KiB per connection)."""


class Compression(StrEnum):
    """When replay negotiates permessage-deflate (``--compression``)."""

    AUTO = "auto"
    """When the client offers it and the recorded server accepted it."""
    ON = "on"
    """Whenever the client offers it (the recorded parameters if there are some)."""
    OFF = "off"
    """Never: the 101 carries no ``Sec-WebSocket-Extensions``."""


def compression_names() -> list[str]:
    return [c.value for c in Compression]


class DeflateError(Exception):
    """A compressed client message :class:`Deflate` cannot inflate (not an error of wstape:
    the caller turns it into a rule and fails the connection)."""


class TooBig(DeflateError):
    """The message inflates past the budget it was given (a compression bomb, or just
    a message over ``--max-size``)."""


class BadData(DeflateError):
    """The compressed data is not a DEFLATE stream (RFC 7692 §7.2.2)."""


@dataclass(frozen=True)
class Agreement:
    """What the handshake settled: the response header and the connection's codec."""

    header: str
    """The value of the 101's ``Sec-WebSocket-Extensions`` (``permessage-deflate; ...``)."""
    deflate: Deflate


def recorded_params(response_headers: Headers) -> str | None:
    """The permessage-deflate item a recorded 101 answered (its
    ``Sec-WebSocket-Extensions``), or None if the server declined; a redacted or
    malformed value counts as declined."""
    for item in header_items(response_headers, "Sec-WebSocket-Extensions"):
        if item.split(";", 1)[0].strip().lower() == EXTENSION:
            return item
    return None


def offers_deflate(offers: Sequence[str]) -> bool:
    """Whether one of the client's extension offers is permessage-deflate."""
    return any(o.split(";", 1)[0].strip().lower() == EXTENSION for o in offers)


def negotiate(offers: Sequence[str], recorded: str | None, mode: Compression) -> Agreement | None:
    """The permessage-deflate agreement for a client offering ``offers`` (the items of its
    ``Sec-WebSocket-Extensions`` headers), or None to decline.

    ``recorded`` is what the recorded server answered (:func:`recorded_params`; None: it
    declined). Under ``auto`` a recording that declined declines again. The recorded parameters
    are the server's configuration and the live offer is negotiated against them, offer
    by offer in the client's order, by RFC 7692 §7.1's rules (websockets'
    ``ServerPerMessageDeflateFactory``): so a recorded ``client_max_window_bits=10`` is
    sent only to a client that offered ``client_max_window_bits``. An offer no parameter
    set fits (``server_max_window_bits=8``, which zlib cannot honour, or a malformed
    offer) is skipped, as a server skips it.
    """
    if mode is Compression.OFF or not offers_deflate(offers):
        return None
    if recorded is None and mode is Compression.AUTO:
        return None
    from websockets.exceptions import InvalidHandshake
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.headers import build_extension_item, parse_extension

    try:
        config = _server_config(parse_extension(recorded or DEFAULT_PARAMS))
    except (InvalidHandshake, ValueError):
        config = _server_config(parse_extension(DEFAULT_PARAMS))
    factory = ServerPerMessageDeflateFactory(*config, compress_settings=dict(COMPRESS_SETTINGS))
    for offer in offers:
        try:
            parsed = parse_extension(offer)
        except InvalidHandshake:
            continue
        for name, params in parsed:
            if name != EXTENSION:
                continue
            try:
                response, extension = factory.process_request_params(params, [])
            except InvalidHandshake:
                continue
            return Agreement(build_extension_item(name, response), Deflate(extension))
    return None


def _server_config(
    parsed: Sequence[tuple[str, Sequence[tuple[str, str | None]]]],
) -> tuple[bool, bool, int | None, int | None]:
    """``ServerPerMessageDeflateFactory``'s configuration from a 101's parsed
    ``permessage-deflate`` item (RFC 7692 §7.1). Raises ValueError for anything else.

    A recorded ``server_max_window_bits=8`` becomes 9: zlib cannot compress with a
    256-byte window (websockets notes the zlib bug), and 9 still fits any client that
    did not ask for 8.
    """
    if not parsed or parsed[0][0] != EXTENSION:
        raise ValueError("not permessage-deflate")
    flags = {"server_no_context_takeover": False, "client_no_context_takeover": False}
    bits: dict[str, int | None] = {"server_max_window_bits": None, "client_max_window_bits": None}
    for name, value in parsed[0][1]:
        if name in flags and value is None:
            flags[name] = True
        elif name in bits and value is not None and value.isdigit() and 8 <= int(value) <= 15:
            bits[name] = int(value)
        else:
            raise ValueError(f"unusable parameter {name}={value}")
    server_bits = bits["server_max_window_bits"]
    return (
        flags["server_no_context_takeover"],
        flags["client_no_context_takeover"],
        9 if server_bits == 8 else server_bits,
        bits["client_max_window_bits"],
    )


MAX_RATIO = 1032
"""DEFLATE's largest expansion (bytes out per byte in, about 1032:1)."""
PROBE_FROM = 4 * 1024 * 1024
"""A frame that could inflate past this is first inflated on a copy, kept by no one."""
PROBE_CHUNK = 256 * 1024
_TAIL = b"\x00\x00\xff\xff"
"""What a receiver appends to each compressed message before it inflates it (RFC 7692
§7.2.2): after a final block it is left over, and is no data of the client's."""


class Deflate:
    """One connection's permessage-deflate state (two zlib streams, or none between
    messages with ``*_no_context_takeover``). Drop it when the connection ends: that
    frees the zlib memory.
    """

    __slots__ = (
        "_errors",
        "_ext",
        "_frame",
        "_history",
        "_kept",
        "_opcode",
        "_per_message",
        "_too_big",
    )

    def __init__(self, extension: PerMessageDeflate) -> None:
        from websockets.exceptions import PayloadTooBig, ProtocolError
        from websockets.frames import Frame as WsFrame
        from websockets.frames import Opcode

        self._ext = extension
        self._per_message = extension.remote_no_context_takeover
        """A new zlib stream for each client message (client_no_context_takeover): made
        here rather than by websockets, which drops the stream at the message's end before
        what follows a final block could be seen (:meth:`_after_final`)."""
        extension.remote_no_context_takeover = False
        self._history: deque[bytes] = deque()
        """The client's last inflated bytes, a window's worth (:meth:`_remember`)."""
        self._kept = 0
        self._frame = WsFrame
        self._opcode = Opcode
        self._too_big = PayloadTooBig
        self._errors = (PayloadTooBig, ProtocolError)

    def decode(self, frame: Frame, budget: int) -> bytes:
        """The payload of a client data frame, inflated if its message is compressed.

        At most ``budget`` bytes are produced (at least 1 is asked of zlib, so a message
        already at its limit fails on any more output). Raises :class:`TooBig` when the
        frame inflates past it, :class:`BadData` when it is not DEFLATE data. RSV1 is
        taken from a first frame only: on a continuation it is a rule the caller judged
        (RFC-FRAME-RSV), not a reason to decode differently.
        """
        first = frame.opcode != OpCode.CONTINUATION
        if first and frame.rsv1 and self._per_message:  # (client_no_context_takeover)
            import zlib

            self._ext.decoder = zlib.decompressobj(wbits=-self._ext.remote_max_window_bits)
        ws_frame = self._frame(
            self._opcode(frame.opcode), frame.payload, frame.fin, first and frame.rsv1
        )
        if len(frame.payload) * MAX_RATIO > PROBE_FROM and budget > PROBE_FROM:
            self._probe(frame, first, budget)
        try:
            data = self._ext.decode(ws_frame, max_size=max(budget, 1)).data
        except self._errors as e:
            if isinstance(e, self._too_big):
                raise TooBig(f"inflates past {budget} bytes") from None
            raise BadData(str(e)) from None
        out = data if isinstance(data, bytes) else bytes(data)
        ext = self._ext
        decoder = getattr(ext, "decoder", None)
        if decoder is None:
            return out  # (an uncompressed message)
        if decoder.eof:
            out += self._after_final(decoder, out, frame.fin, budget - len(out))
        self._remember(out)
        if frame.fin and self._per_message:
            del ext.decoder  # (its memory, until the next compressed message)
            self._history.clear()
            self._kept = 0
        return out

    def _remember(self, out: bytes) -> None:
        """Keep the last window of inflated bytes (as the pieces they came in: no copy),
        the dictionary of a stream that follows a final block."""
        if not out:
            return
        history = self._history
        history.append(out)
        self._kept += len(out)
        window = 1 << self._ext.remote_max_window_bits
        while len(history) > 1 and self._kept - len(history[0]) >= window:
            self._kept -= len(history.popleft())

    def _window(self, out: bytes) -> bytes:
        window = 1 << self._ext.remote_max_window_bits
        return (b"".join(self._history)[-window:] + out)[-window:]

    def _after_final(self, ended: Any, before: bytes, fin: bool, budget: int) -> bytes:
        """The client ended its DEFLATE stream with a BFINAL block, as RFC 7692 §7.2.3.4
        lets an endpoint flush: what follows (in this frame, in the message's next frames
        and in later messages) is a new stream, inflated with the last window of what came
        before as its dictionary (what zlib had kept aside, unread, is its start; ``before``
        is this frame's output so far). Data that is no DEFLATE stream is :class:`BadData`,
        as ever."""
        import zlib

        bits = self._ext.remote_max_window_bits
        out = b""
        rest = ended.unused_data
        while True:
            if fin and rest.endswith(_TAIL):
                rest = rest[: -len(_TAIL)]  # (the tail every message is given, §7.2.2)
            history = self._window(before + out)
            fresh = zlib.decompressobj(wbits=-bits, **({"zdict": history} if history else {}))
            self._ext.decoder = fresh
            if not rest:
                return out
            try:
                got = fresh.decompress(rest + (_TAIL if fin else b""), max(budget, 1))
            except zlib.error as e:
                raise BadData(f"data after a final DEFLATE block: {e}") from None
            if fresh.unconsumed_tail or (got and budget <= 0):
                raise TooBig(f"inflates past {len(before) + len(out) + budget} bytes")
            out += got
            budget -= len(got)
            if not fresh.eof:
                return out
            rest = fresh.unused_data

    def _probe(self, frame: Frame, first: bool, budget: int) -> None:
        """Raise :class:`TooBig` if a frame that could inflate far would inflate past
        ``budget``, found by inflating a copy of the zlib stream a chunk at a time and
        keeping none of it: a bomb costs a chunk of memory, not ``budget`` bytes (which
        websockets' decode would build before it saw the limit). A frame within its
        budget is then inflated for real (twice the CPU, for big compressed frames only).
        """
        import zlib

        ext = self._ext
        compressed = (first and frame.rsv1) or (not first and ext.decode_cont_data)
        if not compressed:
            return
        if first and self._per_message:
            probe = zlib.decompressobj(wbits=-ext.remote_max_window_bits)
        else:
            decoder = getattr(ext, "decoder", None)
            if decoder is None:
                return  # (websockets' decode makes its own: nothing to look ahead with)
            probe = decoder.copy()
        data = bytes(frame.payload) + (b"\x00\x00\xff\xff" if frame.fin else b"")
        produced = 0
        try:
            while data:
                produced += len(probe.decompress(data, PROBE_CHUNK))
                if produced > budget:
                    raise TooBig(f"inflates past {budget} bytes")
                data = probe.unconsumed_tail
        except zlib.error:
            return  # websockets' decode says so, as BadData

    def encode(self, opcode: int, payload: bytes, fin: bool) -> tuple[bytes, bool]:
        """One of our data frames, deflated: its payload and its RSV1 bit (set on the
        first frame of a message only, RFC 7692 §6)."""
        out = self._ext.encode(self._frame(self._opcode(opcode), payload, fin))
        data = out.data
        return (data if isinstance(data, bytes) else bytes(data)), out.rsv1


__all__ = [
    "COMPRESS_SETTINGS",
    "DEFAULT_PARAMS",
    "EXTENSION",
    "Agreement",
    "BadData",
    "Compression",
    "Deflate",
    "DeflateError",
    "TooBig",
    "compression_names",
    "negotiate",
    "offers_deflate",
    "recorded_params",
]
