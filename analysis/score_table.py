"""The headline table: each line's final score per task with its two-level interval and flags, `best` beside it.

Why (issue 25): ordering claims use final scores with intervals that count both the runs and the eval states
(analysis/bootstrap.py); `best` (each run's max over evals, optimistic) is printed beside them, as CORL does,
and never orders anything. A cell also says what its number cannot show: too few runs (†), episodes at the
task's ceiling (⌃), eval states that every run failed (≡k: k such states), or an interval over runs alone
because the runs stored no episodes (‡, stores older than schema 3).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import bootstrap, stats
from analysis.episodes import CEILING_SHARE, CEILING_TOLERANCE

FLAGS = {"few": "†", "ceiling": "⌃", "shared": "≡", "seeds_only": "‡"}
LATEX_FLAGS = {"few": r"$^\dagger$", "ceiling": r"$^\wedge$", "shared": r"$^{\equiv%d}$", "seeds_only": r"$^\ddagger$"}
COLUMNS = ["line", "task", "mean", "low", "high", "n", "episodes", "design", "best", "flagged", "ceiling",
           "shared_failures", "seeds_only"]


def legend(reps: int) -> str:
    """What the cells and their marks mean, for the report's text and the tables' captions."""
    return (f"A cell is the mean final score over runs [95% two-level percentile bootstrap, {reps} resamples: "
            "runs, then each drawn run's final-eval episodes; episodes of one eval state are drawn together where "
            f"runs share their states] (n runs); best = mean of each run's max over evals (optimistic, never "
            f"used to order lines). {FLAGS['few']} fewer than {stats.MIN_SEEDS} runs; {FLAGS['ceiling']} at "
            f"least {CEILING_SHARE:.0%} of the final episodes within {CEILING_TOLERANCE:.0%} of the task's "
            f"maximum return (or succeeding): the task cannot tell these lines apart; {FLAGS['shared']}k: k eval "
            f"states that several runs met and every one failed; {FLAGS['seeds_only']} no stored episodes (a "
            "store older than schema 3): the interval resamples runs only.")


def final_cells(scores: pd.DataFrame, final: pd.DataFrame, flags: pd.DataFrame, reps: int = bootstrap.RESAMPLES,
                value: str = "normalized_score") -> pd.DataFrame:
    """Per (line, task) of `scores` (analysis.data.run_scores): the final score's mean and interval from the
    runs' final-eval episodes (`final`, analysis.episodes.final_episodes), else from the runs' final scores
    alone (seeds_only), the mean best, and the flags of `flags` (analysis.episodes.cell_flags)."""
    records = []
    marks = flags.set_index(["line", "task"]) if not flags.empty else None
    for (line, task), group in scores.groupby(["line", "task"], sort=True):
        eps = final[final["run_id"].isin(group["run_id"]) & (final["line"] == line)] if not final.empty else final
        seeds_only = eps.empty or set(eps["run_id"]) != set(group["run_id"])
        if seeds_only:  # one "episode" per run, its final score: a one-level bootstrap over runs
            eps = bootstrap.runs_as_episodes(group, "final", value)
        cell = bootstrap.cell_interval(eps, value, reps)
        mark = marks.loc[(line, task)] if marks is not None and (line, task) in marks.index else None
        records.append({"line": line, "task": task, **cell, "best": float(group["best"].mean()),
                        "flagged": cell["n"] < stats.MIN_SEEDS,
                        "ceiling": bool(mark["ceiling"]) if mark is not None else False,
                        "shared_failures": int(mark["shared_failures"]) if mark is not None else 0,
                        "seeds_only": seeds_only})
    return pd.DataFrame(records, columns=COLUMNS)


def cell_text(r, latex: bool = False) -> str:
    """One cell: mean [low, high] (n=..) and its marks."""
    if r.n == 0 or not np.isfinite(r.mean):
        return "-"
    text = f"{r.mean:.1f} [{r.low:.1f}, {r.high:.1f}] (n={r.n})"
    marks = LATEX_FLAGS if latex else FLAGS
    if r.flagged:
        text += marks["few"] if latex else f" {marks['few']}"
    if r.ceiling:
        text += marks["ceiling"] if latex else f" {marks['ceiling']}"
    if r.shared_failures:
        text += marks["shared"] % r.shared_failures if latex else f" {marks['shared']}{r.shared_failures}"
    if r.seeds_only:
        text += marks["seeds_only"] if latex else f" {marks['seeds_only']}"
    return text


def wide(cells: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """Lines x (task final, task best): the final cell and, beside it, the optimistic best."""
    if cells.empty:
        return pd.DataFrame()
    shown = cells.assign(final=[cell_text(r, latex) for r in cells.itertuples()],
                         best_text=[f"{b:.1f}" if np.isfinite(b) else "-" for b in cells["best"]])
    table = pd.DataFrame(index=sorted(shown["line"].unique()))
    for task in sorted(shown["task"].unique()):
        mine = shown[shown["task"] == task].set_index("line")
        table[f"{task} final"] = mine["final"]
        table[f"{task} best"] = mine["best_text"]
    table = table.fillna("-")
    table.index.name = "method / actor"
    return table
