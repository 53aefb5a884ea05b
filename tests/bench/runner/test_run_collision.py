"""Two identical runs at once (issue 26, high 1): real `mbench run` processes against one store.

The first holds the run's lock for its whole life; the second, started while the first is placed mid-run
(SIGSTOP once its first checkpoint exists, no sleeps), writes nothing and exits with one line. Then the first
is interrupted (SIGINT) or killed (SIGKILL): the lock of a killed process is free at once, so a third identical
run starts at once and finishes; and a finished record and its curve survive a later colliding rerun.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from results.store import Store
from tests.helpers import ROOT, TINY

SWEEP = "collide"
# bc_gauss learns offline only; a long pretrain with frequent checkpoints leaves seconds to place a process.
OVERRIDES = {**TINY, "pretrain.steps": 1000, "pretrain.checkpoint_every": 20, "pretrain.log_every": 100}


def _cmd(store: Path, *extra: str) -> list[str]:
    sets = [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    return [sys.executable, "-m", "bench.cli", "--store", str(store), "run", "--method", "bc_gauss",
            "--task", "demo", "--seed", "0", "--sweep", SWEEP, "--quiet", *sets, *extra]


def _start(store: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_cmd(store, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def _placed_mid_run(proc: subprocess.Popen, ckpt: Path, timeout: float = 240.0) -> None:
    """Stop `proc` (SIGSTOP) as soon as its checkpoint exists: it is mid-run, holding whatever it holds."""
    deadline = time.monotonic() + timeout
    while not ckpt.exists():
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)


def _records(store: Path) -> dict[str, tuple]:
    """Every store file (rows and curves; no lock or checkpoint) with its content's identity."""
    out = {}
    for path in sorted(store.glob("table=*/**/*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(store))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def _refused(proc: subprocess.Popen, rid: str) -> None:
    out, err = proc.communicate(timeout=240)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode not in (0, None), f"the second run ran: {out} {err}"
    assert len(lines) == 1 and f"run {rid} is in progress" in lines[0] and "--rerun after it ends" in lines[0], err


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["sigkill", "sigint"])
def test_a_second_identical_run_writes_nothing_and_a_killed_ones_lock_is_free(demo_dataset, tmp_path, stop):
    store_root = tmp_path / "store"
    rid = run_id_of(resolve_config("bc_gauss", "demo", 0, OVERRIDES))
    ckpt = store_root / "checkpoints" / SWEEP / rid / "last.pt"
    store = Store(store_root)

    # 1. The first run, placed mid-run; the second, identical, is refused and writes nothing.
    first = _start(store_root)
    try:
        _placed_mid_run(first, ckpt)
        before = _records(store_root)
        _refused(_start(store_root), rid)
        assert _records(store_root) == before
    finally:
        first.send_signal(stop)
        first.send_signal(signal.SIGCONT)
        first.communicate(timeout=240)

    # 2. The first is gone (killed or interrupted): its lock is free at once; a third run takes it and finishes.
    third = subprocess.run(_cmd(store_root), cwd=ROOT, capture_output=True, text=True, timeout=300,
                           stdin=subprocess.DEVNULL, check=False)
    assert third.returncode == 0 and " finished (attempt " in third.stdout, third.stderr
    done = store.runs(sweep=SWEEP, run_ids=[rid])
    assert done.status.tolist() == ["finished"]
    curve = store.curves(sweep=SWEEP, run_ids=[rid])
    assert not curve.empty and "return" in set(curve.metric)

    # 3. A rerun placed mid-run and a colliding rerun: the loser writes nothing; the rerun is then killed; the
    #    finished record and its curve survive whole.
    rerun = _start(store_root, "--rerun")
    try:
        _placed_mid_run(rerun, ckpt)
        before = _records(store_root)
        _refused(_start(store_root, "--rerun"), rid)
        assert _records(store_root) == before
    finally:
        rerun.send_signal(signal.SIGKILL)
        rerun.communicate(timeout=240)
    after = store.runs(sweep=SWEEP, run_ids=[rid])
    assert after.status.tolist() == ["finished"] and int(after.attempt[0]) == int(done.attempt[0])
    assert store.curves(sweep=SWEEP, run_ids=[rid]).equals(curve)
    assert os.path.exists(ckpt)  # the killed rerun's checkpoint stays for a later resume
