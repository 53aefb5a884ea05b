"""MODIP against its controls on the shared DP, side by side: final score, latency per action, update time.

Issue 16's (and 17's) benchmark. On the demo task at the demo budget (sweeps/demo.yaml's overrides; each method's
`demo` preset where it has one), the given methods run on the given seeds through the sweep launcher's local pool
(2 workers, one torch thread each) into a store sweep of their own; a re-run skips finished runs. For every
method and actor it prints:
- the final score, mean ± 95% t-CI over seeds, and each seed's value;
- the step-0 score (the common start for a plain-DP actor; a critic-selecting actor's own start);
- the paired final - step-0 difference of the headline actor, mean ± 95% t-CI;
- the per-action latency at batch 1 (p50 of the actor's act or plan component / actions per call, from each run's
  timing rows) and the update time (p50 ms per update, and ms per env step with the method's updates per env step).
bc_dp is every DP method's `dp` actor at env step 0 (a test checks that they are equal), and is also run itself.

    MINARI_DATASETS_PATH=D python benchmarks/controls.py --seeds 100-104 --methods bc_dp,modip,idql,parl,dsrl --store S
    MINARI_DATASETS_PATH=D python benchmarks/controls.py --seeds 10-14 --methods idql,parl,dsrl --store S   # tuning
Seeds 10-19 are tuning seeds (eval seed set `tune`); others are reported with the `report` eval seeds.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.modip_distill import parse_seeds  # the seed syntax every benchmark takes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-104")
    ap.add_argument("--methods", default="bc_dp,modip,idql,parl,dsrl")
    ap.add_argument("--store", default="results-controls")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override for every run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tag", default="")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--sweep", default="", help="report this store sweep instead (with --report-only)")
    args = ap.parse_args()

    from bench.config.dotted import parse_value
    from bench.demo import demo_spec, ensure_demo_dataset
    from bench.sweep.launch import launch
    from bench.sweep.spec import parse_sweep
    from methods.registry import get_method_class
    from results.store import Store

    seeds = parse_seeds(args.seeds)
    tuning = all(10 <= s <= 19 for s in seeds)
    if not tuning and any(10 <= s <= 19 for s in seeds):
        raise SystemExit("controls: do not mix tuning seeds (10-19) with reported ones")
    methods = args.methods.split(",")
    demo = demo_spec()
    over = dict(demo.overrides)
    over["eval.seed_set"] = "tune" if tuning else "report"
    over.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    per_method = {m: {"preset": "demo"} for m in methods if "demo" in (get_method_class(m).Config.presets or {})}
    name = args.sweep or "controls-demo" + ("-tune" if tuning else "") + (f"-{args.tag}" if args.tag else "")
    if not args.report_only:
        ensure_demo_dataset()
        spec = parse_sweep({"name": name, "methods": methods, "tasks": ["demo"], "seeds": seeds, "overrides": over,
                            "per_method": per_method, "executor": "local",
                            "resources": {"cpus": 1, "time": 120, "array_parallelism": args.workers}},
                           "<controls>")
        launch(spec, store_root=args.store, wait=True)
    report(Store(args.store), name, seeds, methods, tuning, over)
    return 0


def report(store, sweep: str, seeds: list[int], methods: list[str], tuning: bool, over: dict) -> None:
    import numpy as np

    from analysis.data import action_rows, per_action_ms, per_env_step_ms, update_rows
    from analysis.stats import mean_ci
    from methods.registry import get_method_class

    runs = store.runs(sweep=sweep, status="finished")
    runs = runs[runs.seed.isin(seeds) & runs.method.isin(methods)]
    curves = store.curves(sweep=sweep, run_ids=list(runs.run_id))
    timings = store.timings(sweep=sweep)
    timings = timings[timings.run_id.isin(set(runs.run_id)) & (timings.batch == 1)]
    sc = curves[curves.metric == "normalized_score"]

    def fmt(x, digits=1, unit=""):
        x = np.asarray([v for v in x if np.isfinite(v)], float)
        if len(x) == 0:
            return "-"
        mu, half, n = mean_ci(x)
        return f"{mu:.{digits}f}{unit} (n=1)" if n < 2 else f"{mu:.{digits}f} ± {half:.{digits}f}{unit}"

    print(f"controls on the demo task, seeds {seeds} ({'tuning' if tuning else 'reported'}; eval seed set "
          f"{over['eval.seed_set']}), {over['online.steps']} online env steps; store sweep '{sweep}'")
    print("| method / actor | final score | step 0 | final - step 0 (paired) | ms/action, batch 1 | "
          "ms/update | ms/env step of updates | per seed (final) |")
    print("|---|---|---|---|---|---|---|---|")
    for method in methods:
        mine = runs[runs.method == method]
        if mine.empty:
            print(f"| {method} | no finished runs | | | | | | |")
            continue
        seed_of = dict(zip(mine.run_id, mine.seed))
        s = sc[sc.run_id.isin(seed_of)]
        t = timings[timings.run_id.isin(seed_of)]
        acts, upd = action_rows(t), update_rows(t)
        for actor in get_method_class(method).actors:
            a = s[s.actor == actor].sort_values("env_step")
            if a.empty:
                continue
            last = a.groupby("run_id").last().value
            first = a.groupby("run_id").first().value
            paired = (last - first.reindex(last.index)).to_numpy()
            lat = per_action_ms(acts[acts.actor == actor]).tolist()
            ups = upd.p50_ms.tolist() if actor == get_method_class(method).actors[0] else []
            per_step = per_env_step_ms(upd).tolist() if ups else []
            seeds_txt = ", ".join(f"{seed_of[r]}: {v:.1f}" for r, v in sorted(last.items(), key=lambda kv: seed_of[kv[0]]))
            print(f"| {method}/{actor} | {fmt(last)} | {fmt(first)} | {fmt(paired, unit='')} | "
                  f"{fmt(lat, 2, ' ms')} | {fmt(ups, 2, ' ms') if ups else ''} | "
                  f"{fmt(per_step, 2, ' ms') if per_step else ''} | {seeds_txt} |")
    cfg = json.loads(runs.iloc[0].config_json) if len(runs) else {}
    print(f"device {runs.iloc[0].device if len(runs) else '?'}; threads {cfg.get('threads', '?')}")


if __name__ == "__main__":
    sys.exit(main())
