"""The eval episodes that reports read, what the run records say about them, and the flags drawn from both.

Why (issue 25): a report must be able to tell a score that sits at the task's ceiling, or that every run earns
by failing the same eval states, from one that measures a difference between methods; and it must say how each
actor picks its action. Analysis knows no method name (tests/structure), so all of it comes from the store:
the episodes table (store schema 3) and each run's record (bench/runner/run_record.py: its product actor, its
actors' selection rules, the task's ceiling, the data's mean normalised return, its eval states).
- `final_episodes`: per run and actor, the episodes of its final eval (phase `final` where the run has one,
  else its last eval), the input of the cells' intervals (analysis/bootstrap.py);
- `run_records`: per run, what it recorded for the reports;
- `cell_flags`: per line and task, the share of final episodes at the ceiling (flagged at CEILING_SHARE), and
  the eval states that several runs met and every one of them failed. An episode is at the ceiling within
  CEILING_TOLERANCE of the task's max return, or where it succeeds (the ceiling the run recorded); it failed
  where it is not at the ceiling, or, on a task with no known ceiling, where the env ended it before its time
  limit (a fall).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

CEILING_SHARE = 0.8
CEILING_TOLERANCE = 0.01
FINAL_PHASE = "final"


def final_episodes(episodes: pd.DataFrame) -> pd.DataFrame:
    """The episodes of each (run, actor)'s final eval: its `final` phase if it has one, else its last eval."""
    if episodes.empty:
        return episodes
    key = ["run_id", "actor"]
    ranked = episodes.assign(_final=episodes["phase"] == FINAL_PHASE)
    last = ranked.sort_values([*key, "_final", "env_step", "grad_step"], kind="stable").groupby(key).tail(1)
    chosen = last[[*key, "phase", "env_step", "grad_step"]]
    out = ranked.merge(chosen, on=[*key, "phase", "env_step", "grad_step"])
    return out.drop(columns="_final").sort_values([*key, "episode"], kind="stable").reset_index(drop=True)


def _extra(extra_json: Any) -> dict:
    try:
        extra = json.loads(extra_json) if isinstance(extra_json, str) and extra_json else {}
    except (TypeError, ValueError):
        return {}
    return extra if isinstance(extra, dict) else {}


def _provenance(extra_json: Any) -> dict:
    try:
        prov = _extra(extra_json).get("provenance_json", {})
        prov = json.loads(prov) if isinstance(prov, str) else prov
    except (TypeError, ValueError, AttributeError):
        return {}
    return prov if isinstance(prov, dict) else {}


def run_records(runs: pd.DataFrame) -> pd.DataFrame:
    """Per run: run_id, method, task, product (its method's product actor), selection ({actor: rule}),
    common_start (its product is the common start itself; None in runs before it was recorded), ceiling
    ({metric, max} or {}), data_score and eval_states, as the run recorded them (missing in older runs); and
    where its numbers came from: commit (HEAD of the checkout it ran from), dirty (tracked files differed from
    it; None where not recorded), commits (every attempt's commit, "+dirty" marked, where the run recorded them;
    else its one commit), dataset (its id or path) and dataset_hash (the sha256 of its arrays, bench.data's
    content_hash; "" for a task without data)."""
    cols = ["run_id", "method", "task", "product", "selection", "common_start", "ceiling", "data_score",
            "eval_states", "commit", "dirty", "commits", "dataset", "dataset_hash"]
    if runs.empty or "extra_json" not in runs:
        return pd.DataFrame(columns=cols)
    records = []
    for run in runs.itertuples():
        prov = _provenance(run.extra_json)
        actors = prov.get("actors") or {}
        seeds = prov.get("seeds") or {}
        extra = _extra(run.extra_json)
        dirty, sha = extra.get("git_dirty"), getattr(run, "git_sha", None)
        sha = sha if isinstance(sha, str) and sha else None
        commits = extra.get("git_commits")
        commits = json.loads(commits) if isinstance(commits, str) else commits
        if not isinstance(commits, list) or not commits:
            commits = [f"{sha}+dirty" if dirty else sha] if sha else []
        records.append({"run_id": run.run_id, "method": run.method, "task": run.task,
                        "product": actors.get("product"), "selection": actors.get("selection") or {},
                        "common_start": actors.get("common_start"),
                        "ceiling": prov.get("ceiling") or {}, "data_score": prov.get("data_score"),
                        "eval_states": seeds.get("eval_states", "fixed" if seeds else None),
                        "commit": sha, "dirty": None if dirty is None else bool(dirty),
                        "commits": tuple(str(c) for c in commits),
                        "dataset": getattr(run, "dataset", None), "dataset_hash": prov.get("dataset_hash")})
    return pd.DataFrame(records, columns=cols)


def outcomes(final: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """`final` with at_ceiling (1.0/0.0, NaN where the run knows no ceiling) and failed (bool) per episode."""
    ceiling = dict(zip(records["run_id"], records["ceiling"])) if not records.empty else {}
    of = [ceiling.get(r) or {} for r in final["run_id"]]
    metric = pd.Series([c.get("metric") for c in of], index=final.index, dtype=object)
    top = pd.Series([float(c.get("max", np.nan)) for c in of], index=final.index)
    by_return = final["return"].astype(float) >= top - CEILING_TOLERANCE * top.abs()
    by_success = final["success"].astype(float).fillna(0.0) >= 1.0
    at = np.where(metric == "return", by_return, np.where(metric == "success", by_success, False)).astype(float)
    known = metric.isin(["return", "success"]).to_numpy()
    at[~known] = np.nan
    ended = final["terminated"].fillna(False).astype(bool).to_numpy()
    return final.assign(at_ceiling=at, failed=np.where(known, at == 0.0, ended))


def cell_flags(final: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per (line, task): ceiling_share (of final episodes at the ceiling; NaN where unknown), ceiling (share >=
    CEILING_SHARE), shared_states (states that two or more runs met) and shared_failures (those failed by every
    run that met them)."""
    cols = ["line", "task", "ceiling_share", "ceiling", "shared_states", "shared_failures"]
    if final.empty:
        return pd.DataFrame(columns=cols)
    marked = outcomes(final, records)
    out = []
    for (line, task), cell in marked.groupby(["line", "task"], sort=True):
        known = cell["at_ceiling"].dropna()
        share = float(known.mean()) if len(known) else float("nan")
        per_state = cell.groupby("reset_seed").agg(runs=("run_id", "nunique"), failed=("failed", "all"))
        shared = per_state[per_state["runs"] >= 2]
        out.append({"line": line, "task": task, "ceiling_share": share,
                    "ceiling": bool(np.isfinite(share) and share >= CEILING_SHARE),
                    "shared_states": len(shared), "shared_failures": int(shared["failed"].sum())})
    return pd.DataFrame(out, columns=cols)
