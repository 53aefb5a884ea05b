"""`mbench ablate SWEEP`: an ablation grid of one method, cell by cell: score, per-action latency, update time.

Why: an ablation asks whether a setting that saves inference or training time costs score. So this report puts,
per cell of the grid (one value of each axis), the score curves, the final score per actor, the per-action
latency of each actor and the training time per update and per env step next to each other, with ratios to
a baseline cell and bootstrap CIs, and draws reference methods (e.g. the policy every cell starts from) as
lines beside them.

What is ablated comes from the sweep file's `ablation:` section (analysis/ablation_spec.py), never from this
module; `mbench ablate NAME` finds it in `--sweep-file`, else in the sweep file its launches recorded, else in
`sweeps/NAME.yaml`. The cells and the per-run timings are analysis/ablation_cells.py's.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis import bands, bootstrap, curves, figures, score_table, stats, tables
from analysis.ablation_cells import assign_cells, latency_per_run, update_per_run
from analysis.ablation_spec import AblationSpec, find_ablation, parse_ablation
from analysis.data import SCORE_METRIC, UNKNOWN, Notes, align_to_grid, eval_points, load_sweep, run_scores
from analysis.document import Document, save_table, section
from analysis.episodes import final_episodes
from analysis.looks import looks


def write_ablation(store_root, sweep_id: str, out_dir, reps: int = 2000, spec: AblationSpec | dict | None = None,
                   sweep_file: str | Path | None = None) -> Path:
    """Write ablation.md and ablation.html (with figures/ and tables/) for one sweep; return the .md path.

    spec: an AblationSpec, or an `ablation:` section as a dict; None: read from `sweep_file`, else from the
    sweep file found for the sweep (find_ablation)."""
    if spec is None:
        spec = find_ablation(store_root, sweep_id, sweep_file)
    elif isinstance(spec, dict):
        spec = parse_ablation(spec)
    out_dir = Path(out_dir)
    notes = Notes()
    sweep = load_sweep(store_root, sweep_id, notes)
    method = spec.method
    doc = Document(f"{method} ablation: {sweep_id}", out_dir)
    axes_text = " x ".join(f"`{a.key}` ({'/'.join(a.values) if a.values else 'values from the runs'})"
                           for a in spec.axes)
    doc.para(f"Axes: {axes_text}. {spec.description + ' ' if spec.description else ''}Ratios are to the "
             f"baseline cell ({spec.baseline_cell()}), with 95% bootstrap CIs. Scores are final normalised scores: "
             f"the mean over runs [95% two-level percentile bootstrap: runs, then each drawn run's final-eval "
             f"episodes ({reps} resamples)], and their ratios resample the two cells the same way (paired where "
             f"they met the same seeds and states); {score_table.FLAGS['seeds_only']} marks a cell whose runs "
             "stored no episodes (over runs only). Latencies are p50 per env action at batch 1, update times p50 "
             "per update and per env step: mean ± 95% t-interval over runs, ratios by an independent bootstrap "
             f"over runs. {tables.FLAG_NOTE}")
    if spec.source:
        doc.para(f"Ablation section: {spec.source}.")
    cells = assign_cells(sweep.finished, notes, spec) if not sweep.finished.empty else pd.DataFrame()
    if cells.empty:
        notes.warn(f"sweep {sweep_id!r} has no finished {method} runs: nothing to ablate")
        doc.heading("Warnings")
        doc.bullets(notes.items)
        return doc.write("ablation")
    present = sorted(set(cells["cell"]))
    missing = [c for c in spec.grid_cells() if c not in present]
    if missing:
        notes.warn(f"ablation cells without finished runs: {missing}")
    baseline_cell = spec.baseline_cell()
    if baseline_cell not in present:
        notes.warn(f"the baseline cell ({baseline_cell}) has no finished runs: no ratios")
    cell_of = dict(zip(cells["run_id"], cells["cell"]))
    finished = sweep.finished
    reference_runs = finished[finished["method"].isin(spec.reference)] if not finished.empty else finished
    for ref in spec.reference:
        if ref not in set(reference_runs["method"]):
            notes.warn(f"reference method {ref} has no finished runs in sweep {sweep_id!r}")
    cell_of.update({r: f"{m} (reference)" for r, m in zip(reference_runs["run_id"], reference_runs["method"])})

    raw = eval_points(sweep.curves, SCORE_METRIC)
    raw = raw[raw["run_id"].isin(list(cell_of))] if not raw.empty else raw
    points = align_to_grid(raw, notes) if not raw.empty else raw
    if not points.empty:
        points["cell"] = [cell_of[r] for r in points["run_id"]]
        points["line"] = [f"{c} / {a}" for c, a in zip(points["cell"], points["actor"])]
    scores = run_scores(points)
    if not scores.empty:
        scores["cell"] = [cell_of[r] for r in scores["run_id"]]
    episodes = sweep.episodes[sweep.episodes["run_id"].isin(list(cell_of))] if not sweep.episodes.empty \
        else sweep.episodes
    score_cells, final = _score_cells(scores, episodes, reps)

    # --- the summary table: score and latency per actor, update time, each with its ratio to the baseline cell
    timings = sweep.timings[sweep.timings["run_id"].isin(cells["run_id"])] if not sweep.timings.empty \
        else sweep.timings
    actors = sorted(scores.loc[scores["cell"].isin(present), "actor"].unique()) if not scores.empty else []
    latency = {}
    for actor in actors:
        frame = latency_per_run(timings, actor)
        frame["cell"] = frame["run_id"].map(cell_of)
        latency[actor] = frame
    unknown = sorted(set(timings.loc[timings["kind"].isna(), "run_id"])) if not timings.empty else []
    if unknown:
        notes.warn(f"{len(unknown)} run(s) have timing rows without metadata (store files older than schema 2): "
                   f"their latencies and update times are {UNKNOWN}")
    update = update_per_run(timings)
    update["cell"] = update["run_id"].map(cell_of)
    records = []
    for cell in present:
        record: dict[str, Any] = {"cell": cell}
        for actor in actors:
            mine = score_cells[score_cells["line"] == _key(cell, actor)]
            record[f"score {actor}"] = score_table.cell_text(next(mine.itertuples())) if len(mine) else "-"
            record[f"score {actor} ratio"] = _score_ratio(final, scores, cell, baseline_cell, actor, reps)
        columns = [(f"action latency ms {actor}", latency[actor], "ms") for actor in actors]
        columns += [("update ms", update, "ms"), ("update ms per env step", update, "ms_per_env_step")]
        for label, frame, column in columns:
            own = frame.loc[frame["cell"] == cell, column].dropna()
            ref = frame.loc[frame["cell"] == baseline_cell, column].dropna()
            mean, half, n = stats.mean_ci(own)
            record[label] = _timing_cell(mean, half, n, frame.loc[frame["cell"] == cell, column])
            record[f"{label} ratio"] = _ratio(own, ref, reps)
        records.append(record)
    summary = pd.DataFrame(records).set_index("cell")
    doc.heading("Summary: score, per-action latency and time per update")
    md = tables.markdown(summary)
    doc.table(summary, md)
    doc.links(save_table(out_dir, "ablation_summary", md, tables.latex(
        summary, f"{method} ablation: final score per actor, per-action latency per actor (p50 / actions per call, "
        f"ms) and time per update and per env step (p50 ms), with ratios to {baseline_cell} (95% bootstrap CI)",
        "tab:ablation"), summary.reset_index()))
    if not timings.empty and timings["device"].nunique() > 1:
        notes.warn(f"timings span devices {sorted(timings['device'].unique())}: latency cells mix them")

    refs = ", ".join(spec.reference)
    doc.heading("Score curves")
    with section(doc, notes, "ablation curves"):
        doc.figure(ablation_curves(points, episodes, reps), "ablation_curves",
                   "Normalised score against env steps per task and actor, one line per cell"
                   + (f" (and {refs} as reference)" if refs else "") + ": the mean over runs at each eval point; "
                   "band: its 95% two-level percentile bootstrap (runs, then each drawn run's episodes of that "
                   "eval; ‡ over runs only where no episodes are stored); a reference evaluated once is a thin flat "
                   "line with its interval as one bar")
    doc.heading("Side by side")
    with section(doc, notes, "ablation side by side"):
        ref_scores = scores[~scores["cell"].isin(present)] if not scores.empty else None
        doc.figure(side_by_side(scores[scores["cell"].isin(present)] if not scores.empty else scores,
                                latency, update, ref_scores, n_axes=len(spec.axes), score_cells=score_cells),
                   "ablation_side_by_side",
                   "Per cell: final score per actor (bar: mean over runs; whisker: its 95% two-level bootstrap "
                   "interval, as in the summary), per-action latency per actor and time per update (bar: mean; "
                   "whisker: 95% t-interval over runs)" + (f"; dashed: the reference methods' means ({refs})"
                                                           if refs else ""))
    doc.heading("Warnings")
    doc.bullets(notes.items or ["none"])
    return doc.write("ablation")


def _timing_cell(mean: float, half: float, n: int, values: pd.Series) -> str:
    if n:
        return tables.format_cell(mean, half, n, n < stats.MIN_SEEDS)
    return UNKNOWN if len(values) else "-"


def _key(cell: str, actor: str) -> str:
    return f"{cell} / {actor}"


def _score_cells(scores: pd.DataFrame, episodes: pd.DataFrame, reps: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per (cell, actor) (its line: _key): the final score's mean and two-level interval from the runs' final
    episodes, else over the runs alone (analysis.score_table.final_cells); and the final episodes, keyed alike."""
    if scores.empty:
        return pd.DataFrame(columns=score_table.COLUMNS), pd.DataFrame()
    keyed = scores.assign(line=[_key(c, a) for c, a in zip(scores["cell"], scores["actor"])], task="")
    final = final_episodes(episodes)
    if not final.empty:
        cell = dict(zip(scores["run_id"], scores["cell"]))
        final = final[final["run_id"].isin(list(cell))]
        final = final.assign(line=[_key(cell[r], a) for r, a in zip(final["run_id"], final["actor"])])
    return score_table.final_cells(keyed, final, pd.DataFrame(), reps, SCORE_METRIC), final


def _score_ratio(final: pd.DataFrame, scores: pd.DataFrame, cell: str, baseline: str, actor: str, reps: int) -> str:
    """The ratio of a cell's final score to the baseline cell's, with its two-level interval (over runs only
    where either cell's runs stored no episodes)."""
    def eps_of(name):
        runs = scores[(scores["cell"] == name) & (scores["actor"] == actor)]
        mine = final[final["line"] == _key(name, actor)] if not final.empty else final
        if runs.empty:
            return runs, runs
        return runs, mine if not mine.empty and set(mine["run_id"]) == set(runs["run_id"]) else pd.DataFrame()

    (x_runs, x), (y_runs, y) = eps_of(cell), eps_of(baseline)
    if x_runs.empty or y_runs.empty:
        return "-"
    if x.empty or y.empty:
        x, y = bootstrap.runs_as_episodes(x_runs, "final"), bootstrap.runs_as_episodes(y_runs, "final")
    r = bootstrap.ratio(x, y, SCORE_METRIC, reps)
    if not np.isfinite(r["ratio"]):
        return "-"
    return f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]" if np.isfinite(r["low"]) else f"{r['ratio']:.2f}"


def _ratio(numerator, denominator, reps: int) -> str:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if not len(numerator) or not len(denominator):
        return "-"
    estimate, low, high = stats.ratio_ci(numerator, denominator, reps=reps)
    if not np.isfinite(estimate):
        return "-"
    return f"{estimate:.2f} [{low:.2f}, {high:.2f}]" if np.isfinite(low) else f"{estimate:.2f}"


def ablation_curves(points: pd.DataFrame, episodes: pd.DataFrame | None = None, reps: int = bootstrap.RESAMPLES):
    """Score against env steps, one panel per (task, actor) (split by cell beyond analysis.panels.MAX_LINES
    lines), one line per cell; references evaluated once are thin flat lines (analysis/curves.py)."""
    if points.empty:
        return figures._empty("no score curves")
    panel = points.assign(task=[f"{t}, actor {a}" for t, a in zip(points["task"], points["actor"])],
                          line=points["cell"])
    band = bands.curve_bands(panel, episodes if episodes is not None else pd.DataFrame(), SCORE_METRIC, reps)
    return curves.curve_panels(panel, band, looks(panel["line"]))


def _short(cell: str, n_axes: int) -> str:
    """A tick label: the axes' values on their own lines, then any other setting that splits the cell, e.g.
    'v\\nindep' or 'q\\nindep\\nplanner.iterations=1'. A reference method's cell is kept whole."""
    parts = cell.split(", ")
    if "=" not in parts[0]:
        return cell
    return "\n".join([p.split("=", 1)[1] for p in parts[:n_axes]] + parts[n_axes:])


def side_by_side(scores: pd.DataFrame, latency: dict[str, pd.DataFrame] | pd.DataFrame, update: pd.DataFrame,
                 reference: pd.DataFrame | None = None, n_axes: int = 2, score_cells: pd.DataFrame | None = None):
    """Bars per cell: final score per actor, per-action latency per actor, time per update. `reference` (final
    scores of the reference methods, with their cell '<method> (reference)') is drawn as dashed lines on the
    score panel of the same actor. A score bar's whisker is its cell's interval in `score_cells` (_score_cells:
    two-level) where given, else a t-interval over runs, as the timing bars' are."""
    if isinstance(latency, pd.DataFrame):
        latency = {"": latency}
    actors = sorted(scores["actor"].unique()) if not scores.empty else []
    panels = [(f"final score, actor {a}", scores[scores["actor"] == a].rename(columns={"final": "v"}),
               figures.SCORE_LABEL, a) for a in actors]
    for actor, frame in latency.items():
        if frame["ms"].notna().any():
            panels.append((f"per-action latency{', actor ' + actor if actor else ''}",
                           frame.dropna(subset=["cell"]).rename(columns={"ms": "v"}), "p50 latency (ms)", None))
    panels.append(("time per update", update.dropna(subset=["cell"]).rename(columns={"ms": "v"}),
                   "p50 time per update (ms)", None))
    cells = sorted(set(scores.get("cell", [])) | {c for f in latency.values() for c in f["cell"].dropna()}
                   | set(update["cell"].dropna()))
    colors = figures.palette(cells)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False)
    for ax, (title, data, ylabel, actor) in zip(axes[0], panels):
        for i, cell in enumerate(cells):
            mean, half, n = stats.mean_ci(data.loc[data["cell"] == cell, "v"]) if not data.empty else (np.nan,) * 3
            whisker = np.nan_to_num(half)
            known = score_cells[score_cells["line"] == _key(cell, actor)] if actor is not None and \
                score_cells is not None and not score_cells.empty else pd.DataFrame()
            if len(known):
                mean, lo, hi = (float(known.iloc[0][c]) for c in ("mean", "low", "high"))
                whisker = [[max(mean - lo, 0.0)], [max(hi - mean, 0.0)]]
            if n:
                ax.bar(i, mean, color=colors[cell], yerr=whisker, capsize=4)
        ax.set_xticks(range(len(cells)), [_short(c, n_axes) for c in cells], fontsize=7)
        if actor is not None and reference is not None and not reference.empty:
            mine = reference[reference["actor"] == actor]
            styles = itertools.cycle(["--", ":", "-."])
            for ref_cell, rows in mine.groupby("cell"):
                ax.axhline(rows["final"].mean(), color="0.3", linestyle=next(styles), linewidth=1.2)
                title = f"{title}\n({ref_cell.removesuffix(' (reference)')}: {rows['final'].mean():.1f})"
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


__all__ = ["write_ablation"]
