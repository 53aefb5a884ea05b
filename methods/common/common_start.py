"""The common start: the behaviour-cloned DP that every method with `uses_pretrained_dp` starts from.

Why: bc_dp, DPPO and MODIP (and every later DP method) must start each seed from the same DP, so that their
scores at env step 0 are equal and any difference after it is the fine-tuning's. Its training has its own
config section, `common_start`, separate from `pretrain.steps` (which MODIP and TD-MPC2 also use for their own
offline training). The harness (bench/runner/common_start.py) caches the result; this module only trains it.

Schedules (configurable; the class defaults keep today's constant lr, an EMA updated every step, and the
fine-tuning clip of 1.0; DPPO's pretraining is the default on the paper's suites, COMMON_START_SUITE_DEFAULTS):
- `lr` is the pretraining's peak lr (0 = dp.lr, the DP's fine-tuning lr); `lr_schedule: cosine` anneals it to
  `lr_min` at the last of `steps`, after `lr_warmup` steps of linear warm-up from `lr_min` (DPPO's pretraining:
  1e-3 cosine to 1e-4 over the whole budget with a one-epoch warm-up, agent/pretrain/train_agent.py with
  util/scheduler.py `CosineAnnealingWarmupRestarts`, first_cycle_steps = n_epochs). DPPO steps its scheduler
  once per epoch, so its lr is constant within an epoch; ours moves every step. After the common start the
  optimiser's lr goes back to dp.lr, the fine-tuning value;
- the EMA (decay dp.ema_decay) is touched every `ema_every` steps, after steps 1, 1 + ema_every, ... (DPPO's
  `cnt_batch % update_ema_freq == 0`): it copies the live weights while the step is <= `ema_start` and
  averages them in after (DPPO's `epoch_start_ema`, `step_ema`);
- `grad_clip` is the pretraining's max grad norm (0 = none, as in DPPO's pretraining), separate from
  dp.grad_clip, which clips the DP's fine-tuning updates.

Units: every count here is in gradient steps. DPPO counts its warm-up, EMA start and budget in epochs; one
epoch is ceil(n_chunks / batch_size) gradient steps, n_chunks = sum over episodes of (length - Ta + 1) (its
StitchedSequenceDataset.make_indices, DataLoader without drop_last). DPPO's `epoch_start_ema: 20` means the
EMA averages from the 20th epoch on (epochs count from 1), so ema_start = 19 epochs of steps.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from methods.common.common_start_config import CommonStartConfig
from methods.common.diffusion import DPModule
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer


def lr_at(step: int, cfg: CommonStartConfig, lr: float) -> float:
    """The lr of gradient step `step` (0-based) of `cfg.steps`, for the peak lr `lr`: a linear warm-up from
    lr_min over the first lr_warmup steps (DPPO's CosineAnnealingWarmupRestarts formula), then constant, or
    a cosine that reaches lr_min at the last step."""
    w = cfg.lr_warmup
    if step < w:
        return cfg.lr_min + (lr - cfg.lr_min) * step / w
    if cfg.lr_schedule == "constant":
        return lr
    frac = min((step - w) / max(cfg.steps - 1 - w, 1), 1.0)
    return cfg.lr_min + 0.5 * (lr - cfg.lr_min) * (1.0 + math.cos(math.pi * frac))


def train_common_start(cfg: CommonStartConfig, dp_cfg: DPConfig, obs_dim: int, act_dim: int, chunk: int,
                       normalizer: Normalizer, buffer: ReplayBuffer, seed: int, device: torch.device,
                       on_step: Callable[[int, float], None] | None = None,
                       compile_train: bool = False) -> tuple[dict[str, Any], list[dict]]:
    """Train the common-start DP by BC on the buffer's offline chunks.

    Returns (state, curve): the state that `DPMethod.load_pretrained_dp` takes, and the mean loss every
    `log_every` steps as [{"grad_step", "loss/denoise"}]. `on_step(step, loss)` runs after every step.
    compile_train: the denoising step compiled (methods/common/compiling.py)."""
    torch.manual_seed(seed)
    dp = DPModule(obs_dim, act_dim, dp_cfg, chunk, device, compile_train)
    peak = cfg.lr or dp_cfg.lr
    scheduled = cfg.lr_schedule != "constant" or cfg.lr_warmup > 0 or peak != dp_cfg.lr
    plain_ema = cfg.ema_every == 1 and cfg.ema_start == 0  # an EMA update after every step, inside train_step
    if not plain_ema and cfg.ema_start >= cfg.steps:
        warnings.warn(f"common_start.ema_start={cfg.ema_start} gradient steps >= common_start.steps={cfg.steps}: "
                      f"the EMA never averages, so the common start is the live weights", stacklevel=2)
    curve, acc = [], []
    for step in range(cfg.steps):
        if scheduled:
            for g in dp.optim.param_groups:
                g["lr"] = lr_at(step, cfg, peak)
        b = buffer.sample_chunks(cfg.batch_size, chunk, source="offline", device=device)
        obs, x0 = normalizer.norm_obs(b["obs"]), normalizer.norm_act(b["action_chunk"])
        n = step + 1
        loss = dp.train_step(x0, obs, generator=None, update_ema=plain_ema, grad_clip=cfg.grad_clip)
        if not plain_ema and step % cfg.ema_every == 0:  # after steps 1, 1 + ema_every, ... as DPPO
            if n <= cfg.ema_start:
                dp.ema.module.load_state_dict(dp.policy.state_dict())
            else:
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
    if scheduled:  # the fine-tuning optimiser starts from the DP's own lr
        for g in dp.optim.param_groups:
            g["lr"] = dp_cfg.lr
    state = {"dp": dp.state_dict(), "normalizer": normalizer.state_dict(), "chunk": chunk}
    return state, curve
