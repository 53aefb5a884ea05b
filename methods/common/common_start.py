"""The common start: the behaviour-cloned DP that every method with `uses_pretrained_dp` starts from.

Why: bc_dp, DPPO and MODIP (and every later DP method) must start each seed from the same DP, so that their
scores at env step 0 are equal and any difference after it is the fine-tuning's. Its training has its own
config section, `common_start`, separate from `pretrain.steps` (which MODIP and TD-MPC2 also use for their own
offline training). The harness (bench/runner/common_start.py) caches the result; this module only trains it.

Schedules (configurable, defaults keep a constant lr and an EMA updated every step):
- `lr_schedule: cosine` anneals the DP optimiser's lr (dp.lr) to `lr_min` over `steps` (DPPO's pretraining:
  1e-3 cosine to 1e-4, agent/pretrain/train_agent.py with its CosineAnnealingWarmupRestarts);
- the EMA (decay dp.ema_decay) is updated every `ema_every` steps from step `ema_start` on; before that it is
  reset to the live weights, as DPPO's `update_ema_freq` / `epoch_start_ema` do.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Literal

import numpy as np
import torch

from methods.common.diffusion import DPConfig, DPModule
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer


@dataclasses.dataclass
class CommonStartConfig:
    steps: int = 20_000  # BC gradient steps
    batch_size: int = 256
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_min: float = 1e-4  # the cosine schedule's floor
    ema_every: int = 1  # EMA updates every this many steps
    ema_start: int = 0  # before this step the EMA copies the live weights
    log_every: int = 250

    def validate(self) -> None:
        from methods.config import ConfigError

        for key in ("steps", "batch_size", "ema_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'common_start.{key}' must be >= 1, got {getattr(self, key)}")
        if self.ema_start < 0:
            raise ConfigError(f"config key 'common_start.ema_start' must be >= 0, got {self.ema_start}")
        if not self.lr_min >= 0:
            raise ConfigError(f"config key 'common_start.lr_min' must be >= 0, got {self.lr_min}")


def lr_at(step: int, cfg: CommonStartConfig, lr: float) -> float:
    """The lr of gradient step `step` (0-based) of `cfg.steps`."""
    if cfg.lr_schedule == "constant":
        return lr
    frac = min(step / max(cfg.steps - 1, 1), 1.0)
    return cfg.lr_min + 0.5 * (lr - cfg.lr_min) * (1.0 + math.cos(math.pi * frac))


def train_common_start(cfg: CommonStartConfig, dp_cfg: DPConfig, obs_dim: int, act_dim: int, chunk: int,
                       normalizer: Normalizer, buffer: ReplayBuffer, seed: int, device: torch.device,
                       on_step: Callable[[int, float], None] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Train the common-start DP by BC on the buffer's offline chunks.

    Returns (state, curve): the state that `DPMethod.load_pretrained_dp` takes, and the mean loss every
    `log_every` steps as [{"grad_step", "loss/denoise"}]. `on_step(step, loss)` runs after every step."""
    torch.manual_seed(seed)
    dp = DPModule(obs_dim, act_dim, dp_cfg, chunk, device)
    curve, acc = [], []
    for step in range(cfg.steps):
        if cfg.lr_schedule != "constant":
            for g in dp.optim.param_groups:
                g["lr"] = lr_at(step, cfg, dp_cfg.lr)
        b = buffer.sample_chunks(cfg.batch_size, chunk, source="offline", device=device)
        obs, x0 = normalizer.norm_obs(b["obs"]), normalizer.norm_act(b["action_chunk"])
        n = step + 1
        plain_ema = cfg.ema_every == 1 and cfg.ema_start == 0
        loss = dp.train_step(x0, obs, generator=None, update_ema=plain_ema)
        if not plain_ema:
            if n <= cfg.ema_start:
                dp.ema.module.load_state_dict(dp.policy.state_dict())
            elif n % cfg.ema_every == 0:
                dp.ema.update(dp.policy)
        acc.append(loss)
        if n % cfg.log_every == 0 or n == cfg.steps:
            value = float(np.mean(acc))
            if not np.isfinite(value):
                raise FloatingPointError(f"non-finite loss/denoise at common-start step {n}")
            curve.append({"grad_step": n, "loss/denoise": value})
            acc = []
        if on_step is not None:
            on_step(n, loss)
    if cfg.lr_schedule != "constant":  # the fine-tuning optimiser starts from the DP's own lr
        for g in dp.optim.param_groups:
            g["lr"] = dp_cfg.lr
    state = {"dp": dp.state_dict(), "normalizer": normalizer.state_dict(), "chunk": chunk}
    return state, curve
