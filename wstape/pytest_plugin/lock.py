"""An OS lock beside a cassette, so concurrent test processes record it once."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class CassetteLock:
    """An exclusive ``flock`` on ``CASSETTE.lock`` (created next to the cassette).

    The lock belongs to the process: it is released by :meth:`release` or when the process
    ends, however it ends, so a crashed worker never blocks the others for good.
    """

    def __init__(self, cassette: Path) -> None:
        self.path = cassette.with_name(cassette.name + ".lock")
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lock; False if it stayed taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        got = threading.Event()

        def take() -> None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                return
            got.set()

        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiter = threading.Thread(
                target=take, name=f"wstape lock {self.path.name}", daemon=True
            )
            waiter.start()
            if not got.wait(timeout):
                os.close(fd)  # the waiting flock fails on the closed descriptor
                return False
        self._fd = fd
        return True

    def first_of_run(self, run: str) -> bool:
        """Whether the test run ``run`` (held: call it with the lock taken) had not yet
        claimed the cassette; it has from now on. The run's id is kept in the lock file,
        so the workers of one pytest-xdist run agree on which of them came first."""
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        seen = os.read(self._fd, 256).decode("ascii", "replace")
        if seen == run:
            return False
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, run.encode("ascii", "replace"))
        return True

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


__all__ = ["CassetteLock"]
