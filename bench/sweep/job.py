"""The callable that a Slurm (or local) job runs: one run of a sweep, preemptible and resumable.

Why: a sweep job can be preempted, time out, be requeued by an admin (`scontrol requeue`) or be killed. Each of
these must end in a run that continues from its last checkpoint, never one that restarts from zero or that is
recorded as finished when it did not finish. The runner (bench.runner.run_one) owns checkpoints and the store
rows; this module owns the signals:

- SIGUSR2 (submitit's `--signal=USR2@<delay>` before the time limit, or a preemption notice): ask the run to
  stop at its next safe point (`request_stop`), which saves a checkpoint and records status=preempted; then
  hand over to submitit's own handler, which calls `checkpoint()` (the resubmission of this same callable),
  requeues the job and exits.
- SIGTERM (Slurm cancels or requeues the job; SIGKILL follows after KillWait): the same save, then exit
  without a result. Whether the job comes back is Slurm's decision (requeue: it does; scancel: it does not).
- SIGKILL: nothing can run; the last periodic checkpoint is what a relaunch resumes from.

Each attempt appends one JSON line to `<sweep dir>/attempts/<run_id>.jsonl` (job id, restart count, pid, the
env/grad step it started from, when its first training step began, how it ended): the sweep status and the
tests read how requeues actually went from there. A job that found its run finished already (another launch
ran it meanwhile) ends `skipped`, and is not counted as an attempt.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import time
import traceback
from pathlib import Path
from typing import Any

import submitit

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from bench.runner.stops import Preempted, request_stop
from results.sweeps import sweep_dir  # the one definition of a sweep's folder in the store

# A requeued job can start while its old process still ends (saving its checkpoint after SIGTERM, within
# Slurm's KillWait): it waits this long for the run's lock (results/run_lock.py), then stops with one line.
REQUEUE_LOCK_WAIT_S = 120.0


def _append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """One line per write; O_APPEND writes of a short line do not interleave between processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(row, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _slurm_ids() -> dict[str, Any]:
    env = os.environ
    array_job = env.get("SLURM_ARRAY_JOB_ID")
    task = env.get("SLURM_ARRAY_TASK_ID")
    return {
        "job_id": f"{array_job}_{task}" if array_job and task is not None else env.get("SLURM_JOB_ID"),
        "slurm_job_id": env.get("SLURM_JOB_ID"),
        "restart_count": int(env.get("SLURM_RESTART_COUNT", 0) or 0),
    }


class _Probe:
    """Records when the run's training starts, and from which progress (a resumed run starts past zero).

    Passed to the runner as its `on_start` hook, which it calls after setup and resume, right before the first
    training step.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def __call__(self, run: Any, resumed: bool) -> None:
        p = run.progress
        self.values.update(t_first_step=time.time(), resumed=bool(resumed), start_env_step=p.env_step,
                           start_grad_step=p.grad_step, run_attempt=p.attempt or 1)


class SweepJob(submitit.helpers.Checkpointable):
    """`SweepJob(store_root, sweep)(task)` runs one run spec; submitted with `executor.map_array`.

    `task` is a plain dict: {run_id, method, task, seed, overrides}. The config is resolved again inside the job
    (same code, same result) and must give the same run_id; a mismatch means the code changed under the sweep.
    """

    def __init__(self, store_root: str, sweep: str, progress: bool = False):
        self.store_root = str(store_root)
        self.sweep = sweep
        self.progress = progress

    # -- submitit's checkpoint protocol
    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """Resubmit this same callable. The run itself has already saved (see `__call__`); if submitit's handler
        got here first, the resubmitted job resumes from the run's last periodic checkpoint."""
        request_stop()
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def __call__(self, task: dict[str, Any]) -> dict[str, Any]:
        from bench.runner.lifecycle import run_one  # lazy: torch, gymnasium

        t_start = time.time()
        attempt: dict[str, Any] = {"run_id": task["run_id"], "t_start": t_start, "host": socket.gethostname(),
                                   "pid": os.getpid(), **_slurm_ids()}
        log = sweep_dir(self.store_root, self.sweep) / "attempts" / f"{task['run_id']}.jsonl"
        _append_jsonl(log, dict(attempt, event="start"))
        got: dict[str, int] = {}
        submitit_usr2 = signal.getsignal(signal.SIGUSR2)

        def on_signal(signum, frame):  # runs between bytecodes of the training loop: only set flags
            got.setdefault("signum", signum)
            request_stop()

        signal.signal(signal.SIGUSR2, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        probe = _Probe()
        try:
            cfg = resolve_config(task["method"], task["task"], int(task["seed"]), dict(task["overrides"]))
            if run_id_of(cfg) != task["run_id"]:
                raise RuntimeError(f"run {task['run_id']} resolves to {run_id_of(cfg)} here: the code or the "
                                   "config defaults changed since launch; relaunch the sweep")
            run_one(cfg, store_root=self.store_root, sweep_id=self.sweep, resume=True, progress=self.progress,
                    on_start=probe, lock_wait_s=REQUEUE_LOCK_WAIT_S)
        except Preempted:
            signum = got.get("signum", signal.SIGTERM)
            _append_jsonl(log, dict(attempt, **probe.values, event="preempted", signal=signal.Signals(signum).name,
                                    t_end=time.time()))
            if signum == signal.SIGUSR2 and callable(submitit_usr2):
                submitit_usr2(signum, None)  # checkpoint() + scontrol requeue + exit
            # SIGTERM: Slurm requeues or cancels this job itself; leave no result behind either way.
            raise SystemExit(128 + int(signum)) from None
        except BaseException as e:
            first = (str(e).splitlines() or [""])[0]
            _append_jsonl(log, dict(attempt, **probe.values, event="failed",
                                    error=f"{type(e).__name__}: {first}".rstrip(": "),
                                    traceback=traceback.format_exc(limit=5), t_end=time.time()))
            raise
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # No training step began: the run had finished already (another launch ran it meanwhile): skipped.
        end = dict(attempt, **probe.values, event="finished" if probe.values else "skipped", t_end=time.time())
        _append_jsonl(log, end)
        return {"run_id": task["run_id"], "status": "finished", **probe.values}


def read_attempts(store_root: str | os.PathLike, sweep: str) -> dict[str, list[dict[str, Any]]]:
    """run_id -> its attempt events, oldest first."""
    out: dict[str, list[dict[str, Any]]] = {}
    folder = sweep_dir(store_root, sweep) / "attempts"
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.jsonl")):
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by SIGKILL
                continue
        out[path.stem] = rows
    return out
