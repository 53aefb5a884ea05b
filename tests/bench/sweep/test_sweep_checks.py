"""Sweep and tune files checked before anything is created or submitted (issue 26, medium 6-9 and low): one short
line naming the key and the fix, and no journal, queue or launch record left behind."""
from __future__ import annotations

import time

import pytest

from bench.cli import main
from tests.helpers import ROOT

TUNE = """name: tn
seeds: {{start: 10, count: 2}}
executor: {executor}
overrides: {{pretrain.steps: 40, eval.episodes: 2, eval.timing: false}}
tune:
  method: bc_gauss
  task: demo
  trials: {trials}
  params:
    {key}: {{type: float, low: {low}, high: {high}}}
"""
SWEEP = "name: sw\nmethods: [bc_gauss]\ntasks: [demo]\nseeds: {seeds}\nexecutor: debug\n"


def _one_line(capsys, rc: int, *needles: str, max_len: int = 400) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1, err
    assert all(n in err[0] for n in needles) and len(err[0]) <= max_len, err
    return err[0]


def _nothing_made(store, name: str) -> None:
    assert not (store / "sweeps" / name).exists(), sorted(p.name for p in (store / "sweeps" / name).rglob("*"))


# ---- medium 6: executor slurm without Slurm -------------------------------------------------------------------
@pytest.mark.parametrize("command", ["sweep launch", "tune"])
def test_executor_slurm_without_slurm_is_one_line_naming_the_fix(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setenv("PATH", str(tmp_path / "no-slurm-here"))  # no srun, sbatch, squeue, sacct
    store = tmp_path / "store"
    if command == "tune":
        f = tmp_path / "tune.yaml"
        f.write_text(TUNE.format(executor="slurm", trials=2, key="bc_gauss.lr", low=0.0001, high=0.01))
        rc = main(["--store", str(store), "tune", str(f)])
        name = "tn"
    else:
        rc = main(["--store", str(store), "sweep", "launch", str(ROOT / "sweeps" / "demo-tiny.yaml")])
        name = "demo-tiny"
    _one_line(capsys, rc, "Slurm", "--executor local")
    _nothing_made(store, name)


# ---- medium 7: tune files are checked, every key and range, before a journal exists --------------------------
@pytest.mark.parametrize("key, low, high, trials, needles", [
    pytest.param("bc_gauss.lrr", 0.0001, 0.01, 2, ["unknown config key 'bc_gauss.lrr'", "bc_gauss.lr"], id="unknown key"),
    pytest.param("bc_gauss.lr", 0.1, 0.01, 2, ["tune.params.bc_gauss.lr", "low", "high"], id="low above high"),
    pytest.param("bc_gauss.lr", "high", 0.01, 2, ["tune.params.bc_gauss.lr.low"], id="low: high"),
    pytest.param("bc_gauss.lr", 0.0001, 0.01, -3, ["'tune.trials' must be >= 1"], id="trials -3"),
    pytest.param("pretrain.steps", -5, 10, 2, ["pretrain.steps", ">= 0"], id="value out of the key's range"),
])
def test_bad_tune_files_are_one_line_before_a_journal_exists(tmp_path, capsys, key, low, high, trials, needles):
    f = tmp_path / "tune.yaml"
    f.write_text(TUNE.format(executor="debug", trials=trials, key=key, low=low, high=high))
    store = tmp_path / "store"
    rc = main(["--store", str(store), "tune", str(f)])
    _one_line(capsys, rc, *needles)
    _nothing_made(store, "tn")


# ---- medium 8: `method` is not a config key ---------------------------------------------------------------------
def test_method_cannot_be_overridden_by_set_or_grid(tmp_path, capsys):
    store = tmp_path / "store"
    rc = main(["--store", str(store), "run", "--method", "bc_gauss", "--task", "demo", "--set", "method=bc_dp"])
    _one_line(capsys, rc, "'method' is not a config key", "--method")
    f = tmp_path / "grid.yaml"
    f.write_text(SWEEP.format(seeds="[0]") + "grid: {method: [bc_dp]}\n")
    rc = main(["--store", str(store), "sweep", "launch", str(f)])
    _one_line(capsys, rc, "'method' is not a config key", "methods:")
    _nothing_made(store, "sw")


# ---- medium 9 and low: seeds --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seeds, needles", [
    pytest.param("{start: 0, count: 3000000}", ["'seeds.count'"], id="3e6"),
    pytest.param("{start: 0, count: 1000000000000}", ["'seeds.count'"], id="1e12"),
    pytest.param("{start: 5, count: 10}", ["reserved for tuning", "10-19"], id="some reserved"),
    pytest.param("{start: a}", ["'seeds.start' must be an integer"], id="start a"),
    pytest.param("{count: 2.7}", ["'seeds.count' must be an integer"], id="count 2.7"),
])
def test_bad_seeds_are_one_short_line_at_once(tmp_path, capsys, seeds, needles):
    f = tmp_path / "seeds.yaml"
    f.write_text(SWEEP.format(seeds=seeds))
    store = tmp_path / "store"
    t0 = time.perf_counter()
    rc = main(["--store", str(store), "sweep", "launch", str(f)])
    assert time.perf_counter() - t0 < 5
    _one_line(capsys, rc, *needles, max_len=300)
    _nothing_made(store, "sw")
