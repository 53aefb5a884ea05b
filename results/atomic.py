"""The one way this project writes a file that readers may open at any moment: atomically.

Why: a run's store rows, its checkpoint, a sweep's queue, a cached dataset are read by other processes while
they are rewritten, and a process can die mid-write (SIGKILL, a full disk). So every such file is written to a
temporary file in the same folder (`.tmp-<hex>-<name>`: hidden from the store's readers, and counted by its
attempt numbering), flushed to disk with fsync, and renamed over the target: a reader sees the old file or the
new one, never a torn one. On any error the temporary file is removed (a leftover one can keep a disk full),
and an OSError becomes one line naming the path (WriteError; "no space left" for a full disk).
"""
from __future__ import annotations

import contextlib
import errno
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TMP_PREFIX = ".tmp-"


class WriteError(OSError):
    """A file could not be written (full disk, read-only folder, ...): one line naming the path and the fix."""

    def __init__(self, path: str | os.PathLike, err: OSError):
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = "no space left on the device (or the quota is used up); free some space there and run again"
        elif err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            reason = "the folder cannot be written (read-only or no permission); choose a writable one"
        else:
            reason = (str(err.strerror or err).strip().splitlines() or [type(err).__name__])[0]
        super().__init__(err.errno, f"cannot write {path}: {reason}")
        self.filename = str(path)

    def __str__(self) -> str:
        return str(self.strerror)


def os_error_in(err: BaseException) -> OSError | None:
    """The OSError behind `err`: itself, or one it was raised from or while handling (torch.save turns a full
    disk's OSError into a RuntimeError of its zip writer)."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def tmp_path_for(path: Path) -> Path:
    """A fresh temporary name next to `path`."""
    return path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}"


def leftovers_of(path: str | os.PathLike) -> list[Path]:
    """The temporary files that writes of `path` left behind (their process was killed mid-write)."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f"{TMP_PREFIX}*-{path.name}"))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open or fsync a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` for a writer that needs a name (h5py); when the block ends
    cleanly, fsync it and rename it over `path`. On any error (or exception in the block) it is removed."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WriteError(path, err) from None
    tmp = tmp_path_for(path)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(err, WriteError):
            raise
        cause = os_error_in(err) if isinstance(err, Exception) else None  # Ctrl-C, SystemExit: as they are
        if cause is not None:
            raise WriteError(path, cause) from None
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write `path` atomically: `write(handle)` fills an open binary handle of the temporary file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        write(handle)
        handle.flush()
    return Path(path)
