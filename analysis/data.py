"""Loading a sweep from the results store into clean, analysis-ready frames.

Why: every figure and table must agree on which runs count and what a run's score is. This module makes those
choices once: only finished runs count (others are dropped with a printed warning); a line is one
method + variant + actor; an eval is one (run, actor, env_step) value; ragged curves (runs that evaluated at
other env steps) are interpolated onto their task's grid, never extrapolated; `final` is a run's last eval and
`best` its maximum over evals (optimistic). Analysis reads the store and nothing else.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any

import numpy as np
import pandas as pd

from results.keys import flatten
from results.store import Store

SCORE_METRIC = "normalized_score"
# A timed component's metadata columns in the timings table (store schema 2; null in older files). Analysis
# reads what a component is from them, never from its name; where they are null it says UNKNOWN.
TIMING_META = ("kind", "actor", "actions_per_call", "updates_per_env_step")
ACTION_KINDS = ("act", "plan")  # components that yield env actions for an actor
UPDATE_KIND = "update"
UNKNOWN = "unknown"
EVAL_METRICS = ("return", "normalized_score", "success")
DIAGNOSTIC_PREFIXES = ("wm/", "v_calibration/", "plan_gap/")
# Runs whose eval steps differ from the task grid by at most this fraction of the grid spacing count as on it.
GRID_TOLERANCE = 0.5


class Notes:
    """Warnings collected while analysing: printed at once, and listed again in the report."""

    def __init__(self, echo: bool = True):
        self.items: list[str] = []
        self.echo = echo

    def warn(self, message: str) -> None:
        if message in self.items:
            return
        self.items.append(message)
        if self.echo:
            print(f"warning: {message}", file=sys.stderr)


def line_label(method: Any, variant: Any = None, actor: Any = None) -> str:
    """The name of one line in a figure: method, [variant], /actor."""
    label = str(method)
    if isinstance(variant, str) and variant:
        label += f"[{variant}]"
    if isinstance(actor, str) and actor:
        label += f"/{actor}"
    return label


_SETTING_SPLIT = re.compile(r",(?=[A-Za-z_][\w.]*=)")  # a comma that starts the next key=value (not one in a list)


def variant_settings(variant: Any) -> list[str]:
    """The `key=value` settings of a variant label, in order (list values keep their commas)."""
    return list(_SETTING_SPLIT.split(variant)) if isinstance(variant, str) and variant else []


def shared_settings(variants) -> list[str]:
    """Settings that every variant carrying the key agrees on, carried by at least two distinct variants: a
    sweep's protocol (e.g. its DP section, set for every method that has a DP), not what tells lines apart."""
    parsed = [dict(part.partition("=")[::2] for part in variant_settings(v)) for v in set(variants)]
    out = []
    for key in sorted({k for p in parsed for k in p}):
        values = {p[key] for p in parsed if key in p}
        if len(values) == 1 and sum(key in p for p in parsed) >= 2:
            out.append(f"{key}={values.pop()}")
    return out


def strip_settings(variant: Any, shared: list[str]) -> str:
    """`variant` without the shared settings."""
    drop = set(shared)
    return ",".join(p for p in variant_settings(variant) if p not in drop)


@dataclasses.dataclass
class SweepData:
    sweep_id: str
    runs: pd.DataFrame  # every run (latest attempt), any status
    finished: pd.DataFrame  # the runs that count
    curves: pd.DataFrame  # curve rows of finished runs, with method, variant, task, seed and `line`
    timings: pd.DataFrame  # timing rows of finished runs
    notes: Notes
    shared: list[str] = dataclasses.field(default_factory=list)  # settings left out of the line names
    # Lines exempt from the one sampling rule (`eval.sampler`), with how they sample, as the runs recorded it.
    sampling: dict[str, str] = dataclasses.field(default_factory=dict)
    # Every eval episode of the finished runs (store schema 3), with `line`; empty for older stores.
    episodes: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)


def actor_sampling(runs: pd.DataFrame, shared: list[str]) -> dict[str, str]:
    """{line: how it samples} for the actors that the runs record as exempt from `eval.sampler` (each run's
    provenance, `actor_sampling`); distinct descriptions of one line are joined."""
    out: dict[str, set[str]] = {}
    if runs.empty or "extra_json" not in runs:
        return {}
    for run in runs.itertuples():
        try:
            extra = json.loads(run.extra_json or "{}")
            prov = extra.get("provenance_json", {})
            prov = json.loads(prov) if isinstance(prov, str) else prov
        except (TypeError, ValueError):
            continue
        variant = strip_settings(run.variant if isinstance(run.variant, str) else "", shared)
        for actor, how in (prov.get("actor_sampling") or {}).items():
            out.setdefault(line_label(run.method, variant, actor), set()).add(str(how))
    return {k: "; ".join(sorted(v)) for k, v in sorted(out.items())}


def load_sweep(store_root, sweep_id: str, notes: Notes | None = None) -> SweepData:
    notes = notes or Notes()
    store = Store(store_root)
    runs = store.runs(sweep=sweep_id)
    if runs.empty:
        notes.warn(f"sweep {sweep_id!r} has no runs in the store at {store.root}")
    not_finished = runs[runs["status"] != "finished"] if not runs.empty else runs
    for status, group in not_finished.groupby(not_finished["status"].fillna("unknown")) if len(not_finished) else []:
        notes.warn(
            f"{len(group)} {status} run(s) excluded: "
            + ", ".join(f"{r.method}/{r.task}/seed {r.seed}" for r in group.head(8).itertuples())
            + (" ..." if len(group) > 8 else "")
        )
    finished = runs[runs["status"] == "finished"].reset_index(drop=True) if not runs.empty else runs
    ids = list(finished["run_id"]) if not finished.empty else []
    curves = store.curves(sweep=sweep_id, run_ids=ids) if ids else store.curves(sweep=sweep_id, run_ids=[])
    timings = store.timings(sweep=sweep_id, run_ids=ids) if ids else store.timings(sweep=sweep_id, run_ids=[])
    shared = shared_settings(finished["variant"].fillna("")) if not finished.empty else []
    if not curves.empty:
        curves["variant"] = [strip_settings(v, shared) for v in curves["variant"].fillna("")]
        curves["line"] = [line_label(m, v, a) for m, v, a in zip(curves["method"], curves["variant"], curves["actor"])]
    if not timings.empty:
        timings["variant"] = [strip_settings(v, shared) for v in timings["variant"].fillna("")]
    timings = timing_metadata(timings)
    episodes = store.episodes(sweep=sweep_id, run_ids=ids)
    if not episodes.empty:
        episodes["variant"] = [strip_settings(v, shared) for v in episodes["variant"].fillna("")]
        episodes["line"] = [line_label(m, v, a) for m, v, a in
                            zip(episodes["method"], episodes["variant"], episodes["actor"])]
    missing = set(ids) - set(curves["run_id"]) if not curves.empty else set(ids)
    if missing:
        notes.warn(f"{len(missing)} finished run(s) have no curve rows and are left out of the curves")
    return SweepData(sweep_id, runs, finished, curves, timings, notes, shared, actor_sampling(finished, shared),
                     episodes)


def eval_points(curves: pd.DataFrame, metric: str = SCORE_METRIC) -> pd.DataFrame:
    """One value per (run, actor, env_step) for an eval metric, with wall_s and grad_step kept.

    Several rows at one env_step (e.g. evals during pretraining, all at env_step 0) resolve to the last one
    by grad_step, which is the policy that the online phase starts from.
    """
    if curves.empty:
        return curves
    rows = curves[(curves["metric"] == metric) & curves["actor"].notna() & curves["value"].notna()]
    rows = rows.sort_values(["run_id", "actor", "env_step", "grad_step", "wall_s"], kind="stable")
    return rows.drop_duplicates(["run_id", "actor", "env_step"], keep="last").reset_index(drop=True)


def task_grid(points: pd.DataFrame) -> np.ndarray:
    """The env-step grid of one task: the sequence of eval steps that most of its runs share (ties: the
    longest), among runs with more than one eval. Runs that evaluated elsewhere are the ragged ones."""
    sequences = points.groupby(["run_id", "actor"])["env_step"].apply(lambda s: tuple(sorted(set(s))))
    if (sequences.map(len) > 1).any():  # single-eval lines (no online phase) are references, not the grid
        sequences = sequences[sequences.map(len) > 1]
    counts = sequences.value_counts()
    best = max(counts.index, key=lambda seq: (counts[seq], len(seq), seq[-1]))
    return np.asarray(best, dtype=float)


def align_to_grid(points: pd.DataFrame, notes: Notes) -> pd.DataFrame:
    """Put every run's evals on its task's grid.

    A run whose env steps are within GRID_TOLERANCE grid spacings of the grid is snapped to it. Otherwise its
    curve is linearly interpolated at the grid steps inside its own range; grid steps beyond its last eval stay
    missing (no extrapolation). A run with a single eval keeps that one point. Returns columns run_id, actor,
    task, env_step (grid), value, source_step (the env step of the run's own eval that the point shows; NaN
    where it is interpolated between two), plus the run's identity columns.
    """
    if points.empty:
        return points
    out = []
    ragged = []
    id_cols = [c for c in ("method", "variant", "task", "seed", "line") if c in points.columns]
    for task, task_points in points.groupby("task", sort=True):
        grid = task_grid(task_points)
        spacing = np.min(np.diff(grid)) if len(grid) > 1 else 1.0
        for (run_id, actor), run in task_points.groupby(["run_id", "actor"], sort=False):
            steps = run["env_step"].to_numpy(dtype=float)
            values = run["value"].to_numpy(dtype=float)
            ident = run.iloc[0][id_cols].to_dict()
            nearest = np.abs(grid[:, None] - steps[None, :])
            idx = nearest.argmin(axis=0)
            if len(steps) == 1 or len(set(idx)) == len(idx) and np.all(nearest[idx, np.arange(len(steps))] <= GRID_TOLERANCE * spacing):
                new_steps, new_values, source = grid[idx], values, steps
            else:
                ragged.append(f"{ident.get('line', actor)} seed {ident.get('seed')} on {task}")
                inside = grid[(grid >= steps.min()) & (grid <= steps.max())]
                new_steps, new_values = inside, np.interp(inside, steps, values)
                source = np.where(np.isin(inside, steps), inside, np.nan)
            frame = pd.DataFrame({"run_id": run_id, "actor": actor, "env_step": new_steps, "value": new_values,
                                  "source_step": source})
            for key, value in ident.items():
                frame[key] = value
            out.append(frame)
    if ragged:
        notes.warn(
            f"{len(ragged)} curve(s) evaluated off their task's env-step grid and were interpolated onto it: "
            + "; ".join(ragged[:6]) + (" ..." if len(ragged) > 6 else "")
        )
    return pd.concat(out, ignore_index=True)


def run_scores(points: pd.DataFrame) -> pd.DataFrame:
    """Per (run, actor): `final` (the last eval, the headline) and `best` (the max over evals, optimistic)."""
    if points.empty:
        return pd.DataFrame(columns=["run_id", "actor", "method", "variant", "task", "seed", "line", "final",
                                     "best", "last_env_step"])
    ordered = points.sort_values(["run_id", "actor", "env_step"], kind="stable")
    grouped = ordered.groupby(["run_id", "actor"], sort=False)
    last = grouped.tail(1).set_index(["run_id", "actor"])
    result = last[["method", "variant", "task", "seed", "line"]].copy()
    result["final"] = last["value"]
    result["best"] = grouped["value"].max()
    result["last_env_step"] = last["env_step"]
    return result.reset_index()


def config_value(config_json: Any, key: str) -> Any:
    """Look up a dotted key (e.g. '<method>.planner.horizon') in a run's resolved config.

    Accepts nested dicts, flat dotted keys, and configs that nest the method's section under another name
    (the key's tail is then searched for).
    """
    if config_json is None or (isinstance(config_json, float) and np.isnan(config_json)):
        return None
    try:
        config = json.loads(config_json) if isinstance(config_json, str) else config_json
    except json.JSONDecodeError:
        return None
    if not isinstance(config, dict):
        return None
    parts = key.split(".")
    for start in range(len(parts)):
        sub = parts[start:]
        if len(sub) < 2 and start > 0:
            break
        found = _nested(config, sub)
        if found is not None:
            return found
        flat = ".".join(sub)
        if flat in config:
            return config[flat]
    return _search(config, parts[-2:]) if len(parts) >= 2 else None


def _nested(config: dict, parts: list[str]) -> Any:
    node: Any = config
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _search(config: Any, parts: list[str]) -> Any:
    if isinstance(config, dict):
        found = _nested(config, parts)
        if found is not None:
            return found
        for value in config.values():
            found = _search(value, parts)
            if found is not None:
                return found
    return None


def _is_null(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and np.isnan(value)


def _extra(extra_json: Any) -> dict:
    if not isinstance(extra_json, str) or not extra_json:
        return {}
    try:
        extra = json.loads(extra_json)
    except json.JSONDecodeError:
        return {}
    return extra if isinstance(extra, dict) else {}


def timing_metadata(timings: pd.DataFrame) -> pd.DataFrame:
    """Timing rows with the four metadata columns (TIMING_META) always present: the stored column, else the
    same key recorded in the row's extra_json (rows written to a store older than the column), else null.
    `actions_per_call` and `updates_per_env_step` come back numeric (NaN where unknown); nothing is inferred
    from a component's name or settings."""
    out = timings.copy()
    if out.empty:
        for key in TIMING_META:
            if key not in out:
                out[key] = pd.Series(dtype=object if key in ("kind", "actor") else float)
        return out
    extras = [_extra(e) for e in out["extra_json"]] if "extra_json" in out else [{}] * len(out)
    for key in TIMING_META:
        stored = list(out[key]) if key in out else [None] * len(out)
        values = [x.get(key) if _is_null(v) else v for v, x in zip(stored, extras)]
        if key in ("kind", "actor"):
            values = [None if _is_null(v) else str(v) for v in values]
            if key == "kind":
                values = [v or None for v in values]
            out[key] = pd.Series(values, index=out.index, dtype=object)
        else:
            out[key] = pd.to_numeric(pd.Series(values, index=out.index, dtype=object), errors="coerce").astype(float)
    return out


def action_rows(timings: pd.DataFrame) -> pd.DataFrame:
    """The timing rows of components that yield env actions (kind act or plan), with their metadata."""
    rows = timing_metadata(timings)
    return rows[rows["kind"].isin(ACTION_KINDS)]


def update_rows(timings: pd.DataFrame) -> pd.DataFrame:
    """The timing rows of training updates (kind update), with their metadata."""
    rows = timing_metadata(timings)
    return rows[rows["kind"] == UPDATE_KIND]


def per_action_ms(rows: pd.DataFrame) -> pd.Series:
    """p50 per env action of timing rows: p50_ms / actions_per_call, the env actions one call yields as the
    timed component declared it (a DP's executed chunk, a plan's replan_every). NaN where that is unknown
    (rows from store files older than schema 2, or updates)."""
    rows = timing_metadata(rows) if any(k not in rows for k in TIMING_META) else rows
    per_call = pd.to_numeric(rows["actions_per_call"], errors="coerce").astype(float)
    per_call = per_call.where(per_call >= 1)
    return rows["p50_ms"].astype(float) / per_call


def per_env_step_ms(rows: pd.DataFrame) -> pd.Series:
    """Training time per env step of update rows: p50_ms x updates_per_env_step (NaN where unknown)."""
    rows = timing_metadata(rows) if any(k not in rows for k in TIMING_META) else rows
    return rows["p50_ms"].astype(float) * pd.to_numeric(rows["updates_per_env_step"], errors="coerce").astype(float)


def flat_settings(config_json: Any) -> dict[str, str]:
    """A run's resolved config as {dotted key: JSON text}, for comparing runs setting by setting."""
    try:
        config = json.loads(config_json) if isinstance(config_json, str) else config_json
    except json.JSONDecodeError:
        return {}
    if not isinstance(config, dict):
        return {}
    return {key: json.dumps(value, sort_keys=True) for key, value in flatten(config).items()}
