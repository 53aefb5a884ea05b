"""Score curves in panels a reader can read: against env steps, wall-clock time or gradient steps.

Why (issue 25, part D): twelve lines in one small panel, bands of two-run references filling the plot and two
families in shades of one colour could not be read at a glance. So each task gets panels of at most MAX_LINES
lines (its families split over several panels, in name order, when they would hold more, each panel repeating
the task's references); each family has one hue and each actor a line style (analysis/looks.py); a line is the
mean over runs with the 95% interval of each eval point as its band (analysis/bands.py: two-level over runs and
their eval episodes, or over runs alone, marked ‡, where no episodes are stored). A reference, a line evaluated
once (no online phase), is a thin flat line at its mean with its interval as one bar at its eval, never a band
across the panel. Every panel carries its own legend, whose title says what the band is.
"""
from __future__ import annotations

import pandas as pd

from analysis import bands as bands_
from analysis import figures
from analysis.looks import Looks
from analysis.panels import MAX_LINES, panel_grid, panel_groups, panel_legend, references

RUNS_ONLY_MARK = "‡"
BAND_ALPHA = 0.14
X_LABELS = {"env_step": figures.ENV_STEPS_LABEL, "wall_s": figures.WALL_LABEL, "grad_step": figures.GRAD_STEPS_LABEL,
            "online_grad_step": "gradient steps after env step 0 (each method's own count)"}


def _legend(ax, handles: list, texts: list[str], marks: int) -> None:
    """The panel's legend below it; its title says what the band is (`marks`: how many lines carry ‡)."""
    if marks and marks == len(handles):
        title = f"mean over runs; band: 95% bootstrap over runs only ({RUNS_ONLY_MARK}: no eval episodes stored)"
    else:
        title = "mean over runs; band: 95% bootstrap over runs and their eval episodes"
        if marks:
            title += (f"\n{RUNS_ONLY_MARK}: over runs only where no episodes are stored (older store, or a point "
                      "interpolated between two evals)")
    panel_legend(ax, handles, texts, title)


def curve_panels(points: pd.DataFrame, bands: pd.DataFrame, looks: Looks, x: str = "env_step",
                 metric: str = "normalized_score", max_lines: int = MAX_LINES):
    """Score against `x` (env_step, wall_s or grad_step): per task, panels of at most `max_lines` lines (module
    doc). points: aligned evals (analysis.data.align_to_grid, with `x`); bands: analysis.bands.curve_bands of
    the same points."""
    if points.empty or x not in points.columns:
        return figures._empty(f"no {metric} evals to plot against {x}")
    panels = []
    for task in sorted(points["task"].unique()):
        data = points[points["task"] == task]
        refs = references(data)
        groups = panel_groups(data["line"].unique(), refs, max_lines)
        panels += [(task, group, refs, i, len(groups)) for i, group in enumerate(groups)]
    fig, axes = panel_grid(len(panels))
    text = figures.short_labels(sorted(points["line"].unique()))
    for ax, (task, group, refs, i, n) in zip(axes, panels):
        data = points[points["task"] == task]
        where = data.groupby(["line", "env_step"])[x].mean()
        shown = where[where.index.get_level_values("line").isin(group)]
        lo_x, hi_x = float(shown.min()), float(max(shown.max(), 1))  # the panel's plotted range
        handles, texts, marks = [], [], 0
        for line in group:
            band = bands[(bands["task"] == task) & (bands["line"] == line)].sort_values("env_step")
            if band.empty:
                continue
            xs = where.loc[line].reindex(band["env_step"]).to_numpy(dtype=float)
            mark = band["how"].eq(bands_.RUNS_ONLY).any()
            marks += int(mark)
            mean, low, high = (band[c].to_numpy(dtype=float) for c in ("mean", "low", "high"))
            if line in refs:
                (handle,) = ax.plot([lo_x, hi_x], [mean[0], mean[0]], **looks.of(line, reference=True))
                nudge = 0.012 * (hi_x - lo_x) * sorted(refs & set(group)).index(line)  # bars side by side
                ax.errorbar(xs[0] + nudge, mean[0], yerr=[[mean[0] - low[0]], [high[0] - mean[0]]],
                            color=looks.colors[line], lw=1.0, capsize=3, fmt="none")
            else:
                (handle,) = ax.plot(xs, mean, marker="o", ms=2.5, **looks.of(line))
                ax.fill_between(xs, low, high, color=looks.colors[line], alpha=BAND_ALPHA, lw=0)
            handles.append(handle)
            named = line in refs and not text[line].endswith("(reference)")  # an ablation's cells may say it
            texts.append(text[line] + (" (reference)" if named else "")
                         + (f" {RUNS_ONLY_MARK}" if mark else ""))
        seeds = data[data["line"].isin(group)].groupby("line")["seed"].nunique()
        runs = f"{seeds.min()}-{seeds.max()} runs per line" if seeds.min() != seeds.max() else \
            f"{seeds.min()} runs per line"
        ax.set_title(f"{task}" + (f", panel {i + 1} of {n}" if n > 1 else "") + f" ({runs})", fontsize=11)
        ax.set_xlabel(X_LABELS.get(x, x))
        ax.set_ylabel(figures.METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.25)
        _legend(ax, handles, texts, marks)
    return fig


def sample_efficiency(points: pd.DataFrame, bands: pd.DataFrame, looks: Looks, metric: str = "normalized_score"):
    """Score against env steps (curve_panels)."""
    return curve_panels(points, bands, looks, "env_step", metric)


def score_against(points: pd.DataFrame, bands: pd.DataFrame, looks: Looks, x: str):
    """Diagnostics: score against wall-clock time (wall_s) or gradient steps (grad_step); each eval point is
    placed at its runs' mean x (curve_panels)."""
    return curve_panels(points, bands, looks, x)


def online_grad_steps(points: pd.DataFrame) -> pd.DataFrame:
    """points with `online_grad_step`: each eval's gradient steps after its run's first eval (env step 0). Why:
    families count their offline phase or not (IDQL's counter starts at its 20000 offline steps, DSRL's at 0), which
    put lines 20000 apart on one axis."""
    return points.assign(online_grad_step=points["grad_step"] - points.groupby("run_id")["grad_step"].transform("min"))


__all__ = ["curve_panels", "online_grad_steps", "sample_efficiency", "score_against"]
