"""Small network building blocks shared by methods (MLPs, DPPO's residual MLP, ensembles of MLPs, EMA, target
networks).

Why: methods own their networks, but an MLP, a batched ensemble and an EMA should be written once.
The ensemble evaluates all members as one batched matmul per layer (never a Python loop over members),
which is what keeps a planner at batch 1 bound by arithmetic rather than kernel launches.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from methods.common.mish import Mish


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: type[nn.Module] = Mish,
        layer_norm: bool = False, out_act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers.append(nn.Linear(d, h))
        if layer_norm:
            layers.append(nn.LayerNorm(h))
        layers.append(act())
        d = h
    layers.append(nn.Linear(d, out_dim))
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """h + L2(act([LN] L1(act([LN] h)))): two pre-activation linear layers around a skip (DPPO's
    TwoLayerPreActivationResNetLinear; layer norm eps 1e-6 as there)."""

    def __init__(self, width: int, act: type[nn.Module], layernorm: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6) if layernorm else nn.Identity()
        self.fc1 = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, eps=1e-6) if layernorm else nn.Identity()
        self.fc2 = nn.Linear(width, width)
        self.act = act()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.act(self.norm2(self.fc1(self.act(self.norm1(h))))))


class ResidualMLP(nn.Module):
    """Linear(in, w) -> k ResidualBlocks -> Linear(w, out), for hidden = [w] * (2k + 1) (DPPO's ResidualMLP:
    no activation after the input layer nor before the output layer; the blocks pre-activate)."""

    def __init__(self, in_dim: int, hidden, out_dim: int, act: type[nn.Module], layernorm: bool = False):
        super().__init__()
        hidden = list(hidden)
        if not hidden or len(set(hidden)) != 1 or len(hidden) % 2 == 0:
            raise ValueError(f"a residual MLP needs an odd number of equal widths, got {hidden}")
        w = hidden[0]
        self.inp = nn.Linear(in_dim, w)
        self.blocks = nn.Sequential(*[ResidualBlock(w, act, layernorm) for _ in range((len(hidden) - 1) // 2)])
        self.out = nn.Linear(w, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.inp(x)))


def build_mlp(in_dim: int, hidden: Sequence[int], out_dim: int, act: type[nn.Module] = Mish,
              residual: bool = False, layer_norm: bool = False) -> nn.Module:
    """A plain MLP (`mlp`) or DPPO's residual MLP (`ResidualMLP`), as a config's `residual` flag says."""
    if residual:
        return ResidualMLP(in_dim, hidden, out_dim, act, layer_norm)
    return mlp(in_dim, hidden, out_dim, act=act, layer_norm=layer_norm)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy of `module` that takes no gradients (moved toward it by `soft_update`)."""
    return copy.deepcopy(module).requires_grad_(False)


class EnsembleLinear(nn.Module):
    """K independent linear layers applied as one batched matmul: x (K, B, in) -> (K, B, out)."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(members, 1, out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class EnsembleLayerNorm(nn.Module):
    """K independent layer norms over (K, B, width): each member has its own gain and bias."""

    def __init__(self, members: int, width: int, eps: float = 1e-5):
        super().__init__()
        self.width, self.eps = width, eps
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))
        # ATen's CPU layer norm without an affine is slower than with one (71 vs 40 us on (2, 256, 128)); with a
        # weight of ones and a bias of zeros it gives the same bits, forward and backward. Not in the state dict.
        self.register_buffer("_one", torch.ones(width), persistent=False)
        self.register_buffer("_zero", torch.zeros(width), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.nn.functional.layer_norm(x, (self.width,), self._one, self._zero, self.eps) * self.weight
                + self.bias)


class EnsembleMLP(nn.Module):
    """K MLPs in parallel. Input (B, in) is broadcast to every member, or (K, B, in) gives each its own.

    layer_norm: a layer norm after every hidden linear layer. With member_norms=False (the default, which MODIP's
    and PA-RL's critics were measured with) one LayerNorm's gain and bias are shared by all K members; with
    member_norms=True each member has its own (`EnsembleLayerNorm`), so the members are K independent MLPs."""

    def __init__(self, members: int, in_dim: int, hidden: Sequence[int], out_dim: int,
                 act: type[nn.Module] = nn.SiLU, layer_norm: bool = False, member_norms: bool = False):
        super().__init__()
        self.members = members
        dims = [in_dim, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))

        def norm(h: int) -> nn.Module:
            if not layer_norm:
                return nn.Identity()
            return EnsembleLayerNorm(members, h) if member_norms else nn.LayerNorm(h)

        self.norms = nn.ModuleList(norm(h) for h in hidden)
        self.act = act()
        self.out = EnsembleLinear(members, dims[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.members, *x.shape)
        for layer, norm in zip(self.layers, self.norms):
            x = self.act(norm(layer(x)))
        return self.out(x)


class EMA:
    """An exponential moving average of a module's weights, kept as a frozen copy."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).requires_grad_(False).eval()
        self._source: nn.Module | None = None
        self._lists: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        self._buffers: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """ema <- ema + (1 - decay) (p - ema) for every parameter, in one foreach call; buffers copied."""
        ema_params, params = self._pairs(module)
        torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        if self._buffers[0]:
            torch._foreach_copy_(*self._buffers)

    def _pairs(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The (EMA, source) parameter lists, gathered once per source module (a module walk costs more than the
        update itself on a small network)."""
        if self._source is not module:
            self._source = module
            self._lists = ([p for p in self.module.parameters()], [p.detach() for p in module.parameters()])
            self._buffers = ([b for b in self.module.buffers()], [b for b in module.buffers()])
        return self._lists

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state):
        self.module.load_state_dict(state)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), [p.detach() for p in source.parameters()], tau)
