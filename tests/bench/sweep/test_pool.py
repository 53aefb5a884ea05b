"""The sweep launcher's local worker pool (bench/sweep/pool.py): its queue hands out each task once across
processes.
"""
from __future__ import annotations

import json
import multiprocessing as mp


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
