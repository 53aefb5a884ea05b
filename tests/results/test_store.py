"""Tests of the results store: atomic concurrent writes, queries, attempts, compaction, versions, names."""
from __future__ import annotations

import multiprocessing as mp
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from results import compaction, layout
from results import schema as store_schema
from results.schema import SCHEMA_VERSION, SchemaVersionError, StoreError
from results.store import Store

V2_COLUMNS = {"attempt", "kind", "actor", "actions_per_call", "updates_per_env_step"}

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
    store.write_run(run_row("r0", status="running", attempt=1))
    store.write_run(run_row("r0", status="running", attempt=0))  # a zombie of attempt 0
    runs = store.runs()
    assert len(runs) == 1 and runs.loc[0, "attempt"] == 1 and runs.loc[0, "status"] == "running"
    store.write_run(run_row("r0", status="finished", attempt=1))
    assert store.runs().loc[0, "status"] == "finished"
    assert store.finished_run_ids(SWEEP) == {"r0"}


def test_newer_running_or_failed_attempt_does_not_hide_a_finished_one(tmp_path):
    """Fault 1: attempts are immutable, and queries return the latest finished attempt."""
    store = Store(tmp_path)
    store.write_run(run_row("r0", status="running", attempt=1))
    store.write_curves(SWEEP, "r0", curve_rows("r0", 5), attempt=1)
    store.write_timings(SWEEP, "r0", timing_rows("r0"), attempt=1)
    store.write_run(run_row("r0", status="finished", attempt=1))
    # A rerun: its first write ("running", an empty curve so far), then setup fails.
    store.write_curves(SWEEP, "r0", [], attempt=2)
    store.write_run(run_row("r0", status="running", attempt=2))
    for status in ("running", "failed"):
        store.write_run(run_row("r0", status=status, attempt=2, error="FileNotFoundError: no dataset"))
        runs = store.runs(sweep=SWEEP)
        assert list(runs["status"]) == ["finished"] and list(runs["attempt"]) == [1]
        assert len(store.curves(sweep=SWEEP)) == 5 and set(store.curves(sweep=SWEEP)["attempt"]) == {1}
        assert len(store.timings(sweep=SWEEP)) == 1
        assert store.finished_run_ids(SWEEP) == {"r0"}
    every = store.attempts(sweep=SWEEP)
    assert list(every["attempt"]) == [1, 2] and list(every["status"]) == ["finished", "failed"]
    assert every.loc[1, "error"].startswith("FileNotFoundError")
    names = {p.name for p in tmp_path.rglob("*.parquet")}
    assert names == {"r0+a1.parquet", "r0+a2.parquet"}
    # A run that never finished shows its latest attempt, with its status.
    store.write_run(run_row("r1", status="preempted", attempt=1))
    store.write_run(run_row("r1", status="failed", attempt=2))
    assert store.runs(run_ids="r1").loc[0, "status"] == "failed"
    # A newer finished attempt wins over an older finished one.
    store.write_curves(SWEEP, "r0", curve_rows("r0", 7), attempt=3)
    store.write_run(run_row("r0", status="finished", attempt=3))
    assert store.runs(run_ids="r0").loc[0, "attempt"] == 3 and len(store.curves(run_ids="r0")) == 7


def test_next_attempt_counts_file_names_of_all_tables(tmp_path):
    store = Store(tmp_path)
    assert store.next_attempt(SWEEP, "r0") == 1
    store.write_run(run_row("r0", attempt=0))  # a legacy attempt-0 file
    assert store.next_attempt(SWEEP, "r0") == 1
    store.write_run(run_row("r0", status="running", attempt=1))
    assert store.next_attempt(SWEEP, "r0") == 2
    store.write_curves(SWEEP, "r0", curve_rows("r0", 2), attempt=3)  # a curve whose runs row never landed
    assert store.next_attempt(SWEEP, "r0") == 4
    store.write_timings(SWEEP, "r0", timing_rows("r0"), attempt=4)
    assert store.next_attempt(SWEEP, "r0") == 5
    # A write of attempt 6 under way (its temporary file) counts too; other runs' files do not.
    (layout.sweep_dir(store.root, "runs", SWEEP) / f".tmp-{'a' * 32}-r0+a6.parquet").write_bytes(b"")
    store.write_run(run_row("r0x", attempt=9))
    store.write_run(run_row("r", attempt=9))
    assert store.next_attempt(SWEEP, "r0") == 7
    assert store.next_attempt("other", "r0") == 1


def test_unreadable_file_is_named_counted_and_never_overwritten(tmp_path):
    """Fault 5: one unreadable file in a runs partition must not reset attempt numbering."""
    store = Store(tmp_path)
    store.write_run(run_row("r0", status="finished", attempt=1))
    store.write_run(run_row("r1", status="finished", attempt=1))
    bad = layout.run_path(store.root, "runs", SWEEP, "r0", "a2")
    bad.write_bytes(b"PAR1 this is not parquet")
    assert store.next_attempt(SWEEP, "r0") == 3 and store.next_attempt(SWEEP, "r1") == 2
    for query in (store.runs, store.curves, store.timings, store.attempts):
        with pytest.raises(StoreError) as err:
            query(sweep=SWEEP)
        msg = str(err.value)
        assert str(bad) in msg and "delete it, or move it out of the store" in msg and "\n" not in msg
    assert bad.read_bytes() == b"PAR1 this is not parquet"


@pytest.mark.parametrize("table", ["runs", "curves", "timings"])
def test_foreign_parquet_file_is_a_one_line_store_error(tmp_path, table):
    """Fault 8: a parquet file that is not ours names itself and the fix."""
    store = Store(tmp_path)
    store.write_run(run_row("r0"))
    store.write_curves(SWEEP, "r0", curve_rows("r0", 2))
    store.write_timings(SWEEP, "r0", timing_rows("r0"))
    foreign = layout.sweep_dir(store.root, table, SWEEP) / "exported.parquet"
    pd.DataFrame({"run_id": ["r0"], "x": [1.0]}).to_parquet(foreign)
    query = {"runs": store.runs, "curves": store.curves, "timings": store.timings}[table]
    with pytest.raises(StoreError) as err:
        query(sweep=SWEEP)
    msg = str(err.value)
    assert str(foreign) in msg and "not a results-store file" in msg and "move it out" in msg and "\n" not in msg
    # A store file of another table, misplaced, is named too.
    foreign.unlink()
    other = "curves" if table != "curves" else "runs"
    src = next(layout.sweep_dir(store.root, other, SWEEP).glob("*.parquet"))
    (layout.sweep_dir(store.root, table, SWEEP) / "misplaced.parquet").write_bytes(src.read_bytes())
    with pytest.raises(StoreError, match=f"holds the '{other}' table"):
        query(sweep=SWEEP)


def test_timing_metadata_columns_roundtrip(tmp_path):
    from methods.base import ComponentKind

    store = Store(tmp_path)
    store.write_run(run_row("r0", attempt=1))
    rows = [{**timing_rows("r0")[0], "component": "plan", "kind": ComponentKind.PLAN, "actor": "mpc",
             "actions_per_call": 4},
            {**timing_rows("r0")[0], "component": "update", "kind": "update", "actor": "",
             "actions_per_call": 1, "updates_per_env_step": 0.5}]
    store.write_timings(SWEEP, "r0", rows, attempt=1)
    t = store.timings(sweep=SWEEP).set_index("component")
    assert t.loc["plan", "kind"] == "plan" and t.loc["plan", "actor"] == "mpc"
    assert t.loc["plan", "actions_per_call"] == 4 and pd.isna(t.loc["plan", "updates_per_env_step"])
    assert t.loc["update", "updates_per_env_step"] == 0.5 and set(t["attempt"]) == {1}
    with pytest.raises(ValueError, match="unknown timing kind"):
        store.write_timings(SWEEP, "r0", [{**rows[0], "kind": "think"}], attempt=1)
    with pytest.raises(ValueError, match="attempts \\[2\\], not 1"):
        store.write_curves(SWEEP, "r0", [{**curve_rows("r0", 1)[0], "attempt": 2}], attempt=1)


def test_schema_version_1_files_read_with_nulls_and_attempt_0(tmp_path):
    """Version-1 stores: runs rows per attempt, but one curves/timings file per run with no attempt column."""
    assert SCHEMA_VERSION == 3
    store = Store(tmp_path)

    def write_v1(table, run_id, frame, part=None):
        fields = [f for f in store_schema.SCHEMAS[table] if table == "runs" or f.name not in V2_COLUMNS]
        frame = frame.reindex(columns=[f.name for f in fields])
        data = pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)
        data = data.replace_schema_metadata({store_schema.VERSION_KEY: b"1", store_schema.TABLE_KEY: table.encode()})
        path = layout.run_path(store.root, table, SWEEP, run_id, part)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, path)

    hidden = {"_written_ns": 1, "_row": 0}
    write_v1("runs", "r0", pd.DataFrame([{**run_row("r0", status="finished", attempt=1), "config_json": "{}",
                                          "versions": "{}", "started_at": None, **hidden}]), "a1")
    write_v1("runs", "r0", pd.DataFrame([{**run_row("r0", status="preempted", attempt=0), "config_json": "{}",
                                          "versions": "{}", "started_at": None, **hidden}]))
    write_v1("curves", "r0", pd.DataFrame([{**r, "sweep_id": SWEEP, **hidden, "_row": i}
                                           for i, r in enumerate(curve_rows("r0", 3))]))
    write_v1("timings", "r0", pd.DataFrame([{**timing_rows("r0")[0], "sweep_id": SWEEP, **hidden}]))
    assert list(store.runs()["attempt"]) == [1]
    curves = store.curves()
    assert len(curves) == 3 and set(curves["attempt"]) == {0}
    t = store.timings()
    assert len(t) == 1 and t.loc[0, "attempt"] == 0 and t.loc[0, "p50_ms"] == 0.9
    for col in ("kind", "actor", "actions_per_call", "updates_per_env_step"):
        assert pd.isna(t.loc[0, col]), col
    assert store.next_attempt(SWEEP, "r0") == 2
    # A new attempt that writes its own curve does not mix with the legacy one; the legacy one stays.
    store.write_curves(SWEEP, "r0", curve_rows("r0", 5), attempt=2)
    store.write_run(run_row("r0", status="finished", attempt=2))
    assert len(store.curves()) == 5 and len(store.timings()) == 1  # attempt 2 has no timings of its own yet
    assert layout.run_path(store.root, "curves", SWEEP, "r0").exists()


def episode_rows(n, actor="dp", env_step=0):
    return [{"phase": "finetune", "env_step": env_step, "grad_step": 10, "actor": actor, "episode": i,
             "reset_seed": 1000 + i, "return": 10.0 * i, "normalized_score": float(i), "success": None,
             "length": 200, "terminated": False} for i in range(n)]


def test_episodes_roundtrip_per_attempt_and_stores_without_them_read_empty(tmp_path):
    """Schema 3's episodes table: one row per eval episode, read per run's chosen attempt like curves."""
    store = Store(tmp_path)
    store.write_run(run_row("r0", attempt=1))
    assert store.episodes(sweep=SWEEP).empty  # a store (or a run) from before the table: empty, no error
    assert {"reset_seed", "return", "method", "seed"} <= set(store.episodes(sweep=SWEEP).columns)
    store.write_episodes(SWEEP, "r0", episode_rows(3), attempt=1)
    store.write_run(run_row("r0", status="running", attempt=2))
    store.write_episodes(SWEEP, "r0", episode_rows(2, env_step=5), attempt=2)  # unfinished: not chosen
    eps = store.episodes(sweep=SWEEP)
    assert list(eps["reset_seed"]) == [1000, 1001, 1002] and list(eps["return"]) == [0.0, 10.0, 20.0]
    assert set(eps["attempt"]) == {1} and eps["success"].isna().all() and set(eps["method"]) == {"bc_dp"}
    assert layout.run_path(store.root, "episodes", SWEEP, "r0", "a2").exists()
    assert store.next_attempt(SWEEP, "r0") == 3


def test_old_call_signatures_still_work(tmp_path):
    """The runner's current calls: write_curves/write_timings without attempt, runs rows from attempt 1."""
    store = Store(tmp_path)
    store.write_run(run_row("r0", status="running", attempt=1))
    store.write_curves(SWEEP, "r0", curve_rows("r0", 2))
    store.write_timings(SWEEP, "r0", timing_rows("r0"))
    store.write_run(run_row("r0", status="finished", attempt=1))
    assert len(store.curves()) == 2 and len(store.timings()) == 1
    # The rows' own attempt column is used when no attempt is given.
    store.write_curves(SWEEP, "r0", [{**r, "attempt": 1} for r in curve_rows("r0", 3)])
    assert layout.run_path(store.root, "curves", SWEEP, "r0", "a1").exists() and len(store.curves()) == 3


def test_compaction_keeps_every_attempt_and_next_attempt(tmp_path):
    store = Store(tmp_path)
    for run_id in ("r0", "r1"):
        store.write_curves(SWEEP, run_id, curve_rows(run_id, 4), attempt=1)
        store.write_run(run_row(run_id, status="finished", attempt=1))
        store.write_curves(SWEEP, run_id, curve_rows(run_id, 1, scale=-1), attempt=2)
        store.write_run(run_row(run_id, status="failed", attempt=2))
    before = {"runs": store.runs(), "curves": store.curves(), "attempts": store.attempts()}
    store.compact()
    assert not list(tmp_path.rglob("r0*.parquet"))
    _assert_same(before, {"runs": store.runs(), "curves": store.curves(), "attempts": store.attempts()})
    assert store.next_attempt(SWEEP, "r0") == 3  # read from the compacted files
    store.write_curves(SWEEP, "r0", curve_rows("r0", 6), attempt=3)
    store.write_run(run_row("r0", status="finished", attempt=3))
    assert len(store.curves(run_ids="r0")) == 6 and len(store.curves(run_ids="r1")) == 4
    compacted = next(layout.sweep_dir(store.root, "curves", SWEEP).glob("_compacted-*.parquet"))
    compacted.write_bytes(b"garbage")
    with pytest.raises(StoreError, match="cannot be counted.*delete it, or move it"):
        store.next_attempt(SWEEP, "r0")


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
    path = layout.run_path(store.root, "runs", SWEEP, "r1")
    table = pq.read_table(layout.run_path(store.root, "runs", SWEEP, "r0"))
    meta = dict(table.schema.metadata)
    meta[store_schema.VERSION_KEY] = str(SCHEMA_VERSION + 1).encode()
    pq.write_table(table.replace_schema_metadata(meta), path)
    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        store.runs()


def test_older_files_missing_columns_read_as_nulls(tmp_path):
    store = Store(tmp_path)
    old = pa.table({"run_id": ["r0"], "component": ["plan"], "p50_ms": [1.0], "_written_ns": [1], "_row": [0]})
    old = old.replace_schema_metadata({store_schema.VERSION_KEY: b"1", store_schema.TABLE_KEY: b"timings"})
    path = layout.run_path(store.root, "timings", SWEEP, "r0")
    path.parent.mkdir(parents=True)
    pq.write_table(old, path)
    store.write_run(run_row("r0"))
    timings = store.timings(sweep=SWEEP)
    assert timings.loc[0, "p50_ms"] == 1.0 and pd.isna(timings.loc[0, "p90_ms"])


def _queries(store):
    return {
        "attempts": store.attempts(),
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
    (layout.sweep_dir(store.root, "curves", SWEEP) / ".tmp-stale-r00.parquet").write_bytes(b"torn")
    before = _queries(store)
    stats = store.compact(stale_tmp_s=0)
    assert stats["files_after"] == 3 and stats["files_before"] > 3
    assert not list(layout.sweep_dir(store.root, "curves", SWEEP).glob(".tmp-*"))
    _assert_same(before, _queries(store))
    # After compaction, a new write of a run still wins over its compacted copy, and compacting again
    # keeps that.
    store.write_curves(SWEEP, "r03", curve_rows("r03", 7, scale=-1))
    store.write_run(run_row("r03", method="bc_gauss", seed=1, status="failed", attempt=5))
    after_write = _queries(store)
    assert len(after_write["curves"].query("run_id == 'r03'")) == 7
    # A newer failed attempt does not hide the finished one; it shows among the attempts.
    assert "r03" in set(after_write["finished"]["run_id"])
    assert store.attempts(run_ids="r03")["status"].iloc[-1] == "failed"
    store.compact()
    _assert_same(after_write, _queries(store))


def test_compaction_keeps_a_write_that_lands_during_it(tmp_path, monkeypatch):
    store = Store(tmp_path)
    for i in range(3):
        store.write_run(run_row(f"r{i}"))
        store.write_curves(SWEEP, f"r{i}", curve_rows(f"r{i}", 2))
    real_merge = compaction.merge

    def merge_then_write(root, table, files):
        result = real_merge(root, table, files)
        if table == "curves":  # a writer replaces r1's curve after compaction has read it
            store.write_curves(SWEEP, "r1", curve_rows("r1", 9))
        return result

    monkeypatch.setattr(compaction, "merge", merge_then_write)
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


@pytest.mark.slow
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
