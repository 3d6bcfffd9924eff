"""How human output looks: colour only on a terminal, tables that fit, text that cannot
drive the terminal.

- :func:`console` gives a rich console for stdout or stderr: coloured only when the stream
  is a terminal, ``NO_COLOR`` is unset and ``--no-color`` was not given; as wide as the
  terminal (``COLUMNS`` counts when piped, else 80) for tables, never wrapping a line of
  text (a path or a command stays whole, to copy), never interpreting rich markup in data.
- :func:`print_table` drops the least important columns until the table fits that width,
  folds long text, and never splits an identifier.
- :func:`safe` escapes every control character (C0, C1, DEL) and bidi control of text
  that came from a cassette or a client, so a recorded ``ESC]0;PWNED`` or a request line
  from the network prints as ``\\x1b]0;PWNED`` and cannot retitle or clear the terminal.
- :func:`escape_unencodable` (called once by ``wstape``'s ``main``): on a stdout whose
  encoding cannot hold a character (``PYTHONIOENCODING=ascii``, a Latin-1 locale), the
  character is written as a ``\\uXXXX`` escape (two for one beyond the BMP) instead of
  ending the command with a UnicodeEncodeError: inside a JSON string that is the same
  string, so ``--json`` and JSONL output stay valid JSON.
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import io
import operator
import os
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar, overload

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wstape.core.terminal import safe

T = TypeVar("T")

ESCAPE_ERRORS = "wstape-escape"
"""The codec error handler :func:`escape_unencodable` sets on stdout."""


def _escape(e: UnicodeError) -> tuple[str, int]:
    if not isinstance(e, UnicodeEncodeError):
        raise e
    out = []
    for ch in e.object[e.start : e.end]:
        n = ord(ch)
        if n > 0xFFFF:  # (JSON spells it as its UTF-16 surrogate pair)
            n -= 0x10000
            out.append(f"\\u{0xD800 + (n >> 10):04x}\\u{0xDC00 + (n & 0x3FF):04x}")
        else:
            out.append(f"\\u{n:04x}")
    return "".join(out), e.end


codecs.register_error(ESCAPE_ERRORS, _escape)


def escape_unencodable(stream: TextIO | None = None) -> None:
    """Write what ``stream`` (stdout) cannot encode as ``\\uXXXX`` escapes instead of
    raising UnicodeEncodeError: the one place every command's text output goes through
    (``ls``, ``show``, ``stats``, ``export`` to stdout, ``--json``). A stream that is not a
    text file of its own (a test runner's capture) is left as it is."""
    stream = sys.stdout if stream is None else stream
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors=ESCAPE_ERRORS)


_NO_COLOR = False
"""Set by ``--no-color`` on any command."""


def no_color(value: bool = True) -> None:
    """``--no-color``: plain output for the rest of the process."""
    global _NO_COLOR
    _NO_COLOR = _NO_COLOR or value


def color_enabled(stream: TextIO) -> bool:
    if _NO_COLOR or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def width(stream: TextIO) -> int:
    """The width output must fit: the terminal's, else ``COLUMNS``, else 80."""
    try:
        if stream.isatty():
            return shutil.get_terminal_size((80, 24)).columns
    except (AttributeError, ValueError):
        pass
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and int(columns) > 20 else 80


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    color = color_enabled(stream)
    return Console(
        file=stream,
        width=width(stream),
        no_color=not color,
        color_system="auto" if color else None,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
    )


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 connection``, ``2 connections`` (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


@dataclass(frozen=True)
class Column:
    """A table column: ``keep`` higher for columns dropped last; ``whole`` never folded
    (identifiers); ``min_width`` the narrowest a folding column may get."""

    name: str
    keep: int = 1
    whole: bool = False
    justify: str = "left"
    min_width: int = 8


def print_table(
    out: Console,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    footer: Sequence[Sequence[str]] = (),
) -> None:
    """Print ``rows`` under ``columns`` (and ``footer`` rows below a rule, for totals),
    dropping the least kept columns until the table fits the console's width. Over
    RICH_ROWS rows, ``rows`` is read twice and never held whole (it may make each row as
    it is asked for, :class:`LazyRows`, or hold each row as one string, :class:`TextRows`)."""
    kept = list(range(len(columns)))
    long = len(rows) + len(footer) > RICH_ROWS
    escaped = isinstance(rows, TextRows)
    body: list[list[str]] = [] if long else [[safe(cell) for cell in row] for row in rows]
    tail = [[safe(cell) for cell in row] for row in footer]
    cell_max = [0] * len(columns)
    """The longest cell of each column (in characters)."""
    cell_width = [0] * len(columns)
    """The widest cell of each column (in terminal cells: a wide character takes two)."""
    for row in rows if long else body:
        for i, cell in enumerate(row):
            if long and not escaped:
                cell = safe(cell)
            n = len(cell)
            if n > cell_max[i]:
                cell_max[i] = n
            w = n if cell.isascii() else cell_len(cell)
            if w > cell_width[i]:
                cell_width[i] = w
    for row in tail:
        for i, cell in enumerate(row):
            cell_max[i] = max(cell_max[i], len(cell))
            cell_width[i] = max(cell_width[i], _cells(cell))
    longest = [max(len(col.name), n) for col, n in zip(columns, cell_max, strict=True)]

    # An identifier column wider than two thirds of the table folds rather than push
    # every other column out (a 200-character URL); the rest stay whole.
    whole = [col.whole and cell_max[i] <= out.width * 2 // 3 for i, col in enumerate(columns)]

    def need(indices: list[int]) -> int:
        total = 1  # the left border
        for i in indices:
            col = columns[i]
            total += (longest[i] if whole[i] else min(longest[i], max(col.min_width, 8))) + 3
        return total

    dropped: list[str] = []
    while len(kept) > 1 and need(kept) > out.width:
        victim = min(kept[1:], key=lambda i: (columns[i].keep, -i))
        kept.remove(victim)
        dropped.append(columns[victim].name)
    if long:
        natural = [max(_cells(columns[i].name), cell_width[i]) for i in kept]
        _print_long_table(
            out, title, [columns[i] for i in kept], kept, whole, rows, tail, natural, escaped
        )
    else:
        _print_rich_table(out, title, columns, kept, whole, body, tail)
    if dropped:
        out.print(
            f"(left out to fit {out.width} columns: {', '.join(dropped)}; "
            "widen the terminal, set COLUMNS, or use --json)",
            soft_wrap=False,
        )


class LazyRows(Sequence[Sequence[str]]):
    """Table rows made one at a time from ``items`` by ``row`` (a table of 200,000 rows
    held whole would be some 100 MB of strings)."""

    def __init__(self, items: Sequence[T], row: Callable[[T], Sequence[str]]) -> None:
        self._items = items
        self._row = row

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Sequence[str]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Sequence[str]]: ...
    def __getitem__(self, index: int | slice) -> Sequence[str] | Sequence[Sequence[str]]:
        if isinstance(index, slice):
            return [self._row(item) for item in self._items[index]]
        return self._row(self._items[index])

    def __iter__(self) -> Iterator[Sequence[str]]:
        return map(self._row, self._items)


_CELL_SEP = "\x1f"
"""Between the cells of a :class:`TextRows` row (a control character: no escaped cell
holds one)."""


class TextRows(LazyRows):
    """Table rows each held as one string of its cells, already escaped (:func:`safe`):
    a row of ``ls`` costs some 150 bytes, not a tuple of seven strings (``ls`` of 200,000
    connections builds its rows as the connections end, :func:`text_row`)."""

    def __init__(self, rows: Sequence[str]) -> None:
        super().__init__(rows, _split_row)


_split_row: Callable[[str], Sequence[str]] = operator.methodcaller("split", _CELL_SEP)
"""A :class:`TextRows` row's cells (``row.split(_CELL_SEP)``, called from C)."""


def text_row(cells: Sequence[str]) -> str:
    """One :class:`TextRows` row: ``cells`` escaped, in one string."""
    texts = list(map(str, cells))
    if all(map(str.isprintable, texts)):  # (nothing to escape: safe() would keep each)
        return _CELL_SEP.join(texts)
    return _CELL_SEP.join(map(safe, cells))


RICH_ROWS = 1000
"""A table of more rows is drawn line by line by :func:`_print_long_table`: rich measures
and renders every cell at some 100 µs each (minutes and gigabytes for ``ls`` of 200,000
connections)."""


def _print_rich_table(
    out: Console,
    title: str,
    columns: Sequence[Column],
    kept: list[int],
    whole: list[bool],
    body: list[list[str]],
    tail: list[list[str]],
) -> None:
    rows = body + tail
    table = Table(title=safe(title), title_justify="left", expand=False)
    for i in kept:
        col = columns[i]
        table.add_column(
            col.name,
            justify=col.justify,  # type: ignore[arg-type]
            no_wrap=whole[i],
            overflow="fold",
            min_width=max(len(r[i]) for r in rows) if whole[i] and rows else None,
        )
    for row in body:
        table.add_row(*(Text(row[i]) for i in kept))
    if tail:
        table.add_section()
    for row in tail:
        table.add_row(*(Text(row[i]) for i in kept))
    out.print(table)


def _cells(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def _fold(text: str, width: int) -> list[str]:
    """``text`` in lines at most ``width`` cells wide, as rich wraps a cell: whole words
    while they fit, a word wider than the cell cut."""
    if _cells(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for word in re.findall(r"\s*\S+\s*|\s+", text):
        if _cells((line + word).rstrip()) <= width:
            line += word
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = word.lstrip() if lines else word
        while _cells(line.rstrip()) > width:
            piece, used = "", 0
            for ch in line:
                if used + _cells(ch) > width:
                    break
                piece += ch
                used += _cells(ch)
            lines.append(piece)
            line = line[len(piece) :]
    if line.strip() or not lines:
        lines.append(line.rstrip())
    return lines


def _print_long_table(
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

    blanks = [" " * w for w in widths]

    def padded(piece: str, width: int, how: str) -> str:
        if piece.isascii():
            return piece.rjust(width) if how == "right" else piece.ljust(width)
        pad = " " * (width - cell_len(piece))
        return pad + piece if how == "right" else piece + pad

    justify = [col.justify for col in columns]
    justs = [str.rjust if how == "right" else str.ljust for how in justify]
    """How padded() pads an ASCII piece in each column."""
    memo: dict[tuple[str, int], list[str]] = {}
    """Cells already folded and padded, by text and column (a column such as ``close``
    repeats a few texts); bounded."""

    def column_lines(text: str, n: int) -> list[str]:
        """``text`` in column ``n``: its lines (_fold()), each padded (padded())."""
        got = memo.get((text, n))
        if got is None:
            if len(memo) >= 4096:
                memo.clear()
            width, how = widths[n], justify[n]
            got = memo[text, n] = [padded(p, width, how) for p in _fold(text, width)]
        return got

    def cells(values: Sequence[str]) -> str:
        """The table's lines of one row: each cell's lines, padded (an ASCII cell that
        fits is one line, padded by rjust or ljust as padded() pads it)."""
        columns = []
        for n, v in enumerate(values):
            width = widths[n]
            if len(v) <= width and v.isascii():
                columns.append([justs[n](v, width)])
            else:
                columns.append(column_lines(v, n))
        first = "│ " + " │ ".join([c[0] for c in columns]) + " │\n"
        depth = max(map(len, columns))
        if depth == 1:
            return first
        text = [first]
        for k in range(1, depth):
            parts = [c[k] if k < len(c) else blanks[n] for n, c in enumerate(columns)]
            text.append("│ " + " │ ".join(parts) + " │\n")
        return "".join(text)

    every = escaped and kept == list(range(len(kept)))
    """Whether a row of all the columns' cells is its kept cells as it is."""

    write = out.file.write
    write(safe(title) + "\n")
    write(line("┏", "━", "┳", "┓"))
    write(cells([col.name for col in columns]).replace("│", "┃"))
    write(line("┡", "━", "╇", "┩"))
    chunk: list[str] = []
    for row in body:
        if every and len(row) == len(kept):
            values = row
        else:
            values = [row[i] if escaped else safe(row[i]) for i in kept]
        chunk.append(cells(values))
        if len(chunk) >= 256:
            write("".join(chunk))
            chunk.clear()
    write("".join(chunk))
    if tail:
        write(line("├", "─", "┼", "┤"))
        for row in tail:
            write(cells([row[i] for i in kept]))
    write(line("└", "─", "┴", "┘"))


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector off while a command folds a cassette: the records and
    the per-connection states hold no reference cycles (reference counting frees them),
    and a fold of 200,000 connections otherwise spends a fifth to a third of its time in
    collections that find nothing to free."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


PROGRESS_MIN_BYTES = 4 * 1024 * 1024
"""Smaller inputs get no progress bar: they are read before it would show."""
PROGRESS_DELAY = 0.4
"""Seconds before the bar appears (a quick command shows nothing)."""


def _read_position(path: Path) -> int | None:
    """How far this process has read ``path``: the largest file position among its open
    descriptors on it (Linux /proc; None elsewhere or when none is open)."""
    best: int | None = None
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != str(path):
                continue
            with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as info:
                for line in info:
                    if line.startswith("pos:"):
                        pos = int(line.split()[1])
                        best = pos if best is None else max(best, pos)
                        break
        except (OSError, ValueError):
            continue
    return best


@contextlib.contextmanager
def progress(paths: Sequence[Path], label: str, *, enabled: bool = True) -> Iterator[None]:
    """A progress bar on stderr, by bytes read of ``paths``, while the block runs: only on
    a terminal, only for inputs of at least PROGRESS_MIN_BYTES, never with ``enabled``
    False (``--json``). It watches the process's own read position (Linux), so no reading
    code needs to know about it; several passes over a file show as the bar going round
    again."""
    if not enabled or not sys.stderr.isatty() or not os.path.isdir("/proc/self/fdinfo"):
        yield
        return
    files = [Path(os.path.realpath(p)) for p in paths]
    try:
        total = sum(f.stat().st_size for f in files)
    except OSError:
        total = 0
    if total < PROGRESS_MIN_BYTES:
        yield
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    done = threading.Event()
    try:  # WSTAPE_PROGRESS_DELAY=0 shows it at once (the tests' way to see it)
        delay = float(os.environ.get("WSTAPE_PROGRESS_DELAY", PROGRESS_DELAY))
    except ValueError:
        delay = PROGRESS_DELAY

    def watch() -> None:
        if done.wait(delay):
            return
        bar = Progress(
            f"{label}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=console(stderr=True),
            transient=True,
        )
        task = bar.add_task(label, total=total)
        with bar:
            while not done.wait(0.1):
                read = sum(_read_position(f) or 0 for f in files)
                bar.update(task, completed=min(read, total))

    thread = threading.Thread(target=watch, name="wstape progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(2)


__all__ = [
    "Column",
    "color_enabled",
    "console",
    "no_color",
    "no_cycle_collection",
    "plural",
    "print_table",
    "progress",
    "safe",
    "text_row",
    "width",
]
