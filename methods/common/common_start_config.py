"""The `common_start` config section: how the common-start DP is trained (methods/common/common_start.py).

Why a module of its own: a config is read and checked without torch (bench/config), and the section's
defaults per task suite (DPPO's pretraining) sit with it; the schedules' meaning is in common_start.py.
"""
from __future__ import annotations

from typing import Any, Literal

from methods.common.section import ConfigError, Section


class CommonStartConfig(Section):
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

    def check(self, prefix: str) -> None:
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
# bench/config under presets and user overrides; `demo` keeps the class defaults). Sources, all in
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
