"""The one way this project makes processes take turns: an exclusive OS-level file lock (the filelock package).

Why: a lock must never outlive its holder (a SIGKILLed process, a node that reboots), so it is an OS lock
(flock on Unix), not a pid file: the kernel drops it when the holder's process ends, however it ends, and the
next one takes it at once. The lock file itself stays (waiters share its inode) and may carry a note about
its holder for messages. flock is per machine: on a shared filesystem (NFS, Lustre) two machines may each get
the "same" lock, depending on the filesystem's flock support (README, "Runs and locks").
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

# `is_held` probes a lock for a moment: a caller that must not wait still retries for this long.
PROBE_GRACE_S = 1.0


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


def is_held(path: str | os.PathLike) -> bool:
    """Whether a live process holds the lock on `path` now (on this machine: see the module's note), without
    taking it for longer than a probe: a shared, non-blocking flock that is let go at once. An `exclusive`
    caller that meets the probe retries within PROBE_GRACE_S."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # no lock file: nobody ever held it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # a filesystem without flock: nothing can be told
        return False
    finally:
        os.close(fd)  # closing the descriptor lets go of the probe's lock
    return False


@contextlib.contextmanager
def exclusive(path: str | os.PathLike, wait_s: float | None = None, note: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on `path` for the block. wait_s: None waits as long as it takes, else that long
    (at least PROBE_GRACE_S, which a holder outlasts); LockBusy if it is not had by then. `note` is written into the lock file while it is held."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), timeout=-1 if wait_s is None else max(PROBE_GRACE_S, float(wait_s)))
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
