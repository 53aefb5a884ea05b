"""`mbench ablate SWEEP`: the 2x2 report of MODIP's two claims, side by side.

Why: MODIP makes an inference-time claim (scoring plans with a terminal V(s) instead of Q(s, a ~ DP) removes a
denoising chain per sample: `modip.planner.terminal` v against q) and a training-time claim (policy-independent
critic targets avoid sampling the DP in every update: `modip.critic.target` indep against policy). Each claim
is only worth something if the speed-up does not cost score, so this report puts, per cell of the 2x2, the
score curves, the final score per actor, the per-action latency (timing component `plan`) and the training
time per update (component `update`) next to each other, with ratios to the MODIP cell (v, indep) and
bootstrap CIs. The cells come from each run's resolved config (config_json), not from its label.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from analysis import figures, stats, tables
from analysis.data import (
    SCORE_METRIC,
    Notes,
    align_to_grid,
    config_value,
    eval_points,
    flat_settings,
    load_sweep,
    per_action_ms,
    run_scores,
)
from analysis.report import Document, save_table, section

METHOD = "modip"
AXES = {"terminal": ("modip.planner.terminal", ("v", "q"), "v"), "target": ("modip.critic.target",
                                                                             ("indep", "policy"), "indep")}
REFERENCE = ("v", "indep")  # MODIP itself
LATENCY_COMPONENT = "plan"
UPDATE_COMPONENT = "update"
REFERENCE_METHOD = "bc_dp"


def cell_name(terminal: str, target: str) -> str:
    return f"terminal={terminal}, target={target}"


# Settings that differ between runs of one cell without making them different arms.
PER_RUN_KEYS = {"seed", "variant", "dataset_path"}


def assign_cells(runs: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """MODIP runs with their 2x2 cell read from config_json; a missing key means the default, with a warning.

    A run whose other settings differ from the MODIP cell's (e.g. a latency-matched q with fewer iterations)
    is its own cell, named by the 2x2 axes plus the settings that differ, so arms never pool silently."""
    modip = runs[runs["method"] == METHOD].copy()
    for axis, (key, allowed, default) in AXES.items():
        values = [config_value(c, key) for c in modip["config_json"]]
        if any(v is None for v in values):
            notes.warn(f"{sum(v is None for v in values)} {METHOD} run(s) lack {key} in config_json; "
                       f"taken as the default {default!r}")
        values = [default if v is None else str(v) for v in values]
        odd = sorted(set(values) - set(allowed))
        if odd:
            notes.warn(f"{key} values {odd} are outside the 2x2 ({'/'.join(allowed)}); shown as extra cells")
        modip[axis] = values
    modip["cell"] = [cell_name(a, b) for a, b in zip(modip["terminal"], modip["target"])]
    skip = PER_RUN_KEYS | {key for key, _, _ in AXES.values()}
    settings = [{k: v for k, v in flat_settings(c).items() if k not in skip and k.split(".")[-1] not in skip}
                for c in modip["config_json"]]
    reference = [s for s, c in zip(settings, modip["cell"]) if c == cell_name(*REFERENCE)] or settings
    keys = sorted(set().union(*settings)) if settings else []
    usual = {k: pd.Series([s.get(k) for s in reference]).mode(dropna=False).iloc[0] for k in keys}
    extra = []
    for cell, mine in zip(modip["cell"], settings):
        differ = [k for k in keys if mine.get(k) != usual[k]]
        extra.append(cell + "".join(f", {k.removeprefix(METHOD + '.')}={mine.get(k)}" for k in differ))
    split = sorted({e for e, c in zip(extra, modip["cell"]) if e != c})
    if split:
        notes.warn(f"cells beyond the 2x2, from settings other than the two axes: {split}")
    modip["cell"] = extra
    return modip


def timing_per_run(timings: pd.DataFrame, component: str) -> pd.DataFrame:
    """One p50 (ms) per run for a component, at the smallest batch measured (batch 1), per env action: a plan
    that executes `replan_every` actions is divided by it."""
    rows = timings[timings["component"] == component]
    if rows.empty:
        return pd.DataFrame(columns=["run_id", "ms", "device"])
    rows = rows[rows["batch"] == rows["batch"].min()].copy()
    rows["p50_ms"] = per_action_ms(rows)
    return rows.groupby("run_id", as_index=False).agg(ms=("p50_ms", "median"), device=("device", "first"))


def write_ablation(store_root, sweep_id: str, out_dir, reps: int = 2000) -> Path:
    """Write ablation.md and ablation.html (with figures/ and tables/) for one sweep; return the .md path."""
    out_dir = Path(out_dir)
    notes = Notes()
    sweep = load_sweep(store_root, sweep_id, notes)
    doc = Document(f"MODIP 2x2 ablation: {sweep_id}", out_dir)
    doc.para("Axes: `modip.planner.terminal` (v: plans end in V(s); q: in Q(s, a ~ DP), a denoising chain per "
             "sample) x `modip.critic.target` (indep: expectile V and Q toward r + γV; policy: Q toward "
             "r + γQ(s', a' ~ DP), sampling the DP in every update). Ratios are to the MODIP cell "
             f"({cell_name(*REFERENCE)}), with 95% bootstrap CIs; scores are final normalised scores, mean ± "
             f"95% t-CI over seeds. {tables.FLAG_NOTE}")
    cells = assign_cells(sweep.finished, notes) if not sweep.finished.empty else pd.DataFrame()
    if cells.empty:
        notes.warn(f"sweep {sweep_id!r} has no finished {METHOD} runs: nothing to ablate")
        doc.heading("Warnings")
        doc.bullets(notes.items)
        return doc.write("ablation")
    present = sorted(set(cells["cell"]))
    missing = [cell_name(a, b) for a in AXES["terminal"][1] for b in AXES["target"][1]
               if cell_name(a, b) not in present]
    if missing:
        notes.warn(f"2x2 cells without finished runs: {missing}")
    cell_of = dict(zip(cells["run_id"], cells["cell"]))

    raw = eval_points(sweep.curves, SCORE_METRIC)
    raw = raw[raw["method"].isin([METHOD, REFERENCE_METHOD])]
    points = align_to_grid(raw, notes) if not raw.empty else raw
    if not points.empty:
        points["cell"] = [cell_of.get(r, f"{REFERENCE_METHOD} (reference)") for r in points["run_id"]]
        points["line"] = [f"{c} / {a}" for c, a in zip(points["cell"], points["actor"])]
    scores = run_scores(points)
    if not scores.empty:
        scores["cell"] = [cell_of.get(r, f"{REFERENCE_METHOD} (reference)") for r in scores["run_id"]]

    # --- the summary table: score per actor, latency, update time, each with its ratio to the reference cell
    reference = cell_name(*REFERENCE)
    latency = timing_per_run(sweep.timings, LATENCY_COMPONENT)
    update = timing_per_run(sweep.timings, UPDATE_COMPONENT)
    latency["cell"] = latency["run_id"].map(cell_of)
    update["cell"] = update["run_id"].map(cell_of)
    records = []
    actors = sorted(scores.loc[scores["cell"].isin(present), "actor"].unique()) if not scores.empty else []
    for cell in present:
        record = {"cell": cell}
        for actor in actors:
            mine = scores[(scores["cell"] == cell) & (scores["actor"] == actor)]["final"]
            ref = scores[(scores["cell"] == reference) & (scores["actor"] == actor)]["final"]
            mean, half, n = stats.mean_ci(mine)
            record[f"score {actor}"] = tables.format_cell(mean, half, n, n < stats.MIN_SEEDS)
            record[f"score {actor} ratio"] = _ratio(mine, ref, reps)
        for label, frame in (("action latency ms", latency), ("update ms", update)):
            mine = frame.loc[frame["cell"] == cell, "ms"]
            ref = frame.loc[frame["cell"] == reference, "ms"]
            mean, half, n = stats.mean_ci(mine)
            record[label] = tables.format_cell(mean, half, n, n < stats.MIN_SEEDS) if n else "-"
            record[f"{label} ratio"] = _ratio(mine, ref, reps)
        records.append(record)
    summary = pd.DataFrame(records).set_index("cell")
    doc.heading("Summary: score, per-action latency and time per update")
    md = tables.markdown(summary)
    doc.table(summary, md)
    doc.links(save_table(out_dir, "ablation_summary", md, tables.latex(
        summary, "MODIP 2x2 ablation: final score per actor, per-action latency (plan p50 / replan_every, ms) "
        "and time per update (p50 ms), with ratios to terminal=v, target=indep (95% bootstrap CI)", "tab:ablation"),
        summary.reset_index()))
    if not sweep.timings.empty and sweep.timings["device"].nunique() > 1:
        notes.warn(f"timings span devices {sorted(sweep.timings['device'].unique())}: latency cells mix them")

    doc.heading("Score curves")
    with section(doc, notes, "ablation curves"):
        doc.figure(ablation_curves(points), "ablation_curves",
                   "Normalised score against env steps per task and actor, one line per 2x2 cell "
                   f"(and {REFERENCE_METHOD} as reference): mean over seeds, 95% CI band")
    doc.heading("Side by side")
    with section(doc, notes, "ablation side by side"):
        ref_scores = scores[~scores["cell"].isin(present)] if not scores.empty else None
        doc.figure(side_by_side(scores[scores["cell"].isin(present)] if not scores.empty else scores,
                                latency, update, ref_scores), "ablation_side_by_side",
                   "Per 2x2 cell: final score per actor, per-action latency (plan p50 / replan_every) and time "
                   f"per update; bars are means, whiskers 95% CIs over seeds; dashed: {REFERENCE_METHOD}'s mean")
    doc.heading("Warnings")
    doc.bullets(notes.items or ["none"])
    return doc.write("ablation")


def _ratio(numerator, denominator, reps: int) -> str:
    estimate, low, high = stats.ratio_ci(np.asarray(numerator, float), np.asarray(denominator, float), reps=reps)
    if not np.isfinite(estimate):
        return "-"
    return f"{estimate:.2f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) else f"{estimate:.2f}"


def ablation_curves(points: pd.DataFrame):
    if points.empty:
        return figures._empty("no score curves")
    panels = sorted({(t, a) for t, a in zip(points["task"], points["actor"])})
    colors = figures.palette(points["cell"])
    fig, axes = figures._grid(len(panels))
    for ax, (task, actor) in zip(axes, panels):
        data = points[(points["task"] == task) & (points["actor"] == actor)]
        for cell, rows in data.groupby("cell"):
            if rows["env_step"].nunique() == 1:
                figures._flat_line(ax, (points["env_step"].min(), points["env_step"].max()), rows["value"],
                                   colors[cell], cell)
            else:
                sns.lineplot(data=rows, x="env_step", y="value", color=colors[cell], errorbar=("ci", 95),
                             n_boot=1000, seed=0, ax=ax, legend=False)
        ax.set_title(f"{task}, actor {actor}")
        ax.set_xlabel(figures.ENV_STEPS_LABEL)
        ax.set_ylabel(figures.SCORE_LABEL)
    figures._figure_legend(fig, colors)
    return fig


def _short(cell: str) -> str:
    """A tick label: the axes' values on their own lines, e.g. 'v\nindep' or 'q\nindep\nplanner.iterations=1'."""
    return cell.replace("terminal=", "").replace("target=", "").replace(", ", "\n")


def side_by_side(scores: pd.DataFrame, latency: pd.DataFrame, update: pd.DataFrame,
                 reference: pd.DataFrame | None = None):
    """Bars per cell; `reference` (final scores of the reference method, per actor) is drawn as a dashed line."""
    actors = sorted(scores["actor"].unique()) if not scores.empty else []
    panels = [(f"final score, actor {a}", scores[scores["actor"] == a].rename(columns={"final": "v"}),
               figures.SCORE_LABEL, a) for a in actors]
    panels.append(("per-action latency (mpc)", latency.dropna(subset=["cell"]).rename(columns={"ms": "v"}),
                   "p50 latency (ms)", None))
    panels.append(("time per update", update.dropna(subset=["cell"]).rename(columns={"ms": "v"}),
                   "p50 time per update (ms)", None))
    cells = sorted(set(scores.get("cell", [])) | set(latency["cell"].dropna()) | set(update["cell"].dropna()))
    colors = figures.palette(cells)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, data, ylabel, actor) in zip(axes[0], panels):
        for i, cell in enumerate(cells):
            mean, half, n = stats.mean_ci(data.loc[data["cell"] == cell, "v"]) if not data.empty else (np.nan,) * 3
            if n:
                ax.bar(i, mean, color=colors[cell], yerr=np.nan_to_num(half), capsize=4)
        ax.set_xticks(range(len(cells)), [_short(c) for c in cells], fontsize=7)
        if actor is not None and reference is not None and not reference.empty:
            ref = reference.loc[reference["actor"] == actor, "final"]
            if len(ref):
                ax.axhline(ref.mean(), color="0.3", linestyle="--", linewidth=1.2)
                title = f"{title}\n(dashed: {REFERENCE_METHOD}, {ref.mean():.1f})"
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def _cmd_ablate(args: argparse.Namespace) -> int:
    from analysis.report import _root

    root = _root(args)
    out = Path(args.out) if args.out else Path(root) / "reports" / f"{args.sweep}-ablation"
    path = write_ablation(root, args.sweep, out, reps=args.reps)
    print(f"ablation report: {path} (and {path.with_suffix('.html')})")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("ablate", help="MODIP's 2x2 ablation report (terminal v/q x critic target)")
    parser.add_argument("sweep", help="sweep id")
    parser.add_argument("--out", default=None, help="report folder (default <store>/reports/<sweep>-ablation)")
    parser.add_argument("--root", default=None, help="store folder (default: mbench --store)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.set_defaults(func=_cmd_ablate)
