"""Part C's screen, read by its selection rule: per screen sweep, the product actor's final and step-0 scores.

Why: each family's d4rl preset is chosen among at most 3 screened configurations (sweeps/screen/README.md says
the rule, fixed before the screens finished): the highest mean final score of the product actor (its 50-episode
final eval) over the screening seeds, with a configuration whose product's seed-mean curve falls more than 3
points below its step-0 mean ranked below every one that does not. This prints, per sweep (finished runs only):
the product's step-0 mean, each seed's final, the mean final with its two-level 95% interval, the worst drop of
the seed-mean curve below step 0, the other actors' finals, and per family the configuration the rule picks.

    python benchmarks/screen_table.py --store STORE screen-modip-a screen-modip-b screen-modip-c
    python benchmarks/screen_table.py --store STORE screen-modip-a+confirm-modip-a   # the pick on seeds 10-14
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DIP_BAR = 3.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("sweeps", nargs="+")
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from analysis import gains
    from analysis.data import Notes, align_to_grid, eval_points, load_sweep
    from analysis.episodes import final_episodes, run_records

    rows = []
    def load(name: str):
        """One sweep, or several joined by '+' (a screen and its confirmation: one configuration each, so a line
        is its method and actor)."""
        parts = [load_sweep(args.store, one, Notes(echo=False)) for one in name.split("+")]
        if len(parts) == 1:
            return parts[0]
        joined = parts[0]
        for field in ("runs", "finished", "curves", "episodes"):
            frame = pd.concat([getattr(p, field) for p in parts], ignore_index=True)
            if "line" in frame:
                frame["line"] = [f"{m}/{a}" for m, a in zip(frame["method"], frame["actor"])]
            setattr(joined, field, frame)
        return joined

    for sweep_id in args.sweeps:
        sweep = load(sweep_id)
        if sweep.finished.empty:
            print(f"{sweep_id}: no finished runs")
            continue
        points = align_to_grid(eval_points(sweep.curves), Notes(echo=False))
        final = final_episodes(sweep.episodes)
        records = run_records(sweep.finished)
        product = dict(zip(records["run_id"], records["product"]))
        table = gains.gains_table(sweep.episodes, final, points, records, args.reps)
        for r in table.itertuples():
            mine = final[final["line"] == r.line]
            is_product = any(product.get(run) == a for run, a in zip(mine["run_id"], mine["actor"]))
            seeds = mine.groupby("seed")["normalized_score"].mean()
            rows.append({"sweep": sweep_id, "family": sweep.finished["method"].iloc[0], "line": r.line,
                         "product": is_product, "runs": r.runs, "step0": r.step0, "final": r.final,
                         "low": r.final_low, "high": r.final_high, "dip": r.dip, "dip_at": r.dip_at,
                         "seeds": ", ".join(f"{int(s)}: {v:.1f}" for s, v in seeds.items()),
                         "gain": r.gain_start, "gain_low": r.gain_start_low, "gain_high": r.gain_start_high})
    if not rows:
        return 1
    print("| sweep | actor | product | runs | step 0 | final [95% two-level] | per seed (final) | gain over own "
          "step 0 [95% paired] | worst dip (env step) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        actor = r["line"].rsplit("/", 1)[-1]
        dip = f"{r['dip']:.1f}" + (f" ({r['dip_at']:.0f})" if np.isfinite(r["dip_at"]) else "")
        gain = f"{r['gain']:+.1f} [{r['gain_low']:+.1f}, {r['gain_high']:+.1f}]" if np.isfinite(r["gain"]) else "-"
        print(f"| {r['sweep']} | {actor} | {'yes' if r['product'] else ''} | {r['runs']} | {r['step0']:.1f} | "
              f"{r['final']:.1f} [{r['low']:.1f}, {r['high']:.1f}] | {r['seeds']} | {gain} | {dip} |")
    picks = []
    for family in sorted({r["family"] for r in rows}):
        cands = [r for r in rows if r["family"] == family and r["product"]]
        ranked = sorted(cands, key=lambda r: (r["dip"] < -DIP_BAR, -r["final"]))
        if ranked:
            best = ranked[0]
            picks.append(f"{family} {best['sweep']} ({best['final']:.1f}, dip {best['dip']:.1f}, n={best['runs']})")
    print("screen_table: picks by the rule: " + "; ".join(picks) + f" (interval resamples {args.reps})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
