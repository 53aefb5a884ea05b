"""The one way this project makes processes take turns: an exclusive OS-level file lock (the filelock package).

Why: a lock must never outlive its holder (a SIGKILLed process, a node that reboots), so it is an OS lock
(flock on Unix), not a pid file: the kernel drops it when the holder's process ends, however it ends, and the
next one takes it at once. The lock file itself stays (waiters share its inode) and may carry a note about
its holder for messages. flock is per machine: on a shared filesystem (NFS, Lustre) two machines may each get
the "same" lock, depending on the filesystem's flock support (README, "Runs and locks").
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout


class LockBusy(RuntimeError):
    """Another process holds the lock (and did not let go within the wait)."""

    def __init__(self, path: Path, note: str):
        super().__init__(f"{path} is held by another process ({note})")
        self.path, self.note = path, note


def read_note(path: Path) -> str:
    """What the lock's holder wrote into the lock file (read_note of a lock nobody wrote: "")."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, wait_s: float | None = None, note: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on `path` for the block. wait_s: None waits as long as it takes, 0 not at all;
    LockBusy if it is not had by then. `note` is written into the lock file while it is held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=-1 if wait_s is None else max(0.0, float(wait_s)))
    try:
        lock.acquire()
    except Timeout:
        raise LockBusy(path, read_note(path)) from None
    try:
        if note is not None:
            with open(path, "r+") as handle:  # another descriptor of the same file: closing it keeps the lock
                handle.truncate()
                handle.write(note)
        yield path
    finally:
        lock.release()
