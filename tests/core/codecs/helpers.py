"""Building records for codec tests."""

from __future__ import annotations

from wstape.core.model import Message, Opcode, Open, Side


def make_open(
    target: str = "/",
    subprotocols: tuple[str, ...] = (),
    subprotocol: str | None = None,
) -> Open:
    """An accepted upgrade as the recorder writes it."""
    return Open(
        conn=1,
        started_at=1_700_000_000.0,
        method="GET",
        scheme="ws",
        host="127.0.0.1",
        port=8080,
        target=target,
        http_version="HTTP/1.1",
        request_headers=((b"host", b"127.0.0.1:8080"), (b"upgrade", b"websocket")),
        status=101,
        response_headers=((b"upgrade", b"websocket"),),
        subprotocols=subprotocols,
        subprotocol=subprotocol,
    )


def msg(side: Side, payload: bytes | str, t: float = 0.0) -> Message:
    """A message: text for str, binary for bytes."""
    if isinstance(payload, str):
        return Message(1, t, side, Opcode.TEXT, payload.encode("utf-8"))
    return Message(1, t, side, Opcode.BINARY, payload)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a character a terminal would not print as itself."""
    return any(not (ch.isprintable() or ch == " ") for ch in text)
