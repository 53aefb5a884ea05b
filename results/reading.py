"""Reading the store's files: each table with today's schema, older versions included, unreadable files named.

Why: many processes write the store while it is read, and it may hold files of older schema versions or files
that are not the store's. So a read projects every file onto the current schema (columns an older file lacks
read as nulls; a version-1 file's missing `attempt` reads as 0), refuses a file of a newer version
(SchemaVersionError), names the first file that cannot be read in one line (StoreError), and lists again when
a file vanishes between listing and reading (replaced or compacted away).
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from results.layout import list_files
from results.schema import SCHEMA_VERSION, SCHEMAS, TABLE_KEY, VERSION_KEY, SchemaVersionError, StoreError


def as_values(value: Any) -> list | None:
    """A filter value: None (no filter), a scalar, or an iterable of allowed values."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, int, np.integer)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def vanished(err: OSError) -> bool:
    if isinstance(err, FileNotFoundError):
        return True
    text = str(err)
    return "No such file" in text or "not found" in text.lower() or "does not exist" in text


def unreadable(root: Path, path: Any, err: BaseException | str, why: str = "") -> str:
    reason = err if isinstance(err, str) else (str(err).strip().splitlines() or [type(err).__name__])[0]
    # Arrow repeats the path in its reason ("Could not read schema from '<path>' ...: <why>"): the line names
    # the path once, whole, and keeps the reason's last part (the why), so that nothing is cut mid-path.
    reason = reason.replace(str(path), "the file")
    if len(reason) > 160:
        reason = reason.rsplit("': ", 1)[-1]
    if len(reason) > 160:
        reason = reason[:157].rsplit(" ", 1)[0] + " ..."
    return (f"cannot read {path}{why}: {reason}; it is not a results-store file that this code can "
            f"read: delete it, or move it out of the store {root}")


def check_links(root: Path, files: list[str]) -> None:
    """A symbolic link whose target is gone is junk, not a file that vanished mid-read: name it at once."""
    for f in files:
        if os.path.islink(f) and not os.path.exists(f):
            raise StoreError(f"cannot read {f}: it is a symbolic link to {os.readlink(f)}, which does not exist; "
                             f"delete it, or move it out of the store {root}")


def check_versions(root: Path, dataset: ds.FileSystemDataset, table: str) -> None:
    for fragment in dataset.get_fragments():
        meta = fragment.physical_schema.metadata or {}
        raw = meta.get(VERSION_KEY)
        if raw is None:
            raise StoreError(
                f"{fragment.path} has no {VERSION_KEY.decode()} metadata: it is not a results-store file; "
                f"delete it, or move it out of the store {root}")
        try:
            version = int(raw)
        except ValueError:
            raise StoreError(unreadable(root, fragment.path, f"bad schema version {raw!r}")) from None
        if version > SCHEMA_VERSION:
            raise SchemaVersionError(
                f"{fragment.path} was written with results-store schema version {version}, but this "
                f"code reads up to version {SCHEMA_VERSION}: upgrade modip-bench to read it"
            )
        found = meta.get(TABLE_KEY)
        if found is not None and found.decode(errors="replace") != table:
            raise StoreError(
                f"{fragment.path} holds the {found.decode(errors='replace')!r} table but lies under "
                f"table={table}: move it out of the store {root}, or delete it")


def scan(root: Path, table: str, files: list[str], filter_expr=None) -> pa.Table:
    """Read `files` with the table's current schema; attempt nulls (version-1 files) read as 0."""
    schema = SCHEMAS[table]
    try:
        check_versions(root, ds.dataset(files, format="parquet"), table)
        # A fresh dataset for the scan: each file is then opened once, and its footer and data come
        # from the same open file even if a writer replaces the path meanwhile (the check above
        # caches footers that could be stale by now). It projects onto the current schema, so
        # columns that an older file lacks come back as nulls.
        data = ds.dataset(files, format="parquet", schema=schema).to_table(filter=filter_expr)
    except StoreError:
        raise
    except (OSError, pa.ArrowException) as err:
        if isinstance(err, OSError) and vanished(err):
            raise
        _find_unreadable(root, table, files)
        raise
    if "attempt" in data.column_names:
        i = data.column_names.index("attempt")
        data = data.set_column(i, schema.field("attempt"), pc.fill_null(data["attempt"], 0))
    return data


def _find_unreadable(root: Path, table: str, files: list[str]) -> None:
    """After a failed read: raise StoreError naming the first file that cannot be read alone."""
    for f in files:
        try:
            check_versions(root, ds.dataset([f], format="parquet"), table)
            ds.dataset([f], format="parquet", schema=SCHEMAS[table]).to_table()
        except StoreError:
            raise
        except (OSError, pa.ArrowException) as err:
            if isinstance(err, OSError) and vanished(err):
                continue
            raise StoreError(unreadable(root, f, err)) from None


def read_table(root: Path, table: str, sweeps: list | None, filter_expr=None, retries: int = 20) -> pa.Table:
    """Read every file of `table` in `sweeps`, with the current schema. A file that vanishes between
    listing and reading (replaced or compacted away) triggers a fresh listing."""
    for attempt in range(retries):
        files = list_files(root, table, sweeps)
        if not files:
            return SCHEMAS[table].empty_table()
        check_links(root, files)
        try:
            return scan(root, table, files, filter_expr)
        except OSError as err:
            if attempt == retries - 1 or not vanished(err):
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")
