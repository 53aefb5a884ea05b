"""A pool of local workers for one sweep: N jobs, each running the sweep's runs one after another.

Why: submitit's local executor starts every job of an array at once, so 25 runs on a 2-core machine would all
compete for the cores. With `executor: local` and `resources.array_parallelism: N`, the launcher instead starts
N local jobs (submitit subprocesses, one torch thread each as the runs' configs say), and each takes the next
run from a shared queue file under a lock until none is left, in the sweep's order (so the sweep file decides
what starts first: e.g. bc_dp before the methods that reuse its cached common start). Each run is still a
`SweepJob` call: the same signals, attempt log and store rows as on Slurm.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.sweep.job import SweepJob
from results.atomic import atomic_write
from results.locks import exclusive


def write_queue(path: Path, tasks: list[dict[str, Any]]) -> None:
    atomic_write(path, lambda handle: handle.write(json.dumps({"tasks": tasks, "next": 0}).encode()))


def pop_task(path: Path) -> dict[str, Any] | None:
    """The next task of the queue, or None when it is empty (atomic across processes)."""
    with exclusive(path.with_name(f"{path.name}.lock")):
        q = json.loads(path.read_text())
        if q["next"] >= len(q["tasks"]):
            return None
        task = q["tasks"][q["next"]]
        q["next"] += 1
        atomic_write(path, lambda handle: handle.write(json.dumps(q).encode()))
        return task


class SweepWorker:
    """One local job of the pool: runs queued tasks until the queue is empty; returns one outcome per run."""

    def __init__(self, store_root: str, sweep: str, queue: str, progress: bool = False):
        self.store_root, self.sweep, self.queue, self.progress = store_root, sweep, queue, progress

    def __call__(self, worker: int) -> list[dict[str, Any]]:
        job = SweepJob(self.store_root, self.sweep, progress=self.progress)
        out = []
        while (task := pop_task(Path(self.queue))) is not None:
            try:
                res = job(task)
                out.append({"worker": worker, **res})
            except Exception as e:  # noqa: BLE001 - recorded in the store and the attempt log; go on
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                out.append({"worker": worker, "run_id": task["run_id"], "status": "failed",
                            "error": f"{type(e).__name__}: {first}"[:300]})
        return out
