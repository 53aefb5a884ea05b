"""Does a fine-tuning method learn on the demo task? Each seed's final score minus its own env-step-0 score.

Issue 14's check for DPPO (and any method): on the demo task at the demo budget (sweeps/demo.yaml's overrides,
the method's `demo` preset), the mean of the paired difference (final - step 0) must be >= 0, with a 95%
t-CI; training curves named by --curves (DPPO: its approximate KL and clip fraction) must show that the policy
moved. Tune on seeds 10-19 only (eval.seed_set=tune); report on 0-4 and 100-104 with eval.seed_set=report.

    MINARI_DATASETS_PATH=D python benchmarks/learns.py --method dppo --seeds 10-14 --store S [--set k=v ...]

Runs go through the sweep launcher's local pool (2 workers). The last line is the paired difference.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="dppo")
    ap.add_argument("--seeds", default="10-14")
    ap.add_argument("--store", default="results-learns")
    ap.add_argument("--sweep", default=None, help="sweep name (default learns-<method>)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--actor", default=None, help="the actor to score (default: the method's first)")
    ap.add_argument("--curves", default="ppo/approx_kl,ppo/clipfrac", help="training metrics to summarise")
    ap.add_argument("--figure", default=None, help="write the curves' figure to this PNG")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    import numpy as np

    from analysis.stats import mean_ci
    from bench.config.dotted import parse_value
    from bench.demo import demo_spec
    from bench.sweep.launch import launch
    from bench.sweep.spec import parse_sweep
    from methods.registry import get_method_class
    from results.store import Store

    a, _, b = args.seeds.partition("-")
    seeds = list(range(int(a), int(b) + 1)) if b else [int(s) for s in a.split(",")]
    tuning = all(10 <= s <= 19 for s in seeds)
    demo = demo_spec()
    over = {k: v for k, v in demo.overrides.items()}
    over["eval.seed_set"] = "tune" if tuning else "report"
    cls = get_method_class(args.method)
    if "demo" in cls.Config.presets:
        over["preset"] = "demo"
    over.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    name = args.sweep or f"learns-{args.method.replace('_', '-')}"
    if not args.report_only:
        spec = parse_sweep({"name": name, "methods": [args.method], "tasks": ["demo"], "seeds": seeds,
                            "overrides": over, "executor": "local",
                            "resources": {"cpus": 1, "time": 120, "array_parallelism": args.workers}},
                           f"<learns {args.method}>")
        launch(spec, store_root=args.store, wait=True)
    store = Store(args.store)
    runs = store.runs(sweep=name, status="finished")
    want = {r.run_id for r in runs.itertuples() if json.loads(r.config_json)["seed"] in seeds}
    c = store.curves(sweep=name, run_ids=sorted(want))
    actor = args.actor or cls.actors[0]
    sc = c[(c.metric == "normalized_score") & (c.actor == actor)].sort_values("env_step")
    seed_of = {r.run_id: int(r.seed) for r in runs.itertuples()}
    rows = []
    for rid, g in sc.groupby("run_id"):
        rows.append((seed_of[rid], float(g.value.iloc[0]), float(g.value.iloc[-1]), int(g.env_step.iloc[-1])))
    rows.sort()
    print(f"{args.method}/{actor} on the demo task, seeds {seeds} ({'tuning' if tuning else 'reported'}; eval seed "
          f"set {over['eval.seed_set']}), {over.get('online.steps')} online env steps")
    print("| seed | step 0 | final | final - step 0 |")
    print("|---|---|---|---|")
    for s, v0, v1, _ in rows:
        print(f"| {s} | {v0:.1f} | {v1:.1f} | {v1 - v0:+.1f} |")
    diffs = np.array([v1 - v0 for _, v0, v1, _ in rows])
    mu, ci, n = mean_ci(diffs)
    for metric in [m for m in args.curves.split(",") if m]:
        m = c[c.metric == metric]
        if m.empty:
            print(f"{metric}: not logged")
            continue
        per_step = m.groupby("env_step").value.mean()
        q = np.array_split(per_step.to_numpy(), 4)
        print(f"{metric}: mean over runs by quarter of training " + ", ".join(f"{x.mean():.4f}" for x in q if len(x))
              + f"; max {per_step.max():.4f}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        metrics = ["normalized_score"] + [m for m in args.curves.split(",") if m]
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2))
        for ax, metric in zip(np.atleast_1d(axes), metrics):
            m = c[(c.metric == metric) & ((c.actor == actor) if metric == "normalized_score" else (c.actor == ""))]
            for rid, g in m.groupby("run_id"):
                ax.plot(g.env_step, g.value, lw=1, label=f"seed {seed_of[rid]}")
            ax.set_title(metric)
            ax.set_xlabel("env step")
        np.atleast_1d(axes)[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)
        print(f"figure: {args.figure}")
    print(f"learns {args.method}/{actor}: final - step 0 = {mu:+.2f} ± {ci:.2f} (95% t-CI, n={n})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
