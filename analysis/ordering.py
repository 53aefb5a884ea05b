"""Ordering claims between methods: paired differences of the methods' product lines on each task (issue 25).

Why: a method is compared by its product (the actor its runs record as the method's product, e.g. a distilled
policy rather than the planner that taught it), on final scores only, and two lines are ordered only where the
interval of their difference excludes zero. Two variants of one method (a control of it in the same sweep: a grid
value, a switch) are two lines, ordered as two methods are. Runs of one seed meet the same eval states under every
method (the paired design, bench/tasks/eval_states.py), so the difference is resampled paired: the same runs and
the same states for both lines (analysis/bootstrap.py), which removes what the two lines share.
"""
from __future__ import annotations

import pandas as pd

from analysis import bootstrap

COLUMNS = ["task", "x", "y", "difference", "low", "high", "runs", "design", "claim"]


def product_lines(final: pd.DataFrame, records: pd.DataFrame) -> list[str]:
    """The lines whose actor is their method's product, as the runs recorded it."""
    if final.empty or records.empty:
        return []
    product = dict(zip(records["run_id"], records["product"]))
    mine = final[[product.get(r) == a for r, a in zip(final["run_id"], final["actor"])]]
    return sorted(set(mine["line"]))


def claim(x: str, y: str, low: float, high: float) -> str:
    if low > 0:
        return f"{x} > {y}"
    if high < 0:
        return f"{y} > {x}"
    return "not resolved (the interval holds 0)"


def paired_table(final: pd.DataFrame, cells: pd.DataFrame, lines: list[str], reps: int = bootstrap.RESAMPLES,
                 value: str = "normalized_score") -> pd.DataFrame:
    """Per task, every two of `lines` (of different methods, or variants of one), x the one with the higher mean
    final score (cells: analysis.score_table.final_cells): mean(x) - mean(y) over their common run seeds and
    states, with its paired two-level interval, and what it supports."""
    rows = []
    if final.empty or cells.empty:
        return pd.DataFrame(columns=COLUMNS)
    for task, mine in cells[cells["line"].isin(lines)].groupby("task", sort=True):
        ordered = mine.sort_values(["mean", "line"], ascending=[False, True])["line"].tolist()
        eps = final[final["task"] == task]
        for i, x in enumerate(ordered):
            for y in ordered[i + 1:]:
                d = bootstrap.paired_difference(eps[eps["line"] == x], eps[eps["line"] == y], value, reps)
                if d is None:
                    continue
                rows.append({"task": task, "x": x, "y": y, "difference": d["difference"], "low": d["low"],
                             "high": d["high"], "runs": d["n"], "design": d["design"],
                             "claim": claim(x, y, d["low"], d["high"])})
    return pd.DataFrame(rows, columns=COLUMNS)
