"""MODIP's bars in the hopper issue's part D, checked from a store and its report's tables, line by line.

The bars (issue 25, "What it must show"), for every MODIP line of the sweep (each `planner.horizon` variant):
- its `dp` seed-mean never more than 3 points below its env-step-0 seed-mean at any eval point;
- its `dp` final gain over the same seed's common start and over its own step 0, each with its paired two-level
  95% interval above 0 (the report's gains table);
- its planner (`mpc`) seed-mean at or above the data's mean normalised score (the run records' `data_score`) at
  every eval from 4000 env steps on;
then its ordering against each other family's product (the report's paired differences table). It prints each bar
with the numbers that decide it and PASS or MISS, and decides nothing else.

    python benchmarks/modip_bars.py --store reference/hopper-medium/store --sweep reference-hopper \
        --report reference/hopper-medium/report
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.episodes import run_records
from results.store import Store

DIP_BAR = 3.0
PLANNER_FROM = 4000


def seed_means(curves: pd.DataFrame, line_runs: list[str], actor: str) -> pd.Series:
    """The mean over the line's runs of each eval point's score, by eval point (the k-th eval of every run: an eval
    lands on the first decision boundary past its schedule, so runs' env steps differ by a few), labelled with the
    eval point's median env step. The last is the final eval."""
    rows = curves[curves.run_id.isin(line_runs) & (curves.actor == actor)
                  & (curves.metric == "normalized_score")]
    rows = rows.assign(final=rows.phase == "final").sort_values(["run_id", "final", "env_step"])
    rows["point"] = rows.groupby("run_id").cumcount()
    means = rows.groupby("point").agg(env_step=("env_step", "median"), value=("value", "mean"),
                                      final=("final", "all"))
    means.index = [f"{int(e)}{' (final)' if f else ''}" for e, f in zip(means.env_step, means.final)]
    return means["value"].set_axis(means.index), means.env_step.set_axis(means.index)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--sweep", required=True)
    ap.add_argument("--report", required=True, help="the folder `mbench report --out` wrote (its tables/)")
    args = ap.parse_args()
    store = Store(args.store)
    runs = store.runs(sweep=args.sweep)
    runs = runs[runs.status == "finished"].drop_duplicates("run_id", keep="last")
    curves = store.curves(sweep=args.sweep, run_ids=list(runs.run_id))
    records = run_records(runs).set_index("run_id")
    gains = pd.read_csv(Path(args.report) / "tables" / "gains.csv")
    pairs = pd.read_csv(Path(args.report) / "tables" / "paired_differences.csv")
    modip = runs[runs.method == "modip"]
    if modip.empty:
        print(f"modip_bars: sweep {args.sweep} has no finished MODIP run in {args.store}")
        return 1
    for variant, group in modip.groupby("variant"):
        ids = list(group.run_id)
        data_score = float(records.loc[ids, "data_score"].astype(float).mean())
        name = f"modip[{','.join(p for p in str(variant).split(',') if not p.startswith('preset='))}]"
        print(f"## {name}: {len(ids)} runs (seeds {sorted(group.seed.tolist())}), data score {data_score:.1f}")
        dp, _ = seed_means(curves, ids, "dp")
        dip = float((dp - dp.iloc[0]).min()) if len(dp) else float("nan")
        print("- dp seed-mean by env step: " + ", ".join(f"{k}: {v:.1f}" for k, v in dp.items()))
        print(f"  largest dip below step 0: {min(dip, 0.0):+.1f} (bar: no more than {DIP_BAR:.0f})"
              f" -> {'PASS' if dip >= -DIP_BAR else 'MISS'}")
        row = gains[gains.line == f"{name}/dp"]
        if row.empty:
            print(f"- no gains row for {name}/dp in the report")
        else:
            g = row.iloc[0]
            for what, key in (("over its common start", "gain_common"), ("over its own step 0", "gain_start")):
                low, high = g[f"{key}_low"], g[f"{key}_high"]
                print(f"- dp final gain {what}: {g[key]:+.1f} [{low:+.1f}, {high:+.1f}] -> "
                      f"{'PASS' if low > 0 else 'MISS'}")
        mpc, steps = seed_means(curves, ids, "mpc")
        late = mpc[steps >= PLANNER_FROM - 10]  # an eval lands a few env steps either side of its schedule
        print("- mpc seed-mean by env step: " + ", ".join(f"{k}: {v:.1f}" for k, v in mpc.items()))
        if len(late):
            print(f"  lowest from {PLANNER_FROM} on: {late.min():.1f} (bar: at or above the data's {data_score:.1f})"
                  f" -> {'PASS' if late.min() >= data_score else 'MISS'}")
        mine = pairs[(pairs.x == f"{name}/dp") | (pairs.y == f"{name}/dp")]
        for p in mine.itertuples():
            sign = 1.0 if p.x == f"{name}/dp" else -1.0
            other = p.y if sign > 0 else p.x
            low, high = sorted((sign * p.low, sign * p.high))
            print(f"- against {other}: {sign * p.difference:+.1f} [{low:+.1f}, {high:+.1f}] ({p.runs} runs): "
                  f"{'MODIP ahead' if low > 0 else 'MODIP behind' if high < 0 else 'not resolved'}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
