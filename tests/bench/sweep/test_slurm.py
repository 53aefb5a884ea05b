"""Sweeps against a real single-node Slurm cluster (scripts/slurm-local.sh): arrays, failures, requeue, cancel, kill.

Why real Slurm: what breaks in practice is the interplay of signals, requeues, accounting and checkpoints, which
a mock cannot show. As root on Debian the fixture brings the cluster up itself (idempotent, under a second when
it is already up); elsewhere these tests are skipped with a message saying how to enable them, except under
CI=true, where a missing cluster is a failure. The node has 2 cores and other suites run beside these, so every
run is tiny and single-threaded.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.sweep.spec import parse_sweep
from tests.helpers import ROOT, TINY, TINY_CS

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SCRIPT = ROOT / "scripts" / "slurm-local.sh"
ENABLE = ("run them as root on Debian (the fixture runs `scripts/slurm-local.sh up`), or bring up a cluster "
          "yourself and make sinfo/sacct work")


@pytest.fixture(scope="session")
def slurm_cluster():
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    can_start = os.geteuid() == 0 and Path("/etc/debian_version").exists() and shutil.which("apt-get")
    if can_start:
        proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            pytest.fail(f"scripts/slurm-local.sh up failed:\n{proc.stdout}\n{proc.stderr}")
    ok = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30,
                                                  check=False).returncode == 0 and \
        subprocess.run(["sacct", "-n", "-X", "-S", "now"], capture_output=True, timeout=30,
                       check=False).returncode == 0
    if not ok:
        msg = f"no usable Slurm cluster with accounting: {ENABLE}"
        if in_ci:
            pytest.fail(msg + " (CI=true: Slurm tests must not be skipped)")
        pytest.skip(msg)
    return True


def _spec(name, methods=("bc_gauss",), seeds=(0,), overrides=None, **kw):
    over = dict(TINY, **TINY_CS)
    over["dp.hidden"] = [32, 32]
    over.update(overrides or {})
    data = {"name": name, "methods": list(methods), "tasks": ["demo"], "seeds": list(seeds), "overrides": over,
            "executor": "slurm", "resources": {"cpus": 1, "mem": "1G", "time": 15, "array_parallelism": 2}}
    data.update(kw)
    return parse_sweep(data, f"{name}.yaml")


# A run with an online phase long enough to interrupt (dppo checkpoints at rollout-iteration boundaries).
LONG = {"preset": "test", "online.steps": 3000, "online.checkpoint_every": 200, "online.log_every": 200,
        "eval.every": 1000}


def _wait_jobs(jobs, timeout=600):
    t0 = time.time()
    while not all(j.done() for j in jobs):
        assert time.time() - t0 < timeout, f"jobs not done after {timeout}s: {[j.state for j in jobs]}"
        time.sleep(2)


def _wait_until(pred, timeout=300, what="condition"):
    t0 = time.time()
    while True:
        value = pred()
        if value:
            return value
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.5)


def _run_row(store_root, sweep, rid):
    from results.store import Store

    runs = Store(store_root).runs(sweep=sweep, run_ids=[rid])
    return runs.iloc[0] if len(runs) else None


def _checkpointed_online(store_root, sweep, rid):
    row = _run_row(store_root, sweep, rid)
    return row is not None and row.status == "running" and int(row.env_steps) > 0


def _eval_curve(store_root, sweep, rid):
    from results.store import Store

    c = Store(store_root).curves(sweep=sweep, run_ids=[rid])
    c = c[c.metric.isin(["return", "normalized_score"])]
    return sorted((r.phase, int(r.env_step), r.actor, r.metric, round(float(r.value), 9)) for r in c.itertuples())


@pytest.fixture(scope="module")
def uninterrupted(demo_dataset, tmp_path_factory):
    """The LONG dppo run of seed 0, uninterrupted, in this process on the CPU: the reference curve."""
    from bench.runner.lifecycle import run_one

    spec = _spec("ref", methods=("dppo",), overrides=LONG)
    (run,) = spec.expand()
    root = tmp_path_factory.mktemp("ref-store")
    run_one(run.cfg, store_root=root, sweep_id="ref", progress=False)
    return run.run_id, _eval_curve(root, "ref", run.run_id)


def _sacct_final(job) -> str:
    """The job's last state in Slurm's accounting (job.state can lag while the job is completing)."""
    from bench.sweep.launch import sacct_history

    return (sacct_history([str(job.job_id)]).get(str(job.job_id)) or ["UNKNOWN"])[-1]


def _attempts(store_root, sweep, rid):
    from bench.sweep.job import read_attempts

    return read_attempts(store_root, sweep).get(rid, [])


def test_sweep_of_2_methods_x_2_seeds_lands_4_finished_runs_and_relaunch_submits_nothing(
        slurm_cluster, demo_dataset, store_root, record_property):
    from bench.sweep.launch import launch, sweep_status
    from results.sweeps import read_launches

    spec = _spec("four", methods=("bc_gauss", "bc_dp"), seeds=(0, 1))
    lines: list[str] = []
    t0 = time.time()
    p = launch(spec, store_root, out=lines.append)
    submitted_in = time.time() - t0
    assert len(p["jobs"]) == 4 and submitted_in < 30  # non-blocking
    assert any("job array" in s for s in lines) and any("logs:" in s for s in lines)
    _wait_jobs(p["jobs"])
    wall = time.time() - t0
    st = sweep_status(store_root, "four")
    assert st["store"] == {"finished": 4}, st
    # overhead per job: submit -> first training step (from the jobs' own attempt records)
    t_submit = read_launches(store_root, "four")[0]["t_submit"]
    overheads = [a["t_first_step"] - t_submit for r in p["runs"] for a in _attempts(store_root, "four", r.run_id)
                 if a.get("event") == "finished"]
    assert len(overheads) == 4
    record_property("sweep_wall_s", round(wall, 1))
    record_property("overhead_s", [round(o, 1) for o in overheads])
    starts = sorted((a["t_start"] - t_submit, a["t_first_step"] - a["t_start"]) for r in p["runs"]
                    for a in _attempts(store_root, "four", r.run_id) if a.get("event") == "finished")
    print(f"\n4-run sweep wall {wall:.1f}s; submit->first training step per job: "
          f"{', '.join(f'{o:.1f}' for o in sorted(overheads))} s (submit->job start + setup: "
          f"{', '.join(f'{a:.1f}+{b:.1f}' for a, b in starts)} s)")
    lines.clear()
    again = launch(spec, store_root, out=lines.append)
    assert again["jobs"] == [] and any("nothing to submit" in s for s in lines)


def test_a_raising_job_is_failed_with_its_error_while_the_others_finish(slurm_cluster, demo_dataset, store_root):
    from bench.sweep.launch import format_status, launch, sweep_status

    spec = _spec("boom", seeds=(0,), grid={"dataset_path": ["", "no-such-dataset.hdf5"]})
    p = launch(spec, store_root, out=lambda s: None)
    assert len(p["jobs"]) == 2
    _wait_jobs(p["jobs"])
    st = sweep_status(store_root, "boom")
    assert st["store"] == {"finished": 1, "failed": 1}, st
    ((_rid, err),) = st["failed"]
    assert "no-such-dataset.hdf5" in err and "\n" not in err
    assert "no-such-dataset.hdf5" in format_status(st)
    final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")

    def ended():
        states = sorted(_sacct_final(j) for j in p["jobs"])
        return states if all(x in final for x in states) else None

    states = _wait_until(ended, timeout=120, what="final Slurm states")
    assert states == ["COMPLETED", "FAILED"], states


def test_scontrol_requeue_mid_run_resumes_from_checkpoint_with_an_equal_curve(
        slurm_cluster, demo_dataset, store_root, uninterrupted):
    from bench.sweep.launch import launch, sacct_history, sweep_status

    spec = _spec("requeue", methods=("dppo",), overrides=LONG)
    p = launch(spec, store_root, out=lambda s: None)
    (job,) = p["jobs"]
    (run,) = p["runs"]
    _wait_until(lambda: _checkpointed_online(store_root, "requeue", run.run_id), what="an online checkpoint")
    first = _attempts(store_root, "requeue", run.run_id)[0]
    subprocess.run(["scontrol", "requeue", first["slurm_job_id"]], check=True, timeout=30)
    _wait_jobs([job])
    _wait_until(lambda: _sacct_final(job) == "COMPLETED", timeout=120, what="COMPLETED in sacct")
    row = _run_row(store_root, "requeue", run.run_id)
    assert row.status == "finished" and int(row.attempt) >= 2
    hist = sacct_history([str(job.job_id)])[str(job.job_id)]
    assert "REQUEUED" in hist and hist[-1] == "COMPLETED", hist
    att = _attempts(store_root, "requeue", run.run_id)
    assert [a["event"] for a in att if a["event"] != "start"] == ["preempted", "finished"], att
    resumed = att[-1]
    assert resumed["resumed"] and resumed["start_env_step"] > 0 and resumed["restart_count"] >= 1
    assert resumed["start_env_step"] >= att[1]["start_env_step"]  # it continued; it did not restart at 0
    assert sweep_status(store_root, "requeue")["requeued"][run.run_id]["slurm_requeues"] >= 1
    ref_id, ref_curve = uninterrupted
    assert ref_id == run.run_id
    assert _eval_curve(store_root, "requeue", run.run_id) == ref_curve


def test_cancel_leaves_no_run_recorded_as_finished_that_did_not_finish(slurm_cluster, demo_dataset, store_root):
    from bench.sweep.launch import launch
    from results.store import Store

    spec = _spec("cancel", methods=("dppo",), seeds=(0, 1, 2), overrides=LONG)
    p = launch(spec, store_root, out=lambda s: None)
    _wait_until(lambda: any(_checkpointed_online(store_root, "cancel", r.run_id) for r in p["runs"]),
                what="a run in its online phase")
    array = str(p["jobs"][0].job_id).split("_")[0]
    subprocess.run(["scancel", array], check=True, timeout=30)
    _wait_jobs(p["jobs"], timeout=120)  # with sacct, cancelled jobs are seen as done (no hang)
    for job in p["jobs"]:
        if _sacct_final(job) != "COMPLETED":
            with pytest.raises(Exception):  # noqa: B017 - submitit raises its own error types
                job.result()
    runs = Store(store_root).runs(sweep="cancel")
    for r in runs.itertuples():
        if r.status == "finished":
            assert int(r.env_steps) >= LONG["online.steps"]
            att = _attempts(store_root, "cancel", r.run_id)
            assert att and att[-1]["event"] == "finished"
        else:
            assert r.status in ("running", "preempted")
    assert (runs.status != "finished").any()


def test_sigkill_then_relaunch_resumes_with_an_equal_curve(slurm_cluster, demo_dataset, store_root,
                                                           uninterrupted):
    from bench.sweep.launch import launch, sweep_status

    spec = _spec("sigkill", methods=("dppo",), overrides=LONG)
    p = launch(spec, store_root, out=lambda s: None)
    (job,) = p["jobs"]
    (run,) = p["runs"]
    _wait_until(lambda: _checkpointed_online(store_root, "sigkill", run.run_id), what="an online checkpoint")
    pid = _attempts(store_root, "sigkill", run.run_id)[0]["pid"]
    os.kill(pid, signal.SIGKILL)
    _wait_jobs([job], timeout=120)
    _wait_until(lambda: _sacct_final(job) in ("FAILED", "CANCELLED", "NODE_FAIL"), timeout=120,
                what="the killed job to end in sacct")
    row = _run_row(store_root, "sigkill", run.run_id)
    assert row.status == "running"  # never recorded as finished
    st = sweep_status(store_root, "sigkill")
    assert run.run_id in st["lost"]
    again = launch(spec, store_root, out=lambda s: None)
    assert len(again["jobs"]) == 1
    _wait_jobs(again["jobs"])
    assert _run_row(store_root, "sigkill", run.run_id).status == "finished"
    att = [a for a in _attempts(store_root, "sigkill", run.run_id) if a["event"] != "start"]
    assert att[-1]["event"] == "finished" and att[-1]["resumed"] and att[-1]["start_env_step"] > 0
    assert _eval_curve(store_root, "sigkill", run.run_id) == uninterrupted[1]
    assert json.dumps(st)  # the status is plain data
