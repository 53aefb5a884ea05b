"""Tests of the results store: atomic concurrent writes, queries, attempts, compaction, versions, names."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results import store as store_mod
from results.store import SCHEMA_VERSION, SchemaVersionError, Store

SWEEP = "sw1"


def run_row(run_id, method="bc_dp", task="demo", seed=0, status="finished", attempt=0, **extra):
    row = {"run_id": run_id, "sweep_id": SWEEP, "method": method, "variant": "", "suite": "demo", "task": task,
           "dataset": "demo/medium-v0", "seed": seed, "config_json": {"seed": seed}, "status": status,
           "error": None, "git_sha": "abc", "host": "h", "device": "cpu", "versions": {"torch": "x"},
           "started_at": 1.7e9, "finished_at": None, "wall_s": 1.0, "env_steps": 10, "grad_steps": 10,
           "attempt": attempt}
    row.update(extra)
    return row


def curve_rows(run_id, n, scale=1.0):
    return [{"run_id": run_id, "phase": "finetune", "env_step": 100 * k, "grad_step": 10 * k, "wall_s": 0.5 * k,
             "actor": "dp", "metric": "normalized_score", "value": scale * k, "n_episodes": 10}
            for k in range(n)]


def timing_rows(run_id):
    return [{"run_id": run_id, "component": "plan", "device": "cpu", "batch": 1, "warmup": 2, "reps": 5,
             "mean_ms": 1.0, "p50_ms": 0.9, "p90_ms": 1.5, "p99_ms": 2.0, "threads": 2, "compiled": False,
             "horizon": 5, "samples": 64, "iterations": 2, "denoising_steps": None, "terminal": "v"}]


def test_roundtrip_and_filters(tmp_path):
    store = Store(tmp_path)
    for i, (method, seed) in enumerate([("bc_dp", 0), ("bc_dp", 1), ("bc_gauss", 0)]):
        store.write_run(run_row(f"r{i}", method=method, seed=seed, git_dirty=True))
        store.write_curves(SWEEP, f"r{i}", curve_rows(f"r{i}", 3))
        store.write_timings(SWEEP, f"r{i}", pd.DataFrame(timing_rows(f"r{i}")))
    store.write_run(run_row("r9", status="failed", error="Traceback ..."))
    runs = store.runs(sweep=SWEEP)
    assert list(runs["run_id"]) == ["r0", "r1", "r2", "r9"]
    assert set(store.runs(method="bc_dp", seed=[1])["run_id"]) == {"r1"}
    assert store.finished_run_ids(SWEEP) == {"r0", "r1", "r2"}
    assert '"git_dirty": true' in runs.loc[0, "extra_json"]
    assert runs["started_at"].dt.tz is not None
    curves = store.curves(sweep=SWEEP, method="bc_dp")
    assert set(curves["run_id"]) == {"r0", "r1"} and len(curves) == 6
    assert {"method", "task", "seed", "variant"} <= set(curves.columns)
    timings = store.timings(sweep=SWEEP, run_ids=["r2"])
    assert timings.loc[0, "method"] == "bc_gauss" and timings.loc[0, "samples"] == 64
    # The whole curve is rewritten each time: the latest write replaces, it does not append.
    store.write_curves(SWEEP, "r0", curve_rows("r0", 5))
    assert len(store.curves(run_ids="r0")) == 5


def test_latest_attempt_wins_even_if_an_older_attempt_writes_late(tmp_path):
    store = Store(tmp_path)
    store.write_run(run_row("r0", status="preempted", attempt=0))
    store.write_run(run_row("r0", status="finished", attempt=1))
    store.write_run(run_row("r0", status="running", attempt=0))  # a zombie of attempt 0
    runs = store.runs()
    assert len(runs) == 1 and runs.loc[0, "attempt"] == 1 and runs.loc[0, "status"] == "finished"
    store.write_run(run_row("r0", status="running", attempt=2))
    assert store.runs().loc[0, "status"] == "running"
    assert store.finished_run_ids(SWEEP) == set()


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "..", "a..b", "_compacted-x", "x=y", "a\\b", 7])
def test_bad_names_are_rejected(tmp_path, bad):
    store = Store(tmp_path / "a" / "store")
    with pytest.raises(ValueError, match="invalid (run|sweep) id"):
        store.write_run({**run_row("r0"), "run_id": bad})
    with pytest.raises(ValueError, match="invalid sweep id"):
        store.write_curves(bad, "r0", curve_rows("r0", 2))
    with pytest.raises(ValueError, match="invalid run id"):
        store.write_timings(SWEEP, bad, timing_rows("r0"))
    with pytest.raises(ValueError, match="invalid sweep id"):
        store.runs(sweep=bad)
    assert not list(tmp_path.rglob("*.parquet"))


def test_newer_schema_version_gives_clear_error(tmp_path):
    store = Store(tmp_path)
    store.write_run(run_row("r0"))
    path = store._run_path("runs", SWEEP, "r1")
    table = pq.read_table(store._run_path("runs", SWEEP, "r0"))
    meta = dict(table.schema.metadata)
    meta[store_mod.VERSION_KEY] = str(SCHEMA_VERSION + 1).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        store.runs()


def test_older_files_missing_columns_read_as_nulls(tmp_path):
    store = Store(tmp_path)
    old = pa.table({"run_id": ["r0"], "component": ["plan"], "p50_ms": [1.0], "_written_ns": [1], "_row": [0]})
    old = old.replace_schema_metadata({store_mod.VERSION_KEY: b"1", store_mod.TABLE_KEY: b"timings"})
    path = store._run_path("timings", SWEEP, "r0")
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)
    store.write_run(run_row("r0"))
    timings = store.timings(sweep=SWEEP)
    assert timings.loc[0, "p50_ms"] == 1.0 and pd.isna(timings.loc[0, "p90_ms"])


def _queries(store):
    return {
        "runs": store.runs(),
        "finished": store.runs(status="finished"),
        "curves": store.curves(),
        "curves_m": store.curves(method="bc_gauss", seed=[0, 1]),
        "timings": store.timings(),
    }


def _assert_same(a, b):
    for key in a:
        pd.testing.assert_frame_equal(a[key].reset_index(drop=True), b[key].reset_index(drop=True), obj=key)


def test_compaction_leaves_queries_unchanged(tmp_path):
    store = Store(tmp_path)
    for i in range(12):
        method = ["bc_dp", "bc_gauss"][i % 2]
        store.write_run(run_row(f"r{i:02d}", method=method, seed=i // 2, status="running"))
        store.write_curves(SWEEP, f"r{i:02d}", curve_rows(f"r{i:02d}", 2))
        store.write_curves(SWEEP, f"r{i:02d}", curve_rows(f"r{i:02d}", 4, scale=i))
        store.write_timings(SWEEP, f"r{i:02d}", timing_rows(f"r{i:02d}"))
        store.write_run(run_row(f"r{i:02d}", method=method, seed=i // 2, status="finished", attempt=i % 3))
    (store._sweep_dir("curves", SWEEP) / ".tmp-stale-r00.parquet").write_bytes(b"torn")
    before = _queries(store)
    stats = store.compact(stale_tmp_s=0)
    assert stats["files_after"] == 3 and stats["files_before"] > 3
    assert not list(store._sweep_dir("curves", SWEEP).glob(".tmp-*"))
    _assert_same(before, _queries(store))
    # After compaction, a new write of a run still wins over its compacted copy, and compacting again
    # keeps that.
    store.write_curves(SWEEP, "r03", curve_rows("r03", 7, scale=-1))
    store.write_run(run_row("r03", method="bc_gauss", seed=1, status="failed", attempt=5))
    after_write = _queries(store)
    assert len(after_write["curves"].query("run_id == 'r03'")) == 7
    assert "r03" not in set(after_write["finished"]["run_id"])
    store.compact()
    _assert_same(after_write, _queries(store))


def test_compaction_keeps_a_write_that_lands_during_it(tmp_path, monkeypatch):
    store = Store(tmp_path)
    for i in range(3):
        store.write_run(run_row(f"r{i}"))
        store.write_curves(SWEEP, f"r{i}", curve_rows(f"r{i}", 2))
    real_merged = Store._merged

    def merged_then_write(self, table, files):
        result = real_merged(self, table, files)
        if table == "curves":  # a writer replaces r1's curve after compaction has read it
            self.write_curves(SWEEP, "r1", curve_rows("r1", 9))
        return result

    monkeypatch.setattr(Store, "_merged", merged_then_write)
    store.compact()
    assert len(store.curves(run_ids="r1")) == 9


# --------------------------------------------------------------------------------------------- concurrency
N_WRITERS = 64
N_EVALS = 4


def _writer(root, index, barrier):
    store = Store(root)
    run_id = f"run{index:03d}"
    barrier.wait()
    store.write_run(run_row(run_id, method=f"m{index % 4}", seed=index, status="running"))
    for n in range(1, N_EVALS + 1):
        store.write_curves(SWEEP, run_id, curve_rows(run_id, n, scale=index))
    store.write_run(run_row(run_id, method=f"m{index % 4}", seed=index, status="finished"))


def _reader(root, stop, results, compact):
    store = Store(root)
    reads, errors = 0, []
    while not stop.is_set():
        try:
            if compact:
                store.compact()
            runs = store.runs(sweep=SWEEP)
            curves = store.curves(sweep=SWEEP)
            assert set(runs["status"]) <= {"running", "finished"}
            for run_id, curve in curves.groupby("run_id"):
                # Every curve seen must be one whole write: steps 0..n-1, values index * k.
                n = len(curve)
                index = int(run_id[3:])
                assert 1 <= n <= N_EVALS, (run_id, n)
                assert list(curve["env_step"]) == [100 * k for k in range(n)], run_id
                assert np.allclose(curve["value"], index * np.arange(n)), run_id
            reads += 1
        except Exception as err:  # noqa: BLE001 - any reader error fails the test, reported below
            errors.append(f"{type(err).__name__}: {err}")
    results.put((reads, errors))


def test_concurrent_writers_and_readers(tmp_path):
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(N_WRITERS)
    stop = ctx.Event()
    results = ctx.Queue()
    readers = [ctx.Process(target=_reader, args=(str(tmp_path), stop, results, k == 1)) for k in range(2)]
    writers = [ctx.Process(target=_writer, args=(str(tmp_path), i, barrier)) for i in range(N_WRITERS)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(120)
        assert p.exitcode == 0
    time.sleep(0.3)  # let the readers see the final state too
    stop.set()
    outcomes = [results.get(timeout=60) for _ in readers]
    for p in readers:
        p.join(30)
    for reads, errors in outcomes:
        assert not errors, errors[:3]
        assert reads > 0
    store = Store(tmp_path)
    assert store.finished_run_ids(SWEEP) == {f"run{i:03d}" for i in range(N_WRITERS)}
    curves = store.curves(sweep=SWEEP)
    assert len(curves) == N_WRITERS * N_EVALS
    assert not list(tmp_path.rglob(".tmp-*")) and not list(tmp_path.rglob(".retired-*"))
