"""A sweep's eval curves as one Markdown table: normalised score per family, actor and seed on the eval grid.

Why: the hopper issue's part B reads each family's curve seed by seed (where it dips, where it ends) before
anything is tuned; `mbench report` aggregates over seeds, this shows every seed, finished runs only.

    python benchmarks/diag_table.py --store STORE --sweep diag-hopper [--metric normalized_score] [--grid 2000]

Eval points are placed on the sweep's grid (an eval happens at the first decision boundary at or after each
grid step, so its env_step is rounded to the nearest grid step). The last line counts the runs shown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--sweep", default="diag-hopper")
    ap.add_argument("--metric", default="normalized_score")
    ap.add_argument("--grid", type=int, default=2000, help="the sweep's eval.every (env steps)")
    args = ap.parse_args()

    import numpy as np

    from results.store import Store

    store = Store(args.store)
    runs = store.runs(sweep=args.sweep, status="finished")
    if runs.empty:
        print(f"diag_table: no finished runs of sweep {args.sweep} in {args.store}")
        return 1
    curves = store.curves(sweep=args.sweep, run_ids=list(runs.run_id))
    c = curves[(curves.metric == args.metric) & (curves.actor != "")].copy()
    meta = runs.set_index("run_id")
    c["method"] = c.run_id.map(meta.method)
    c["seed"] = c.run_id.map(meta.seed)
    c["step"] = (np.round(c.env_step / args.grid) * args.grid).astype(int)
    table = c.pivot_table(index=["method", "actor", "seed"], columns="step", values="value", aggfunc="last")
    print(f"sweep {args.sweep}: {args.metric} per family, actor and seed (finished runs; columns: env steps)\n")
    print(table.round(1).to_markdown())
    print(f"\ndiag_table: {len(runs)} finished runs, {runs.method.nunique()} families, seeds "
          f"{sorted(int(s) for s in runs.seed.unique())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
