"""The run lifecycle: a Run from its typed config, set up, started or resumed, and finished or failed.

Why: the harness owns the loop, evaluation, timing, checkpoints and storage so that every method obeys the
same protocol (DESIGN.md). This file holds the order of a run and its bookkeeping; each concept it calls
lives in its own file: the parts (assemble.py), the progress (progress.py), the loops (off_policy.py,
on_policy.py) and what they are given (loop.py), evaluation.py, checkpoints.py, common_start.py, stops.py,
provenance.py; the config is bench/config. No method names appear here: what a method needs is read from its
declared contract (methods/base.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.config.layers import resolve_config
from bench.config.run import RunConfig, run_id_of
from bench.runner import checkpoints, common_start
from bench.runner.assemble import assemble
from bench.runner.bars import LazyBar
from bench.runner.evaluation import EvalAbandoned, advance_grid, evaluate_actors, run_eval_seeds
from bench.runner.loop import Loop
from bench.runner.off_policy import run_off_policy
from bench.runner.on_policy import run_on_policy
from bench.runner.outcome import record_end
from bench.runner.progress import Progress
from bench.runner.provenance import commit_label, git_state, now, package_versions
from bench.runner.run_record import data_score, provenance
from bench.runner.stops import Preempted, stop_due, stop_requested, stop_status
from bench.runner.timing import TimingAbandoned, time_components
from bench.tasks import get_task
from methods.base import ActorState, RolloutKind
from results.names import validate_name
from results.run_lock import run_lock
from results.store import Store


@dataclasses.dataclass
class RunContext:
    cfg: RunConfig
    run_id: str
    sweep_id: str
    store_root: Path
    ckpt_dir: Path
    progress: bool
    restart: bool = False
    # Called once after setup and resume, before the first training step: on_start(run, resumed).
    on_start: Callable[[Run, bool], None] | None = None


class Run:
    """One run. `execute()` drives it; every piece of mutable progress lives in `self.progress`/`self.curve`."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.cfg = cfg = ctx.cfg
        self.task = get_task(cfg.task)
        self.device = torch.device(cfg.device)
        self.curve: list[dict[str, Any]] = []
        self.episodes: list[dict[str, Any]] = []  # every eval episode so far (the store's episodes table)
        self.progress = Progress()
        self.loop_state: dict[str, Any] = {}  # what a loop must checkpoint beyond the progress
        self.loop: Loop | None = None  # the online loop's context, while it runs
        self.dataset_hash = ""
        # The code this process runs: HEAD when it started (its modules are loaded then), not whatever the
        # checkout holds when a row is written minutes or hours later.
        self.git_sha, self.git_dirty = git_state()
        self.started_at = now()
        self._t0 = time.perf_counter()
        self._wall_before = 0.0  # seconds worked by earlier attempts (from the checkpoint)
        self._saved_at: tuple[int, int] | None = None  # (grad step, env step) of the last checkpoint written

    # ---- setup ----
    def setup(self) -> None:
        cfg = self.cfg
        cfg.check_device()
        torch.set_num_threads(cfg.threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        checkpoints.seed_everything(cfg.seed)
        parts = assemble(cfg)
        self.task, self.spaces, self.normalizer = parts.task, parts.spaces, parts.normalizer
        self.method, self.buffer = parts.method, parts.buffer
        self.dataset, self.dataset_hash = parts.dataset, parts.dataset_hash
        self.train_state = ActorState.create(cfg.seed * 7919 + 1, self.device)
        self.eval_seeds = run_eval_seeds(cfg, self.task)  # an eval of n episodes starts from the first n
        self.data_score = data_score(self.task, self.dataset)

    # ---- store rows ----
    def run_row(self, status: str, error: str = "") -> dict[str, Any]:
        cfg = self.cfg
        made = hasattr(self, "method")  # setup has made the parts
        return {
            "run_id": self.ctx.run_id, "sweep_id": self.ctx.sweep_id, "method": cfg.method,
            "variant": cfg.variant, "suite": self.task.suite, "task": cfg.task,
            "dataset": cfg.dataset_path or self.task.dataset_id, "seed": cfg.seed,
            "config_json": json.dumps(cfg.to_json(), sort_keys=True), "status": status, "error": error,
            "git_sha": self.git_sha, "git_dirty": self.git_dirty, "git_commits": list(self.progress.commits), "host": socket.gethostname(), "device": str(self.device),
            "versions": json.dumps(package_versions()),
            "provenance_json": json.dumps(provenance(
                cfg, self.task, self.method if made else None, getattr(self, "dataset", None), self.dataset_hash,
                getattr(self, "eval_seeds", None), getattr(self, "data_score", None)), default=str),
            "started_at": self.started_at, "finished_at": now() if status in ("finished", "failed") else None,
            "wall_s": float(self.wall()),
            "env_steps": self.progress.env_step, "grad_steps": self.progress.grad_step,
            "attempt": self.progress.attempt,
        }

    def say(self, msg: str) -> None:
        """One progress line (stderr, above any bar) when the run shows progress."""
        if self.ctx.progress:
            tqdm.write(msg, file=sys.stderr)

    def wall(self) -> float:
        """Seconds this run has worked, over all its attempts."""
        return self._wall_before + (time.perf_counter() - self._t0)

    def log(self, phase: str, metrics: dict[str, float], actor: str = "", n_episodes: int = 0) -> None:
        for k, v in metrics.items():
            if v is None or not np.isfinite(v):
                if k.startswith("loss"):
                    raise FloatingPointError(f"non-finite {k} at grad step {self.progress.grad_step}")
                continue
            self.curve.append({"run_id": self.ctx.run_id, "phase": phase, "env_step": self.progress.env_step,
                               "grad_step": self.progress.grad_step, "wall_s": float(self.wall()),
                               "actor": actor, "metric": k, "value": float(v), "n_episodes": int(n_episodes)})

    # ---- checkpoints and stops ----
    @property
    def ckpt_path(self) -> Path:
        return self.ctx.ckpt_dir / "last.pt"

    def checkpoint(self) -> None:
        """Save a checkpoint and record the progress so far (status running)."""
        self.save()
        self.write_progress("running")

    def save(self) -> None:
        """Write the run's checkpoint (checkpoints.py) with its progress, curve and loop state."""
        self.progress.wall_s = self.wall()
        if self.loop is not None and self.loop.capture is not None:  # a loop whose state lives outside the run
            captured = self.loop.capture()
            self.loop_state.clear()  # in place: it is the loop's `resumed` too
            self.loop_state.update(captured)
        checkpoints.save_run(self.ckpt_path, run_id=self.ctx.run_id, dataset_hash=self.dataset_hash,
                             method=self.method, buffer=self.buffer, normalizer=self.normalizer,
                             train_state=self.train_state, progress=self.progress, curve=self.curve,
                             loop_state=self.loop_state, episodes=self.episodes)
        self.progress.last_ckpt_env_step = self.progress.env_step
        self._saved_at = (self.progress.grad_step, self.progress.env_step)

    def try_resume(self, attempt: int) -> bool:
        """Continue from the run's checkpoint, if it has one, as attempt `attempt` (or later)."""
        st = checkpoints.read_run(self.ckpt_path, self.ctx.run_id, self.dataset_hash)
        if st is None:
            return False
        self.progress, self.curve, self.loop_state = checkpoints.restore_run(
            st, method=self.method, buffer=self.buffer, normalizer=self.normalizer, train_state=self.train_state)
        self.episodes = checkpoints.restored_episodes(st)
        self.progress.attempt = max(attempt, (self.progress.attempt or 1) + 1)
        self._wall_before = self.progress.wall_s
        self._t0 = time.perf_counter()
        self.say(f"resuming run {self.ctx.run_id} from env step {self.progress.env_step} "
                 f"(grad step {self.progress.grad_step}, attempt {self.progress.attempt})")
        return True

    def maybe_stop(self) -> None:
        """At a safe point: if a stop was asked for, save, record it (preempted or interrupted), raise Preempted."""
        c = self.progress
        if stop_due(c.grad_step, c.env_step):
            if self._saved_at != (c.grad_step, c.env_step):  # not saved at this very point already
                self.save()
            self.stop_here(saved=True)

    def stop_now(self) -> None:
        """A stop was asked for and this point is safe, whatever the counters: save, record it, raise Preempted."""
        self.save()
        self.stop_here(saved=True)

    def stop_here(self, saved: bool) -> None:
        """Record the stop asked for (status preempted or interrupted) and raise Preempted; `saved`: a
        checkpoint of this point was just written (else a rerun starts from the last one, or from scratch)."""
        status, c = stop_status(), self.progress
        self.write_progress(status)
        where = "its checkpoint is saved" if saved else "nothing to save yet"
        raise Preempted(f"run {self.ctx.run_id} {status} at env step {c.env_step}, grad step {c.grad_step} "
                        f"({where}); run the same command again to resume", status)

    def write_progress(self, status: str, error: str = "") -> None:
        store = Store(self.ctx.store_root)
        store.write_curves(self.ctx.sweep_id, self.ctx.run_id, self.curve, attempt=self.progress.attempt)
        if self.episodes:
            store.write_episodes(self.ctx.sweep_id, self.ctx.run_id, self.episodes, attempt=self.progress.attempt)
        store.write_run(self.run_row(status, error))

    # ---- phases ----
    def pretrain(self, bar) -> None:
        cfg, c, method = self.cfg, self.progress, self.method
        steps = cfg.pretrain.steps
        if method.uses_pretrained_dp and c.grad_step == 0 and not c.dp_loaded:
            rng_before = self.buffer.get_rng_state()
            with LazyBar(total=cfg.common_start.steps, desc=f"{cfg.method} common start",
                          disable=not self.ctx.progress) as cs_bar:

                def on_step(n: int) -> None:
                    cs_bar.step(n)
                    if stop_requested():  # nothing of the run to save yet: the cache is built on a rerun
                        self.stop_here(saved=False)

                dp_state, dp_curve, built = common_start.obtain(
                    self.cfg, self.ctx.store_root, self.dataset_hash, self.spaces, self.normalizer, self.buffer,
                    self.device, on_step=on_step, rebuild_unreadable=self.ctx.restart)
            if not built:
                self.say(f"common start: cached DP ({cfg.common_start.steps} BC steps)")
            # A cache hit and a cache miss must leave every RNG in the same state.
            self.buffer.set_rng_state(rng_before)
            checkpoints.seed_everything(cfg.seed + 1)
            method.load_pretrained_dp(dp_state)
            if method.common_start_is_product:
                self.curve.extend(dict(r, run_id=self.ctx.run_id) for r in dp_curve)
                c.grad_step = cfg.common_start.steps
            c.dp_loaded = True
        if method.pretrains_offline:
            # The metrics since the last log row; a checkpoint between two rows keeps them, so that a resumed
            # run's next row averages the same steps as the uninterrupted run's.
            acc: dict[str, list[float]] = json.loads(self.loop_state.pop("pretrain_acc", "{}"))
            log_every = max(1, cfg.pretrain.log_every)
            while c.grad_step < steps:
                metrics = method.pretrain(self.buffer)
                method.grad_steps += 1
                c.grad_step += 1
                for k, v in metrics.items():
                    acc.setdefault(k, []).append(v)
                if c.grad_step % log_every == 0 or c.grad_step == steps:
                    self.log("pretrain", {k: float(np.mean(v)) for k, v in acc.items()})
                    acc = {}
                bar.update(1)
                due = c.grad_step % cfg.pretrain.checkpoint_every == 0
                if due or stop_requested():  # a stop request: at once, with the metrics since the last row
                    self.loop_state["pretrain_acc"] = json.dumps(checkpoints.plain(acc))
                    if due:
                        self.save()
                    self.maybe_stop()
                    del self.loop_state["pretrain_acc"]
        # The offline phase's eval comes before it is marked done: a run stopped in it resumes here (the
        # loop above has nothing left to do) and redoes the eval whole.
        self.evaluate("pretrain")
        c.pretrain_done = True
        c.phase = "finetune"
        c.next_eval = advance_grid(0, 0, *cfg.eval.grid())
        self.save()
        self.write_progress("running")
        self.maybe_stop()

    def evaluate(self, phase: str, episodes: int | None = None) -> dict[str, dict[str, float]]:
        """Evaluate every actor of the method now on the first `episodes` (default eval.episodes) of the run's eval
        states (evaluation.py); log one curve row per metric and actor, and keep every episode.

        A stop request abandons the eval (a hopper eval of 50 episodes with a planner takes minutes; Slurm kills
        ~30 s after SIGTERM): the run is saved as it was before the eval, which logged nothing, and raises
        Preempted; its resume comes back to this same point (the loops redo their checks at a resumed decision
        boundary; the offline phase and the final eval redo theirs) and evaluates it whole."""
        step, seeds = self.progress.env_step, self.eval_seeds[:episodes or self.cfg.eval.episodes]
        self.say(f"eval at env step {step}: {', '.join(self.method.actors)} x {len(seeds)} episodes ...")
        savable = self.loop is None or self.loop.mid_stops
        rngs = checkpoints.rng_states()  # an abandoned eval must leave the run as it found it
        try:
            out = evaluate_actors(self.method, self.task, seeds, self.device,
                                  should_stop=stop_requested if savable else None)
        except EvalAbandoned:
            checkpoints.set_rng_states(rngs)
            self.say(f"eval at env step {step} abandoned to stop; the resumed run redoes it")
            self.stop_now()
        at = {"phase": phase, "env_step": step, "grad_step": self.progress.grad_step}
        for actor, res in out.items():
            self.log(phase, res["metrics"], actor=actor, n_episodes=len(seeds))
            self.episodes.extend({**at, "actor": actor, **ep} for ep in res["episodes"])
        self.say(f"eval at env step {step}: " + ", ".join(f"{a} {r['metrics']['normalized_score']:.1f}"
                                                          for a, r in out.items()))
        return {a: r["metrics"] for a, r in out.items()}

    def final(self) -> None:
        """The run's final eval of every actor (phase `final`), on eval.final_episodes states (D4RL: 50), unless
        its last eval was one of those, at this env step."""
        ev, step = self.cfg.eval, self.progress.env_step
        last = [r for r in self.curve if r["metric"] == "return" and r["actor"]]
        last_eval = max((r["env_step"] for r in last), default=-1)
        done = last_eval == step and all(r["n_episodes"] >= ev.last_episodes for r in last if r["env_step"] == step)
        if not done:
            self.evaluate("final", ev.last_episodes)
        if self.cfg.eval.timing:
            # A stop request before or during the timing: the run is saved as before it (a timed update changes
            # the weights and a timed act draws from the RNGs: the snapshot puts them back), nothing of it is
            # written, and the resumed run finds its final eval done and times again.
            before = checkpoints.snapshot(self.method, self.buffer)
            try:
                self.write_timings()
            except TimingAbandoned:
                checkpoints.restore_snapshot(before, self.method, self.buffer)
                self.say("timing abandoned to stop; the resumed run redoes it")
                self.stop_now()

    def write_timings(self) -> None:
        """Time the method's components at batch 1 and eval.timing_batch (timing.py) into the store; a stop
        request abandons it between two timed calls (TimingAbandoned, before any row is written)."""
        ev = self.cfg.eval
        self.say(f"timing the method's components at batch 1 and {ev.timing_batch} ({ev.timing_reps} reps)")
        rows = time_components(self.method, (1, ev.timing_batch), warmup=2, reps=ev.timing_reps,
                               device=self.device, should_stop=stop_requested)
        for row in rows:
            row["run_id"] = self.ctx.run_id
        if rows:
            Store(self.ctx.store_root).write_timings(self.ctx.sweep_id, self.ctx.run_id, rows,
                                                     attempt=self.progress.attempt)

    def execute(self) -> str:
        self.started_at = now()
        # Attempts are immutable: this one gets a number no file of the store holds yet (read from the file
        # names, so an unreadable file still counts), before any work, so that even a failed setup is
        # recorded as a new attempt and never over an earlier one.
        attempt = Store(self.ctx.store_root).next_attempt(self.ctx.sweep_id, self.ctx.run_id)
        self.progress.attempt = attempt
        self.setup()
        resumed = self.try_resume(attempt)
        here = commit_label(self.git_sha, self.git_dirty)
        if self.progress.commits[-1:] != [here]:  # this attempt's code, after those of the attempts it resumes
            self.progress.commits.append(here)
        if self.ctx.on_start is not None:
            self.ctx.on_start(self, resumed)
        self.write_progress("running")
        cfg = self.cfg
        disable = not self.ctx.progress
        if not self.progress.pretrain_done:
            own = self.method.pretrains_offline
            total = cfg.pretrain.steps if own else 0
            with tqdm(total=total, initial=min(self.progress.grad_step, total),
                      desc=f"{cfg.method} pretrain", disable=disable or not own, leave=False) as bar:
                self.pretrain(bar)
        kind = self.method.rollout_kind
        online_total = cfg.online.steps if kind is not RolloutKind.NONE else 0
        with tqdm(total=online_total, initial=self.progress.env_step, desc=f"{cfg.method} online",
                  disable=disable or online_total == 0, leave=False) as bar:
            self.loop = Loop(run_id=self.ctx.run_id, cfg=cfg, task=self.task, method=self.method,
                             buffer=self.buffer, train_state=self.train_state, progress=self.progress, log=self.log,
                             evaluate=self.evaluate, checkpoint=self.checkpoint, maybe_stop=self.maybe_stop,
                             resumed=self.loop_state)
            try:
                if kind is RolloutKind.ON_POLICY:
                    run_on_policy(self.loop, bar)
                elif kind is RolloutKind.OFF_POLICY:
                    run_off_policy(self.loop, bar)
            finally:
                self.loop = None
        self.final()
        self.progress.wall_s = self.wall()
        self.write_progress("finished")
        with contextlib.suppress(OSError):
            self.ckpt_path.unlink()
        return self.ctx.run_id


def finished_attempt(store_root: Path, sweep_id: str, run_id: str) -> int | None:
    """The attempt number of the run's finished attempt in the store, or None."""
    runs = Store(store_root).runs(sweep=sweep_id, run_ids=[run_id], status="finished")
    return int(runs.attempt.iloc[-1]) if len(runs) else None


def run_one(cfg: RunConfig, store_root: str | os.PathLike = "results", sweep_id: str = "adhoc",
            ckpt_dir: str | os.PathLike | None = None, resume: bool = True, progress: bool = True,
            on_start: Callable[[Run, bool], None] | None = None, rerun: bool = False,
            lock_wait_s: float = 0.0) -> str:
    """Run one resolved config end to end; returns its run_id. Failures are recorded as status=failed.

    A run that already finished in this store is not run again (and nothing is written) unless `rerun`, or
    `resume=False` (--restart); a new try is a new attempt, and the finished one stays in the store. A run
    that another process is running now is RunInProgress, after waiting up to `lock_wait_s` seconds."""
    validate_name(sweep_id, "sweep")
    cfg.check_device()  # before the lock, the attempt and anything else: nothing is recorded for a bad device
    rid = run_id_of(cfg)
    store_root = Path(store_root)
    # One process per run at a time, for the run's whole life (results/run_lock.py): a second one writes
    # nothing and stops with one line (RunInProgress), after waiting up to `lock_wait_s`.
    # A stop asked for before the run began (a signal during setup, or between a worker's runs) is honoured at
    # its first safe point; whoever handles the signals clears the request (bench/runner/signals.py).
    with run_lock(store_root, sweep_id, rid, wait_s=lock_wait_s):
        return _run_locked(cfg, rid, store_root, sweep_id, ckpt_dir, resume, progress, on_start, rerun)


def _run_locked(cfg: RunConfig, rid: str, store_root: Path, sweep_id: str, ckpt_dir, resume: bool,
                progress: bool, on_start, rerun: bool) -> str:
    if resume and not rerun:
        done = finished_attempt(store_root, sweep_id, rid)
        if done is not None:
            print(f"run {rid} ({cfg.method} on {cfg.task}, seed {cfg.seed}) already finished in sweep "
                  f"'{sweep_id}' (attempt {done}); nothing to do (--rerun or --restart runs it again)",
                  file=sys.stderr)
            return rid
    ckpt = Path(ckpt_dir) if ckpt_dir else store_root / "checkpoints" / sweep_id / rid
    if not resume and ckpt.exists():
        for f in ckpt.glob("*.pt"):
            f.unlink()
    run = Run(RunContext(cfg=cfg, run_id=rid, sweep_id=sweep_id, store_root=store_root, ckpt_dir=ckpt,
                         progress=progress, restart=not resume, on_start=on_start))
    checkpoints.remove_leftovers(run.ckpt_path)  # torn writes of a killed process of this run (we hold its lock)
    try:
        return run.execute()
    except Preempted:
        raise
    except BaseException as e:  # record, then re-raise: nothing is recorded as a success
        if run.progress.attempt is None:  # no attempt number could be had: write nothing rather than guess
            raise
        record_end(e, store_root, sweep_id, rid, run.progress.attempt, run.run_row, run.curve)
        raise


def run(method: str, task: str, seed: int, overrides=None, **kw) -> str:
    return run_one(resolve_config(method, task, seed, overrides), **kw)
