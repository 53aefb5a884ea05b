"""Where does PA-RL collapse on hopper? A 2x2 of critics learning or frozen online x DP distillation on or off.

The hopper issue's diagnostic B5. Every run has the settings of sweeps/diag-hopper.yaml (PA-RL's `demo` preset,
the common start and the 20000 offline critic steps of that sweep, eval every 2000 env steps with 10 episodes on
the tuning eval seeds) with `online.steps` 6000, and differs only in two switches of PA-RL's config
(methods/parl/config.py, id-neutral at their defaults):

    parl.critics_online  true: the critics learn online (PA-RL)      false: no critic update online
    parl.distill         true: the DP is distilled online (PA-RL)    false: the DP takes no step

(with distill=false the distillation targets are still computed, so `parl/q_gain` and `parl/data_chosen` are
logged in every cell). The cells, named learn|frozen + distill|nodistill; learn+distill is PA-RL itself, and
frozen+nodistill changes nothing online, so its scores repeat its env-step-0 scores at every eval point (a check
that evaluation is a pure function of the weights).

Tables: per cell, at every eval point and per seed, the normalised score of the `rerank` actor (the DP's samples
reranked and optimised by Q: what PA-RL acts with) and of the `dp` actor (the DP alone), and per window between
eval points the means of `parl/q_gain` (how much the action optimisation raised Q over the worst kept sample on
the distillation batch), `parl/data_chosen` (the share of distillation targets that were the dataset's chunk)
and `loss/critic_q`; then a summary per cell (step 0 -> final, both actors). The headline names the cells whose
final rerank mean is below their env-step-0 mean.

Follow-up arms, for the cell that fails (`--arm-cell`, default learn+distill): each flag adds arms that change one
key of that cell:
    --no-optim-reset        parl.reset_critic_optim_online=false (PA-RL resets the critics' Adam moments at the
                            switch to online: MaxSobolMark/PolicyAgnosticRL at a26a192, train.py lines 426-434
                            and 909; PARL does it at its first online update)
    --target-tau A,B        parl.critic.target_tau (the demo preset's 0.02; PA-RL's own 0.002)
    --online-ratio A,B      parl.online_ratio, the online share of a critic batch (PA-RL's mixing_ratio 0.5, from
                            the first online update on). PA-RL has no ramp of it: this is the only offline/online
                            mixing key (the DP's batch is drawn uniformly over offline + online data, so its online
                            share grows with the data by itself, as in PA-RL's train.py lines 1031-1046)
    --arm parl.KEY=VALUE    any one parl key (repeatable), e.g. parl.distill_argmax=true (the distillation target
                            the argmax of the optimised candidates instead of a softmax(Q / 1) sample)
    --arms-only             skip the cells other than --arm-cell

Runs go through the runner (run_one, one after another, one torch thread) into the store's sweep `parl-collapse`
(a re-run skips finished runs; the common start is cached in the store's pretrained/ folder, so pass the store of
the diag-hopper sweep to reuse its cache). Seeds: tuning seeds 10-14 only.

    MINARI_DATASETS_PATH=../shared/data python benchmarks/parl_collapse.py --seeds 10,11 \\
        --store STORE
    python benchmarks/parl_collapse.py --smoke        # tiny budgets on the demo task, seconds

Cost on hopper-medium, one torch thread on a shared 2-core machine: the diag-hopper PA-RL run took ~2 min for its
20000 offline critic steps and ~3.3 min per 1000 online env steps (an update every 2 env steps, each with 8 DDIM
proposals for 128 states through the 512x3 DP), so ~22 min per run at 6000 steps and ~3 h for the 2x2 on two
seeds (the nodistill cells still compute the targets, the frozen ones skip only the critic step); each follow-up
arm adds ~22 min per seed. `--online-steps 2000` cuts it by two thirds.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
DIAG_SWEEP = ROOT / "sweeps" / "diag-hopper.yaml"
CELLS = {  # name -> (parl.critics_online, parl.distill)
    "learn+distill": (True, True),
    "learn+nodistill": (True, False),
    "frozen+distill": (False, True),
    "frozen+nodistill": (False, False),
}
DIAGNOSTICS = ("parl/q_gain", "parl/data_chosen", "loss/critic_q")
ACTORS = ("rerank", "dp")
# Tiny budgets for --smoke (the demo task; replace the sweep file's, key by key).
SMOKE_BUDGET = {
    "common_start.steps": 40, "common_start.ema_start": 0, "common_start.lr_warmup": 0, "common_start.log_every": 10,
    "pretrain.steps": 40, "pretrain.log_every": 10, "pretrain.checkpoint_every": 20,
    "online.steps": 300, "online.checkpoint_every": 150, "online.log_every": 50,
    "eval.every": 150, "eval.episodes": 2, "parl.update_after": 100, "parl.batch_size": 32,
}


def parse_seeds(text: str) -> list[int]:
    a, _, b = text.partition("-")
    return list(range(int(a), int(b) + 1)) if b else [int(s) for s in a.split(",")]


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


@dataclasses.dataclass(frozen=True)
class Arm:
    label: str  # a cell name, or "<cell>, key=value"
    cell: str
    overrides: dict  # the parl keys this arm sets


def arms_of(args) -> list[Arm]:
    arms = [] if args.arms_only else [Arm(c, c, {}) for c in CELLS]
    if args.arms_only or not arms:
        arms.append(Arm(args.arm_cell, args.arm_cell, {}))
    extra: list[tuple[str, object]] = []
    if args.no_optim_reset:
        extra.append(("parl.reset_critic_optim_online", False))
    extra += [("parl.critic.target_tau", v) for v in floats(args.target_tau)]
    extra += [("parl.online_ratio", v) for v in floats(args.online_ratio)]
    for item in args.arm:  # --arm parl.KEY=VALUE: one more arm changing that key (the value read as YAML)
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("parl."):
            raise SystemExit(f"parl_collapse: --arm '{item}' is not parl.KEY=VALUE")
        extra.append((key, yaml.safe_load(value)))
    arms += [Arm(f"{args.arm_cell}, {k.removeprefix('parl.')}={v}", args.arm_cell, {k: v}) for k, v in extra]
    return arms


def run_specs(args, task: str, seeds: list[int], budget: dict) -> list[tuple[Arm, object]]:
    """(arm, RunSpec) for every arm and seed: the diag-hopper sweep's PA-RL runs with the budget and the arm's
    switches (resolved through the sweep machinery, so the settings are the sweep file's)."""
    from bench.sweep.spec import expand, load_sweep

    base = load_sweep(DIAG_SWEEP)
    out = []
    for arm in arms_of(args):
        critics_online, distill = CELLS[arm.cell]
        grid = {"parl.critics_online": [critics_online], "parl.distill": [distill]}
        grid.update({k: [v] for k, v in arm.overrides.items()})
        spec = dataclasses.replace(base, name=args.sweep, methods=["parl"], tasks=[task], seeds=seeds,
                                   overrides={**base.overrides, **budget}, grid=grid)
        out += [(arm, r) for r in expand(spec)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="10,11", help="tuning seeds (10-14), e.g. 10,11 or 10-14")
    ap.add_argument("--store", default=None, help="results store (default results-diag; --smoke: a temp dir)")
    ap.add_argument("--task", default="hopper-medium")
    ap.add_argument("--sweep", default="parl-collapse", help="the store sweep the runs go into")
    ap.add_argument("--online-steps", type=int, default=6000)
    ap.add_argument("--eval-every", type=int, default=2000)
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--pretrain-steps", type=int, default=None, help="offline critic steps (default: the sweep's)")
    ap.add_argument("--common-start-steps", type=int, default=None, help="default: the sweep's (its cache)")
    ap.add_argument("--arm-cell", default="learn+distill", choices=sorted(CELLS),
                    help="the cell the follow-up arms change")
    ap.add_argument("--no-optim-reset", action="store_true", help="arm: parl.reset_critic_optim_online=false")
    ap.add_argument("--target-tau", default="", help="arms: parl.critic.target_tau values, e.g. 0.005,0.002")
    ap.add_argument("--online-ratio", default="", help="arms: parl.online_ratio values, e.g. 0.1,0.25")
    ap.add_argument("--arm", action="append", default=[], help="an arm changing one key: parl.KEY=VALUE (repeatable)")
    ap.add_argument("--arms-only", action="store_true", help="run --arm-cell and its arms, not the whole 2x2")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="tiny budgets on the demo task (a test runs it)")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    seeds = parse_seeds(args.seeds)
    if any(not 10 <= s <= 14 for s in seeds):
        raise SystemExit("parl_collapse: tuning seeds 10-14 only (never the reported seeds)")
    budget = {"threads": 1, "online.steps": args.online_steps, "eval.every": args.eval_every,
              "eval.episodes": args.episodes}
    if args.pretrain_steps is not None:
        budget["pretrain.steps"] = args.pretrain_steps
    if args.common_start_steps is not None:
        budget["common_start.steps"] = args.common_start_steps
    task, tmp = args.task, None
    if args.smoke:
        tmp = tempfile.TemporaryDirectory(prefix="parl-collapse-smoke-")
        task = "demo"
        budget.update(SMOKE_BUDGET)
        make_demo_dataset(Path(tmp.name) / "minari")
    store = Path(args.store or (Path(tmp.name) / "store" if tmp else "results-diag"))
    specs = run_specs(args, task, seeds, budget)
    if not args.report_only:
        from bench.runner.lifecycle import run_one

        for i, (arm, r) in enumerate(specs, 1):
            t0 = time.perf_counter()
            print(f"[{i}/{len(specs)}] {arm.label}, seed {r.seed} (run {r.run_id}) ...", file=sys.stderr, flush=True)
            run_one(r.cfg, store_root=store, sweep_id=args.sweep, progress=False)
            print(f"[{i}/{len(specs)}] done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    report(store, args.sweep, specs, task, seeds)
    if tmp is not None:
        tmp.cleanup()
    return 0


def make_demo_dataset(root: Path) -> None:
    """For --smoke: the demo dataset where MINARI_DATASETS_PATH has one (a test's), else one made in a temp dir
    at a tiny budget (as benchmarks/restructure_check.py makes it)."""
    from bench.data import DatasetError
    from bench.data.d4rl import make_dataset
    from bench.data.loaders import load_dataset
    from bench.tasks.demo import DEMO_DATASET

    try:
        load_dataset(DEMO_DATASET)
        return
    except DatasetError:
        pass
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    make_dataset(DEMO_DATASET, root=root, agent_steps=2000, dataset_size=1500, progress=False)


def grid_steps(every: int, total: int) -> list[int]:
    from bench.runner.evaluation import advance_grid

    grid, g = [0], 0
    while g < total:
        g = advance_grid(g, g, every)
        grid.append(g)
    return grid


def seed_mean(per: dict, actor: str, rs, g: int) -> float:
    """The mean over the runs' seeds of `actor`'s score at grid step g (nan where none has one)."""
    import numpy as np

    vals = [per[(actor, r.seed)].get(g, float("nan")) for r in rs]
    return float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")


def report(store_root: Path, sweep: str, specs, task: str, seeds: list[int]) -> None:
    import numpy as np

    from results.store import Store

    store = Store(store_root)
    rids = [r.run_id for _, r in specs]
    runs = store.runs(sweep=sweep, run_ids=rids).set_index("run_id") if rids else None
    curves = store.curves(sweep=sweep, run_ids=rids)
    cfg = specs[0][1].cfg
    every, total = cfg.eval.every, cfg.online.steps
    grid = grid_steps(every, total)

    def on_grid(step: int) -> int:  # an eval lands at the first decision boundary at or after its grid step
        return max(g for g in grid if g <= step)

    sc = curves[(curves.metric == "normalized_score") & curves.actor.isin(ACTORS)].copy()
    sc["grid"] = [on_grid(int(s)) for s in sc.env_step]
    dg = curves[curves.metric.isin(DIAGNOSTICS) & (curves.phase == "finetune")].copy()
    dg["window"] = [next(g for g in grid if g >= int(s)) if int(s) <= grid[-1] else grid[-1] for s in dg.env_step]

    print(f"# PA-RL collapse 2x2 on {task}, seeds {seeds} (tuning; eval seed set {cfg.eval.seed_set}, "
          f"{cfg.eval.episodes} episodes), {total} online env steps, eval every {every}; store sweep '{sweep}'")
    print(f"settings: sweeps/diag-hopper.yaml, PA-RL preset '{cfg.preset}', pretrain.steps {cfg.pretrain.steps}, "
          f"common_start.steps {cfg.common_start.steps}")
    summary = []
    arms: dict[str, list] = {}
    for arm, r in specs:
        arms.setdefault(arm.label, []).append(r)
    for label, rs in arms.items():
        print(f"\n## {label}")
        status = {r.seed: (runs.loc[r.run_id, "status"] if runs is not None and r.run_id in runs.index else "absent")
                  for r in rs}
        wall = {r.seed: float(runs.loc[r.run_id, "wall_s"]) if status[r.seed] != "absent" else float("nan")
                for r in rs}
        print("runs: " + ", ".join(f"seed {r.seed} {r.run_id} {status[r.seed]} ({wall[r.seed]:.0f} s)" for r in rs))
        cols = [f"{a} s{r.seed}" for a in ACTORS for r in rs] + [f"{a} mean" for a in ACTORS]
        dcols = [f"{m.split('/')[-1]} s{r.seed}" for m in DIAGNOSTICS for r in rs]
        print("| env step | " + " | ".join(cols + dcols) + " |")
        print("|---" * (1 + len(cols) + len(dcols)) + "|")
        per: dict[tuple[str, int], dict[int, float]] = {}
        for g in grid:
            cells, means = [], {}
            for a in ACTORS:
                vals = []
                for r in rs:
                    v = sc[(sc.run_id == r.run_id) & (sc.actor == a) & (sc.grid == g)].value
                    x = float(v.iloc[-1]) if len(v) else float("nan")
                    per.setdefault((a, r.seed), {})[g] = x
                    vals.append(x)
                    cells.append(f"{x:.1f}")
                means[a] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            cells += [f"{means[a]:.1f}" for a in ACTORS]
            for m in DIAGNOSTICS:
                for r in rs:
                    v = dg[(dg.run_id == r.run_id) & (dg.metric == m) & (dg.window == g)].value
                    cells.append(f"{float(v.mean()):.3g}" if g > 0 and len(v) else "-")
            print(f"| {g} | " + " | ".join(cells) + " |")

        summary.append((label, {a: (seed_mean(per, a, rs, 0), seed_mean(per, a, rs, grid[-1])) for a in ACTORS}))
    print("\n## summary (mean over seeds)")
    print("| arm | rerank at 0 | rerank final | change | dp at 0 | dp final | change |")
    print("|---|---|---|---|---|---|---|")
    fell = []
    for label, m in summary:
        (r0, r1), (d0, d1) = m["rerank"], m["dp"]
        print(f"| {label} | {r0:.1f} | {r1:.1f} | {r1 - r0:+.1f} | {d0:.1f} | {d1:.1f} | {d1 - d0:+.1f} |")
        if r1 < r0:
            fell.append(f"{label} ({r0:.1f} -> {r1:.1f})")
    print(f"parl_collapse: {task} seeds {','.join(map(str, seeds))} at {total} env steps: final rerank below its "
          f"step-0 score in " + ("; ".join(fell) if fell else "no arm"))


if __name__ == "__main__":
    sys.exit(main())
