"""Compiled act paths (optional, `mbench time --compile`) and their check against the eager paths.

Why a file of its own: a compiled path is timed like any other (timing.py), but first it must be built and
shown to compute what the eager path computes; that takes the RNG bookkeeping below, which the plain timer
never needs.

Only act paths are compiled (kind act or plan): compiling a training step costs minutes (TD-MPC2's update took
85 s on an H200) and is not what inference time is about. The harness wraps each act-path closure of
`timed_components(batch_size)` in `torch.compile` (`compile_component`); graph breaks (host syncs,
`torch.Generator` arguments) fall back to eager between compiled regions, so this always runs, if not always
faster. (A method whose own config compiles its paths, TD-MPC2's `compile`, times them as its eager rows.)
The harness checks that the compiled and eager paths agree (`check_agreement`: both are called
once from the same RNG state, restoring every generator the closures capture), reports the first compiled
call's wall time as `compile_s`, and keeps it out of the latencies (it is the first warm-up call).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- RNG snapshots: the compiled-vs-eager check calls both paths from the same random state --------------
def _rng_objects(fn: Any, depth: int = 3, seen: set[int] | None = None) -> list[Any]:
    """Every torch.Generator, and every object holding one (an ActorState, a Method), that `fn` reaches
    through closures, partials, bound methods and `torch.compile` wrappers (a few levels deep)."""
    seen = set() if seen is None else seen
    found: list[Any] = []

    def visit(obj: Any, d: int) -> None:
        if obj is None or id(obj) in seen or d < 0:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            found.append(obj)
            return
        if isinstance(getattr(obj, "generator", None), torch.Generator) or isinstance(getattr(obj, "memory", None),
                                                                                       dict):
            found.append(obj)
        if isinstance(obj, functools.partial):
            visit(obj.func, d - 1)
            for a in (*obj.args, *obj.keywords.values()):
                visit(a, d - 1)
        if hasattr(obj, "__self__"):
            visit(obj.__self__, d - 1)
        if hasattr(obj, "__wrapped__"):
            visit(obj.__wrapped__, d - 1)
        if getattr(obj, "_torchdynamo_orig_callable", None) is not None:
            visit(obj._torchdynamo_orig_callable, d - 1)
        for cell in getattr(obj, "__closure__", None) or ():
            with contextlib.suppress(ValueError):  # an empty cell
                visit(cell.cell_contents, d - 1)

    visit(fn, depth)
    return found


def rng_snapshot(fn: Any) -> list[tuple[Any, Any, Any]]:
    """(object, generator state, memory copy) for every RNG holder `fn` captures."""
    snap = []
    for obj in _rng_objects(fn):
        if isinstance(obj, torch.Generator):
            snap.append((obj, obj.get_state(), None))
        else:
            gen = getattr(obj, "generator", None)
            mem = getattr(obj, "memory", None)
            snap.append((obj, gen.get_state() if isinstance(gen, torch.Generator) else None,
                         copy.deepcopy(mem) if isinstance(mem, dict) else None))
    return snap


def rng_restore(snap: list[tuple[Any, Any, Any]]) -> None:
    for obj, state, mem in snap:
        if isinstance(obj, torch.Generator):
            obj.set_state(state)
            continue
        if state is not None:
            obj.generator.set_state(state)
        if mem is not None:
            obj.memory = copy.deepcopy(mem)


def _as_arrays(out: Any) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().float().cpu().numpy()]
    if isinstance(out, np.ndarray):
        return [out.astype(np.float64, copy=False)]
    if isinstance(out, dict):
        return [a for k in sorted(out) for a in _as_arrays(out[k])]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in _as_arrays(v)]
    if isinstance(out, (int, float, np.number, bool)):
        return [np.asarray(float(out))]
    return []


@dataclasses.dataclass
class Agreement:
    agree: bool
    max_abs_diff: float
    compile_s: float
    detail: str = ""


def check_agreement(eager: Callable[[], Any], compiled: Callable[[], Any], device: str | torch.device = "cpu",
                    atol: float = 1e-3, rtol: float = 1e-3, seed: int = 1234) -> Agreement:
    """Call `eager` and then `compiled` once each from the same RNG state and compare their outputs.

    The global RNGs (torch, CUDA, numpy) are forked and seeded alike for both calls, and every generator and
    ActorState.memory that either closure captures is restored between them, so a sampling act path gives the
    same draws. The compiled call is the compiled path's first call: its synchronised wall time (tracing,
    code generation, one execution) is `compile_s`. Afterwards the captured state is left as after the eager
    call, so timing starts from the same place either way."""
    device = torch.device(device)
    snap_e, snap_c = rng_snapshot(eager), rng_snapshot(compiled)
    devices = [device.index or 0] if device.type == "cuda" else []
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed)
        out_e = _as_arrays(eager())
        after_eager = rng_snapshot(eager)
        rng_restore(snap_e)
        rng_restore(snap_c)
        torch.manual_seed(seed)
        np.random.seed(seed)
        _sync(device)
        t0 = time.perf_counter()
        out_c = _as_arrays(compiled())
        _sync(device)
        compile_s = time.perf_counter() - t0
    np.random.set_state(np_state)
    rng_restore(after_eager)
    if len(out_e) != len(out_c):
        return Agreement(False, math.inf, compile_s, f"{len(out_e)} eager outputs vs {len(out_c)} compiled")
    worst, ok, detail = 0.0, True, ""
    for i, (a, b) in enumerate(zip(out_e, out_c)):
        if a.shape != b.shape:
            return Agreement(False, math.inf, compile_s, f"output {i}: shape {a.shape} vs {b.shape}")
        if a.size:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            diff = np.where(np.isnan(a) & np.isnan(b), 0.0, diff)
            worst = max(worst, float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))))
            close = np.isclose(a, b, atol=atol, rtol=rtol, equal_nan=True)
            if not close.all():
                # The fraction tells a few flipped discrete choices (a planner's elite order, an argmax over
                # near-ties) from a path that is wrong everywhere.
                ok, detail = False, (f"output {i} differs by up to {worst:.3g} in {1 - close.mean():.0%} of its "
                                     f"{close.size} values (atol {atol}, rtol {rtol})")
    return Agreement(ok, worst, compile_s, detail)


def compile_component(fn: Callable[[], Any], mode: str = "default", backend: str = "inductor") -> Callable[[], Any]:
    """The generic compiled path: `torch.compile` of the zero-argument closure (shapes are static per batch).

    mode: torch.compile's mode ("default", "reduce-overhead" = CUDA graphs, "max-autotune-no-cudagraphs").
    backend "eager" only traces (cheap; for tests), "inductor" generates code."""
    kwargs: dict[str, Any] = {"backend": backend, "dynamic": False}
    if backend == "inductor" and mode != "default":
        kwargs["mode"] = mode
    return torch.compile(fn, **kwargs)


__all__ = [
    "Agreement",
    "check_agreement",
    "compile_component",
    "rng_restore",
    "rng_snapshot",
]
