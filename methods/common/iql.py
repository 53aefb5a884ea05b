"""IQL's critics (Kostrikov et al., 2022) over decision transitions: the estimator IDQL and PA-RL share.

Why: IDQL (Hansen-Estruch et al., 2023) and PA-RL's IQL variant both score DP samples with IQL critics, so the
estimator lives once here, built from the shared pieces in critics.py. It is not MODIP's `indep` estimator
(expectile TD on r + γV̄(s')): IQL fits V by expectile *regression* on the target critics, and Q by TD on V.
One update, in the order of DPPO's PyTorch IDQL (irom-princeton/dppo at cc7234a,
agent/finetune/train_idql_diffusion_agent.py `run`, model/diffusion/diffusion_idql.py):
  1. V:  L_V = E expectile_τ(min_k Q̄_k(s, a) - V(s))                    (`loss_critic_v`, τ default 0.8)
  2. Q:  L_Q = Σ_k E (Q_k(s, a) - r - γ (1 - terminal) V(s'))², V(s') without gradient (`loss_critic_q`;
         γ per transition: `discount`, γ for a decision in DPPO's units)
  3. Q̄ ← (1 - critic_tau) Q̄ + critic_tau Q                                (`update_target_critic`)
V and Q each have their own optimiser (AdamW, weight decay 0 there). `a` is whatever the critic is built over:
a flattened chunk of the executed actions (DPPO's `CriticObsAct` with `action_steps`), with r the chunk's summed
reward and γ applied once per decision (DPPO's MultiStep wrapper sums the chunk's rewards; its trainer's comment:
"gamma here is applied to reward every act_steps"). Rewards arrive already scaled (`reward_scale`).
The config section (IQLConfig) is in iql_config.py, which a config can be read with without torch.
"""
from __future__ import annotations

import torch
from torch import nn

from methods.common.compiling import compile_step
from methods.common.critics import QEnsemble, expectile_loss, value_net
from methods.common.diffusion import ACTIVATIONS
from methods.common.iql_config import IQLConfig
from methods.common.networks import frozen_copy, soft_update


class IQLCritics(nn.Module):
    """V(s), Q_k(s, a) and the target Q̄, with IQL's update (`update`)."""

    def __init__(self, obs_dim: int, action_dim: int, cfg: IQLConfig, gamma: float, compile_train: bool = False):
        super().__init__()
        self.cfg, self.gamma = cfg, float(gamma)
        act = ACTIVATIONS[cfg.activation]
        self.q = QEnsemble(obs_dim, action_dim, cfg.hidden, cfg.q_members, act=act, layer_norm=cfg.layer_norm,
                           residual=cfg.q_residual)
        self.v = value_net(obs_dim, cfg.hidden, act=act, layer_norm=cfg.layer_norm, residual=cfg.v_residual)
        self.q_target = frozen_copy(self.q)
        self.q_optim = torch.optim.AdamW(self.q.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.v_optim = torch.optim.AdamW(self.v.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        # the run key compile_train (methods/common/compiling.py): both losses, forward and backward, compiled
        self._v_loss = compile_step(self.v_loss, compile_train)
        self._q_loss = compile_step(self.q_loss, compile_train)

    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.v(s).squeeze(-1)

    @torch.no_grad()
    def target_min(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """min_k Q̄_k(s, a): what IDQL selects and explores with."""
        return self.q_target.min(s, a)

    def v_loss(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = self.q_target.min(s, a)
        return expectile_loss(q - self.value(s), self.cfg.expectile).mean()

    def q_loss(self, s, a, reward, next_s, terminal, discount: torch.Tensor | float | None = None) -> torch.Tensor:
        discount = self.gamma if discount is None else discount
        with torch.no_grad():
            target = reward + discount * (1.0 - terminal.float()) * self.value(next_s)
        return ((self.q(s, a) - target.unsqueeze(0)) ** 2).mean(1).sum()

    def _step(self, loss: torch.Tensor, optim: torch.optim.Optimizer, params) -> None:
        optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        optim.step()

    def update(self, s, a, reward, next_s, terminal, discount=None) -> dict[str, float]:
        """One IQL update (V, then Q, then the target), on normalised states, the critic's action input, scaled
        rewards, terminals and each transition's discount (None: gamma)."""
        v_loss = self._v_loss(s, a)
        self._step(v_loss, self.v_optim, self.v.parameters())
        q_loss = self._q_loss(s, a, reward, next_s, terminal, discount)
        self._step(q_loss, self.q_optim, self.q.parameters())
        with torch.no_grad():
            soft_update(self.q_target, self.q, self.cfg.target_tau)
        return {"loss/critic_v": float(v_loss.detach()), "loss/critic_q": float(q_loss.detach())}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"q_optim": self.q_optim, "v_optim": self.v_optim}
