"""The common start's training (methods/common/common_start.py, issue 14, part 1): the pretraining lr
schedule (cosine, with DPPO's warm-up) and clip, and the EMA schedule.

Fast unit tests on synthetic data: no dataset, no env.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.common.common_start import lr_at, train_common_start
from methods.common.common_start_config import CommonStartConfig
from methods.common.dp_config import DPConfig
from methods.common.replay import ReplayBuffer
from tests.helpers import fitted_normalizer


# ---- the common start's schedules --------------------------------------------------------------------------
def test_cosine_schedule_runs_from_the_peak_to_lr_min_over_the_budget():
    cfg = CommonStartConfig(steps=1000, lr_schedule="cosine", lr_min=1e-4)
    lrs = [lr_at(i, cfg, 1e-3) for i in range(cfg.steps)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)
    assert lrs[500] == pytest.approx(1e-4 + 0.5 * 9e-4, rel=1e-2) and all(np.diff(lrs) <= 0)
    # with DPPO's warm-up: linear from lr_min, the peak at the end of the warm-up, lr_min at the last step
    w = CommonStartConfig(steps=1000, lr_schedule="cosine", lr_min=1e-4, lr_warmup=100)
    assert lr_at(0, w, 1e-3) == pytest.approx(1e-4) and lr_at(50, w, 1e-3) == pytest.approx(5.5e-4)
    assert lr_at(100, w, 1e-3) == pytest.approx(1e-3) and lr_at(999, w, 1e-3) == pytest.approx(1e-4)


def _buffer(seed=3, n=400, obs_dim=5, act_dim=2) -> ReplayBuffer:
    rng = np.random.default_rng(0)
    b = ReplayBuffer(obs_dim, act_dim, seed=seed)
    timeouts = np.zeros(n, bool)
    timeouts[99::100] = True
    b.add_offline(rng.normal(size=(n, obs_dim)).astype(np.float32), rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
                  np.ones(n, np.float32), rng.normal(size=(n, obs_dim)).astype(np.float32), np.zeros(n, bool), timeouts)
    return b


def _train(cs: CommonStartConfig, dp: DPConfig | None = None):
    dp = dp or DPConfig(hidden=[16, 16])
    return train_common_start(cs, dp, 5, 2, 4, fitted_normalizer(), _buffer(), 0, torch.device("cpu"))[0]


def test_the_training_loop_uses_the_pretraining_lr_schedule_and_clip(monkeypatch):
    """The optimiser sees common_start.lr's cosine (not dp.lr), common_start.grad_clip (not dp.grad_clip),
    and goes back to dp.lr, the fine-tuning lr, at the end."""
    from methods.common import diffusion

    seen = []
    original = diffusion.DPModule.train_step

    def spy(self, *a, **kw):
        seen.append((self.optim.param_groups[0]["lr"], kw.get("grad_clip")))
        return original(self, *a, **kw)

    monkeypatch.setattr(diffusion.DPModule, "train_step", spy)
    cs = CommonStartConfig(steps=20, batch_size=8, lr=1e-3, lr_schedule="cosine", lr_min=1e-4, grad_clip=0.0)
    state = _train(cs)
    lrs = [lr for lr, _ in seen]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4) and {c for _, c in seen} == {0.0}
    assert state["dp"]["optim"]["param_groups"][0]["lr"] == DPConfig().lr


def test_ema_copies_the_live_weights_until_ema_start_then_lags():
    def ema_and_live(steps, **kw):
        st = _train(CommonStartConfig(steps=steps, batch_size=8, ema_start=6, **kw))["dp"]
        return st["ema"], st["policy"]

    with pytest.warns(UserWarning, match="never averages"):
        ema6, live6 = ema_and_live(6)  # the budget ends at ema_start: the EMA is still the live weights
    assert all(torch.equal(ema6[k], live6[k]) for k in live6)
    ema12, live12 = ema_and_live(12)  # six averaged steps later the EMA trails the live weights
    keys = [k for k in live12 if live12[k].is_floating_point()]
    dist = lambda a, b: sum(float((a[k] - b[k]).norm() ** 2) for k in keys) ** 0.5
    assert dist(ema12, live12) > 0
    # same seed and data: the first 6 steps are the same, and the EMA stays near where it started averaging
    assert dist(ema12, live6) < dist(live12, live6)
    # DPPO's cadence (update_ema_freq 10): touched after steps 1, 11, 21, ...; before ema_start a touch copies
    ema, live = ema_and_live(11, ema_every=10)  # touched after step 1 (1 <= 6: a copy) and step 11 (averaged)
    assert dist(ema, live) > 0
    ema, live = ema_and_live(10, ema_every=10)  # touched after step 1 only: the copy of step 1's weights
    with pytest.warns(UserWarning, match="never averages"):
        st1 = _train(CommonStartConfig(steps=1, batch_size=8, ema_start=6, ema_every=10))["dp"]["policy"]
    assert all(torch.equal(ema[k], st1[k]) for k in keys) and dist(ema, live) > 0


def test_ema_start_past_the_budget_warns():
    with pytest.warns(UserWarning, match="never averages"):
        _train(CommonStartConfig(steps=3, batch_size=8, ema_every=10, ema_start=100))
