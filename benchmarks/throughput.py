"""The speed issue's cost benchmark: what a run of each method family costs in this tree against 05edce8.

Why: the restructuring must not make runs slower, and where time goes (acting or planning, updates, the env)
says what to speed up. For every family (bc_gauss, bc_dp, dppo, dsrl, idql, modip, parl, tdmpc2) on the demo
task and on hopper-medium (demo preset, one torch thread), and for each tree, this measures
- training cost per env step in a window of the online phase after warm-up and after the family's start rules
  have fired (they are set to fire early, alike on both sides: START), split into act/plan, update, env and
  the loop's other work; the window used is printed per row (bc_gauss and bc_dp have no online phase: their
  offline update and common-start rows are their training);
- evaluation cost per eval env step, per actor (the run's evaluations after its first);
- offline update cost per grad step (pretrain) and common-start cost per BC grad step (the DP methods'
  behaviour-cloned start), each after the first fifth of its steps;
- the data maker's SAC update per step (bench/data/behaviour.py, batch sampling included);
- CLI start: `mbench --help` and `mbench list tasks`, wall time of a fresh process.
Both trees are measured in one run, interleaved (each repetition alternates which tree goes first), at least
3 repetitions: each figure is the median [min-max] over repetitions, and the ratio is base/new (> 1: this tree
is faster). Every measurement runs in a subprocess whose sys.path[0] is the tree measured (cwd), one at a time
(benchmarks/throughput_probe.py says how the pieces are timed without editing either tree); each asserts one
torch thread; the 1-minute load average is logged at each window's ends.

    python benchmarks/throughput.py --base <05edce8 worktree> [--reps 3] [--out rows.json]   # hours
    python benchmarks/throughput.py --quick --base <05edce8 worktree>                           # minutes

--base defaults to $MBENCH_BASE. hopper-medium reads its dataset from $MINARI_DATASETS_PATH (default
../shared/data from the repository root); the demo dataset is made into a temporary root (--demo-data: a
Minari root that already holds it). --quick: the demo task only, tiny budgets, one process per tree and
repetition, no CLI timing; 3-4 minutes on 2 busy cores. The last line is
`throughput: eval xA, train xB, common start xC (minimum over families, new/base)`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = Path(__file__).resolve().with_name("throughput_probe.py")
FAMILIES = ("bc_gauss", "bc_dp", "dppo", "dsrl", "idql", "modip", "parl", "tdmpc2")
DP_FAMILIES = ("bc_dp", "dppo", "dsrl", "idql", "modip", "parl")  # they start from the common-start DP
TASKS = {"demo": "mbench/inverted-double-pendulum/medium-v0", "hopper-medium": "mujoco/hopper/medium-v0"}
# Start rules set to fire early (the same keys exist in both trees): DSRL's DP-only rollouts, IDQL's and PA-RL's
# first update, MODIP's distillation start. DPPO's critic warm-up (its first rollout) stays: windows start after it.
# MODIP: since issue 25 C4 this tree refuses distill_start_episodes 0 and starts distillation only once the
# planner's last training episode beats the data's mean return, so its window may time MODIP before distillation
# starts (05edce8 starts at 16 labels whatever the planner scores).
START = {
    "dsrl": {"dsrl.init_rollout_steps": 4},
    "idql": {"idql.update_after": 0, "idql.actor_start": 0},
    "parl": {"parl.update_after": 0},
    "modip": {"modip.distill_start_labels": 16, "modip.distill_start_episodes": 1},
}
NEVER = 10 ** 9
# Budgets: online steps and the window [w0, w1) of env steps; DPPO's in its rollouts (8 envs x n_steps x 4).
QUICK = {"pretrain": 20, "common_start": 30, "online": 128, "window": (48, NEVER), "eval_episodes": 10,
         "dppo": {"dppo.n_steps": 4, "online.steps": 384}, "dppo_window": (128, NEVER), "sac": (400, 100)}
FULL = {"pretrain": 200, "common_start": 200, "online": 1500, "window": (500, NEVER), "eval_episodes": 5,
        "dppo": {"online.steps": 4000}, "dppo_window": (800, NEVER), "sac": (2000, 500)}
CLI = (("mbench --help", ["--help"]), ("mbench list tasks", ["list", "tasks"]))


def overrides(family: str, budget: dict, preset: str | list[str] = "demo") -> dict:
    """The run keys of one family's run at `budget` (a list of presets: the first the method has, in the probe)."""
    over = {"preset": preset, "threads": 1, "pretrain.steps": budget["pretrain"],
            "pretrain.log_every": 10, "pretrain.checkpoint_every": NEVER, "online.steps": budget["online"],
            "online.checkpoint_every": NEVER, "online.log_every": 50, "eval.every": NEVER,
            "eval.episodes": budget["eval_episodes"], "eval.timing": False}
    if family in DP_FAMILIES:
        over.update({"common_start.steps": budget["common_start"], "common_start.log_every": 10})
    over.update(START.get(family, {}))
    if family == "dppo":
        over.update(budget["dppo"])
    return over


def run_job(family: str, task: str, budget: dict, root: str, preset: str | list[str] = "demo") -> dict:
    """The probe's job for one run of `family` on `task` (a key of TASKS) with its data under `root`."""
    window = budget["dppo_window"] if family == "dppo" else budget["window"]
    return {"kind": "run", "family": family, "task": task, "overrides": overrides(family, budget, preset),
            "window": list(window), "minari": root}


def run_jobs(tasks: list[str], families: list[str], budget: dict, roots: dict[str, str]) -> list[dict]:
    jobs = [{"kind": "sac", "task": t, "dataset_id": TASKS[t], "steps": budget["sac"][0],
             "start_steps": budget["sac"][1]} for t in tasks]
    jobs += [run_job(f, t, budget, roots[t]) for t in tasks for f in families]
    return jobs


def data_roots(demo_data: str | None, tmp: str) -> dict[str, str]:
    """Each task's Minari root: hopper-medium's from $MINARI_DATASETS_PATH (default ../shared/data from the
    repository root); the demo's `demo_data`, else `tmp` (to be made by make_demo)."""
    return {"hopper-medium": os.environ.get("MINARI_DATASETS_PATH", str(ROOT.parent / "shared" / "data")),
            "demo": demo_data or tmp}


def make_demo(tree: Path, root: str, python: str) -> None:
    """The demo dataset made under `root` by `tree`'s own data maker (not timed)."""
    print("making the demo dataset (not timed) ...", file=sys.stderr, flush=True)
    probe(tree, [{"kind": "make", "dataset_id": TASKS["demo"], "root": root, "agent_steps": 2000,
                  "dataset_size": 1500}], python, None)


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def probe(tree: Path, jobs: list[dict], python: str, timeout: float | None) -> list[dict]:
    """The jobs in one subprocess of `tree` (cwd and sys.path[0]); its results, checked."""
    return probe_output(tree, jobs, python, timeout)["results"]


def probe_output(tree: Path, jobs: list[dict], python: str, timeout: float | None, script: Path = PROBE) -> dict:
    """The jobs run by `script` (a probe) in one subprocess of `tree`; its whole JSON output, checked."""
    p = subprocess.run([python, str(script), json.dumps(jobs)], check=False, cwd=tree, env=child_env(),
                       capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"the probe failed in {tree} (exit {p.returncode}):\n{p.stderr[-4000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if Path(out["tree"]).resolve() != tree.resolve():
        raise RuntimeError(f"the probe in {tree} imported bench from {out['tree']}")
    for r in out["results"]:
        assert r["threads"] == 1, f"{tree}: torch used {r['threads']} threads"
    return out


def cli_time(tree: Path, args: list[str], python: str) -> dict:
    code = f"import sys; sys.argv = ['mbench', *{args!r}]; from bench.cli import main; sys.exit(main())"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    subprocess.run([python, "-c", code], cwd=tree, env=child_env(), check=True, capture_output=True)
    return {"seconds": time.perf_counter() - t0, "load": [load0, os.getloadavg()[0]]}


# ---- rows: one per family x task x measure ----------------------------------------------------------------
def measures(job: dict, res: dict) -> list[tuple[str, str, str, float, str, list]]:
    """(family, task, measure, seconds, window, loads) of one job's result."""
    if job["kind"] == "sac":
        return [("data make (SAC)", job["task"], "SAC update / step", res["per_step"],
                 f"{res['steps']} updates", res["load"])]
    fam, task, rows = job["family"], job["task"], []
    tr = res.get("train")
    if tr:
        win = f"env steps {tr['window'][0]}-{tr['window'][1]}"
        for part in ("total", "act", "update", "env", "other"):
            rows.append((fam, task, f"train {part} / env step", tr[part], win, tr["load"]))
    for actor, ev in res["eval"].items():
        rows.append((fam, task, f"eval {actor} / episode-step", ev["per_step"], f"{ev['steps']} steps", ev["load"]))
    if res.get("pretrain"):
        rows.append((fam, task, "offline update / grad step", res["pretrain"]["per_step"],
                     f"{res['pretrain']['steps']} steps", []))
    if res.get("common_start"):
        cs = res["common_start"]
        rows.append((fam, task, "common start / grad step", cs["per_step"], f"{cs['steps']} steps", cs["load"]))
    return rows


def stats(values: list[float]) -> tuple[float, float, float]:
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return med, v[0], v[-1]


def summarise(samples: dict[tuple, dict]) -> list[dict]:
    rows = []
    for (fam, task, measure), s in samples.items():
        if not s["new"] or not s["base"]:
            continue
        new, base = stats(s["new"]), stats(s["base"])
        loads = [x for x in s["loads"] if x is not None]
        window = s["window"].get("new", "")
        if s["window"].get("base", window) != window:  # the trees did not do the same work
            window += f" (base: {s['window']['base']})"
        rows.append({"family": fam, "task": task, "measure": measure, "window": window,
                     "new": new, "base": base, "ratio": base[0] / new[0] if new[0] > 0 else float("nan"),
                     "new_samples": s["new"], "base_samples": s["base"],
                     "load": [min(loads), max(loads)] if loads else None, "loads": loads})
    return rows


def fmt(t: tuple[float, float, float], unit: str) -> str:
    k = 1.0 if unit == "s" else 1e3
    return f"{t[0] * k:.3g} [{t[1] * k:.3g}-{t[2] * k:.3g}]"


def table(rows: list[dict]) -> str:
    lines = ["| family | task | measure | window | new | base | base/new | load (1 min) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = "s" if r["family"] == "CLI start" else "ms"
        load = f"{r['load'][0]:.2f}-{r['load'][1]:.2f}" if r["load"] else "-"
        lines.append(f"| {r['family']} | {r['task']} | {r['measure']} ({unit}) | {r['window']} | {fmt(r['new'], unit)} "
                     f"| {fmt(r['base'], unit)} | {r['ratio']:.2f} | {load} |")
    return "\n".join(lines)


def headline(rows: list[dict]) -> str:
    def worst(pred) -> str:
        ratios = [r["ratio"] for r in rows if pred(r)]
        return f"x{min(ratios):.2f}" if ratios else "x-"

    return (f"throughput: eval {worst(lambda r: r['measure'].startswith('eval '))}, "
            f"train {worst(lambda r: r['measure'] == 'train total / env step')}, "
            f"common start {worst(lambda r: r['measure'] == 'common start / grad step')} "
            f"(minimum over families, new/base)")


def collect(trees: dict[str, Path], groups: list[list[dict]], reps: int, python: str, cli: bool,
            timeout: float | None) -> dict[tuple, dict]:
    """Every group of jobs on both trees, `reps` times, interleaved: {(family, task, measure): samples}."""
    samples: dict[tuple, dict] = {}

    def add(key: tuple, side: str, seconds: float, window: str, loads: list) -> None:
        s = samples.setdefault(key, {"new": [], "base": [], "loads": [], "window": {}})
        s["window"].setdefault(side, window)
        s[side].append(seconds)
        s["loads"].extend(loads)

    for rep in range(reps):
        order = ("new", "base") if rep % 2 == 0 else ("base", "new")
        for group in groups:
            for side in order:
                label = group[0].get("family", group[0]["kind"]) if len(group) == 1 else f"{len(group)} jobs"
                print(f"rep {rep + 1}/{reps}: {side}, {label} ...", file=sys.stderr, flush=True)
                for job, res in zip(group, probe(trees[side], group, python, timeout)):
                    for fam, task, measure, seconds, window, loads in measures(job, res):
                        add((fam, task, measure), side, seconds, window, loads)
        if cli:
            for side in order:
                for name, args in CLI:
                    r = cli_time(trees[side], args, python)
                    add(("CLI start", "-", name), side, r["seconds"], "fresh process", r["load"])
    return samples


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=os.environ.get("MBENCH_BASE"), help="the 05edce8 worktree ($MBENCH_BASE)")
    ap.add_argument("--new", default=str(ROOT), help="the tree to compare (default: this one)")
    ap.add_argument("--quick", action="store_true", help="demo task only, tiny budgets (minutes)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (at least 3)")
    ap.add_argument("--tasks", default=None, help=f"a subset of {','.join(TASKS)} (--quick: demo)")
    ap.add_argument("--families", default=",".join(FAMILIES), help="a subset of the families")
    ap.add_argument("--demo-data", default=None, help="a Minari root holding the demo dataset (default: made)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of both trees")
    ap.add_argument("--out", default=None, help="write the rows to this JSON file")
    a = ap.parse_args(argv)
    if not a.base:
        ap.error("--base (or $MBENCH_BASE): the worktree of 05edce8 to compare against")
    if a.reps < 3:
        ap.error("--reps must be at least 3")
    trees = {"new": Path(a.new).resolve(), "base": Path(a.base).resolve()}
    families = [f for f in a.families.split(",") if f]
    tasks = (a.tasks or ("demo" if a.quick else ",".join(TASKS))).split(",")
    unknown = sorted(set(families) - set(FAMILIES)) + sorted(set(tasks) - set(TASKS))
    if unknown:
        ap.error(f"unknown families or tasks: {', '.join(unknown)}")
    budget = QUICK if a.quick else FULL
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="throughput-demo-") as tmp:
        roots = data_roots(a.demo_data, tmp)
        if "demo" in tasks and not a.demo_data:
            make_demo(trees["new"], tmp, a.python)
        jobs = run_jobs(tasks, families, budget, roots)
        # --quick: one process per tree and repetition runs every job; else one process per job.
        groups = [jobs] if a.quick else [[j] for j in jobs]
        samples = collect(trees, groups, a.reps, a.python, cli=not a.quick, timeout=600 if a.quick else None)
    rows = summarise(samples)
    print(f"## throughput: {trees['new']} (new) against {trees['base']} (base), {a.reps} repetitions, "
          f"{'quick' if a.quick else 'full'} budgets, {time.perf_counter() - t_start:.0f} s\n")
    print("Times per unit in ms (CLI: s), median [min-max] over repetitions; load: the 1-minute load average at "
          "the windows' ends, both trees, every repetition. Window: what the new tree's first repetition measured "
          "(the base's where it differs); train rows: the env steps of the window (start rules fired before it: "
          "START in benchmarks/throughput.py).\n")
    print(table(rows))
    loads = [x for s in samples.values() for x in s["loads"] if x is not None]
    if loads:
        print(f"\nload average over all windows: {min(loads):.2f}-{max(loads):.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"new": str(trees["new"]), "base": str(trees["base"]), "reps": a.reps,
                                           "quick": a.quick, "rows": rows}, indent=1))
    print(headline(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
