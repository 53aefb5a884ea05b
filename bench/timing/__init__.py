"""Timing helper: warm-up, then N synchronised reps, then percentiles.

Why: inference time is half of what this harness reports, and a GPU timer without synchronisation measures
the kernel queue, not the work. On CUDA each rep is bracketed by CUDA events and synchronised after warm-up;
on the CPU we use perf_counter. Every run times its method's components with this at its end, and
`mbench time` grows on it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np
import torch


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
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d


def time_callable(fn: Callable[[], Any], *, component: str = "fn", device: str | torch.device = "cpu",
                  batch: int = 1, warmup: int = 3, reps: int = 20, compiled: bool = False,
                  extra: dict[str, Any] | None = None) -> TimingResult:
    device = torch.device(device)
    for _ in range(warmup):
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times, dtype=np.float64)
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return TimingResult(component=component, device=str(device), batch=batch, warmup=warmup, reps=reps,
                        mean_ms=float(arr.mean()), p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99),
                        threads=torch.get_num_threads(), compiled=compiled, extra=dict(extra or {}))
