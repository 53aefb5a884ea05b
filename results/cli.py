"""`mbench store compact`: the command-line face of results/store.py.

Why a module of its own: bench/cli.py builds its parser from each subsystem's `add_cli` before it knows which
command runs, and the store imports pandas and pyarrow; this module imports neither (the command does, when it
runs). REQUIRES names the packages the command needs; where one is missing, bench/cli.py leaves it out.
"""
from __future__ import annotations

import argparse

from results.store_root import writable_store

REQUIRES = ("pandas", "pyarrow")


def _cmd_compact(args: argparse.Namespace) -> int:
    from results.store import Store  # lazy: pandas, pyarrow

    store = Store(writable_store(args.store))
    stats = store.compact(sweep=args.sweep)
    print(f"compacted {store.root}: {stats['files_before']} files -> {stats['files_after']}")
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Add `store compact [--sweep ID] [--store DIR]` to the main CLI's subparsers."""
    store_parser = subparsers.add_parser("store", help="maintain the results store")
    store_sub = store_parser.add_subparsers(dest="store_command", required=True)
    compact = store_sub.add_parser("compact", help="merge small files without changing query results")
    # SUPPRESS: when not given here, the global `mbench --store` (or its default) stands.
    compact.add_argument("--store", default=argparse.SUPPRESS,
                         help="results store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    compact.add_argument("--sweep", action="append", default=None, help="only this sweep (repeatable)")
    compact.set_defaults(func=_cmd_compact)
    return store_parser
