"""The critic-based controls on the shared DP (methods/critic_dp.py: IDQL, PA-RL) through the runner: their
rows land, and their plain-DP actor equals bc_dp at env step 0.
"""
from __future__ import annotations

import numpy as np
import pytest


# ---- through the runner -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("method", ["idql", "parl"])
def test_plain_dp_actor_equals_bc_dp_at_step_0_and_rows_land(method, demo_dataset, store_root):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store
    from tests.helpers import tiny

    cfg = resolve_config(method, "demo", 2, {**tiny(method), "preset": "test"})
    rid = run_one(cfg, store_root=store_root, sweep_id="c", progress=False)
    bc = resolve_config("bc_dp", "demo", 2, tiny("bc_dp"))
    rid_bc = run_one(bc, store_root=store_root, sweep_id="c", progress=False)
    store = Store(store_root)
    runs = store.runs(sweep="c").set_index("run_id")
    assert runs.loc[rid, "status"] == "finished"
    c = store.curves(sweep="c")
    score = c[(c.metric == "normalized_score") & (c.env_step == 0)]
    plain = score[(score.run_id == rid) & (score.actor == "dp")].value
    assert len(plain) == 1 and float(plain.iloc[0]) == float(score[score.run_id == rid_bc].value.iloc[0])
    mine = c[c.run_id == rid]
    headline = {"idql": "resample", "parl": "rerank"}[method]
    assert len(mine[(mine.metric == "normalized_score") & (mine.actor == headline) & (mine.env_step == 0)]) == 1
    critic = mine[mine.metric == "loss/critic_q"]
    assert len(critic) > 0 and np.isfinite(critic.value).all()
    dp_loss = mine[mine.metric == {"idql": "loss/dp_bc", "parl": "loss/dp_distill"}[method]]
    assert len(dp_loss) > 0 and (dp_loss.phase == "finetune").all()
