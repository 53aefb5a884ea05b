"""torch.compile for fixed-shape training steps, behind the run key `compile_train` (off by default).

Why: on the CPU a training step of this project's small networks is bound as much by one kernel launch per
elementwise op (Mish and its backward, the loss, the layer norms) as by its matmuls; inductor fuses those ops
into a few loops. Measured at one torch thread, eager against compiled, interleaved repetitions in one process
(benchmarks/compile_train.py, on 2 busy cores): the demo DP's denoising step and the critics' updates ran
1.1-1.7x faster compiled, the d4rl DP's step about the same. Compiling costs tens of seconds per step function
in a fresh process (a few seconds once inductor's on-disk cache holds it), so it pays on long runs only; off by
default, and id-neutral at its default.

What is compiled is the deterministic part of a step (forward and loss, and with them the backward that
AOTAutograd derives): random draws stay eager and in their order, optimiser steps, gradient clipping and target
updates stay eager. Shapes are fixed (dynamic=False): a step whose batch changes shape compiles again.
A compiled step computes what the eager one computes up to float rounding (inductor fuses and reorders float
operations), so it is not bit-identical to the eager step (tests/methods/common/test_compiling.py).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)
# torch.compile's backend (tests set aot_eager: the same tracing, forward and backward graphs, without inductor's
# code generation, which takes 20-30 s per function on this CPU)
BACKEND = "inductor"


def compile_step(fn: F, on: bool) -> F:
    """`fn` compiled for fixed shapes (BACKEND, dynamic=False) when `on`, else `fn` itself."""
    return torch.compile(fn, dynamic=False, backend=BACKEND) if on else fn
