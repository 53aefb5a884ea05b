"""BC score against pretraining steps (the plateau rule), and bc_dp's score against act_steps, on a task (demo).

Issue 14's protocol: the demo's bc_dp (the common start of every DP method) must be trained to a plateau:
doubling the pretraining steps moves the tuning-seed score by less than its CI half-width. This script trains
bc_dp (common_start.steps) and bc_gauss (pretrain.steps) at doubling budgets on the TUNING seeds (10-14 by
default) with the tuning eval seeds (eval.seed_set=tune), and evaluates bc_dp's DP executing act_steps of its
chunk. Runs go through the sweep launcher's local pool (2 workers, one thread each), into a store of their own;
a re-run skips finished runs.

    python benchmarks/bc_plateau.py --store results-plateau [--task demo] [--steps 750,1500,3000,6000] [--seeds 10-14]
        [--act-steps 1,2,4] [--set dp.hidden=[256,256,256] ...]

It prints one table per method (mean ± 95% t-CI over seeds, n) and, last, the first budget at which doubling
moves the score by less than the CI half-width.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="results-plateau")
    ap.add_argument("--task", default="demo", help="the task (hopper-medium: the hopper issue's part B1)")
    ap.add_argument("--steps", default="750,1500,3000,6000")
    ap.add_argument("--seeds", default="10-14", help="tuning seeds only (issue 14's protocol): 10-19")
    ap.add_argument("--act-steps", default="1,2,4", help="bc_dp's executed actions per chunk, at every budget")
    ap.add_argument("--methods", default="bc_dp,bc_gauss")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override (dp.*, ...)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    import numpy as np

    from analysis.stats import mean_ci
    from bench.config.dotted import parse_value
    from bench.sweep.launch import launch
    from bench.sweep.spec import parse_sweep
    from results.store import Store

    steps = [int(s) for s in args.steps.split(",")]
    seeds = parse_seeds(args.seeds)
    if set(seeds) & (set(range(0, 5)) | set(range(100, 105))):
        raise SystemExit("bc_plateau: tune on seeds 10-19 only (0-4 and 100-104 are reported)")
    methods = args.methods.split(",")
    extra = dict(kv.split("=", 1) for kv in args.set)
    extra = {k: parse_value(v) for k, v in extra.items()}
    base = {"threads": 1, "online.steps": 0, "eval.episodes": 10, "eval.seed_set": "tune", "eval.timing": False,
            "pretrain.log_every": 250, "common_start.log_every": 250, **extra}
    name = "bc-plateau"
    acts = [int(a) for a in args.act_steps.split(",")] if "bc_dp" in methods else []
    sweeps = []
    for m in methods:
        over = {k: v for k, v in base.items() if m != "bc_gauss" or not k.startswith(("dp.", "common_start."))}
        grid = {"pretrain.steps": steps} if m == "bc_gauss" else {"common_start.steps": steps, "dp.act_steps": acts}
        sweeps.append({"name": name, "methods": [m], "tasks": [args.task], "seeds": seeds, "overrides": over,
                       "grid": grid, "executor": "local",
                       "resources": {"cpus": 1, "time": 120, "array_parallelism": args.workers}})
    if not args.report_only:
        for d in sweeps:  # bc_dp first: its common start is cached per budget, act_steps only re-evaluates
            launch(parse_sweep(d, f"<bc_plateau {d['methods'][0]}>"), store_root=args.store, wait=True)
    store = Store(args.store)
    runs = store.runs(sweep=name, status="finished")
    curves = store.curves(sweep=name, run_ids=list(runs.run_id))
    import json

    cfgs = {r.run_id: json.loads(r.config_json) for r in runs.itertuples()}
    finals = curves[curves.metric == "normalized_score"].sort_values("env_step").groupby("run_id").tail(1)
    score = dict(zip(finals.run_id, finals.value))
    rows = []
    for rid, cfg in cfgs.items():
        m = cfg["method"]
        n = cfg["pretrain"]["steps"] if m == "bc_gauss" else cfg["common_start"]["steps"]
        a = cfg["dp"].get("act_steps") if "dp" in cfg else None
        rows.append((m, n, a, cfg["seed"], score.get(rid, np.nan)))
    if extra:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    print(f"{args.task} task, tuning seeds {seeds}, eval seed set 'tune' (10 episodes), normalized score, mean ± 95% t-CI")
    verdicts = []
    for m in methods:
        for a in (acts if m == "bc_dp" else [None]):
            label = f"{m}" + (f" act_steps={a}" if a is not None else "")
            print(f"\n{label}")
            print("| steps | mean | ± CI | n | per seed |")
            print("|---|---|---|---|---|")
            stats = {}
            for n in steps:
                vals = [r[4] for r in rows if r[0] == m and r[1] == n and r[2] == a]
                mu, ci, k = mean_ci(np.asarray(vals, float))
                stats[n] = (mu, ci)
                print(f"| {n} | {mu:.1f} | {ci:.1f} | {k} | {', '.join(f'{v:.1f}' for v in vals)} |")
            # the first budget from which every doubling moves the mean by less than the CI half-width
            moves = [(n, abs(stats[n2][0] - stats[n][0]) < stats[n][1]) for n, n2 in zip(steps, steps[1:])]
            plateau = next((n for i, (n, _) in enumerate(moves) if all(ok for _, ok in moves[i:])), None)
            verdicts.append(f"{label}: plateau at {plateau}" if plateau else f"{label}: no plateau within {steps}")
    print("\nbc_plateau: " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
