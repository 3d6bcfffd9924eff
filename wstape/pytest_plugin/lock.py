"""An OS lock per cassette, so concurrent test processes record it once."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from pathlib import Path


def lock_dir() -> Path:
    """Where the cassettes' lock files live: the user's own folder in the temporary
    directory (``$TMPDIR/wstape-locks-UID``), not beside the cassettes, which are
    committed (QA: a ``CASSETTE.lock`` was left beside every cassette recorded)."""
    return Path(tempfile.gettempdir()) / f"wstape-locks-{os.getuid()}"


def lock_path(cassette: Path) -> Path:
    """The lock file of ``cassette``: one name per absolute path (symbolic links
    resolved), so every process on the machine that uses the cassette takes the same
    lock. The name keeps the cassette's for a reader of the folder."""
    where = os.path.realpath(cassette)
    digest = hashlib.sha256(os.fsencode(where)).hexdigest()[:24]
    return lock_dir() / f"{cassette.name[:64]}.{digest}.lock"


class CassetteLock:
    """An exclusive ``flock`` on the cassette's lock file (:func:`lock_path`).

    The lock belongs to the process: it is released by :meth:`release` or when the process
    ends, however it ends, so a crashed worker never blocks the others for good.
    """

    def __init__(self, cassette: Path) -> None:
        self.path = lock_path(cassette)
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the lock; False if it stayed taken."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
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
