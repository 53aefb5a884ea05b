"""The clipped PPO objective over denoising steps: the top rung of the ladder diffusion -> vpg -> ppo.

Why: DPPO's policy loss is PPO's clipped surrogate applied to each (env decision, denoising step) pair, with
two DPPO-specific twists that the code cannot show by itself:
- The advantage of env decision k is shared by its K denoising steps and discounted along the denoising
  chain: step j gets A_k * gamma_denoising^(K-1-j), so the step that outputs the action (j = K-1) gets
  the full advantage and the noisiest fine-tuned step the most discounted one (DPPO eq. for the two-layer
  MDP; `gamma_denoising` 0.99 in every DPPO config).
- The clip range grows along the chain, exponentially from `clip_ploss_coef_base` at j = 0 to
  `clip_ploss_coef` at j = K-1 with rate `clip_ploss_coef_rate`:
  eps_j = base + (coef - base) * (exp(rate * j/(K-1)) - 1) / (exp(rate) - 1).
The per-step log-probability is the mean (not the sum) over the chunk's elements of the elementwise Gaussian
log-densities, each clamped to [-5, 2], as in DPPO: it keeps the ratio's scale independent of Ta and act_dim.
Only the chunk's first `reward_horizon` actions enter that mean: the ones executed in the env (DPPO sets
`reward_horizon = act_steps`, agent/finetune/train_ppo_diffusion_agent.py, and PPODiffusion.loss in
model/diffusion/diffusion_ppo.py slices both new and old log-probs to `[..., :reward_horizon, :]` before the
mean). The unexecuted rest of a chunk earned no reward, so its likelihood is neither raised nor lowered by the
advantage. DPPO's other two policy terms need no such cut here: its entropy term is the fixed eta (no action
enters it) and its optional BC loss (`use_bc_loss`, off in every gym config) is not implemented.
"""
from __future__ import annotations

import math

import torch

from methods.dppo.vpg import VPGDiffusion

# DPPO clamps each elementwise log-density to this range before averaging (model/diffusion/diffusion_ppo.py).
LOGPROB_CLAMP = (-5.0, 2.0)


def clipped_surrogate(ratio: torch.Tensor, advantages: torch.Tensor, clip: torch.Tensor | float) -> torch.Tensor:
    """PPO's clipped surrogate loss (Schulman et al., 2017, eq. 7), to be minimised.

    max(-A r, -A clip(r, 1-eps, 1+eps)): when the ratio has left the clip range on the side that the
    advantage pushes it towards, the clipped term is the max and it does not depend on r: zero gradient."""
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return torch.max(unclipped, clipped).mean()


class PPODiffusion(VPGDiffusion):
    """VPGDiffusion plus DPPO's clipped loss per denoising step."""

    def __init__(self, *args, gamma_denoising: float = 0.99, clip_ploss_coef: float = 0.01,
                 clip_ploss_coef_base: float = 0.01, clip_ploss_coef_rate: float = 3.0,
                 min_logprob_std: float = 0.1, norm_adv: bool = True, reward_horizon: int | None = None, **kw):
        super().__init__(*args, **kw)
        # The chunk's actions whose log-probs the ratio uses: the executed ones (None: the whole chunk).
        self.reward_horizon = self.chunk if reward_horizon is None else int(reward_horizon)
        if not 1 <= self.reward_horizon <= self.chunk:
            raise ValueError(f"reward_horizon must be in [1, the chunk {self.chunk}], got {reward_horizon}")
        self.gamma_denoising = gamma_denoising
        self.clip_ploss_coef = clip_ploss_coef
        self.clip_ploss_coef_base = clip_ploss_coef_base
        self.clip_ploss_coef_rate = clip_ploss_coef_rate
        self.min_logprob_std = min_logprob_std
        self.norm_adv = norm_adv

    def step_log_prob(self, cond: torch.Tensor, x_prev: torch.Tensor, x_next: torch.Tensor,
                      j: torch.Tensor) -> torch.Tensor:
        """The per-step log-prob the ratio uses: (B,), the mean of the clamped elementwise log-densities over the
        chunk's first `reward_horizon` (executed) actions, as DPPO's PPODiffusion.loss."""
        lp = self.chain_log_prob(cond, x_prev, x_next, j, self.min_logprob_std)
        return lp.clamp(*LOGPROB_CLAMP)[:, :self.reward_horizon].mean(dim=(-1, -2))

    def clip_range(self, j: torch.Tensor) -> torch.Tensor:
        if self.ft_steps == 1:
            return torch.full(j.shape, self.clip_ploss_coef, device=j.device)
        frac = j.float() / (self.ft_steps - 1)
        rate = self.clip_ploss_coef_rate
        return self.clip_ploss_coef_base + (self.clip_ploss_coef - self.clip_ploss_coef_base) * \
            (torch.exp(rate * frac) - 1.0) / (math.exp(rate) - 1.0)

    def policy_loss(self, cond: torch.Tensor, x_prev: torch.Tensor, x_next: torch.Tensor, j: torch.Tensor,
                    advantages: torch.Tensor, old_log_prob: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The clipped loss on a minibatch of (decision, denoising step) pairs, and its PPO diagnostics."""
        new_log_prob = self.step_log_prob(cond, x_prev, x_next, j)
        if self.norm_adv:  # per minibatch, as DPPO (norm_adv=True)
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        advantages = advantages * self.gamma_denoising ** (self.ft_steps - 1 - j).float()
        log_ratio = new_log_prob - old_log_prob
        ratio = log_ratio.exp()
        clip = self.clip_range(j)
        loss = clipped_surrogate(ratio, advantages, clip)
        with torch.no_grad():
            ratio = ratio.detach()
            # k3 estimator of KL(old || new) (Schulman's "Approximating KL divergence"), as DPPO logs it.
            approx_kl = ((ratio - 1.0) - log_ratio.detach()).mean()
            clipfrac = ((ratio - 1.0).abs() > clip).float().mean()
        return loss, {"approx_kl": float(approx_kl), "clipfrac": float(clipfrac), "ratio": float(ratio.mean()),
                      "ratio_max_dev": float((ratio - 1.0).abs().max())}
