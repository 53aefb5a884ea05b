"""The base of DP methods that score the common-start DP's chunks with IQL critics (IDQL, PA-RL).

Why: IDQL and PA-RL share everything but how they use the critics: the common-start DP (DPMethod), IQL's
critics over decision transitions (methods/common/iql.py), the offline phase (critic steps on the dataset, the DP
untouched), and their checkpointed modules. A subclass's config has `critic` (an IQLConfig, from
methods/common/iql_config.py), `batch_size` and `reward_scale`. The critic takes the executed actions of a
decision, flattened (a chunk critic: DPPO's `CriticObsAct` with `action_steps`), with the chunk's rewards
summed.
"""
from __future__ import annotations

from typing import Any

import torch

from methods.base import MethodContext
from methods.common.iql import IQLCritics
from methods.dp_method import DPMethod


class CriticDPMethod(DPMethod):
    rollout_kind = "off_policy"
    uses_pretrained_dp = True

    def __init__(self, cfg, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.critics = IQLCritics(self.spaces.obs_dim, self.act_steps * self.spaces.act_dim, cfg.critic,
                                  self.spaces.gamma).to(self.device)
        self.finetuning = False  # set by end_pretrain

    # ---- data ----------------------------------------------------------------------------------------------
    def pretrain_batch_size(self) -> int:
        return int(self.cfg.batch_size)

    def pretrain_batch(self):
        return None  # the critic step draws its decision transitions itself

    def decisions(self, n: int, source: str, online_ratio: float | None = None,
                  per_step_discount: bool = False) -> dict[str, torch.Tensor]:
        """n decision transitions: normalised states, the critic's action input (the executed chunk, normalised),
        scaled rewards, terminals, the discount of each (γ per decision; γ^k with Σ γ^i r_i if per_step_discount)
        and the buffer index of each start state."""
        gamma = float(self.spaces.gamma)
        d = self.buffer.sample_decisions(n, self.act_steps, source=source, device=self.device,
                                         online_ratio=online_ratio, step_gamma=gamma if per_step_discount else 1.0)
        discount = gamma ** d["steps"].float() if per_step_discount else torch.full_like(d["reward"], gamma)
        return {"obs": self.normalizer.norm_obs(d["obs"]), "next_obs": self.normalizer.norm_obs(d["next_obs"]),
                "action": self.normalizer.norm_act(d["action_chunk"]), "reward": d["reward"] * self.cfg.reward_scale,
                "terminal": d["terminal"], "discount": discount, "index": d["index"]}

    def critic_update(self, b: dict[str, torch.Tensor]) -> dict[str, float]:
        return self.critics.update(b["obs"], b["action"], b["reward"], b["next_obs"], b["terminal"], b["discount"])

    def pretrain_step(self, batch=None) -> dict[str, float]:
        m = self.critic_update(self.decisions(self.cfg.batch_size, "offline"))
        self.grad_steps += 1
        return m

    # ---- timing (DPMethod.timed_components: every actor and the update at update_rate) ---------------------
    def denoising_steps(self) -> int:
        """Denoising steps of one DP sample at evaluation."""
        return self.dp_cfg.ddim_steps if self.dp_cfg.eval_sampler == "ddim" else self.dp_cfg.denoising_steps

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module,
                "critics": self.critics, **self.critics.optimizers()}

    def extra_state(self) -> dict[str, Any]:
        return {"finetuning": self.finetuning}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.finetuning = bool(state.get("finetuning", False))
