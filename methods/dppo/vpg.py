"""The denoising MDP of the shared DP: the middle rung of the ladder diffusion -> vpg -> ppo.

Why: DPPO (Ren et al., 2024) treats each DDPM denoising step as an action of an inner MDP, so the policy
gradient needs (a) chains of intermediate samples recorded while acting and (b) the Gaussian log-probability
of each recorded step under the current network. This class adds exactly that to `DiffusionPolicy`
(methods/common/diffusion.py) by subclassing, without forking the DP:
- The DP's T steps are split. The first T-K steps (t = T-1 .. K, the noisiest) run a frozen copy of the
  pretrained denoiser (`denoiser_base`). The last K steps (t = K-1 .. 0) run the fine-tuned `denoiser`.
  K is `dppo.ft_denoising_steps`. Both copies start from the bc_dp EMA weights, so before any update this
  policy samples exactly what bc_dp samples (the common start).
- Exploration: while acting, every DDPM step's std is clipped from below at `min_sampling_std`, and its
  standard-normal noise at +-`randn_clip` (DPPO's `min_sampling_denoising_std` and `randn_clip_value`).
  The last step (t = 0), whose DDPM variance is 0, is then noisy too, as in DPPO.
- Log-probs use the same posterior mean, with the std clipped at `min_logprob_std` (DPPO's
  `min_logprob_denoising_std`) for numerical stability.
Evaluation uses the inherited `sample()`, with the DP's own noise schedule and no exploration floor.
"""
from __future__ import annotations

import copy
import math

import torch

from methods.common.diffusion import DiffusionPolicy
from methods.common.dp_config import DPConfig
from methods.common.section import ConfigError


class VPGDiffusion(DiffusionPolicy):
    """A DP whose last K denoising steps are trainable, with chain sampling and per-step log-probs.

    Denoising index j in [0, K) names the j-th fine-tuned step in sampling order: j = 0 is t = K-1 (the
    noisiest fine-tuned step), j = K-1 is t = 0 (the step that outputs the action). A chain is
    (B, K+1, Ta, act_dim): chain[:, j] is the input of fine-tuned step j and chain[:, j+1] its output.
    """

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int, ft_denoising_steps: int):
        super().__init__(obs_dim, act_dim, cfg, chunk)
        if not 1 <= ft_denoising_steps <= self.T:
            raise ConfigError(f"dppo.ft_denoising_steps must be in [1, dp.denoising_steps={self.T}], "
                              f"got {ft_denoising_steps}")
        self.ft_steps = int(ft_denoising_steps)
        self.denoiser_base = copy.deepcopy(self.denoiser).requires_grad_(False)

    def load_pretrained(self, dp_policy_state: dict) -> None:
        """Both copies of the denoiser start from a DiffusionPolicy state (the bc_dp EMA weights)."""
        missing, unexpected = self.load_state_dict(dp_policy_state, strict=False)
        if unexpected or any(not k.startswith("denoiser_base.") for k in missing):
            raise ValueError(f"pretrained DP state does not fit: missing {missing}, unexpected {unexpected}")
        self.denoiser_base.load_state_dict(self.denoiser.state_dict())

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # Steps t >= K run the frozen pretrained denoiser. The branch syncs with the host; it is cheap on the
        # CPU and keeps batches whose steps are all fine-tuned (every PPO minibatch) to one forward pass.
        ft = t < self.ft_steps
        if bool(ft.all()):
            return self.denoiser(x_t, t, cond)
        if not bool(ft.any()):
            return self.denoiser_base(x_t, t, cond)
        return torch.where(ft.view(-1, 1, 1), self.denoiser(x_t, t, cond), self.denoiser_base(x_t, t, cond))

    def denoiser_at(self, i: int):
        return self.denoiser if i < self.ft_steps else self.denoiser_base

    def step_of(self, j: torch.Tensor) -> torch.Tensor:
        """DDPM timestep t of fine-tuned denoising index j."""
        return self.ft_steps - 1 - j

    @torch.no_grad()
    def sample_chain(self, cond: torch.Tensor, generator: torch.Generator | None, min_sampling_std: float,
                     randn_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exploration sample: (actions (B, Ta, act_dim) clipped to [-1, 1], chain (B, K+1, Ta, act_dim)).

        The chain keeps the unclipped last sample: its log-prob is then the density of what was drawn
        (DPPO stores the clipped one; with x0 clipped to [-1, 1] the two rarely differ)."""
        b = cond.shape[0]
        x = torch.randn((b, self.chunk, self.act_dim), device=cond.device, generator=generator)
        chain = [x] if self.ft_steps == self.T else []
        k = self._chain
        steps = list(reversed(range(self.T)))
        for i, inputs in zip(steps, self._chain_inputs(steps, cond)):
            # p_mean_logvar at a step shared by the whole batch, with its coefficients as scalars (the same bits)
            x0, _ = self._chain_x0(x, i, inputs)
            mean = x0.mul_(k["c0"][i]).add_(x * k["ct"][i])
            std = max(k["std"][i], min_sampling_std)
            noise = torch.randn(x.shape, device=x.device, generator=generator).clamp(-randn_clip, randn_clip)
            x = mean + std * noise
            # i == K: x is the input of the first fine-tuned step; i < K: the output of fine-tuned step t = i.
            if i <= self.ft_steps:
                chain.append(x)
        return x.clamp(-1.0, 1.0), torch.stack(chain, dim=1)

    def chain_log_prob(self, cond: torch.Tensor, x_prev: torch.Tensor, x_next: torch.Tensor, j: torch.Tensor,
                       min_logprob_std: float) -> torch.Tensor:
        """Elementwise log N(x_next; mu_theta(x_prev, t_j, s), max(sigma_t, min_std)^2): (B, Ta, act_dim)."""
        t = self.step_of(j)
        mean, logvar = self.p_mean_logvar(x_prev, t, cond)
        std = (0.5 * logvar).exp().clamp_min(min_logprob_std)
        return -0.5 * ((x_next - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
