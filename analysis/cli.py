"""`mbench report SWEEP` and `mbench ablate SWEEP`: the command-line face of analysis/report.py and ablate.py.

Why a module of its own: bench/cli.py builds its parser from each subsystem's `add_cli` before it knows which
command runs, and the reports import pandas, matplotlib, seaborn and rliable (seconds). This module imports none
of them: each command imports its report when it runs, so `mbench --help` and `mbench report --help` answer at
once. REQUIRES names the packages the commands need; where one is missing, bench/cli.py leaves them out.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from results.names import validate_name

REQUIRES = ("matplotlib", "pandas", "pyarrow", "pydantic", "rliable", "scipy", "seaborn")


def _cmd_report(args: argparse.Namespace) -> int:
    # lazy: matplotlib, pandas
    from analysis.report import write_report
    from results.store import Store

    root = args.store
    validate_name(args.sweep, "sweep name")
    if Store(root).runs(sweep=args.sweep).empty:  # an empty report would look like a result
        raise ValueError(f"no runs in sweep '{args.sweep}' under {root}; launch it with "
                         f"mbench sweep launch <sweep file> --store {root}")
    out = Path(args.out) if args.out else Path(root) / "reports" / args.sweep
    # --target and --reps, where given; else the report's own defaults (TARGET_METHOD, BOOTSTRAP_REPS).
    given = {k: v for k, v in (("target", args.target), ("reps", args.reps)) if v is not None}
    path = write_report(root, args.sweep, out, one_commit=args.one_commit, **given)
    print(f"report: {path} (and {path.with_suffix('.html')})")
    return 0


def _cmd_ablate(args: argparse.Namespace) -> int:
    # lazy: matplotlib, pandas
    from analysis.ablate import write_ablation
    from analysis.ablation_spec import find_ablation

    root = args.store
    out = Path(args.out) if args.out else Path(root) / "reports" / f"{args.sweep}-ablation"
    spec = find_ablation(root, args.sweep, args.sweep_file)
    path = write_ablation(root, args.sweep, out, reps=args.reps, spec=spec)
    print(f"ablation report: {path} (and {path.with_suffix('.html')})")
    return 0


def add_cli(subparsers) -> None:
    """Add `report SWEEP [--out DIR]` and `ablate SWEEP` to the main CLI."""
    parser = subparsers.add_parser("report", help="figures and tables for one sweep, from the store")
    parser.add_argument("sweep", help="sweep id")
    parser.add_argument("--out", default=None, help="report folder (default <store>/reports/<sweep>)")
    # SUPPRESS: given here it overrides the global `mbench --store`; not given, the global one stands.
    parser.add_argument("--store", default=argparse.SUPPRESS,
                        help="results store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    parser.add_argument("--target", default=None, help="method compared with each baseline")
    parser.add_argument("--reps", type=int, default=None, help="bootstrap repetitions")
    parser.add_argument("--one-commit", action="store_true",
                        help="refuse a sweep whose finished runs mix commits (or attempts of a run do), ran from a "
                             "dirty checkout, or read different data under one dataset name: a reference report")
    parser.set_defaults(func=_cmd_report)

    parser = subparsers.add_parser("ablate", help="an ablation report: the cells of its sweep file's 'ablation:' "
                                                  "section, side by side")
    parser.add_argument("sweep", help="sweep id")
    parser.add_argument("--sweep-file", default=None,
                        help="the sweep file with the 'ablation:' section (default: the one the sweep was launched "
                             "from, else sweeps/<sweep>.yaml)")
    parser.add_argument("--out", default=None, help="report folder (default <store>/reports/<sweep>-ablation)")
    # SUPPRESS: given here it overrides the global `mbench --store`; not given, the global one stands.
    parser.add_argument("--store", default=argparse.SUPPRESS,
                        help="results store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.set_defaults(func=_cmd_ablate)
