"""The run lock: one process per run (store, sweep, run id) at a time, for the run's whole life.

Why: attempt numbers are read from file names and nothing reserves them, and a run's checkpoint is per run id,
so two live processes of one run would share an attempt and overwrite each other's rows, curve and last.pt (a
late failure of one could replace the other's finished record). So a run holds this lock from before it reads
anything it will write until its last write; a second process of the same run writes nothing and stops with
one line (RunInProgress), or, for a requeued Slurm job whose old process may still be ending, waits a bounded
time first. The lock is an OS lock (results/locks.py): a SIGKILLed run's lock is free at once. It lives in
`<store>/sweeps/<sweep>/locks/<run_id>.lock`, with the holder's pid, host and start time written inside.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from results.locks import LockBusy, exclusive, is_held
from results.names import validate_name
from results.sweeps import sweep_dir


class RunInProgress(RuntimeError):
    """Another process is running this run now."""


def run_lock_path(store_root: str | os.PathLike, sweep_id: str, run_id: str) -> Path:
    return sweep_dir(store_root, sweep_id) / "locks" / f"{validate_name(run_id, 'run id')}.lock"


def run_is_live(store_root: str | os.PathLike, sweep_id: str, run_id: str) -> bool:
    """Whether a process on this machine holds the run's lock now (a record that says running without one is
    stale: its process was killed)."""
    return is_held(run_lock_path(store_root, sweep_id, run_id))


def _holder(note: str) -> str:
    try:
        h = json.loads(note)
        return f"pid {h['pid']}, host {h['host']}, since {h['since']}"
    except (ValueError, KeyError, TypeError):
        return "pid, host and start not recorded yet"


@contextlib.contextmanager
def run_lock(store_root: str | os.PathLike, sweep_id: str, run_id: str, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the run's lock for the block; RunInProgress (one line) if another process holds it after wait_s."""
    note = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")})
    held = contextlib.ExitStack()
    try:
        held.enter_context(exclusive(run_lock_path(store_root, sweep_id, run_id), wait_s=wait_s, note=note))
    except LockBusy as busy:
        waited = f" (waited {wait_s:g}s)" if wait_s else ""
        raise RunInProgress(f"run {run_id} is in progress ({_holder(busy.note)}){waited}; wait for it, or "
                            "--rerun after it ends") from None
    with held:
        yield
