"""What fine-tuning gained: each line's final score against its own start and against the common start (issue 25 D).

Why: a fine-tuner's final score says little without where it started. Part D's table gives, per line and task,
the step-0 score, the final and best scores, and two paired gains, each with its two-level 95% interval
(analysis/bootstrap.py, the same run seeds and eval states on both sides):
- over the actor's own step-0 score: final-eval episodes against the same run's first eval (phase before any
  online step), paired on the states both evals met;
- over the common start: final-eval episodes against the final eval of the same seed's common-start run (the
  run whose record says its method's product is the common start itself, `actors.common_start`), paired on
  seeds and states. Stores whose records lack the flag (runs before it was recorded) get no such column;
and the largest dip of the line's seed-mean curve below its step-0 mean on the way (the eval grid of
analysis/data.py). Analysis knows no method names: the common start is found by the runs' records.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import bootstrap

COLUMNS = ["line", "task", "runs", "step0", "final", "final_low", "final_high", "best", "gain_start",
           "gain_start_low", "gain_start_high", "gain_common", "gain_common_low", "gain_common_high", "dip",
           "dip_at"]


def first_episodes(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (run, actor): the episodes of its first eval (the smallest env_step, before the final phase)."""
    if episodes.empty:
        return episodes
    regular = episodes[episodes["phase"] != "final"]
    first = regular.groupby(["run_id", "actor"])["env_step"].transform("min")
    chosen = regular[regular["env_step"] == first]
    first_grad = chosen.groupby(["run_id", "actor"])["grad_step"].transform("max")  # the last of several at 0
    return chosen[chosen["grad_step"] == first_grad].reset_index(drop=True)


def common_start_runs(records: pd.DataFrame) -> set[str]:
    """The run ids whose method's product is the common start (their record's `common_start` flag)."""
    if records.empty or "common_start" not in records:
        return set()
    return set(records.loc[[v is True for v in records["common_start"]], "run_id"])


def dip(points: pd.DataFrame) -> tuple[float, float]:
    """(largest drop of the seed-mean curve below its step-0 mean, at which env step); (0, nan) if none."""
    means = points.groupby("env_step")["value"].mean().sort_index()
    if len(means) < 2:
        return 0.0, float("nan")
    drops = means.iloc[1:] - means.iloc[0]
    at = drops.idxmin()
    return (float(min(drops.min(), 0.0)), float(at) if drops.min() < 0 else float("nan"))


def _pair(x: pd.DataFrame, y: pd.DataFrame, value: str, reps: int) -> tuple[float, float, float]:
    d = bootstrap.paired_difference(x, y, value, reps) if not x.empty and not y.empty else None
    return (d["difference"], d["low"], d["high"]) if d is not None else (np.nan, np.nan, np.nan)


def gains_table(episodes: pd.DataFrame, final: pd.DataFrame, points: pd.DataFrame, records: pd.DataFrame,
                reps: int = bootstrap.RESAMPLES, value: str = "normalized_score") -> pd.DataFrame:
    """Per (line, task) with final-eval episodes: step-0, final [interval], best, the two paired gains
    [intervals] and the largest dip (module doc). `points`: the grid-aligned eval points (analysis.data)."""
    rows = []
    if final.empty:
        return pd.DataFrame(columns=COLUMNS)
    first = first_episodes(episodes)
    starts = common_start_runs(records)
    product = dict(zip(records["run_id"], records["product"])) if not records.empty else {}
    for (line, task), fin in final.groupby(["line", "task"], sort=True):
        start = first[(first["line"] == line) & (first["task"] == task)]
        cell = bootstrap.cell_interval(fin, value, reps)
        mine = points[(points["line"] == line) & (points["task"] == task)] if not points.empty else points
        best = float(mine.groupby("run_id")["value"].max().mean()) if not mine.empty else np.nan
        step0 = float(bootstrap.point(bootstrap.episodes_of(start, value))[0]) if not start.empty else np.nan
        own = _pair(fin, start, value, reps) if fin["env_step"].max() > start["env_step"].max() else (np.nan,) * 3
        ref = final[final["run_id"].isin(starts) & (final["task"] == task)]
        ref = ref[[product.get(r) == a for r, a in zip(ref["run_id"], ref["actor"])]]  # its product actor's
        common = (_pair(fin, ref, value, reps) if starts and not set(fin["run_id"]) <= starts else (np.nan,) * 3)
        drop, at = dip(mine) if not mine.empty else (np.nan, np.nan)
        rows.append({"line": line, "task": task, "runs": cell["n"], "step0": step0, "final": cell["mean"],
                     "final_low": cell["low"], "final_high": cell["high"], "best": best,
                     "gain_start": own[0], "gain_start_low": own[1], "gain_start_high": own[2],
                     "gain_common": common[0], "gain_common_low": common[1], "gain_common_high": common[2],
                     "dip": drop, "dip_at": at})
    return pd.DataFrame(rows, columns=COLUMNS)


def _ci(est: float, low: float, high: float) -> str:
    if not np.isfinite(est):
        return "-"
    mark = " *" if low > 0 else ""
    return f"{est:+.1f} [{low:+.1f}, {high:+.1f}]{mark}"


def display(table: pd.DataFrame) -> pd.DataFrame:
    """The gains table as text: intervals in brackets, `*` where an interval lies above 0."""
    if table.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "line": table["line"], "task": table["task"], "runs": table["runs"],
        "step 0": [f"{v:.1f}" if np.isfinite(v) else "-" for v in table["step0"]],
        "final": [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in
                  zip(table["final"], table["final_low"], table["final_high"])],
        "best": [f"{v:.1f}" if np.isfinite(v) else "-" for v in table["best"]],
        "gain over own step 0": [_ci(*r) for r in zip(table["gain_start"], table["gain_start_low"],
                                                      table["gain_start_high"])],
        "gain over common start": [_ci(*r) for r in zip(table["gain_common"], table["gain_common_low"],
                                                        table["gain_common_high"])],
        "largest dip (at env step)": [f"{d:.1f}" + (f" ({a:.0f})" if np.isfinite(a) else "") if np.isfinite(d)
                                      else "-" for d, a in zip(table["dip"], table["dip_at"])],
    })


def legend(reps: int) -> str:
    return ("Per line: the step-0 score (its first eval), the final score [95% two-level bootstrap], best (mean of "
            "each run's max over evals), and two paired gains of the final eval, each [95% paired two-level "
            f"bootstrap, {reps} resamples; * the interval lies above 0]: over the same run's step-0 eval (the states "
            "both evals met), and over the final eval of the same seed's common-start run (a run whose method's "
            "product is the common start; '-' where the store has none or its records predate the flag). Largest "
            "dip: the lowest seed-mean eval minus the step-0 seed-mean (0 if the curve never goes below its start).")
