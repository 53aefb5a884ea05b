"""`mbench tune FILE`: an optuna study over the runner, on a storage that every job shares.

Why it is built this way:
- Each trial is one runner call (`run_one`), so a trial is a run like any other: in the store (sweep id = the
  tune file's name), checkpointed, resumable. The objective is read back from the store: the run's *final*
  normalized_score of the headline actor, never the best over evals (DESIGN: `best` is optimistic).
- Tuning never touches reported numbers: seeds must be tuning seeds, TUNE_SEED_BASE to TUNE_SEED_STOP - 1
  (results/sweep_file.py: 10-19, 10-14 in use; reports use 0-4 and 100-104) and every trial evaluates on the
  task's TUNE_EVAL_SEEDS (`eval.seed_set=tune`), disjoint from its EVAL_SEEDS.
- The study lives in `<store>/sweeps/<name>/optuna.journal` (optuna's file journal, safe for concurrent
  writers on a shared filesystem) or `optuna.db` (SQLite), so workers on many nodes share it and a rerun of
  `mbench tune` continues the same study.
- Interruptions: a trial whose worker died stays RUNNING in optuna. Each worker, and each `mbench tune`, first
  marks such trials FAIL (their worker is neither a live local pid nor a queued Slurm job) and enqueues their
  parameters and seed again, so the retry resumes the same run from its checkpoint. A worker preempted by Slurm
  does the same for its own trial before it is requeued.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import submitit

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from bench.runner.stops import Preempted, request_stop
from bench.sweep.job import _append_jsonl
from bench.sweep.launch import check_executor, make_executor, squeue_states, wait_for
from bench.sweep.spec import SweepSpec, method_overrides, parse_sweep
from methods.common.section import ConfigError
from results.store import Store
from results.sweep_errors import SweepError
from results.sweep_file import Param, Tune
from results.sweeps import sweep_dir


def _tune(spec: SweepSpec) -> Tune:
    if spec.tune is None:
        raise SweepError(f"sweep file {spec.source}: no 'tune' section (use `mbench sweep launch` for grids)")
    return spec.tune


def storage_path(spec: SweepSpec, store_root) -> Path:
    kind = _tune(spec).storage
    return sweep_dir(store_root, spec.name) / ("optuna.journal" if kind == "journal" else "optuna.db")


def make_storage(spec: SweepSpec, store_root):
    import optuna

    path = storage_path(spec, store_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        # The open(O_EXCL) lock works on NFS and local disks alike.
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    return optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 120}})


def load_study(spec: SweepSpec, store_root):
    import optuna

    tune = _tune(spec)
    sampler = optuna.samplers.TPESampler(seed=tune.sampler_seed)
    return optuna.create_study(study_name=spec.name, storage=make_storage(spec, store_root),
                               direction=tune.direction, sampler=sampler, load_if_exists=True)


def worker_id() -> str:
    if os.environ.get("SLURM_JOB_ID"):
        return f"slurm:{os.environ['SLURM_JOB_ID']}:{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    return f"pid:{socket.gethostname()}:{os.getpid()}"


def worker_alive(wid: str | None) -> bool:
    if not wid:
        return False
    kind, _, rest = wid.partition(":")
    if kind == "pid":
        host, _, pid = rest.rpartition(":")
        if host != socket.gethostname():
            return True  # another machine's process: cannot tell, so leave its trial alone
        if int(pid) == os.getpid():
            return False  # this process is between trials: its RUNNING trial is a leftover
        try:
            os.kill(int(pid), 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    if kind == "slurm":
        job, _, restart = rest.partition(":")
        if os.environ.get("SLURM_JOB_ID") == job:
            return os.environ.get("SLURM_RESTART_COUNT", "0") == restart
        return bool(squeue_states([job]))
    return True


def reap_stale(study, max_retry: int = 3, out: Callable[[str], None] = print) -> int:
    """Fail RUNNING trials whose worker is gone and enqueue their params and seed again. Returns how many."""
    from optuna.trial import TrialState

    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_alive(t.user_attrs.get("worker")):
            continue
        study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
        retries = int(t.user_attrs.get("retries", 0))
        n += 1
        if t.params and retries < max_retry:
            study.enqueue_trial(t.params, user_attrs={"seed": t.user_attrs.get("seed"), "retries": retries + 1,
                                                      "retry_of": t.number})
            out(f"tune {study.study_name}: trial {t.number} lost its worker; retrying its run")
    return n


def suggest(trial, params: dict[str, Param]) -> dict[str, Any]:
    out = {}
    for key, space in params.items():
        if space.type == "float":
            out[key] = trial.suggest_float(key, float(space.low), float(space.high), log=space.log, step=space.step)
        elif space.type == "int":
            out[key] = trial.suggest_int(key, int(space.low), int(space.high), log=space.log,
                                         step=int(1 if space.step is None else space.step))
        else:
            out[key] = trial.suggest_categorical(key, list(space.choices))
    return out


def headline_actor(method: str) -> str:
    from methods.registry import get_method_class  # lazy: torch

    return get_method_class(method).actors[0]


def final_score(store_root, sweep: str, run_id: str, actor: str) -> float:
    """The last eval's normalized_score of `actor` (the final one, never the best)."""
    curves = Store(store_root).curves(sweep=sweep, run_ids=[run_id], status="finished")
    rows = curves[(curves.metric == "normalized_score") & (curves.actor == actor)]
    if rows.empty:
        raise RuntimeError(f"run {run_id} has no finished normalized_score for actor '{actor}'")
    return float(rows.sort_values(["env_step", "grad_step"], kind="stable").value.iloc[-1])


def check_tune(spec: SweepSpec) -> None:
    """Before a journal exists: every tuned key is a config key of the method, and each end of its range (each
    choice) is a value the config accepts; SweepError naming 'tune.params.<key>' otherwise."""
    method, task = spec.methods[0], spec.tasks[0]
    base = method_overrides(spec, method, {})
    base["eval.seed_set"] = "tune"
    for key, space in _tune(spec).params.items():
        values = list(space.choices) if space.type == "categorical" else [space.low, space.high]
        for value in values:
            try:
                resolve_config(method, task, int(spec.seeds[0]), {**base, key: value})
            except ConfigError as e:
                raise SweepError(f"sweep file {spec.source}: 'tune.params.{key}': {e}") from None


def trial_config(spec: SweepSpec, trial) -> tuple[dict[str, Any], int]:
    method, task = spec.methods[0], spec.tasks[0]
    params = suggest(trial, _tune(spec).params)
    seed = trial.user_attrs.get("seed")
    if seed is None:
        seed = spec.seeds[trial.number % len(spec.seeds)]
    overrides = method_overrides(spec, method, {})
    overrides.update(params)
    overrides["eval.seed_set"] = "tune"  # the task's TUNE_EVAL_SEEDS, disjoint from the reported EVAL_SEEDS
    return resolve_config(method, task, int(seed), overrides), int(seed)


def run_trials(spec: SweepSpec, store_root, n_trials: int | None = None, out: Callable[[str], None] = print,
               on_stop: Callable[[], None] | None = None) -> dict[str, Any]:
    """A worker: run trials until the study has `n_trials` complete (or too many failures)."""
    import optuna
    from optuna.trial import TrialState

    from bench.runner.lifecycle import run_one  # lazy: torch, gymnasium

    tune = _tune(spec)
    total = int(n_trials or tune.trials)
    actor = tune.actor or headline_actor(spec.methods[0])
    study = load_study(spec, store_root)
    reap_stale(study, tune.max_retry, out=out)
    me = worker_id()

    def objective(trial) -> float:
        trial.set_user_attr("worker", me)
        cfg, seed = trial_config(spec, trial)
        rid = run_id_of(cfg)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("run_id", rid)
        if rid not in Store(store_root).finished_run_ids(spec.name):  # a retried trial may already be done
            try:
                run_one(cfg, store_root=str(store_root), sweep_id=spec.name, resume=True, progress=False)
            except Preempted:
                # Hand the trial back: the next worker resumes the same run (same params, same seed).
                study.enqueue_trial(trial.params, user_attrs={"seed": seed, "retry_of": trial.number,
                                                              "retries": int(trial.user_attrs.get("retries", 0))})
                raise
        return final_score(store_root, spec.name, rid, actor)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ran = 0
    while True:
        trials = study.get_trials(deepcopy=False)
        complete = sum(t.state == TrialState.COMPLETE for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        failed = sum(t.state == TrialState.FAIL for t in trials)
        if complete + running >= total or failed > 2 * total:
            break
        study.optimize(objective, n_trials=1, catch=(Exception,))
        ran += 1
    best = None
    if any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        best = {"value": study.best_value, "params": study.best_params}
    return {"ran": ran, "best": best}


class TuneWorker(submitit.helpers.Checkpointable):
    """One tuning worker job; on preemption its trial is handed back before the job is requeued."""

    def __init__(self, spec_data: dict[str, Any], source: str, store_root: str, n_trials: int | None = None):
        self.spec_data, self.source, self.store_root, self.n_trials = spec_data, source, store_root, n_trials

    def __call__(self, index: int) -> dict[str, Any]:
        spec = parse_sweep(self.spec_data, self.source)
        got: dict[str, int] = {}
        submitit_usr2 = signal.getsignal(signal.SIGUSR2)

        def on_signal(signum, frame):
            got.setdefault("signum", signum)
            request_stop()

        signal.signal(signal.SIGUSR2, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        log = sweep_dir(self.store_root, spec.name) / "workers.jsonl"
        _append_jsonl(log, {"worker": worker_id(), "index": index, "event": "start", "t": time.time()})
        try:
            result = run_trials(spec, self.store_root, self.n_trials, out=lambda s: print(s, flush=True))
        except Preempted:
            signum = got.get("signum", signal.SIGTERM)
            _append_jsonl(log, {"worker": worker_id(), "index": index, "event": "preempted", "t": time.time()})
            if signum == signal.SIGUSR2 and callable(submitit_usr2):
                submitit_usr2(signum, None)
            raise SystemExit(128 + int(signum)) from None
        _append_jsonl(log, {"worker": worker_id(), "index": index, "event": "finished", "t": time.time()})
        return result


def tune(spec: SweepSpec, store_root="results", wait: bool = False, executor: str | None = None,
         n_trials: int | None = None, workers: int | None = None, out: Callable[[str], None] = print) -> dict:
    """Start (or continue) the study: `workers` jobs that share its storage."""
    tune = _tune(spec)
    kind = executor or spec.executor
    check_executor(kind)
    check_tune(spec)  # every key and range, before the journal is made
    n_workers = int(workers or tune.workers)
    study = load_study(spec, store_root)  # create it here so that workers race on nothing
    reap_stale(study, tune.max_retry, out=out)
    folder = sweep_dir(store_root, spec.name)
    ex = make_executor(spec, folder, kind, n_jobs=n_workers)
    jobs = ex.map_array(TuneWorker(spec.raw, spec.source, str(store_root), n_trials), list(range(n_workers)))
    out(f"tune {spec.name}: {n_workers} workers submitted ({kind}): {', '.join(str(j.job_id) for j in jobs)}")
    out(f"  study: {storage_path(spec, store_root)}  logs: {folder / 'submitit'}")
    if wait or kind != "slurm":
        wait_for(jobs, out=out)
        study = load_study(spec, store_root)
        from optuna.trial import TrialState

        done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        if done:
            out(f"tune {spec.name}: {len(done)} trials complete; best final normalized_score "
                f"{study.best_value:.2f} with {study.best_params}")
    return {"jobs": jobs, "study": spec.name}
