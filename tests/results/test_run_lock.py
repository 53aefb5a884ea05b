"""The run lock (results/run_lock.py) and the lock helper under it (results/locks.py)."""
from __future__ import annotations

import os
import socket
import time

import pytest

from bench.sweep.job import REQUEUE_LOCK_WAIT_S
from results.run_lock import RunInProgress, run_lock, run_lock_path


def test_a_held_run_lock_refuses_in_one_line_naming_the_holder_after_a_bounded_wait(tmp_path):
    with run_lock(tmp_path, "sw", "r0"):
        t0 = time.monotonic()
        with pytest.raises(RunInProgress) as err, run_lock(tmp_path, "sw", "r0", wait_s=0.3):
            pass
        assert 0.25 < time.monotonic() - t0 < 5
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("run r0 is in progress (pid ")
        assert f"pid {os.getpid()}, host {socket.gethostname()}, since " in msg
        assert msg.endswith("; wait for it, or --rerun after it ends")
        with run_lock(tmp_path, "sw", "r1"), run_lock(tmp_path, "other", "r0"):  # other runs: their own locks
            pass
    with run_lock(tmp_path, "sw", "r0"):  # released: free again
        pass
    assert run_lock_path(tmp_path, "sw", "r0") == tmp_path / "sweeps" / "sw" / "locks" / "r0.lock"
    assert 0 < REQUEUE_LOCK_WAIT_S <= 600  # a requeued job waits, but not for ever
