"""Tables for reports: final and best scores per line x task, and inference times, in Markdown and LaTeX.

Why: tables are what papers quote, so every cell carries its number of seeds, cells under the 5-seed minimum
are flagged, and `best` (max over evals) is labelled optimistic, as DESIGN's statistics rules ask. The numeric
tables come back as DataFrames too, so tests can compare them with a direct computation.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import stats
from analysis.data import ACTION_KINDS, UNKNOWN, UPDATE_KIND, per_action_ms, per_env_step_ms, timing_metadata

FLAG = "†"
FLAG_NOTE = f"{FLAG} fewer than {stats.MIN_SEEDS} seeds: not enough for a reported comparison."


def score_cells(scores: pd.DataFrame, which: str) -> pd.DataFrame:
    """Long numeric table (line, task, mean, ci, n, flagged) of per-run `final` or `best` scores."""
    return stats.cell_table(scores, which, rows="line", cols="task")


def format_cell(mean: float, ci: float, n: int, flagged: bool, latex: bool = False) -> str:
    if n == 0 or not np.isfinite(mean):
        return "-"
    pm = r"$\pm$" if latex else "±"
    text = f"{mean:.1f} {pm} {ci:.1f}" if np.isfinite(ci) else f"{mean:.1f}"
    text += f" (n={n})"
    if flagged:
        text += r"$^\dagger$" if latex else f" {FLAG}"
    return text


def wide(cells: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    if cells.empty:
        return pd.DataFrame()
    formatted = cells.assign(text=[format_cell(r.mean, r.ci, r.n, r.flagged, latex) for r in cells.itertuples()])
    table = formatted.pivot(index="line", columns="task", values="text").fillna("-")
    table.index.name = "method / actor"
    table.columns.name = None
    return table


def markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no data_"
    return table.to_markdown()


def _tex(text) -> str:
    text = str(text)
    for char, repl in (("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#")):
        text = text.replace(char, repl)
    return text


def latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    if table.empty:
        return f"% {caption}: no data\n"
    cols = "l" + "c" * len(table.columns)
    head = " & ".join([_tex(table.index.name or "")] + [_tex(c) for c in table.columns]) + r" \\"
    body = []
    for index, row in table.iterrows():
        cells = [c if "$" in str(c) else _tex(c) for c in row]
        body.append(" & ".join([_tex(index), *cells]) + r" \\")
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}", rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{cols}}}", r"\toprule", head, r"\midrule", *body, r"\bottomrule",
        r"\end{tabular}", r"\end{table}", "",
    ])


TIMING_COLUMNS = ["method", "component", "kind", "actor", "device", "batch", "p50_ms", "p90_ms", "actions_per_call",
                  "per_action_p50_ms", "updates_per_env_step", "update_ms_per_env_step", "n_runs"]


def _meta_text(value, known: bool, applies: bool, fmt: str = "{:g}") -> str:
    """A metadata cell: its value, `unknown` where the row has no metadata (older store files), '-' where it
    does not apply (per-action cost of an update, updates per env step of an act)."""
    if not known:
        return UNKNOWN
    if not applies or value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "-"
    return fmt.format(value)


def timing_table(timings: pd.DataFrame) -> pd.DataFrame:
    """p50 and p90 latency (ms) per method [variant], component, device and batch: the median over runs of each
    run's own percentile, with the number of runs; and from each component's metadata its kind, actor, env
    actions per call and per-action p50 (p50 / actions_per_call), and for updates the updates per env step and
    the training time per env step (p50 x updates_per_env_step). Rows without metadata say `unknown`."""
    if timings.empty:
        return pd.DataFrame(columns=TIMING_COLUMNS)
    data = timing_metadata(timings)
    data = data.assign(method=[m if not v else f"{m}[{v}]" for m, v in zip(data["method"],
                                                                           data["variant"].fillna(""))])
    data["batch"] = data["batch"].fillna(-1).astype(int)
    known = data["kind"].notna()
    is_update = data["kind"] == UPDATE_KIND
    data["per_action"] = per_action_ms(data)
    data["per_env_step"] = per_env_step_ms(data)
    data["kind"] = data["kind"].where(known, UNKNOWN)
    data["actor"] = [UNKNOWN if not k else (a if a else "-") for k, a in zip(known, data["actor"])]
    data["actions_per_call"] = [_meta_text(v, k, not u, "{:.0f}") for v, k, u in
                                zip(data["actions_per_call"], known, is_update)]
    data["updates_per_env_step"] = [_meta_text(v, k, u) for v, k, u in
                                    zip(data["updates_per_env_step"], known, is_update)]
    keys = ["method", "component", "kind", "actor", "device", "batch", "actions_per_call", "updates_per_env_step"]
    grouped = data.groupby(keys, sort=True, dropna=False)
    table = grouped.agg(p50_ms=("p50_ms", "median"), p90_ms=("p90_ms", "median"),
                        per_action=("per_action", "median"), per_env_step=("per_env_step", "median"),
                        n_runs=("run_id", "nunique")).reset_index()
    kind_known = table["kind"] != UNKNOWN
    table["per_action_p50_ms"] = [_meta_text(v, k, kd in ACTION_KINDS, "{:.3f}") for v, k, kd in
                                  zip(table["per_action"], kind_known, table["kind"])]
    table["update_ms_per_env_step"] = [_meta_text(v, k, kd == UPDATE_KIND, "{:.3f}") for v, k, kd in
                                       zip(table["per_env_step"], kind_known, table["kind"])]
    return table[TIMING_COLUMNS]


def timing_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no timings in the store_"
    return table.to_markdown(index=False, floatfmt=".3f")


def timing_latex(table: pd.DataFrame) -> str:
    if table.empty:
        return "% no timings\n"
    shown = table.copy()
    shown["p50_ms"] = shown["p50_ms"].map(lambda v: f"{v:.3f}")
    shown["p90_ms"] = shown["p90_ms"].map(lambda v: f"{v:.3f}")
    shown = shown.set_index("method")
    return latex(shown, "Inference time per call (ms), median over runs of each run's percentile", "tab:timing")
