"""Queries: per run, its latest finished attempt (else its latest attempt), and that attempt's curve and timings.

Why: a run can have many attempts (resumes, reruns), and an analysis wants one per run: its latest *finished*
attempt if it has one, else its latest attempt (so a run that never finished still shows, with its status).
Newer attempts that are running or failed do not hide a finished one; `attempts` lists every attempt (for
`mbench sweep status`). A curve or timing row carries its attempt; rows of attempt 0 (files of schema version
1, which had no attempt column, and writes that give no attempt) stand in for an attempt that has no rows of
its own, which is how version-1 stores, where a run's curve was one file replaced whole, still read. After
compaction an attempt's rows can exist twice (in a compacted file and a newer per-attempt file): within an
attempt only the rows of its latest write count.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from results.reading import as_values, read_table
from results.schema import HIDDEN_COLUMNS


def attempt_frame(root: Path, sweeps: list | None) -> pd.DataFrame:
    """Every attempt's latest-written runs row, hidden columns kept."""
    frame = read_table(root, "runs", sweeps).to_pandas()
    if frame.empty:
        return frame
    frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
    return frame.drop_duplicates(["run_id", "attempt"], keep="last")


def attempts(root: Path, sweep=None, run_ids=None) -> pd.DataFrame:
    """Every attempt of every run: one runs row per (run_id, attempt), its latest write, in run_id then
    attempt order."""
    frame = attempt_frame(root, as_values(sweep))
    values = as_values(run_ids)
    if values is not None and not frame.empty:
        frame = frame[frame["run_id"].isin(values)]
    frame = frame.drop(columns=HIDDEN_COLUMNS)
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.sort_values(["run_id", "attempt"], kind="stable").reset_index(drop=True)


def runs(root: Path, sweep=None, method=None, task=None, seed=None, status=None, run_ids=None) -> pd.DataFrame:
    """One row per run_id: its latest finished attempt, else its latest attempt; filtered by any of the
    arguments (scalar or list)."""
    frame = attempt_frame(root, as_values(sweep))
    if frame.empty:
        return frame.drop(columns=HIDDEN_COLUMNS)
    finished = (frame["status"] == "finished").to_numpy()
    frame = frame.assign(_finished=finished).sort_values(["_finished", "attempt", "_written_ns"],
                                                         kind="stable")
    frame = frame.drop_duplicates("run_id", keep="last").drop(columns=["_finished"])
    for column, wanted in (("method", method), ("task", task), ("seed", seed), ("status", status),
                           ("run_id", run_ids)):
        values = as_values(wanted)
        if values is not None:
            frame = frame[frame[column].isin(values)]
    return frame.drop(columns=HIDDEN_COLUMNS).sort_values("run_id").reset_index(drop=True)


def join_runs(root: Path, table: str, sweep, method, task, seed, run_ids, status) -> pd.DataFrame:
    """The rows of each selected run's chosen attempt (the one `runs` returns), from that attempt's latest
    write, in run_id then row order, with the run's identity. An attempt with no rows of its own takes
    the run's attempt-0 rows (version-1 files, writes that gave no attempt).

    Done in Arrow and numpy rather than pandas, because a large sweep has millions of curve rows: the
    latest-write choice is a per-run max over dictionary codes, the join a take from the small runs
    table, and strings reach pandas through their dictionaries.
    """
    sweeps = as_values(sweep)
    chosen_runs = runs(root, sweep=sweeps, method=method, task=task, seed=seed, status=status, run_ids=run_ids)
    info_cols = ["method", "variant", "task", "seed", "status"]
    filt = None
    if any(v is not None for v in (method, task, seed, status, run_ids)):
        filt = ds.field("run_id").isin(pa.array(sorted(chosen_runs["run_id"]), type=pa.string()))
    data = read_table(root, table, sweeps, filt)
    if data.num_rows == 0 or chosen_runs.empty:
        frame = _fast_pandas(data.slice(0, 0)).drop(columns=HIDDEN_COLUMNS)
        for col in info_cols:
            frame[col] = pd.Series(dtype=chosen_runs[col].dtype if col in chosen_runs else object)
        return frame
    encoded = pc.dictionary_encode(data["run_id"]).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    written = data["_written_ns"].to_numpy()
    rows = data["_row"].to_numpy().astype(np.int64)
    row_attempts = data["attempt"].to_numpy(zero_copy_only=False).astype(np.int64)
    position = pd.Index(chosen_runs["run_id"]).get_indexer(names)  # -1: not a selected run
    # The attempt each row must belong to: the run's chosen attempt, or attempt 0 where it has no rows.
    chosen = chosen_runs["attempt"].to_numpy().astype(np.int64)
    selected = position[codes] >= 0
    wanted = np.where(selected, chosen[np.maximum(position[codes], 0)], -1)
    own = selected & (row_attempts == wanted)
    has_own = np.zeros(len(names), dtype=bool)
    has_own[codes[own]] = True
    keep = own | (selected & ~has_own[codes] & (row_attempts == 0))
    # An attempt rewrites its rows whole; after compaction an older copy can remain: keep its latest write.
    latest = np.full(len(names), np.iinfo(np.int64).min)
    np.maximum.at(latest, codes[keep], written[keep])
    index = np.flatnonzero(keep & (written == latest[codes]))
    codes, rows = codes[index], rows[index]
    if len(index) == 0:
        return join_runs(root, table, sweep, method, task, seed, [], status)
    # The same write can be present twice while a compaction is between writing and deleting its sources.
    counts = np.bincount(codes, minlength=len(names))
    top = np.full(len(names), -1)
    np.maximum.at(top, codes, rows)
    width = rows.max() + 1
    if np.any(counts[counts > 0] != top[counts > 0] + 1):
        _, first = np.unique(codes * width + rows, return_index=True)
        first = np.sort(first)
        index, codes, rows = index[first], codes[first], rows[first]
    rank = np.empty(len(names), dtype=np.int64)
    rank[np.argsort(names, kind="stable")] = np.arange(len(names))
    key = rank[codes] * width + rows
    if len(key) > 1 and np.any(np.diff(key) < 0):
        order = np.argsort(key, kind="stable")
        index, codes = index[order], codes[order]
    if len(index) != data.num_rows or np.any(index != np.arange(len(index))):
        data = data.take(pa.array(index))
    columns = {"run_id": names[codes]}
    columns.update(_fast_columns(data.drop_columns(["run_id", "_written_ns", "_row"])))
    for col in info_cols:
        columns[col] = chosen_runs[col].to_numpy()[position[codes]]
    return pd.DataFrame(columns, copy=False)


def _fast_columns(table: pa.Table) -> dict:
    """Columns as numpy arrays; strings built from their dictionaries (few distinct values, many rows), which
    avoids creating one Python string per row. Same values as table.to_pandas()."""
    columns = {}
    for field in table.schema:
        column = table[field.name]
        if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            encoded = pc.dictionary_encode(column).combine_chunks()
            values = np.asarray(encoded.dictionary.to_pylist() + [None], dtype=object)
            codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            columns[field.name] = values[codes] if len(codes) else np.array([], dtype=object)
        else:
            columns[field.name] = column.to_pandas().to_numpy()
    return columns


def _fast_pandas(table: pa.Table) -> pd.DataFrame:
    return pd.DataFrame(_fast_columns(table), copy=False) if table.num_columns else table.to_pandas()

