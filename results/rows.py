"""Rows given to the store, conformed to a table's schema: known columns cast, unknown ones folded into JSON.

Why: the runner, the timing command and the tests hand the store plain dicts and frames (epoch seconds or
datetimes, enums, nested dicts, NaN for missing); what lands on disk must be exactly the table's schema, so
every file of a table reads with one schema.
"""
from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from results.schema import SCHEMAS, with_metadata


def to_json_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, str):
        return str.__str__(value)
    return json.dumps(value, sort_keys=True, default=str)


def to_timestamp(value: Any) -> pd.Timestamp | None:
    """Accept epoch seconds, datetimes and ISO strings; store UTC."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return pd.Timestamp(float(value), unit="s", tz="UTC")
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def as_frame(rows: Any) -> pd.DataFrame:
    """A frame of `rows`: a DataFrame (copied), one mapping, or an iterable of mappings."""
    if isinstance(rows, pd.DataFrame):
        return rows.copy()
    if isinstance(rows, Mapping):
        return pd.DataFrame([dict(rows)])
    return pd.DataFrame(list(rows))


def isnull(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return True
    return v is pd.NA or v is pd.NaT


def _drop_nulls(record: Mapping[str, Any]) -> dict:
    return {k: v for k, v in record.items() if not (np.isscalar(v) and isnull(v)) and v is not None}


def to_table(table: str, frame: pd.DataFrame, written_ns: int) -> pa.Table:
    """Conform a frame to the table's schema: known columns cast, unknown ones folded into extra_json."""
    schema = SCHEMAS[table]
    known = set(schema.names)
    extras = [c for c in frame.columns if c not in known]
    if extras:
        if "extra_json" not in known:
            raise ValueError(f"unknown {table} columns {extras}; the {table} table has {schema.names}")
        packed = frame[extras].to_dict(orient="records")
        frame = frame.drop(columns=extras)
        frame["extra_json"] = [to_json_str(_drop_nulls(p)) for p in packed]
    frame["_written_ns"] = written_ns
    frame["_row"] = np.arange(len(frame), dtype=np.int32)
    arrays = []
    for field in schema:
        if field.name not in frame.columns:
            arrays.append(pa.nulls(len(frame), field.type))
            continue
        col = frame[field.name]
        if pa.types.is_timestamp(field.type):
            values = [to_timestamp(v) for v in col]
            arrays.append(pa.array(values, type=field.type, from_pandas=True))
        elif pa.types.is_string(field.type):
            arrays.append(
                pa.array([None if isnull(v) else to_json_str(v) for v in col], type=field.type)
            )
        elif pa.types.is_boolean(field.type):
            arrays.append(pa.array([None if isnull(v) else bool(v) for v in col], type=field.type))
        elif pa.types.is_integer(field.type):
            arrays.append(pa.array([None if isnull(v) else int(v) for v in col], type=field.type))
        else:
            arrays.append(pa.array(pd.to_numeric(col, errors="raise"), type=field.type, from_pandas=True))
    return pa.Table.from_arrays(arrays, schema=with_metadata(schema, table))
