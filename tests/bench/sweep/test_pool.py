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


def test_the_local_pool_takes_runs_seed_by_seed():
    """A sweep expands methods x seeds; the local pool's queue holds them seed by seed (each seed's runs in the
    sweep's order), so a launch cut short leaves whole seeds done and a seed's common start serves its runs."""
    from bench.sweep.launch import seed_major

    tasks = [{"method": m, "seed": s} for m in ("a", "b", "c") for s in (102, 100, 101)]
    assert [(t["seed"], t["method"]) for t in seed_major(tasks)] == [
        (102, "a"), (102, "b"), (102, "c"), (100, "a"), (100, "b"), (100, "c"), (101, "a"), (101, "b"), (101, "c")]


def test_a_pool_worker_gets_a_run_s_time_for_every_run_it_may_take(tmp_path, monkeypatch):
    """resources.time is a run's limit. A local pool worker runs queued runs one after another, as many as it
    takes (at most all), so its job's limit is a run's limit times the runs queued: a worker given one run's time
    was killed 30 minutes into the demo, its last runs left preempted. A job of one run keeps one run's limit."""
    import submitit

    from bench.sweep import launch as launch_mod
    from bench.sweep.spec import load_sweep

    seen = []
    real = launch_mod.make_executor

    def spy(*args, **kwargs):
        ex = real(*args, **kwargs)
        seen.append(ex._executor.parameters["timeout_min"])
        return ex

    class Stop(Exception):
        pass

    def no_submit(self, fn, items):
        raise Stop

    monkeypatch.setattr(launch_mod, "make_executor", spy)
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", no_submit)
    sweep = tmp_path / "s.yaml"
    for par, want in ((2, 7 * 5), (5, 7)):  # 5 runs: a pool of 2 workers; 5 jobs of one run each
        sweep.write_text("name: pooltime\nmethods: [bc_gauss]\ntasks: [demo]\nseeds: [0, 1, 2, 3, 4]\n"
                         f"resources: {{cpus: 1, gpus: 0, time: 7, array_parallelism: {par}}}\nexecutor: local\n")
        try:
            launch_mod.launch(load_sweep(sweep), store_root=tmp_path / f"store{par}", out=lambda s: None)
        except Stop:
            pass
        assert seen[-1] == want, (par, seen)
