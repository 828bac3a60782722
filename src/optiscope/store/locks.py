"""One writer per cell: an OS file lock per landed cell, so concurrent runs split the work.

`optiscope run` holds `STORE/locks/<cell_id>.lock` (fcntl.flock, exclusive) from before a cell
trains until it has landed. A second run into the same store skips a cell it cannot lock and
comes back to it at the end, waiting for the holder: then the cell is complete (skipped) or, if
the holder died or failed, trained. The lock is the kernel's, not a file's existence: it is
released when the holder's process dies, SIGKILL included, so a killed run never blocks the next.
The file itself says who holds it (pid, host), for the waiting message; lock files are left in
place (removing one another process may be about to lock would let two holders in).

Written on `fcntl` (the standard library) rather than the `filelock` package so the holder can
be named in the same file it locks. Where `fcntl` is missing (Windows) locks are no-ops and
concurrent runs may train a cell twice (the store stays correct: every write is an atomic rename).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class CellLock:
    """An exclusive lock on one cell of a store (not reentrant; one per cell per run)."""

    def __init__(self, root: Path, cell_id: str):
        self.path = Path(root) / "locks" / f"{cell_id}.lock"
        self.cell_id = cell_id
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> bool:
        """Take the lock; without `wait`, give up at once (False) if another process holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    os.close(fd)
                    return False
                if on_wait is not None:
                    on_wait(self.holder())
                fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        return True

    def holder(self) -> str:
        """Who holds (or last held) the lock, as its file says."""
        try:
            return self.path.read_text().strip() or "another run"
        except OSError:
            return "another run"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> CellLock:
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
