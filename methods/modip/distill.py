"""MODIP's distillation: the planner's labels, their advantage and weights, the start rule, and the DP's step.

Why a file of its own: distilling the planner into the DP is the half of MODIP's fine-tuning that the DP sees;
the world model and critic updates are the other half (the method, `__init__.py`). The method owns the
buffer, the DP, the critics and the distillation state (`distilling`, `distill_start`, `train_returns`,
`offline_return`); these functions read and step them, and the method's hooks of the same names
(`label_batch`, `label_weights`, `distill_batch`, `_start_rule`, `_distill`, ...) call them.

- a label is the Ta-chunk of planned actions executed from a stored state on (the buffer's chunk sampler over
  `plan_action`), paired with the state at its first action;
- its advantage is Q(s, label[0]) - Q(s, a_DP[0]) (first action only), its weight the `label_weighting` of it;
- labels enter the DP batch at `label_ratio`, ramped in with the labels made since distillation started
  (`label_ramp`), mixed with offline (s, chunk) pairs;
- distillation starts only once the planner's training episodes beat the data's mean episode return, and the
  other start conditions that are set hold (training-side signals only), with fresh optimiser moments.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from methods.modip import MODIP


def ramp(value: float, count: int, length: int) -> float:
    """value · min(1, count / length): a share that grows with its pool (length 0 = the full value at once)."""
    return float(value) if length <= 0 else float(value) * min(1.0, count / length)


def offline_episode_return(data: dict[str, np.ndarray]) -> tuple[float, int]:
    """The mean return of the offline data's complete episodes (those that end in a terminal or a timeout), and
    the longest one's length; (nan, 0) without a complete episode."""
    ends = np.flatnonzero(data["terminal"] | data["timeout"])
    if len(ends) == 0:
        return float("nan"), 0
    rewards = data["reward"][: ends[-1] + 1].astype(np.float64)  # drop an unfinished last episode
    starts = np.concatenate([[0], ends[:-1] + 1])
    return float(np.add.reduceat(rewards, starts).mean()), int((ends - starts + 1).max())


# ---- labels ------------------------------------------------------------------------------------------------
def label_count(m: MODIP) -> int:
    """Labels in the pool: online steps with a planned action (within the label window)."""
    return m.buffer.count_carrying("plan_action", source="online", recent=m.cfg.label_window)


def label_batch(m: MODIP, n: int) -> dict[str, torch.Tensor]:
    """n labels: normalised states, each with the Ta-chunk of noise-free planned actions executed from it on
    (the episode's last planned action repeated past its end; a chunk never waits on steps not yet taken)."""
    lab = m.buffer.sample_chunks(n, m.chunk, source="online", device=m.device, field="plan_action",
                                 require="plan_action", recent=m.cfg.label_window, complete=True)
    # planned actions are stored as planned: normalised actions in [-1, 1], the DP's own space
    return {"obs": m.normalizer.norm_obs(lab["obs"]), "chunk": lab["action_chunk"], "index": lab["index"]}


@torch.no_grad()
def label_advantage(m: MODIP, obs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A = Q(s, label[0]) - Q(s, a_DP[0]) in env units, at normalised states, with a fresh chunk of the EMA DP
    (sampled as the planner samples it; global RNG). The first action only. Returns (A, the DP's chunks)."""
    sampler = m.cfg.planner.dp_sampler or m.dp_cfg.sampler
    dp_chunks = m.dp.ema.module.sample(obs, generator=None, sampler=sampler)
    adv = m.critics.q_value(obs, labels[:, 0]) - m.critics.q_value(obs, dp_chunks[:, 0])
    return adv, dp_chunks


def label_weights(m: MODIP, adv: torch.Tensor) -> torch.Tensor:
    """The `label_weighting` of each label from its advantage (env units)."""
    mode = m.cfg.label_weighting
    if mode == "none":
        return torch.ones_like(adv)
    if mode == "filter":
        return (adv > 0).float()
    return torch.exp(m.cfg.awr_beta * adv / m.critics.value_scale).clamp(max=m.cfg.awr_max_weight)


def label_share(m: MODIP) -> float:
    """label_ratio, ramped in with the labels made since distillation started (all labels before a start is
    recorded, e.g. when a test sets `distilling` by hand)."""
    made = m.buffer.n_online - m.distill_start if m.distill_start >= 0 else m.label_count()
    return ramp(m.cfg.label_ratio, min(made, m.label_count()), m.cfg.label_ramp)


# ---- the start rule ----------------------------------------------------------------------------------------
def planner_beats_data(m: MODIP) -> bool:
    """The gate every start passes: the mean return of the planner's last `distill_start_episodes` finished
    training episodes reaches the offline data's mean episode return (False before that many episodes, and on
    data without a complete episode, whose mean return is nan)."""
    k = m.cfg.distill_start_episodes
    if k < 1 or len(m.train_returns) < k:
        return False
    return bool(float(np.mean(m.train_returns[-k:])) >= m.offline_return)


def start_rule(m: MODIP) -> dict[str, float]:
    """Start distillation once the planner beats the data (`planner_beats_data`, always required) and the pool
    holds `distill_start_labels` labels and, with the advantage rule on, their mean advantage is above 0
    (ModipConfig says why). Fine-tuning on labels starts with fresh optimiser moments: BC's Adam moments belong
    to other targets."""
    cfg, n = m.cfg, m.label_count()
    out: dict[str, float] = {}
    if n == 0 or n < cfg.distill_start_labels or not planner_beats_data(m):
        return out
    if cfg.distill_start_adv_labels > 0:
        if n < cfg.distill_start_adv_labels:
            return out
        b = m.label_batch(min(cfg.distill_batch, n))
        adv = float(m.label_advantage(b["obs"], b["chunk"])[0].mean())
        out["distill/pool_adv"] = adv
        if adv <= 0:
            return out
    m.distilling = True
    m.distill_start = int(m.buffer.n_online)
    m.dp.reset_optimizer_moments()
    out["distill/started_at"] = float(m.buffer.n_online)
    return out


# ---- the DP's distillation step ----------------------------------------------------------------------------
def distill_batch(m: MODIP, n: int) -> dict[str, torch.Tensor]:
    """Labels at the ramped label share, weighted by their advantage, mixed with offline (s, chunk) pairs
    (weight 1). `is_label` marks the label rows; `adv` and `dp_chunk` belong to them."""
    n_label = min(n, round(n * m.label_share()))
    parts: dict[str, list[torch.Tensor]] = {"obs": [], "chunk": [], "weights": [], "is_label": []}
    out: dict[str, torch.Tensor] = {}
    if n_label > 0:
        lab = m.label_batch(n_label)
        adv, dp_chunks = m.label_advantage(lab["obs"], lab["chunk"])
        parts["obs"].append(lab["obs"])
        parts["chunk"].append(lab["chunk"])
        parts["weights"].append(m.label_weights(adv))
        parts["is_label"].append(torch.ones(n_label, dtype=torch.bool, device=m.device))
        out.update(adv=adv, dp_chunk=dp_chunks, label_chunk=lab["chunk"])
    if n - n_label > 0:
        off = m.dp.batch(m.buffer, n - n_label, "offline")
        parts["obs"].append(off["obs"])
        parts["chunk"].append(off["chunk"])
        parts["weights"].append(torch.ones(n - n_label, device=m.device))
        parts["is_label"].append(torch.zeros(n - n_label, dtype=torch.bool, device=m.device))
    out.update({k: torch.cat(v) for k, v in parts.items()})
    return out


def distill(m: MODIP) -> dict[str, float]:
    """distill_updates DP steps on distillation batches, with the loss split into its label and offline parts."""
    acc: dict[str, list[float]] = {}
    for _ in range(m.cfg.distill_updates):
        b = m.distill_batch(m.cfg.distill_batch)
        loss, errors = m.dp.train_step_errors(b["chunk"], b["obs"], weights=b["weights"])
        lab = b["is_label"]
        rows = {"loss/dp_distill": loss, "distill/label_share": float(lab.float().mean())}
        if lab.any():
            w = b["weights"][lab]
            rows["loss/dp_distill_label"] = float((errors[lab] * w).sum() / w.sum().clamp_min(1e-8))
            rows["distill/label_adv"] = float(b["adv"].mean())
            rows["distill/label_kept"] = float((w > 0).float().mean())
            rows["distill/label_weight"] = float(w.mean())
            rows["distill/dp_label_dist"] = float((b["dp_chunk"] - b["label_chunk"]).abs().mean())
        if (~lab).any():
            rows["loss/dp_distill_offline"] = float(errors[~lab].mean())
        for k, v in rows.items():
            acc.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}
