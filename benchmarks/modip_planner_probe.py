"""Why does MODIP's full planner lose what best-of-N keeps? Its search, one factor at a time, eval-only.

The hopper issue's part B, continued from B3 (`modip_rungs.py`): on MODIP's post-offline checkpoint (the same one,
made or reused by modip_rungs' `offline_checkpoint`), the full planner (rung 4, the `mpc` actor: MPPI with DP
proposals and terminal V) scores 8.0 where best of N DP samples by one model step plus V (rung 3) scores 60.6,
and 12.4 even with the true simulator as its model (rung 5). So the search or its scoring fails, not the model.
This evaluates the same planner (`methods/modip/planner.py` `plan`, through MODIP's own `plan_models`) with one
planner key changed at a time from the sweep's preset, as eval-only actors on the tuning eval seeds (10 episodes
in lockstep, planning only for the episodes still running, warm starts kept per env). Nothing is trained and
nothing is chosen here: it says which part of the search breaks, before any fix is tuned on seeds 10-14.

Variants: `name:key=value[;key=value...]` over `planner.*` keys (`base` = the preset unchanged), e.g.

    MINARI_DATASETS_PATH=../shared/data python benchmarks/modip_planner_probe.py --seeds 10,11 --store STORE \\
        --variant "narrow:max_std=0.3" --variant "dp_only:pi_trajectories=63"

Default variants: the preset; max_std 0.3; DP proposals only (pi_trajectories = samples - 1); temperature 20
(weights near argmax); terminal none (no V); horizon 1; iterations 1; DP proposals only at temperature 20.
Tuning seeds 10-14 only. Cost: 10-40 s per variant and seed on one thread (long episodes cost more).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

import modip_rungs as R

DEFAULT_VARIANTS = (
    "base:",
    "narrow:max_std=0.3",
    "dp_only:pi_trajectories=63",
    "sharp:temperature=20",
    "no_v:terminal=none",
    "h1:horizon=1;replan_every=1",
    "iter1:iterations=1",
    "dp_only_sharp:pi_trajectories=63;temperature=20",
)


def parse_variant(text: str, planner) -> tuple[str, object]:
    """`name:key=value;...` -> (name, the planner section with those keys changed, checked)."""
    name, _, body = text.partition(":")
    if not name:
        raise SystemExit(f"modip_planner_probe: variant '{text}' needs a name (name:key=value;...)")
    update = {}
    for item in filter(None, body.split(";")):
        key, sep, value = item.partition("=")
        if not sep or key not in type(planner).model_fields:
            raise SystemExit(f"modip_planner_probe: '{item}' in variant '{name}' is not planner.KEY=VALUE")
        field = type(planner).model_fields[key].annotation
        update[key] = value if field not in (int, float) else field(value)
    new = type(planner).model_validate({**planner.model_dump(), **update})
    new.check("planner")
    return name, new


def planner_actor(m, pcfg, won: list, task_termination: bool = False) -> R.Actor:
    """MODIP's `mpc` actor in eval mode with planner section `pcfg`, planning for the running episodes only
    (modip_rungs.planner_actor); task_termination: the planner's termination from the task's rule
    (`world_model.termination: task`)."""
    models = m.plan_models(True)
    if task_termination:
        models.step = m._task_terminated(models.step)
    return R.planner_actor(m, lambda s, envs: (s, models), int(pcfg.replan_every), True, pcfg=pcfg, won=won)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="10,11", help="tuning seeds (10-14)")
    ap.add_argument("--store", required=True, help="the store holding (or to hold) the post-offline checkpoints")
    ap.add_argument("--task", default="hopper-medium")
    ap.add_argument("--sweep", default="modip-rungs", help="the store sweep of the offline runs")
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--variant", action="append", default=None, help="name:key=value;... (repeatable)")
    ap.add_argument("--task-termination", action="store_true",
                    help="every variant with world_model.termination=task (the task's termination rule)")
    ap.add_argument("--checkpoint", action="append", default=[],
                    help="SEED=PATH: that seed's post-offline checkpoint (else made or found in --store)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = R.parse_seeds(args.seeds)
    if any(not 10 <= s <= 14 for s in seeds):
        raise SystemExit("modip_planner_probe: tuning seeds 10-14 only (never the reported seeds)")
    from bench.tasks import TUNE_EVAL_SEEDS

    budget = {"threads": 1, "eval.episodes": args.episodes}
    rows: dict[str, dict[int, dict]] = {}
    for seed in seeds:
        cfg = R.modip_config(args.task, seed, budget)
        given = dict(item.split("=", 1) for item in args.checkpoint)
        if str(seed) in given:
            from bench.runner.checkpoints import load_checkpoint

            st = load_checkpoint(Path(given[str(seed)]))
        else:
            st = R.offline_checkpoint(cfg, Path(args.store), args.sweep)
        parts = R.load_post_offline(cfg, st)
        m = parts.method
        eval_seeds = list(TUNE_EVAL_SEEDS)[: args.episodes]
        for text in args.variant or DEFAULT_VARIANTS:
            name, pcfg = parse_variant(text, m.cfg.planner)
            won: list[float] = []
            res = R.evaluate(parts.task, planner_actor(m, pcfg, won, args.task_termination), eval_seeds, m.device)
            res["dp_won"] = float(np.mean(won)) if won else float("nan")
            rows.setdefault(name, {})[seed] = res
            R.say(f"seed {seed} {name}: {np.mean(res['scores']):.1f} (mean length {np.mean(res['lengths']):.0f}, "
                  f"{res['wall_s']:.0f} s)")
    p = m.cfg.planner
    print(f"# MODIP's planner, one factor at a time: {args.task}, seeds {seeds} (tuning; eval seed set tune, "
          f"{args.episodes} episodes), post-offline checkpoint"
          + (", termination from the task's rule" if args.task_termination else ""))
    print(f"preset: H={p.horizon}, samples {p.samples}, elites {p.elites}, iterations {p.iterations}, "
          f"pi_trajectories {p.pi_trajectories}, temperature {p.temperature}, max_std {p.max_std}, "
          f"momentum {p.momentum}, replan_every {p.replan_every}, terminal {p.terminal}\n")
    print("| variant | change | score (mean ± 95% t-CI over seeds x episodes) | "
          + " | ".join(f"seed {s}" for s in seeds) + " | mean length | DP proposal best |")
    print("|---|---|---|" + "---|" * len(seeds) + "---|---|")
    for text in args.variant or DEFAULT_VARIANTS:
        name, _, change = text.partition(":")
        scores = np.concatenate([rows[name][s]["scores"] for s in seeds])
        half = 1.96 * scores.std(ddof=1) / np.sqrt(len(scores)) if len(scores) > 1 else float("nan")
        lengths = np.concatenate([rows[name][s]["lengths"] for s in seeds])
        print(f"| {name} | {change or '-'} | {scores.mean():.1f} ± {half:.1f} | "
              + " | ".join(f"{np.mean(rows[name][s]['scores']):.1f}" for s in seeds) + f" | {lengths.mean():.0f} | "
              + f"{np.mean([rows[name][s]['dp_won'] for s in seeds]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
