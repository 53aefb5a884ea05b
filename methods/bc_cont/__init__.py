"""bc_cont: the continued-BC control. The common-start DP keeps behaviour cloning on the offline data online.

Why: a fine-tuner whose DP ends above bc_dp (the common start) may only have taken more BC steps, if BC had not
reached its plateau. This control takes the common start and, online, as many DP gradient steps per env step
as MODIP's distillation takes (the `bc_cont` section's defaults say whose schedule), on offline (s, chunk) pairs
only, with fresh optimiser moments at the first online step as MODIP's distillation starts with; it acts with its
DP (the collected data is never trained on). So "above bc_dp" is also measured against "above more BC" (the
hopper issue's part B1 control). Its `dp` actor is evaluated like every DP method's.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.bc_cont.config import ACTORS, BCContConfig
from methods.dp_method import DPMethod


@register("bc_cont")
class BCCont(DPMethod):
    Config = BCContConfig
    actors = ACTORS

    def __init__(self, cfg: BCContConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.started = False  # fresh moments and the continuing lr / EMA decay are set (at the first update)

    def act(self, obs, actor, state, eval_mode):
        return self.dp.act(obs, state.generator, eval_mode), {}

    def _start(self) -> None:
        """At the first online update: fresh Adam moments (as MODIP's distillation starts), lr and EMA decay."""
        if not self.started:
            self.started = True
            self.dp.reset_optimizer_moments()
        if self.cfg.lr > 0:
            for group in self.dp.optim.param_groups:
                group["lr"] = self.cfg.lr
        if self.cfg.ema_decay > 0:
            self.dp.ema.decay = self.cfg.ema_decay

    def update(self, buffer, env_step: int) -> list[dict[str, float]]:
        """updates_per_round BC steps on offline chunks every update_every env steps."""
        self._start()
        due = self.cfg.updates_per_round if env_step % self.cfg.update_every == 0 else 0
        return [{"loss/dp_bc": self.dp.bc_step(buffer, self.cfg.batch_size, "offline")} for _ in range(due)]

    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module}

    def extra_state(self) -> dict[str, Any]:
        return {"started": self.started}

    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        settings = {"denoising_steps": self.dp.denoising_steps(), "batch_size": self.cfg.batch_size}
        comps = {"act": TimedComponent(lambda: self.act(obs, "dp", st, True), ComponentKind.ACT, actor="dp",
                                       actions_per_call=self.act_steps, settings=settings)}
        if self.buffer is not None:
            comps["update"] = TimedComponent(lambda: self.dp.bc_step(self.buffer, self.cfg.batch_size),
                                             ComponentKind.UPDATE, settings=settings,
                                             updates_per_env_step=self.cfg.updates_per_round / self.cfg.update_every)
        return comps
