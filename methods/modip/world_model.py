"""MODIP's world model: an ensemble of probabilistic MLPs in (normalised) observation space.

Why: the planner needs a model it can roll out for hundreds of candidate action sequences at once, and a
measure of its own uncertainty. Each member predicts a diagonal Gaussian over [Δs, r] and a termination logit
from (s, a) (PETS, Chua et al. 2018; MBPO, Janner et al. 2019). All members run as one batched matmul per
layer (EnsembleMLP), never a Python loop over members.

Conventions:
- s and a are normalised (obs z-scored, actions in [-1, 1]); Δs is in normalised units, so s' = s + Δs;
- r is the env reward times the run's recorded reward scale (the buffer already holds it that way);
- termination is a true terminal only, never a timeout (timeouts are not a property of the state).
The planner uses the ensemble mean of the members' means, the mean termination probability, and the
members' disagreement (std of their next-state means) as an optional uncertainty penalty.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.networks import EnsembleMLP
from methods.modip.config import WorldModelConfig


class WorldModel(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, cfg: WorldModelConfig):
        super().__init__()
        self.obs_dim, self.act_dim, self.members = obs_dim, act_dim, cfg.members
        self.out_dim = obs_dim + 1  # [Δs, r]
        self.net = EnsembleMLP(cfg.members, obs_dim + act_dim, cfg.hidden, 2 * self.out_dim + 1, act=nn.SiLU)
        # Learnable soft bounds on the log-variance (PETS appendix A.1), regularised toward a narrow range.
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.init_max_logvar))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), cfg.init_min_logvar))
        # The targets [Δs, r] are standardised with statistics of the offline data (set once, then frozen and
        # checkpointed), so every output dimension weighs alike in the NLL whatever its scale.
        self.register_buffer("target_mean", torch.zeros(self.out_dim))
        self.register_buffer("target_std", torch.ones(self.out_dim))

    def set_target_stats(self, s, s_next, r) -> None:
        target = torch.cat([s_next - s, r.unsqueeze(-1)], dim=-1)
        self.target_mean.copy_(target.mean(0))
        self.target_std.copy_(target.std(0).clamp_min(1e-3))

    def forward(self, s: torch.Tensor, a: torch.Tensor):
        """s (B, obs) / a (B, act) broadcast to all members, or (K, B, ·) one batch per member.

        Returns mean (K, B, obs+1), logvar (K, B, obs+1), termination logit (K, B)."""
        out = self.net(torch.cat([s, a], dim=-1))
        mean, raw_logvar, term_logit = out.split([self.out_dim, self.out_dim, 1], dim=-1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - raw_logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar, term_logit.squeeze(-1)

    def loss(self, s, a, s_next, r, terminal) -> tuple[torch.Tensor, dict[str, float]]:
        """Gaussian NLL on [Δs, r] plus BCE on termination; every input shaped (K, B, ·)."""
        mean, logvar, term_logit = self(s, a)
        target = torch.cat([s_next - s, r.unsqueeze(-1)], dim=-1)
        z = (target - self.target_mean) / self.target_std
        nll = (((mean - z) ** 2) * torch.exp(-logvar) + logvar).mean()
        bce = F.binary_cross_entropy_with_logits(term_logit, terminal.float())
        bound_reg = 0.01 * (self.max_logvar.sum() - self.min_logvar.sum())
        total = nll + bce + bound_reg
        with torch.no_grad():
            err = (mean - z) ** 2  # in standardised units, as errors() reports
        return total, {"loss/wm_nll": float(nll.detach()), "loss/wm_term": float(bce.detach()),
                       "wm/train_obs_nmse": float(err[..., :-1].mean()), "wm/train_reward_nmse": float(err[..., -1].mean())}

    def step(self, s: torch.Tensor, a: torch.Tensor, disagreement: bool = True):
        """One planning step from (N, obs), (N, act): ensemble-mean next state, reward, termination
        probability, and the members' disagreement (mean over dims of the std of their next-state means;
        zeros when `disagreement` is False, which skips computing it). The variance head is not needed here,
        so its soft bounds are skipped."""
        s_next_members, rewards, term_logit = self.member_means(s, a)
        s_next = s_next_members.mean(0)
        reward = rewards.mean(0)
        term_prob = torch.sigmoid(term_logit).mean(0)
        if disagreement:
            spread = s_next_members.std(0, unbiased=False).mean(-1)
        else:
            spread = torch.zeros_like(reward)
        return s_next, reward, term_prob, spread

    def member_means(self, s: torch.Tensor, a: torch.Tensor):
        """Each member's mean next state (K, N, obs), reward (K, N) and termination logit (K, N), unstandardised;
        the variance head is not needed here, so its soft bounds are skipped."""
        out = self.net(torch.cat([s, a], dim=-1))
        mean = out[..., : self.out_dim] * self.target_std + self.target_mean
        return s.unsqueeze(0) + mean[..., :-1], mean[..., -1], out[..., -1]

    @torch.no_grad()
    def member_errors(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        """Each member's one-step next-state error (K,) on (N, ·) transitions, in the units of `errors`."""
        pred = self.member_means(s, a)[0]
        return (((pred - s_next.unsqueeze(0)) ** 2) / self.target_std[:-1] ** 2).mean(dim=(1, 2))

    @torch.no_grad()
    def errors(self, obs_seq: torch.Tensor, act_seq: torch.Tensor, rew_seq: torch.Tensor) -> dict[str, float]:
        """One-step and open-loop H-step errors on true sequences (N, H+1, obs), (N, H, act), (N, H).

        Errors are in units of the offline data's per-dimension Δs (and r) variance, so 1.0 is as good as
        predicting no information beyond the mean change, whatever the scale of each observation dimension."""
        h = act_seq.shape[1]
        s_scale, r_scale = self.target_std[:-1] ** 2, self.target_std[-1] ** 2
        s1, r1, _, _ = self.step(obs_seq[:, 0], act_seq[:, 0])
        out = {"wm/one_step_obs_nmse": float((((s1 - obs_seq[:, 1]) ** 2) / s_scale).mean()),
               "wm/one_step_reward_nmse": float(((r1 - rew_seq[:, 0]) ** 2).mean() / r_scale)}
        s = obs_seq[:, 0]
        rew_err = []
        for t in range(h):
            s, r, _, _ = self.step(s, act_seq[:, t])
            rew_err.append(((r - rew_seq[:, t]) ** 2).mean() / r_scale)
        out[f"wm/h{h}_obs_nmse"] = float((((s - obs_seq[:, h]) ** 2) / s_scale).mean())
        out[f"wm/h{h}_reward_nmse"] = float(torch.stack(rew_err).mean())
        return out
