"""The `dp` config section: the shared diffusion policy's denoiser, sampler and optimiser (methods/common/diffusion.py).

Why a module of its own: a config is read and checked without torch (bench/config), and the section's
defaults per task suite (DPPO's design) sit with it.
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal

from methods.common.section import ConfigError, Section


class DPConfig(Section):
    denoising_steps: int = 20
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    ddim_steps: int = 5
    # How a DP samples at evaluation: one harness setting (`eval.sampler`) copied here for every DP method.
    eval_sampler: Literal["ddpm", "ddim"] = "ddpm"
    chunk: int = 0  # action chunk length Ta; 0 = the task's default (4 on d4rl, as in DPPO)
    # Env actions a DP method executes of each Ta-chunk per call (DPPO's `act_steps`); 0 = the whole chunk.
    act_steps: int = 0
    # The denoiser (see the module doc). hidden = DPPO's mlp_dims; residual = its residual_style.
    hidden: list[int] = [256, 256, 256]
    residual: bool = False
    activation: Literal["mish", "relu", "gelu", "elu", "tanh", "softplus", "silu"] = "mish"
    layernorm: bool = False  # DPPO's use_layernorm
    cond_hidden: list[int] = []  # DPPO's cond_mlp_dims ([] = raw obs)
    time_dim: int = 16
    # The optimiser of the DP. The common start's own lr, schedule and clipping are in `common_start`
    # (methods/common/common_start.py); these are the fine-tuning values (and the common start's lr if
    # common_start.lr is 0).
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.995
    grad_clip: float = 1.0  # fine-tuning updates of the DP (MODIP's distillation); 0 = no clipping
    # DPPO-style: a floor on the std of each DDPM step's noise when sampling (0 = none).
    min_sampling_std: float = 0.0

    # Keys that change how the DP samples or acts but not what BC training computes (the common start's cache
    # key leaves them out).
    SAMPLING_KEYS: ClassVar[tuple[str, ...]] = ("eval_sampler", "sampler", "act_steps")

    def check(self, prefix: str) -> None:
        if self.denoising_steps < 1:
            raise ConfigError(f"config key 'dp.denoising_steps' must be >= 1, got {self.denoising_steps}")
        if not 1 <= self.ddim_steps <= self.denoising_steps:
            raise ConfigError(f"dp.ddim_steps must be in [1, dp.denoising_steps], got {self.ddim_steps}")
        if self.chunk < 0:
            raise ConfigError(f"config key 'dp.chunk' must be >= 0 (0 = the task's), got {self.chunk}")
        if self.act_steps < 0 or (self.chunk > 0 and self.act_steps > self.chunk):
            raise ConfigError(f"config key 'dp.act_steps' must be in [1, the chunk {self.chunk or 'Ta'}] "
                              f"(0 = the whole chunk), got {self.act_steps}")
        if self.time_dim < 4 or self.time_dim % 2:
            raise ConfigError(f"config key 'dp.time_dim' must be an even number >= 4, got {self.time_dim}")
        for key in ("hidden", "cond_hidden"):
            if any(w < 1 for w in getattr(self, key)):
                raise ConfigError(f"config key 'dp.{key}' must list widths >= 1, got {getattr(self, key)}")
        if self.residual and (not self.hidden or len(set(self.hidden)) != 1 or len(self.hidden) % 2 == 0):
            raise ConfigError(
                f"config key 'dp.residual'=true needs 'dp.hidden' of an odd number of equal widths (DPPO's "
                f"ResidualMLP: an input layer, then two-layer residual blocks), got {self.hidden}; "
                f"set e.g. dp.hidden=[{(self.hidden or [256])[0]}, {(self.hidden or [256])[0]}, "
                f"{(self.hidden or [256])[0]}] or dp.residual=false")

    def executed_steps(self, chunk: int) -> int:
        """The env actions executed per call of a DP whose chunk is `chunk` (act_steps, or all of it)."""
        return int(self.act_steps or chunk)


# DPPO's design as the default `dp` section of the paper's suites (bench/config applies it under a
# method's presets and the user's overrides; `demo` keeps the class defaults above). Sources, all in
# irom-princeton/dppo at cc7234a, `model.network` of the pretraining configs:
#   d4rl:      cfg/gym/pretrain/{hopper,walker2d,halfcheetah}-medium-v2/pre_diffusion_mlp.yaml (all three agree):
#              DiffusionMLP, mlp_dims [512, 512, 512], activation_type ReLU, residual_style True,
#              use_layernorm False, time_dim 16; predict_epsilon True, denoised_clip_value 1.0 (ours always).
#   kitchen:   cfg/gym/pretrain/kitchen-{complete,partial,mixed}-v0/pre_diffusion_mlp.yaml (all three agree):
#              mlp_dims [256, 256, 256], cond_mlp_dims [128, 32], residual_style True, time_dim 16, and no
#              activation_type, so DiffusionMLP's default Mish.
#   robomimic: cfg/robomimic/pretrain/{lift,can}/pre_diffusion_mlp.yaml: mlp_dims [512, 512, 512],
#              residual_style True, time_dim 16, default Mish (square: [1024]*3, cond_mlp_dims [512, 64],
#              time_dim 32; transport: [1024]*3, time_dim 32, Ta 8: set those per task).
# Everywhere: denoising_steps 20 and horizon_steps 4 (ours: dp.denoising_steps, the task's chunk); act_steps
# = horizon_steps in every fine-tuning config (cfg/gym/finetune/*/ft_ppo_diffusion_mlp.yaml,
# cfg/robomimic/finetune/*/ft_ppo_diffusion_mlp.yaml), which is our act_steps 0 (the whole chunk); the
# pretraining lr, schedule, batch and EMA schedule are `common_start` keys (COMMON_START_SUITE_DEFAULTS).
# EMA decay 0.995 (`ema.decay`) and weight decay 1e-6 (`train.weight_decay`; kitchen-partial: 1e-5) are the
# class defaults already.
DP_SUITE_DEFAULTS: dict[str, dict[str, Any]] = {
    "d4rl": {"hidden": [512, 512, 512], "residual": True, "activation": "relu", "time_dim": 16},
    "kitchen": {"hidden": [256, 256, 256], "residual": True, "activation": "mish", "cond_hidden": [128, 32],
                "time_dim": 16},
    "robomimic": {"hidden": [512, 512, 512], "residual": True, "activation": "mish", "time_dim": 16},
}
