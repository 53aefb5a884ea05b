"""bc_dp: behaviour cloning of a diffusion policy (DDPM, 20 steps, action chunks).

Why: the DP that DPPO and MODIP fine-tune starts here (the common start), and its online curve is flat: the
reference line every fine-tuning method must beat. The DP itself lives in methods/common/diffusion.py.
It is the template of a DP method (methods/dp_method.py): it has neither `pretrain` nor `update`, so the common
start is its own product (its pretraining curve and grad steps are the common start's), and it acts with the
shared DP's `act`.
"""
from __future__ import annotations

import numpy as np

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.bc_dp.config import ACTORS, BCDPConfig
from methods.dp_method import DPMethod


@register("bc_dp")
class BCDP(DPMethod):
    Config = BCDPConfig
    actors = ACTORS

    def __init__(self, cfg, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.bc_batch = int(ctx.common_start.batch_size) if ctx.common_start is not None else 256

    def act(self, obs, actor, state, eval_mode):
        return self.dp.act(obs, state.generator, eval_mode), {}

    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module}

    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        settings = {"denoising_steps": self.dp.denoising_steps()}
        executed = self.act_steps  # env actions the harness executes per DP call: act_steps of the chunk
        comps = {"act": TimedComponent(lambda: self.act(obs, "dp", st, True), ComponentKind.ACT, actor="dp",
                                       actions_per_call=executed, settings=settings)}
        if self.buffer is not None:
            # The common start's BC step: offline only, so no updates per env step.
            comps["update"] = TimedComponent(lambda: self.dp.bc_step(self.buffer, self.bc_batch),
                                             ComponentKind.UPDATE, updates_per_env_step=None, settings=settings)
        return comps
