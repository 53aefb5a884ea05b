"""Contract tests, parametrised over every registered method.

- a tiny run lands a finished run row and eval curves; its losses are finite;
- save mid-run, load, continue: the curve equals the uninterrupted run's (on the CPU, same threads);
- evaluation does not disturb training state;
- the config round-trips through the store.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bench.config.layers import from_json, resolve_config
from bench.config.run import run_id_of
from bench.runner.lifecycle import run_one
from bench.runner.stops import Preempted, request_stop_at
from methods.registry import registered_methods
from results.store import Store
from tests.helpers import tiny

METHODS = sorted(registered_methods())
# Resume and eval checks of the planning and critic-based methods take 7-20 s each on 2 busy cores: `slow`, so
# that `make test-fast` stays short. It still runs every method's tiny run, and these checks for the others.
SLOW = {"idql", "modip", "parl", "tdmpc2"}
METHODS_SLOW_MARKED = [pytest.param(m, marks=pytest.mark.slow) if m in SLOW else m for m in METHODS]


def _tiny(method: str, seed: int = 0, **extra):
    cls = registered_methods()[method]
    over = tiny(method)
    if "test" in (cls.Config.presets or {}):
        over["preset"] = "test"
    elif "demo" in (cls.Config.presets or {}):
        over["preset"] = "demo"
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


def _curve(store_root, sweep, rid) -> pd.DataFrame:
    c = Store(store_root).curves(sweep=sweep, run_ids=[rid])
    cols = ["phase", "env_step", "grad_step", "actor", "metric", "value", "n_episodes"]
    return c[cols].sort_values(cols[:5]).reset_index(drop=True)


@pytest.mark.parametrize("method", METHODS)
def test_tiny_run_lands_in_store(method, demo_dataset, store_root):
    cfg = _tiny(method)
    rid = run_one(cfg, store_root=store_root, sweep_id="t", progress=False)
    store = Store(store_root)
    runs = store.runs(sweep="t")
    assert list(runs.run_id) == [rid]
    row = runs.iloc[0]
    assert row.status == "finished" and row.method == method and row.task == "demo"
    # the config round-trips through the store
    assert json.loads(row.config_json) == cfg.to_json()
    assert run_id_of(from_json(json.loads(row.config_json))) == rid
    c = store.curves(sweep="t")
    scores = c[c.metric == "normalized_score"]
    cls = registered_methods()[method]
    assert set(scores.actor) == set(cls.actors)
    assert scores.env_step.min() == 0
    if cls.rollout_kind != "none":
        # evals on the grid (first chunk boundary at or after each grid step) plus the final one
        steps = sorted(scores[scores.actor == cls.actors[0]].env_step)
        assert steps[-1] >= cfg.online.steps and len(steps) >= 3
        assert int(row.env_steps) >= cfg.online.steps
    losses = c[c.metric.str.startswith("loss")]
    assert len(losses) > 0 and np.isfinite(losses.value).all()
    assert (scores.n_episodes == cfg.eval.episodes).all()


@pytest.mark.parametrize("method", METHODS_SLOW_MARKED)
def test_resume_equals_uninterrupted(method, demo_dataset, tmp_path):
    cls = registered_methods()[method]
    cfg = _tiny(method)
    a = run_one(cfg, store_root=tmp_path / "a", sweep_id="r", progress=False)
    # interrupt: online methods mid-online, the others right after pretraining
    if cls.rollout_kind == "none":
        request_stop_at(grad_step=cfg.pretrain.steps)
    else:
        request_stop_at(env_step=cfg.online.steps // 2)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=tmp_path / "b", sweep_id="r", progress=False)
    st = Store(tmp_path / "b").runs(sweep="r")
    assert st.iloc[0].status == "preempted"
    b = run_one(cfg, store_root=tmp_path / "b", sweep_id="r", progress=False)
    assert a == b
    rb = Store(tmp_path / "b").runs(sweep="r").iloc[0]
    assert rb.status == "finished" and int(rb.attempt) == 2
    ca, cb = _curve(tmp_path / "a", "r", a), _curve(tmp_path / "b", "r", b)
    pd.testing.assert_frame_equal(ca, cb)


@pytest.mark.parametrize("method", METHODS_SLOW_MARKED)
def test_eval_does_not_disturb_training(method, demo_dataset, tmp_path):
    """Two runs that differ only in how often they evaluate have the same training losses."""
    cls = registered_methods()[method]
    if cls.rollout_kind == "none":
        pytest.skip("no online phase: evaluation happens after training only")
    c1 = _tiny(method)
    c2 = _tiny(method, **{"eval.every": 40})
    r1 = run_one(c1, store_root=tmp_path / "a", sweep_id="e", progress=False)
    r2 = run_one(c2, store_root=tmp_path / "b", sweep_id="e", progress=False)
    l1, l2 = _curve(tmp_path / "a", "e", r1), _curve(tmp_path / "b", "e", r2)
    keep = lambda c: c[~c.metric.isin(["return", "normalized_score", "success"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(keep(l1), keep(l2))
    e2 = l2[l2.metric == "return"]
    assert e2.env_step.nunique() > l1[l1.metric == "return"].env_step.nunique()
