"""DSRL's learner: the noise policy π^W, its critics and their updates, on tensors (no buffer, no env).

Why apart from the method: this is the part that the one-update check (benchmarks/dsrl_check_official.py) puts
beside the official code with the same weights and batch, so it takes its batch and the DP's chain as arguments.
Sources: ajwagen/dsrl at 8d21b9c and its Stable-Baselines3 fork at 10e5d311 (stable_baselines3/dsrl/dsrl.py,
`DSRL.train` and `update_noise_critic`; stable_baselines3/sac/sac.py `SAC.train` for DSRL-SAC).

One gradient step (`gradient_step`), in the fork's order, on a batch of decision transitions (s, a, r, s', d):
  1. w, log π(w|s) = π^W(s) (reparameterised); α = exp(log α) read before its step; α's loss
     -log α (log π + target entropy), an Adam step.
  2. TD target under no grad: w' ~ π^W(s'), y = r + γ (1 - d) (min_k Q̄_k(s', x') - α log π(w'|s')), where
     x' = DP(s', w') (DSRL-NA: Q^A is over actions) or x' = w' (DSRL-SAC: Q is over noise).
  3. critic loss ½ Σ_k MSE(Q_k(s, x), y) with x the buffer's executed chunk (NA) or its noise (SAC); an Adam step.
  4. actor loss E[α log π - min_k Q^W_k(s, w)] (NA: through the noise critic Q^W, never through Q^A or the DP)
     or E[α log π - min_k Q_k(s, w)] (SAC; Q after its step, as SB3 computes it); an Adam step.
  5. Q̄ ← (1 - τ) Q̄ + τ Q (target_update_interval 1). Q^W has no target.
DSRL-NA's distillation step (`distill_step`, `noise_critic_grad_steps` of them after the gradient steps of a train
call): w ~ N(0, I), unclipped, the targets Q_k(s, DP(s, w)) of the online Q^A (no min: head k to head k),
loss ½ Σ_k MSE(Q^W_k(s, w), Q_k(s, DP(s, w))), an Adam step.
Noise enters the critics in the policy's [-1, 1] space (SB3's scale_action: w / bound; the identity for DSRL-NA
at its bound 1).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
from torch import nn

from methods.common.critics import QEnsemble
from methods.common.diffusion import ACTIVATIONS
from methods.common.networks import frozen_copy, soft_update
from methods.common.sac import SquashedGaussianActor, Temperature, actor_loss


@dataclasses.dataclass
class LearnerSpec:
    """The learner's settings (from DsrlConfig)."""

    variant: Literal["na", "sac"]
    hidden: list[int]
    activation: str
    layer_norm: bool
    critics: int
    backup: Literal["min", "mean"]
    lr: float
    tau: float
    ent_init: float
    target_entropy: float
    log_std_min: float
    log_std_max: float
    noise_bound: float
    tanh_eps: float = 0.0


class DsrlLearner(nn.Module):
    """π^W(w | s) over the flattened noise, Q (Q^A over (s, executed chunk) for NA, over (s, w) for SAC), its
    target, Q^W(s, w) (NA only), and SAC's temperature; one Adam optimiser each, all at `lr`."""

    def __init__(self, obs_dim: int, noise_dim: int, action_dim: int, spec: LearnerSpec, gamma: float):
        super().__init__()
        self.spec, self.gamma = spec, float(gamma)
        act = ACTIVATIONS[spec.activation]
        self.actor = SquashedGaussianActor(obs_dim, noise_dim, spec.hidden, act=act, layer_norm=spec.layer_norm,
                                           log_std_min=spec.log_std_min, log_std_max=spec.log_std_max,
                                           scale=spec.noise_bound, tanh_eps=spec.tanh_eps)
        q_in = action_dim if spec.variant == "na" else noise_dim
        self.q = QEnsemble(obs_dim, q_in, spec.hidden, spec.critics, act=act, layer_norm=spec.layer_norm,
                           member_norms=True)
        self.q_target = frozen_copy(self.q)
        self.qw = (QEnsemble(obs_dim, noise_dim, spec.hidden, spec.critics, act=act, layer_norm=spec.layer_norm,
                             member_norms=True) if spec.variant == "na" else None)
        self.temperature = Temperature(spec.ent_init, spec.target_entropy)
        self.actor_optim = torch.optim.Adam(self.actor.parameters(), lr=spec.lr, fused=True)
        self.q_optim = torch.optim.Adam(self.q.parameters(), lr=spec.lr, fused=True)
        self.qw_optim = torch.optim.Adam(self.qw.parameters(), lr=spec.lr, fused=True) if self.qw is not None else None
        self.alpha_optim = torch.optim.Adam(self.temperature.parameters(), lr=spec.lr, fused=True)

    # ---- pieces --------------------------------------------------------------------------------------------
    def scaled(self, w: torch.Tensor) -> torch.Tensor:
        """Noise (B, ...) flattened and in the policy's [-1, 1] space (SB3's scale_action)."""
        return w.reshape(w.shape[0], -1) / self.spec.noise_bound

    def backup(self, values: torch.Tensor) -> torch.Tensor:
        """Combine the critics (K, B) -> (B) for the TD target (`critic_backup_combine_type`)."""
        return values.min(0).values if self.spec.backup == "min" else values.mean(0)

    @staticmethod
    def _step(loss: torch.Tensor, optim: torch.optim.Optimizer) -> None:
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()

    # ---- updates -------------------------------------------------------------------------------------------
    def gradient_step(self, b: dict[str, torch.Tensor], steer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      generator: torch.Generator | None = None) -> dict[str, float]:
        """One SAC step of π^W, Q and α (module doc), on b = {obs, next_obs, x (the critic's input: the
        executed chunk for NA, the noise for SAC), reward, terminal, discount}. steer(s, w) -> the critic's
        action input of the DP's chunk from flat noise w (NA's x')."""
        s, s2 = b["obs"], b["next_obs"]
        w, logp = self.actor(s, generator=generator)
        alpha = self.temperature.alpha()
        alpha_loss = self.temperature.loss(logp)
        self._step(alpha_loss, self.alpha_optim)
        with torch.no_grad():
            w2, logp2 = self.actor(s2, generator=generator)
            x2 = steer(s2, w2) if self.spec.variant == "na" else self.scaled(w2)
            q2 = self.backup(self.q_target(s2, x2)) - alpha * logp2
            y = b["reward"] + (1.0 - b["terminal"].float()) * b["discount"] * q2
        x = b["x"] if self.spec.variant == "na" else self.scaled(b["x"])
        q = self.q(s, x)
        critic_loss = 0.5 * ((q - y.unsqueeze(0)) ** 2).mean(1).sum()
        self._step(critic_loss, self.q_optim)
        scorer = self.qw if self.qw is not None else self.q
        scorer.requires_grad_(False)
        pi_loss = actor_loss(alpha, logp, scorer(s, self.scaled(w)).min(0).values)
        self._step(pi_loss, self.actor_optim)
        scorer.requires_grad_(True)
        soft_update(self.q_target, self.q, self.spec.tau)
        return {"loss/critic": float(critic_loss.detach()), "loss/actor": float(pi_loss.detach()),
                "loss/alpha": float(alpha_loss.detach()), "train/alpha": float(alpha),
                "train/q": float(q.detach().mean()), "train/entropy": float(-logp.detach().mean())}

    def distill_step(self, s: torch.Tensor, w: torch.Tensor,
                     steer: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        """One step of Q^W toward the online Q^A at the DP's chunk of noise w (B, noise_dim), head to head."""
        assert self.qw is not None, "distillation is DSRL-NA's"
        with torch.no_grad():
            target = self.q(s, steer(s, w))
        loss = 0.5 * ((self.qw(s, self.scaled(w)) - target) ** 2).mean(1).sum()
        self._step(loss, self.qw_optim)
        return float(loss.detach())

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        out = {"actor_optim": self.actor_optim, "q_optim": self.q_optim, "alpha_optim": self.alpha_optim}
        if self.qw_optim is not None:
            out["qw_optim"] = self.qw_optim
        return out
