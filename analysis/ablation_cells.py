"""The cells of an ablation: each run of the ablated method in its cell, and its per-run latency and update time.

Why: a cell is read from each run's resolved config (config_json), never from its label, and a run whose other
settings differ from the baseline cell's is its own cell, so arms never pool silently. Latencies and update
times come from the timing rows' metadata (kind, actor, actions_per_call, updates_per_env_step), never from
component names.
"""
from __future__ import annotations

import pandas as pd

from analysis.ablation_spec import AblationSpec, value_text
from analysis.data import (
    UNKNOWN,
    Notes,
    action_rows,
    config_value,
    flat_settings,
    per_action_ms,
    per_env_step_ms,
    update_rows,
)

# Settings that differ between runs of one cell without making them different arms.
PER_RUN_KEYS = {"seed", "variant", "dataset_path"}


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
        values = [UNKNOWN if v is None else value_text(v) for v in raw]
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
