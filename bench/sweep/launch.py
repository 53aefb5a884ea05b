"""Launch a sweep as one submitit job array, and report where it stands.

Why: a researcher launches a sweep, walks away, and relaunches it after a crash, a code change or a cancelled
job. So launching is idempotent: runs already finished in the store are skipped, runs still queued or running
in Slurm are not submitted twice, and finished runs made at another git sha are reported as stale (rerun only
with `--rerun-stale`). Everything about the sweep that is not a result lives under `<store>/sweeps/<name>/`
(results/sweeps.py):

    launches.jsonl        one line per launch: when, git sha, executor, run ids, their job ids, the log folder
    submitit/<job id>/    submitit's pickles and the jobs' stdout/stderr
    attempts/<run>.jsonl  one line per job attempt (see bench/sweep/job.py)

The results themselves (runs, curves) are in the store, written by the runner; status reads both the store and
Slurm's accounting (sacct), since only Slurm knows about requeues and jobs that died without a word.
"""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit
from tqdm import tqdm

from bench.runner.provenance import git_state
from bench.sweep.job import SweepJob, _append_jsonl, read_attempts
from bench.sweep.pool import SweepWorker, write_queue
from bench.sweep.spec import RunSpec, SweepSpec, expand
from results.run_lock import run_is_live
from results.store import Store
from results.sweep_errors import SweepError
from results.sweeps import launches_path, read_launches, sweep_dir

ACTIVE_SLURM = ("PENDING", "RUNNING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "COMPLETING",
                "RESIZING", "SUSPENDED", "PREEMPTED", "SIGNALING", "STAGE_OUT", "STOPPED")


def make_executor(spec: SweepSpec, folder: Path, executor: str | None = None, n_jobs: int | None = None,
                  runs_per_job: int = 1):
    """A submitit executor for the sweep's resources. debug runs jobs in this process, local as subprocesses.

    `resources.time` is a run's limit: a job that runs `runs_per_job` runs one after another (a local pool
    worker) gets that many times it."""
    kind = executor or spec.executor
    res = spec.resources
    ex = submitit.AutoExecutor(folder=folder / "submitit" / "%j", cluster=kind)
    params: dict[str, Any] = {"name": f"mbench-{spec.name}", "timeout_min": int(res.time) * max(1, runs_per_job),
                              "cpus_per_task": int(res.cpus), "tasks_per_node": 1, "nodes": 1}
    if res.gpus:
        params["gpus_per_node"] = int(res.gpus)
    if kind == "slurm":
        parallel = res.array_parallelism if n_jobs is None else min(res.array_parallelism, n_jobs)
        params["slurm_array_parallelism"] = int(parallel)
        if res.partition:
            params["slurm_partition"] = res.partition
        if res.mem:
            params["slurm_mem"] = res.mem
        extra: dict[str, Any] = {"requeue": True}  # allow requeue even where the cluster's JobRequeue=0
        for key in ("account", "qos", "constraint"):
            if getattr(res, key):
                extra[key] = getattr(res, key)
        params["slurm_additional_parameters"] = extra
    elif res.mem_gb:
        params["mem_gb"] = res.mem_gb
    ex.update_parameters(**params)
    return ex


def git_sha() -> str:
    return git_state()[0]


def latest_job_ids(launches: list[dict[str, Any]]) -> dict[str, str]:
    """run_id -> the job id of its most recent submission."""
    jobs: dict[str, str] = {}
    for launch in launches:
        jobs.update(launch.get("jobs", {}))
    return jobs


# ---- Slurm queries ------------------------------------------------------------------------------------------
def have_slurm() -> bool:
    return shutil.which("sacct") is not None and shutil.which("squeue") is not None


def check_executor(kind: str) -> None:
    """Before anything is made: executor slurm needs Slurm's commands here (submitit submits with sbatch and
    runs with srun); one line naming the fix otherwise."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if kind == "slurm" and missing:
        raise SweepError(f"executor 'slurm', but Slurm is not available here (no {' or '.join(missing)} on PATH); "
                         "run with --executor local (this machine's cores) or debug, or from a Slurm login node")


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Job id (array form `<job>_<task>`) -> state, for the jobs the controller still knows as queued/running."""
    if not job_ids or not have_slurm():
        return {}
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(arrays), "-o", "%i|%T"], capture_output=True,
                             text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    states = {}
    for line in out.splitlines():
        if "|" in line:
            jid, state = line.strip().split("|", 1)
            states[jid] = state
    return states


def sacct_history(job_ids: list[str]) -> dict[str, list[str]]:
    """Job id -> every state Slurm's accounting recorded for it, oldest first (requeues included, `-D`)."""
    if not job_ids or not have_slurm():
        return {}
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["sacct", "-n", "-P", "-X", "-D", "-j", ",".join(arrays), "-o", "JobID,State,Start"],
                             capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    hist: dict[str, list[tuple[str, str]]] = {}
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3:
            continue
        jid, state, start = parts[0], parts[1].split()[0], parts[2]
        hist.setdefault(jid, []).append((start, state))
    return {jid: [s for _, s in rows] for jid, rows in hist.items()}


# ---- launch -------------------------------------------------------------------------------------------------
def plan(spec: SweepSpec, store_root, rerun_stale: bool = False,
         extra_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Which runs to submit, which to skip and why (finished, stale, still active)."""
    runs = spec.expand() if not extra_overrides else expand(spec, extra_overrides)
    frame = Store(store_root).runs(sweep=spec.name)
    status = dict(zip(frame["run_id"], frame["status"])) if len(frame) else {}
    shas = dict(zip(frame["run_id"], frame["git_sha"])) if len(frame) else {}
    sha = git_sha()
    finished = {r.run_id for r in runs if status.get(r.run_id) == "finished"}
    stale = {rid for rid in finished if shas.get(rid) not in (sha, None, "", "unknown") and sha != "unknown"}
    launches = read_launches(store_root, spec.name)
    jobs = latest_job_ids(launches)
    queued = squeue_states([jobs[r.run_id] for r in runs if r.run_id in jobs])
    active = {r.run_id for r in runs if jobs.get(r.run_id) in queued and r.run_id not in finished}
    skip = (finished - stale if rerun_stale else finished) | active
    todo = [r for r in runs if r.run_id not in skip]
    return {"runs": runs, "todo": todo, "finished": finished, "stale": stale, "active": active, "sha": sha,
            "stale_shas": sorted({shas[r] for r in stale})}


def launch(spec: SweepSpec, store_root="results", wait: bool = False, rerun_stale: bool = False,
           executor: str | None = None, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Submit the sweep's unfinished runs as one job array. Returns the plan plus `jobs` (submitit Job objects)."""
    kind = executor or spec.executor
    check_executor(kind)
    store_root = str(store_root)
    p = plan(spec, store_root, rerun_stale)
    folder = sweep_dir(store_root, spec.name)
    if p["stale"]:
        shas = ", ".join(s[:10] for s in p["stale_shas"])
        if rerun_stale:
            out(f"warning: rerunning {len(p['stale'])} finished runs made at another git sha ({shas}); "
                f"this is {p['sha'][:10]}")
        else:
            out(f"warning: {len(p['stale'])} finished runs of sweep {spec.name} were made at another git sha "
                f"({shas}; this is {p['sha'][:10]}): they are stale; pass --rerun-stale to rerun them")
    if p["active"]:
        out(f"{len(p['active'])} runs are still queued or running from an earlier launch: not resubmitted")
    todo: list[RunSpec] = p["todo"]
    p["jobs"] = []
    if not todo:
        out(f"sweep {spec.name}: nothing to submit ({len(p['finished'])} of {len(p['runs'])} runs finished, "
            f"{len(p['active'])} queued or running)")
        return p
    tasks = [{"run_id": r.run_id, "method": r.method, "task": r.task, "seed": r.seed, "overrides": r.overrides}
             for r in todo]
    t_submit = time.time()
    workers = min(int(spec.resources.array_parallelism), len(tasks))
    pooled = kind == "local" and workers < len(tasks)
    # a pool worker runs queued runs one after another, as many as it takes before the queue is empty (at most all
    # of them): its time limit is a run's times that many (a worker given one run's time was killed mid-sweep, its
    # runs left preempted)
    ex = make_executor(spec, folder, kind, n_jobs=len(todo), runs_per_job=len(tasks) if pooled else 1)
    if pooled:
        # submitit's local executor starts every job at once: a pool of `array_parallelism` workers instead,
        # taking the runs seed by seed (the sweep's order within a seed), so that a seed's cached common start
        # serves its runs together and a launch cut short (a session's end) leaves whole seeds finished
        queue = folder / "queues" / f"{int(t_submit * 1000)}.json"
        write_queue(queue, seed_major(tasks))
        jobs = ex.map_array(SweepWorker(store_root, spec.name, str(queue)), list(range(workers)))
        job_ids = {r.run_id: "pool:" + ",".join(str(j.job_id) for j in jobs) for r in todo}
    else:
        jobs = ex.map_array(SweepJob(store_root, spec.name, progress=False), tasks)
        job_ids = {r.run_id: str(j.job_id) for r, j in zip(todo, jobs)}
    p["jobs"] = jobs
    log_dir = folder / "submitit"
    _append_jsonl(launches_path(store_root, spec.name), {
        "t_submit": t_submit, "git_sha": p["sha"], "executor": kind, "spec_file": spec.source,
        "all_runs": [r.run_id for r in p["runs"]], "jobs": job_ids,
        "labels": {r.run_id: r.label() for r in p["runs"]}, "log_dir": str(log_dir),
        "skipped_finished": len(p["finished"] - (p["stale"] if rerun_stale else set())),
    })
    first = str(jobs[0].job_id)
    array = first.split("_")[0]
    what = f"{len(todo)} runs to {len(jobs)} local workers" if len(jobs) < len(todo) else \
        f"{len(jobs)} runs as job array {array}"
    out(f"sweep {spec.name}: submitted {what} ({kind}); skipped {len(p['runs']) - len(todo)} (finished or active)")
    out(f"  job ids: {', '.join(job_ids.values())}")
    out(f"  logs:    {log_dir}/<job id>/  (e.g. {log_dir / first})")
    out(f"  status:  mbench sweep status {spec.name} --store {store_root}")
    if wait or kind != "slurm":  # local jobs die with this process, debug jobs run in it: always wait
        wait_for(jobs, out=out)
    return p


def seed_major(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tasks ordered by seed (in the order the seeds first appear), keeping their order within a seed."""
    first = {}
    for t in tasks:
        first.setdefault(t["seed"], len(first))
    return sorted(tasks, key=lambda t: first[t["seed"]])


def wait_for(jobs, out: Callable[[str], None] = print, poll_s: float = 2.0) -> dict[str, int]:
    """Block until every job is done, with a progress bar; returns counts of ok/failed jobs."""
    done: set[int] = set()
    counts = Counter()
    with tqdm(total=len(jobs), desc="jobs", unit="job", file=sys.stderr) as bar:
        while len(done) < len(jobs):
            for i, job in enumerate(jobs):
                if i in done:
                    continue
                if job.done() or type(job).__name__ == "DebugJob":
                    try:
                        res = job.result()
                        for r in res if isinstance(res, list) else []:  # a pool worker: one outcome per run
                            if r.get("status") == "failed":
                                counts["failed runs"] += 1
                                out(f"run {r['run_id']} failed: {r.get('error', '')[:200]}")
                        counts["ok"] += 1
                    except Exception as e:  # noqa: BLE001 - the error is in the store and the job's log
                        counts["failed"] += 1
                        first = (str(e).strip().splitlines() or [type(e).__name__])[-1]
                        out(f"job {job.job_id} failed: {first[:200]}")
                    done.add(i)
                    bar.update(1)
            if len(done) < len(jobs):
                time.sleep(poll_s)
    return dict(counts)


# ---- status -------------------------------------------------------------------------------------------------
def one_line(error: str | None) -> str:
    text = (error or "").strip()
    return text.splitlines()[0][:240] if text else ""


def sweep_status(store_root, name: str) -> dict[str, Any]:
    """Counts from the store and from Slurm, requeues, and the one-line errors of failed runs."""
    launches = read_launches(store_root, name)
    store = Store(store_root)
    frame = store.runs(sweep=name)
    every = store.attempts(sweep=name)
    expected: list[str] = list(launches[-1].get("all_runs", [])) if launches else []
    labels: dict[str, str] = {}
    for launch in launches:
        labels.update(launch.get("labels", {}))
    in_store = {} if frame.empty else {r.run_id: r for r in frame.itertuples()}
    for rid in in_store:
        if rid not in expected:
            expected.append(rid)
    jobs = latest_job_ids(launches)
    all_job_ids = sorted({j for launch in launches for j in launch.get("jobs", {}).values()})
    queued = squeue_states(all_job_ids)
    history = sacct_history(all_job_ids)
    attempts = read_attempts(store_root, name)
    counts = Counter()
    lost, failed, requeued = [], [], {}
    newer = newer_attempts(frame, every)
    here = socket.gethostname()  # a run lock is seen on the machine that holds it (results/locks.py)
    for rid in expected:
        row = in_store.get(rid)
        status = row.status if row is not None else "pending"
        job = jobs.get(rid)
        if status in ("running", "preempted") and job and job not in queued and have_slurm() and launches and \
                launches[-1].get("executor") == "slurm":
            lost.append(rid)  # the store says running, but no Slurm job is alive for it
        if status == "running" and row.host == here and not run_is_live(store_root, name, rid):
            status = "stale"  # recorded here as running, but no process holds its lock: it was killed
        counts[status] += 1
        if status == "failed":
            failed.append((rid, one_line(row.error)))
        n_requeue = sum(1 for jid in {j for L in launches for r, j in L.get("jobs", {}).items() if r == rid}
                        for s in history.get(jid, []) if s in ("REQUEUED", "PREEMPTED", "NODE_FAIL"))
        events = [a.get("event") for a in attempts.get(rid, [])]
        starts = events.count("start") - events.count("skipped")  # a job that found the run finished ran nothing
        if n_requeue or starts > 1:
            requeued[rid] = {"slurm_requeues": n_requeue, "attempts": starts}
    slurm_counts = Counter()
    for rid in expected:
        job = jobs.get(rid)
        if job is None:
            continue
        if job in queued:
            slurm_counts[queued[job]] += 1
        elif history.get(job):
            slurm_counts[history[job][-1]] += 1
    return {"name": name, "runs": len(expected), "store": dict(counts), "slurm": dict(slurm_counts),
            "requeued": requeued, "failed": failed, "lost": lost, "labels": labels,
            "launches": len(launches), "newer_attempts": newer}


def newer_attempts(runs, every) -> dict[str, str]:
    """For each finished run with newer attempts that did not finish (a rerun that is running or failed):
    one line such as "finished (attempt 1; attempt 2 failed: <error>)". The store's queries return the
    finished attempt; only the status shows the newer ones."""
    out: dict[str, str] = {}
    if runs.empty or every.empty:
        return out
    for row in runs[runs["status"] == "finished"].itertuples():
        later = every[(every["run_id"] == row.run_id) & (every["attempt"] > row.attempt)]
        if later.empty:
            continue
        parts = [f"attempt {int(a.attempt)} {a.status}" + (f": {one_line(a.error)}" if one_line(a.error) else "")
                 for a in later.itertuples()]
        out[row.run_id] = f"finished (attempt {int(row.attempt)}; {'; '.join(parts)})"
    return out


def format_status(st: dict[str, Any]) -> str:
    order = ("pending", "running", "stale", "preempted", "interrupted", "finished", "failed")
    lines = [f"sweep {st['name']}: {st['runs']} runs, {st['launches']} launches"]
    lines.append("  store: " + " · ".join(f"{k} {st['store'].get(k, 0)}" for k in order))
    if st["slurm"]:
        lines.append("  slurm: " + " · ".join(f"{k.lower()} {v}" for k, v in sorted(st["slurm"].items())))
    if st["requeued"]:
        lines.append(f"  requeued: {len(st['requeued'])} runs")
        for rid, r in st["requeued"].items():
            lines.append(f"    {rid} {st['labels'].get(rid, '')}: {r['slurm_requeues']} requeues in sacct, "
                         f"{r['attempts']} attempts")
    if st["store"].get("stale"):
        lines.append(f"  stale: {st['store']['stale']} runs are 'running' in the store, but no process here holds "
                     "their lock (killed?): run them again to resume from their checkpoints")
    if st["lost"]:
        lines.append(f"  lost: {len(st['lost'])} runs are 'running' in the store with no live job "
                     "(killed?): relaunch to resume them from their checkpoints")
    if st.get("newer_attempts"):
        lines.append(f"  finished, with a newer attempt that did not finish: {len(st['newer_attempts'])} runs "
                     "(the finished attempt counts)")
        for rid, text in st["newer_attempts"].items():
            lines.append(f"    {rid} {st['labels'].get(rid, '')}: {text}")
    if st["failed"]:
        lines.append("  failed:")
        for rid, err in st["failed"]:
            lines.append(f"    {rid} {st['labels'].get(rid, '')}: {err}")
    return "\n".join(lines)
