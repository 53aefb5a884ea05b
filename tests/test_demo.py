"""`mbench demo` goes through the shipped sweep file and the sweep launcher's local worker pool."""
from __future__ import annotations

import json
import multiprocessing as mp

from results.store import Store


def _pop_all(path, out):
    from bench.sweep.pool import pop_task

    got = []
    while (t := pop_task(path)) is not None:
        got.append(t["i"])
    out.put(got)


def test_queue_hands_out_each_task_once_across_processes(tmp_path):
    from bench.sweep.pool import write_queue

    q = tmp_path / "q.json"
    write_queue(q, [{"i": i} for i in range(60)])
    out = mp.get_context("spawn").Queue()
    procs = [mp.get_context("spawn").Process(target=_pop_all, args=(q, out)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    flat = sorted(i for g in got for i in g)
    assert flat == list(range(60))
    assert json.loads(q.read_text())["next"] == 60


def test_demo_quick_runs_the_sweep_file_through_the_pool_and_skips_finished_runs(demo_dataset, tmp_path, capsys):
    from bench.demo import demo_spec, run_demo

    spec = demo_spec()
    assert spec.executor == "local" and spec.resources.array_parallelism == 2
    store = tmp_path / "store"
    report = run_demo(store_root=str(store), quick=True, seeds=2, methods="bc_gauss,bc_dp")
    out = capsys.readouterr().out
    assert "to 2 local workers" in out and "per family" in out and report.exists()
    runs = Store(store).runs(sweep="demo-quick")
    assert sorted(runs.method) == ["bc_dp", "bc_dp", "bc_gauss", "bc_gauss"] and (runs.status == "finished").all()
    run_demo(store_root=str(store), quick=True, seeds=2, methods="bc_gauss,bc_dp")
    assert "nothing to submit" in capsys.readouterr().out
