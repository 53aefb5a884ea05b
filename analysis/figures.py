"""Figures for reports: rliable aggregates, score against latency (Pareto), diagnostics; the shared pieces.

Why: a reader compares methods by eye before reading any number, so each figure answers one question with
the statistics DESIGN asks for (per-cell intervals from analysis/bootstrap.py; IQM with stratified-bootstrap
CIs over tasks), and says its units on its axes. Every function returns a matplotlib Figure (tests inspect its
artists) and never shows it; callers save and close. Lines are keyed by `line` = method[variant]/actor and look
the same in every figure (analysis/looks.py: one hue per family, one line style or marker per actor). The score
curves are analysis/curves.py's.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from rliable import plot_utils

from analysis import bands, panels, stats
from analysis.looks import Looks, looks

SCORE_LABEL = "normalized score (0-100)"
ENV_STEPS_LABEL = "environment steps"
GRAD_STEPS_LABEL = "gradient steps"
WALL_LABEL = "wall-clock time (s)"
LATENCY_LABEL = "per-action latency, p50 (ms)"
METRIC_LABELS = {
    "normalized_score": SCORE_LABEL,
    "return": "episode return (reward units)",
    "success": "success rate (fraction of episodes)",
}


def palette(lines) -> dict:
    """{line: colour}: one hue per family (analysis/looks.py)."""
    return looks(lines).colors


def as_looks(given, lines) -> Looks:
    """`given` as Looks: Looks as is; a {line: colour} dict keeps its colours, with each actor's style."""
    if isinstance(given, Looks):
        return given
    made = looks(lines)
    return Looks({**made.colors, **(given or {})}, made.styles, made.markers) if given else made


def _grid(n_panels: int, width: float = 4.2, height: float = 3.2, ncols: int = 3):
    ncols = max(1, min(ncols, n_panels))
    nrows = int(np.ceil(n_panels / ncols)) if n_panels else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[n_panels:]:
        ax.set_visible(False)
    return fig, flat[:n_panels]


def short_labels(labels) -> dict[str, str]:
    """Legend text for line labels `method[k=v,...]/actor`: settings that every bracketed label shares (e.g. a
    preset) are dropped, and a key's method prefix (`<method>.planner.x` -> `planner.x`) is cut, so a legend of
    variants names only what differs between them. Labels without brackets are kept as they are."""
    parsed = {}
    for label in labels:
        head, sep, rest = str(label).partition("[")
        if not sep or "]" not in rest:
            parsed[label] = None
            continue
        variant, _, tail = rest.rpartition("]")
        parsed[label] = (head, variant.split(","), tail)
    bracketed = [p for p in parsed.values() if p is not None]
    common = set.intersection(*(set(p[1]) for p in bracketed)) if len(bracketed) > 1 else set()
    out = {}
    for label, p in parsed.items():
        if p is None:
            out[label] = str(label)
            continue
        head, parts, tail = p
        kept = [part.removeprefix(f"{head}.") for part in parts if part not in common]
        out[label] = f"{head}[{','.join(kept)}]{tail}" if kept else f"{head}{tail}"
    if len(set(out.values())) < len(out):  # shortening must never merge two lines
        return {str(k): str(k) for k in labels}
    return out


def _figure_legend(fig, colors: dict, title: str | None = None, styles: Looks | None = None) -> None:
    """A legend above the panels, with as many columns as the figure's width holds for its longest entry;
    `styles` gives each line its actor's line style (else solid)."""
    handles = [plt.Line2D([0], [0], color=c, lw=2, ls=styles.styles.get(k, "-") if styles else "-")
               for k, c in colors.items()]
    texts = list(short_labels(list(colors)).values())
    longest = max((len(t) for t in texts), default=1)
    fits = int(fig.get_figwidth() * 72 / (0.62 * 9 * longest + 40))  # ~0.62 em per character at 9 pt
    ncol = max(1, min(len(texts), 4, fits))
    rows = -(-len(texts) // ncol)
    fig.legend(handles, texts, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 1.0),
               title=title, fontsize=9)
    top = 0.2 * rows + (0.3 if title else 0.0) + 0.05  # inches the legend takes
    fig.set_figheight(fig.get_figheight() + top)  # the panels keep their height; the legend adds its own
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))


def _empty(message: str):
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def aggregate_arrays(points: pd.DataFrame, notes=None):
    """Per line: (runs x tasks x steps) arrays on a shared x axis, for the aggregate IQM curve.

    If every task has the same grid, x is env steps; otherwise x is the fraction of each task's grid (%).
    Lines with a single eval are held flat across the grid (no online phase). Runs that stop before the end
    of the grid are dropped, with a warning.
    """
    grids = {t: np.sort(g["env_step"].unique()) for t, g in points.groupby("task")}
    lengths = {len(g) for g in grids.values()}
    same = len({tuple(g) for g in grids.values()}) == 1
    if len(lengths) != 1:
        n = min(lengths)
        if notes is not None:
            notes.warn(f"task grids differ in length; the aggregate curve uses {n} points per task")
    n = min(lengths)
    xs = grids[next(iter(grids))][:n] if same else np.linspace(0, 100, n)
    x_label = ENV_STEPS_LABEL if same else "fraction of the env-step budget (%)"
    arrays = {}
    for line, rows in points.groupby("line"):
        per_task = []
        for task, grid in sorted(grids.items()):
            sub = rows[rows["task"] == task]
            if sub.empty:
                break
            idx = np.linspace(0, len(grid) - 1, n).round().astype(int) if not same else np.arange(n)
            table = sub.pivot_table(index="seed", columns="env_step", values="value")
            if table.shape[1] == 1:
                table = pd.DataFrame(np.repeat(table.to_numpy(), len(grid), axis=1), index=table.index,
                                     columns=grid)
            table = table.reindex(columns=grid)
            short = table.iloc[:, idx].isna().any(axis=1)
            if short.any() and notes is not None:
                notes.warn(f"{line} on {task}: {int(short.sum())} run(s) end before the grid does and are left "
                           "out of the aggregate curve")
            per_task.append(table[~short].iloc[:, idx].to_numpy())
        if len(per_task) != len(grids) or min(len(t) for t in per_task) == 0:
            if notes is not None:
                notes.warn(f"{line} lacks complete curves on some task; left out of the aggregate curve")
            continue
        runs = min(len(t) for t in per_task)
        arrays[line] = np.stack([t[:runs] for t in per_task], axis=1)
    return arrays, xs, x_label


def aggregate_curve(points: pd.DataFrame, colors, notes=None, reps: int = 2000):
    """IQM over all runs and tasks at each step, with stratified-bootstrap 95% CIs (rliable), in panels of at
    most panels.MAX_LINES lines. A reference (one eval, held flat) is a thin line with its CI as one bar.
    colors: Looks, or {line: colour}."""
    if points.empty:
        return _empty("no evals to aggregate"), None
    arrays, xs, x_label = aggregate_arrays(points, notes)
    if not arrays:
        return _empty("no line has complete curves on every task"), None
    estimates = stats.aggregate_curve(arrays, reps=reps)
    look = as_looks(colors, points["line"])
    refs = panels.references(points)
    groups = panels.panel_groups(list(estimates), refs)
    fig, axes = panels.panel_grid(len(groups))
    short = short_labels(list(estimates))
    n_tasks = next(iter(arrays.values())).shape[1]
    for i, (ax, group) in enumerate(zip(axes, groups)):
        handles = []
        for line in group:
            mid, low, high = estimates[line]
            (handle,) = ax.plot(xs, mid, **look.of(line, reference=line in refs))
            if line in refs:
                nudge = 0.012 * (xs[-1] - xs[0]) * sorted(refs & set(group)).index(line)  # bars side by side
                ax.errorbar(xs[0] + nudge, mid[0], yerr=[[mid[0] - low[0]], [high[0] - mid[0]]],
                            color=look.colors[line], lw=1.0, capsize=3, fmt="none")
            else:
                ax.fill_between(xs, low, high, color=look.colors[line], alpha=0.14, lw=0)
            handles.append(handle)
        ax.set_title(f"IQM over {n_tasks} task(s)" + (f", panel {i + 1} of {len(groups)}" if len(groups) > 1 else ""))
        ax.set_xlabel(x_label)
        ax.set_ylabel(f"IQM {SCORE_LABEL}")
        ax.grid(alpha=0.25)
        panels.panel_legend(ax, handles, [short[k] + (" (reference)" if k in refs else "") for k in group],
                            "IQM over runs and tasks; band: 95% stratified-bootstrap CI over runs")
    return fig, estimates


def interval_estimates(table: pd.DataFrame, colors):
    """rliable's interval-estimate plot: IQM, median, mean and optimality gap of final scores."""
    if table.empty:
        return _empty("no final scores")
    colors = as_looks(colors, table["line"]).colors
    names = list(dict.fromkeys(table["metric"]))
    lines = list(dict.fromkeys(table["line"]))
    points = {ln: table[table["line"] == ln].set_index("metric").loc[names, "estimate"].to_numpy() for ln in lines}
    cis = {ln: table[table["line"] == ln].set_index("metric").loc[names, ["low", "high"]].to_numpy().T
           for ln in lines}
    short = short_labels(lines)  # the tick labels: what differs between the lines
    height = 0.5 * len(lines)  # inches: rliable's row_height per line
    points, cis = {short[k]: v for k, v in points.items()}, {short[k]: v for k, v in cis.items()}
    fig, _ = plot_utils.plot_interval_estimates(points, cis, metric_names=names,
                                                algorithms=[short[ln] for ln in lines],
                                                colors={short[ln]: colors[ln] for ln in lines},
                                                xlabel=f"final {SCORE_LABEL}", subfigure_width=3.6,
                                                row_height=0.5, xlabel_y_coordinate=0.11 - 0.6 / height)
    # matplotlib's default axes span 0.11-0.88 of the figure's height: the title and x label sit just outside
    fig.suptitle("Final score: point estimates and 95% stratified-bootstrap CIs", y=0.88 + 0.65 / height)
    return fig


def probability_of_improvement(table: pd.DataFrame):
    """P(target > baseline) per pair, with 95% bootstrap CIs; 0.5 means no difference."""
    if table.empty:
        return _empty("no pairs to compare")
    fig, ax = plt.subplots(figsize=(6.5, 0.6 * len(table) + 1.5))
    ys = np.arange(len(table))
    est, low, high = (table[c].to_numpy(dtype=float) for c in ("estimate", "low", "high"))
    ax.errorbar(est, ys, xerr=[est - low, high - est], fmt="o", color="tab:blue", capsize=4)
    ax.axvline(0.5, color="grey", ls=":")
    short = short_labels([*table["x"], *table["y"]])
    ax.set_yticks(ys, [f"P({short[x]} > {short[y]})" for x, y in zip(table["x"], table["y"])])
    ax.set_xlim(0, 1)
    ax.set_xlabel("probability of improvement (0-1)")
    ax.set_title("Probability of improvement, final scores, 95% CI")
    fig.tight_layout()
    return fig


def performance_profile(matrices: dict, colors, reps: int = 2000, refs=()):
    """Fraction of runs whose final score exceeds tau, with 95% CIs (rliable), in panels of at most
    panels.MAX_LINES lines (families split in name order, every panel repeating the references `refs`)."""
    if not matrices:
        return _empty("no final scores")
    look = as_looks(colors, list(matrices))
    top = max(float(np.nanmax(m)) for m in matrices.values())
    low = min(0.0, min(float(np.nanmin(m)) for m in matrices.values()))
    taus = np.linspace(low, max(top, 1.0) * 1.02, 81)
    profiles, cis = stats.performance_profiles(matrices, taus, reps=reps)
    groups = panels.panel_groups(list(profiles), refs)
    fig, axes = panels.panel_grid(len(groups))
    short = short_labels(list(profiles))
    for i, (ax, group) in enumerate(zip(axes, groups)):
        plot_utils.plot_performance_profiles({k: profiles[k] for k in group}, taus,
                                             performance_profile_cis={k: cis[k] for k in group}, ax=ax,
                                             colors={k: look.colors[k] for k in group},
                                             linestyles={k: look.styles[k] for k in group},
                                             xlabel=f"final {SCORE_LABEL} threshold tau",
                                             ylabel="fraction of runs with score > tau", labelsize="medium",
                                             ticklabelsize="medium")
        ax.set_title("Performance profile" + (f", panel {i + 1} of {len(groups)}" if len(groups) > 1 else ""))
        handles = [plt.Line2D([0], [0], color=look.colors[k], ls=look.styles[k], lw=2) for k in group]
        panels.panel_legend(ax, handles, [short[k] for k in group], "band: 95% stratified-bootstrap CI over runs")
    return fig


PARETO_NOTE = (  # the legend's title: what every mark and bar of the Pareto figure is
    "marker: median over runs of each run's per-action latency (its timing row's p50 over its timed calls,\n"
    "    divided by the env actions one call yields); horizontal bar: min-max of it over runs\n"
    "vertical bar: 95% interval of the final score, a bootstrap over runs and their final-eval episodes\n"
    "    (‡: over runs only, no stored episodes); dashed: the Pareto front")


def pareto(frame: pd.DataFrame, colors):
    """Final score against per-action latency, one panel per task; the dashed line is the Pareto front (no other
    line is both faster and better). frame (analysis.report.per_action_latency): task, line, score, low, high,
    how, latency_ms, latency_low, latency_high. The legend's title says what every bar spans (PARETO_NOTE)."""
    if frame.empty:
        return _empty("no lines have both a final score and a per-action timing")
    look = as_looks(colors, frame["line"])
    tasks = sorted(frame["task"].unique())
    fig, axes = _grid(len(tasks), width=6.6, height=4.6, ncols=2)
    for ax, task in zip(axes, tasks):
        data = frame[frame["task"] == task].sort_values("latency_ms")
        for row in data.itertuples():
            xerr = [[max(row.latency_ms - row.latency_low, 0.0)], [max(row.latency_high - row.latency_ms, 0.0)]]
            yerr = [[max(row.score - row.low, 0.0)], [max(row.high - row.score, 0.0)]]
            ax.errorbar(row.latency_ms, row.score, xerr=np.nan_to_num(xerr), yerr=np.nan_to_num(yerr),
                        marker=look.markers[row.line], ls="none", color=look.colors[row.line], capsize=3, ms=7,
                        elinewidth=1.2)
        front, best = [], -np.inf
        for row in data.itertuples():
            if row.score > best:
                front.append((row.latency_ms, row.score))
                best = row.score
        if len(front) > 1:
            fx, fy = zip(*front)
            ax.step(fx, fy, where="post", color="grey", ls="--", lw=1)
        lows = data["latency_low"].where(data["latency_low"] > 0, data["latency_ms"])
        if (lows > 0).all() and data["latency_high"].max() / max(lows.min(), 1e-9) > 20:
            ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel(LATENCY_LABEL)
        ax.set_ylabel(f"final {SCORE_LABEL}")
        ax.grid(alpha=0.25)
    lines = sorted(frame["line"].unique())
    marked = set(frame.loc[frame["how"] == bands.RUNS_ONLY, "line"]) if "how" in frame else set()
    short = short_labels(lines)
    handles = [plt.Line2D([0], [0], color=look.colors[k], marker=look.markers[k], ls="none", ms=7) for k in lines]
    texts = [short[k] + (" ‡" if k in marked else "") for k in lines]
    ncol = max(1, min(len(lines), 3))
    rows = -(-len(lines) // ncol)
    legend = fig.legend(handles, texts, loc="upper center", ncol=ncol, frameon=False, bbox_to_anchor=(0.5, 1.0),
                        fontsize=9, title=PARETO_NOTE, title_fontsize=8)
    legend.get_title().set_multialignment("left")
    top = 0.22 * rows + 0.15 * (PARETO_NOTE.count("\n") + 1) + 0.15  # inches the legend and its title take
    fig.set_figheight(fig.get_figheight() + top)
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    return fig


def metric_panels(rows: pd.DataFrame, x: str, colors=None, max_panels: int = 12, bins: int = 60):
    """One panel per metric (world-model error, V calibration, plan gap, losses), one line per method
    [variant][/actor], mean and 95% CI over seeds. Dense x (losses) is averaged into `bins` bins per run."""
    if rows.empty:
        return _empty("no rows")
    metrics_ = sorted(rows["metric"].unique())[:max_panels]
    look = as_looks(colors, rows["line"])
    colors = look.colors
    fig, axes = _grid(len(metrics_))
    for ax, metric in zip(axes, metrics_):
        data = rows[rows["metric"] == metric]
        if data[x].nunique() > bins:
            edges = np.linspace(data[x].min(), data[x].max(), bins + 1)
            centers = (edges[:-1] + edges[1:]) / 2
            data = data.assign(**{x: centers[np.clip(np.digitize(data[x], edges) - 1, 0, bins - 1)]})
            data = data.groupby(["line", "run_id", x], as_index=False)["value"].mean()
        for line, part in data.groupby("line"):
            sns.lineplot(data=part, x=x, y="value", color=colors.get(line), ls=look.styles.get(line, "-"),
                         errorbar=("ci", 95), n_boot=200,
                         seed=0, ax=ax, legend=False)
        ax.set_title(metric)
        ax.set_xlabel(ENV_STEPS_LABEL if x == "env_step" else GRAD_STEPS_LABEL)
        ax.set_ylabel(_metric_unit(metric))
    _figure_legend(fig, {k: colors[k] for k in sorted(rows["line"].unique()) if k in colors}, styles=look)
    return fig


def _metric_unit(metric: str) -> str:
    if metric.startswith("wm/"):
        return "prediction error (model units)"
    if metric.startswith("v_calibration/"):
        return "V vs Monte-Carlo return"
    if metric.startswith("plan_gap/"):
        return "planned - realised return (reward units)"
    if metric.startswith("loss"):
        return "loss (objective units)"
    return "value (metric's own units)"
