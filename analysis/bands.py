"""The interval at every eval point of a curve: the two-level bootstrap of the runs and their eval episodes.

Why (issue 25): a curve's band says how far its mean could move, so it counts the same two sources of
uncertainty as the headline table (analysis/bootstrap.py): the runs, and the eval states each run met. At each
eval point of a line (each grid step of analysis.data.align_to_grid), each run's episodes are those of the eval
the curve shows there: its `final` eval where one sits at that env step, else the eval of its latest gradient
step (analysis.data.eval_points keeps the same one). Where any run of the point has no stored episodes there
(a store older than schema 3, or a point interpolated between two evals of a ragged run), the point's interval
is a percentile bootstrap over the runs' values alone, and it says so (`how` = RUNS_ONLY), so a figure can
label it rather than pass it off as the other.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import bootstrap

TWO_LEVEL = "two-level"
RUNS_ONLY = "runs only"
COLUMNS = ["task", "line", "env_step", "mean", "low", "high", "n", "episodes", "how"]
FINAL_PHASE = "final"


def shown_evals(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per (run, actor, env_step): the episodes of the eval that a curve shows there (module doc)."""
    if episodes.empty:
        return episodes
    key = ["run_id", "actor", "env_step"]
    ranked = episodes.assign(_final=episodes["phase"] == FINAL_PHASE)
    chosen = ranked.sort_values([*key, "_final", "grad_step"], kind="stable").groupby(key).tail(1)
    picked = ranked.merge(chosen[[*key, "phase", "grad_step"]], on=[*key, "phase", "grad_step"])
    return picked.drop(columns="_final")


def curve_bands(points: pd.DataFrame, episodes: pd.DataFrame, value: str = "normalized_score",
                reps: int = bootstrap.RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per (task, line, env_step) of `points` (aligned, with source_step and seed): the mean over runs and its
    95% interval, two-level from the runs' episodes where every run has them (how TWO_LEVEL), else over the
    runs' values alone (RUNS_ONLY)."""
    if points.empty:
        return pd.DataFrame(columns=COLUMNS)
    usable = not episodes.empty and value in episodes.columns and episodes[value].notna().any()
    shown = shown_evals(episodes) if usable else pd.DataFrame()
    by_eval = {k: g for k, g in shown.groupby(["run_id", "actor", "env_step"], sort=False)} if usable else {}
    sources = points["source_step"] if "source_step" in points else pd.Series(np.nan, index=points.index)
    frame = points.assign(src_step=sources)
    records = []
    for (task, line, step), group in frame.groupby(["task", "line", "env_step"], sort=True):
        found = [by_eval.get((r.run_id, r.actor, r.src_step)) if np.isfinite(r.src_step) else None
                 for r in group.itertuples()]
        if all(f is not None for f in found):
            eps, how = pd.concat(found, ignore_index=True), TWO_LEVEL
            if "seed" not in eps:
                eps = eps.merge(group[["run_id", "seed"]], on="run_id")
        else:
            eps, how = bootstrap.runs_as_episodes(group, "value", value), RUNS_ONLY
        cell = bootstrap.cell_interval(eps, value, reps, seed)
        records.append({"task": task, "line": line, "env_step": step, "mean": cell["mean"], "low": cell["low"],
                        "high": cell["high"], "n": cell["n"], "episodes": cell["episodes"], "how": how})
    return pd.DataFrame(records, columns=COLUMNS)


__all__ = ["RUNS_ONLY", "TWO_LEVEL", "curve_bands", "shown_evals"]
