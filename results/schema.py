"""The results store's four tables (runs, curves, timings, episodes): their schemas, version, and errors.

Every file carries the store's schema version and its table in its parquet metadata; a file from a newer
version is refused (SchemaVersionError) instead of being misread. Every row carries two hidden bookkeeping
columns, `_written_ns` (when the write happened) and `_row` (its position in that write).

Schema versions: 1, the first; 2 adds `attempt` to curves and timings, and the timed component's metadata to
timings (`kind`, `actor`, `actions_per_call`, `updates_per_env_step`). Version-1 files read with nulls there
(attempt 0; results/reading.py). 3 adds the `episodes` table: every eval episode's return, initial state (its
reset seed) and outcome, from which reports draw their intervals (analysis/bootstrap.py); stores without it
read with an empty episodes table.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 3
VERSION_KEY = b"modip_bench.schema_version"
TABLE_KEY = b"modip_bench.table"
TABLES = ("runs", "curves", "timings", "episodes")
# preempted: stopped by a signal (SIGTERM, a sweep job's SIGUSR2), saved; interrupted: stopped by Ctrl-C.
STATUSES = ("running", "finished", "failed", "preempted", "interrupted")
# What a timed component measures (methods.base.ComponentKind): an action, a plan, or a training update.
TIMING_KINDS = ("act", "plan", "update")
HIDDEN_COLUMNS = ["_written_ns", "_row"]

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
# One row per eval episode (schema 3): which eval (phase, env_step, grad_step, actor), which episode of it and
# its initial state (the env's reset seed: the same seed is the same state, on every eval point of a run and in
# every method's run of that run seed), and its outcome.
EPISODES_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("sweep_id", pa.string()),
        pa.field("attempt", pa.int64()),
        pa.field("phase", pa.string()),
        pa.field("env_step", pa.int64()),
        pa.field("grad_step", pa.int64()),
        pa.field("actor", pa.string()),
        pa.field("episode", pa.int64()),  # its position in the eval (0 ..)
        pa.field("reset_seed", pa.int64()),  # the initial state
        pa.field("return", pa.float64()),
        pa.field("normalized_score", pa.float64()),
        pa.field("success", pa.float64()),  # 0/1 where the env reports success, else null
        pa.field("length", pa.int64()),  # env steps
        pa.field("terminated", pa.bool_()),  # ended by the env (a fall, a success), not by the time limit
        pa.field("extra_json", pa.string()),
        *_HIDDEN,
    ]
)
SCHEMAS = {"runs": RUNS_SCHEMA, "curves": CURVES_SCHEMA, "timings": TIMINGS_SCHEMA, "episodes": EPISODES_SCHEMA}


class StoreError(RuntimeError):
    """The store's files cannot be read as this version of the code understands them."""


class SchemaVersionError(StoreError):
    """A file was written by a newer store schema than this code knows."""


def with_metadata(schema: pa.Schema, table: str) -> pa.Schema:
    """The table's schema stamped with the store's schema version and the table's name."""
    return schema.with_metadata({VERSION_KEY: str(SCHEMA_VERSION).encode(), TABLE_KEY: table.encode()})
