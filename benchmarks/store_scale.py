"""Scale benchmark for the results store: can a large sweep be read and summarised interactively?

Why: a full benchmark sweep is thousands of runs, each writing its own small files. This script writes
10,000 synthetic runs x 200 curve points through the real Store API, then times reading them back and
computing the IQM point estimates per method x task x eval step, before and after `compact`, and times the
stratified-bootstrap CIs (2,000 reps) separately. The last line is the read + IQM time after compaction.

    python benchmarks/store_scale.py [--runs 10000] [--points 200] [--root DIR] [--workers 2]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis import stats
from results.store import Store

SWEEP = "scale"
METHODS = ("bc_gauss", "bc_dp", "dppo", "tdmpc2", "modip")


def _layout(n_runs: int) -> list[tuple[str, str, int]]:
    n_tasks = 20
    seeds = max(1, n_runs // (len(METHODS) * n_tasks))
    cells = [(m, f"task{t:02d}", s) for m in METHODS for t in range(n_tasks) for s in range(seeds)]
    return cells[:n_runs]


def _write_chunk(args) -> None:
    root, cells, points = args
    store = Store(root)
    steps = np.arange(points, dtype=np.int64) * 1000
    for i, (method, task, seed) in cells:
        run_id = f"r{i:06d}"
        rng = np.random.default_rng(i)
        store.write_run({"run_id": run_id, "sweep_id": SWEEP, "method": method, "variant": "", "suite": "synthetic",
                         "task": task, "dataset": task, "seed": seed, "status": "finished", "attempt": 0,
                         "config_json": "{}", "env_steps": int(steps[-1]), "grad_steps": int(steps[-1])})
        skill = METHODS.index(method) * 10.0
        curve = pd.DataFrame({
            "phase": "finetune", "env_step": steps, "grad_step": steps, "wall_s": steps / 1000.0,
            "actor": "dp", "metric": "normalized_score",
            "value": skill + 40 * (1 - np.exp(-steps / 50_000)) + rng.normal(0, 5, points),
            "n_episodes": 10,
        })
        store.write_curves(SWEEP, run_id, curve)


def read_and_iqm(root: str) -> tuple[float, float, pd.DataFrame, int]:
    """Wall and CPU seconds (this process, all threads) to read every curve row and compute the IQM cells."""
    start, cpu = time.perf_counter(), time.process_time()
    curves = Store(root).curves(sweep=SWEEP)
    table = stats.iqm_by_group(curves, ["method", "task", "env_step"], "value")
    return time.perf_counter() - start, time.process_time() - cpu, table, len(curves)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=200)
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default=None, help="store folder (default: a temporary one, removed after)")
    args = parser.parse_args()
    root = args.root or tempfile.mkdtemp(prefix="store_scale-")
    try:
        cells = list(enumerate(_layout(args.runs)))
        start = time.perf_counter()
        chunks = [(root, cells[k::args.workers], args.points) for k in range(args.workers)]
        with mp.get_context("fork").Pool(args.workers) as pool:
            pool.map(_write_chunk, chunks)
        write_s = time.perf_counter() - start
        n_files = sum(len(files) for _, _, files in os.walk(root))

        before_s, before_cpu, before, n_rows = read_and_iqm(root)
        start = time.perf_counter()
        compact_stats = Store(root).compact()
        compact_s = time.perf_counter() - start
        after_s, after_cpu, after, _ = read_and_iqm(root)
        assert before.equals(after), "compaction changed the IQM table"

        # Bootstrap CIs, timed apart from the point estimates: final-score interval estimates per method
        # (IQM, median, mean, optimality gap) and the aggregate IQM curve at 10 eval steps, 2,000 reps each.
        curves = Store(root).curves(sweep=SWEEP)
        curves["line"] = curves["method"]
        start = time.perf_counter()
        last = curves[curves["env_step"] == curves["env_step"].max()].rename(columns={"value": "final"})
        matrices, _ = stats.score_matrices(last, "final")
        stats.interval_estimates(matrices, reps=args.reps)
        final_ci_s = time.perf_counter() - start
        start = time.perf_counter()
        picks = np.unique(np.linspace(0, args.points - 1, 10).astype(int)) * 1000
        sub = curves[curves["env_step"].isin(picks)].sort_values(["method", "task", "seed", "env_step"])
        arrays = {}
        for method, group in sub.groupby("method"):
            n_tasks, n_steps = group["task"].nunique(), len(picks)
            arrays[method] = group["value"].to_numpy().reshape(n_tasks, -1, n_steps).transpose(1, 0, 2)
        stats.aggregate_curve(arrays, reps=args.reps)
        curve_ci_s = time.perf_counter() - start

        rows = [
            ("write (runs + curves files)", write_s, f"{n_files} files, {args.workers} processes"),
            ("read + IQM, before compaction", before_s,
             f"{n_rows} curve rows, {len(before)} IQM cells; {before_cpu:.2f} s CPU"),
            ("compact", compact_s, f"{compact_stats['files_before']} -> {compact_stats['files_after']} files"),
            ("read + IQM, after compaction", after_s, f"same IQM table as before; {after_cpu:.2f} s CPU"),
            (f"bootstrap CIs, final scores ({args.reps} reps)", final_ci_s, f"{len(matrices)} methods x 4 metrics"),
            (f"bootstrap CIs, IQM curve at {len(picks)} steps ({args.reps} reps)", curve_ci_s,
             f"{len(arrays)} methods"),
        ]
        print(f"load average while running: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"{'step':<55}{'seconds':>9}  notes")
        for name, seconds, note in rows:
            print(f"{name:<55}{seconds:>9.2f}  {note}")
        print(f"store_scale read+iqm before compaction: {before_s:.2f} s (cpu)")
        print(f"store_scale read+iqm: {after_s:.2f} s (cpu)")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
