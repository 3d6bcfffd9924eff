"""Permission bits for files made from cassettes.

A recording holds cookies, tokens and message bodies, and the recorder writes it readable
by its owner only (0600). A file made from one (an edited or converted cassette, a JSONL
or HAR export, an HTML view, an imported HAR) gets what the umask allows and no more than
its source allows, so a private recording stays private in everything made from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["current_umask", "derived_mode", "opener", "restrict"]


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux
    ``/proc/self/status``); else set and put back at once."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def derived_mode(*sources: str | Path | None) -> int:
    """0o666 less the umask, less every permission a source file lacks (missing or
    unreadable sources, and None, restrict nothing)."""
    mode = 0o666 & ~current_umask()
    for source in sources:
        if source is None:
            continue
        try:
            mode &= os.stat(source).st_mode & 0o666
        except (OSError, ValueError):
            continue
    return mode


def restrict(path: str | Path, *sources: str | Path | None) -> None:
    """Give ``path`` (a file just created, not yet renamed into place) the mode
    :func:`derived_mode` says for ``sources``. Raises OSError."""
    os.chmod(path, derived_mode(*sources))


def opener(*sources: str | Path | None) -> Callable[[str, int], int]:
    """An ``opener`` for :func:`open` that creates the file with :func:`derived_mode`
    (and sets it on a file that was already there), so no byte is ever more readable
    than its source."""
    mode = derived_mode(*sources)

    def open_fd(path: str, flags: int) -> int:
        fd = os.open(path, flags, mode)
        try:
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            raise
        return fd

    return open_fd
