"""The store's folder, checked before any work: named, a folder, and writable.

Why: a command that writes the store (a run, a sweep, a tuning study, a timing, a compaction) would otherwise
find out that it cannot at its first write, after minutes of setup or training, with a raw traceback; and an
empty name (`--store ""`, an empty MBENCH_STORE) would silently mean the current folder. So each such command
checks its store first and stops with one line naming the store and the fix.
"""
from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

FIX = "choose another with --store (or MBENCH_STORE)"


class StoreUnusable(ValueError):
    """The store's folder is not named, not a folder, or cannot be written."""


def named_store(root: str | os.PathLike | None) -> Path:
    """`root` as a path; StoreUnusable for an empty name (which would be the current folder)."""
    if root is None or not str(root).strip():
        raise StoreUnusable("the results store's folder is empty (--store \"\" or an empty MBENCH_STORE); name a "
                            "folder, e.g. --store results")
    return Path(root)


def writable_store(root: str | os.PathLike | None) -> Path:
    """The store's folder, made if absent and proven writable (a probe file made and removed), else StoreUnusable
    in one line naming it."""
    path = named_store(root)
    if path.exists() and not path.is_dir():
        raise StoreUnusable(f"the results store {path} is not a folder (it is a file); {FIX}")
    probe = path / f".tmp-{uuid.uuid4().hex}-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as err:
        if err.errno == errno.ENOTDIR:  # a file where a parent folder should be
            reason = "a part of its path is a file, not a folder"
        elif err.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = "no space left on its device"
        else:
            reason = "read-only or no permission" if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM) \
                else (err.strerror or type(err).__name__)
        raise StoreUnusable(f"the results store {path} cannot be written ({reason}); {FIX}") from None
    return path
