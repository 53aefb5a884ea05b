"""`mbench sweep launch|status` and `mbench tune`: the command-line face of bench/sweep.

Why a separate module: bench/cli.py stays a thin dispatcher; it calls `add_cli(subparsers)` and each command's
`func(args)`. Sweep files that are wrong fail with one line naming the key (SweepError is a ValueError, which
bench/cli.py prints as `mbench: error: ...`). The parser is built before anyone knows which command runs, so
this module imports nothing heavy: each command imports what it needs (pydantic, pandas, submitit) when it runs.
REQUIRES names those packages; where one is missing, bench/cli.py leaves the commands out.
"""
from __future__ import annotations

import argparse
import os

from results.names import validate_name
from results.store_root import writable_store

REQUIRES = ("pandas", "pyarrow", "pydantic", "submitit")


def _add_store(parser, help_text: str) -> None:
    # SUPPRESS: given here it overrides the global `mbench --store`; not given, the global one stands.
    parser.add_argument("--store", default=argparse.SUPPRESS, help=help_text)


def _cmd_launch(args) -> int:
    # lazy: submitit, pydantic
    from bench.sweep.launch import launch
    from bench.sweep.spec import load_sweep

    writable_store(args.store)
    spec = load_sweep(args.file)
    launch(spec, args.store, wait=args.wait, rerun_stale=args.rerun_stale, executor=args.executor)
    return 0


def _cmd_status(args) -> int:
    # lazy: submitit, pydantic, pandas
    from bench.sweep.launch import format_status, sweep_status
    from bench.sweep.spec import load_sweep

    name = args.name
    if name.endswith((".yaml", ".yml")) and os.path.isfile(name):
        name = load_sweep(name).name
    validate_name(name, "sweep name")
    st = sweep_status(args.store, name)
    print(format_status(st))
    return 0


def _cmd_tune(args) -> int:
    # lazy: submitit, pydantic
    from bench.sweep.spec import load_sweep
    from bench.sweep.tune import tune

    writable_store(args.store)
    spec = load_sweep(args.file)
    tune(spec, args.store, wait=args.wait, executor=args.executor, n_trials=args.trials, workers=args.workers)
    return 0


def add_cli(subparsers) -> None:
    store_help = "results store folder (default: the global --store, $MBENCH_STORE or results)"
    sweep = subparsers.add_parser("sweep", help="launch a sweep file as a job array, or show its status")
    ssub = sweep.add_subparsers(dest="sweep_cmd", required=True)

    sp = ssub.add_parser("launch", help="submit a sweep's unfinished runs as one job array (returns at once)")
    sp.add_argument("file", help="sweep file (YAML), e.g. sweeps/demo-tiny.yaml")
    sp.add_argument("--wait", action="store_true", help="block until every job is done, with a progress bar")
    sp.add_argument("--rerun-stale", action="store_true",
                    help="also rerun finished runs that were made at another git sha")
    sp.add_argument("--executor", choices=("slurm", "local", "debug"), default=None,
                    help="override the file's executor (local and debug always wait)")
    _add_store(sp, store_help)
    sp.set_defaults(func=_cmd_launch)

    sp = ssub.add_parser("status", help="pending/running/finished/failed counts from the store and from Slurm")
    sp.add_argument("name", help="sweep name (or its sweep file)")
    _add_store(sp, store_help)
    sp.set_defaults(func=_cmd_status)

    sp = subparsers.add_parser("tune", help="optuna study over the runner (shared storage, resumable)")
    sp.add_argument("file", help="sweep file with a 'tune' section (see sweeps/)")
    sp.add_argument("--wait", action="store_true", help="block until the workers are done")
    sp.add_argument("--executor", choices=("slurm", "local", "debug"), default=None)
    sp.add_argument("--trials", type=int, default=None, help="complete trials to reach (default: the file's)")
    sp.add_argument("--workers", type=int, default=None, help="parallel worker jobs (default: the file's)")
    _add_store(sp, store_help)
    sp.set_defaults(func=_cmd_tune)


__all__ = ["add_cli"]
