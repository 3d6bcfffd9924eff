"""What the CLI tests share: a runner, and small cassettes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tests.helpers.records import make_open, write
from wstape.cli.app import app
from wstape.core.model import Close, Message, Opcode, Open, Side

DATA = Path(__file__).parent.parent / "data"
V1 = DATA / "cassette-v1.msgpack"
CHROME = DATA / "chrome-websocket.har"
runner = CliRunner()
SECRET = "sk-Ab12Cd34Ef56"


def invoke(*args: str | Path) -> object:
    return runner.invoke(app, [str(a) for a in args])


def ok(*args: str | Path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def opened(conn: int, target: str = "/chat", status: int = 101) -> Open:
    return make_open(
        conn,
        target,
        status=status,
        scheme="wss",
        host="chat.example.com",
        started_at=1_790_000_000.0 + conn,
        request_headers=((b"Host", b"chat.example.com"), (b"X-Token", SECRET.encode())),
    )


def secret_cassette(path: Path) -> None:
    write(
        path,
        [
            opened(1, f"/chat?key={SECRET}"),
            Message(1, 0.1, Side.CLIENT, Opcode.TEXT, f'{{"token":"{SECRET}","n":1}}'.encode()),
            Message(1, 0.2, Side.SERVER, Opcode.TEXT, f"your key is {SECRET}".encode()),
            Message(1, 0.3, Side.SERVER, Opcode.BINARY, b"\x00\x01" + SECRET.encode()),
            Close(1, 1.0, Side.CLIENT, 1000, "bye"),
            opened(2, "/feed"),
            Close(2, 2.0, Side.SERVER, 1006, "", False),
        ],
    )


def truncated(tmp_path: Path) -> Path:
    path = tmp_path / "cut.msgpack"
    path.write_bytes(V1.read_bytes()[:-5])
    return path
