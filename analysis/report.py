"""`mbench report SWEEP`: every figure and table for one sweep, from the results store alone.

Why: a researcher should get publication-ready comparisons without writing analysis code, and every report
should follow DESIGN's statistics rules the same way: `final` is the headline and `best` is labelled
optimistic, every cell shows its seeds and is flagged under 5, aggregates over tasks use rliable's IQM with
stratified-bootstrap CIs. The report is one folder: report.md and report.html link every figure (figures/)
and table (tables/, in Markdown, LaTeX booktabs and CSV). A section that cannot be made (too little data) is
replaced by a printed warning, listed again at the end of the report; the report itself never fails on data.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import (
    bands,
    bootstrap,
    curves,
    figures,
    gains,
    looks,
    ordering,
    origins,
    panels,
    score_table,
    stats,
    tables,
)
from analysis.data import (
    DIAGNOSTIC_PREFIXES,
    EVAL_METRICS,
    SCORE_METRIC,
    Notes,
    action_rows,
    align_to_grid,
    eval_points,
    line_label,
    load_sweep,
    per_action_ms,
    run_scores,
    timing_metadata,
)
from analysis.document import Document, save_table, section
from analysis.episodes import cell_flags, final_episodes, run_records

# The method whose lines the probability of improvement compares with every other method's lines. None: every
# pair of lines of two different methods, each as P(the line with the higher mean final score > the other).
TARGET_METHOD = None
BOOTSTRAP_REPS = 2000
CURVE_CAPTION = ("the mean over runs at each eval point; band: its 95% interval, a two-level percentile bootstrap "
                 "(runs, then each drawn run's episodes of that eval; lines marked ‡ resample runs only: no stored "
                 "episodes). Colour: family (method[variant]); line style: actor, solid for the method's product "
                 "where its runs record it. Thin flat lines are references evaluated once (no online phase), with "
                 f"their interval as one bar at their eval. At most {panels.MAX_LINES} lines a panel: a task "
                 "with more is split by family, each panel repeating the references.")


# --------------------------------------------------------------------------------------------- per-action
def action_component(actor: str, rows: pd.DataFrame) -> str | None:
    """The timing component that yields `actor`'s env actions: the act or plan rows whose `actor` column names
    it (from the timed component's metadata, never from its name). Several: the first by name."""
    mine = action_rows(rows)
    names = sorted(set(mine.loc[mine["actor"] == actor, "component"]))
    return names[0] if names else None


LATENCY_COLUMNS = ["task", "line", "score", "low", "high", "how", "latency_ms", "latency_low", "latency_high",
                   "runs", "timed_calls", "device", "component"]


def per_action_latency(timings: pd.DataFrame, scores: pd.DataFrame, notes: Notes,
                       cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (task, line): the final score with its interval, and the per-action latency over runs.

    A run's per-action latency is its act or plan row's p50 (over the row's timed calls, `reps`) for the line's
    actor (the rows whose `actor` is the line's actor), divided by the env actions one call yields
    (`actions_per_call`: a DP's executed chunk, a plan's replan_every), at the smallest batch measured, on the
    device most rows were timed on, eager rows where a run has compiled ones too. latency_ms is its median over
    the line's runs and latency_low/high its min and max over them; timed_calls the range of `reps`. The score
    (score, low, high, how) is the line's headline cell (`cells`: analysis.score_table.final_cells; two-level
    where its runs stored episodes, else over runs only; computed over runs only where not given). Rows
    without the metadata (store files older than schema 2) make the line's latency unknown: it is left out, and
    said."""
    if timings.empty or scores.empty:
        return pd.DataFrame(columns=LATENCY_COLUMNS)
    if cells is None:
        cells = score_table.final_cells(scores, pd.DataFrame(), pd.DataFrame())
    cell_of = cells.set_index(["line", "task"])
    timings = timing_metadata(timings)
    device = timings["device"].value_counts().index[0]
    if timings["device"].nunique() > 1:
        notes.warn(f"timings span devices {sorted(timings['device'].unique())}; the Pareto figure uses {device}")
    usable = timings[timings["device"] == device]
    usable = usable[usable["batch"] == usable["batch"].min()]
    if "compiled" in usable and usable["compiled"].fillna(False).astype(bool).any():
        usable = usable[~usable["compiled"].fillna(False).astype(bool)]
    records = []
    for (task, line), group in scores.groupby(["task", "line"]):
        actor = group["actor"].iloc[0]
        rows = usable[usable["run_id"].isin(group["run_id"])]
        component = action_component(actor, rows)
        if component is None:
            if len(rows) and rows["kind"].isna().any():
                notes.warn(f"{line} on {task}: per-action latency unknown (timing rows without kind/actor/"
                           "actions_per_call, from a store file older than schema 2); left out of the Pareto figure")
            else:
                notes.warn(f"{line} on {task}: no act or plan timing row for actor '{actor}'; left out of the "
                           "Pareto figure")
            continue
        acts = action_rows(rows)
        several = sorted(set(acts.loc[acts["actor"] == actor, "component"]))
        if len(several) > 1:
            notes.warn(f"{line} on {task}: components {several} all serve actor '{actor}'; the Pareto figure "
                       f"uses {component}")
        picked = rows[(rows["component"] == component) & (rows["actor"] == actor)]
        unknown = sorted(set(rows.loc[rows["kind"].isna(), "run_id"]) - set(picked["run_id"]))
        if unknown:
            notes.warn(f"{line} on {task}: {len(unknown)} run(s) have timing rows without metadata (store files "
                       "older than schema 2): their per-action latency is unknown and left out")
        picked = picked.assign(per_action=per_action_ms(picked)).dropna(subset=["per_action"])
        if picked.empty:
            notes.warn(f"{line} on {task}: per-action latency unknown (component {component} has no "
                       "actions_per_call); left out of the Pareto figure")
            continue
        per_run = picked.groupby("run_id")["per_action"].median()
        calls = pd.to_numeric(picked["reps"], errors="coerce") if "reps" in picked else pd.Series(dtype=float)
        cell = cell_of.loc[(line, task)]
        records.append({"task": task, "line": line, "score": float(cell["mean"]), "low": float(cell["low"]),
                        "high": float(cell["high"]),
                        "how": bands.RUNS_ONLY if bool(cell["seeds_only"]) else bands.TWO_LEVEL,
                        "latency_ms": float(per_run.median()), "latency_low": float(per_run.min()),
                        "latency_high": float(per_run.max()), "runs": len(per_run),
                        "timed_calls": (f"{calls.min():.0f}-{calls.max():.0f}" if calls.min() != calls.max()
                                        else f"{calls.min():.0f}") if calls.notna().any() else "unknown",
                        "device": device, "component": component})
    return pd.DataFrame(records, columns=LATENCY_COLUMNS)


# ------------------------------------------------------------------------------------------------- report
def poi_display(poi: pd.DataFrame, matrices: dict) -> pd.DataFrame:
    """The probability-of-improvement table as printed: a bootstrap interval that collapsed to a point (every pair
    of runs ordered the same way, so resampling cannot move it) is said to be degenerate, not printed as
    [1.000, 1.000]; with n and m runs there are only n·m pairs behind the estimate."""
    rows = []
    for r in poi.itertuples():
        n, m = matrices[r.x].shape[0], matrices[r.y].shape[0]
        if abs(r.high - r.low) < 5e-4:
            ci = f"degenerate: all {n}x{m} run pairs agree; not a 95% CI"
        else:
            ci = f"[{r.low:.3f}, {r.high:.3f}]"
        rows.append({"pair": r.pair, "P(x > y)": f"{r.estimate:.3f}", "95% CI": ci, "runs": f"{n} vs {m}"})
    return pd.DataFrame(rows)


def actors_table(lines: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per line (method[variant]/actor): whether the actor is its method's product, and how it picks its action at
    evaluation, as its runs recorded them ('not recorded': runs older than the record)."""
    rows = []
    mine = lines.merge(records, on="run_id", how="left") if not records.empty else lines.assign(product=None,
                                                                                               selection=None)
    for line, group in mine.groupby("line", sort=True):
        actor = group["actor"].iloc[0]
        rules = {str(s.get(actor)) for s in group["selection"] if isinstance(s, dict) and s.get(actor)}
        products = {p for p in group["product"] if isinstance(p, str)}
        rows.append({"line": line, "product": ("yes" if actor in products else "no") if products else "not recorded",
                     "action selection": "; ".join(sorted(rules)) or "not recorded"})
    return pd.DataFrame(rows, columns=["line", "product", "action selection"])


def tasks_table(records: pd.DataFrame, final: pd.DataFrame) -> pd.DataFrame:
    """Per task: its ceiling, the offline data's mean normalised return and the eval states, as the runs recorded
    them, and the episodes of a run's final eval."""
    rows = []
    for task, group in records.groupby("task", sort=True):
        ceilings = {(c.get("metric"), c.get("max")) for c in group["ceiling"] if isinstance(c, dict) and c}
        ceiling = "; ".join(f"return {m:g}" if k == "return" else "success" for k, m in sorted(ceilings)) or "unknown"
        data = pd.to_numeric(group["data_score"], errors="coerce").dropna()
        per_run = final[final["task"] == task].groupby(["run_id", "actor"]).size() if not final.empty else []
        rows.append({"task": task, "ceiling": ceiling,
                     "data score": f"{data.mean():.1f}" if len(data) else "not recorded",
                     "eval states": ", ".join(sorted({str(v) for v in group["eval_states"] if v})) or "not recorded",
                     "final episodes per run": ", ".join(str(v) for v in sorted(set(per_run))) or "none stored"})
    return pd.DataFrame(rows, columns=["task", "ceiling", "data score", "eval states", "final episodes per run"])


def write_report(store_root, sweep_id: str, out_dir, target: str | None = TARGET_METHOD,
                 reps: int = BOOTSTRAP_REPS, cell_reps: int = bootstrap.RESAMPLES, one_commit: bool = False) -> Path:
    """Write report.md and report.html (and figures/, tables/) for one sweep; return report.md's path.

    one_commit: refuse (origins.MixedOrigins, before anything is written) a sweep whose finished runs mix
    commits, ran from a dirty checkout or read different data under one dataset name (a reference report)."""
    out_dir = Path(out_dir)
    notes = Notes()
    sweep = load_sweep(store_root, sweep_id, notes)
    records = run_records(sweep.finished)
    if one_commit:
        origins.check_one_commit(records, sweep_id)
    doc = Document(f"Sweep report: {sweep_id}", out_dir)
    status = sweep.runs["status"].value_counts().to_dict() if not sweep.runs.empty else {}
    doc.para(f"Runs: {len(sweep.runs)} ({', '.join(f'{v} {k}' for k, v in sorted(status.items())) or 'none'}). "
             "Only finished runs are analysed. A line is method[variant]/actor. `final` (the last eval) is the "
             "headline and orders lines; `best` (the max over evals) is optimistic and printed beside it. "
             "Aggregates over tasks are rliable IQM with 95% stratified-bootstrap CIs over runs "
             f"({reps} reps).")
    if not records.empty:
        doc.para("Code and data of the finished runs: " + "; ".join(origins.origin_lines(records)) + ".")
        for problem in origins.mixing(records):
            notes.warn(f"not one commit's runs on one dataset: {problem}")
    if sweep.shared:
        doc.para("Settings shared by every line that has them, left out of the line names: "
                 + ", ".join(f"`{s}`" for s in sweep.shared) + ".")
    if sweep.sampling:
        doc.para("Every DP line samples its DP through `eval.sampler` at evaluation, except these, whose sampling "
                 "is their method (recorded by each run): "
                 + "; ".join(f"`{line}`: {how}" for line, how in sweep.sampling.items()) + ".")

    metric = SCORE_METRIC
    raw = eval_points(sweep.curves, metric)
    if raw.empty and not sweep.curves.empty:
        metric = "return"
        raw = eval_points(sweep.curves, metric)
        if not raw.empty:
            notes.warn("no normalized_score in the curves; the report uses raw returns")
    points = align_to_grid(raw, notes) if not raw.empty else raw
    if not raw.empty:
        # Wall-clock time and gradient steps of each aligned eval (of the run's own eval that it shows: a point
        # snapped onto the grid keeps its eval's time; one interpolated between two has none), for diagnostics.
        extra = raw[["run_id", "actor", "env_step", "wall_s", "grad_step"]].rename(columns={"env_step": "source_step"})
        points = points.merge(extra.astype({"source_step": float}), on=["run_id", "actor", "source_step"], how="left")
    scores = run_scores(points)

    # --- the runs' actors and tasks, as their records say
    final = final_episodes(sweep.episodes)
    # Each family one hue, each actor a line style (its product solid, as its runs record it).
    colors = looks.looks(points["line"], looks.family_products(records, points[["run_id", "line"]])) \
        if not points.empty else looks.looks([])
    if final.empty:
        notes.warn("no eval episodes in the store (runs older than store schema 3): the cells' intervals resample "
                   "runs only (marked " + score_table.FLAGS["seeds_only"] + ") and no cell can be checked for a "
                   "ceiling or for eval states that every run failed")
    doc.heading("Actors and tasks")
    with section(doc, notes, "actors and tasks"):
        if not points.empty:
            shown = actors_table(points[["run_id", "line", "actor"]].drop_duplicates(), records)
            doc.para("How each line's actor picks its action at evaluation, and whether it is its method's product "
                     "(what orders methods below):")
            doc.table(shown, shown.to_markdown(index=False, disable_numparse=True), index=False)
        shown = tasks_table(records, final)
        if not shown.empty:
            doc.para("Each task's ceiling (an episode at it scores the task's most), the offline data's mean "
                     "normalised return (where fine-tuning starts) and the eval states of its runs:")
            doc.table(shown, shown.to_markdown(index=False, disable_numparse=True), index=False)

    # --- the headline table: final scores with two-level intervals, best beside them
    doc.heading("Final score per method and task (headline; best beside it)")
    cells = pd.DataFrame()
    with section(doc, notes, "final-score table"):
        flags = cell_flags(final, records)
        cells = score_table.final_cells(scores, final, flags, cell_reps, metric)
        doc.para(score_table.legend(cell_reps))
        md = tables.markdown(score_table.wide(cells))
        tex = tables.latex(score_table.wide(cells, latex=True), f"Final {metric.replace('_', ' ')} with best beside it. "
                           + score_table.legend(cell_reps), "tab:final")
        doc.table(score_table.wide(cells), md)
        doc.links(save_table(out_dir, "final_scores", md, tex, cells))
    doc.heading("Ordering of methods: paired differences of product lines (final scores)")
    with section(doc, notes, "paired differences"):
        paired = ordering.paired_table(final, cells, ordering.product_lines(final, records), cell_reps, metric)
        if paired.empty:
            doc.para("_No two product lines share run seeds and stored eval episodes._")
        else:
            doc.para("mean(x) - mean(y) over the run seeds and eval states both met, 95% paired two-level bootstrap "
                     f"({cell_reps} resamples); x is the line with the higher mean final score.")
            md = paired.to_markdown(index=False, floatfmt=".1f")
            doc.table(paired, md, index=False)
            doc.links(save_table(out_dir, "paired_differences", md, None, paired))

    doc.heading("Gains: final against each line's own start and against the common start")
    with section(doc, notes, "gains"):
        table = gains.gains_table(sweep.episodes, final, points, records, cell_reps, metric)
        if table.empty:
            doc.para("_No stored final-eval episodes: no gains to compute._")
        else:
            doc.para(gains.legend(cell_reps))
            shown = gains.display(table)
            md = shown.to_markdown(index=False, disable_numparse=True)
            doc.table(shown, md, index=False)
            doc.links(save_table(out_dir, "gains", md, None, table))

    # --- curves
    doc.heading("Sample-efficiency curves")
    band_frame = pd.DataFrame(columns=bands.COLUMNS)
    with section(doc, notes, "curves"):
        band_frame = bands.curve_bands(points, sweep.episodes, metric, cell_reps)
        doc.figure(curves.sample_efficiency(points, band_frame, colors, metric), f"curves_{metric}",
                   f"{metric} per task against env steps: " + CURVE_CAPTION)
        for other in EVAL_METRICS:
            other_points = eval_points(sweep.curves, other) if other != metric else pd.DataFrame()
            if other != metric and not other_points.empty and other != "return":
                aligned = align_to_grid(other_points, Notes(echo=False))
                other_bands = bands.curve_bands(aligned, sweep.episodes, other, cell_reps)
                doc.figure(curves.sample_efficiency(aligned, other_bands, colors, other), f"curves_{other}",
                           f"{other} per task against env steps: " + CURVE_CAPTION)

    # --- aggregates over tasks
    doc.heading("Aggregates over tasks (rliable)")
    matrices, agg_tasks = stats.score_matrices(scores, "final", notes) if not scores.empty else ({}, [])
    matrices, too_few = stats.enough_runs(matrices)
    if too_few:
        doc.para(f"_Left out of the interval estimates, probabilities of improvement and performance profiles "
                 f"below (fewer than {stats.MIN_SEEDS} runs per task, where a bootstrap is degenerate): "
                 + ", ".join(f"{k} (n={n})" for k, n in sorted(too_few.items())) + "._")
    with section(doc, notes, "aggregate IQM curve"):
        fig, _ = figures.aggregate_curve(points, colors, notes, reps=reps)
        doc.figure(fig, "aggregate_iqm", "IQM score over all runs and tasks against env steps, 95% "
                   "stratified-bootstrap CI")
    with section(doc, notes, "interval estimates"):
        estimates = stats.interval_estimates(matrices, reps=reps) if matrices else pd.DataFrame()
        doc.para(f"Final scores over {len(agg_tasks)} task(s): {', '.join(agg_tasks) or 'none'}.")
        if not estimates.empty:
            md = estimates.to_markdown(index=False, floatfmt=".2f")
            doc.table(estimates.round(2), md, index=False)
            doc.links(save_table(out_dir, "interval_estimates", md, None, estimates))
            doc.figure(figures.interval_estimates(estimates, colors), "interval_estimates",
                       "Final-score IQM, median, mean and optimality gap (to 100), 95% stratified-bootstrap CIs")
    with section(doc, notes, "probability of improvement"):
        poi = stats.probability_of_improvement(matrices, target, reps=reps) if matrices else pd.DataFrame()
        if poi.empty and target:
            doc.para(f"_Probability of improvement: the sweep has no `{target}` line and a baseline to compare._")
        elif poi.empty:
            doc.para("_Probability of improvement: the sweep has no lines of two different methods to compare._")
        else:
            shown = poi_display(poi, matrices)
            md = shown.to_markdown(index=False, disable_numparse=True)
            doc.table(shown, md, index=False)
            doc.links(save_table(out_dir, "probability_of_improvement", md, None, poi))
            doc.figure(figures.probability_of_improvement(poi), "probability_of_improvement",
                       (f"Probability that {target} beats each baseline on a task (final score), 95% CI" if target
                        else "Probability that the first line of each pair (the one with the higher mean final "
                             "score) beats the second on a task, 95% CI"))
    with section(doc, notes, "performance profile"):
        if matrices:
            refs = panels.references(points) if not points.empty else set()
            doc.figure(figures.performance_profile(matrices, colors, reps=reps, refs=refs), "performance_profile",
                       "Fraction of runs with final score above tau, 95% CI")
        else:
            doc.para(f"_Performance profile: no line has {stats.MIN_SEEDS} or more runs per task._")

    # --- inference time
    doc.heading("Inference time")
    with section(doc, notes, "timing table"):
        timing = tables.timing_table(sweep.timings)
        md = tables.timing_markdown(timing)
        doc.table(timing, md, index=False)
        doc.links(save_table(out_dir, "inference_time", md, tables.timing_latex(timing), timing))
    with section(doc, notes, "Pareto figure"):
        frame = per_action_latency(sweep.timings, scores, notes, cells if not cells.empty else None)
        if frame.empty:
            doc.para("_No line has both a final score and a per-action timing._")
        else:
            calls = ", ".join(sorted(set(frame["timed_calls"])))
            doc.figure(figures.pareto(frame, colors), "pareto_score_latency",
                       f"Final score against per-action latency ({frame['device'].iloc[0]}, batch "
                       f"{int(sweep.timings['batch'].min())}), per task. Marker: the median over the line's "
                       "runs of each run's per-action latency (the p50 of its timing row over its "
                       f"{calls} timed calls, divided by the env actions one call yields); horizontal bar: the "
                       "min-max of that per-run latency over the runs (not an interval of the median, and not "
                       "the spread of single calls); vertical bar: the final score's 95% interval, as in the "
                       "headline table (two-level bootstrap over runs and their final-eval episodes; ‡ over runs "
                       "only). Dashed: the Pareto front.")

    # --- diagnostics
    doc.heading("Diagnostics")
    with section(doc, notes, "score against wall-clock and gradient steps"):
        doc.figure(curves.score_against(points, band_frame, colors, "wall_s"), "diagnostics_wallclock",
                   "Score against wall-clock time, each eval at its runs' mean time: " + CURVE_CAPTION)
        doc.figure(curves.score_against(curves.online_grad_steps(points), band_frame, colors, "online_grad_step"),
                   "diagnostics_gradsteps",
                   "Score against the gradient steps each run took after its first eval at env step 0 (each method "
                   "counts its own updates; offline steps are left out), each eval at its runs' mean step: "
                   + CURVE_CAPTION)
    rows_all = sweep.curves
    if not rows_all.empty:
        rows_all = rows_all.assign(line=[line_label(m, v, a) for m, v, a in
                                         zip(rows_all["method"], rows_all["variant"], rows_all["actor"])])
    for prefix in DIAGNOSTIC_PREFIXES:
        with section(doc, notes, f"{prefix} diagnostics"):
            rows = rows_all[rows_all["metric"].str.startswith(prefix)] if not rows_all.empty else rows_all
            if not rows.empty:
                name = prefix.strip("/")
                doc.figure(figures.metric_panels(rows, "env_step", colors=None), f"diagnostics_{name}",
                           f"{prefix}* metrics against env steps, mean and 95% CI over seeds")
    with section(doc, notes, "training losses"):
        rows = rows_all[~rows_all["metric"].isin(EVAL_METRICS)
                        & ~rows_all["metric"].str.startswith(DIAGNOSTIC_PREFIXES)] if not rows_all.empty else rows_all
        if not rows.empty:
            doc.figure(figures.metric_panels(rows, "grad_step"), "losses",
                       "Training losses and other training metrics against gradient steps, mean and 95% CI over seeds")

    doc.heading("Warnings")
    doc.bullets(notes.items or ["none"])
    return doc.write("report")


__all__ = ["action_component", "per_action_latency", "write_report"]
