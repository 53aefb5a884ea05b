"""Timing a method's components: warm-up, N synchronised reps, percentiles, one row per measurement.

Why: inference time is half of what this harness reports, and a GPU timer without synchronisation measures
the kernel queue, not the work. On CUDA each rep is bracketed by CUDA events and synchronised after warm-up;
on the CPU we use perf_counter. Every run times its method's components with `time_components` at its end
(lifecycle.py), and `mbench time` (bench/timing) runs the same function on synthetic inputs or a checkpoint;
so it lives here, below both.

Every timed component is a `methods.base.TimedComponent`: the closure plus what analysis needs to compare it
fairly, its kind (act, plan or update), the actor it serves, the env actions one call yields, and for updates
the updates the method makes per env step. Every row carries those four as columns (TIMING_META_KEYS), so the
store keeps them and analysis never infers them from a component's name.

A stop request (SIGTERM, Ctrl-C) during a run's timing is honoured between two calls (`should_stop`, asked before
each warm-up call and each timed rep): the timing is abandoned (`TimingAbandoned`) and nothing of it is kept; the
run saves itself as before the timing (lifecycle.py), and its resume times again.

Compiled paths (optional, `mbench time --compile`): each act path is also timed compiled, after its check
against the eager path; how a path is compiled and checked is compiled.py.
"""
from __future__ import annotations

import dataclasses
import math
import platform
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from bench.runner.compiled import check_agreement, compile_component
from methods.base import ComponentKind, TimedComponent

# The settings that drive inference cost, with the store's column names (results/store.py, timings table).
COST_KEYS = ("horizon", "samples", "iterations", "denoising_steps", "terminal")
# A timed component's metadata, with the store's column names (results/store.py, timings table, schema 2).
TIMING_META_KEYS = ("kind", "actor", "actions_per_call", "updates_per_env_step")


class TimingAbandoned(Exception):
    """A timing stopped between two calls because a stop was asked for; none of its rows is returned."""


def _check(should_stop: Callable[[], bool] | None, component: str) -> None:
    if should_stop is not None and should_stop():
        raise TimingAbandoned(f"timing of {component} abandoned at a stop request")


@dataclasses.dataclass
class TimingResult:
    component: str
    device: str
    batch: int
    warmup: int
    reps: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    threads: int
    compiled: bool = False
    # The component's metadata (TimedComponent): None where the caller timed a bare closure.
    kind: str | None = None
    actor: str | None = None
    actions_per_call: int | None = None
    updates_per_env_step: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d


def summarize(times_ms: Iterable[float]) -> dict[str, float]:
    """mean and the p50/p90/p99 of a list of latencies (linear interpolation, so p50 <= p90 <= p99)."""
    arr = np.asarray(list(times_ms), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no timings to summarise")
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {"mean_ms": float(arr.mean()), "p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99)}


def time_callable(fn: Callable[[], Any], *, component: str = "fn", device: str | torch.device = "cpu",
                  batch: int = 1, warmup: int = 3, reps: int = 20, compiled: bool = False,
                  extra: dict[str, Any] | None = None, max_s: float | None = None,
                  min_reps: int = 3, meta: dict[str, Any] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> TimingResult:
    """Call `fn` `warmup` times untimed, then time up to `reps` calls.

    `max_s` caps the timed loop's wall time (a slow component on the CPU stops after at least `min_reps`
    reps); the row records how many reps were actually timed. `meta`: the component's metadata columns
    (component_meta); a TimedComponent passed as `fn` gives its own when `meta` is None. `should_stop()` true
    before a call (its time is not in any rep): TimingAbandoned."""
    if meta is None and isinstance(fn, TimedComponent):
        meta = component_meta(fn)
    device = torch.device(device)
    t_warm = time.perf_counter()
    for _ in range(warmup):
        _check(should_stop, component)
        fn()
        if max_s is not None and time.perf_counter() - t_warm > max_s:
            break  # one call already outlasts the cap: more warm-up would only spend the budget
    times: list[float] = []
    t_start = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(reps):
            _check(should_stop, component)
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
            if max_s is not None and len(times) >= min_reps and time.perf_counter() - t_start > max_s:
                break
    else:
        for _ in range(reps):
            _check(should_stop, component)
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            if max_s is not None and len(times) >= min_reps and time.perf_counter() - t_start > max_s:
                break
    stats = summarize(times)
    return TimingResult(component=component, device=str(device), batch=batch, warmup=warmup, reps=len(times),
                        threads=torch.get_num_threads(), compiled=compiled, extra=dict(extra or {}),
                        **(meta or {}), **stats)


def component_meta(comp: TimedComponent) -> dict[str, Any]:
    """The metadata columns of a timed component (TIMING_META_KEYS), as plain values for the store. An update
    yields no env action (actions_per_call null); an act or plan has no updates per env step (null)."""
    kind = ComponentKind(comp.kind)
    if kind is ComponentKind.UPDATE:
        ups = comp.updates_per_env_step
        return {"kind": kind.value, "actor": str(comp.actor or ""), "actions_per_call": None,
                "updates_per_env_step": None if ups is None else float(ups)}
    per_call = int(comp.actions_per_call)
    if per_call < 1:
        raise ValueError(f"an {kind.value} component yields at least one env action per call, got {per_call}")
    return {"kind": kind.value, "actor": str(comp.actor or ""), "actions_per_call": per_call,
            "updates_per_env_step": None}


def is_act_path(component: TimedComponent) -> bool:
    """Act paths (kind act or plan) are compiled and timed at every batch size; training steps are not."""
    return ComponentKind(component.kind) is not ComponentKind.UPDATE


def _components(method: Any, batch_size: int) -> dict[str, TimedComponent]:
    comps = method.timed_components(batch_size=batch_size)
    for name, comp in comps.items():
        if not isinstance(comp, TimedComponent):
            raise TypeError(f"{type(method).__name__}.timed_components()['{name}'] is a {type(comp).__name__}, not a "
                            "methods.base.TimedComponent (its kind, actor and actions per call are required)")
    return comps


def device_name(device: str | torch.device) -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


_RESERVED = {f.name for f in dataclasses.fields(TimingResult)} - {"extra"}


def cost_settings(components: dict[str, TimedComponent]) -> dict[str, Any]:
    """The settings that drive a method's cost (its components' `settings`, the same on each), with every
    COST_KEYS column present (None where it has none).

    A setting named like a timing column (e.g. a method's own `compiled` flag) is kept as `method_<name>`, so it
    cannot overwrite what the harness measured."""
    own: dict[str, Any] = {}
    for comp in components.values():
        own.update(comp.settings or {})
    settings = {(f"method_{k}" if k in _RESERVED else k): v for k, v in own.items()}
    return {**{k: None for k in COST_KEYS}, **settings}


def _empty_row(component: str, device: torch.device, batch: int, extra: dict[str, Any],
               meta: dict[str, Any]) -> dict[str, Any]:
    """A compiled path that was not measured (failed or skipped): NaN latencies, 0 reps."""
    return TimingResult(component=component, device=str(device), batch=batch, warmup=0, reps=0, mean_ms=math.nan,
                        p50_ms=math.nan, p90_ms=math.nan, p99_ms=math.nan, threads=torch.get_num_threads(),
                        compiled=True, extra=extra, **meta).row()


def time_components(method: Any, batch_sizes: Iterable[int] = (1, 16), *, warmup: int = 3, reps: int = 20,
                    device: str | torch.device | None = None, compile: bool = False, compile_mode: str = "default",
                    compile_backend: str = "inductor", max_s: float | None = None, atol: float = 1e-3,
                    rtol: float = 1e-3, eager: bool = True, compile_deadline: float | None = None,
                    log: Callable[[str], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
    """Time every `timed_components(batch)` component of `method` at each batch size; one row per measurement,
    each with the component's metadata columns (TIMING_META_KEYS).

    Training steps (kind update) are timed once, at the first batch size (their batch is the method's training
    batch, whatever `batch` says). With `compile`, each act path is also timed compiled (see compiled.py's
    docstring): its row has compiled=True, compile_s, compile_agree and compile_max_abs_diff. A method whose
    own config compiles a path (cost setting `compiled`) has compiled=True on its eager-harness rows too.
    eager=False (with compile) skips the eager rows, e.g. when they were timed already; the check still runs.
    compile_deadline (a time.perf_counter() value): no compile starts after it; such a path gets a row with
    NaN latencies and compile_detail "skipped: budget spent" (compile_agree None). `should_stop()`: asked before
    each call of the eager paths (time_callable's; a compile in progress runs to its end); true, the whole timing
    is abandoned (TimingAbandoned) and no row returned."""
    device = torch.device(device if device is not None else getattr(method, "device", "cpu"))
    # compile_train (the run key): whether the method's training steps were compiled, on every row
    common = {"device_name": device_name(device),
              "compile_train": bool(getattr(getattr(method, "ctx", None), "compile_train", False))}
    batch_sizes = list(dict.fromkeys(int(b) for b in batch_sizes))
    rows: list[dict[str, Any]] = []
    for b in batch_sizes:
        _check(should_stop, f"batch {b}")
        comps = _components(method, b)
        settings = cost_settings(comps)
        for name, comp in comps.items():
            act_path = is_act_path(comp)
            if not act_path and b != batch_sizes[0]:
                continue
            meta = component_meta(comp)
            fn = comp.fn
            if eager:
                r = time_callable(fn, component=name, device=device, batch=b, warmup=warmup, reps=reps,
                                  max_s=max_s, compiled=bool(settings.get("method_compiled")),
                                  extra={**settings, **common}, meta=meta, should_stop=should_stop)
                rows.append(r.row())
                if log:
                    log(f"{name:>10s} b={b:<4d} eager    p50 {r.p50_ms:9.3f} ms  p99 {r.p99_ms:9.3f} ms "
                        f"({r.reps} reps)")
            if not (compile and act_path):
                continue
            how = f"torch.compile:{compile_backend}:{compile_mode}"
            if compile_deadline is not None and time.perf_counter() > compile_deadline:
                if log:
                    log(f"{name:>10s} b={b:<4d} compiled skipped (budget spent)")
                rows.append(_empty_row(name, device, b, {**settings, **common, "compile_how": how,
                                                         "compile_agree": None,
                                                         "compile_detail": "skipped: budget spent"}, meta))
                continue
            try:
                cfn = compile_component(fn, compile_mode, compile_backend)
                agreement = check_agreement(fn, cfn, device=device, atol=atol, rtol=rtol)
                # reduce-overhead records its CUDA graphs over the first calls: keep at least 3 untimed.
                rc = time_callable(cfn, component=name, device=device, batch=b, warmup=max(warmup, 3), reps=reps,
                                   max_s=max_s, compiled=True, should_stop=should_stop,
                                   extra={**settings, **common, "compile_s": agreement.compile_s,
                                          "compile_how": how, "compile_agree": agreement.agree,
                                          "compile_max_abs_diff": agreement.max_abs_diff,
                                          "compile_detail": agreement.detail}, meta=meta)
            except TimingAbandoned:
                raise
            except Exception as e:  # noqa: BLE001 - a failed compile is a result to report, not a reason to lose the table
                msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
                if log:
                    log(f"{name:>10s} b={b:<4d} compiled FAILED {msg}")
                rows.append(_empty_row(name, device, b, {**settings, **common, "compile_how": how,
                                                         "compile_agree": False, "compile_detail": msg[:500]}, meta))
                continue
            rows.append(rc.row())
            if log:
                flag = "agree" if agreement.agree else f"MISMATCH ({agreement.detail})"
                log(f"{name:>10s} b={b:<4d} compiled p50 {rc.p50_ms:9.3f} ms  p99 {rc.p99_ms:9.3f} ms "
                    f"compile {agreement.compile_s:.1f}s {flag}")
    return rows


__all__ = [
    "COST_KEYS",
    "TIMING_META_KEYS",
    "TimingAbandoned",
    "TimingResult",
    "component_meta",
    "cost_settings",
    "device_name",
    "is_act_path",
    "summarize",
    "time_callable",
    "time_components",
]
