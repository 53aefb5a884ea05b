"""Which lines share a panel, and the grid of panels: at most MAX_LINES lines a panel, references in every one.

Why (issue 25, part D): a panel of twelve lines cannot be read at a glance. A figure of lines (score curves,
aggregate curves, performance profiles) puts all of a task's lines in one panel where they fit in MAX_LINES;
else it splits the families (method[variant], analysis/looks.py) over several panels, in name order, never
splitting a family, each panel repeating the references (lines evaluated once: no online phase) for comparison.
"""
from __future__ import annotations

import itertools
import math

import matplotlib.pyplot as plt
import pandas as pd

from analysis.looks import split_line

MAX_LINES = 10
PANEL_SIZE = (6.6, 4.4)  # inches of one panel's axes area
LEGEND_ROOM = 1.6  # inches below each panel for its legend


def references(data: pd.DataFrame) -> set[str]:
    """The lines of `data` (eval points: line, env_step) evaluated at one env step only (no online phase), where
    some other line has several."""
    steps = data.groupby("line")["env_step"].nunique()
    return set(steps[steps == 1].index) if (steps > 1).any() else set()


def _best_split(sizes: list[int], parts: int) -> list[int] | None:
    """Cut points splitting `sizes` (in order) into `parts` contiguous groups with the smallest largest sum."""
    best, best_max = None, math.inf
    for cuts in itertools.combinations(range(1, len(sizes)), parts - 1):
        bounds = (0, *cuts, len(sizes))
        top = max(sum(sizes[a:b]) for a, b in itertools.pairwise(bounds))
        if top < best_max:
            best, best_max = list(bounds), top
    return best


def panel_groups(lines, refs=(), max_lines: int = MAX_LINES) -> list[list[str]]:
    """The lines of each panel of one task: all of them in one panel where they fit in `max_lines`; else the
    families of the non-reference lines, in name order, split into the fewest contiguous groups that keep each
    panel (with every reference repeated in it) within `max_lines`, the largest group as small as it can be. A
    family is never split: one larger than a panel holds gets a panel of its own."""
    lines = sorted(set(lines))
    refs = sorted(set(refs) & set(lines))
    if len(lines) <= max_lines:
        return [lines]
    rest = [ln for ln in lines if ln not in refs]
    families = sorted({split_line(ln)[0] for ln in rest})
    members = {f: [ln for ln in rest if split_line(ln)[0] == f] for f in families}
    sizes = [len(members[f]) for f in families]
    room = max(max_lines - len(refs), 1)
    for parts in range(max(1, math.ceil(sum(sizes) / room)), len(families) + 1):
        bounds = _best_split(sizes, parts)
        if bounds is not None and max(sum(sizes[a:b]) for a, b in itertools.pairwise(bounds)) <= room:
            break
    else:
        bounds = list(range(len(families) + 1))
    return [refs + [ln for f in families[a:b] for ln in members[f]] for a, b in itertools.pairwise(bounds)]


def panel_grid(n_panels: int, legend_room: float = LEGEND_ROOM):
    """A figure of `n_panels` panels of PANEL_SIZE, two a row (one where there is one), with `legend_room`
    inches under each for its legend (constrained layout)."""
    ncols = 1 if n_panels == 1 else 2
    nrows = math.ceil(n_panels / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_SIZE[0] * ncols, (PANEL_SIZE[1] + legend_room) * nrows),
                             squeeze=False, layout="constrained")
    flat = axes.ravel()
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def panel_legend(ax, handles: list, texts: list[str], title: str | None = None) -> None:
    """A panel's own legend, under it, in two columns."""
    ax.legend(handles, texts, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False,
              fontsize=8.5, title=title, title_fontsize=8)


__all__ = ["MAX_LINES", "panel_grid", "panel_groups", "panel_legend", "references"]
