"""The prepared GPU check: every registered method's timed components, batch 1 and batched, eager and compiled.

Why: a GPU machine is lent for minutes at a time, with no package index and no MuJoCo, so the check must be
one script that needs nothing but torch (synthetic inputs from the task's spaces; bench/timing/synthetic.py)
and that fits its time: every method is first timed eager (cheap), then its act paths are compiled, method
by method, while the budget lasts (compiling is what costs; training steps are never compiled). A method
that fails, or a compile that fails or disagrees with eager, is a row in the table, not the end of the run.
Run by benchmarks/gpu_check.sh; without CUDA it falls back to the CPU so that it can be tried anywhere.
Its last line is the headline, `name: value unit (device)`.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (cuda if available, else cpu) | cuda | cpu")
    p.add_argument("--task", default="hopper-medium", help="whose spaces to use (obs/act dims, chunk)")
    p.add_argument("--methods", default="all", help="comma-separated; a method may carry overrides, e.g. "
                   "'modip:modip.planner.terminal=q' (several with '+': 'm:a=1+b=2')")
    p.add_argument("--batch", type=int, default=64, help="the batched size (batch 1 is always timed)")
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--max-s", type=float, default=8.0, help="cap on one component's timed loop (s)")
    p.add_argument("--budget-s", type=float, default=200.0,
                   help="no compile starts after this many seconds (a compile already running finishes)")
    p.add_argument("--compile-mode", default=None, help="default: reduce-overhead on cuda, default on cpu")
    p.add_argument("--compile-backend", default="inductor")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: the run config's)")
    p.add_argument("--csv", default=None, help="write every row here")
    p.add_argument("--store", default=None, help="also write rows to this results store (sweep gpu_check)")
    return p.parse_args(argv)


def method_specs(arg: str) -> list[tuple[str, list[str]]]:
    from methods.registry import registered_methods

    if arg == "all":
        return [(m, []) for m in sorted(registered_methods())]
    specs = []
    for item in arg.split(","):
        name, _, over = item.partition(":")
        specs.append((name.strip(), [o for o in over.split("+") if o]))
    return specs


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    import torch

    from bench.runner.timing import device_name, time_components
    from bench.timing.measure import format_table
    from bench.timing.synthetic import build_subject, timing_run_id

    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu":
            print("gpu_check: no CUDA device here: CPU fallback", file=sys.stderr)
    else:
        device = args.device
    mode = args.compile_mode or ("reduce-overhead" if device.startswith("cuda") else "default")
    card = device_name(device)
    print(f"gpu_check: device {device} ({card}), torch {torch.__version__}, python {sys.version.split()[0]}, "
          f"task {args.task}, batch 1 and {args.batch}, compile {'off' if args.no_compile else mode}, "
          f"budget {args.budget_s:.0f}s", file=sys.stderr, flush=True)

    def log(prefix):
        return lambda s: print(f"[{prefix}] {s}", file=sys.stderr, flush=True)

    specs = method_specs(args.methods)
    subjects, rows, failures = {}, [], []
    # Pass 1: eager, every method (cheap).
    for name, over in specs:
        label = name + (f"[{'+'.join(over)}]" if over else "")
        try:
            subj = build_subject(name, args.task, device=device, overrides=over)
            torch.set_num_threads(args.threads or int(subj.cfg.threads))
            got = time_components(subj.method, (1, args.batch), warmup=args.warmup, reps=args.reps, device=device,
                                  max_s=args.max_s, log=log(label))
        except Exception as e:  # noqa: BLE001 - one broken method must not cost the whole check
            failures.append((label, f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"))
            traceback.print_exc()
            continue
        subjects[label] = (subj, name)
        for r in got:
            r.update(method=label, task=args.task, run_id=timing_run_id(subj, ""))
        rows += got
    # Pass 2: compiled act paths, method by method, while the budget lasts.
    if not args.no_compile:
        for label, (subj, name) in subjects.items():
            try:
                got = time_components(subj.method, (1, args.batch), warmup=args.warmup, reps=args.reps,
                                      device=device, max_s=args.max_s, compile=True, compile_mode=mode,
                                      compile_backend=args.compile_backend, eager=False,
                                      compile_deadline=t_start + args.budget_s, log=log(label))
            except Exception as e:  # noqa: BLE001 - reported as a failure row
                failures.append((label + " compiled", f"{type(e).__name__}: {e}".splitlines()[0]))
                traceback.print_exc()
                continue
            for r in got:
                r.update(method=label, task=args.task,
                         run_id=timing_run_id(subj, f"{args.compile_backend}:{mode}"))
            rows += got
            torch._dynamo.reset()  # free compiled graphs (and their CUDA graph pools) before the next method
    order = {lab: i for i, lab in enumerate(subjects)}
    rows.sort(key=lambda r: (order.get(r["method"], 99), r["batch"], r["component"], r["compiled"]))
    wall = time.perf_counter() - t_start

    print(f"\n## gpu_check: {card} ({device}), torch {torch.__version__}, task {args.task}, "
          f"threads {torch.get_num_threads()}, wall {wall:.0f}s\n")
    print(format_table(rows))
    for label, msg in failures:
        print(f"FAILED {label}: {msg}")
    skipped = sorted({(r["method"], r["component"], r["batch"]) for r in rows if r.get("compile_agree", 0) is None})
    if skipped:
        print(f"compile skipped (budget spent): {skipped}")
    if args.csv:
        keys = sorted({k for r in rows for k in r})
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
    if args.store:
        write_store(args.store, rows, subjects, wall)
    mism = [r for r in rows if r["compiled"] and r.get("compile_agree") is False]
    if mism:
        print(f"compiled/eager MISMATCH or compile failure: "
              f"{sorted({(r['method'], r['component'], r['batch']) for r in mism})}")
    # Headline: the slowest act path at batch 1 (eager), which bounds a control loop's rate.
    act = [r for r in rows if r["batch"] == 1 and not r["compiled"] and r.get("kind") != "update"
           and not math.isnan(r["p50_ms"])]
    if act:
        worst = max(act, key=lambda r: r["p50_ms"])
        print(f"slowest_act_p50_b1 {worst['method']}/{worst['component']}: {worst['p50_ms']:.3f} ms ({card})")
    else:
        print(f"slowest_act_p50_b1: nan ms ({card})")
    return 1 if (failures or mism) else 0


def write_store(root: str, rows, subjects, wall: float) -> None:
    from bench.runner.provenance import now as _now
    from bench.timing.measure import write_rows

    by_run: dict[str, list] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    for rid, rr in by_run.items():
        subj = subjects[rr[0]["method"]][0]
        write_rows(root, "gpu_check", rid, subj.cfg, rr, wall, _now())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
