"""`mbench`: the command line of modip-bench.

Why: every user journey (demo, one run, data make, sweeps, tuning, timing, reports, ablation) starts here.
Errors a user can cause (unknown method or task, bad config key, missing or mismatched dataset) print one
line naming the problem and the fix, and exit 2; nothing is recorded as a finished run.

This is the top of the package: it imports the subsystems, and none of them imports it. The parser is built
before anyone knows which command runs, so it is built from light modules only: each subsystem's command-line
module (its `add_cli`) imports nothing heavy, and each command imports what it needs (torch, gymnasium, pandas,
...) when it runs. So importing this module loads none of them, and `mbench --help`, `mbench list ...`,
`mbench config ...` and `mbench sweep status` answer without torch, gymnasium or MuJoCo (their imports take
seconds). A subsystem's REQUIRES names the packages its commands need; where one is missing (e.g. on a bare GPU
machine), its commands are left out and the help's epilog names what is missing; the other commands still work.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys

from analysis import cli as analysis_cli
from bench.data import make as data_cli
from bench.data.minari_io import list_datasets
from bench.demo import run_demo
from bench.runner.signals import stop_on_signals
from bench.runner.stops import Preempted
from bench.sweep import cli as sweep_cli
from bench.tasks import all_tasks
from bench.timing import cli as timing_cli
from results import cli as store_cli
from results.atomic import WriteError
from results.store_root import named_store, writable_store

# The subsystems whose commands the parser adds, each by its command-line module's `add_cli`.
SUBSYSTEMS = (data_cli, sweep_cli, store_cli, analysis_cli, timing_cli)


def _installed(package: str) -> bool:
    """Whether a top-level package can be imported here, found without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a module without a spec
        return False


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can cause: a bad config key or value, an unknown method or task, a missing or mismatched
    dataset (ConfigError, MethodError, TaskError, DatasetError: each a ValueError), a store this code cannot
    read (StoreError), a missing file, a value gone non-finite, a file that cannot be written (WriteError: a
    full disk, a read-only folder), a run that another process is running now (RunInProgress)."""
    from results.run_lock import RunInProgress  # lazy: pydantic
    from results.schema import StoreError  # lazy: pyarrow

    return (ValueError, StoreError, FileNotFoundError, FloatingPointError, WriteError, RunInProgress)


def _cmd_list(args) -> int:
    if args.what == "methods":
        # Each method as its torch-free config.py declares it; its summary is its package's docstring.
        from methods.catalog import method_cards  # lazy: pydantic

        for name, card in sorted(method_cards().items()):
            doc = card.doc.strip().splitlines()
            print(f"{name:10s} actors={','.join(card.actors):8s} {doc[0] if doc else ''}")
    elif args.what == "tasks":
        for name, t in sorted(all_tasks().items()):
            print(f"{name:28s} suite={t.suite:9s} env={t.env_id:28s} dataset={t.dataset_id}")
    else:
        for line in list_datasets():
            print(line)
    return 0


def _cmd_run(args) -> int:
    import pandas as pd

    # lazy: pydantic, torch, gymnasium, pandas
    from bench.config.layers import resolve_config
    from bench.config.run import run_id_of
    from bench.runner.lifecycle import run_one
    from results.store import Store

    store = Store(writable_store(args.store))
    cfg = resolve_config(args.method, args.task, args.seed, args.set or [])
    before = store.next_attempt(args.sweep, run_id_of(cfg))
    # SIGTERM and Ctrl-C stop the run at its next safe point, saved (bench/runner/signals.py).
    with stop_on_signals() as got:
        try:
            rid = run_one(cfg, store_root=args.store, sweep_id=args.sweep, resume=not args.restart,
                          progress=not args.quiet, rerun=args.rerun)
        except Preempted as stop:
            signum = got.get("signum")
            print(f"mbench: {signal.Signals(signum).name + ': ' if signum else ''}{stop}", file=sys.stderr)
            return 128 + signum if signum else 1
    skipped = store.next_attempt(args.sweep, rid) == before  # no attempt was written: the run did nothing
    rows = store.runs(sweep=args.sweep, run_ids=[rid])
    if rows.empty:
        print(f"run {rid}: no record of it in the store {store.root} (sweep {args.sweep})", file=sys.stderr)
        return 1
    row = rows.iloc[-1]
    curves = store.curves(sweep=args.sweep, run_ids=[rid])
    line = f"run {rid} {row.status} (attempt {int(row.attempt)})"
    if not curves.empty:
        final = curves[curves.metric == "normalized_score"].sort_values("env_step").groupby("actor").tail(1)
        scores = ", ".join(f"{a}={v:.1f}" for a, v in zip(final.actor, final.value) if pd.notna(v))
        if scores:
            line += f": final normalized_score {scores}"
    if pd.notna(row.wall_s):
        line += f" ({row.wall_s:.0f}s)"
    if row.status == "failed" and isinstance(row.error, str) and row.error.strip():
        line += f": {row.error.strip().splitlines()[0]}"
    if skipped and row.status == "finished":
        line += "; already finished, so nothing was run (--rerun runs it again, --restart starts it over)"
    print(line)
    return 0 if row.status == "finished" else 1


def _cmd_config(args) -> int:
    from bench.config.show import config_rows, format_rows  # lazy: pydantic

    overrides = list(args.set or [])
    if args.preset:
        if args.task is None:
            raise ValueError("--preset needs --task: a preset's values are shown resolved on a task")
        overrides.insert(0, f"preset={args.preset}")
    if overrides and args.task is None:
        raise ValueError("--set needs --task: the values are shown resolved on a task")
    print(format_rows(config_rows(args.method, args.task, overrides)))
    return 0


def _cmd_demo(args) -> int:
    writable_store(args.store)
    run_demo(store_root=args.store, out=args.out, seeds=args.seeds, methods=args.methods, quick=args.quick)
    return 0


def _add_store(parser: argparse.ArgumentParser) -> None:
    """Accept --store after a command too. SUPPRESS: given there, it overrides the global `mbench --store`;
    not given, the global one stands. A command that has its own --store keeps it."""
    try:
        parser.add_argument("--store", default=argparse.SUPPRESS,
                            help="results store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    except argparse.ArgumentError:
        pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mbench", description="modip-bench: fine-tuning diffusion policies, measured")
    p.add_argument("--store", default=os.environ.get("MBENCH_STORE", "results"),
                   help="results store folder (default: $MBENCH_STORE, else results)")
    sub = p.add_subparsers(dest="cmd", required=True)

    sp = sub.add_parser("list", help="list methods, tasks or datasets")
    sp.add_argument("what", choices=["methods", "tasks", "datasets"])
    sp.set_defaults(func=_cmd_list)

    sp = sub.add_parser("run", help="one run: pretrain, fine-tune, eval, store")
    sp.add_argument("--method", required=True, help="method name (mbench list methods)")
    sp.add_argument("--task", required=True, help="task name (mbench list tasks), e.g. hopper-medium")
    sp.add_argument("--seed", type=int, default=0, help="run seed (default 0); part of the run id")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE",
                    help="config override, e.g. dp.sampler=ddim (repeatable; mbench config METHOD lists the keys)")
    sp.add_argument("--sweep", default="adhoc", help="sweep id the run is stored under (default adhoc)")
    sp.add_argument("--restart", action="store_true",
                    help="ignore an existing checkpoint and start over, as a new attempt")
    sp.add_argument("--rerun", action="store_true",
                    help="run a run that already finished again, as a new attempt (without it, such a run is "
                         "left as it is)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_store(sp)
    sp.set_defaults(func=_cmd_run)

    sp = sub.add_parser("config", help="a method's config keys with their types and defaults; with --task, every "
                                       "resolved value and the layer that set it")
    sp.add_argument("method", help="method name (mbench list methods)")
    sp.add_argument("--task", default=None, help="resolve on this task (suite defaults, preset, --set)")
    sp.add_argument("--preset", default=None, help="the method's labelled preset (e.g. demo)")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    sp.set_defaults(func=_cmd_config)

    sp = sub.add_parser("demo", help="the embedded default, end to end")
    sp.add_argument("--out", default=None, help="report folder (default <store>/demo)")
    sp.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 per method (default: the seeds of sweeps/demo.yaml)")
    sp.add_argument("--methods", default=None, help="comma-separated subset of the demo's methods")
    sp.add_argument("--quick", action="store_true", help="tiny budgets (for tests)")
    _add_store(sp)
    sp.set_defaults(func=_cmd_demo)

    unavailable = []
    for module in SUBSYSTEMS:
        missing = [pkg for pkg in getattr(module, "REQUIRES", ()) if not _installed(pkg)]
        if missing:
            # A third-party package these commands need is missing (e.g. on a bare GPU machine): the other
            # commands still work, and the help's epilog names what is missing.
            unavailable.append(f"{module.__name__} (needs {', '.join(missing)})")
            continue
        module.add_cli(sub)
    # The store folder is spelled --store everywhere, before or after the command.
    for name in ("report", "ablate", "time", "tune"):
        if name in sub.choices:
            _add_store(sub.choices[name])
    if unavailable:
        p.epilog = "unavailable here: " + ", ".join(unavailable)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "store"):
            named_store(args.store)  # an empty name is not the current folder
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("mbench: interrupted at once (a run resumes from its last checkpoint when run again)", file=sys.stderr)
        return 130
    except _user_errors() as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"mbench: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
