"""Mish (Misra, 2019), x · tanh(softplus(x)), with one exp on the CPU instead of ATen's exp, log1p and tanh.

Why: every network here but the d4rl DP uses Mish, and on one CPU core ATen's Mish and its backward cost about
8 ns per element each (its vectorised tanh and log1p): on the demo DP's 256-wide layers that is a third of a
training step, as much as the matmuls beside it (the speed issue's profile). With n = e^x,

    tanh(softplus(x)) = w / (w + 2),  w = n (n + 2),
    d/dx mish(x) = w / (w + 2) + 4 x n (n + 1) / (w + 2)²,

a handful of cheap vectorised ops around a single exp. x is clamped at 20 inside the exp only (w / (w + 2) is
1 in float32 from there on, so mish(x) = x, as ATen gives). It agrees with ATen to a few float32 ulps
(tests/methods/common/test_mish.py sweeps -120..120, values and gradients). ATen's kernel is kept where it is the
cheaper one: on CUDA (one fused kernel) and for tensors under `SMALL` elements (batch-1 and batch-10 acting,
where the extra ops' dispatch costs more than the transcendental math they save).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SMALL = 4096  # elements; below this ATen's single kernel is cheaper than the formula's handful of ops


class _MishFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        n = x.clamp(max=20.0).exp_()
        d = (n + 2.0).mul_(n).add_(2.0)  # w + 2
        t = (d - 2.0).div_(d)  # w / (w + 2) = tanh(softplus(x))
        ctx.save_for_backward(x, n, d, t)
        return x * t

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        x, n, d, t = ctx.saved_tensors
        return (n + 1.0).mul_(n).mul_(x).mul_(4.0).div_(d).div_(d).add_(t).mul_(grad)


def mish(x: torch.Tensor) -> torch.Tensor:
    """x · tanh(softplus(x)), as `torch.nn.functional.mish` (see the module doc for where each path runs)."""
    if x.device.type != "cpu" or x.numel() < SMALL:
        return F.mish(x)
    if torch.is_grad_enabled() and x.requires_grad:
        return _MishFunction.apply(x)
    n = x.clamp(max=20.0).exp_()
    d = (n + 2.0).mul_(n).add_(2.0)
    return torch.sub(d, 2.0, out=n).div_(d).mul_(x)  # d - 2 into n's buffer (n is spent): one allocation fewer


class Mish(nn.Module):
    """`torch.nn.Mish` through `mish` above (no parameters, so state dicts are unchanged)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mish(x)
