"""Critic building blocks shared by the critic-based methods: the expectile loss, a Q ensemble, a value network.

Why: MODIP, IDQL and PA-RL all learn V and Q, but they are different estimators (MODIP's `indep` V is expectile
TD on r + γV̄(s'); IQL's V is expectile regression on min Q̄(s, a) - V(s)). What they share is written once here
(networks, the loss, targets via `networks.frozen_copy` / `soft_update`); each method keeps its own estimator.

- `expectile_loss(u, τ)`: |τ - 1(u < 0)| u², elementwise (IQL, Kostrikov et al. 2022, eq. 5; DPPO's
  model/diffusion/diffusion_idql.py `expectile_loss`, weight τ where u > 0, 1 - τ elsewhere: the same values).
- `QEnsemble`: K critics Q_k(s, a) over the observation and a flattened action or action chunk (DPPO's
  `CriticObsAct` with `action_steps`: the chunk is flattened into the input). Plain members run as one batched
  ensemble (`EnsembleMLP`, cheap at batch 1 inside a planner); residual members (DPPO's `residual_style`) are K
  separate `ResidualMLP`s. `member_norms` gives each plain member its own layer-norm gain and bias (see
  `EnsembleMLP`; DSRL's critics, as SB3's separate critic networks).
- `value_net`: V(s), a plain or residual MLP with one output (DPPO's `CriticObs`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from methods.common.mish import Mish
from methods.common.networks import EnsembleMLP, build_mlp


def expectile_loss(u: torch.Tensor, expectile: float) -> torch.Tensor:
    """|τ - 1(u < 0)| u², elementwise (take the mean yourself)."""
    return torch.abs(expectile - (u < 0).float()) * u ** 2


class QEnsemble(nn.Module):
    """K critics over (s, a) with a ∈ R^{action_dim} (a single action or a flattened chunk): forward -> (K, B)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], members: int = 2,
                 act: type[nn.Module] = Mish, layer_norm: bool = False, residual: bool = False,
                 member_norms: bool = False):
        super().__init__()
        self.members, self.action_dim, self.residual = members, action_dim, residual
        if residual:
            self.nets = nn.ModuleList(build_mlp(obs_dim + action_dim, hidden, 1, act, residual=True,
                                                layer_norm=layer_norm) for _ in range(members))
        else:
            self.net = EnsembleMLP(members, obs_dim + action_dim, hidden, 1, act=act, layer_norm=layer_norm,
                                   member_norms=member_norms)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([s, a.reshape(*a.shape[: s.dim() - 1], -1)], dim=-1)
        if self.residual:
            return torch.stack([net(x).squeeze(-1) for net in self.nets])
        return self.net(x).squeeze(-1)

    def min(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """min_k Q_k(s, a): (B,)."""
        return self(s, a).min(0).values

    def mean(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The ensemble mean: (B,)."""
        return self(s, a).mean(0)


def value_net(obs_dim: int, hidden: Sequence[int], act: type[nn.Module] = Mish, layer_norm: bool = False,
              residual: bool = False) -> nn.Module:
    """V(s): (B, obs_dim) -> (B, 1)."""
    return build_mlp(obs_dim, hidden, 1, act, residual=residual, layer_norm=layer_norm)
