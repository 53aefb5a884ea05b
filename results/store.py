"""The results store: a folder of parquet files that every run writes and every analysis reads.

`Store(root)` is the public entry; it is a thin class over the store's parts, one concept per file:

- results/schema.py: the four tables' schemas, the schema version, StoreError and SchemaVersionError;
- results/rows.py: rows given to the store conformed to a table's schema;
- results/layout.py: where the files are (`table=<t>/sweep=<id>/<run_id>+a<k>.parquet`), and which attempt a
  file name holds;
- results/attempts.py: numbering a new attempt from the file names;
- results/writes.py: writing one attempt's runs row, curve, timings and eval episodes (atomically: results/atomic.py);
- results/reading.py: reading a table's files with today's schema (version-1 files included), unreadable
  files named in one line;
- results/queries.py: per run, its latest finished attempt (else its latest), and its curve and timings;
- results/compaction.py: merging a partition's files without changing any query result.

Many jobs write at once and none waits for another: each run writes only its own files, and attempts are
immutable (a rerun that fails cannot damage a finished run). One process per run at a time is the run lock's
job (results/run_lock.py), not the store's.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from results import attempts, compaction, layout, queries, writes
from results.schema import TABLES


class Store:
    """Reads and writes one results store rooted at `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def sweeps(self) -> list[str]:
        """Every sweep id that has a runs partition."""
        return layout.sweep_names(self.root)

    # -- writes
    def write_run(self, row: Mapping[str, Any]) -> Path:
        """Write (replace) the row of one attempt of a run (`row["attempt"]`, default 0) in its own file."""
        return writes.write_run(self.root, row)

    def write_curves(self, sweep_id: str, run_id: str, rows: Any, attempt: int | None = None) -> Path:
        """Replace the curve so far of one attempt of the run (rows: list of dicts or a DataFrame).

        attempt: the run's attempt (as in its runs row); None takes the rows' `attempt` column, else 0."""
        return writes.write_rows(self.root, "curves", sweep_id, run_id, rows, attempt)

    def write_timings(self, sweep_id: str, run_id: str, rows: Any, attempt: int | None = None) -> Path:
        """Replace the timing rows of one attempt of the run (attempt as in `write_curves`)."""
        return writes.write_rows(self.root, "timings", sweep_id, run_id, rows, attempt)

    def write_episodes(self, sweep_id: str, run_id: str, rows: Any, attempt: int | None = None) -> Path:
        """Replace the eval episodes so far of one attempt of the run (attempt as in `write_curves`)."""
        return writes.write_rows(self.root, "episodes", sweep_id, run_id, rows, attempt)

    def next_attempt(self, sweep_id: str, run_id: str, retries: int = 20) -> int:
        """The attempt number a new try of the run must use: one more than any attempt the store holds."""
        return attempts.next_attempt(self.root, sweep_id, run_id, retries)

    # -- reads
    def attempts(self, sweep=None, run_ids=None) -> pd.DataFrame:
        """Every attempt of every run: one runs row per (run_id, attempt), its latest write. For status
        displays; analyses use `runs`, which picks one attempt per run."""
        return queries.attempts(self.root, sweep, run_ids)

    def runs(self, sweep=None, method=None, task=None, seed=None, status=None, run_ids=None) -> pd.DataFrame:
        """One row per run_id: its latest finished attempt, else its latest attempt; filtered by any of the
        arguments (scalar or list). A newer running or failed attempt of a finished run does not hide it."""
        return queries.runs(self.root, sweep, method, task, seed, status, run_ids)

    def curves(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Curve rows of each run's chosen attempt (see `runs`), joined with method, variant, task, seed and
        status from runs."""
        return queries.join_runs(self.root, "curves", sweep, method, task, seed, run_ids, status)

    def timings(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Timing rows of each run's chosen attempt (see `runs`), joined with method, variant, task, seed and
        status from runs."""
        return queries.join_runs(self.root, "timings", sweep, method, task, seed, run_ids, status)

    def episodes(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Eval-episode rows of each run's chosen attempt (see `runs`), joined like `curves`. Empty for runs and
        stores that predate the table (schema 3)."""
        return queries.join_runs(self.root, "episodes", sweep, method, task, seed, run_ids, status)

    def finished_run_ids(self, sweep: str) -> set[str]:
        return set(self.runs(sweep=sweep, status="finished")["run_id"])

    # -- maintenance
    def compact(self, sweep=None, tables: Iterable[str] = TABLES, stale_tmp_s: float = 3600.0) -> dict:
        """Merge each sweep partition's files into one file without changing any query result (compaction.py).
        Returns counts of files before and after."""
        return compaction.compact(self.root, sweep, tables, stale_tmp_s)
