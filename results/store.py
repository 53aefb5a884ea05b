"""The results store: a folder of parquet files that every run writes and every analysis reads.

Why it looks like this: many jobs (Slurm arrays, local processes) finish at once and must never block on each
other or corrupt each other's results. So each run writes only its own files, each write goes to a temporary
name and is moved into place with `os.replace` (readers see the old file or the new one, never a torn one), and
there are no locks. The layout is Hive-style::

    <root>/table=runs|curves|timings/sweep=<sweep_id>/<run_id>.parquet      (one file per run, replaced whole)
    <root>/table=runs/sweep=<sweep_id>/<run_id>+a<k>.parquet                (the run's row for attempt k >= 1)
    <root>/table=<t>/sweep=<sweep_id>/_compacted-<hex>.parquet              (made by `mbench store compact`)

Every row carries two hidden bookkeeping columns, `_written_ns` (when the write happened) and `_row` (its
position in that write). After compaction a run's rows can exist twice: in a compacted file and in a newer
per-run file. Queries resolve that: for `runs`, the latest `attempt` of a run_id wins, and within an attempt
the latest write; for `curves` and `timings`, which a run rewrites whole, only the rows of its latest write
count. Every file carries the store's schema version in its parquet metadata; a file from a newer version is
refused with an error that says so, instead of being misread.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

SCHEMA_VERSION = 1
VERSION_KEY = b"modip_bench.schema_version"
TABLE_KEY = b"modip_bench.table"
TABLES = ("runs", "curves", "timings")
COMPACTED_PREFIX = "_compacted-"
# Names become path components, so they are restricted to a safe alphabet: no '/', no '..', no leading dot
# (temporary and hidden files start with '.'), no leading '_' (reserved for compacted files), no '='.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
STATUSES = ("running", "finished", "failed", "preempted")

_TS = pa.timestamp("us", tz="UTC")
_HIDDEN = [pa.field("_written_ns", pa.int64()), pa.field("_row", pa.int32())]

RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("sweep_id", pa.string()),
        pa.field("method", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("suite", pa.string()),
        pa.field("task", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("config_json", pa.string()),
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("git_sha", pa.string()),
        pa.field("host", pa.string()),
        pa.field("device", pa.string()),
        pa.field("versions", pa.string()),
        pa.field("started_at", _TS),
        pa.field("finished_at", _TS),
        pa.field("wall_s", pa.float64()),
        pa.field("env_steps", pa.int64()),
        pa.field("grad_steps", pa.int64()),
        pa.field("attempt", pa.int64()),
        # Anything else the runner records (git_dirty, dataset hash, parameter counts, ...) as one JSON object.
        pa.field("extra_json", pa.string()),
        *_HIDDEN,
    ]
)
CURVES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("sweep_id", pa.string()),
        pa.field("phase", pa.string()),
        pa.field("env_step", pa.int64()),
        pa.field("grad_step", pa.int64()),
        pa.field("wall_s", pa.float64()),
        pa.field("actor", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("n_episodes", pa.int64()),
        *_HIDDEN,
    ]
)
TIMINGS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("sweep_id", pa.string()),
        pa.field("component", pa.string()),
        pa.field("device", pa.string()),
        pa.field("batch", pa.int64()),
        pa.field("warmup", pa.int64()),
        pa.field("reps", pa.int64()),
        pa.field("mean_ms", pa.float64()),
        pa.field("p50_ms", pa.float64()),
        pa.field("p90_ms", pa.float64()),
        pa.field("p99_ms", pa.float64()),
        pa.field("threads", pa.int64()),
        pa.field("compiled", pa.bool_()),
        # The settings that drive the cost; null where a component has no such setting.
        pa.field("horizon", pa.int64()),
        pa.field("samples", pa.int64()),
        pa.field("iterations", pa.int64()),
        pa.field("denoising_steps", pa.int64()),
        pa.field("terminal", pa.string()),
        pa.field("extra_json", pa.string()),
        *_HIDDEN,
    ]
)
SCHEMAS = {"runs": RUNS_SCHEMA, "curves": CURVES_SCHEMA, "timings": TIMINGS_SCHEMA}


class StoreError(RuntimeError):
    """The store's files cannot be read as this version of the code understands them."""


class SchemaVersionError(StoreError):
    """A file was written by a newer store schema than this code knows."""


def validate_name(name: Any, kind: str = "name") -> str:
    """Return `name` if it is safe as a single path component, else raise ValueError naming it."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid {kind} {name!r}: use 1-200 characters from [A-Za-z0-9_.-], starting with a letter or "
            "digit, with no '..' (names become paths in the results store)"
        )
    return name


# ----------------------------------------------------------------------------------------------- conversion
def _to_json_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _to_timestamp(value: Any) -> pd.Timestamp | None:
    """Accept epoch seconds, datetimes and ISO strings; store UTC."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return pd.Timestamp(float(value), unit="s", tz="UTC")
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    if isinstance(rows, Mapping):
        return pd.DataFrame([dict(rows)])
    return pd.DataFrame(list(rows))


def _to_table(table: str, frame: pd.DataFrame, written_ns: int) -> pa.Table:
    """Conform a frame to the table's schema: known columns cast, unknown ones folded into extra_json."""
    schema = SCHEMAS[table]
    known = set(schema.names)
    extras = [c for c in frame.columns if c not in known]
    if extras:
        if "extra_json" not in known:
            raise ValueError(f"unknown {table} columns {extras}; the {table} table has {schema.names}")
        packed = frame[extras].to_dict(orient="records")
        frame = frame.drop(columns=extras)
        frame["extra_json"] = [_to_json_str(_drop_nulls(p)) for p in packed]
    frame["_written_ns"] = written_ns
    frame["_row"] = np.arange(len(frame), dtype=np.int32)
    arrays = []
    for field in schema:
        if field.name not in frame.columns:
            arrays.append(pa.nulls(len(frame), field.type))
            continue
        col = frame[field.name]
        if pa.types.is_timestamp(field.type):
            values = [_to_timestamp(v) for v in col]
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        elif pa.types.is_string(field.type):
            arrays.append(
                pa.array([None if _isnull(v) else _to_json_str(v) for v in col], type=field.type)
            )
        elif pa.types.is_boolean(field.type):
            arrays.append(pa.array([None if _isnull(v) else bool(v) for v in col], type=field.type))
        elif pa.types.is_integer(field.type):
            arrays.append(pa.array([None if _isnull(v) else int(v) for v in col], type=field.type))
        else:
            arrays.append(pa.array(pd.to_numeric(col, errors="raise"), type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=_with_metadata(schema, table))


def _isnull(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return True
    return v is pd.NA or v is pd.NaT


def _drop_nulls(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if not (np.isscalar(v) and _isnull(v)) and v is not None}


def _with_metadata(schema: pa.Schema, table: str) -> pa.Schema:
    return schema.with_metadata({VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()})


def _atomic_write(table: pa.Table, path: Path, compression: str = "snappy") -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename it over `path`.

    Per-run files are small and many, so they use the cheapest codec to open (snappy); compacted files are
    large and few, so they use zstd.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle, compression=compression)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _values(value: Any) -> list | None:
    """A filter value: None (no filter), a scalar, or an iterable of allowed values."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, np.integer)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


# ------------------------------------------------------------------------------------------------- the store
class Store:
    """Reads and writes one results store rooted at `root`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- paths
    def _table_dir(self, table: str) -> Path:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; the store has {TABLES}")
        return self.root / f"table={table}"

    def _sweep_dir(self, table: str, sweep_id: str) -> Path:
        return self._table_dir(table) / f"sweep={validate_name(sweep_id, 'sweep id')}"

    def _run_path(self, table: str, sweep_id: str, run_id: str, part: str | None = None) -> Path:
        # '+' is outside the name alphabet, so '<run_id>+<part>' never collides with another run's file.
        stem = validate_name(run_id, "run id") + (f"+{part}" if part else "")
        return self._sweep_dir(table, sweep_id) / f"{stem}.parquet"

    def sweeps(self) -> list[str]:
        """Every sweep id that has a runs partition."""
        base = self._table_dir("runs")
        if not base.is_dir():
            return []
        return sorted(p.name[len("sweep="):] for p in base.iterdir() if p.name.startswith("sweep="))

    def _files(self, table: str, sweeps: list | None) -> list[str]:
        base = self._table_dir(table)
        if sweeps is None:
            dirs = [p for p in base.iterdir() if p.name.startswith("sweep=")] if base.is_dir() else []
        else:
            dirs = [self._sweep_dir(table, s) for s in sweeps]
        files = []
        for d in dirs:
            try:
                with os.scandir(d) as it:
                    files.extend(
                        e.path for e in it if e.name.endswith(".parquet") and not e.name.startswith(".")
                    )
            except FileNotFoundError:
                continue
        return sorted(files)

    # -- writes
    def write_run(self, row: Mapping[str, Any]) -> Path:
        """Write (replace) one run's row. The latest attempt, then the latest write, wins in queries."""
        row = dict(row)
        for key in ("run_id", "sweep_id"):
            if key not in row:
                raise ValueError(f"a runs row needs {key!r}")
        validate_name(row["run_id"], "run id")
        validate_name(row["sweep_id"], "sweep id")
        if row.get("status") is not None and row["status"] not in STATUSES:
            raise ValueError(f"unknown run status {row['status']!r}; expected one of {STATUSES}")
        row.setdefault("attempt", 0)
        for key in ("config_json", "versions"):
            if key in row and not isinstance(row[key], str) and row[key] is not None:
                row[key] = _to_json_str(row[key])
        attempt = int(row["attempt"])
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        table = _to_table("runs", pd.DataFrame([row]), time.time_ns())
        # Each attempt has its own file, so a stale earlier attempt that writes late cannot hide a newer one.
        part = None if attempt == 0 else f"a{attempt}"
        path = self._run_path("runs", row["sweep_id"], row["run_id"], part)
        _atomic_write(table, path)
        return path

    def _write_rows(self, table_name: str, sweep_id: str, run_id: str, rows: Any) -> Path:
        validate_name(sweep_id, "sweep id")
        validate_name(run_id, "run id")
        frame = _frame(rows)
        if "run_id" in frame.columns and len(frame) and not (frame["run_id"] == run_id).all():
            bad = sorted(set(frame["run_id"].astype(str)) - {run_id})
            raise ValueError(f"{table_name} rows for run {run_id!r} carry other run ids {bad}")
        frame["run_id"] = run_id
        frame["sweep_id"] = sweep_id
        table = _to_table(table_name, frame, time.time_ns())
        path = self._run_path(table_name, sweep_id, run_id)
        _atomic_write(table, path)
        return path

    def write_curves(self, sweep_id: str, run_id: str, rows: Any) -> Path:
        """Replace the run's whole curve so far (rows: list of dicts or a DataFrame)."""
        return self._write_rows("curves", sweep_id, run_id, rows)

    def write_timings(self, sweep_id: str, run_id: str, rows: Any) -> Path:
        """Replace the run's timing rows."""
        return self._write_rows("timings", sweep_id, run_id, rows)

    # -- reads
    def _read(self, table: str, sweeps: list | None, filter_expr=None, retries: int = 20) -> pa.Table:
        """Read every file of `table` in `sweeps`, with the current schema. A file that vanishes between
        listing and reading (replaced or compacted away) triggers a fresh listing."""
        schema = SCHEMAS[table]
        for attempt in range(retries):
            files = self._files(table, sweeps)
            if not files:
                return schema.empty_table()
            try:
                self._check_versions(ds.dataset(files, format="parquet"), table)
                # A fresh dataset for the scan: each file is then opened once, and its footer and data come
                # from the same open file even if a writer replaces the path meanwhile (the check above
                # caches footers that could be stale by now). It projects onto the current schema, so
                # columns that an older file lacks come back as nulls.
                dataset = ds.dataset(files, format="parquet", schema=schema)
                return dataset.to_table(filter=filter_expr)
            except OSError as err:
                if attempt == retries - 1 or not _vanished(err):
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    @staticmethod
    def _check_versions(dataset: ds.FileSystemDataset, table: str) -> None:
        for fragment in dataset.get_fragments():
            meta = fragment.physical_schema.metadata or {}
            raw = meta.get(VERSION_KEY)
            if raw is None:
                raise StoreError(f"{fragment.path} has no {VERSION_KEY.decode()} metadata: not a store file")
            version = int(raw)
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{fragment.path} was written with results-store schema version {version}, but this "
                    f"code reads up to version {SCHEMA_VERSION}: upgrade modip-bench to read it"
                )

    def runs(self, sweep=None, method=None, task=None, seed=None, status=None, run_ids=None) -> pd.DataFrame:
        """One row per run_id (its latest attempt), filtered by any of the arguments (scalar or list)."""
        sweeps = _values(sweep)
        frame = self._read("runs", sweeps).to_pandas()
        if frame.empty:
            return frame.drop(columns=["_written_ns", "_row"])
        frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
        frame = frame.drop_duplicates("run_id", keep="last")
        for column, wanted in (("method", method), ("task", task), ("seed", seed), ("status", status),
                               ("run_id", run_ids)):
            values = _values(wanted)
            if values is not None:
                frame = frame[frame[column].isin(values)]
        return frame.drop(columns=["_written_ns", "_row"]).sort_values("run_id").reset_index(drop=True)

    def _join_runs(self, table: str, sweep, method, task, seed, run_ids, status) -> pd.DataFrame:
        """The latest write of each selected run's rows, in run_id then row order, with the run's identity.

        Done in Arrow and numpy rather than pandas, because a large sweep has millions of curve rows: the
        latest-write choice is a per-run max over dictionary codes, the join a take from the small runs
        table, and strings reach pandas through their dictionaries.
        """
        sweeps = _values(sweep)
        runs = self.runs(sweep=sweeps, method=method, task=task, seed=seed, status=status, run_ids=run_ids)
        info_cols = ["method", "variant", "task", "seed", "status"]
        filt = None
        if any(v is not None for v in (method, task, seed, status, run_ids)):
            filt = ds.field("run_id").isin(pa.array(sorted(runs["run_id"]), type=pa.string()))
        data = self._read(table, sweeps, filt)
        if data.num_rows == 0 or runs.empty:
            frame = _fast_pandas(data.slice(0, 0)).drop(columns=["_written_ns", "_row"])
            for col in info_cols:
                frame[col] = pd.Series(dtype=runs[col].dtype if col in runs else object)
            return frame
        encoded = pc.dictionary_encode(data["run_id"]).combine_chunks()
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
        written = data["_written_ns"].to_numpy()
        rows = data["_row"].to_numpy().astype(np.int64)
        # A run rewrites its rows whole; after compaction an older copy can remain: keep its latest write.
        latest = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(latest, codes, written)
        position = pd.Index(runs["run_id"]).get_indexer(names)  # -1: not a selected run
        index = np.flatnonzero((written == latest[codes]) & (position[codes] >= 0))
        codes, rows = codes[index], rows[index]
        if len(index) == 0:
            return self._join_runs(table, sweep, method, task, seed, [], status)
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
            columns[col] = runs[col].to_numpy()[position[codes]]
        return pd.DataFrame(columns, copy=False)

    def curves(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Curve rows (latest write per run), joined with method, variant, task, seed and status from runs."""
        return self._join_runs("curves", sweep, method, task, seed, run_ids, status)

    def timings(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Timing rows (latest write per run), joined with method, variant, task, seed and status from runs."""
        return self._join_runs("timings", sweep, method, task, seed, run_ids, status)

    def finished_run_ids(self, sweep: str) -> set[str]:
        return set(self.runs(sweep=sweep, status="finished")["run_id"])

    # -- maintenance
    def compact(self, sweep=None, tables: Iterable[str] = TABLES, stale_tmp_s: float = 3600.0) -> dict:
        """Merge each sweep partition's files into one file without changing any query result.

        The merged file is written (atomically) before the files it replaces are deleted, so a reader sees
        every row at every moment (briefly twice, which queries resolve). A source file is deleted only if
        it is unchanged since it was read, so a run that rewrites its file meanwhile keeps its new rows.
        Temporary files older than `stale_tmp_s` (left by killed writers) are removed. Returns counts.
        """
        stats = {"files_before": 0, "files_after": 0}
        sweeps = _values(sweep) if sweep is not None else None
        for table in tables:
            base = self._table_dir(table)
            if not base.is_dir():
                continue
            names = sweeps if sweeps is not None else [
                p.name[len("sweep="):] for p in base.iterdir() if p.name.startswith("sweep=")
            ]
            for name in names:
                folder = self._sweep_dir(table, name)
                self._remove_stale_tmp(folder, stale_tmp_s)
                files = self._files(table, [name])
                stats["files_before"] += len(files)
                if len(files) <= 1:
                    stats["files_after"] += len(files)
                    continue
                before = {f: _identity(f) for f in files}
                merged = self._merged(table, files)
                out = folder / f"{COMPACTED_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
                _atomic_write(merged, out, compression="zstd")
                for f in files:
                    _retire(Path(f), before[f])
                stats["files_after"] += len(self._files(table, [name]))
        return stats

    def _merged(self, table: str, files: list[str]) -> pa.Table:
        dataset = ds.dataset(files, format="parquet")
        self._check_versions(dataset, table)
        data = ds.dataset(files, format="parquet", schema=SCHEMAS[table]).to_table()
        frame = data.to_pandas()
        if table == "runs":
            # Keep every attempt's latest write, so that no query result changes.
            frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
            frame = frame.drop_duplicates(["run_id", "attempt"], keep="last")
        else:
            latest = frame.groupby("run_id", sort=False)["_written_ns"].transform("max")
            frame = frame[frame["_written_ns"] == latest].drop_duplicates(["run_id", "_written_ns", "_row"])
        frame = frame.sort_values(["run_id", "_row"], kind="stable")
        schema = _with_metadata(SCHEMAS[table], table)
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)

    @staticmethod
    def _remove_stale_tmp(folder: Path, stale_tmp_s: float) -> None:
        now = time.time()
        for path in [*folder.glob(".tmp-*"), *folder.glob(".retired-*")]:
            try:
                if now - path.stat().st_mtime > stale_tmp_s:
                    path.unlink()
            except FileNotFoundError:
                pass


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


def _identity(path: str) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _retire(path: Path, identity: tuple | None) -> None:
    """Delete a compacted source file, unless a writer replaced it after compaction read it.

    Rename first (atomic), then compare identities: if the renamed file is not the one that was read, a
    writer's newer file was caught, and it is linked back into place (os.link never clobbers, so an even
    newer write that has landed meanwhile is kept instead). No write is ever lost.
    """
    tomb = path.with_name(f".retired-{uuid.uuid4().hex}-{path.name}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return
    if _identity(str(tomb)) != identity:
        try:
            os.link(tomb, path)
        except FileExistsError:
            pass
    tomb.unlink(missing_ok=True)


def _vanished(err: OSError) -> bool:
    if isinstance(err, FileNotFoundError):
        return True
    text = str(err)
    return "No such file" in text or "not found" in text.lower() or "does not exist" in text


def now_utc() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------------- CLI
def default_root() -> str:
    return os.environ.get("MBENCH_STORE", "results")


def _cmd_compact(args: argparse.Namespace) -> int:
    store = Store(args.root or getattr(args, "store", None) or default_root())
    stats = store.compact(sweep=args.sweep)
    print(f"compacted {store.root}: {stats['files_before']} files -> {stats['files_after']}")
    return 0


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Add `store compact [--sweep ID] [--root DIR]` to the main CLI's subparsers."""
    store_parser = subparsers.add_parser("store", help="maintain the results store")
    store_sub = store_parser.add_subparsers(dest="store_command", required=True)
    compact = store_sub.add_parser("compact", help="merge small files without changing query results")
    compact.add_argument("--root", default=None,
                         help="store folder (default: mbench --store, else $MBENCH_STORE, else results)")
    compact.add_argument("--sweep", action="append", default=None, help="only this sweep (repeatable)")
    compact.set_defaults(func=_cmd_compact)
    return store_parser
