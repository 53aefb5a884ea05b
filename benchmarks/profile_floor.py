"""The speed issue's profiles and floors: where each family's training time goes, and how far it is above the
time its matrix multiplies alone take on this machine.

Why: the issue's goals are ratios against 05edce8 (train >= 2x cheaper per env step, eval >= 2x for the DP actors,
common start >= 1.5x), and "where a family misses a goal, the note gives its profile and its floor". Once the
overheads are gone, what is left is the networks' own arithmetic (PA-RL on hopper: most of its time in the DP's
forward passes, sampling proposals), which no rewrite of the harness removes. This benchmark says, per family,
how much is left above that floor: a measured/floor near 1-1.5 means only a change of the algorithm (fewer
samples, steps or parameters) could make it 2x cheaper; far above it, overheads remain (small ops, Python,
element-wise work, the env).

For every family (bc_gauss, bc_dp, dppo, dsrl, idql, modip, parl, tdmpc2) on the demo task and on hopper-medium
(the demo preset; on hopper the family's `d4rl` preset where it has one, else demo), at benchmarks/throughput.py's budgets
and start rules (its QUICK / FULL, START, windows; one torch thread), and for each tree, it measures the
training window (the online window of env steps after the start rules fired; bc_gauss: its offline grad steps;
bc_dp: its common-start BC steps, which are every DP family's common start; each after the first fifth) in three
runs of the same seed (benchmarks/floor_probe.py):
- measured: the window's cost per env step (grad step), timed alone as throughput.py times it, and the share of
  it in the method's act/update calls; each evaluation's cost per episode-step, per actor;
- profile: cProfile over the window: inclusive % of the tree's own frames (bench/, methods/) and self % of the
  top functions (the leaf ops: torch's built-ins);
- floor: the window's matmul FLOPs (torch.utils.flop_counter.FlopCounterMode around its act and update calls;
  evaluation: around each one) per env step, and the time those multiplies take at their own shapes on this
  machine, timed in the same process (one thread, float32, best of repeats): floor = sum over shapes of
  FLOPs / rate at that shape. Printed: measured, floor and measured/floor per env step (per eval step, per
  actor), with the reference rates of a few 512 x 512 and 256 x 256 multiplies. Element-wise work and optimiser
  steps count nothing here: the floor is a lower bound, not a prediction.
--base runs the same in the 05edce8 worktree (its own run_one, never edited), and prints both trees' profiles
side by side; a family the base tree cannot run is said so in its row.

    python benchmarks/profile_floor.py [--base <05edce8 worktree>] [--out floor.json]   # hours
    python benchmarks/profile_floor.py --quick [--base <05edce8 worktree>]               # 1-2 minutes per tree

--base defaults to $MBENCH_BASE (none: this tree only). --quick: the demo task, QUICK_FAMILIES (--families to
choose), throughput.py's quick budgets, one process per tree (about a minute per tree on 2 busy cores, and ~20 s
to make the demo dataset); without it, one process per family x task x tree. Data as throughput.py
(--demo-data, and $MINARI_DATASETS_PATH for hopper-medium). The figures mean something only on a quiet machine: take them with
nothing else running, and read the logged load average. The last line is
`profile_floor: train measured/floor <family> xR ... (new)`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput as tp

FLOOR_PROBE = Path(__file__).resolve().with_name("floor_probe.py")
MODES = ("time", "profile", "flops")
# The training of the families without an online phase (throughput.py's rows for them); the others': "online".
TRAINING = {"bc_gauss": "pretrain", "bc_dp": "common_start"}
# Each task's preset: the first of the list that the family has (none: its class defaults, as throughput.py).
PRESETS = {"demo": "demo", "hopper-medium": ["d4rl", "demo"]}
QUICK_FAMILIES = ("bc_dp", "parl")


def jobs_for(task: str, family: str, budget: dict, root: str, top: int) -> list[dict]:
    """The probe's three runs (time, profile, flops) of one family on one task."""
    job = tp.run_job(family, task, budget, root, PRESETS[task])
    return [dict(job, mode=m, training=TRAINING.get(family, "online"), top=top) for m in MODES]


def run_tree(tree: Path, groups: list[list[dict]], python: str, timeout: float | None) -> tuple[list[dict], list]:
    """Every group in one subprocess of `tree` each: (the results in job order, the reference rates). A group
    whose process fails gives an error result for each of its jobs."""
    results, rates = [], []
    for group in groups:
        label = ",".join(dict.fromkeys(f"{j['family']}/{j['task']}" for j in group))
        print(f"{tree.name}: {label} ...", file=sys.stderr, flush=True)
        try:
            out = tp.probe_output(tree, group, python, timeout, script=FLOOR_PROBE)
            results += out["results"]
            rates = rates or out["rates"]
        except Exception as e:  # noqa: BLE001 - the tree cannot be driven at all: said in each row of the group
            msg = str(e).strip().splitlines()
            results += [{"error": f"{type(e).__name__}: {msg[-1] if msg else ''}"}] * len(group)
    return results, rates


# ---- combining the three runs -----------------------------------------------------------------------------------
def ratio(measured: float | None, floor: float | None) -> float | None:
    return measured / floor if measured and floor and floor > 0 else None


def combine(runs: dict[str, dict]) -> dict:
    """One family x task x tree from its time, profile and flops results: the training row, eval rows, profile."""
    err = next((r["error"] for r in runs.values() if "error" in r), None)
    if err:
        return {"error": err}
    t, f, p = runs["time"], runs["flops"], runs["profile"]
    out = {"preset": t["preset"] or "-", "profile": p.get("profile"), "eval": {}, "note": ""}
    tw, fw = t["window"], f["window"]
    if tw and fw and fw["steps"]:
        fl = f["train_floor"]
        floor = fl["floor_s"] / fw["steps"]
        where = f"env steps {tw['span'][0]}-{tw['span'][1]}" if tw["span"] else f"{tw['steps']} grad steps"
        if (tw["steps"], tw["span"]) != (fw["steps"], fw["span"]):
            out["note"] = f"the FLOP run's window differs: {fw['steps']} steps {fw['span'] or ''}"
        out["train"] = {"unit": tw["unit"], "window": where, "measured": tw["seconds"],
                        "act_update": tw["act_update"], "flops": fl["flops"] / fw["steps"], "rate": fl["rate"],
                        "floor": floor, "ratio": ratio(tw["seconds"], floor), "load": tw["load"],
                        "shapes": fl["shapes"]}
    for actor, ev in t["eval"].items():
        fe = f.get("eval_floor", {}).get(actor)
        floor = fe["floor_s"] / fe["steps"] if fe and fe["steps"] else None
        out["eval"][actor] = {"measured": ev["seconds"], "act": ev["act"], "steps": ev["steps"],
                              "flops": fe["flops"] / fe["steps"] if fe and fe["steps"] else None,
                              "floor": floor, "ratio": ratio(ev["seconds"], floor)}
    return out


def collect(trees: dict[str, Path], tasks: list[str], families: list[str], budget: dict, roots: dict[str, str],
            python: str, quick: bool, top: int) -> tuple[dict, dict]:
    """{(task, family): {side: combined}} and {side: reference rates}."""
    keys = [(t, f) for t in tasks for f in families]
    jobs = [jobs_for(t, f, budget, roots[t], top) for t, f in keys]
    # --quick: one process per tree runs every job; else one per family x task.
    groups = [[j for js in jobs for j in js]] if quick else jobs
    combined: dict = {k: {} for k in keys}
    rates = {}
    for side, tree in trees.items():
        results, rates[side] = run_tree(tree, groups, python, 600 if quick else None)
        for i, key in enumerate(keys):
            combined[key][side] = combine(dict(zip(MODES, results[i * len(MODES):(i + 1) * len(MODES)])))
    return combined, rates


# ---- printing -----------------------------------------------------------------------------------------------------
def num(x: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x * scale:.{digits}g}"


def times(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def train_table(combined: dict) -> str:
    lines = [("| task | family | tree | preset | window | measured ms/unit | act+update ms | MFLOP/unit "
              "| GFLOP/s at its shapes | floor ms/unit | measured/floor | load (1 min) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (task, fam), sides in combined.items():
        for side, c in sides.items():
            if "error" in c:
                lines.append(f"| {task} | {fam} | {side} | - | could not be driven: {c['error'][:160]} "
                             "| - | - | - | - | - | - | - |")
                continue
            r = c.get("train")
            if r is None:
                lines.append(f"| {task} | {fam} | {side} | {c['preset']} | no training window measured "
                             "| - | - | - | - | - | - | - |")
                continue
            load = "-" if not r["load"] or None in r["load"] else f"{r['load'][0]:.2f}-{r['load'][1]:.2f}"
            window = f"{r['window']} (per {r['unit']})" + (f"; {c['note']}" if c["note"] else "")
            lines.append(f"| {task} | {fam} | {side} | {c['preset']} | {window} | {num(r['measured'], 1e3)} "
                         f"| {num(r['act_update'], 1e3)} | {num(r['flops'], 1e-6)} | {num(r['rate'], 1e-9)} "
                         f"| {num(r['floor'], 1e3)} | {times(r['ratio'])} | {load} |")
    return "\n".join(lines)


def eval_table(combined: dict) -> str:
    lines = [("| task | family | actor | tree | measured ms/step | act ms/step | MFLOP/step | floor ms/step "
              "| measured/floor | act/floor | steps |"), "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (task, fam), sides in combined.items():
        for side, c in sides.items():
            for actor, e in c.get("eval", {}).items():
                lines.append(f"| {task} | {fam} | {actor} | {side} | {num(e['measured'], 1e3)} | {num(e['act'], 1e3)} "
                             f"| {num(e['flops'], 1e-6)} | {num(e['floor'], 1e3)} | {times(e['ratio'])} "
                             f"| {times(ratio(e['act'], e['floor']))} | {e['steps']} |")
    return "\n".join(lines)


def short(frame: str, width: int = 64) -> str:
    frame = frame.replace("|", "/")
    for cut in (" of type object at", " of '"):  # built-ins: "<built-in method addmm of type object at 0x..>"
        if cut in frame:
            frame = frame.split(cut)[0] + ">"
    return frame if len(frame) <= width else "..." + frame[-width + 3:]


def profile_tables(combined: dict) -> str:
    """Per family x task: its trees' top frames (inclusive %) and leaf ops (self %), side by side."""
    out = []
    for (task, fam), sides in combined.items():
        profs = {s: c.get("profile") for s, c in sides.items() if c.get("profile")}
        if not profs:
            continue
        names = list(profs)
        heads = " | ".join(f"{s} | %" for s in names)
        spans = ", ".join(f"{s}: {profs[s]['total_s']:.2f} s profiled" for s in names)
        out.append(f"### {fam} on {task} ({spans})\n")
        for kind, key, what in (("frames", "incl", "own frames, inclusive %"), ("leaves", "self", "top self %")):
            out.append(f"| {what} | {heads} |")
            out.append("|---|" + "---|---|" * len(names))
            n = max(len(profs[s][kind]) for s in names)
            for i in range(n):
                cells = []
                for s in names:
                    rows = profs[s][kind]
                    cells.append(f"{short(rows[i]['frame'])} | {100 * rows[i][key]:.1f}" if i < len(rows) else " | ")
                out.append(f"| {i + 1} | " + " | ".join(cells) + " |")
            out.append("")
    return "\n".join(out)


def rates_table(rates: dict) -> str:
    lines = ["| tree's process | " + " | ".join(r["args"] for r in next(iter(rates.values()))) + " |",
             "|---|" + "---|" * len(next(iter(rates.values())))]
    for side, rs in rates.items():
        lines.append(f"| {side} | " + " | ".join(f"{r['gflops_per_s']:.1f}" for r in rs) + " |")
    return "\n".join(lines)


def headline(combined: dict, side: str = "new") -> str:
    parts = []
    for (task, fam), sides in combined.items():
        r = sides.get(side, {}).get("train")
        parts.append(f"{fam}/{task} x{times(r and r['ratio'])}")
    return f"profile_floor: train measured/floor {', '.join(parts)} ({side})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=os.environ.get("MBENCH_BASE"), help="the 05edce8 worktree ($MBENCH_BASE)")
    ap.add_argument("--new", default=str(tp.ROOT), help="the tree to measure (default: this one)")
    ap.add_argument("--quick", action="store_true", help="demo task, QUICK_FAMILIES, tiny budgets (minutes)")
    ap.add_argument("--tasks", default=None, help=f"a subset of {','.join(tp.TASKS)} (--quick: demo)")
    ap.add_argument("--families", default=None, help="a subset of the families (--quick: QUICK_FAMILIES)")
    ap.add_argument("--top", type=int, default=8, help="rows per profile table")
    ap.add_argument("--demo-data", default=None, help="a Minari root holding the demo dataset (default: made)")
    ap.add_argument("--python", default=sys.executable, help="the interpreter of both trees")
    ap.add_argument("--out", default=None, help="write the combined results to this JSON file")
    a = ap.parse_args(argv)
    trees = {"new": Path(a.new).resolve()}
    if a.base:
        trees["base"] = Path(a.base).resolve()
    families = (a.families or ",".join(QUICK_FAMILIES if a.quick else tp.FAMILIES)).split(",")
    tasks = (a.tasks or ("demo" if a.quick else ",".join(tp.TASKS))).split(",")
    unknown = sorted(set(families) - set(tp.FAMILIES)) + sorted(set(tasks) - set(tp.TASKS))
    if unknown:
        ap.error(f"unknown families or tasks: {', '.join(unknown)}")
    budget = tp.QUICK if a.quick else tp.FULL
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="floor-demo-") as tmp:
        roots = tp.data_roots(a.demo_data, tmp)
        if "demo" in tasks and not a.demo_data:
            tp.make_demo(trees["new"], tmp, a.python)
        combined, rates = collect(trees, tasks, families, budget, roots, a.python, a.quick, a.top)
    where = ", ".join(f"{p} ({s})" for s, p in trees.items())
    print(f"## profile_floor: {where}, {'quick' if a.quick else 'full'} budgets, "
          f"{time.perf_counter() - t_start:.0f} s, load average now {os.getloadavg()[0]:.2f}\n")
    print("Figures are meaningful on a quiet machine only. Training window per unit (env step; bc_gauss: offline "
          "grad step, bc_dp: common-start grad step): measured alone; MFLOP: matmul FLOPs counted by "
          "FlopCounterMode in a run of the same seed; floor: those FLOPs at this machine's single-thread rate at "
          "their own shapes (a lower bound: element-wise work counts nothing).\n")
    print("## Floor: training window\n")
    print(train_table(combined))
    print("\n## Floor: evaluation, per actor (the evaluations after the first, where there are more)\n")
    print(eval_table(combined))
    if any(rates.values()):
        print("\n## Reference matmul rates, GFLOP/s (one thread, float32, best of repeats)\n")
        print(rates_table({s: r for s, r in rates.items() if r}))
    print("\n## Profiles of the training window (cProfile)\n")
    print(profile_tables(combined))
    if a.out:
        Path(a.out).write_text(json.dumps({"trees": {s: str(p) for s, p in trees.items()}, "quick": a.quick,
                                           "rates": rates,
                                           "rows": [{"task": t, "family": f, **sides}
                                                    for (t, f), sides in combined.items()]}, indent=1))
    print(headline(combined))
    return 0


if __name__ == "__main__":
    sys.exit(main())
