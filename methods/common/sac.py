"""SAC's pieces (Haarnoja et al. 2018, v2): the tanh-squashed Gaussian actor, the learned temperature, and the
actor's and temperature's losses.

Why: two parts of the project learn with SAC, and they share these pieces rather than keeping two copies: the
data maker's behaviour agent (bench/data/behaviour.py, which makes the offline datasets) and DSRL's noise policy
(methods/dsrl, which steers the DP's initial noise). Each keeps its own critics and its own loop.

- `SquashedGaussianActor`: an MLP trunk and one linear head giving (mean, log std), log std clamped to
  [log_std_min, log_std_max]; a = scale · tanh(mean + std · ε). The log-probability is that of the tanh variable
  in [-1, 1] (exact tanh Jacobian, 2 (log 2 - u - softplus(-2u))), without a term for `scale`: Stable-Baselines3
  likewise works in its [-1, 1] space and rescales outside (its SquashedDiagGaussianDistribution uses
  log(1 - tanh² + 1e-6), which differs from the exact value by about 1e-6 / (1 - tanh²); `tanh_eps` > 0 selects
  that form, which DSRL uses, as its official code does).
- `Temperature`: log α as a parameter, α = exp(log α) read before the update, and the loss
  -log α · (log π + target entropy) (SB3's SAC.train; the behaviour agent's target entropy is -|A|, DSRL's 0).
- `actor_loss`: E[α log π(a|s) - Q(s, a)], with Q already reduced over the critics (min in both users).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.networks import mlp


class SquashedGaussianActor(nn.Module):
    """π(a | s) = scale · tanh(N(μ(s), σ(s))), over `act_dim` dimensions."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], act: type[nn.Module] = nn.ReLU,
                 layer_norm: bool = False, log_std_min: float = -5.0, log_std_max: float = 2.0,
                 scale: float = 1.0, tanh_eps: float = 0.0):
        super().__init__()
        self.act_dim, self.scale = act_dim, float(scale)
        self.log_std_min, self.log_std_max = float(log_std_min), float(log_std_max)
        self.net = mlp(obs_dim, list(hidden), 2 * act_dim, act=act, layer_norm=layer_norm)
        # 0: the exact tanh Jacobian. > 0: SB3's log(1 - tanh² + tanh_eps) (1e-6 there).
        self.tanh_eps = float(tanh_eps)

    def dist_params(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log std) of the pre-tanh Gaussian, log std clamped."""
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, with_log_prob: bool = True,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(a, log π(a|s)): a reparameterised sample (or scale · tanh(mean) if deterministic), log π of the tanh
        variable (None unless with_log_prob)."""
        mean, log_std = self.dist_params(obs)
        std = log_std.exp()
        if deterministic:
            pre = mean
        else:
            pre = mean + std * torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
        squashed = torch.tanh(pre)
        act = squashed * self.scale if self.scale != 1.0 else squashed
        if not with_log_prob:
            return act, None
        log_prob = (-0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        if self.tanh_eps > 0:  # SB3's form, log(1 - tanh² + eps)
            log_prob = log_prob - torch.log(1 - squashed ** 2 + self.tanh_eps).sum(-1)
        else:
            log_prob = log_prob - (2 * (math.log(2) - pre - F.softplus(-2 * pre))).sum(-1)  # tanh Jacobian
        return act, log_prob


class Temperature(nn.Module):
    """SAC's learned entropy coefficient α = exp(log α), with its loss toward `target_entropy`."""

    def __init__(self, init: float = 1.0, target_entropy: float = 0.0):
        super().__init__()
        if not init > 0:
            raise ValueError(f"the initial temperature must be > 0, got {init}")
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init), dtype=torch.float32))
        self.target_entropy = float(target_entropy)

    def alpha(self) -> torch.Tensor:
        """α, detached (read before the temperature's own step, as SB3 and the behaviour agent do)."""
        return self.log_alpha.detach().exp()

    def loss(self, log_prob: torch.Tensor) -> torch.Tensor:
        return temperature_loss(self.log_alpha, log_prob, self.target_entropy)


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """-E[log α · (log π + target entropy)], log π detached."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def actor_loss(alpha: torch.Tensor | float, log_prob: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """E[α log π - Q] (q: the critics' reduced value at the actor's sample, (B,))."""
    return (alpha * log_prob - q).mean()
