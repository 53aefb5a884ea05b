"""`mbench`: the command line of modip-bench.

Why: every user journey (demo, one run, data make, sweeps, tuning, timing, reports, ablation) starts here.
Errors a user can cause (unknown method or task, bad config key, missing or mismatched dataset) print one
line naming the problem and the fix, and exit 2; nothing is recorded as a finished run.
"""
from __future__ import annotations

import argparse
import os
import sys


def _user_errors() -> tuple[type[BaseException], ...]:
    from bench.data import DatasetError
    from bench.tasks import TaskError
    from methods.base import MethodError
    from methods.config import ConfigError

    return (ConfigError, TaskError, MethodError, DatasetError, FileNotFoundError, ValueError, FloatingPointError)


def _cmd_list(args) -> int:
    if args.what == "methods":
        from methods.base import registered_methods

        for name, cls in sorted(registered_methods().items()):
            doc = (cls.__module__ and sys.modules[cls.__module__].__doc__ or "").strip().splitlines()
            print(f"{name:10s} actors={','.join(cls.actors):8s} {doc[0] if doc else ''}")
    elif args.what == "tasks":
        from bench.tasks import all_tasks

        for name, t in sorted(all_tasks().items()):
            print(f"{name:28s} suite={t.suite:9s} env={t.env_id:28s} dataset={t.dataset_id}")
    else:
        from bench.data.loaders import list_datasets

        for line in list_datasets():
            print(line)
    return 0


def _cmd_run(args) -> int:
    from bench.runner import resolve_config, run_one

    cfg = resolve_config(args.method, args.task, args.seed, args.set or [])
    rid = run_one(cfg, store_root=args.store, sweep_id=args.sweep, resume=not args.restart,
                  progress=not args.quiet)
    from results.store import Store

    runs = Store(args.store).runs(sweep=args.sweep)
    row = runs[runs.run_id == rid].iloc[-1]
    curves = Store(args.store).curves(sweep=args.sweep, run_ids=[rid])
    final = curves[curves.metric == "normalized_score"].sort_values("env_step").groupby("actor").tail(1)
    scores = ", ".join(f"{a}={v:.1f}" for a, v in zip(final.actor, final.value))
    print(f"run {rid} {row.status}: final normalized_score {scores} ({row.wall_s:.0f}s)")
    return 0


def _cmd_demo(args) -> int:
    from bench.demo import run_demo

    run_demo(store_root=args.store, out=args.out, seeds=args.seeds, methods=args.methods, quick=args.quick)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mbench", description="modip-bench: fine-tuning diffusion policies, measured")
    p.add_argument("--store", default=os.environ.get("MBENCH_STORE", "results"), help="results store folder")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("list", help="list methods, tasks or datasets")
    sp.add_argument("what", choices=["methods", "tasks", "datasets"])
    sp.set_defaults(func=_cmd_list)

    sp = sub.add_parser("run", help="one run: pretrain, fine-tune, eval, store")
    sp.add_argument("--method", required=True)
    sp.add_argument("--task", required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    sp.add_argument("--sweep", default="adhoc", help="sweep id the run is stored under")
    sp.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("demo", help="the embedded default, end to end")
    sp.add_argument("--out", default=None, help="report folder (default <store>/demo)")
    sp.add_argument("--seeds", type=int, default=2)
    sp.add_argument("--methods", default=None, help="comma-separated subset of the demo's methods")
    sp.add_argument("--quick", action="store_true", help="tiny budgets (for tests)")
    sp.set_defaults(func=_cmd_demo)

    unavailable = []
    for mod in ("bench.data.make", "bench.sweep", "results.store", "analysis.report", "bench.timing.cli"):
        try:
            module = __import__(mod, fromlist=["add_cli"])
        except ModuleNotFoundError as e:
            if e.name and mod.startswith(e.name):
                continue
            if e.name and e.name.split(".")[0] not in ("bench", "methods", "results", "analysis"):
                # A third-party package that command needs is missing (e.g. on a bare GPU machine): the other
                # commands still work, and the help's epilog names what is missing.
                unavailable.append(f"{mod} (needs {e.name})")
                continue
            raise
        if hasattr(module, "add_cli"):
            module.add_cli(sub)
    if unavailable:
        p.epilog = "unavailable here: " + ", ".join(unavailable)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except _user_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"mbench: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
