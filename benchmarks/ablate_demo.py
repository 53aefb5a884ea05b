"""The 2×2 MODIP ablation on the demo task: planner.terminal ∈ {v, q} × critic.target ∈ {indep, policy}.

Why: terminal v against q is the paper's inference-time claim, indep against policy its training-time claim;
crossing them separates the two. Each arm runs MODIP's `demo` preset on the demo task for N seeds, with
bc_dp (the common start, a flat line) alongside, into one store sweep. Runs already finished there are
skipped, so the script resumes after an interruption. It then prints, per arm and actor, the final
normalised score (mean ± 95% Student-t CI over seeds), the per-action latency of each actor (p50 at batch 1,
from each run's own timing rows: the call that serves the actor / the env actions it yields, as the timed
component declares them) and the time per fine-tune update (p50).

    python benchmarks/ablate_demo.py [--store results] [--seeds 5] [--online-steps N] [--pretrain-steps N]
                                     [--eval-every N] [--shard I/N] [--report-only]
                                     [--matched-iterations K]

--shard I/N runs every N-th run of the plan starting at I (0-based), so N processes can share a sweep without
ever starting the same run; the report always covers the whole plan.

The defaults are the demo budget (bench/demo.py DEMO_BUDGET); a reduced budget is a different sweep, so its
runs never mix with full-budget ones in one table.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SWEEP = "ablate-demo"
ARMS = [("v", "indep"), ("q", "indep"), ("v", "policy"), ("q", "policy")]


def budget(online_steps: int, pretrain_steps: int, eval_every: int) -> dict:
    from bench.demo import DEMO_BUDGET

    return {**DEMO_BUDGET, "online.steps": online_steps, "pretrain.steps": pretrain_steps,
            "eval.every": eval_every, "online.checkpoint_every": max(eval_every, 1000)}


def sweep_name(online_steps: int, pretrain_steps: int, eval_every: int) -> str:
    from bench.demo import DEMO_BUDGET

    full = (online_steps, pretrain_steps, eval_every) == (DEMO_BUDGET["online.steps"], DEMO_BUDGET["pretrain.steps"],
                                                          DEMO_BUDGET["eval.every"])
    return SWEEP if full else f"{SWEEP}-on{online_steps}-pre{pretrain_steps}"


def configs(seeds: int, online_steps: int, pretrain_steps: int, eval_every: int,
            matched_iterations: int = 0) -> list[tuple[str, dict]]:
    from bench.runner import resolve_config

    b = budget(online_steps, pretrain_steps, eval_every)
    out = []
    for seed in range(seeds):
        out.append(("bc_dp", resolve_config("bc_dp", "demo", seed, b)))
        for terminal, target in ARMS:
            over = {**b, "preset": "demo", "modip.planner.terminal": terminal,
                    "modip.critic.target": target}
            out.append((f"modip terminal={terminal} target={target}", resolve_config("modip", "demo", seed, over)))
        if matched_iterations:
            # q given fewer MPPI iterations so that its plan costs about what v's does: at equal latency,
            # which terminal plans (and teaches the DP) better?
            over = {**b, "preset": "demo", "modip.planner.terminal": "q", "modip.critic.target": "indep",
                    "modip.planner.iterations": matched_iterations}
            out.append((f"modip terminal=q iters={matched_iterations} target=indep",
                        resolve_config("modip", "demo", seed, over)))
    return out


def mean_ci(values) -> str:
    from scipy import stats

    x = np.asarray([v for v in values if np.isfinite(v)], float)
    if len(x) == 0:
        return "n/a"
    if len(x) < 2:
        return f"{x.mean():.1f} (n=1)"
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    flag = "" if len(x) >= 5 else " [<5 seeds]"
    return f"{x.mean():.1f} ± {half:.1f} (n={len(x)}){flag}"


def report(store_root: str, plan: list[tuple[str, dict]], sweep: str) -> None:
    from analysis.data import action_rows, per_action_ms, update_rows
    from bench.runner import run_id_of
    from results.store import Store

    store = Store(store_root)
    runs = store.runs(sweep=sweep, status="finished")
    curves = store.curves(sweep=sweep)
    timings = store.timings(sweep=sweep)
    arms: dict[str, list[str]] = {}
    for label, cfg in plan:
        rid = run_id_of(cfg)
        if rid in set(runs.run_id):
            arms.setdefault(label, []).append(rid)
    print(f"\n2×2 on the demo task (store sweep '{sweep}'): final normalised score, per-action latency, update time")
    head = (f"{'arm':34s} {'actor':5s} {'score at env step 0':>26s} {'final score':>26s} {'ms/action p50':>16s} "
            f"{'ms/update p50':>16s}")
    print(head)
    print("-" * len(head))
    for label, rids in arms.items():
        c = curves[curves.run_id.isin(rids) & (curves.metric == "normalized_score")]
        t = timings[timings.run_id.isin(rids) & (timings.batch == 1)]
        acts, updates = action_rows(t), update_rows(t)
        for actor in sorted(c.actor.unique()):
            per_run = c[c.actor == actor].sort_values("env_step").groupby("run_id").value
            finals, starts = per_run.last().tolist(), per_run.first().tolist()
            # the timing rows that serve this actor, per env action (p50 / actions_per_call, as each component
            # declares it: a plan's replan_every, a DP call's executed chunk); unknown (NaN) in older stores
            per_action = per_action_ms(acts[acts.actor == actor]).tolist()
            upd = updates.p50_ms.tolist()
            print(f"{label:34s} {actor:5s} {mean_ci(starts):>26s} {mean_ci(finals):>26s} {mean_ci(per_action):>16s} "
                  f"{mean_ci(upd) if upd else '-':>16s}")
    print("per-action latency: p50 of the actor's act or plan call / the env actions it yields (a DP chunk: Ta; a "
          "plan: replan_every);")
    print("ms/update: one fine-tune update for modip (world model, critics, DP), one BC step for bc_dp")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default="results")
    ap.add_argument("--seeds", type=int, default=5)
    from bench.demo import DEMO_BUDGET

    ap.add_argument("--online-steps", type=int, default=DEMO_BUDGET["online.steps"])
    ap.add_argument("--pretrain-steps", type=int, default=DEMO_BUDGET["pretrain.steps"])
    ap.add_argument("--eval-every", type=int, default=DEMO_BUDGET["eval.every"])
    ap.add_argument("--shard", default="0/1", help="I/N: run only runs I, I+N, I+2N, ... of the plan")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--matched-iterations", type=int, default=0,
                    help="also run q (indep) with this many MPPI iterations: the latency-matched q arm")
    args = ap.parse_args()
    import torch

    from bench.demo import ensure_demo_dataset
    from bench.runner import run_id_of, run_one
    from results.store import Store

    torch.set_num_threads(1)
    plan = configs(args.seeds, args.online_steps, args.pretrain_steps, args.eval_every, args.matched_iterations)
    sweep = sweep_name(args.online_steps, args.pretrain_steps, args.eval_every)
    if not args.report_only:
        ensure_demo_dataset()
        # seeds outermost: a partial sweep still has every arm on the first seeds
        shard, n_shards = (int(x) for x in args.shard.split("/"))
        for label, cfg in plan[shard::n_shards]:
            done = Store(args.store).finished_run_ids(sweep)
            if run_id_of(cfg) in done:
                continue
            t0 = time.perf_counter()
            run_one(cfg, store_root=args.store, sweep_id=sweep, progress=False)
            print(f"{label} seed {cfg['seed']}: {time.perf_counter() - t0:.0f}s", flush=True)
    report(args.store, plan, sweep)


if __name__ == "__main__":
    main()
