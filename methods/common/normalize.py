"""Observation and action normalisers, fitted once on the offline data and then frozen.

Why: every network of a method, and the planner's sampling space, must see the same normalised, clipped
spaces; the normalisers are saved in checkpoints and carried by the common-start DP checkpoint.
Observations: z-score (std floored). Actions: affine map of the env's [low, high] box to [-1, 1], so MPPI and
the DP sample in the same clipped space.
"""
from __future__ import annotations

import numpy as np
import torch


class Normalizer(torch.nn.Module):
    def __init__(self, obs_mean, obs_std, act_low, act_high):
        super().__init__()
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(obs_mean), dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(np.asarray(obs_std), dtype=torch.float32))
        self.register_buffer("act_low", torch.as_tensor(np.asarray(act_low), dtype=torch.float32))
        self.register_buffer("act_high", torch.as_tensor(np.asarray(act_high), dtype=torch.float32))

    @classmethod
    def fit(cls, observations: np.ndarray, act_low, act_high, std_floor: float = 1e-3) -> Normalizer:
        obs = np.asarray(observations, dtype=np.float64)
        mean = obs.mean(axis=0)
        std = np.maximum(obs.std(axis=0), std_floor)
        return cls(mean, std, act_low, act_high)

    @classmethod
    def from_state(cls, state: dict) -> Normalizer:
        return cls(state["obs_mean"], state["obs_std"], state["act_low"], state["act_high"])

    def norm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    def unnorm_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return obs * self.obs_std + self.obs_mean

    def norm_act(self, act: torch.Tensor) -> torch.Tensor:
        span = (self.act_high - self.act_low).clamp_min(1e-6)
        return (2.0 * (act - self.act_low) / span - 1.0).clamp(-1.0, 1.0)

    def unnorm_act(self, act: torch.Tensor) -> torch.Tensor:
        act = act.clamp(-1.0, 1.0)
        return self.act_low + (act + 1.0) * 0.5 * (self.act_high - self.act_low)
