"""Attempt numbers: every try of a run (a resume, a rerun) writes under its own number, never over another's.

Why: attempts are immutable, so a rerun that fails cannot damage a finished run. A new attempt is numbered
from the FILE NAMES of all the tables (temporary files of writes under way included) and the rows of
compacted files, so a file that cannot be read still counts and is never overwritten. Nothing reserves the
number: two processes of one run would get the same one, which is why a run holds its run lock (results/
run_lock.py) from before it asks for a number until it ends.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from results.layout import COMPACTED_PREFIX, attempt_of_name, sweep_dir
from results.names import validate_name
from results.reading import unreadable, vanished
from results.schema import SCHEMAS, TABLES, StoreError


def check_attempt(value) -> int:
    attempt = int(value)
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    return attempt


def next_attempt(root: Path, sweep_id: str, run_id: str, retries: int = 20) -> int:
    """The attempt number a new try of the run must use: one more than any attempt the store holds.

    Compacted files, which hold many runs, are read for the run's attempts (one that cannot be read raises
    StoreError naming it). Attempt numbers start at 1; attempt 0 is the legacy file `<run_id>.parquet`.
    """
    validate_name(sweep_id, "sweep id")
    validate_name(run_id, "run id")
    for retry in range(retries):
        highest, compacted = 0, []
        for table in TABLES:
            folder = sweep_dir(root, table, sweep_id)
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                continue
            for name in names:
                k = attempt_of_name(name, run_id)
                if k is not None:
                    highest = max(highest, k)
                elif name.startswith(COMPACTED_PREFIX) and name.endswith(".parquet"):
                    compacted.append((table, folder / name))
        try:
            for table, path in compacted:
                highest = max(highest, _max_attempt_in(root, table, path, run_id))
        except FileNotFoundError:  # compacted away meanwhile: its rows are in a newer file; list again
            if retry == retries - 1:
                raise
            time.sleep(0.01 * (retry + 1))
            continue
        return highest + 1
    raise AssertionError("unreachable")


def _max_attempt_in(root: Path, table: str, path: Path, run_id: str) -> int:
    try:
        data = ds.dataset([str(path)], format="parquet", schema=SCHEMAS[table]).to_table(
            columns=["attempt"], filter=ds.field("run_id") == run_id)
    except (OSError, pa.ArrowException) as err:
        if isinstance(err, OSError) and vanished(err):
            raise FileNotFoundError(str(path)) from err
        raise StoreError(unreadable(root, path, err, f" (the attempts of run {run_id} cannot be counted)")) from None
    values = pc.fill_null(data["attempt"], 0)
    return int(pc.max(values).as_py() or 0) if data.num_rows else 0
