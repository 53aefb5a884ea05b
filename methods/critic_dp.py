"""The base of DP methods that score the common-start DP's chunks with IQL critics (IDQL, PA-RL).

Why: IDQL and PA-RL share everything but how they use the critics: the common-start DP (DPMethod), IQL's
critics over decision transitions (methods/common/iql.py), the offline phase (critic steps on the dataset, the DP
untouched), their checkpointed modules and how they are timed. A subclass's config has `critic` (an IQLConfig, from
methods/common/iql_config.py), `batch_size` and `reward_scale`. The critic takes the executed actions of a
decision, flattened (a chunk critic: DPPO's `CriticObsAct` with `action_steps`), with the chunk's rewards
summed; decisions cut short by a timeout or by the end of the data are left out (`critic.cut_short`,
methods/common/decisions.py).
"""
from __future__ import annotations

from typing import Any

import torch

from methods.base import ComponentKind, MethodContext, TimedComponent
from methods.common.iql import IQLCritics
from methods.dp_method import DPMethod, act_components


class CriticDPMethod(DPMethod):
    def __init__(self, cfg, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.critics = IQLCritics(self.spaces.obs_dim, self.act_steps * self.spaces.act_dim, cfg.critic,
                                  self.spaces.gamma, compile_train=ctx.compile_train).to(self.device)
        self.finetuning = False  # set at the first online update

    # ---- data ----------------------------------------------------------------------------------------------
    def decisions(self, n: int, source: str, online_ratio: float | None = None,
                  per_step_discount: bool = False) -> dict[str, torch.Tensor]:
        """n decision transitions: normalised states, the critic's action input (the executed chunk, normalised),
        scaled rewards, terminals, the discount of each and the buffer index of each start state.

        A decision of k of its act_steps steps is discounted over the k steps it took: γ^k with Σ γ^i r_i if
        per_step_discount, else γ^(k / act_steps) (γ is per decision of act_steps steps, DPPO's units). With
        `critic.cut_short: drop` the only decisions left with k < act_steps are those cut by a terminal, whose
        discount never enters the target; `pad` is the computation before (γ per decision whatever k)."""
        gamma = float(self.spaces.gamma)
        drop = self.cfg.critic.cut_short == "drop"
        d = self.buffer.sample_decisions(n, self.act_steps, source=source, device=self.device,
                                         online_ratio=online_ratio, step_gamma=gamma if per_step_discount else 1.0,
                                         whole=drop)
        k = d["steps"].float()
        if per_step_discount:
            discount = gamma ** k
        elif drop:
            discount = gamma ** (k / self.act_steps)
        else:
            discount = torch.full_like(d["reward"], gamma)
        return {"obs": self.normalizer.norm_obs(d["obs"]), "next_obs": self.normalizer.norm_obs(d["next_obs"]),
                "action": self.normalizer.norm_act(d["action_chunk"]), "reward": d["reward"] * self.cfg.reward_scale,
                "terminal": d["terminal"], "discount": discount, "index": d["index"]}

    def critic_update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        return self.critics.update(b["obs"], b["action"], b["reward"], b["next_obs"], b["terminal"], b["discount"])

    def pretrain(self, buffer) -> dict[str, float]:
        """One critic step on the dataset's decision transitions (the DP is the common start, untouched)."""
        return self.critic_update(self.decisions(self.cfg.batch_size, "offline"))

    # ---- timing --------------------------------------------------------------------------------------------
    def _timed(self, batch_size: int, update, per_env_step: float, settings: dict[str, Any]):
        """Every actor's act (act_steps actions per call) and, with a buffer, `update` at `per_env_step`."""
        comps = act_components(self, batch_size, self.act_steps, settings)
        if self.buffer is not None:
            comps["update"] = TimedComponent(update, ComponentKind.UPDATE, updates_per_env_step=per_env_step,
                                             settings=settings)
        return comps

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module,
                "critics": self.critics, **self.critics.optimizers()}

    def extra_state(self) -> dict[str, Any]:
        return {"finetuning": self.finetuning}
