"""`mbench data make ID` and `mbench data list`: make a look-alike dataset offline, or list the Minari root.

Why: the benchmark must run where the real datasets cannot be downloaded. Which maker an id gets is looked up
in the suite registry (`bench.data.suites`): the D4RL look-alikes (`mujoco/...`, `mbench/...`, a SAC behaviour
agent, see `bench.data.d4rl`), kitchen (scripted, `bench.data.kitchen`) and robomimic (scripted,
`bench.data.robomimic`).
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.data import suites
from bench.data.minari_io import list_datasets, minari_root


def _cmd_make(args) -> int:
    summary = suites.make(args.id, root=args.root, size=args.size, agent_steps=args.agent_steps, seed=args.seed,
                          progress=not args.no_progress, force=args.force)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _cmd_list(args) -> int:
    lines = list_datasets(args.root)
    print("\n".join(lines) if lines else f"no datasets under {Path(args.root) if args.root else minari_root()}")
    return 0


def add_cli(subparsers) -> None:
    """Add `data make` and `data list` to an argparse subparsers object; each leaf sets `func(args)`."""
    data = subparsers.add_parser("data", help="make or list offline datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    mk = dsub.add_parser("make", help="make a look-alike dataset offline, saved in the Minari format")
    mk.add_argument("id", help="dataset id, e.g. mujoco/hopper/medium-v0 or mbench/inverted-double-pendulum/medium-v0")
    mk.add_argument("--agent-steps", type=int, default=None, help="SAC env steps (default: DEFAULT_BUDGETS)")
    mk.add_argument("--size", type=int, default=None, help="transitions per collected part (default: DEFAULT_BUDGETS); "
                    "robomimic and kitchen ids: number of demos")
    mk.add_argument("--root", default=None, help="datasets folder (default: MINARI_DATASETS_PATH; robomimic ids: "
                    "ROBOMIMIC_DATASETS_PATH)")
    mk.add_argument("--seed", type=int, default=0, help="dataset seed (fixed across run seeds)")
    mk.add_argument("--force", action="store_true", help="remake even if the dataset exists")
    mk.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    mk.set_defaults(func=_cmd_make)
    ls = dsub.add_parser("list", help="list datasets found under the Minari root")
    ls.add_argument("--root", default=None, help="Minari datasets folder (default: MINARI_DATASETS_PATH)")
    ls.set_defaults(func=_cmd_list)
