"""The fast paths of ``ls`` and ``stats``'s human output agree with the code they
stand in for: the long table's rows, ``text_row``, ``_human_bytes``, ``_close_text``
(each against its slow path, on ordinary, unusual and hostile values)."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console

from wstape.cli import inspect, output
from wstape.cli.output import Column, _fold, safe
from wstape.core.model import Close, ConnectionSummary, Open, Side

HOSTILE_CELLS = [
    "",
    "-",
    "7",
    "wss://bench.example.com/socket?session=1",
    "by client: 1000 (normal closure)",
    "by server: 4000 (application) " + "x" * 70,
    "ws://h/\x1b]0;PWNED\x07",
    "\x1b]0;PWNED\x07",
    "\u202eevil\u202c",
    "聊天室 wide 😀",
    "a\tb\nc\rd",
    "\x00\x7f\x85\x9f",
    "\u2028 line \u2029",
    "é" * 50,
    "word " * 40,
    "   leading and trailing   ",
    "{curly} {0} {:>5}",
    "y" * 5000,
    "\ud800",
    "\x1f separator",
]


def _old_long_table(
    out: Console,
    title: str,
    columns: Sequence[Column],
    kept: list[int],
    whole: list[bool],
    body: Sequence[Sequence[str]],
    tail: list[list[str]],
    natural: list[int],
    escaped: bool,
) -> None:
    """The table rich would draw (same box, same columns), written a row at a time: whole
    columns as wide as their longest cell (``natural``, in terminal cells), the others
    sharing what is left and folding. ``escaped``: the body's cells are safe already (else
    made safe here, as they are drawn)."""
    widths = list(natural)
    spare = out.width - 1 - sum(w + 3 for w in widths)
    folding = [n for n, i in enumerate(kept) if not whole[i]]
    if spare < 0 and folding:
        for n in sorted(folding, key=lambda n: -natural[n]):
            cut = min(-spare, widths[n] - max(columns[n].min_width, 1))
            if cut > 0:
                widths[n] -= cut
                spare += cut
            if spare >= 0:
                break

    def line(left: str, fill: str, cross: str, right: str) -> str:
        return left + cross.join(fill * (w + 2) for w in widths) + right + "\n"

    memo: dict[tuple[str, int], list[str]] = {}
    """Cells already folded (a column such as ``close`` repeats a few texts)."""

    def fold(text: str, width: int) -> list[str]:
        if len(text) <= width and text.isascii():
            return [text]
        got = memo.get((text, width))
        if got is None:
            if len(memo) >= 4096:
                memo.clear()
            got = memo[text, width] = _fold(text, width)
        return got

    blanks = [" " * w for w in widths]

    def padded(piece: str, width: int, how: str) -> str:
        if piece.isascii():
            return piece.rjust(width) if how == "right" else piece.ljust(width)
        pad = " " * (width - cell_len(piece))
        return pad + piece if how == "right" else piece + pad

    def cells(values: Sequence[str], justify: Sequence[str]) -> str:
        folded = [fold(v, w) for v, w in zip(values, widths, strict=True)]
        columns = range(len(folded))
        text = []
        for k in range(max(map(len, folded))):
            parts = [
                padded(folded[n][k], widths[n], justify[n]) if k < len(folded[n]) else blanks[n]
                for n in columns
            ]
            text.append("│ " + " │ ".join(parts) + " │\n")
        return "".join(text)

    write = out.file.write
    justify = [col.justify for col in columns]
    write(safe(title) + "\n")
    write(line("┏", "━", "┳", "┓"))
    write(cells([col.name for col in columns], justify).replace("│", "┃"))
    write(line("┡", "━", "╇", "┩"))
    chunk: list[str] = []
    for row in body:
        chunk.append(cells([row[i] if escaped else safe(row[i]) for i in kept], justify))
        if len(chunk) >= 256:
            write("".join(chunk))
            chunk.clear()
    write("".join(chunk))
    if tail:
        write(line("├", "─", "┼", "┤"))
        for row in tail:
            write(cells([row[i] for i in kept], justify))
    write(line("└", "─", "┴", "┘"))


def _drawn(
    monkeypatch: pytest.MonkeyPatch,
    rows: Sequence[Sequence[str]],
    columns: Sequence[Column],
    width: int,
    *,
    old: bool,
    footer: Sequence[Sequence[str]] = (),
) -> str:
    monkeypatch.setattr(output, "RICH_ROWS", 0)
    if old:
        monkeypatch.setattr(output, "_print_long_table", _old_long_table)
    else:
        monkeypatch.undo()
        monkeypatch.setattr(output, "RICH_ROWS", 0)
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, color_system=None)
    output.print_table(console, "t\x1b", columns, rows, footer)
    return out.getvalue()


COLUMNS = (
    Column("id", keep=9, whole=True, justify="right"),
    Column("url", keep=8, whole=True),
    Column("subprotocol", keep=2),
    Column("msgs c→s / s→c", keep=5, whole=True),
    Column("duration", keep=3, whole=True, justify="right"),
    Column("middle", keep=2, justify="center"),
    Column("close", keep=6, min_width=14),
)


def _rows(seed: int, n: int) -> list[tuple[str, ...]]:
    r = random.Random(seed)
    return [
        tuple(
            r.choice(HOSTILE_CELLS) if r.random() < 0.4 else r.choice(HOSTILE_CELLS[:6])
            for _ in COLUMNS
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize("width", [21, 40, 80, 120, 200, 5000])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("as_text", [False, True])
def test_the_long_table_draws_every_row_as_before(
    monkeypatch: pytest.MonkeyPatch, width: int, seed: int, as_text: bool
) -> None:
    rows = _rows(seed, 60)
    footer = [("total", "", "9 / 9", "", "1.000s", "", "")]
    table: Sequence[Sequence[str]] = (
        output.TextRows([output.text_row(row) for row in rows]) if as_text else rows
    )
    before = _drawn(monkeypatch, table, COLUMNS, width, old=True, footer=footer)
    assert _drawn(monkeypatch, table, COLUMNS, width, old=False, footer=footer) == before


def test_the_long_table_memo_is_bounded_and_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    # More distinct folded cells than the memo holds (it is cleared, then refilled).
    rows = [(str(i), f"closed with a long reason number {i} " * 2) for i in range(5000)]
    columns = (Column("id", whole=True, justify="right"), Column("close", min_width=14))
    before = _drawn(monkeypatch, rows, columns, 40, old=True)
    assert _drawn(monkeypatch, rows, columns, 40, old=False) == before


def _slow_text_row(cells: Sequence[str]) -> str:
    return output._CELL_SEP.join(map(safe, cells))


@pytest.mark.parametrize("seed", range(5))
def test_text_row_agrees_with_escaping_every_cell(seed: int) -> None:
    r = random.Random(seed)
    for _ in range(200):
        cells = [r.choice(HOSTILE_CELLS) for _ in range(r.randint(0, 8))]
        assert output.text_row(cells) == _slow_text_row(cells)


def _slow_human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def test_human_bytes_agrees_with_the_loop() -> None:
    values = [*range(-3, 5000), 1023, 1024, 1025, 2**20, 2**30 - 1, 2**30, 2**40, 10**15]
    for n in values:
        assert inspect._human_bytes(n) == _slow_human_bytes(n), n


def _open(status: int = 101) -> Open:
    return Open(1, 1.0, "GET", "ws", "h", 80, "/", "HTTP/1.1", (), status, ())


def _slow_close_text(s: ConnectionSummary) -> str:
    if not s.open.accepted:
        return f"refused {s.open.status}"
    c = s.close
    if c is None:
        return "(no close record)"
    if c.by is None:
        return "recording stopped"
    if c.code is None:
        return f"by {c.by.value}"
    n = inspect.LS_REASON_CHARS
    reason = c.reason if len(c.reason) <= n else c.reason[:n] + "…"
    return f"by {c.by.value}: {inspect.describe(c.code, reason)}"


def test_close_text_agrees_and_its_cache_is_bounded() -> None:
    closes: list[Close | None] = [None]
    for by in (Side.CLIENT, Side.SERVER, None):
        for code in (1000, 1005, 1006, 2999, 3000, 4999, 5000, None, True, 0, -1, 10**20):
            for reason in ("", "bye", "x" * 24, "x" * 25, "日本語" * 20, "\x1b[2J\n\r", "\u202e"):
                closes.append(Close(1, 0.5, by, code, reason))  # type: ignore[arg-type]
    summaries = [ConnectionSummary(_open(), close=c) for c in closes]
    summaries.append(ConnectionSummary(_open(403)))
    for _ in range(2):  # (the second time from the cache)
        for s in summaries:
            assert inspect._close_text(s) == _slow_close_text(s)
    for i in range(5000):
        s = ConnectionSummary(_open(), close=Close(1, 0.5, Side.CLIENT, 1000, f"r{i}"))
        assert inspect._close_text(s) == _slow_close_text(s)
    assert len(inspect._CLOSE_TEXTS) <= 4096


def test_fold_is_still_what_the_memo_keeps() -> None:
    # (the memo keeps _fold's lines, padded: _fold of a text that fits is the text)
    for text in HOSTILE_CELLS:
        escaped = safe(text)
        for width in (1, 5, 14, 40):
            if cell_len(escaped) <= width:
                assert _fold(escaped, width) == [escaped]


def test_stats_json_without_a_temporary_file_prints_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from typer.testing import CliRunner

    from tests.cli.helpers import opened
    from tests.helpers.records import write
    from wstape.cli.app import app
    from wstape.core.model import Message, Opcode

    records: list[Any] = []
    for conn in range(1, 40):
        records.append(opened(conn, f"/chat?room={conn}\u2028"))
        records.append(Message(conn, 0.25, Side.CLIENT, Opcode.TEXT, b"hi" * conn))
        if conn % 3:
            records.append(Close(conn, 1.5, Side.SERVER, 1000, "bye"))
    write(tmp_path / "c.msgpack", records)
    runner = CliRunner()
    spooled = runner.invoke(app, ["stats", "--json", str(tmp_path / "c.msgpack")])

    def no_file(*args: object, **kwargs: object) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", no_file)
    in_memory = runner.invoke(app, ["stats", "--json", str(tmp_path / "c.msgpack")])
    assert spooled.exit_code == in_memory.exit_code == 0
    assert spooled.stdout == in_memory.stdout
    assert json.loads(spooled.stdout)["total"]["connections"] == 39


@pytest.mark.parametrize("fails_at", [1, 2, 3])
def test_stats_json_with_a_full_disk_prints_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fails_at: int
) -> None:
    """A temporary file that fills up part way (a full $TMPDIR) is given up: the figures
    are computed again in memory, the same document, no traceback."""
    import io
    import tempfile

    from typer.testing import CliRunner

    from tests.cli.helpers import opened
    from tests.helpers.records import write
    from wstape.cli.app import app
    from wstape.core.model import Message, Opcode

    records: list[Any] = []
    for conn in range(1, 601):
        records.append(opened(conn, f"/chat?room={conn}"))
        records.append(Message(conn, 0.25, Side.CLIENT, Opcode.TEXT, b"hi" * (conn % 7)))
        records.append(Close(conn, 1.5, Side.SERVER, 1000, "bye"))
    write(tmp_path / "c.msgpack", records)
    runner = CliRunner()
    spooled = runner.invoke(app, ["stats", "--json", str(tmp_path / "c.msgpack")])
    writes: list[int] = []

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(len(text))
            if len(writes) >= fails_at:
                raise OSError(28, "No space left on device")
            return super().write(text)

    monkeypatch.setattr(tempfile, "TemporaryFile", lambda *a, **k: Full())
    full = runner.invoke(app, ["stats", "--json", str(tmp_path / "c.msgpack")])
    assert len(writes) == fails_at  # (it did fail, and was not written to again)
    assert spooled.exit_code == full.exit_code == 0, full.output
    assert spooled.stdout == full.stdout
    assert json.loads(full.stdout)["total"]["connections"] == 600
