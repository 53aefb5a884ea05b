"""Where the store's files are, and which attempt of a run a file name holds.

The layout is Hive-style::

    <root>/table=runs|curves|timings|episodes/sweep=<sweep_id>/<run_id>+a<k>.parquet  (attempt k >= 1 of the run)
    <root>/table=runs|curves|timings|episodes/sweep=<sweep_id>/<run_id>.parquet       (attempt 0: files of older stores)
    <root>/table=<t>/sweep=<sweep_id>/_compacted-<hex>.parquet               (made by `mbench store compact`)

Names starting with '.' are temporary (`.tmp-<hex>-<name>`, results/atomic.py) or retired (`.retired-<hex>-`,
results/compaction.py) files, which no reader lists but attempt numbering counts.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from results.names import validate_name
from results.schema import TABLES

COMPACTED_PREFIX = "_compacted-"
_TMP_PREFIX_RE = re.compile(r"^\.(?:tmp|retired)-[0-9a-f]+-")


def table_dir(root: Path, table: str) -> Path:
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; the store has {TABLES}")
    return root / f"table={table}"


def sweep_dir(root: Path, table: str, sweep_id: str) -> Path:
    return table_dir(root, table) / f"sweep={validate_name(sweep_id, 'sweep id')}"


def attempt_part(attempt: int) -> str | None:
    """The file-name part of an attempt: none for attempt 0 (the legacy `<run_id>.parquet`), else a<k>."""
    return None if attempt == 0 else f"a{attempt}"


def run_path(root: Path, table: str, sweep_id: str, run_id: str, part: str | None = None) -> Path:
    # '+' is outside the name alphabet, so '<run_id>+<part>' never collides with another run's file.
    stem = validate_name(run_id, "run id") + (f"+{part}" if part else "")
    return sweep_dir(root, table, sweep_id) / f"{stem}.parquet"


def attempt_of_name(name: str, run_id: str) -> int | None:
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


def sweep_names(root: Path, table: str = "runs") -> list[str]:
    """Every sweep id that has a partition of `table`."""
    base = table_dir(root, table)
    if not base.is_dir():
        return []
    return sorted(p.name[len("sweep="):] for p in base.iterdir() if p.name.startswith("sweep="))


def list_files(root: Path, table: str, sweeps: list | None) -> list[str]:
    """The data files (not temporary ones) of `table` in `sweeps` (None: every sweep), sorted."""
    base = table_dir(root, table)
    if sweeps is None:
        dirs = [p for p in base.iterdir() if p.name.startswith("sweep=")] if base.is_dir() else []
    else:
        dirs = [sweep_dir(root, table, s) for s in sweeps]
    files = []
    for d in dirs:
        try:
            with os.scandir(d) as it:
                files.extend(e.path for e in it if e.name.endswith(".parquet") and not e.name.startswith("."))
        except FileNotFoundError:
            continue
    return sorted(files)
