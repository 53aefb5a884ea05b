"""Figures for reports: sample-efficiency curves, rliable aggregates, Pareto and diagnostics.

Why: a reader compares methods by eye before reading any number, so each figure answers one question with
the statistics DESIGN asks for (mean and 95% CI over seeds; IQM with stratified-bootstrap CIs over tasks),
and says its units on its axes. Every function returns a matplotlib Figure (tests inspect its artists) and
never shows it; callers save and close. Lines are keyed by `line` = method[variant]/actor, and one palette
maps each line to the same colour in every figure.
"""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from rliable import plot_utils

from analysis import stats

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
    lines = sorted(set(lines))
    n = max(len(lines), 1)
    colors = sns.color_palette("colorblind" if n <= 10 else "tab20", n)  # colorblind has 10 distinct colours
    return {line: colors[i % len(colors)] for i, line in enumerate(lines)}


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


def _figure_legend(fig, colors: dict, title: str | None = None) -> None:
    """A legend above the panels, with as many columns as the figure's width holds for its longest entry."""
    handles = [plt.Line2D([0], [0], color=c, lw=2) for c in colors.values()]
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


def _flat_line(ax, x_range, values, color, label):
    """A line with one eval (no online phase) is a reference: drawn flat across the panel with its CI band."""
    mean, half, _ = stats.mean_ci(values)
    xs = np.array(x_range, dtype=float)
    ax.plot(xs, [mean, mean], color=color, ls="--", lw=1.5, label=label)
    if np.isfinite(half):
        ax.fill_between(xs, mean - half, mean + half, color=color, alpha=0.2, lw=0)


def sample_efficiency(points: pd.DataFrame, metric: str = "normalized_score", colors: dict | None = None):
    """One panel per task; one line per method x actor: mean over seeds, seaborn's 95% bootstrap CI band."""
    if points.empty:
        return _empty(f"no {metric} evals to plot")
    colors = colors or palette(points["line"])
    tasks = sorted(points["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        data = points[points["task"] == task]
        x_range = (data["env_step"].min(), max(data["env_step"].max(), 1))
        n_steps = data.groupby("line")["env_step"].nunique()
        for line in sorted(data["line"].unique()):
            rows = data[data["line"] == line]
            if n_steps[line] == 1:
                _flat_line(ax, x_range, rows["value"], colors[line], line)
            else:
                sns.lineplot(data=rows, x="env_step", y="value", color=colors[line], label=line,
                             errorbar=("ci", 95), n_boot=1000, seed=0, ax=ax, legend=False)
        seeds = data.groupby("line")["seed"].nunique()
        ax.set_title(f"{task} (seeds per line: {seeds.min()}-{seeds.max()})" if seeds.min() != seeds.max()
                     else f"{task} ({seeds.min()} seeds per line)")
        ax.set_xlabel(ENV_STEPS_LABEL)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    _figure_legend(fig, {k: v for k, v in colors.items() if k in set(points["line"])})
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


def aggregate_curve(points: pd.DataFrame, colors: dict, notes=None, reps: int = 2000):
    """IQM over all runs and tasks at each step, with stratified-bootstrap 95% CIs (rliable)."""
    if points.empty:
        return _empty("no evals to aggregate"), None
    arrays, xs, x_label = aggregate_arrays(points, notes)
    if not arrays:
        return _empty("no line has complete curves on every task"), None
    estimates = stats.aggregate_curve(arrays, reps=reps)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for line, (mid, low, high) in estimates.items():
        ax.plot(xs, mid, color=colors[line], label=line, lw=2)
        ax.fill_between(xs, low, high, color=colors[line], alpha=0.2, lw=0)
    n_tasks = next(iter(arrays.values())).shape[1]
    ax.set_title(f"IQM over {n_tasks} task(s), 95% stratified-bootstrap CI")
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"IQM {SCORE_LABEL}")
    _figure_legend(fig, {k: colors[k] for k in estimates})
    return fig, estimates


def interval_estimates(table: pd.DataFrame, colors: dict):
    """rliable's interval-estimate plot: IQM, median, mean and optimality gap of final scores."""
    if table.empty:
        return _empty("no final scores")
    names = list(dict.fromkeys(table["metric"]))
    lines = list(dict.fromkeys(table["line"]))
    points = {ln: table[table["line"] == ln].set_index("metric").loc[names, "estimate"].to_numpy() for ln in lines}
    cis = {ln: table[table["line"] == ln].set_index("metric").loc[names, ["low", "high"]].to_numpy().T
           for ln in lines}
    short = short_labels(lines)  # the tick labels: what differs between the lines
    points, cis = {short[k]: v for k, v in points.items()}, {short[k]: v for k, v in cis.items()}
    fig, _ = plot_utils.plot_interval_estimates(points, cis, metric_names=names,
                                                algorithms=[short[ln] for ln in lines],
                                                colors={short[ln]: colors[ln] for ln in lines},
                                                xlabel=f"final {SCORE_LABEL}", subfigure_width=3.6,
                                                row_height=0.5, xlabel_y_coordinate=-0.32)
    fig.suptitle("Final score: point estimates and 95% stratified-bootstrap CIs", y=1.12 + 0.02 * len(lines))
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


def performance_profile(matrices: dict, colors: dict, reps: int = 2000):
    """Fraction of runs whose final score exceeds tau, with 95% CIs (rliable)."""
    if not matrices:
        return _empty("no final scores")
    top = max(float(np.nanmax(m)) for m in matrices.values())
    low = min(0.0, min(float(np.nanmin(m)) for m in matrices.values()))
    taus = np.linspace(low, max(top, 1.0) * 1.02, 81)
    profiles, cis = stats.performance_profiles(matrices, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax,
                                         colors={k: colors[k] for k in profiles},
                                         xlabel=f"final {SCORE_LABEL} threshold tau",
                                         ylabel="fraction of runs with score > tau")
    ax.set_title("Performance profile, 95% CI")
    _figure_legend(fig, {k: colors[k] for k in profiles})
    return fig


def pareto(frame: pd.DataFrame, colors: dict):
    """Final score against per-action latency, one panel per task; the dashed line is the Pareto front
    (no other line is both faster and better). frame: task, line, score, score_ci, latency_ms, latency_ci."""
    if frame.empty:
        return _empty("no lines have both a final score and a per-action timing")
    tasks = sorted(frame["task"].unique())
    fig, axes = _grid(len(tasks))
    for ax, task in zip(axes, tasks):
        data = frame[frame["task"] == task].sort_values("latency_ms")
        for row in data.itertuples():
            ax.errorbar(row.latency_ms, row.score, xerr=np.nan_to_num(row.latency_ci),
                        yerr=np.nan_to_num(row.score_ci), fmt="o", color=colors[row.line], capsize=3, ms=7)
        front, best = [], -np.inf
        for row in data.itertuples():
            if row.score > best:
                front.append((row.latency_ms, row.score))
                best = row.score
        if len(front) > 1:
            fx, fy = zip(*front)
            ax.step(fx, fy, where="post", color="grey", ls="--", lw=1)
        if (data["latency_ms"] > 0).all() and data["latency_ms"].max() / max(data["latency_ms"].min(), 1e-9) > 20:
            ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel(LATENCY_LABEL)
        ax.set_ylabel(f"final {SCORE_LABEL}")
    _figure_legend(fig, {k: colors[k] for k in sorted(frame["line"].unique())})
    return fig


def score_against(points: pd.DataFrame, x: str, colors: dict):
    """Diagnostics: the score curve against wall-clock time or gradient steps instead of env steps.

    Each line is the mean over seeds at each grid step, placed at the seeds' mean x; the band is the 95%
    t-interval of the score over seeds.
    """
    if points.empty or x not in points.columns:
        return _empty(f"no evals with {x}")
    tasks = sorted(points["task"].unique())
    fig, axes = _grid(len(tasks))
    label = WALL_LABEL if x == "wall_s" else GRAD_STEPS_LABEL
    for ax, task in zip(axes, tasks):
        data = points[points["task"] == task]
        for line, rows in data.groupby("line"):
            summary = rows.groupby("env_step").agg(x=(x, "mean"), values=("value", list)).sort_values("x")
            cis = [stats.mean_ci(v) for v in summary["values"]]
            mean = np.array([c[0] for c in cis])
            half = np.nan_to_num(np.array([c[1] for c in cis]))
            ax.plot(summary["x"], mean, color=colors[line], lw=2, marker="." if len(mean) == 1 else None)
            ax.fill_between(summary["x"], mean - half, mean + half, color=colors[line], alpha=0.2, lw=0)
        ax.set_title(task)
        ax.set_xlabel(label)
        ax.set_ylabel(SCORE_LABEL)
    _figure_legend(fig, {k: colors[k] for k in sorted(points["line"].unique())})
    return fig


def metric_panels(rows: pd.DataFrame, x: str, colors: dict | None = None, max_panels: int = 12, bins: int = 60):
    """One panel per metric (world-model error, V calibration, plan gap, losses), one line per method
    [variant][/actor], mean and 95% CI over seeds. Dense x (losses) is averaged into `bins` bins per run."""
    if rows.empty:
        return _empty("no rows")
    metrics_ = sorted(rows["metric"].unique())[:max_panels]
    colors = colors or palette(rows["line"])
    fig, axes = _grid(len(metrics_))
    for ax, metric in zip(axes, metrics_):
        data = rows[rows["metric"] == metric]
        if data[x].nunique() > bins:
            edges = np.linspace(data[x].min(), data[x].max(), bins + 1)
            centers = (edges[:-1] + edges[1:]) / 2
            data = data.assign(**{x: centers[np.clip(np.digitize(data[x], edges) - 1, 0, bins - 1)]})
            data = data.groupby(["line", "run_id", x], as_index=False)["value"].mean()
        for line, part in data.groupby("line"):
            sns.lineplot(data=part, x=x, y="value", color=colors.get(line), errorbar=("ci", 95), n_boot=200,
                         seed=0, ax=ax, legend=False)
        ax.set_title(metric)
        ax.set_xlabel(ENV_STEPS_LABEL if x == "env_step" else GRAD_STEPS_LABEL)
        ax.set_ylabel(_metric_unit(metric))
    _figure_legend(fig, {k: colors[k] for k in sorted(rows["line"].unique()) if k in colors})
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
