"""Probes of concurrency (issue 26, "also probe"): `mbench store compact` while a run writes, and one sweep file
launched twice at once. Real processes; every run ends finished exactly once, with its whole curve, and no
query result changes."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench.sweep.launch import format_status, sweep_status
from results.store import Store
from tests.helpers import ROOT

SWEEP_FILE = """name: twice
methods: [bc_gauss]
tasks: [demo]
seeds: [0, 1]
executor: debug
overrides: {threads: 1, pretrain.steps: 300, pretrain.log_every: 50, pretrain.checkpoint_every: 20,
            eval.episodes: 2, eval.timing: false}
"""


def _mbench(store, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "--store", str(store), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _every_run_finished_once(store, sweep: str, n: int) -> None:
    att = Store(store).attempts(sweep=sweep)
    assert sorted(att.status) == ["finished"] * n, att[["run_id", "attempt", "status", "error"]]
    st = sweep_status(store, sweep)
    assert st["store"].get("finished") == n and not st["store"].get("running"), format_status(st)


@pytest.mark.slow
def test_compaction_while_a_run_writes_loses_nothing(demo_dataset, tmp_path):
    store = tmp_path / "store"
    sets = [a for kv in ("pretrain.steps=300", "pretrain.log_every=10", "pretrain.checkpoint_every=20",
                         "eval.episodes=2", "eval.timing=false", "threads=1") for a in ("--set", kv)]
    run = _mbench(store, "run", "--method", "bc_gauss", "--task", "demo", "--quiet", "--sweep", "c", *sets)
    compactions = 0
    while run.poll() is None:  # compact over and over while the run writes its rows and curve
        Store(store).compact()
        compactions += 1
    out, err = run.communicate()
    assert run.returncode == 0 and " finished " in out, err
    Store(store).compact()
    assert compactions > 3
    _every_run_finished_once(store, "c", 1)
    curve = Store(store).curves(sweep="c")
    assert (curve.phase == "pretrain").sum() >= 30 and "normalized_score" in set(curve.metric)  # all of it
    assert not [p for p in store.rglob(".tmp-*")]


@pytest.mark.slow
def test_one_sweep_file_launched_twice_at_once_runs_each_run_once(demo_dataset, tmp_path):
    store = tmp_path / "store"
    f = tmp_path / "twice.yaml"
    f.write_text(SWEEP_FILE)
    procs = [_mbench(store, "sweep", "launch", str(f)) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    _every_run_finished_once(store, "twice", 2)
    assert not [p for p in store.rglob(".tmp-*")]
    # The second launch's jobs waited for the run lock and then found their runs finished: nothing was run
    # twice, so the status lists no run as tried twice.
    st = sweep_status(store, "twice")
    assert not st["requeued"], format_status(st)
