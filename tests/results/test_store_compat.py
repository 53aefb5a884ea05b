"""A store written before the restructuring (commit 05edce8) still reads, and its stopped run still resumes.

The store in tests/data/store_05edce8 was written by the project at 05edce8 (tests/data/store_05edce8/
make_store.py says how): in sweep `compat` on the demo task, a finished bc_gauss run (runs, curves and
timings tables) and a dppo run stopped mid-online, at env step 144 (a preempted row, its curve so far, and
its checkpoint). Today's code must read the first through results.store and analysis.data, and resume the
second from its checkpoint to the same curve as a fresh uninterrupted run. The dataset is the store's own
(minari.tar.gz, the tiny demo dataset 05edce8 made for it), not one made again: the same code and pins made it
with another content hash on another machine (the SAC agent that makes it, and the env, round by the CPU), and
the checkpoint refuses a run on another dataset.
"""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.data import Notes, eval_points, load_sweep, run_scores
from bench.config.layers import from_json, resolve_config
from bench.config.run import run_id_of
from bench.runner.lifecycle import run_one
from results.store import Store
from tests.helpers import ROOT

FIXTURE = ROOT / "tests" / "data" / "store_05edce8"
SWEEP, TASK, SEED = "compat", "demo", 0
# As in make_store.py: the config of both runs, whose run ids must not have changed since 05edce8. Their eval
# protocol is the one of that time, the task's fixed eval seeds for every run (`eval.states=fixed`, which today's
# suites no longer set: bench/tasks/eval_states.py); a stored config without the key reads back as fixed.
OVERRIDES = {"eval.states": "fixed",
    "pretrain.steps": 40, "pretrain.log_every": 10, "pretrain.checkpoint_every": 20,
    "online.steps": 240, "online.checkpoint_every": 60, "online.log_every": 60,
    "eval.every": 120, "eval.episodes": 2, "eval.timing": True, "eval.timing_reps": 1, "eval.timing_batch": 2,
    "threads": 1,
}
FINISHED = ("bc_gauss", {"bc_gauss.hidden": [32, 32]}, "9b5e3a5d99508cef")
STOPPED = ("dppo", {"preset": "test", "common_start.steps": 40, "common_start.log_every": 10},
           "dc33722b6b02cc5b")
STOPPED_AT_ENV_STEP = 144  # asked to stop at 120, it stopped at the end of that rollout (3 envs x 16 steps)
EVAL_METRICS = ("return", "normalized_score", "success")
CURVE_COLS = ["phase", "env_step", "grad_step", "actor", "metric", "value", "n_episodes"]


def _cfg(run):
    method, extra, _ = run
    return resolve_config(method, TASK, SEED, {**OVERRIDES, **extra})


@pytest.fixture
def store_dataset(tmp_path, monkeypatch) -> Path:
    """The store's dataset, unpacked into a Minari root of the test's own (MINARI_DATASETS_PATH for the test)."""
    root = tmp_path / "minari"
    with tarfile.open(FIXTURE / "minari.tar.gz") as tar:
        tar.extractall(root, filter="data")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _copy_store(dest: Path) -> Path:
    """The fixture's tables and checkpoint, copied (a test never writes into tests/data)."""
    for part in FIXTURE.iterdir():
        if part.is_dir():
            shutil.copytree(part, dest / part.name)
    return dest


def _curve(store_root, rid) -> pd.DataFrame:
    c = Store(store_root).curves(sweep=SWEEP, run_ids=[rid])
    return c[CURVE_COLS].sort_values(CURVE_COLS[:5]).reset_index(drop=True)


def test_the_run_ids_have_not_changed():
    assert run_id_of(_cfg(FINISHED)) == FINISHED[2]
    assert run_id_of(_cfg(STOPPED)) == STOPPED[2]
    assert (FIXTURE / "checkpoints" / SWEEP / STOPPED[2] / "last.pt").is_file()


def test_a_05edce8_store_reads_through_the_store_and_the_analysis(tmp_path):
    root = _copy_store(tmp_path / "store")
    store = Store(root)
    runs = store.runs(sweep=SWEEP).set_index("run_id")
    assert sorted(runs.index) == sorted([FINISHED[2], STOPPED[2]])
    done, stopped = runs.loc[FINISHED[2]], runs.loc[STOPPED[2]]
    assert (done.method, done.status, int(done.attempt)) == ("bc_gauss", "finished", 1)
    assert (stopped.method, stopped.status, int(stopped.attempt)) == ("dppo", "preempted", 1)
    # the recorded config is today's config: the same run id
    assert run_id_of(from_json(json.loads(done.config_json))) == FINISHED[2]
    assert run_id_of(from_json(json.loads(stopped.config_json))) == STOPPED[2]

    curves = store.curves(sweep=SWEEP, run_ids=[FINISHED[2]])
    scores = curves[curves.metric == "normalized_score"]
    assert set(scores.actor) == {"policy"} and scores.env_step.min() == 0 and scores.value.notna().all()
    assert (scores.n_episodes == OVERRIDES["eval.episodes"]).all()
    assert curves.metric.str.startswith("loss").any()
    timings = store.timings(sweep=SWEEP, run_ids=[FINISHED[2]])
    assert len(timings) > 0 and set(timings.method) == {"bc_gauss"} and (timings.p50_ms > 0).all()

    notes = Notes(echo=False)
    sweep = load_sweep(root, SWEEP, notes)
    assert list(sweep.finished.run_id) == [FINISHED[2]]
    assert any("1 preempted run(s) excluded" in w for w in notes.items)
    assert len(sweep.curves) == len(curves)
    assert "bc_gauss[bc_gauss.hidden=[32, 32]]/policy" in set(sweep.curves.line)
    assert len(sweep.timings) == len(timings)
    final = run_scores(eval_points(sweep.curves))
    assert list(final.run_id) == [FINISHED[2]] and final.final.notna().all()
    assert store.episodes(sweep=SWEEP).empty and sweep.episodes.empty  # no episodes table before schema 3


def test_a_05edce8_checkpoint_resumes_to_the_uninterrupted_curve(store_dataset, tmp_path):
    root = _copy_store(tmp_path / "store")
    cfg = _cfg(STOPPED)
    before = _curve(root, STOPPED[2])  # what 05edce8 recorded up to the stop (attempt 1)
    started = []
    rid = run_one(cfg, store_root=root, sweep_id=SWEEP, progress=False,
                  on_start=lambda run, resumed: started.append((resumed, run.progress.env_step)))
    assert rid == STOPPED[2]
    assert started == [(True, STOPPED_AT_ENV_STEP)]  # resumed from the checkpoint, not started over
    row = Store(root).runs(sweep=SWEEP, run_ids=[rid]).iloc[-1]
    assert (row.status, int(row.attempt)) == ("finished", 2)

    fresh = run_one(cfg, store_root=tmp_path / "fresh", sweep_id=SWEEP, progress=False)
    assert fresh == rid
    resumed, uninterrupted = _curve(root, rid), _curve(tmp_path / "fresh", rid)
    # The evals before the stop are 05edce8's, in the checkpoint's curve: its evaluation acted on every episode of
    # the batch until all had ended, today's acts on the unfinished ones alone (issue 24), which moves a sampling
    # actor's random draws once an episode has ended (the DP here). Those rows differ; every other row is equal.
    eval_before = resumed.metric.isin(EVAL_METRICS) & (resumed.env_step <= STOPPED_AT_ENV_STEP)
    assert eval_before.any() and not np.allclose(resumed[eval_before].value, uninterrupted[eval_before].value)
    # Equal to float rounding, not bit for bit: today's optimisers are fused (the speed issue, #24; one update is
    # checked against 05edce8's to 1e-5 in tests/methods/test_equivalence.py), and the resumed attempt keeps the
    # checkpoint's unfused optimiser settings, so the two sides round differently from the first update on.
    pd.testing.assert_frame_equal(resumed[~eval_before], uninterrupted[~eval_before], check_exact=False, rtol=1e-5,
                                  atol=1e-6)
    # and 05edce8's curve up to the stop is today's, number for number up to the same rounding (its evals aside)
    assert len(before) > 0 and before.env_step.max() <= STOPPED_AT_ENV_STEP
    before = before[~before.metric.isin(EVAL_METRICS)].reset_index(drop=True)
    key = CURVE_COLS[:5]
    pd.testing.assert_frame_equal(before, uninterrupted.merge(before[key], on=key)[CURVE_COLS], check_exact=False,
                                  rtol=1e-5, atol=1e-6)
