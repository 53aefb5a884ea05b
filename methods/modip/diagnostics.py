"""MODIP's diagnostics in the curves: how good the world model, the DP's spread and the critics' V are.

Why a file of its own: no value computed here feeds back into training (they read the models and sample the
buffer); they are what the curves show of the models the planner relies on. The method calls them every
`diag_every` updates (`wm_diagnostics`, `dp_spread`) and at the end of each training episode
(`episode_diagnostics`), through its hooks `_wm_diagnostics`, `_dp_spread` and `_episode_diagnostics`.

- `wm/*`: the world model's one-step errors per member on offline and online data, and its one-step and
  open-loop H-step errors on true sequences (world_model.py `errors`);
- `diag/dp_spread`: the std of the DP's chunks over repeated samples at the same states;
- `diag/v_minus_mc`, `diag/v_mc_spearman`: V against the discounted Monte-Carlo returns of a finished training
  episode;
- `diag/plan_gap`: planned minus realised H-step reward at each plan of that episode.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from methods.modip import MODIP


def wm_diagnostics(m: MODIP, source: str) -> dict[str, float]:
    h = m.cfg.planner.horizon
    out: dict[str, float] = {}
    m.world_model.eval()
    # per member, one step, on offline and (once there is any) online data
    n = m.cfg.diag_sequences
    for part in ("offline", "online"):
        if part == "online" and m.buffer.n_online == 0:
            continue
        raw = m._normalised(m.buffer.sample(n, source=part, device=m.device,
                                            fields=("obs", "action", "reward", "next_obs", "terminal")))
        errs = m.world_model.member_errors(raw["obs"], raw["action"], raw["next_obs"])
        out.update({f"wm/member{k}_{part}_obs_nmse": float(e) for k, e in enumerate(errs)})
    try:
        seq = m.buffer.sample_sequences(n, h, source=source, device=m.device,
                                        online_ratio=m.online_ratio_now())
    except RuntimeError:  # no segment of length H yet
        return out
    obs = m.normalizer.norm_obs(torch.cat([seq["obs"][:, :1], seq["next_obs"]], dim=1))
    out.update(m.world_model.errors(obs, m.normalizer.norm_act(seq["action"]), seq["reward"]))
    return out


@torch.no_grad()
def dp_spread(m: MODIP, states: int = 32, samples: int = 8) -> dict[str, float]:
    """The spread of the DP's actions: the std of its chunks over repeated samples at the same states (label
    states once there are labels, else offline states), averaged over states, steps and dims."""
    if m.distilling and m.label_count() > 0:
        s = m.label_batch(states)["obs"]
    else:
        s = m.dp.batch(m.buffer, states, "offline")["obs"]
    chunks = m.dp.ema.module.sample(s.repeat(samples, 1), generator=None, sampler=m.dp_cfg.sampler)
    return {"diag/dp_spread": float(chunks.view(samples, states, *chunks.shape[1:]).std(0).mean())}


@torch.no_grad()
def episode_diagnostics(m: MODIP, ep: dict[str, np.ndarray]) -> dict[str, float]:
    """V against the episode's discounted Monte-Carlo returns (bootstrapped with V_target at a timeout, so
    exact on terminated episodes), and planned minus realised H-step reward at each plan."""
    g = m.gamma
    rewards = ep["reward"].astype(np.float64)
    terminated = bool(ep["terminal"][-1])
    tail = 0.0
    if not terminated:
        s_last = m.normalizer.norm_obs(torch.as_tensor(ep["next_obs"][-1:], device=m.device))
        tail = float(m.critics.v_target(s_last).squeeze() * m.critics.value_scale)
    returns = np.zeros(len(rewards))
    acc = tail
    for i in range(len(rewards) - 1, -1, -1):
        acc = rewards[i] + g * acc
        returns[i] = acc
    values = m.critics.value(m.normalizer.norm_obs(
        torch.as_tensor(ep["obs"], device=m.device))).cpu().numpy().astype(np.float64)
    out = {"diag/v_minus_mc": float(np.mean(values - returns))}
    if len(rewards) > 2 and values.std() > 0 and returns.std() > 0:
        out["diag/v_mc_spearman"] = spearman(values, returns)
    # planned vs realised H-step reward, where the realised window is complete (or ended by a terminal)
    h = m.cfg.planner.horizon
    planned, realised = [], []
    discounts = g ** np.arange(h)
    for j in np.flatnonzero(ep["has_plan_reward"]) if h > 0 else ():  # horizon 0 plans no reward
        window = rewards[j: j + h]
        if len(window) == h or terminated:
            planned.append(float(ep["plan_reward"][j]))
            realised.append(float((discounts[: len(window)] * window).sum()))
    if planned:
        out["diag/plan_gap"] = float(np.mean(np.subtract(planned, realised)))
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import pandas as pd

    return float(pd.Series(x).corr(pd.Series(y), method="spearman"))
