"""Compaction (`mbench store compact`): each sweep partition's many small files merged into one.

Why: a large sweep writes thousands of per-attempt files, which are slow to list and open. Compaction must
change no query result and lose no write, while runs keep writing: the merged file is written (atomically)
before the files it replaces are deleted, so a reader sees every row at every moment (briefly twice, which
queries resolve), and a source file is deleted only if it is unchanged since it was read, so a run that
rewrites its file meanwhile keeps its new rows. Temporary files older than `stale_tmp_s` (left by killed
writers) are removed.
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from results.atomic import TMP_PREFIX
from results.layout import COMPACTED_PREFIX, list_files, sweep_dir, table_dir
from results.reading import as_values, scan
from results.schema import SCHEMAS, TABLES, with_metadata
from results.writes import write_parquet

RETIRED_PREFIX = ".retired-"


def compact(root: Path, sweep=None, tables: Iterable[str] = TABLES, stale_tmp_s: float = 3600.0) -> dict:
    """Merge each sweep partition's files into one file without changing any query result. Returns counts."""
    stats = {"files_before": 0, "files_after": 0}
    sweeps = as_values(sweep) if sweep is not None else None
    for table in tables:
        base = table_dir(root, table)
        if not base.is_dir():
            continue
        names = sweeps if sweeps is not None else [
            p.name[len("sweep="):] for p in base.iterdir() if p.name.startswith("sweep=")
        ]
        for name in names:
            folder = sweep_dir(root, table, name)
            remove_stale_tmp(folder, stale_tmp_s)
            files = list_files(root, table, [name])
            stats["files_before"] += len(files)
            if len(files) <= 1:
                stats["files_after"] += len(files)
                continue
            before = {f: _identity(f) for f in files}
            merged = merge(root, table, files)
            out = folder / f"{COMPACTED_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
            write_parquet(merged, out, compression="zstd")
            for f in files:
                _retire(Path(f), before[f])
            stats["files_after"] += len(list_files(root, table, [name]))
    return stats


def merge(root: Path, table: str, files: list[str]) -> pa.Table:
    """The rows of `files` that any query can return: every attempt's latest write."""
    frame = scan(root, table, files).to_pandas()
    if table == "runs":
        frame = frame.sort_values(["attempt", "_written_ns"], na_position="first", kind="stable")
        frame = frame.drop_duplicates(["run_id", "attempt"], keep="last")
    else:
        latest = frame.groupby(["run_id", "attempt"], sort=False)["_written_ns"].transform("max")
        frame = frame[frame["_written_ns"] == latest]
        frame = frame.drop_duplicates(["run_id", "attempt", "_written_ns", "_row"])
    frame = frame.sort_values(["run_id", "attempt", "_row"], kind="stable")
    return pa.Table.from_pandas(frame, schema=with_metadata(SCHEMAS[table], table), preserve_index=False)


def remove_stale_tmp(folder: Path, stale_tmp_s: float) -> None:
    now = time.time()
    for path in [*folder.glob(f"{TMP_PREFIX}*"), *folder.glob(f"{RETIRED_PREFIX}*")]:
        try:
            if now - path.stat().st_mtime > stale_tmp_s:
                path.unlink()
        except FileNotFoundError:
            pass


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
    tomb = path.with_name(f"{RETIRED_PREFIX}{uuid.uuid4().hex}-{path.name}")
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
