"""The BC baselines (bc_gauss, bc_dp) through the runner: their losses fall and their rows are right."""
from __future__ import annotations

import numpy as np
import pytest

from bench.config.layers import resolve_config
from bench.runner.lifecycle import run_one
from results.store import Store
from tests.helpers import TINY


@pytest.mark.parametrize("method", ["bc_gauss", "bc_dp"])
def test_bc_loss_falls_and_rows_are_right(method, demo_dataset, store_root):
    steps = {"pretrain.steps": 300, "pretrain.log_every": 50}
    if method == "bc_dp":  # its training is the common start
        steps = {"common_start.steps": 300, "common_start.log_every": 50}
    cfg = resolve_config(method, "demo", 0, {**TINY, **steps})
    rid = run_one(cfg, store_root=store_root, sweep_id="bc", progress=False)
    c = Store(store_root).curves(sweep="bc", run_ids=[rid])
    loss = c[c.metric.str.startswith("loss/")].groupby("metric")
    for _, g in loss:
        g = g.sort_values("grad_step")
        assert g.value.iloc[-1] < g.value.iloc[0]
    sc = c[c.metric == "normalized_score"]
    assert len(sc) == 1 and sc.env_step.iloc[0] == 0 and np.isfinite(sc.value.iloc[0])
    runs = Store(store_root).runs(sweep="bc")
    assert runs.iloc[0].grad_steps == 300 and runs.iloc[0].status == "finished"
