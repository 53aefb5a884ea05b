"""Writing one attempt of a run: its runs row, its curve, its timings, each in the attempt's own file.

Why: many jobs finish at once and must never block on each other or corrupt each other's results, so each run
writes only its own files, each write is atomic (results/atomic.py: readers see the old file or the new one),
and rewriting an attempt (running -> finished) replaces that attempt's file only; other attempts' files are
never touched, so a stale earlier attempt that writes late cannot hide a newer one.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from results.atomic import atomic_write
from results.attempts import check_attempt
from results.layout import attempt_part, run_path
from results.names import validate_name
from results.rows import as_frame, isnull, to_json_str, to_table
from results.schema import STATUSES, TIMING_KINDS


def write_parquet(table: pa.Table, path: Path, compression: str = "snappy") -> Path:
    """Write a table atomically. Per-run files are small and many, so they use the cheapest codec to open
    (snappy); compacted files are large and few, so they use zstd."""
    return atomic_write(path, lambda handle: pq.write_table(table, handle, compression=compression))


def write_run(root: Path, row: Mapping[str, Any]) -> Path:
    """Write (replace) the row of one attempt of a run (`row["attempt"]`, default 0) in its own file."""
    row = dict(row)
    for key in ("run_id", "sweep_id"):
        if key not in row:
            raise ValueError(f"a runs row needs {key!r}")
    validate_name(row["run_id"], "run id")
    validate_name(row["sweep_id"], "sweep id")
    if row.get("status") is not None and row["status"] not in STATUSES:
        raise ValueError(f"unknown run status {row['status']!r}; expected one of {STATUSES}")
    if row.get("attempt") is None:
        row["attempt"] = 0
    for key in ("config_json", "versions"):
        if key in row and not isinstance(row[key], str) and row[key] is not None:
            row[key] = to_json_str(row[key])
    attempt = check_attempt(row["attempt"])
    table = to_table("runs", pd.DataFrame([row]), time.time_ns())
    return write_parquet(table, run_path(root, "runs", row["sweep_id"], row["run_id"], attempt_part(attempt)))


def write_rows(root: Path, table_name: str, sweep_id: str, run_id: str, rows: Any, attempt: int | None) -> Path:
    """Replace the curve or timing rows of one attempt of a run. The attempt: the argument, else the rows' own
    `attempt` column, else 0 (the legacy file)."""
    validate_name(sweep_id, "sweep id")
    validate_name(run_id, "run id")
    frame = as_frame(rows)
    if "run_id" in frame.columns and len(frame) and not (frame["run_id"] == run_id).all():
        bad = sorted(set(frame["run_id"].astype(str)) - {run_id})
        raise ValueError(f"{table_name} rows for run {run_id!r} carry other run ids {bad}")
    in_rows = sorted({int(a) for a in frame["attempt"] if not isnull(a)}) if "attempt" in frame else []
    if attempt is None:
        if len(in_rows) > 1:
            raise ValueError(f"{table_name} rows for run {run_id!r} carry several attempts {in_rows}")
        attempt = in_rows[0] if in_rows else 0
    attempt = check_attempt(attempt)
    if in_rows and in_rows != [attempt]:
        raise ValueError(f"{table_name} rows for run {run_id!r} carry attempts {in_rows}, not {attempt}")
    if table_name == "timings" and "kind" in frame.columns:
        kinds = {to_json_str(k) for k in frame["kind"] if not isnull(k)}
        if kinds - set(TIMING_KINDS):
            raise ValueError(f"unknown timing kind(s) {sorted(kinds - set(TIMING_KINDS))}; "
                             f"expected one of {TIMING_KINDS}")
    frame["run_id"] = run_id
    frame["sweep_id"] = sweep_id
    frame["attempt"] = attempt
    table = to_table(table_name, frame, time.time_ns())
    return write_parquet(table, run_path(root, table_name, sweep_id, run_id, attempt_part(attempt)))
