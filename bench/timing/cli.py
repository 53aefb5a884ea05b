"""`mbench time`: inference-time probes of a method, on synthetic inputs or a checkpoint, into the store.

Why: the curves say how well a method does; this says what each of its act paths and updates costs
(bench/timing/measure.py measures it and writes the rows). This module is the command: bench/cli.py builds its
parser before anyone knows which command runs, so it imports nothing heavy; the command imports torch and the
methods when it runs. On a bare GPU machine `mbench time` runs through the whole CLI, which leaves out the
commands whose packages are missing there (bench/cli.py); REQUIRES names the packages this one needs.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.runner.provenance import now
from results.names import validate_name
from results.store_root import writable_store

REQUIRES = ("pydantic", "torch")


def _cmd_time(args: argparse.Namespace) -> int:
    # lazy: torch, pydantic
    from bench.timing.measure import format_table, measure, write_rows
    from methods.registry import registered_methods

    validate_name(args.sweep, "sweep")
    for flag, value, least in (("--batch", args.batch, 1), ("--reps", args.reps, 1), ("--warmup", args.warmup, 0)):
        if value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
    if args.max_s is not None and not args.max_s > 0:
        raise ValueError(f"--max-s must be > 0 seconds, got {args.max_s}")
    if not args.no_store:
        writable_store(args.store)
    methods = sorted(registered_methods()) if args.method == "all" else args.method.split(",")
    all_rows: list[dict[str, Any]] = []
    mismatch = False
    for m in methods:
        started, t0 = now(), time.perf_counter()
        log = (lambda s, m=m: print(f"[{m}] {s}", file=sys.stderr, flush=True)) if not args.quiet else None
        rid, cfg, rows = measure(m, args.task, device=args.device, overrides=args.set or [],
                                 checkpoint=args.checkpoint, batch=args.batch, reps=args.reps, warmup=args.warmup,
                                 compile=args.compile, compile_mode=args.compile_mode,
                                 compile_backend=args.compile_backend, max_s=args.max_s, obs_dim=args.obs_dim,
                                 act_dim=args.act_dim, store_root=args.store, log=log)
        if not args.no_store:
            write_rows(args.store, args.sweep, rid, cfg, rows, time.perf_counter() - t0, started)
            print(f"{m}: {len(rows)} timing rows -> {args.store} (sweep {args.sweep}, run {rid})", file=sys.stderr)
        mismatch |= any(r["compiled"] and r.get("compile_agree") is False for r in rows)
        all_rows += rows
    print(format_table(all_rows))
    if mismatch:
        print("mbench: error: a compiled path disagrees with its eager path (agree=NO above)", file=sys.stderr)
        return 1
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    sp = subparsers.add_parser("time", help="time a method's act paths and updates (synthetic inputs; no MuJoCo)")
    sp.add_argument("--method", required=True, help="a method, a comma-separated list, or 'all'")
    sp.add_argument("--task", default="demo", help="the task whose spaces (obs/act dims) to use")
    sp.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    sp.add_argument("--checkpoint", default=None, help="a run's last.pt or a cached pretrained-DP file")
    sp.add_argument("--batch", type=int, default=16, help="the batched size (batch 1 is always timed)")
    sp.add_argument("--reps", type=int, default=20)
    sp.add_argument("--warmup", type=int, default=3)
    sp.add_argument("--max-s", type=float, default=None, help="cap on each component's timed loop (s)")
    sp.add_argument("--compile", action="store_true", help="also time compiled act paths (checked against eager)")
    sp.add_argument("--compile-mode", default="default",
                    choices=["default", "reduce-overhead", "max-autotune-no-cudagraphs"])
    sp.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: trace only)")
    sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    sp.add_argument("--obs-dim", type=int, default=None, help="override the task's obs dim (with --act-dim)")
    sp.add_argument("--act-dim", type=int, default=None)
    sp.add_argument("--sweep", default="timing", help="sweep id the rows are stored under")
    # Also accepted after `time`; SUPPRESS keeps `mbench --store X time` working.
    sp.add_argument("--store", default=argparse.SUPPRESS, help="results store folder")
    sp.add_argument("--no-store", action="store_true", help="print the table only")
    sp.add_argument("--quiet", action="store_true")
    sp.set_defaults(func=_cmd_time)
    return sp
