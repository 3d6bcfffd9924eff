"""The one error of the interchange room (its place in the tree: :mod:`wstape.core.errors`)."""

from __future__ import annotations

from pathlib import Path

from wstape.core.errors import WstapeError


class InterchangeError(WstapeError):
    """An import source (HAR, JSONL, mitmproxy flow file) cannot be used.

    The message is one line naming the file and, when known, the place in it: the entry
    (HAR, 0-based), the line (JSONL, 1-based) or the flow (0-based), then the field.
    """

    def __init__(
        self, path: str | Path, message: str, *, index: int | None = None, what: str = "entry"
    ) -> None:
        self.path = str(path)
        self.index = index
        self.what = what
        self.detail = message
        where = self.path if index is None else f"{self.path}, {what} {index}"
        super().__init__(f"{where}: {message}")


__all__ = ["InterchangeError"]
