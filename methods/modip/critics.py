"""MODIP's critics, V(s) and Q(s, a), on the axis `critic.target` ∈ {indep, policy}.

Why: the paper's training-time claim is that the critics MPC needs can be learned without sampling the
diffusion policy. The two settings make that claim testable side by side:

- `indep` (MODIP). V is learned by expectile TD on dataset and replay transitions (IQL's expectile loss,
  Kostrikov et al. 2022, eq. 5, applied to a one-step TD target instead of Q):
      u = r + γ (1 - terminal) V_target(s') - V(s),    L_V = E |τ - 1(u < 0)| u²,
  and Q is regressed on the same target, L_Q = Σ_k E (Q_k(s, a) - r - γ (1 - terminal) V_target(s'))².
  Neither samples the DP. V_target is an EMA (Polyak) copy of V.
- `policy` (the TD-MPC2-style control). Q is regressed on r + γ (1 - terminal) min_k Q̄_k(s', a'), with a' the
  first action of a DP chunk sampled at s'. V is distilled from the same critic, V(s) ← min_k Q̄_k(s, a ~ DP(s)),
  so V(s) = E Q(s, a ~ DP) in expectation; a terminal-V planner then still costs no DP chain at plan time, and
  the 2×2 (terminal × target) separates the inference-time claim from the training-time one.

Both bootstrap through timeouts and never through terminals: the mask is (1 - terminal) only.
Values are learned in units of `value_scale` = mean |r| / (1 - γ), set once from the offline data, so the
regression targets are O(1) whatever the task's reward scale; `value()` and `q_value()` return env units.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from methods.common.compiling import compile_step
from methods.common.critics import QEnsemble, expectile_loss, value_net
from methods.common.mish import Mish
from methods.common.networks import frozen_copy, soft_update
from methods.modip.config import CriticConfig


class Critics(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: CriticConfig, gamma: float, compile_train: bool = False):
        super().__init__()
        self.cfg, self.gamma = cfg, gamma
        self.v = value_net(obs_dim, cfg.hidden, act=Mish, layer_norm=True)
        self.q = QEnsemble(obs_dim, act_dim, cfg.hidden, cfg.q_members, act=Mish, layer_norm=True)
        self.v_target = frozen_copy(self.v)
        self.q_target = frozen_copy(self.q)
        self.register_buffer("value_scale", torch.ones(()))
        # the run key compile_train (methods/common/compiling.py): the losses, forward and backward, compiled (the
        # policy target's DP chain stays eager)
        self._indep_losses = compile_step(self.indep_losses, compile_train)
        self._policy_losses = compile_step(self.policy_losses, compile_train)

    def set_value_scale(self, rewards: torch.Tensor) -> None:
        self.value_scale.fill_(float(rewards.abs().mean().clamp_min(1e-3)) / (1.0 - self.gamma))

    def parameters_to_train(self):
        return [*self.v.parameters(), *self.q.parameters()]

    # ---- values in env units (the planner's view) ----
    def value(self, s: torch.Tensor) -> torch.Tensor:
        return self.v(s).squeeze(-1) * self.value_scale

    def q_value(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The ensemble mean of Q over members (TD-MPC2 plans with the average of its Qs)."""
        return self.q.mean(s, a) * self.value_scale

    # ---- the TD losses (in units of value_scale) ----
    def loss(self, batch: dict[str, torch.Tensor],
             dp_first_action: Callable[[torch.Tensor], torch.Tensor] | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """batch: normalised obs/next_obs, normalised action, reward, terminal (B,). `dp_first_action(s)` samples
        the DP's first action at normalised states (policy target only)."""
        s, a, s2 = batch["obs"], batch["action"], batch["next_obs"]
        r = batch["reward"] / self.value_scale
        not_done = 1.0 - batch["terminal"].float()  # bootstrap through timeouts, never through terminals
        if self.cfg.target == "indep":
            v_loss, q_loss, v_pred = self._indep_losses(s, a, s2, r, not_done)
        else:
            assert dp_first_action is not None, "critic.target=policy samples the DP in every update"
            with torch.no_grad():
                b = s.shape[0]
                acts = dp_first_action(torch.cat([s2, s], dim=0))  # one batched chain for s' and s
                a2, a_pi = acts[:b], acts[b:]
                q_next = self.q_target.min(s2, a2)
                target = r + self.gamma * not_done * q_next
                v_target = self.q_target.min(s, a_pi)
            v_loss, q_loss, v_pred = self._policy_losses(s, a, target, v_target)
        metrics = {"loss/v": float(v_loss.detach()), "loss/q": float(q_loss.detach()),
                   "critic/v_mean": float(v_pred.detach().mean() * self.value_scale)}
        return v_loss + q_loss, metrics

    def indep_losses(self, s: torch.Tensor, a: torch.Tensor, s2: torch.Tensor, r: torch.Tensor,
                     not_done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_V, L_Q, V(s)) of the `indep` target."""
        q_pred = self.q(s, a)  # (K, B)
        v_pred = self.v(s).squeeze(-1)
        with torch.no_grad():
            target = r + self.gamma * not_done * self.v_target(s2).squeeze(-1)
        v_loss = expectile_loss(target - v_pred, self.cfg.expectile).mean()
        return v_loss, self._q_loss(q_pred, target), v_pred

    def policy_losses(self, s: torch.Tensor, a: torch.Tensor, target: torch.Tensor,
                      v_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_V, L_Q, V(s)) of the `policy` target, given its targets (the DP chain's, computed outside)."""
        q_pred = self.q(s, a)
        v_pred = self.v(s).squeeze(-1)
        return ((v_pred - v_target) ** 2).mean(), self._q_loss(q_pred, target), v_pred

    @staticmethod
    def _q_loss(q_pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((q_pred - target.unsqueeze(0)) ** 2).mean(1).sum()

    @torch.no_grad()
    def update_targets(self) -> None:
        soft_update(self.v_target, self.v, self.cfg.target_tau)
        soft_update(self.q_target, self.q, self.cfg.target_tau)
