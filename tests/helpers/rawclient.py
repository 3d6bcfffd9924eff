"""A raw-socket WebSocket client for what no library will send.

It writes exactly the bytes it is told: a POST upgrade, version 12, a 15-byte key,
duplicate subprotocols, frames before the 101, unmasked frames, a 1-byte Close body,
code 1005 on the wire, a 126-byte reason. Frames are built with
:func:`wstape.core.frames.encode_frame` and read back with its parser.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from dataclasses import dataclass

from wstape.core.frames import Frame, FrameParser, OpCode, StreamFailure, encode_frame

TIMEOUT = 5.0


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    """Lower-cased names; repeated headers joined with ", "."""
    body: bytes


def request_bytes(
    path: str = "/chat",
    *,
    host: str = "chat.example.com",
    method: str = "GET",
    version: str = "13",
    key: str | None = None,
    protocols: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
    http: str = "HTTP/1.1",
) -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"{method} {path} {http}",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        f"Sec-WebSocket-Version: {version}",
    ]
    if protocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {protocols}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = FrameParser()
        self._frames: list[Frame] = []

    @classmethod
    async def connect(
        cls,
        port: int,
        host: str = "127.0.0.1",
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ssl_context, server_hostname=server_hostname),
            TIMEOUT,
        )
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_answer(self) -> HttpAnswer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                key = name.strip().lower()
                headers[key] = (
                    f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
                )
        body = b""
        if status != 101 and "content-length" in headers:
            body = await asyncio.wait_for(
                self.reader.readexactly(int(headers["content-length"])), TIMEOUT
            )
        return HttpAnswer(status, headers, body)

    async def handshake(self, path: str = "/chat", **kw: object) -> HttpAnswer:
        await self.write(request_bytes(path, **kw))  # type: ignore[arg-type]
        return await self.read_answer()

    async def send(
        self,
        opcode: int,
        payload: bytes = b"",
        *,
        mask: bool = True,
        fin: bool = True,
        rsv1: bool = False,
    ) -> None:
        key = os.urandom(4) if mask else None
        await self.write(encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=key))

    async def send_text(self, text: str) -> None:
        await self.send(OpCode.TEXT, text.encode("utf-8"))

    async def send_close(self, body: bytes) -> None:
        await self.send(OpCode.CLOSE, body)

    async def recv(self, timeout: float = TIMEOUT) -> Frame | None:
        """The next frame, or None when the server hung up."""
        async with asyncio.timeout(timeout):
            while not self._frames:
                data = await self.reader.read(65536)
                if not data:
                    return None
                for item in self.parser.feed(data):
                    assert not isinstance(item, StreamFailure), item
                    self._frames.append(item)
        return self._frames.pop(0)

    async def recv_until_close(self, timeout: float = TIMEOUT) -> list[Frame]:
        """Frames up to and including a Close (or until the server hangs up)."""
        out: list[Frame] = []
        while True:
            frame = await self.recv(timeout)
            if frame is None:
                return out
            out.append(frame)
            if frame.opcode == OpCode.CLOSE:
                return out

    async def wait_closed(self, timeout: float = TIMEOUT) -> bool:
        """True once the server closed TCP (everything left unread is dropped)."""
        async with asyncio.timeout(timeout):
            while await self.reader.read(65536):
                pass
        return True

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)
        except (OSError, TimeoutError, ssl.SSLError):
            pass
