"""bc_dp: behaviour cloning of a diffusion policy (DDPM, 20 steps, action chunks).

Why: the DP that DPPO and MODIP fine-tune starts here (the common start), and its online curve is flat: the
reference line every fine-tuning method must beat. The DP itself lives in methods/common/diffusion.py.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from methods.base import ActorState, ComponentKind, MethodContext, RolloutKind, TimedComponent, register
from methods.bc_dp.config import PRESETS, SUITE_DEFAULTS, BCDPConfig
from methods.dp_method import DPMethod


@register("bc_dp")
class BCDP(DPMethod):
    Config = BCDPConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS
    suite_defaults: ClassVar[dict[str, dict[str, Any]]] = SUITE_DEFAULTS
    rollout_kind = RolloutKind.NONE
    actors = ("dp",)
    uses_pretrained_dp = True
    common_start_is_product = True  # its pretraining is the common start: its curve and grad steps are bc_dp's
    pretrains_offline = False

    def __init__(self, cfg, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.bc_batch = int(ctx.common_start.batch_size) if ctx.common_start is not None else 256

    def act(self, obs, actor, state, eval_mode):
        return self.act_dp(obs, state, eval_mode)

    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module}

    def cost_settings(self):
        return {"denoising_steps": self.dp_cfg.denoising_steps if self.dp_cfg.eval_sampler == "ddpm"
                else self.dp_cfg.ddim_steps}

    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        executed = self.act_steps  # env actions the harness executes per DP call: act_steps of the chunk
        comps = {"act": TimedComponent(lambda: self.act(obs, "dp", st, True), ComponentKind.ACT, actor="dp",
                                       actions_per_call=executed)}
        if self.buffer is not None:
            # The common start's BC step: offline only, so no updates per env step.
            comps["update"] = TimedComponent(lambda: self.bc_step(self.bc_batch), ComponentKind.UPDATE,
                                             updates_per_env_step=None)
        return comps
