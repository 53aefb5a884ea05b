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

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch

from methods.common.diffusion import DPConfig, DPModule
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer


@dataclasses.dataclass
class CommonStartConfig:
    steps: int = 20_000  # BC gradient steps
    batch_size: int = 256
    lr: float = 0.0  # the pretraining's peak lr; 0 = dp.lr
    lr_schedule: Literal["constant", "cosine"] = "constant"
    lr_min: float = 1e-4  # the cosine schedule's floor, and where the warm-up starts
    lr_warmup: int = 0  # gradient steps of linear warm-up from lr_min to the peak lr
    grad_clip: float = 1.0  # the pretraining's max grad norm; 0 = none (DPPO's pretraining clips nothing)
    ema_every: int = 1  # the EMA is touched every this many gradient steps
    ema_start: int = 0  # gradient steps (not epochs) during which the EMA copies the live weights
    log_every: int = 250

    def validate(self) -> None:
        from methods.config import ConfigError

        for key in ("steps", "batch_size", "ema_every", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key 'common_start.{key}' must be >= 1, got {getattr(self, key)}")
        for key in ("ema_start", "lr_warmup"):
            if getattr(self, key) < 0:
                raise ConfigError(f"config key 'common_start.{key}' must be >= 0 gradient steps, "
                                  f"got {getattr(self, key)}")
        for key in ("lr", "lr_min", "grad_clip"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"config key 'common_start.{key}' must be >= 0, got {getattr(self, key)}")


# DPPO's pretraining as the default `common_start` section of the paper's suites (applied by
# bench/runner/config.py under presets and user overrides; `demo` keeps the class defaults). Sources, all in
# irom-princeton/dppo at cc7234a: `train` of the pretraining configs, and agent/pretrain/train_agent.py for
# what they leave to its defaults (`epoch_start_ema` 20, `update_ema_freq` 10; no clip_grad anywhere in
# agent/pretrain/, so no clipping).
#   d4rl:      cfg/gym/pretrain/{hopper,walker2d,halfcheetah}-medium-v2/pre_diffusion_mlp.yaml (all three agree):
#              batch_size 128, learning_rate 1e-3, lr_scheduler {first_cycle_steps = n_epochs = 200,
#              warmup_steps 1, min_lr 1e-4}, weight_decay 1e-6 (= dp.weight_decay).
#   kitchen:   cfg/gym/pretrain/kitchen-complete-v0/pre_diffusion_mlp.yaml: batch_size 128, learning_rate 1e-3,
#              min_lr 1e-4, warmup_steps 1, n_epochs 3000 (kitchen-mixed: batch_size 256; kitchen-partial:
#              weight_decay 1e-5).
#   robomimic: cfg/robomimic/pretrain/{lift,can,square,transport}/pre_diffusion_mlp.yaml: batch_size 256,
#              learning_rate 1e-4, min_lr 1e-5, warmup_steps 100, n_epochs 3000.
# Epochs -> gradient steps (see the module doc), on the data of each suite's reference task at DPPO's batch:
#   d4rl, hopper-medium-v2: 1,000,000 transitions in 2,186 episodes, n_chunks = 1,000,000 - 3 * 2,186 = 993,442,
#     ceil(993,442 / 128) = 7,762 steps/epoch (walker2d 7,785, halfcheetah 7,790: ~1M transitions each);
#     warm-up 1 epoch = 7,762; EMA from epoch 20: ema_start = 19 * 7,762 = 147,478; 200 epochs = 1,552,400.
#   kitchen, kitchen-complete-v0: 3,680 transitions, about 29 steps/epoch at 128; warm-up 29; ema_start
#     19 * 29 = 551 (kitchen-partial/mixed hold 136,950 transitions: ~1,060 steps/epoch at 128, ~530 at 256).
#   robomimic, lift-ph (our paper sweep's data; DPPO pretrains on the multi-human files, its
#     script/dataset/README.md): 200 demos of about 48 steps, ~9,600 transitions, ~9,000 chunks, so about 36
#     steps/epoch at 256 (an estimate: no robomimic file is at hand here); warm-up 100 epochs = 3,600;
#     ema_start 19 * 36 = 684.
# `steps` stays the budget that each run or sweep sets (DPPO's whole budget is given above for reference). The
# cosine always spans `steps`; the warm-up and the EMA start are absolute, so a budget shorter than DPPO's keeps
# DPPO's first epochs as they are, and an `ema_start` >= `steps` leaves the EMA equal to the live weights.
COMMON_START_SUITE_DEFAULTS: dict[str, dict[str, Any]] = {
    # steps: DPPO's whole budget in gradient steps (d4rl: 200 epochs x 7,762; kitchen: 8000 epochs x 29;
    # robomimic: 3000 epochs x ~36), so that ema_start and lr_warmup keep their place in it. Sweep files that
    # train less set ema_start and lr_warmup to the same fractions of their own budget.
    "d4rl": {"steps": 1_552_400, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "lr_min": 1e-4,
             "lr_warmup": 7_762, "grad_clip": 0.0, "ema_every": 10, "ema_start": 147_478},
    "kitchen": {"steps": 232_000, "batch_size": 128, "lr": 1e-3, "lr_schedule": "cosine", "lr_min": 1e-4,
                "lr_warmup": 29, "grad_clip": 0.0, "ema_every": 10, "ema_start": 551},
    "robomimic": {"steps": 108_000, "batch_size": 256, "lr": 1e-4, "lr_schedule": "cosine", "lr_min": 1e-5,
                  "lr_warmup": 3_600, "grad_clip": 0.0, "ema_every": 10, "ema_start": 684},
}


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
                       on_step: Callable[[int, float], None] | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Train the common-start DP by BC on the buffer's offline chunks.

    Returns (state, curve): the state that `DPMethod.load_pretrained_dp` takes, and the mean loss every
    `log_every` steps as [{"grad_step", "loss/denoise"}]. `on_step(step, loss)` runs after every step."""
    torch.manual_seed(seed)
    dp = DPModule(obs_dim, act_dim, dp_cfg, chunk, device)
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
