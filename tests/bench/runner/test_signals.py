"""SIGTERM, Ctrl-C and SIGKILL on a real `mbench run` (issue 26, medium 3, and "SIGKILL during a checkpoint write").

A run that gets SIGTERM (Slurm, a shell's kill) or SIGINT (Ctrl-C) stops at its next safe point, saves its
checkpoint and is recorded as `preempted` or `interrupted` (never `failed`), then exits non-zero with one line.
The signal is sent to a real child process placed mid-run (SIGSTOP once its first checkpoint exists, the signal,
SIGCONT: no sleeps). A rerun resumes it, and its curve equals the uninterrupted run's. A run SIGKILLed in the
middle of a checkpoint write (it stops itself there) leaves its record `running` with a free lock: `sweep status`
calls it stale, not running, and a rerun resumes from the last whole checkpoint.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from bench.runner.checkpoints import load_checkpoint
from bench.runner.lifecycle import run_one
from bench.sweep.launch import format_status, sweep_status
from results.store import Store
from tests.helpers import ROOT, TINY

SWEEP = "sig"
# bc_gauss learns offline only: a pretrain with frequent checkpoints and log boundaries (its safe points).
OVERRIDES = {**TINY, "pretrain.steps": 600, "pretrain.checkpoint_every": 20, "pretrain.log_every": 50}
CURVE_KEYS = ["phase", "env_step", "grad_step", "actor", "metric", "value", "n_episodes"]

# A child that stops itself (SIGSTOP) inside its second checkpoint write, after the bytes and before the
# rename: the test SIGKILLs it there.
_STOP_IN_WRITE = """
import os, signal, sys, torch
_save, _n = torch.save, [0]
def save(obj, f, *a, **k):
    _save(obj, f, *a, **k)
    _n[0] += 1
    if _n[0] == 2 and isinstance(obj, dict) and "counters" in obj:
        os.kill(os.getpid(), signal.SIGSTOP)
torch.save = save
from bench.cli import main
sys.argv[0] = "mbench"
sys.exit(main())
"""


def _args(store: Path) -> list[str]:
    sets = [a for k, v in OVERRIDES.items() for a in ("--set", f"{k}={v}")]
    return ["--store", str(store), "run", "--method", "bc_gauss", "--task", "demo", "--seed", "0",
            "--sweep", SWEEP, "--quiet", *sets]


def _start(store: Path, prefix: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *prefix, *_args(store)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _cfg():
    return resolve_config("bc_gauss", "demo", 0, OVERRIDES)


def _curve(store: Path) -> pd.DataFrame:
    c = Store(store).curves(sweep=SWEEP, run_ids=[run_id_of(_cfg())])
    return c[CURVE_KEYS].sort_values(CURVE_KEYS[:5]).reset_index(drop=True)


def _no_running_without_a_lock(store: Path) -> dict:
    st = sweep_status(store, SWEEP)
    assert st["store"].get("running", 0) == 0, format_status(st)
    return st


@pytest.fixture(scope="module")
def reference(demo_dataset, tmp_path_factory) -> pd.DataFrame:
    """The uninterrupted run's curve."""
    store = tmp_path_factory.mktemp("reference")
    run_one(_cfg(), store_root=store, sweep_id=SWEEP, progress=False)
    return _curve(store)


@pytest.mark.slow
@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, "preempted"), (signal.SIGINT, "interrupted")],
                         ids=["sigterm", "sigint"])
def test_a_signalled_run_saves_is_recorded_and_resumes_to_the_same_curve(reference, tmp_path, sig, status):
    store = tmp_path / "store"
    rid = run_id_of(_cfg())
    ckpt = store / "checkpoints" / SWEEP / rid / "last.pt"
    proc = _start(store, ["-m", "bench.cli"])
    deadline = time.monotonic() + 240
    while not ckpt.exists():
        assert proc.poll() is None, f"the run ended before its first checkpoint: {proc.communicate()}"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    proc.send_signal(signal.SIGSTOP)  # placed mid-run
    proc.send_signal(sig)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate(timeout=240)
    assert time.monotonic() - t0 < 20, "it took more than 20 s to stop"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == 128 + sig, (proc.returncode, out, err)
    assert len(lines) == 1 and status in lines[0] and rid in lines[0] and "resume" in lines[0], err
    att = Store(store).attempts(sweep=SWEEP)
    assert att.status.tolist() == [status], att[["status", "error"]]
    saved = json.loads(load_checkpoint(ckpt)["counters"])  # it saved where it stopped
    assert saved["grad_step"] == int(att.grad_steps[0]) > 0 and saved["env_step"] == int(att.env_steps[0])
    assert _no_running_without_a_lock(store)["store"].get(status) == 1

    run_one(_cfg(), store_root=store, sweep_id=SWEEP, progress=False)  # the rerun resumes
    assert Store(store).attempts(sweep=SWEEP).status.tolist() == [status, "finished"]
    pd.testing.assert_frame_equal(_curve(store), reference, rtol=1e-6)
    _no_running_without_a_lock(store)


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_write_then_resume(reference, tmp_path):
    store = tmp_path / "store"
    rid = run_id_of(_cfg())
    folder = store / "checkpoints" / SWEEP / rid
    proc = _start(store, ["-c", _STOP_IN_WRITE])
    _, state = os.waitpid(proc.pid, os.WUNTRACED)  # it stopped itself inside its second checkpoint write
    assert os.WIFSTOPPED(state), state
    whole = (folder / "last.pt").read_bytes()  # the first checkpoint, whole
    assert [p for p in folder.iterdir() if p.name.startswith(".tmp-")], "no write in progress"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert (folder / "last.pt").read_bytes() == whole  # the torn write never replaced it

    st = sweep_status(store, SWEEP)
    assert st["store"].get("running", 0) == 0 and st["store"].get("stale") == 1, format_status(st)
    assert "stale" in format_status(st)

    run_one(_cfg(), store_root=store, sweep_id=SWEEP, progress=False)  # resumes from the whole checkpoint
    assert Store(store).attempts(sweep=SWEEP).status.tolist() == ["running", "finished"]
    pd.testing.assert_frame_equal(_curve(store), reference, rtol=1e-6)
    assert not [p for p in folder.glob(".tmp-*")] if folder.exists() else True  # the leftover is gone
    _no_running_without_a_lock(store)


def test_a_second_ctrl_c_exits_at_once_and_is_recorded_as_interrupted(demo_dataset, tmp_path, monkeypatch):
    from bench.runner.signals import stop_on_signals
    from methods.registry import get_method_class

    cls = get_method_class("bc_gauss")
    step, calls = cls.pretrain, [0]

    def pretrain(self, buffer):
        calls[0] += 1
        if calls[0] == 30:  # past the first checkpoint (20), before the next log boundary (50)
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C asks for a stop at the next safe point
            os.kill(os.getpid(), signal.SIGINT)  # the second exits at once
        return step(self, buffer)

    monkeypatch.setattr(cls, "pretrain", pretrain)
    store = tmp_path / "store"
    before = signal.getsignal(signal.SIGINT)  # the default handler, or SIG_IGN in a job started in the background
    with pytest.raises(KeyboardInterrupt), stop_on_signals():
        run_one(_cfg(), store_root=store, sweep_id=SWEEP, progress=False)
    assert calls[0] == 30  # at once: not one more step
    att = Store(store).attempts(sweep=SWEEP)
    assert att.status.tolist() == ["interrupted"] and len(att.error[0].splitlines()) == 1, att.error[0]
    assert signal.getsignal(signal.SIGINT) == before  # handlers put back
    monkeypatch.undo()
    run_one(_cfg(), store_root=store, sweep_id=SWEEP, progress=False)
    assert Store(store).attempts(sweep=SWEEP).status.tolist() == ["interrupted", "finished"]
