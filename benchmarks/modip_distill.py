"""Does MODIP's fine-tuned DP learn what its planner knows? Issue 15's benchmark, and its 2×2 rerun.

On the demo task at the demo budget (sweeps/demo.yaml's overrides, MODIP's `demo` preset), with an eval every
250 env steps over the first 2000 (where the old dip lay) and at the demo's grid after that, it reports:
- the dip check: at every eval point, the `dp` actor's mean against bc_dp's lower 95% bound. bc_dp is MODIP's
  own `dp` actor at env step 0: both are the common-start checkpoint, evaluated on the same eval seeds (a test
  checks that they are equal), so no separate bc_dp runs are needed;
- the gap check: final dp - bc_dp >= 1/2 (ceiling - bc_dp), where the ceiling is the `mpc_chunk` actor's final
  score (the planner executing whole Ta-chunks open-loop); and the paired 95% CI of (dp - bc_dp) per seed;
- per arm and actor: the final score, the per-action latency at batch 1 (p50 / actions per call, from each
  run's timing rows) and the update time, each mean ± 95% t-CI over seeds;
- the diagnostics that say why: the ESS of the elite weights, the share of plans won by a DP proposal, the mean
  label advantage and the kept share, the DP-to-label distance.

    MINARI_DATASETS_PATH=D python benchmarks/modip_distill.py --seeds 100-104 --arms 2x2 --store S
    MINARI_DATASETS_PATH=D python benchmarks/modip_distill.py --seeds 10-14 --arms weighting --store S   # tuning
    MINARI_DATASETS_PATH=D python benchmarks/modip_distill.py --seeds 100-104 --arms terminal --task demo-long

--arms: main (MODIP's defaults), 2x2 (planner.terminal v/q × critic.target indep/policy), terminal (v/q),
weighting (label_weighting none/filter/awr), distill (label_weighting none/filter × distill_lr 0 (dp.lr) / 1e-4), lr (filter × distill_lr 0 / 1e-4).
Seeds 10-19 are tuning seeds (eval seed set `tune`); any other
seeds are reported with the `report` eval seeds. Runs go through the sweep launcher's local pool (2 workers,
one torch thread each) into a store sweep of their own; a re-run skips finished runs.
Which Q a q-terminal cell uses: under critic.target=indep, Q regresses on r + γ V̄(s') with V the expectile
value, so it is Q^expectile, not Q^π; under policy, Q is Q^π of the EMA DP (TD-MPC2-style targets).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ARMS = {
    "main": {},
    "2x2": {"modip.planner.terminal": ["v", "q"], "modip.critic.target": ["indep", "policy"]},
    "terminal": {"modip.planner.terminal": ["v", "q"]},
    "weighting": {"modip.label_weighting": ["none", "filter", "awr"]},
    "distill": {"modip.label_weighting": ["none", "filter"], "modip.distill_lr": [0.0, 1e-4]},
    "lr": {"modip.label_weighting": ["filter"], "modip.distill_lr": [0.0, 1e-4]},
}
DIAGNOSTICS = ("plan/ess", "plan/dp_won", "distill/label_adv", "distill/label_kept", "distill/dp_label_dist",
               "distill/started_at", "diag/dp_spread")


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b) + 1)) if b else [int(s) for s in a.split(",")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-104")
    ap.add_argument("--arms", default="main", choices=sorted(ARMS))
    ap.add_argument("--task", default="demo")
    ap.add_argument("--store", default="results-modip")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--dense-every", type=int, default=250)
    ap.add_argument("--dense-until", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tag", default="", help="a suffix of the store sweep's name (e.g. one per tuning round)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()

    from bench.config.dotted import parse_value
    from bench.demo import demo_spec, ensure_demo_dataset
    from bench.sweep.launch import launch
    from bench.sweep.spec import parse_sweep
    from results.store import Store

    seeds = parse_seeds(args.seeds)
    tuning = all(10 <= s <= 19 for s in seeds)
    if not tuning and any(10 <= s <= 19 for s in seeds):
        raise SystemExit("modip_distill: do not mix tuning seeds (10-19) with reported ones")
    over = dict(demo_spec().overrides)
    over.update({"preset": "demo", "eval.seed_set": "tune" if tuning else "report",
                 "eval.dense_every": args.dense_every, "eval.dense_until": args.dense_until})
    over.update({k: parse_value(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    name = f"modip-distill-{args.arms}-{args.task}" + ("-tune" if tuning else "") + (f"-{args.tag}" if args.tag else "")
    if not args.report_only:
        ensure_demo_dataset()
        spec = parse_sweep({"name": name, "methods": ["modip"], "tasks": [args.task], "seeds": seeds,
                            "overrides": over, "grid": ARMS[args.arms], "executor": "local",
                            "resources": {"cpus": 1, "time": 120, "array_parallelism": args.workers}},
                           f"<modip_distill {args.arms}>")
        launch(spec, store_root=args.store, wait=True)
    report(Store(args.store), name, seeds, list(ARMS[args.arms]), tuning, over)
    return 0


def report(store, sweep: str, seeds: list[int], axes: list[str], tuning: bool, over: dict) -> None:
    import numpy as np

    from analysis.data import action_rows, per_action_ms, update_rows
    from analysis.stats import mean_ci

    runs = store.runs(sweep=sweep, status="finished")
    cfgs = {r.run_id: json.loads(r.config_json) for r in runs.itertuples()}
    cfgs = {rid: c for rid, c in cfgs.items() if c["seed"] in seeds}
    curves = store.curves(sweep=sweep, run_ids=sorted(cfgs))
    timings = store.timings(sweep=sweep)
    timings = timings[timings.run_id.isin(cfgs)]

    def get(cfg, key):
        node = cfg
        for part in key.split("."):
            node = node[part]
        return node

    arms: dict[str, list[str]] = {}
    for rid, cfg in cfgs.items():
        label = ", ".join(f"{k.split('.')[-1]}={get(cfg, k)}" for k in axes) or "defaults"
        arms.setdefault(label, []).append(rid)
    seed_of = {rid: c["seed"] for rid, c in cfgs.items()}

    def fmt(values) -> str:
        return fmt_ci(values, mean_ci, 1, "")

    print(f"MODIP on task {next(iter(cfgs.values()))['task'] if cfgs else '?'}, seeds {seeds} "
          f"({'tuning' if tuning else 'reported'}; eval seed set {over['eval.seed_set']}), "
          f"{over['online.steps']} online env steps; store sweep '{sweep}'")
    sc = curves[curves.metric == "normalized_score"].copy()
    # an eval lands at the first chunk boundary at or after its grid step: name each by its grid step
    from bench.runner.evaluation import advance_grid

    grid, g = [0], 0
    dense = (int(over["eval.dense_every"]), int(over["eval.dense_until"]))
    while g < int(over["online.steps"]):
        g = advance_grid(g, g, int(over["eval.every"]), *dense)
        grid.append(g)
    sc["env_step"] = [max(x for x in grid if x <= step) for step in sc.env_step]
    for label, rids in sorted(arms.items()):
        print(f"\n## {label}  (n={len(rids)}: seeds {sorted(seed_of[r] for r in rids)})")
        s = sc[sc.run_id.isin(rids)]
        table = s.pivot_table(index=["env_step", "run_id"], columns="actor", values="value").reset_index()
        dp0 = table[table.env_step == 0].set_index("run_id")["dp"]
        mu0, half0, n0 = mean_ci(dp0.to_numpy())
        lower = mu0 - half0 if n0 > 1 else -np.inf  # no bound from one seed
        print(f"bc_dp (the dp actor at env step 0): {mu0:.1f} ± {half0:.1f}; lower 95% bound {lower:.1f}")
        print("| env step | dp | mpc | mpc_chunk | dp mean >= bc_dp lower bound |")
        print("|---|---|---|---|---|")
        worst = np.inf
        for step, g in table.groupby("env_step"):
            dp_mean = float(g["dp"].mean())
            worst = min(worst, dp_mean - lower)
            cells = [fmt(g[a]) if a in g else "-" for a in ("dp", "mpc", "mpc_chunk")]
            print(f"| {int(step)} | {' | '.join(cells)} | {'yes' if dp_mean >= lower else 'NO'} |")
        last = table.sort_values("env_step").groupby("run_id").last()
        paired = (last["dp"] - dp0.reindex(last.index)).to_numpy()
        pm, ph, pn = mean_ci(paired)
        dp_f, ceil_f = float(last["dp"].mean()), float(last["mpc_chunk"].mean()) if "mpc_chunk" in last else np.nan
        need = 0.5 * (ceil_f - mu0)
        print(f"no dip: {'met' if worst >= 0 else 'MISSED'} (worst dp mean - bc_dp lower bound: {worst:+.1f})")
        print(f"final dp - bc_dp: {pm:+.1f} ± {ph:.1f} (paired 95% t-CI, n={pn}); CI excludes 0: "
              f"{'yes' if pm - ph > 0 else 'NO'}")
        print(f"half the gap: dp - bc_dp = {dp_f - mu0:+.1f} against 1/2 (ceiling {ceil_f:.1f} - bc_dp {mu0:.1f}) = "
              f"{need:+.1f}: {'met' if dp_f - mu0 >= need else 'MISSED'}")
        print("per seed (final): " + ", ".join(
            f"{seed_of[r]}: dp {last.loc[r, 'dp']:.1f} mpc {last.loc[r, 'mpc']:.1f} chunk "
            f"{last.loc[r, 'mpc_chunk']:.1f}" for r in sorted(last.index, key=lambda r: seed_of[r])))
        t = timings[timings.run_id.isin(rids) & (timings.batch == 1)]
        acts, upd = action_rows(t), update_rows(t)
        for actor in ("dp", "mpc"):
            lat = per_action_ms(acts[acts.actor == actor]).tolist()
            print(f"{actor}: final {fmt(last[actor])}; ms/action p50 {fmt_ms(lat, mean_ci)}")
        print(f"ms/update p50: {fmt_ms(upd.p50_ms.tolist(), mean_ci)}")
        diag = curves[curves.run_id.isin(rids) & curves.metric.isin(DIAGNOSTICS)]
        parts = []
        for metric in DIAGNOSTICS:
            m = diag[diag.metric == metric]
            if m.empty:
                continue
            early = m[m.env_step <= 1000].value.mean()
            late = m[m.env_step > m.env_step.max() - 1000].value.mean()
            parts.append(f"{metric} {early:.3g} (first 1000 steps) -> {late:.3g} (last 1000)")
        print("diagnostics (mean over seeds): " + "; ".join(parts))


def fmt_ci(values, mean_ci, digits: int = 2, unit: str = " ms") -> str:
    """mean ± 95% t half-width of the finite values (with n), or '-'."""
    import numpy as np

    x = np.asarray([v for v in values if np.isfinite(v)], float)
    if len(x) == 0:
        return "-"
    mu, half, n = mean_ci(x)
    if n < 2:
        return f"{mu:.{digits}f}{unit} (n=1)"
    return f"{mu:.{digits}f} ± {half:.{digits}f}{unit}" + (f" (n={n})" if unit else "")


def fmt_ms(values, mean_ci) -> str:
    return fmt_ci(values, mean_ci)


if __name__ == "__main__":
    sys.exit(main())
