"""`mbench report SWEEP`: every figure and table for one sweep, from the results store alone.

Why: a researcher should get publication-ready comparisons without writing analysis code, and every report
should follow DESIGN's statistics rules the same way: `final` is the headline and `best` is labelled
optimistic, every cell shows its seeds and is flagged under 5, aggregates over tasks use rliable's IQM with
stratified-bootstrap CIs. The report is one folder: report.md and report.html link every figure (figures/)
and table (tables/, in Markdown, LaTeX booktabs and CSV). A section that cannot be made (too little data) is
replaced by a printed warning, listed again at the end of the report; the report itself never fails on data.
"""
from __future__ import annotations

import argparse
import dataclasses
import html
import traceback
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from analysis import figures, stats, tables
from analysis.data import (
    DIAGNOSTIC_PREFIXES,
    EVAL_METRICS,
    SCORE_METRIC,
    Notes,
    align_to_grid,
    eval_points,
    line_label,
    load_sweep,
    per_action_ms,
    run_scores,
)

TARGET_METHOD = "modip"
BOOTSTRAP_REPS = 2000


# ------------------------------------------------------------------------------------------- the document
@dataclasses.dataclass
class Block:
    kind: str  # "h2", "h3", "p", "table", "figure", "list"
    text: str = ""
    md: str = ""
    html: str = ""
    path: str = ""
    items: tuple = ()


class Document:
    """Blocks that render both to Markdown and to HTML, so the two reports always say the same thing."""

    def __init__(self, title: str, out_dir: Path):
        self.title = title
        self.out_dir = out_dir
        self.blocks: list[Block] = []
        self.figures: list[Path] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Block(f"h{level}", text))

    def para(self, text: str) -> None:
        self.blocks.append(Block("p", text))

    def bullets(self, items) -> None:
        self.blocks.append(Block("list", items=tuple(items)))

    def table(self, frame: pd.DataFrame, md: str, index: bool = True) -> None:
        html_text = frame.to_html(index=index, border=0, na_rep="-") if not frame.empty else "<p><em>no data</em></p>"
        self.blocks.append(Block("table", md=md, html=html_text))

    def figure(self, fig, name: str, caption: str) -> Path:
        path = self.out_dir / "figures" / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(path)
        self.blocks.append(Block("figure", caption, path=str(path.relative_to(self.out_dir))))
        return path

    def links(self, files: dict[str, Path]) -> None:
        self.blocks.append(Block("p", " · ".join(f"[{k}]({p.relative_to(self.out_dir)})" for k, p in files.items()),
                                 html=" · ".join(f'<a href="{html.escape(str(p.relative_to(self.out_dir)))}">'
                                                 f"{html.escape(k)}</a>" for k, p in files.items())))

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind.startswith("h"):
                out += ["#" * int(b.kind[1]) + " " + b.text, ""]
            elif b.kind == "p":
                out += [b.text, ""]
            elif b.kind == "list":
                out += [f"- {item}" for item in b.items] + [""]
            elif b.kind == "table":
                out += [b.md, ""]
            elif b.kind == "figure":
                out += [f"![{b.text}]({b.path})", "", f"*{b.text}*", ""]
        return "\n".join(out)

    def html_page(self) -> str:
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            ("<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{padding:3px 8px;border-bottom:1px solid #ddd;"
             "text-align:right}img{max-width:100%}figcaption{font-style:italic;color:#444}</style>"),
            f"</head><body><h1>{html.escape(self.title)}</h1>",
        ]
        for b in self.blocks:
            if b.kind.startswith("h"):
                out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
            elif b.kind == "p":
                out.append(f"<p>{b.html or html.escape(b.text)}</p>")
            elif b.kind == "list":
                out.append("<ul>" + "".join(f"<li>{html.escape(str(i))}</li>" for i in b.items) + "</ul>")
            elif b.kind == "table":
                out.append(b.html)
            elif b.kind == "figure":
                out.append(f'<figure><a href="{html.escape(b.path)}"><img src="{html.escape(b.path)}" '
                           f'alt="{html.escape(b.text)}"></a><figcaption>{html.escape(b.text)}</figcaption></figure>')
        out.append("</body></html>")
        return "\n".join(out)

    def write(self, name: str = "report") -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        md_path = self.out_dir / f"{name}.md"
        md_path.write_text(self.markdown())
        (self.out_dir / f"{name}.html").write_text(self.html_page())
        return md_path


def save_table(out_dir: Path, name: str, md: str, tex: str | None = None, csv: pd.DataFrame | None = None):
    folder = out_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    files = {"Markdown": folder / f"{name}.md"}
    files["Markdown"].write_text(md + "\n")
    if tex is not None:
        files["LaTeX"] = folder / f"{name}.tex"
        files["LaTeX"].write_text(tex)
    if csv is not None:
        files["CSV"] = folder / f"{name}.csv"
        csv.to_csv(files["CSV"], index=False)
    return files


def section(doc: Document, notes: Notes, name: str):
    """Run one report section; a failure becomes a warning, not a crash."""

    class _Guard:
        def __enter__(self):
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc is None:
                return False
            plt.close("all")
            last = traceback.extract_tb(tb)[-1]
            notes.warn(f"{name} skipped: {type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})")
            doc.para(f"_{name} could not be made: {type(exc).__name__}: {exc}_")
            return True

    return _Guard()


# --------------------------------------------------------------------------------------------- per-action
def action_component(actor: str, components: set[str]) -> str | None:
    """The timing component that produces one action for `actor` (MPC plans; a DP denoises)."""
    candidates = ["plan"] if actor == "mpc" else []
    candidates += [f"{actor}_act", f"act_{actor}", "act", "dp_act" if actor == "dp" else "", "denoise", "sample",
                   "policy"]
    for name in candidates:
        if name and name in components:
            return name
    return None


def per_action_latency(timings: pd.DataFrame, scores: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """Per (task, line): mean final score and mean per-action p50 latency over runs, each with a 95% CI.
    A plan that executes `replan_every` actions counts as that many; a DP call counts as one decision."""
    if timings.empty or scores.empty:
        return pd.DataFrame(columns=["task", "line", "score", "score_ci", "latency_ms", "latency_ci", "device"])
    device = timings["device"].value_counts().index[0]
    if timings["device"].nunique() > 1:
        notes.warn(f"timings span devices {sorted(timings['device'].unique())}; the Pareto figure uses {device}")
    usable = timings[timings["device"] == device]
    usable = usable[usable["batch"] == usable["batch"].min()]
    records = []
    for (task, line), group in scores.groupby(["task", "line"]):
        actor = group["actor"].iloc[0]
        rows = usable[usable["run_id"].isin(group["run_id"])]
        component = action_component(actor, set(rows["component"]))
        if component is None:
            notes.warn(f"{line} on {task}: no per-action timing component; left out of the Pareto figure")
            continue
        latency = per_action_ms(rows[rows["component"] == component])
        score, score_ci, _ = stats.mean_ci(group["final"])
        lat, lat_ci, _ = stats.mean_ci(latency)
        records.append({"task": task, "line": line, "score": score, "score_ci": score_ci, "latency_ms": lat,
                        "latency_ci": lat_ci, "device": device, "component": component})
    return pd.DataFrame(records)


# ------------------------------------------------------------------------------------------------- report
def write_report(store_root, sweep_id: str, out_dir, target: str = TARGET_METHOD,
                 reps: int = BOOTSTRAP_REPS) -> Path:
    """Write report.md and report.html (and figures/, tables/) for one sweep; return report.md's path."""
    out_dir = Path(out_dir)
    notes = Notes()
    sweep = load_sweep(store_root, sweep_id, notes)
    doc = Document(f"Sweep report: {sweep_id}", out_dir)
    status = sweep.runs["status"].value_counts().to_dict() if not sweep.runs.empty else {}
    doc.para(f"Runs: {len(sweep.runs)} ({', '.join(f'{v} {k}' for k, v in sorted(status.items())) or 'none'}). "
             "Only finished runs are analysed. A line is method[variant]/actor. `final` (the last eval) is the "
             "headline; `best` (the max over evals) is optimistic. Per-cell intervals are 95% Student-t over "
             "seeds; aggregates over tasks are rliable IQM with 95% stratified-bootstrap CIs "
             f"({reps} reps). {tables.FLAG_NOTE}")

    metric = SCORE_METRIC
    raw = eval_points(sweep.curves, metric)
    if raw.empty and not sweep.curves.empty:
        metric = "return"
        raw = eval_points(sweep.curves, metric)
        if not raw.empty:
            notes.warn("no normalized_score in the curves; the report uses raw returns")
    points = align_to_grid(raw, notes) if not raw.empty else raw
    if not raw.empty:
        # Wall-clock time and gradient steps of each aligned eval, for the diagnostics.
        extra = raw[["run_id", "actor", "env_step", "wall_s", "grad_step"]]
        points = points.merge(extra, on=["run_id", "actor", "env_step"], how="left")
    scores = run_scores(points)
    colors = figures.palette(points["line"]) if not points.empty else {}

    # --- tables of final and best scores
    doc.heading("Final score per method and task (headline)")
    with section(doc, notes, "final-score table"):
        for which, title in (("final", "final"), ("best", "best (optimistic: max over evals)")):
            if which == "best":
                doc.heading("Best score per method and task (optimistic)")
            cells = tables.score_cells(scores, which)
            md = tables.markdown(tables.wide(cells))
            tex = tables.latex(tables.wide(cells, latex=True),
                               f"{title.capitalize()} {metric.replace('_', ' ')}: mean ± 95% CI over seeds "
                               f"(n seeds); {tables.FLAG} fewer than {stats.MIN_SEEDS} seeds", f"tab:{which}")
            doc.table(tables.wide(cells), md)
            doc.links(save_table(out_dir, f"{which}_scores", md, tex, cells))

    # --- curves
    doc.heading("Sample-efficiency curves")
    with section(doc, notes, "curves"):
        doc.figure(figures.sample_efficiency(points, metric, colors), f"curves_{metric}",
                   f"{metric} per task against env steps: mean over seeds, 95% CI band; one line per method and "
                   "actor (dashed: a line with one eval, no online phase)")
        for other in EVAL_METRICS:
            other_points = eval_points(sweep.curves, other) if other != metric else pd.DataFrame()
            if other != metric and not other_points.empty and other != "return":
                aligned = align_to_grid(other_points, Notes(echo=False))
                doc.figure(figures.sample_efficiency(aligned, other, figures.palette(aligned["line"])),
                           f"curves_{other}", f"{other} per task against env steps, mean and 95% CI over seeds")

    # --- aggregates over tasks
    doc.heading("Aggregates over tasks (rliable)")
    matrices, agg_tasks = stats.score_matrices(scores, "final", notes) if not scores.empty else ({}, [])
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
        if poi.empty:
            doc.para(f"_Probability of improvement: the sweep has no `{target}` line and a baseline to compare._")
        else:
            md = poi.to_markdown(index=False, floatfmt=".3f")
            doc.table(poi.round(3), md, index=False)
            doc.links(save_table(out_dir, "probability_of_improvement", md, None, poi))
            doc.figure(figures.probability_of_improvement(poi), "probability_of_improvement",
                       f"Probability that {target} beats each baseline on a task (final score), 95% CI")
    with section(doc, notes, "performance profile"):
        doc.figure(figures.performance_profile(matrices, colors, reps=reps), "performance_profile",
                   "Fraction of runs with final score above tau, 95% CI")

    # --- inference time
    doc.heading("Inference time")
    with section(doc, notes, "timing table"):
        timing = tables.timing_table(sweep.timings)
        md = tables.timing_markdown(timing)
        doc.table(timing, md, index=False)
        doc.links(save_table(out_dir, "inference_time", md, tables.timing_latex(timing), timing))
    with section(doc, notes, "Pareto figure"):
        frame = per_action_latency(sweep.timings, scores, notes)
        if frame.empty:
            doc.para("_No line has both a final score and a per-action timing._")
        else:
            doc.figure(figures.pareto(frame, colors), "pareto_score_latency",
                       f"Final score against per-action latency ({frame['device'].iloc[0]}, batch 1), per task; "
                       "bars are 95% CIs over seeds; dashed: the Pareto front")

    # --- diagnostics
    doc.heading("Diagnostics")
    with section(doc, notes, "score against wall-clock and gradient steps"):
        doc.figure(figures.score_against(points, "wall_s", colors), "diagnostics_wallclock",
                   "Score against wall-clock time (mean over seeds, 95% CI band)")
        doc.figure(figures.score_against(points, "grad_step", colors), "diagnostics_gradsteps",
                   "Score against gradient steps (mean over seeds, 95% CI band)")
    curves = sweep.curves
    if not curves.empty:
        curves = curves.assign(line=[line_label(m, v, a) for m, v, a in
                                     zip(curves["method"], curves["variant"], curves["actor"])])
    for prefix in DIAGNOSTIC_PREFIXES:
        with section(doc, notes, f"{prefix} diagnostics"):
            rows = curves[curves["metric"].str.startswith(prefix)] if not curves.empty else curves
            if not rows.empty:
                name = prefix.strip("/")
                doc.figure(figures.metric_panels(rows, "env_step", colors=None), f"diagnostics_{name}",
                           f"{prefix}* metrics against env steps, mean and 95% CI over seeds")
    with section(doc, notes, "training losses"):
        rows = curves[~curves["metric"].isin(EVAL_METRICS)
                      & ~curves["metric"].str.startswith(DIAGNOSTIC_PREFIXES)] if not curves.empty else curves
        if not rows.empty:
            doc.figure(figures.metric_panels(rows, "grad_step"), "losses",
                       "Training losses and other training metrics against gradient steps, mean and 95% CI over seeds")

    doc.heading("Warnings")
    doc.bullets(notes.items or ["none"])
    return doc.write("report")


# ---------------------------------------------------------------------------------------------------- CLI
def _root(args) -> str:
    from results.store import default_root

    return args.root or getattr(args, "store", None) or default_root()


def _cmd_report(args: argparse.Namespace) -> int:
    root = _root(args)
    out = Path(args.out) if args.out else Path(root) / "reports" / args.sweep
    path = write_report(root, args.sweep, out, target=args.target, reps=args.reps)
    print(f"report: {path} (and {path.with_suffix('.html')})")
    return 0


def add_cli(subparsers) -> None:
    """Add `report SWEEP [--out DIR]` (and, from analysis.ablate, `ablate SWEEP`) to the main CLI."""
    parser = subparsers.add_parser("report", help="figures and tables for one sweep, from the store")
    parser.add_argument("sweep", help="sweep id")
    parser.add_argument("--out", default=None, help="report folder (default <store>/reports/<sweep>)")
    parser.add_argument("--root", default=None, help="store folder (default: mbench --store)")
    parser.add_argument("--target", default=TARGET_METHOD, help="method compared with each baseline")
    parser.add_argument("--reps", type=int, default=BOOTSTRAP_REPS, help="bootstrap repetitions")
    parser.set_defaults(func=_cmd_report)
    from analysis import ablate

    ablate.add_cli(subparsers)
    from results import store

    if "store" not in subparsers.choices:
        store.add_cli(subparsers)


__all__ = ["action_component", "add_cli", "per_action_latency", "write_report"]
