"""The results store: a folder of parquet files that every run writes and every analysis reads.

Why it looks like this: many jobs (Slurm arrays, local processes) finish at once and must never block on each
other or corrupt each other's results. So each run writes only its own files, each write goes to a temporary
name and is moved into place with `os.replace` (readers see the old file or the new one, never a torn one), and
there are no locks. The layout is Hive-style::

    <root>/table=runs|curves|timings/sweep=<sweep_id>/<run_id>+a<k>.parquet  (attempt k >= 1 of the run)
    <root>/table=runs|curves|timings/sweep=<sweep_id>/<run_id>.parquet       (attempt 0: files of older stores)
    <root>/table=<t>/sweep=<sweep_id>/_compacted-<hex>.parquet               (made by `mbench store compact`)

Attempts are immutable: every try of a run (a resume, a rerun) writes its runs row, its curve and its timings
under its own attempt number, and never touches an earlier attempt's files, so a rerun that fails cannot damage
a finished run. `Store.next_attempt` numbers a new attempt from the FILE NAMES of all three tables (and the rows
of compacted files), so a file that cannot be read still counts and is never overwritten.

Queries (`runs`, `curves`, `timings`) return, per run_id, its latest *finished* attempt if it has one, else its
latest attempt (so a run that never finished still shows, with its status). Newer attempts that are running or
failed do not hide a finished one; `Store.attempts` lists every attempt (for `mbench sweep status`). A curve or
timing row carries its attempt; rows of attempt 0 (files of schema version 1, which had no attempt column, and
writes that give no attempt) stand in for an attempt that has no rows of its own, which is how version-1
stores, where a run's curve was one file replaced whole, still read.

Every row carries two hidden bookkeeping columns, `_written_ns` (when the write happened) and `_row` (its
position in that write). After compaction an attempt's rows can exist twice: in a compacted file and in a newer
per-attempt file; within an attempt only the rows of its latest write count. Every file carries the store's
schema version in its parquet metadata; a file from a newer version is refused with an error that says so,
instead of being misread, and a file that is not a store file (or cannot be read) gives a one-line StoreError
that names it and the fix.

Schema versions: 1, the first; 2 adds `attempt` to curves and timings, and the timed component's metadata to
timings (`kind`, `actor`, `actions_per_call`, `updates_per_env_step`). Version-1 files read with nulls there
(attempt 0).
"""
from __future__ import annotations

import enum
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

SCHEMA_VERSION = 2
VERSION_KEY = b"modip_bench.schema_version"
TABLE_KEY = b"modip_bench.table"
TABLES = ("runs", "curves", "timings")
COMPACTED_PREFIX = "_compacted-"
# Names become path components, so they are restricted to a safe alphabet: no '/', no '..', no leading dot
# (temporary and hidden files start with '.'), no leading '_' (reserved for compacted files), no '='.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
STATUSES = ("running", "finished", "failed", "preempted")
# What a timed component measures (methods.base.ComponentKind): an action, a plan, or a training update.
TIMING_KINDS = ("act", "plan", "update")

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
        pa.field("attempt", pa.int64()),  # schema 2; null (read as 0) in version-1 files
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
        pa.field("attempt", pa.int64()),  # schema 2; null (read as 0) in version-1 files
        pa.field("component", pa.string()),
        # What the component is (schema 2; null in version-1 files, which analysis reports as unknown):
        pa.field("kind", pa.string()),  # act | plan | update
        pa.field("actor", pa.string()),  # the actor an act or plan serves; null or "" for updates
        pa.field("actions_per_call", pa.int64()),  # env actions one call yields (a DP chunk, replan_every)
        pa.field("updates_per_env_step", pa.float64()),  # for updates: how many per env step; else null
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
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return str.__str__(value)
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


def _check_attempt(value: Any) -> int:
    attempt = int(value)
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return attempt


def _attempt_part(attempt: int) -> str | None:
    """The file-name part of an attempt: none for attempt 0 (the legacy `<run_id>.parquet`), else a<k>."""
    return None if attempt == 0 else f"a{attempt}"


_TMP_PREFIX_RE = re.compile(r"^\.(?:tmp|retired)-[0-9a-f]+-")


def _attempt_of_name(name: str, run_id: str) -> int | None:
    """The attempt a file name holds for `run_id` (temporary and retired names included), else None."""
    name = _TMP_PREFIX_RE.sub("", name, count=1)
    if name == f"{run_id}.parquet":
        return 0
    prefix = f"{run_id}+a"
    if name.startswith(prefix) and name.endswith(".parquet"):
        digits = name[len(prefix):-len(".parquet")]
        if digits.isdigit():
            return int(digits)
    return None


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
        """Write (replace) the row of one attempt of a run (`row["attempt"]`, default 0) in its own file.

        Rewriting the same attempt (running -> finished) replaces that attempt's file only; other attempts'
        files are never touched, so a stale earlier attempt that writes late cannot hide a newer one.
        """
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
                row[key] = _to_json_str(row[key])
        attempt = _check_attempt(row["attempt"])
        table = _to_table("runs", pd.DataFrame([row]), time.time_ns())
        path = self._run_path("runs", row["sweep_id"], row["run_id"], _attempt_part(attempt))
        _atomic_write(table, path)
        return path

    def _write_rows(self, table_name: str, sweep_id: str, run_id: str, rows: Any, attempt: int | None) -> Path:
        validate_name(sweep_id, "sweep id")
        validate_name(run_id, "run id")
        frame = _frame(rows)
        if "run_id" in frame.columns and len(frame) and not (frame["run_id"] == run_id).all():
            bad = sorted(set(frame["run_id"].astype(str)) - {run_id})
            raise ValueError(f"{table_name} rows for run {run_id!r} carry other run ids {bad}")
        # The attempt: the argument, else the rows' own `attempt` column, else 0 (the legacy file).
        in_rows = sorted({int(a) for a in frame["attempt"] if not _isnull(a)}) if "attempt" in frame else []
        if attempt is None:
            if len(in_rows) > 1:
                raise ValueError(f"{table_name} rows for run {run_id!r} carry several attempts {in_rows}")
            attempt = in_rows[0] if in_rows else 0
        attempt = _check_attempt(attempt)
        if in_rows and in_rows != [attempt]:
            raise ValueError(f"{table_name} rows for run {run_id!r} carry attempts {in_rows}, not {attempt}")
        if table_name == "timings" and "kind" in frame.columns:
            kinds = {_to_json_str(k) for k in frame["kind"] if not _isnull(k)}
            if kinds - set(TIMING_KINDS):
                raise ValueError(f"unknown timing kind(s) {sorted(kinds - set(TIMING_KINDS))}; "
                                 f"expected one of {TIMING_KINDS}")
        frame["run_id"] = run_id
        frame["sweep_id"] = sweep_id
        frame["attempt"] = attempt
        table = _to_table(table_name, frame, time.time_ns())
        path = self._run_path(table_name, sweep_id, run_id, _attempt_part(attempt))
        _atomic_write(table, path)
        return path

    def write_curves(self, sweep_id: str, run_id: str, rows: Any, attempt: int | None = None) -> Path:
        """Replace the curve so far of one attempt of the run (rows: list of dicts or a DataFrame).

        attempt: the run's attempt (as in its runs row); None takes the rows' `attempt` column, else 0."""
        return self._write_rows("curves", sweep_id, run_id, rows, attempt)

    def write_timings(self, sweep_id: str, run_id: str, rows: Any, attempt: int | None = None) -> Path:
        """Replace the timing rows of one attempt of the run (attempt as in `write_curves`)."""
        return self._write_rows("timings", sweep_id, run_id, rows, attempt)

    # -- attempts
    def next_attempt(self, sweep_id: str, run_id: str, retries: int = 20) -> int:
        """The attempt number a new try of the run must use: one more than any attempt the store holds.

        Computed from the file names of all three tables (temporary files of writes under way included), so
        a file that cannot be read still counts and is never overwritten; compacted files, which hold many
        runs, are read for the run's attempts (one that cannot be read raises StoreError naming it). Attempt
        numbers start at 1; attempt 0 is the legacy file `<run_id>.parquet`.
        """
        validate_name(sweep_id, "sweep id")
        validate_name(run_id, "run id")
        for retry in range(retries):
            highest, compacted = 0, []
            for table in TABLES:
                folder = self._sweep_dir(table, sweep_id)
                try:
                    names = os.listdir(folder)
                except FileNotFoundError:
                    continue
                for name in names:
                    k = _attempt_of_name(name, run_id)
                    if k is not None:
                        highest = max(highest, k)
                    elif name.startswith(COMPACTED_PREFIX) and name.endswith(".parquet"):
                        compacted.append((table, folder / name))
            try:
                for table, path in compacted:
                    highest = max(highest, self._max_attempt_in(table, path, run_id))
            except FileNotFoundError:  # compacted away meanwhile: its rows are in a newer file; list again
                if retry == retries - 1:
                    raise
                time.sleep(0.01 * (retry + 1))
                continue
            return highest + 1
        raise AssertionError("unreachable")

    def _max_attempt_in(self, table: str, path: Path, run_id: str) -> int:
        try:
            data = ds.dataset([str(path)], format="parquet", schema=SCHEMAS[table]).to_table(
                columns=["attempt"], filter=ds.field("run_id") == run_id)
        except (OSError, pa.ArrowException) as err:
            if isinstance(err, OSError) and _vanished(err):
                raise FileNotFoundError(str(path)) from err
            raise StoreError(self._unreadable(path, err, f" (the attempts of run {run_id} cannot be counted)"))
        values = pc.fill_null(data["attempt"], 0)
        return int(pc.max(values).as_py() or 0) if data.num_rows else 0

    # -- reads
    def _unreadable(self, path: Any, err: BaseException | str, why: str = "") -> str:
        reason = err if isinstance(err, str) else (str(err).strip().splitlines() or [type(err).__name__])[0]
        return (f"cannot read {path}{why}: {reason[:200]}; it is not a results-store file that this code can "
                f"read: delete it, or move it out of the store {self.root}")

    def _scan(self, table: str, files: list[str], filter_expr=None) -> pa.Table:
        """Read `files` with the table's current schema; attempt nulls (version-1 files) read as 0."""
        schema = SCHEMAS[table]
        try:
            self._check_versions(ds.dataset(files, format="parquet"), table)
            # A fresh dataset for the scan: each file is then opened once, and its footer and data come
            # from the same open file even if a writer replaces the path meanwhile (the check above
            # caches footers that could be stale by now). It projects onto the current schema, so
            # columns that an older file lacks come back as nulls.
            data = ds.dataset(files, format="parquet", schema=schema).to_table(filter=filter_expr)
        except StoreError:
            raise
        except (OSError, pa.ArrowException) as err:
            if isinstance(err, OSError) and _vanished(err):
                raise
            self._find_unreadable(table, files)
            raise
        if "attempt" in data.column_names:
            i = data.column_names.index("attempt")
            data = data.set_column(i, schema.field("attempt"), pc.fill_null(data["attempt"], 0))
        return data

    def _find_unreadable(self, table: str, files: list[str]) -> None:
        """After a failed read: raise StoreError naming the first file that cannot be read alone."""
        for f in files:
            try:
                self._check_versions(ds.dataset([f], format="parquet"), table)
                ds.dataset([f], format="parquet", schema=SCHEMAS[table]).to_table()
            except StoreError:
                raise
            except (OSError, pa.ArrowException) as err:
                if isinstance(err, OSError) and _vanished(err):
                    continue
                raise StoreError(self._unreadable(f, err)) from None

    def _read(self, table: str, sweeps: list | None, filter_expr=None, retries: int = 20) -> pa.Table:
        """Read every file of `table` in `sweeps`, with the current schema. A file that vanishes between
        listing and reading (replaced or compacted away) triggers a fresh listing."""
        for attempt in range(retries):
            files = self._files(table, sweeps)
            if not files:
                return SCHEMAS[table].empty_table()
            try:
                return self._scan(table, files, filter_expr)
            except OSError as err:
                if attempt == retries - 1 or not _vanished(err):
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _check_versions(self, dataset: ds.FileSystemDataset, table: str) -> None:
        for fragment in dataset.get_fragments():
            meta = fragment.physical_schema.metadata or {}
            raw = meta.get(VERSION_KEY)
            if raw is None:
                raise StoreError(
                    f"{fragment.path} has no {VERSION_KEY.decode()} metadata: it is not a results-store file; "
                    f"delete it, or move it out of the store {self.root}")
            try:
                version = int(raw)
            except ValueError:
                raise StoreError(self._unreadable(fragment.path, f"bad schema version {raw!r}")) from None
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{fragment.path} was written with results-store schema version {version}, but this "
                    f"code reads up to version {SCHEMA_VERSION}: upgrade modip-bench to read it"
                )
            found = meta.get(TABLE_KEY)
            if found is not None and found.decode(errors="replace") != table:
                raise StoreError(
                    f"{fragment.path} holds the {found.decode(errors='replace')!r} table but lies under "
                    f"table={table}: move it out of the store {self.root}, or delete it")

    def _attempt_frame(self, sweeps: list | None) -> pd.DataFrame:
        """Every attempt's latest-written runs row, hidden columns kept."""
        frame = self._read("runs", sweeps).to_pandas()
        if frame.empty:
            return frame
        frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
        return frame.drop_duplicates(["run_id", "attempt"], keep="last")

    def attempts(self, sweep=None, run_ids=None) -> pd.DataFrame:
        """Every attempt of every run: one runs row per (run_id, attempt), its latest write, in run_id then
        attempt order. For status displays; analyses use `runs`, which picks one attempt per run."""
        frame = self._attempt_frame(_values(sweep))
        values = _values(run_ids)
        if values is not None and not frame.empty:
            frame = frame[frame["run_id"].isin(values)]
        frame = frame.drop(columns=["_written_ns", "_row"])
        if frame.empty:
            return frame.reset_index(drop=True)
        return frame.sort_values(["run_id", "attempt"], kind="stable").reset_index(drop=True)

    def runs(self, sweep=None, method=None, task=None, seed=None, status=None, run_ids=None) -> pd.DataFrame:
        """One row per run_id: its latest finished attempt, else its latest attempt; filtered by any of the
        arguments (scalar or list). A newer running or failed attempt of a finished run does not hide it."""
        frame = self._attempt_frame(_values(sweep))
        if frame.empty:
            return frame.drop(columns=["_written_ns", "_row"])
        finished = (frame["status"] == "finished").to_numpy()
        frame = frame.assign(_finished=finished).sort_values(["_finished", "attempt", "_written_ns"],
                                                             kind="stable")
        frame = frame.drop_duplicates("run_id", keep="last").drop(columns=["_finished"])
        for column, wanted in (("method", method), ("task", task), ("seed", seed), ("status", status),
                               ("run_id", run_ids)):
            values = _values(wanted)
            if values is not None:
                frame = frame[frame[column].isin(values)]
        return frame.drop(columns=["_written_ns", "_row"]).sort_values("run_id").reset_index(drop=True)

    def _join_runs(self, table: str, sweep, method, task, seed, run_ids, status) -> pd.DataFrame:
        """The rows of each selected run's chosen attempt (the one `runs` returns), from that attempt's latest
        write, in run_id then row order, with the run's identity. An attempt with no rows of its own takes
        the run's attempt-0 rows (version-1 files, writes that gave no attempt).

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
        attempts = data["attempt"].to_numpy(zero_copy_only=False).astype(np.int64)
        position = pd.Index(runs["run_id"]).get_indexer(names)  # -1: not a selected run
        # The attempt each row must belong to: the run's chosen attempt, or attempt 0 where it has no rows.
        chosen = runs["attempt"].to_numpy().astype(np.int64)
        selected = position[codes] >= 0
        wanted = np.where(selected, chosen[np.maximum(position[codes], 0)], -1)
        own = selected & (attempts == wanted)
        has_own = np.zeros(len(names), dtype=bool)
        has_own[codes[own]] = True
        keep = own | (selected & ~has_own[codes] & (attempts == 0))
        # An attempt rewrites its rows whole; after compaction an older copy can remain: keep its latest write.
        latest = np.full(len(names), np.iinfo(np.int64).min)
        np.maximum.at(latest, codes[keep], written[keep])
        index = np.flatnonzero(keep & (written == latest[codes]))
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
        """Curve rows of each run's chosen attempt (see `runs`), joined with method, variant, task, seed and
        status from runs."""
        return self._join_runs("curves", sweep, method, task, seed, run_ids, status)

    def timings(self, sweep=None, method=None, task=None, seed=None, run_ids=None, status=None) -> pd.DataFrame:
        """Timing rows of each run's chosen attempt (see `runs`), joined with method, variant, task, seed and
        status from runs."""
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
        frame = self._scan(table, files).to_pandas()
        # Keep every attempt's latest write, so that no query result changes.
        if table == "runs":
            frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
            frame = frame.drop_duplicates(["run_id", "attempt"], keep="last")
        else:
            latest = frame.groupby(["run_id", "attempt"], sort=False)["_written_ns"].transform("max")
            frame = frame[frame["_written_ns"] == latest]
            frame = frame.drop_duplicates(["run_id", "attempt", "_written_ns", "_row"])
        frame = frame.sort_values(["run_id", "attempt", "_row"], kind="stable")
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
