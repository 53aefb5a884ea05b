"""`mbench demo`: the embedded default, end to end, on 2 CPU cores within about 10 minutes.

Why: a newcomer's first contact. It makes the demo dataset if it is absent, runs each demo method for 2 seeds
on the demo task with its labelled `demo` preset (small networks, few planner samples, a share of the time
budget), writes the store, then a report (curves figure, final-score table with 95% CIs, inference times).
Later methods add themselves to DEMO_METHODS.
"""
from __future__ import annotations

import time
from pathlib import Path

from bench.tasks.demo import DEMO_DATASET

# Run-level budgets of the demo (env steps and gradient steps), shared by every method.
DEMO_BUDGET = {
    "pretrain.steps": 3000,
    "pretrain.log_every": 250,
    "online.steps": 5000,  # with the data make, keeps `mbench demo` near 10 minutes on 2 cores
    "online.checkpoint_every": 2000,
    "eval.every": 1000,
    "eval.episodes": 10,
    "eval.timing_reps": 10,
}
QUICK_BUDGET = {
    "pretrain.steps": 60,
    "pretrain.log_every": 20,
    "online.steps": 400,
    "online.checkpoint_every": 200,
    "eval.every": 200,
    "eval.episodes": 3,
    "eval.timing_reps": 3,
}
# (method, extra overrides). Every entry runs with preset=demo when the method has one.
DEMO_METHODS: list[tuple[str, dict]] = [
    ("bc_gauss", {}),
    ("bc_dp", {}),
    ("tdmpc2", {}),
    ("dppo", {}),
    ("modip", {}),  # terminal v, critic target indep: MODIP's defaults
]


def ensure_demo_dataset(quick: bool = False) -> None:
    from bench.data import DatasetError
    from bench.data.loaders import load_dataset

    try:
        load_dataset(DEMO_DATASET)
    except DatasetError:
        from bench.data.make import make_dataset

        print(f"making the demo dataset {DEMO_DATASET} (once)")
        kw = {"agent_steps": 3000, "dataset_size": 2000} if quick else {}
        make_dataset(DEMO_DATASET, **kw)


def run_demo(store_root: str = "results", out: str | None = None, seeds: int = 2, methods: str | None = None,
             quick: bool = False) -> Path:
    from analysis.report import write_report
    from bench.runner import resolve_config, run_one
    from methods.base import get_method_class

    t0 = time.perf_counter()
    ensure_demo_dataset(quick)
    wanted = set(methods.split(",")) if methods else None
    budget = QUICK_BUDGET if quick else DEMO_BUDGET
    sweep = "demo-quick" if quick else "demo"
    for method, extra in DEMO_METHODS:
        if wanted and method not in wanted:
            continue
        cls = get_method_class(method)
        for seed in range(seeds):
            overrides = dict(budget)
            if "demo" in (getattr(cls, "presets", {}) or {}):
                overrides["preset"] = "demo"
            overrides.update(extra)
            cfg = resolve_config(method, "demo", seed, overrides)
            t = time.perf_counter()
            run_one(cfg, store_root=store_root, sweep_id=sweep, progress=True)
            print(f"  {method} seed {seed}: {time.perf_counter() - t:.0f}s")
    out_dir = Path(out) if out else Path(store_root) / sweep
    report = write_report(store_root, sweep, out_dir)
    print(f"demo finished in {time.perf_counter() - t0:.0f}s; report: {report}")
    return report
