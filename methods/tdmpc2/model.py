"""The TD-MPC2 world model: encoder, latent dynamics, reward, termination, policy prior, Q ensemble (and V).

Why a module of its own: the world model is the part of TD-MPC2 that must match the official architecture
exactly (nicklashansen/tdmpc2 at e9f5932, `common/world_model.py` and `common/layers.py`), down to the
trainable parameter count, while the agent (`methods/tdmpc2/__init__.py`) owns the losses (`update.py`) and
the planner (`planner.py`).
Written from the paper and the official code's structure, not copied:

- every MLP block is Linear -> (Dropout) -> LayerNorm -> Mish; the last layer is a plain Linear, or a
  normed layer with SimNorm for the encoder and the dynamics (so the latent is a product of simplices);
- reward, Q and the discrete regression use 101 bins of symlog space in [-10, 10] (two-hot targets);
- the Q ensemble keeps each layer of all K members in one parameter tensor and evaluates it as one batched
  matmul. Where the agent needs only the min/avg of 2 random members (TD targets, the policy loss, the
  planner's terminal value), only those 2 members are evaluated: the same distribution of results as the
  official code (which evaluates all K members and then picks 2), at 2/K of the arithmetic;
- weights start from a truncated normal (std 0.02) with zero biases; the last layers of the reward head and
  of every Q member start at zero, so the initial predictions are exactly 0.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.common.mish import Mish, mish

# Model-size presets of the official code (parameter count in millions -> dims). Size 1 also halves the
# Q ensemble to 2 members; size 5 keeps 5.
MODEL_SIZES = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2, "num_q": 5},
}


@dataclasses.dataclass
class ModelDims:
    """The world model's sizes, resolved by `model_dims` from the model keys of the method's config
    (`TDMPC2Config`, where they and their defaults are declared) and the size presets above."""

    obs_dim: int
    act_dim: int
    enc_dim: int
    mlp_dim: int
    latent_dim: int
    num_enc_layers: int
    num_q: int
    simnorm_dim: int
    num_bins: int
    vmin: float
    vmax: float
    dropout: float
    log_std_min: float
    log_std_max: float
    episodic: bool
    state_value: bool  # an extra V(z) head, for the planner's terminal knob `v`


# ---- discrete regression (symlog two-hot) ------------------------------------------------------------------
def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(torch.abs(x))


class TwoHot(nn.Module):
    """Scalars <-> soft two-hot vectors over `num_bins` evenly spaced bins of symlog space."""

    def __init__(self, num_bins: int, vmin: float, vmax: float):
        super().__init__()
        self.num_bins, self.vmin, self.vmax = num_bins, vmin, vmax
        self.bin_size = (vmax - vmin) / (num_bins - 1)
        self.register_buffer("bins", torch.linspace(vmin, vmax, num_bins), persistent=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., 1) -> (..., num_bins): weight split between the two bins around symlog(x)."""
        x = symlog(x).clamp(self.vmin, self.vmax).squeeze(-1)
        pos = (x - self.vmin) / self.bin_size
        low = pos.floor().clamp(0, self.num_bins - 1)
        frac = (pos - low).unsqueeze(-1)
        low = low.long().unsqueeze(-1)
        high = (low + 1).clamp(max=self.num_bins - 1)  # at vmax frac is 0, so the clamp adds nothing
        out = torch.zeros(*x.shape, self.num_bins, device=x.device, dtype=x.dtype)
        out = out.scatter_add(-1, low, 1.0 - frac)
        return out.scatter_add(-1, high, frac)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (..., num_bins) -> scalars (..., 1): symexp of the softmax-weighted bin centre."""
        return symexp((F.softmax(logits, dim=-1) * self.bins).sum(-1, keepdim=True))

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Soft cross-entropy of logits (..., bins) against scalar targets (..., 1) -> (..., 1)."""
        return -(self.encode(target) * F.log_softmax(logits, dim=-1)).sum(-1, keepdim=True)


# ---- layers -------------------------------------------------------------------------------------------------
class SimNorm(nn.Module):
    """Simplicial normalisation: a softmax over each consecutive group of `group` features."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return F.softmax(x.view(*shape[:-1], -1, self.group), dim=-1).view(shape)


class NormedLinear(nn.Linear):
    """Linear -> Dropout (optional) -> LayerNorm -> activation (Mish unless given)."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, act: nn.Module | None = None):
        super().__init__(in_dim, out_dim)
        self.ln = nn.LayerNorm(out_dim)
        self.act = act if act is not None else Mish()
        self.dropout = nn.Dropout(dropout) if dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.dropout is not None:
            x = self.dropout(x)
        return self.act(self.ln(x))


def block_mlp(in_dim: int, hidden: list[int], out_dim: int, out_act: nn.Module | None = None,
              dropout: float = 0.0) -> nn.Sequential:
    """TD-MPC2's MLP: normed hidden layers (dropout on the first only), then a plain or normed output."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = [NormedLinear(a, b, dropout=dropout if i == 0 else 0.0)
                               for i, (a, b) in enumerate(itertools.pairwise(dims))]
    layers.append(NormedLinear(dims[-1], out_dim, act=out_act) if out_act is not None
                  else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class QEnsemble(nn.Module):
    """K Q-networks (Linear-Dropout-LN-Mish, Linear-LN-Mish, Linear) stored as (K, ...) parameter tensors.

    `forward(x, members)` evaluates the members whose indices are given (all by default) as batched matmuls;
    `params` may be swapped for a detached or target copy of the same layout."""

    NAMES = ("w0", "b0", "g0", "h0", "w1", "b1", "g1", "h1", "w2", "b2")

    def __init__(self, members: int, in_dim: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        self.members, self.dropout = members, dropout
        shapes = {"w0": (in_dim, hidden), "b0": (1, hidden), "g0": (1, hidden), "h0": (1, hidden),
                  "w1": (hidden, hidden), "b1": (1, hidden), "g1": (1, hidden), "h1": (1, hidden),
                  "w2": (hidden, out_dim), "b2": (1, out_dim)}
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.zeros(members, *shape)))
        with torch.no_grad():
            for name in ("w0", "w1"):  # trunc-normal weights; the output layer starts at zero (see module doc)
                nn.init.trunc_normal_(getattr(self, name), std=0.02)
            self.g0.fill_(1.0)
            self.g1.fill_(1.0)

    def param_list(self) -> list[torch.Tensor]:
        return [getattr(self, n) for n in self.NAMES]

    @staticmethod
    def _norm_act(x: torch.Tensor, gain: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return mish(F.layer_norm(x, x.shape[-1:]) * gain + shift)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None, params=None,
                dropout: bool = False) -> torch.Tensor:
        """x (..., in) shared by every member -> (M, ..., out) for the M selected members."""
        w0, b0, g0, h0, w1, b1, g1, h1, w2, b2 = params if params is not None else self.param_list()
        if members is not None:
            w0, b0, g0, h0, w1, b1, g1, h1, w2, b2 = (p.index_select(0, members)
                                                      for p in (w0, b0, g0, h0, w1, b1, g1, h1, w2, b2))
        lead = x.shape[:-1]
        x = x.reshape(1, -1, x.shape[-1])
        m = w0.shape[0]
        # the first layer sees the same input for every member: one (N, in) x (in, M*hidden) matmul
        y = (x[0] @ w0.permute(1, 0, 2).reshape(w0.shape[1], -1)).view(x.shape[1], m, -1).transpose(0, 1) + b0
        if dropout and self.dropout > 0:
            y = F.dropout(y, self.dropout, training=True)
        y = self._norm_act(y, g0, h0)
        y = self._norm_act(torch.baddbmm(b1, y, w1), g1, h1)
        y = torch.baddbmm(b2, y, w2)
        return y.view(m, *lead, y.shape[-1])


class WorldModel(nn.Module):
    """Encoder, latent dynamics, reward, termination, policy prior and Q ensemble of TD-MPC2 (single task)."""

    def __init__(self, dims: ModelDims):
        super().__init__()
        self.dims = d = dims
        za = d.latent_dim + d.act_dim
        self.encoder = block_mlp(d.obs_dim, max(d.num_enc_layers - 1, 1) * [d.enc_dim], d.latent_dim,
                                 out_act=SimNorm(d.simnorm_dim))
        self.dynamics = block_mlp(za, 2 * [d.mlp_dim], d.latent_dim, out_act=SimNorm(d.simnorm_dim))
        self.reward_head = block_mlp(za, 2 * [d.mlp_dim], d.num_bins)
        self.termination_head = block_mlp(d.latent_dim, 2 * [d.mlp_dim], 1) if d.episodic else None
        self.pi_head = block_mlp(d.latent_dim, 2 * [d.mlp_dim], 2 * d.act_dim)
        self.value_head = block_mlp(d.latent_dim, 2 * [d.mlp_dim], 1) if d.state_value else None
        self.apply(_trunc_normal_init)
        nn.init.zeros_(self.reward_head[-1].weight)
        self.qs = QEnsemble(d.num_q, za, d.mlp_dim, d.num_bins, d.dropout)
        self.two_hot = TwoHot(d.num_bins, d.vmin, d.vmax)
        # Target Q parameters: an EMA (Polyak, tau) copy, never trained. Kept as buffers so they are saved
        # but not counted as trainable parameters (the official code keeps them outside its parameter list).
        for name, p in zip(QEnsemble.NAMES, self.qs.param_list()):
            self.register_buffer("target_" + name, p.detach().clone())
        self.target_value_head = (copy.deepcopy(self.value_head).requires_grad_(False)
                                  if self.value_head is not None else None)

    # ---- pieces ----
    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs)

    def next(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, a], dim=-1))

    def reward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Reward logits (..., num_bins)."""
        return self.reward_head(torch.cat([z, a], dim=-1))

    def termination_logit(self, z: torch.Tensor) -> torch.Tensor:
        return self.termination_head(z)

    def pi(self, z: torch.Tensor, eps: torch.Tensor):
        """The policy prior: a tanh-squashed Gaussian, reparameterised with the given N(0, 1) noise `eps`.

        Returns (action, mean action, log-prob, scaled entropy). The scaled entropy is the official code's
        entropy term: -log_prob * (act_dim * gaussian_log_prob) / (log_prob + 1e-8), i.e. about act_dim times
        the negative pre-squash Gaussian log-density."""
        mean, log_std = self.pi_head(z).chunk(2, dim=-1)
        lo, hi = self.dims.log_std_min, self.dims.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1)
        gauss_log_prob = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1, keepdim=True)
        action = torch.tanh(mean + eps * log_std.exp())
        log_prob = gauss_log_prob - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1, keepdim=True)
        entropy_scale = gauss_log_prob * eps.shape[-1] / (log_prob + 1e-8)
        return action, torch.tanh(mean), log_prob, -log_prob * entropy_scale

    def q_params(self, which: str) -> list[torch.Tensor]:
        if which == "target":
            return [getattr(self, "target_" + n) for n in QEnsemble.NAMES]
        if which == "detach":
            return [p.detach() for p in self.qs.param_list()]
        return self.qs.param_list()

    def q_logits(self, z: torch.Tensor, a: torch.Tensor, dropout: bool) -> torch.Tensor:
        """Logits of every member: (K, ..., num_bins)."""
        return self.qs(torch.cat([z, a], dim=-1), dropout=dropout)

    def q_two(self, z: torch.Tensor, a: torch.Tensor, members: torch.Tensor, reduce: str, which: str = "online",
              dropout: bool = False) -> torch.Tensor:
        """min or avg of the Q-values of 2 given members (the official `return_type` 'min' / 'avg')."""
        q = self.two_hot.decode(self.qs(torch.cat([z, a], dim=-1), members=members, params=self.q_params(which),
                                        dropout=dropout))
        return q.min(0).values if reduce == "min" else q.sum(0) / 2

    def value(self, z: torch.Tensor, target: bool = False) -> torch.Tensor:
        """V(z) (..., 1): the head regresses symlog returns (see the agent's `_value_loss`)."""
        return symexp((self.target_value_head if target else self.value_head)(z))

    @torch.no_grad()
    def soft_update_targets(self, tau: float) -> None:
        online = self.qs.param_list()
        targets = [getattr(self, "target_" + n) for n in QEnsemble.NAMES]
        if self.value_head is not None:
            online = online + list(self.value_head.parameters())
            targets = targets + list(self.target_value_head.parameters())
        torch._foreach_lerp_(targets, online, tau)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _trunc_normal_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def model_dims(obs_dim: int, act_dim: int, cfg, state_value: bool = False) -> ModelDims:
    """The dims of a config with `TDMPC2Config`'s model keys: the size preset `cfg.model_size`, each size key of
    the preset overridden by a non-zero value in cfg (labelled presets smaller than size 1), the rest as in cfg."""
    if cfg.model_size not in MODEL_SIZES:
        raise ValueError(f"tdmpc2 model_size must be one of {sorted(MODEL_SIZES)}, got {cfg.model_size}")
    keys = [f.name for f in dataclasses.fields(ModelDims) if f.name not in ("obs_dim", "act_dim", "state_value")]
    dims = {k: getattr(cfg, k) for k in keys}
    dims.update({k: v for k, v in MODEL_SIZES[cfg.model_size].items() if dims[k] in (None, 0)})
    return ModelDims(obs_dim=obs_dim, act_dim=act_dim, state_value=state_value, **dims)
