"""The critic-based controls on the shared DP (methods/critic_dp.py: IDQL, PA-RL): their chunk critics learn from
whole decisions and from decisions cut by a terminal, never from one cut short by a timeout or by the end of the
data; through the runner, their rows land, and their plain-DP actor equals bc_dp at env step 0.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.common.replay import ReplayBuffer
from tests.helpers import toy_method


def odd_episodes(m, n_offline: int = 60, n_online: int = 23) -> ReplayBuffer:
    """5-step episodes (decisions of 2 cut at each end): offline ones alternate terminal and timeout endings; the
    online ones end in timeouts, and the last one is still open."""
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=0, capacity=128)
    end = np.arange(n_offline) % 5 == 4
    term = end & (np.arange(n_offline) // 5 % 2 == 0)
    obs = rng.normal(size=(n_offline, 3)).astype(np.float32)
    buf.add_offline(obs, rng.uniform(-1, 1, (n_offline, 1)).astype(np.float32), rng.random(n_offline).astype(np.float32),
                    obs + 1, term, end & ~term)
    for i in range(n_online):
        buf.add({"obs": rng.normal(size=3), "action": rng.uniform(-1, 1, 1), "reward": float(rng.random()),
                 "next_obs": rng.normal(size=3), "terminal": False, "timeout": i % 5 == 4})
    m.attach_buffer(buf)
    return buf


@pytest.mark.parametrize("method", ["idql", "parl"])
def test_chunk_critic_drops_decisions_cut_short_by_a_timeout_or_the_data_end(method):
    """Issue 25 C2: a decision cut short by a timeout or by the end of the stored data used to reach the critic
    padded with its last action and discounted as a whole decision. Now every decision the critic learns from
    took all act_steps steps (discount γ) or ended at a terminal (no bootstrap); `pad` keeps the old data."""
    m = toy_method(method, act_steps=2)
    buf = odd_episodes(m)
    gamma = float(m.spaces.gamma)
    for source in ("offline", "online", "mixed"):
        b = m.decisions(2000, source, 0.5)
        steps = buf.sample_decisions(1, 2, idx=b["index"].numpy())["steps"]
        full = steps == 2
        assert bool((full | b["terminal"]).all()), f"{source}: {int((~full & ~b['terminal']).sum())} cut short"
        torch.testing.assert_close(b["discount"][full], torch.full((int(full.sum()),), gamma))
        if source == "offline":  # the decisions cut by a terminal stay, discounted over their one step
            cut = ~full
            assert int(cut.sum()) > 0 and bool(b["terminal"][cut].all())
            torch.testing.assert_close(b["discount"][cut], torch.full((int(cut.sum()),), gamma ** 0.5))
    pad = toy_method(method, {"critic.cut_short": "pad"}, act_steps=2)
    odd_episodes(pad)
    b = pad.decisions(2000, "mixed", 0.5)
    steps = pad.buffer.sample_decisions(1, 2, idx=b["index"].numpy())["steps"]
    assert bool(((steps < 2) & ~b["terminal"]).any())  # 05edce8's data: decisions cut by timeouts too


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
