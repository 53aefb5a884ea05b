"""`mbench ablate SWEEP`: an ablation grid of one method, cell by cell: score, per-action latency, update time.

Why: an ablation asks whether a setting that saves inference or training time costs score. So this report puts,
per cell of the grid (one value of each axis), the score curves, the final score per actor, the per-action
latency of each actor and the training time per update and per env step next to each other, with ratios to
a baseline cell and bootstrap CIs, and draws reference methods (e.g. the policy every cell starts from) as
lines beside them.

What is ablated comes from the sweep file's `ablation:` section, never from this module::

    ablation:
      method: <method>                       # the method whose runs are the cells
      axes: [<method>.a.b, <method>.c]       # config keys; values from the sweep's grid (or the data)
      # or axes: {<method>.a.b: [x, y], ...}  # the values, in order
      reference: [<other method>, ...]       # optional: methods drawn as reference lines
      baseline: {<method>.a.b: x, ...}       # optional: the cell ratios are to (default: each axis' first value)
      description: "what the axes mean"      # optional: printed at the top of the report

`mbench ablate NAME` finds the section in `--sweep-file`, else in the sweep file its launches recorded
(`<store>/sweeps/NAME/launches.jsonl`), else in `sweeps/NAME.yaml` (or the sweep file named NAME) under the
current folder or the project's. A cell is read from each run's resolved config (config_json), not from its
label. Latencies and update times come from the timing rows' metadata (kind, actor, actions_per_call,
updates_per_env_step), never from component names.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import yaml

from analysis import figures, stats, tables
from analysis.data import (
    SCORE_METRIC,
    UNKNOWN,
    Notes,
    action_rows,
    align_to_grid,
    config_value,
    eval_points,
    flat_settings,
    load_sweep,
    per_action_ms,
    per_env_step_ms,
    run_scores,
    update_rows,
)
from analysis.document import Document, save_table, section, store_root

SECTION_KEYS = ("method", "axes", "reference", "baseline", "description")
# Settings that differ between runs of one cell without making them different arms.
PER_RUN_KEYS = {"seed", "variant", "dataset_path"}


class AblationError(ValueError):
    """The ablation section is missing or malformed; the message is one line that names the problem."""


# ------------------------------------------------------------------------------------------- the section
@dataclasses.dataclass(frozen=True)
class Axis:
    key: str  # a dotted config key, e.g. '<method>.planner.horizon'
    name: str  # its label in cell names (the key's last part, unless two axes share it)
    values: tuple[str, ...] | None  # the axis' values in order (None: taken from the data)


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    method: str
    axes: tuple[Axis, ...]
    reference: tuple[str, ...] = ()
    baseline: tuple[str | None, ...] = ()  # one value per axis (None: the axis' first value)
    description: str = ""
    source: str = ""

    def cell_name(self, values) -> str:
        return ", ".join(f"{axis.name}={value}" for axis, value in zip(self.axes, values))

    def baseline_values(self) -> tuple[str, ...]:
        return tuple(b if b is not None else (a.values[0] if a.values else UNKNOWN)
                     for a, b in zip(self.axes, self.baseline or (None,) * len(self.axes)))

    def baseline_cell(self) -> str:
        return self.cell_name(self.baseline_values())

    def grid_cells(self) -> list[str]:
        if any(a.values is None for a in self.axes):
            return []
        return [self.cell_name(v) for v in itertools.product(*(a.values for a in self.axes))]


def _fail(source: str, msg: str) -> None:
    raise AblationError(f"ablation section of {source}: {msg}")


def _flat(mapping: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(prefix: str, node: dict) -> None:
        for k, v in node.items():
            if isinstance(v, dict):
                walk(f"{prefix}{k}.", v)
            else:
                out[f"{prefix}{k}"] = v

    if isinstance(mapping, dict):
        walk("", mapping)
    return out


def _names(keys: list[str], method: str) -> list[str]:
    """Cell labels of the axes: each key's last part, or the key without the method prefix where two clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    if len(set(last)) == len(last):
        return last
    return [k.removeprefix(method + ".") for k in keys]


def parse_ablation(section_data: Any, grid: dict[str, Any] | None = None, source: str = "<ablation>") -> AblationSpec:
    """An AblationSpec from a sweep file's `ablation:` section (and its `grid:`, for the axes' values)."""
    if not isinstance(section_data, dict):
        _fail(source, f"must be a mapping with keys {', '.join(SECTION_KEYS)}")
    for key in section_data:
        if key not in SECTION_KEYS:
            _fail(source, f"unknown key 'ablation.{key}' (expected one of: {', '.join(SECTION_KEYS)})")
    method = section_data.get("method")
    if not isinstance(method, str) or not method:
        _fail(source, "'ablation.method' must name the method whose runs are the cells")
    axes_raw = section_data.get("axes")
    if isinstance(axes_raw, str):
        axes_raw = [axes_raw]
    if isinstance(axes_raw, dict):
        pairs = list(axes_raw.items())
    elif isinstance(axes_raw, list) and axes_raw:
        pairs = [(k, None) for k in axes_raw]
    else:
        _fail(source, "'ablation.axes' must be a non-empty list of config keys, or map each key to its values")
    flat_grid = _flat(grid or {})
    keys, values = [], []
    for key, vals in pairs:
        if not isinstance(key, str) or not key:
            _fail(source, f"'ablation.axes' has a key that is not a dotted config key: {key!r}")
        if key in keys:
            _fail(source, f"'ablation.axes' names {key} twice")
        if vals is None:
            vals = flat_grid.get(key)
        if vals is not None and (not isinstance(vals, list) or not vals):
            _fail(source, f"the values of axis {key} must be a non-empty list")
        keys.append(key)
        values.append(None if vals is None else tuple(_text(v) for v in vals))
    reference = section_data.get("reference") or []
    if isinstance(reference, str):
        reference = [reference]
    if not isinstance(reference, list) or not all(isinstance(r, str) and r for r in reference):
        _fail(source, "'ablation.reference' must be a list of method names")
    if method in reference:
        _fail(source, f"'ablation.reference' names the ablated method {method} itself")
    baseline_raw = section_data.get("baseline") or {}
    if not isinstance(baseline_raw, dict):
        _fail(source, "'ablation.baseline' must map axis keys to the baseline cell's values")
    for key in baseline_raw:
        if key not in keys:
            _fail(source, f"'ablation.baseline.{key}' is not one of the axes ({', '.join(keys)})")
    baseline = tuple(None if k not in baseline_raw else _text(baseline_raw[k]) for k in keys)
    for key, vals, base in zip(keys, values, baseline):
        if base is not None and vals is not None and base not in vals:
            _fail(source, f"'ablation.baseline.{key}' = {base} is not one of its values ({'/'.join(vals)})")
    names = _names(keys, method)
    axes = tuple(Axis(k, n, v) for k, n, v in zip(keys, names, values))
    return AblationSpec(method=method, axes=axes, reference=tuple(reference), baseline=baseline,
                        description=str(section_data.get("description") or ""), source=source)


def _text(value: Any) -> str:
    """A config value as a cell label: strings as they are, anything else as JSON (True -> true, 2 -> 2)."""
    return value if isinstance(value, str) else json.dumps(value)


def read_sweep_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise AblationError(f"sweep file {path}: not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise AblationError(f"sweep file {path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise AblationError(f"sweep file {path}: not a YAML mapping")
    return data


def ablation_from_file(path: str | Path) -> AblationSpec:
    """The AblationSpec of a sweep file's `ablation:` section."""
    data = read_sweep_file(path)
    if "ablation" not in data:
        raise AblationError(f"sweep file {path} has no 'ablation:' section (method, axes, reference)")
    return parse_ablation(data["ablation"], data.get("grid"), str(path))


def sweep_file_candidates(store_root, sweep_id: str) -> list[Path]:
    """Where the sweep file of `sweep_id` may be, in the order looked at: the files its launches recorded
    (newest first), then sweeps/<id>.yaml and any sweeps/*.yaml named <id>, in the current folder and the
    project's."""
    out: list[Path] = []
    launches = Path(store_root) / "sweeps" / sweep_id / "launches.jsonl"
    if launches.is_file():
        for line in reversed(launches.read_text().splitlines()):
            try:
                spec_file = json.loads(line).get("spec_file")
            except (json.JSONDecodeError, AttributeError):
                continue
            if spec_file:
                out.append(Path(spec_file))
    folders = list(dict.fromkeys([Path.cwd() / "sweeps", Path(__file__).resolve().parents[1] / "sweeps"]))
    for folder in folders:
        out += [folder / f"{sweep_id}.yaml", folder / f"{sweep_id}.yml"]
    for folder in folders:
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                named = (yaml.safe_load(path.read_text()) or {}).get("name")
            except (yaml.YAMLError, AttributeError, OSError):
                continue
            if named == sweep_id:
                out.append(path)
    return list(dict.fromkeys(out))


def find_ablation(store_root, sweep_id: str, sweep_file: str | Path | None = None) -> AblationSpec:
    """The ablation section for a sweep: from `sweep_file`, else from the first sweep file found for it."""
    if sweep_file is not None:
        return ablation_from_file(sweep_file)
    candidates = sweep_file_candidates(store_root, sweep_id)
    for path in candidates:
        if path.is_file():
            return ablation_from_file(path)
    raise AblationError(f"no sweep file found for sweep '{sweep_id}' (looked for sweeps/{sweep_id}.yaml and the "
                        "launches' sweep file): pass --sweep-file FILE with an 'ablation:' section")


# --------------------------------------------------------------------------------------------- the cells
def assign_cells(runs: pd.DataFrame, notes: Notes, spec: AblationSpec) -> pd.DataFrame:
    """The ablated method's runs with their cell read from config_json; a run that lacks an axis key is in an
    `unknown` cell for it, with a warning (never a guessed default).

    A run whose other settings differ from the baseline cell's (e.g. a latency-matched arm with fewer
    iterations) is its own cell, named by the axes plus the settings that differ, so arms never pool silently."""
    mine = runs[runs["method"] == spec.method].copy()
    axis_values: list[list[str]] = []
    for axis in spec.axes:
        raw = [config_value(c, axis.key) for c in mine["config_json"]]
        if any(v is None for v in raw):
            notes.warn(f"{sum(v is None for v in raw)} {spec.method} run(s) lack {axis.key} in config_json; "
                       f"their cell says {axis.name}={UNKNOWN}")
        values = [UNKNOWN if v is None else _text(v) for v in raw]
        if axis.values is not None:
            odd = sorted(set(values) - set(axis.values))
            if odd:
                notes.warn(f"{axis.key} values {odd} are outside the ablation's ({'/'.join(axis.values)}); shown as "
                           "extra cells")
        axis_values.append(values)
    base_cells = [spec.cell_name(vals) for vals in zip(*axis_values)] if len(mine) else []
    mine["cell"] = base_cells
    skip = PER_RUN_KEYS | {axis.key for axis in spec.axes}
    settings = [{k: v for k, v in flat_settings(c).items() if k not in skip and k.split(".")[-1] not in skip}
                for c in mine["config_json"]]
    baseline = [s for s, c in zip(settings, base_cells) if c == spec.baseline_cell()] or settings
    keys = sorted(set().union(*settings)) if settings else []
    usual = {k: pd.Series([s.get(k) for s in baseline]).mode(dropna=False).iloc[0] for k in keys}
    extra = []
    for cell, own in zip(base_cells, settings):
        differ = [k for k in keys if own.get(k) != usual[k]]
        extra.append(cell + "".join(f", {k.removeprefix(spec.method + '.')}={own.get(k)}" for k in differ))
    split = sorted({e for e, c in zip(extra, base_cells) if e != c})
    if split:
        notes.warn(f"cells beyond the ablation's axes, from settings other than the axes: {split}")
    mine["cell"] = extra
    return mine


def _at_smallest_batch(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["batch"] == rows["batch"].min()] if not rows.empty else rows


def latency_per_run(timings: pd.DataFrame, actor: str) -> pd.DataFrame:
    """One per-action p50 (ms) per run for `actor`, at the smallest batch measured (batch 1): the act or plan
    rows that serve it (their `actor` column), p50 / actions_per_call. Rows without metadata are unknown and
    left out."""
    rows = action_rows(timings)
    rows = _at_smallest_batch(rows[rows["actor"] == actor]).copy()
    if rows.empty:
        return pd.DataFrame(columns=["run_id", "ms", "device"])
    rows["ms"] = per_action_ms(rows)
    rows = rows.dropna(subset=["ms"])
    return rows.groupby("run_id", as_index=False).agg(ms=("ms", "median"), device=("device", "first"))


def update_per_run(timings: pd.DataFrame) -> pd.DataFrame:
    """Per run: the p50 of one update (ms; the sum over its update components) and the training time per env
    step (p50 x updates_per_env_step, summed; NaN where a component's updates per env step are unknown)."""
    rows = _at_smallest_batch(update_rows(timings)).copy()
    if rows.empty:
        return pd.DataFrame(columns=["run_id", "ms", "ms_per_env_step", "device"])
    rows["per_env_step"] = per_env_step_ms(rows)
    per_component = rows.groupby(["run_id", "component"], as_index=False).agg(
        ms=("p50_ms", "median"), per_env_step=("per_env_step", "median"), device=("device", "first"))
    return per_component.groupby("run_id", as_index=False).agg(
        ms=("ms", "sum"), ms_per_env_step=("per_env_step", lambda v: v.sum(min_count=len(v))),
        device=("device", "first"))


# ------------------------------------------------------------------------------------------------ report
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
             f"baseline cell ({spec.baseline_cell()}), with 95% bootstrap CIs; scores are final normalised scores, "
             f"mean ± 95% t-CI over seeds; latencies are p50 per env action at batch 1, update times p50 per update "
             f"and per env step. {tables.FLAG_NOTE}")
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
            own = scores[(scores["cell"] == cell) & (scores["actor"] == actor)]["final"]
            ref = scores[(scores["cell"] == baseline_cell) & (scores["actor"] == actor)]["final"]
            mean, half, n = stats.mean_ci(own)
            record[f"score {actor}"] = tables.format_cell(mean, half, n, n < stats.MIN_SEEDS)
            record[f"score {actor} ratio"] = _ratio(own, ref, reps)
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
        doc.figure(ablation_curves(points), "ablation_curves",
                   "Normalised score against env steps per task and actor, one line per cell"
                   + (f" (and {refs} as reference)" if refs else "") + ": mean over seeds, 95% CI band")
    doc.heading("Side by side")
    with section(doc, notes, "ablation side by side"):
        ref_scores = scores[~scores["cell"].isin(present)] if not scores.empty else None
        doc.figure(side_by_side(scores[scores["cell"].isin(present)] if not scores.empty else scores,
                                latency, update, ref_scores, n_axes=len(spec.axes)), "ablation_side_by_side",
                   "Per cell: final score per actor, per-action latency per actor and time per update; bars are "
                   "means, whiskers 95% CIs over seeds" + (f"; dashed: the reference methods' means ({refs})"
                                                           if refs else ""))
    doc.heading("Warnings")
    doc.bullets(notes.items or ["none"])
    return doc.write("ablation")


def _timing_cell(mean: float, half: float, n: int, values: pd.Series) -> str:
    if n:
        return tables.format_cell(mean, half, n, n < stats.MIN_SEEDS)
    return UNKNOWN if len(values) else "-"


def _ratio(numerator, denominator, reps: int) -> str:
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if not len(numerator) or not len(denominator):
        return "-"
    estimate, low, high = stats.ratio_ci(numerator, denominator, reps=reps)
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


def _short(cell: str, n_axes: int) -> str:
    """A tick label: the axes' values on their own lines, then any other setting that splits the cell, e.g.
    'v\\nindep' or 'q\\nindep\\nplanner.iterations=1'. A reference method's cell is kept whole."""
    parts = cell.split(", ")
    if "=" not in parts[0]:
        return cell
    return "\n".join([p.split("=", 1)[1] for p in parts[:n_axes]] + parts[n_axes:])


def side_by_side(scores: pd.DataFrame, latency: dict[str, pd.DataFrame] | pd.DataFrame, update: pd.DataFrame,
                 reference: pd.DataFrame | None = None, n_axes: int = 2):
    """Bars per cell: final score per actor, per-action latency per actor, time per update. `reference` (final
    scores of the reference methods, with their cell '<method> (reference)') is drawn as dashed lines on the
    score panel of the same actor."""
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
            if n:
                ax.bar(i, mean, color=colors[cell], yerr=np.nan_to_num(half), capsize=4)
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


# --------------------------------------------------------------------------------------------------- CLI
def _cmd_ablate(args: argparse.Namespace) -> int:
    root = store_root(args)
    out = Path(args.out) if args.out else Path(root) / "reports" / f"{args.sweep}-ablation"
    spec = find_ablation(root, args.sweep, args.sweep_file)
    path = write_ablation(root, args.sweep, out, reps=args.reps, spec=spec)
    print(f"ablation report: {path} (and {path.with_suffix('.html')})")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser("ablate", help="an ablation report: the cells of its sweep file's 'ablation:' "
                                                  "section, side by side")
    parser.add_argument("sweep", help="sweep id")
    parser.add_argument("--sweep-file", default=None,
                        help="the sweep file with the 'ablation:' section (default: the one the sweep was launched "
                             "from, else sweeps/<sweep>.yaml)")
    parser.add_argument("--out", default=None, help="report folder (default <store>/reports/<sweep>-ablation)")
    # SUPPRESS: given here it overrides the global `mbench --store`; not given, the global one stands.
    parser.add_argument("--store", default=argparse.SUPPRESS,
                        help="results store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)  # deprecated spelling of --store
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap repetitions")
    parser.set_defaults(func=_cmd_ablate)


__all__ = ["AblationError", "AblationSpec", "Axis", "ablation_from_file", "add_cli", "assign_cells",
           "find_ablation", "latency_per_run", "parse_ablation", "update_per_run", "write_ablation"]
