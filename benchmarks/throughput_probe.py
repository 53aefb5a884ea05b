"""The measuring side of benchmarks/throughput.py: run inside the tree being measured, it times that tree's run
loop from outside and prints one JSON line of results.

Why a subprocess per tree: the old tree (05edce8) and this one have the same package names (`bench`, `methods`)
and different method contracts, so each is measured in a process of its own whose sys.path[0] is that tree (the
working directory). Nothing of either tree is edited: the tree's own `run_one` drives each run, and the pieces
are timed by wrapping, in this process only, the method object's verbs, the task's envs, the online loop, the
evaluation and the common-start trainer. The verbs of both contracts are wrapped where the method has them:

  act/plan  act, act_rollout
  update    new: update, update_rollout; old: observe, observe_episode, updates_due, finetune_step, update_rollout
  pretrain  new: pretrain; old: pretrain_batch + pretrain_step
  env       `step` of every env the task makes (a thin gymnasium wrapper; train and eval apart)

A timed call inside another timed call (a verb calling a verb) counts once, for the outer one. Training cost
per env step is measured in a window of env steps [w0, w1): from the first decision at or after w0 to the
first at or after w1 (the end of the online loop if none), decisions of an on-policy method counting only at
rollout starts, so that the window holds whole rollouts and their updates; evaluation inside the window is
left out. `other` is the window's wall time less act, update and env (the loop's own work: buffer, logging).

A Hook (run_job's `hook`; benchmarks/floor_probe.py's profiler and FLOP counter) sees the same window: its
`window` is called as the window opens and closes, its `call` wraps every outermost timed call, its `eval` every
evaluation and its `common_start` every common-start step. Without one (the timing runs) nothing is added.
A job's `preset` may be a list: the first of them the method has (none: no preset).

Usage (from benchmarks/throughput.py): cd <tree> && python <this file> '<json list of jobs>'
Each job is {"kind": "run" | "sac" | "make", ...} (run_job, sac_job, make_job); the last stdout line is the
JSON results.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time

sys.path[0] = os.getcwd()  # the tree being measured, not this file's folder

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import torch

torch.set_num_threads(1)

ACT = ("act", "act_rollout")
UPDATE = ("update", "update_rollout", "observe", "observe_episode", "updates_due", "finetune_step")
PRETRAIN = ("pretrain", "pretrain_step", "pretrain_batch")


def one_thread() -> int:
    n = torch.get_num_threads()
    assert n == 1, f"torch uses {n} threads; the benchmark asserts one"
    return n


class Hook:
    """What a run's Recorder tells an instrument (a profiler, a FLOP counter); this one does nothing."""

    def window(self, is_open: bool) -> None:
        """The training window [w0, w1) opens (True) or closes (False)."""

    def call(self, kind: str, name: str, phase: str, in_window: bool):
        """A context around one outermost timed call (kind: act, update, pretrain, env)."""
        return contextlib.nullcontext()

    def eval(self, actor: str):
        """A context around one evaluation of `actor`."""
        return contextlib.nullcontext()

    def common_start(self, n: int | None) -> None:
        """Common-start step `n` is done (None: the common start returns)."""


class Recorder:
    """Timed events (kind, phase, start, seconds), decision marks (start, env step, boundary) and loads."""

    def __init__(self, window: tuple[int, int], hook: Hook | None = None):
        self.window = window
        self.hook = hook
        self.window_state = 0  # 0: before the window, 1: in it, 2: after it
        self.events: list[tuple[str, str, float, float]] = []
        self.marks: list[tuple[float, int, bool]] = []
        self.evals: list[dict] = []
        self.loads: dict[str, float] = {}
        self.phase = "train"
        self.depth = 0
        self.env_step = lambda: 0
        self.rollout_start = True  # on-policy: the next act_rollout starts a rollout
        self.loop_end: tuple[float, int] | None = None
        self.cs_times: list[float] = []
        self.cs_loads: list[float] = []

    def timed(self, kind: str, fn, name: str = ""):
        def wrapper(*args, **kw):
            if self.depth:
                return fn(*args, **kw)
            if kind == "act" and self.phase == "train":
                self.mark(name)
            self.depth += 1
            t0 = time.perf_counter()
            try:
                if self.hook is None:
                    return fn(*args, **kw)
                with self.hook.call(kind, name, self.phase, self.window_state == 1):
                    return fn(*args, **kw)
            finally:
                dt = time.perf_counter() - t0
                self.depth -= 1
                self.events.append((name if kind == "pretrain" else kind, self.phase, t0, dt))
                if name == "update_rollout":
                    self.rollout_start = True
        return wrapper

    def mark(self, name: str) -> None:
        step = int(self.env_step())
        boundary = True
        if name == "act_rollout":
            boundary, self.rollout_start = self.rollout_start, False
        self.marks.append((time.perf_counter(), step, boundary))
        if boundary:
            for key, w in zip(("w0", "w1"), self.window):
                if step >= w and key not in self.loads:
                    self.loads[key] = os.getloadavg()[0]
            # the same bounds as train_split: the first boundary at or after w0, then the first at or after w1
            if self.window_state == 0 and step >= self.window[0]:
                self.set_window(1)
            if self.window_state == 1 and step >= self.window[1]:
                self.set_window(2)

    def set_window(self, state: int) -> None:
        if state > self.window_state:
            self.window_state = state
            if self.hook is not None:
                self.hook.window(state == 1)

    # ---- results ----
    def train_split(self) -> dict | None:
        if self.loop_end is None or not self.marks:
            return None
        w0, w1 = self.window
        bounds = [(t, s) for t, s, b in self.marks if b]
        start = next(((t, s) for t, s in bounds if s >= w0), None)
        end = next(((t, s) for t, s in bounds if s >= w1), self.loop_end)
        if start is None or end[1] <= start[1]:
            return None
        (ta, sa), (tb, sb) = start, end
        inside = [(k, p, dt) for k, p, t, dt in self.events if ta <= t < tb]
        sums = {k: sum(dt for kk, p, dt in inside if kk == k and p == "train") for k in ("act", "update", "env")}
        eval_s = sum(e["seconds"] for e in self.evals if ta <= e["start"] < tb)
        total = tb - ta - eval_s
        n = sb - sa
        out = {k: v / n for k, v in sums.items()}
        out.update(total=total / n, other=(total - sum(sums.values())) / n, window=[sa, sb], steps=n,
                   load=[self.loads.get("w0"), self.loads.get("w1")])
        return out

    def eval_costs(self) -> dict:
        """Per actor: seconds per eval env step over its evaluations, the first left out where there are more."""
        out = {}
        for actor in dict.fromkeys(e["actor"] for e in self.evals):
            calls = [e for e in self.evals if e["actor"] == actor]
            used = calls[1:] if len(calls) > 1 else calls
            steps = sum(e["steps"] for e in used)
            out[actor] = {"per_step": sum(e["seconds"] for e in used) / max(1, steps), "steps": steps,
                          "calls": len(used), "act_per_step": sum(e["act"] for e in used) / max(1, steps),
                          "load": [used[0]["load"][0], used[-1]["load"][1]]}
        return out

    def pretrain_cost(self) -> dict | None:
        """Seconds per offline grad step, the first fifth of the steps left out (warm-up)."""
        steps = [e for e in self.events if e[0] in ("pretrain", "pretrain_step")]
        batches = [e for e in self.events if e[0] == "pretrain_batch"]
        n = len(steps)
        if n < 2:
            return None
        k = max(1, n // 5)
        return {"per_step": (sum(e[3] for e in steps[k:]) + sum(e[3] for e in batches[k:])) / (n - k),
                "steps": n - k}

    def common_start_cost(self) -> dict | None:
        t = self.cs_times
        if len(t) < 3:
            return None
        k = max(1, len(t) // 5)
        return {"per_step": (t[-1] - t[k - 1]) / (len(t) - k), "steps": len(t) - k, "load": self.cs_loads}


class TimedEnv:
    """Wraps an env's `step` with the recorder's timer (gymnasium.Wrapper, built lazily)."""

    cls = None

    @classmethod
    def wrap(cls, env, rec: Recorder):
        import gymnasium as gym

        if cls.cls is None:
            class _Timed(gym.Wrapper):
                def step(self, action):
                    return self._timed_step(action)

            cls.cls = _Timed
        w = cls.cls(env)
        w._timed_step = rec.timed("env", env.step)
        return w


class Patches:
    """The tree's lifecycle, evaluation and common start, patched once per process; each run's Recorder is `rec`."""

    rec: Recorder | None = None
    installed = False

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return
        import bench.runner.common_start as cs_mod
        import bench.runner.evaluation as ev_mod
        import bench.runner.lifecycle as lc

        def wrap_loop(loop):
            def run_loop(*args, **kw):
                try:
                    return loop(*args, **kw)
                finally:
                    cls.rec.loop_end = (time.perf_counter(), int(cls.rec.env_step()))
                    cls.rec.loads.setdefault("w1", os.getloadavg()[0])
                    if cls.rec.window_state == 1:
                        cls.rec.set_window(2)
            return run_loop

        for name in ("run_off_policy", "run_on_policy"):
            setattr(lc, name, wrap_loop(getattr(lc, name)))

        evaluate_actor = ev_mod.evaluate_actor

        def timed_eval(method, task, actor, eval_seeds, device, **kw):
            rec = cls.rec
            before = len(rec.events)
            rec.phase = "eval"
            load0 = os.getloadavg()[0]
            t0 = time.perf_counter()
            try:
                if rec.hook is None:
                    return evaluate_actor(method, task, actor, eval_seeds, device, **kw)
                with rec.hook.eval(actor):
                    return evaluate_actor(method, task, actor, eval_seeds, device, **kw)
            finally:
                dt = time.perf_counter() - t0
                rec.phase = "train"
                mine = rec.events[before:]
                rec.evals.append({"actor": actor, "start": t0, "seconds": dt,
                                  "steps": sum(1 for e in mine if e[0] == "env"),
                                  "act": sum(e[3] for e in mine if e[0] == "act"),
                                  "load": [load0, os.getloadavg()[0]]})

        ev_mod.evaluate_actor = timed_eval
        train_common_start = cs_mod.train_common_start

        def timed_common_start(*args, **kw):
            rec = cls.rec
            args = list(args)
            on_step = args[9] if len(args) > 9 else kw.get("on_step")
            rec.cs_loads.append(os.getloadavg()[0])

            def step(n, loss):
                rec.cs_times.append(time.perf_counter())
                if rec.hook is not None:
                    rec.hook.common_start(len(rec.cs_times))
                if on_step is not None:
                    on_step(n, loss)

            if len(args) > 9:
                args[9] = step
            else:
                kw["on_step"] = step
            try:
                return train_common_start(*args, **kw)
            finally:
                rec.cs_loads.append(os.getloadavg()[0])
                if rec.hook is not None:
                    rec.hook.common_start(None)

        cs_mod.train_common_start = timed_common_start
        cls.installed = True


def on_start(run, resumed) -> None:
    """run_one's hook after setup: one thread asserted, the method's verbs and the task's envs timed."""
    rec = Patches.rec
    one_thread()
    rec.env_step = (lambda: run.progress.env_step) if hasattr(run, "progress") else (lambda: run.counters["env_step"])
    m = run.method
    for names, kind in ((ACT, "act"), (UPDATE, "update"), (PRETRAIN, "pretrain")):
        for name in names:
            fn = getattr(m, name, None)
            if callable(fn):
                setattr(m, name, rec.timed(kind, fn, name))
    make_env = run.task.make_env
    run.task.make_env = lambda *a, **kw: TimedEnv.wrap(make_env(*a, **kw), rec)


def resolve(method: str, task: str, seed: int, overrides: dict):
    """The tree's own resolved config; a `preset` the method does not have is left out (bc_gauss, bc_dp), and of
    a list of presets the first the method has is used."""
    try:
        from bench.config.layers import resolve_config
        from methods.registry import get_method_class
    except ImportError:  # 05edce8
        from bench.runner.config import resolve_config

        from methods.base import get_method_class
    cls = get_method_class(method)
    presets = getattr(cls.Config, "presets", None) or getattr(cls, "presets", None) or {}
    wanted = overrides.get("preset")
    if isinstance(wanted, list):
        overrides = dict(overrides, preset=next((p for p in wanted if p in presets), None))
    if overrides.get("preset") not in presets:
        overrides = {k: v for k, v in overrides.items() if k != "preset"}
    return resolve_config(method, task, seed, overrides)


def run_job(job: dict, scratch: str, hook: Hook | None = None) -> dict:
    """{"family", "task", "overrides", "window": [w0, w1], "minari"}: one run of the tree's own run_one, `hook`
    (if any) told of its window, calls, evaluations and common-start steps; its results include the preset used."""
    from bench.runner.lifecycle import run_one

    os.environ["MINARI_DATASETS_PATH"] = job["minari"]
    Patches.install()
    rec = Patches.rec = Recorder(tuple(job["window"]), hook)
    cfg = resolve(job["family"], job["task"], int(job.get("seed", 0)), job["overrides"])
    t0 = time.perf_counter()
    run_one(cfg, store_root=os.path.join(scratch, f"store-{job['family']}-{job['task']}"), sweep_id="throughput",
            progress=False, on_start=on_start, resume=False)
    return {"train": rec.train_split(), "eval": rec.eval_costs(), "pretrain": rec.pretrain_cost(),
            "common_start": rec.common_start_cost(), "wall_s": time.perf_counter() - t0,
            "preset": getattr(cfg, "preset", None)}


def sac_timers(behaviour) -> list[float]:
    """SACAgent.update and Replay.sample timed (patched once per process); the list their times go to."""
    if not hasattr(behaviour, "_throughput_times"):
        times: list[float] = []
        for owner, name in ((behaviour.SACAgent, "update"), (behaviour.Replay, "sample")):
            fn = getattr(owner, name)

            def timed(*a, _fn=fn, **kw):
                t0 = time.perf_counter()
                try:
                    return _fn(*a, **kw)
                finally:
                    times.append(time.perf_counter() - t0)
            setattr(owner, name, timed)
        behaviour._throughput_times = times
    return behaviour._throughput_times


def sac_job(job: dict, scratch: str) -> dict:
    """{"dataset_id", "steps", "start_steps"}: the data maker's SAC (bench/data/behaviour.py) trained for `steps`
    env steps with the make's nets for that env; the seconds per SAC update (its batch sampling included), the
    first fifth of the updates left out."""
    from bench.data import behaviour
    from bench.data.d4rl import DEFAULT_BUDGETS, _env_factory, parse_id

    plan = parse_id(job["dataset_id"])
    budget = DEFAULT_BUDGETS[plan.env_name]
    steps = int(job["steps"])
    cfg = behaviour.SACConfig(hidden=budget["hidden"], lr=budget.get("lr", behaviour.SACConfig.lr),
                              start_steps=int(job["start_steps"]), checkpoint_every=steps, eval_episodes=1)
    times = sac_timers(behaviour)
    times.clear()
    trainer = behaviour.BehaviourTrainer(_env_factory(plan), os.path.join(scratch, "sac"), cfg, seed=0)
    load0 = os.getloadavg()[0]
    trainer.train(steps, progress=False)
    pairs = np.asarray(times).reshape(-1, 2).sum(axis=1)  # (sample, update) per SAC step
    k = max(1, len(pairs) // 5)
    return {"per_step": float(pairs[k:].mean()), "steps": len(pairs) - k, "load": [load0, os.getloadavg()[0]]}


def make_job(job: dict, scratch: str) -> dict:
    """{"dataset_id", "root", "agent_steps", "dataset_size"}: the dataset made for the runs (not timed)."""
    from bench.data.d4rl import make_dataset

    t0 = time.perf_counter()
    make_dataset(job["dataset_id"], root=job["root"], agent_steps=job["agent_steps"],
                 dataset_size=job["dataset_size"], progress=False)
    return {"wall_s": time.perf_counter() - t0}


JOBS = {"run": run_job, "sac": sac_job, "make": make_job}


def main(argv: list[str]) -> int:
    import tempfile

    import bench

    jobs = json.loads(argv[0])
    results = []
    with tempfile.TemporaryDirectory(prefix="throughput-") as scratch:
        for i, job in enumerate(jobs):
            sub = os.path.join(scratch, str(i))
            os.makedirs(sub)
            res = JOBS[job["kind"]](job, sub)
            res["threads"] = one_thread()
            results.append(res)
    print(json.dumps({"tree": os.path.dirname(os.path.dirname(os.path.abspath(bench.__file__))),
                      "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
