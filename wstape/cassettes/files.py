"""Opening the files wstape reads: only regular files, without waiting on a FIFO."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["NotRegular", "file_kind", "open_regular"]


def file_kind(mode: int) -> str | None:
    """What a file that is not a regular one is, for an error line (None: regular)."""
    if stat.S_ISREG(mode):
        return None
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"


class NotRegular(OSError):
    """The path is not a regular file; ``kind`` says what it is."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def open_regular(path: str | Path) -> tuple[int, os.stat_result]:
    """A blocking read-only descriptor of the regular file at ``path`` and its stat.

    Raises NotRegular for anything else (a cassette or an import source is read more
    than once and from its end, which a pipe or a device cannot give), opened with
    O_NONBLOCK so that a FIFO with no writer does not hang the command; OSError as
    :func:`os.open` raises it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        kind = file_kind(info.st_mode)
        if kind is not None:
            raise NotRegular(kind)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info
