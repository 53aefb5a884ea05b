"""Where a stop request (SIGTERM, Ctrl-C) is honoured: within one decision of training, one offline gradient step,
one decision of an evaluation, which is then abandoned, one minibatch step of an on-policy update, or one timed
repetition of the final timing, both also abandoned; and the resumed run equals the uninterrupted one.

Why (issue 26, medium 3): Slurm kills about 30 s after SIGTERM. A hopper episode is up to 1000 env steps of
planning and updates, a DPPO rollout minutes, a hopper eval of 50 episodes with a planning actor minutes: a run
that stopped only at episode ends, rollout ends, log boundaries or after its eval would lose its work. Each test
asks for a stop as the signal handler does (`request_stop`), from inside a method call at a known point (its
k-th act, pretrain, act_rollout or minibatch_step call, or a timed component's), counts the calls that came after it (none: the run stopped at the next
safe point), then resumes and compares every curve row and eval episode with an uninterrupted run's, exactly.
"""
from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest

from bench.config.layers import resolve_config
from bench.config.run import EvalConfig, OnlineConfig, RunConfig, run_id_of
from bench.runner.checkpoints import load_checkpoint
from bench.runner.evaluation import EvalAbandoned, evaluate_actor
from bench.runner.lifecycle import run_one
from bench.runner.loop import Loop
from bench.runner.off_policy import run_off_policy
from bench.runner.progress import Progress
from bench.runner.stops import Preempted, clear_stop, request_stop
from methods.base import ActorState
from methods.registry import get_method_class
from results.store import Store
from tests.helpers import tiny

SWEEP = "stops"
CURVE_KEYS = ["phase", "env_step", "grad_step", "actor", "metric", "value", "n_episodes"]
EPISODE_KEYS = ["phase", "env_step", "grad_step", "actor", "episode", "reset_seed", "return", "length"]


@pytest.fixture(autouse=True)
def _no_stop_left():
    clear_stop()
    yield
    clear_stop()


class Trigger:
    """Asks for a stop from inside the method's `k`-th call of `name` that `when(run, *args)` selects, as the
    SIGTERM handler does; `after` counts the selected calls after it, `at` is the run's progress then."""

    def __init__(self, name: str, k: int, when=lambda run, *a: True):
        self.name, self.k, self.when = name, k, when
        self.n, self.after, self.at = 0, 0, None

    def count(self, run) -> None:
        """One selected call: the k-th asks for the stop, later ones are counted in `after`."""
        self.n += 1
        if self.n > self.k:
            self.after += 1
        elif self.n == self.k:
            self.at = {"env_step": run.progress.env_step, "grad_step": run.progress.grad_step}
            request_stop("preempted")

    def __call__(self, run, resumed: bool) -> None:  # run_one's on_start hook
        fn = getattr(run.method, self.name)

        def wrapped(*args, **kw):
            if self.when(run, *args):
                self.count(run)
            return fn(*args, **kw)

        setattr(run.method, self.name, wrapped)


def _cfg(method: str, **extra) -> RunConfig:
    """The contract tests' tiny run of `method` on the demo task (its test preset), with periodic online
    checkpoints off: the checkpoint a test reads is the one its stop wrote."""
    presets = get_method_class(method).Config.presets or {}
    over = tiny(method, **{"online.checkpoint_every": 10 ** 6}, **extra)
    if "test" in presets:
        over["preset"] = "test"
    return resolve_config(method, "demo", 0, over)


def _train_act(run, obs, actor, state, eval_mode):
    return not eval_mode


class Episodes:
    """Records the training episode of every training decision of a run (an on_start hook)."""

    def __init__(self):
        self.of_decision: list[int] = []

    def __call__(self, run, resumed: bool) -> None:
        fn = run.method.act

        def wrapped(obs, actor, state, eval_mode):
            if not eval_mode:
                self.of_decision.append(run.progress.episode)
            return fn(obs, actor, state, eval_mode)

        run.method.act = wrapped

    def mid_episode(self, more: int = 2) -> int:
        """The first training decision (1-based) after which its episode has `more` decisions still to come."""
        eps = self.of_decision
        for k, ep in enumerate(eps):
            if eps[k + 1:k + 1 + more] == [ep] * more:
                return k + 1
        raise AssertionError(f"no training episode of this run is longer than {more + 1} decisions")


def _eval_act_at(step: int, of: str | None = None):
    """The eval decisions at or after env step `step` (of actor `of` only, if given)."""
    return lambda run, obs, actor, state, eval_mode: (eval_mode and run.progress.env_step >= step
                                                      and (of is None or actor == of))


def _tables(store, cfg):
    rid = run_id_of(cfg)
    s = Store(store)
    c = s.curves(sweep=SWEEP, run_ids=[rid])[CURVE_KEYS]
    e = s.episodes(sweep=SWEEP, run_ids=[rid])[EPISODE_KEYS]
    return (c.sort_values(CURVE_KEYS[:5]).reset_index(drop=True),
            e.sort_values(EPISODE_KEYS[:5]).reset_index(drop=True))


def _saved(store, cfg) -> dict:
    return load_checkpoint(store / "checkpoints" / SWEEP / run_id_of(cfg) / "last.pt")


def _stop_then_resume(cfg, tmp_path, trigger, ref_hook=None) -> tuple[dict, Trigger]:
    """Run `cfg` uninterrupted (with `ref_hook` as its on_start) and again with `trigger` (a Trigger, or a function
    of ref_hook that makes one); the second is stopped, then resumed: every curve row and episode of the two is
    the same. Returns the stopped run's checkpoint and the trigger."""
    ref = tmp_path / "ref"
    run_one(cfg, store_root=ref, sweep_id=SWEEP, progress=False, on_start=ref_hook)
    if not isinstance(trigger, Trigger):
        trigger = trigger(ref_hook)
    store = tmp_path / "stopped"
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store, sweep_id=SWEEP, progress=False, on_start=trigger)
    assert trigger.at is not None, "the trigger never fired"
    assert Store(store).attempts(sweep=SWEEP).status.tolist() == ["preempted"]
    saved = _saved(store, cfg)
    clear_stop()
    run_one(cfg, store_root=store, sweep_id=SWEEP, progress=False)
    assert Store(store).attempts(sweep=SWEEP).status.tolist() == ["preempted", "finished"]
    (ca, ea), (cb, eb) = _tables(ref, cfg), _tables(store, cfg)
    pd.testing.assert_frame_equal(cb, ca, check_exact=True)
    pd.testing.assert_frame_equal(eb, ea, check_exact=True)
    return saved, trigger


@pytest.mark.parametrize("method", ["dsrl", pytest.param("modip", marks=pytest.mark.slow)])
def test_a_stop_mid_episode_is_honoured_within_one_decision_and_resumes_exactly(method, demo_dataset, tmp_path):
    # MODIP's training actor keeps a warm start between decisions (ActorState.memory): it must survive too.
    cfg = _cfg(method)
    # At a training decision with two more of its episode to come (the old loop ran the episode to its end).
    saved, trigger = _stop_then_resume(cfg, tmp_path, lambda ref: Trigger("act", ref.mid_episode(), _train_act),
                                       ref_hook=Episodes())
    assert trigger.after == 0, f"{trigger.after} more decisions after the stop request"
    counters, loop = json.loads(saved["counters"]), saved["loop"]["off_policy"]
    assert 0 < counters["env_step"] - trigger.at["env_step"] <= 8  # the one decision (a chunk) in progress
    assert loop["open"] and not loop["done"] and loop["env"]["elapsed_steps"] > 0  # saved mid-episode


def test_a_stop_in_an_online_eval_abandons_it_and_the_resumed_run_redoes_it(demo_dataset, tmp_path):
    cfg = _cfg("dsrl")
    # The eval at env step 120, in its second actor (dsrl's `dp`): the first's finished results are dropped too.
    trigger = Trigger("act", 3, _eval_act_at(cfg.eval.every, of="dp"))
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0, f"the eval went on for {trigger.after} decisions after the stop request"
    counters = json.loads(saved["counters"])
    assert counters["env_step"] == trigger.at["env_step"] >= cfg.eval.every
    assert counters["next_eval"] <= counters["env_step"]  # the eval is still due: the resume redoes it
    curve = json.loads(saved["curve"])
    assert not [r for r in curve if r["actor"] and r["env_step"] == counters["env_step"]]  # nothing of it logged


def test_a_stop_in_the_final_eval_abandons_it(demo_dataset, tmp_path):
    cfg = _cfg("dsrl")
    trigger = Trigger("act", 2, _eval_act_at(cfg.online.steps))
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0
    assert json.loads(saved["counters"])["env_step"] == cfg.online.steps


def test_an_offline_stop_is_honoured_within_one_gradient_step(demo_dataset, tmp_path):
    # bc_gauss's offline phase: step 13 is neither a log (10) nor a checkpoint (20) boundary.
    cfg = _cfg("bc_gauss")
    trigger = Trigger("pretrain", 13)
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0
    assert json.loads(saved["counters"])["grad_step"] == 13
    assert json.loads(saved["loop"]["pretrain_acc"])  # the metrics of steps 11-13, for the next log row


def test_a_stop_in_the_offline_phases_eval_abandons_it(demo_dataset, tmp_path):
    cfg = _cfg("dsrl")
    trigger = Trigger("act", 2, _eval_act_at(0))
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0
    counters = json.loads(saved["counters"])
    assert not counters["pretrain_done"] and counters["env_step"] == 0
    assert not [r for r in json.loads(saved["curve"]) if r["actor"]]  # the eval at env step 0 logged nothing


def test_an_on_policy_stop_mid_rollout_is_honoured_within_one_decision(demo_dataset, tmp_path):
    # DPPO's test preset: 3 envs x 8 decisions of 4 env steps per rollout; the request comes in the 2nd rollout.
    cfg = _cfg("dppo")
    trigger = Trigger("act_rollout", 11)
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0, f"{trigger.after} more decisions after the stop request"
    partial = saved["loop"]["on_policy"]["partial"]
    assert partial["buf"]["obs"].shape[0] == 3  # decisions 9-11: the rollout so far is in the checkpoint
    assert json.loads(saved["counters"])["rollout"] == 1


def test_an_on_policy_eval_abandoned_mid_rollout_is_redone(demo_dataset, tmp_path):
    cfg = _cfg("dppo")
    trigger = Trigger("act", 2, _eval_act_at(cfg.eval.every))
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0
    assert saved["loop"]["on_policy"]["partial"]["buf"]["obs"].shape[0] > 0  # the eval came mid-rollout


def test_an_on_policy_stop_mid_update_is_honoured_within_one_minibatch_step(demo_dataset, tmp_path):
    # DPPO's test preset at minibatch 8: its first two updates make 14 minibatch steps each (2 epochs of 7, the
    # valid decisions x 4 denoising steps / 8). The request comes in the 4th step of the 2nd rollout's update.
    cfg = _cfg("dppo", **{"dppo.batch_size": 8})
    trigger = Trigger("minibatch_step", 14 + 4)
    saved, trigger = _stop_then_resume(cfg, tmp_path, trigger)
    assert trigger.after == 0, f"{trigger.after} more minibatch steps after the stop request"
    counters = json.loads(saved["counters"])
    # Saved as before the update: its grad steps not counted, its whole rollout pending (the resume redoes it).
    assert counters["grad_step"] == trigger.at["grad_step"] == 14 and counters["rollout"] == 1
    assert saved["loop"]["on_policy"]["partial"]["buf"]["obs"].shape[0] == 8
    assert saved["method"]["grad_steps"] == 14 and saved["method"]["extra"]["iteration"] == 1


class TimingTrigger(Trigger):
    """Asks for a stop from inside the `k`-th call of any of the method's timed components (an on_start hook);
    `after` counts the calls after it."""

    def __init__(self, k: int):
        super().__init__("timed_components", k)

    def __call__(self, run, resumed: bool) -> None:
        components = run.method.timed_components

        def timed_components(*args, **kw):
            def wrap(fn):
                def wrapped():
                    self.count(run)
                    return fn()
                return wrapped

            return {name: dataclasses.replace(c, fn=wrap(c.fn)) for name, c in components(*args, **kw).items()}

        run.method.timed_components = timed_components


def test_a_stop_in_the_timing_abandons_it_and_the_resumed_run_redoes_it(demo_dataset, tmp_path):
    # bc_gauss times act at batch 1 and 16 and its update at batch 1, each 2 warm-up calls and 4 reps: the request
    # comes in the 3rd rep of act at batch 1.
    cfg = _cfg("bc_gauss", **{"eval.timing": True, "eval.timing_reps": 4, "eval.timing_batch": 16})
    saved, trigger = _stop_then_resume(cfg, tmp_path, lambda ref: TimingTrigger(5))
    assert trigger.after == 0, f"the timing went on for {trigger.after} calls after the stop request"
    assert json.loads(saved["counters"])["grad_step"] == cfg.pretrain.steps
    files = sorted(p.name for p in (tmp_path / "stopped" / "table=timings").rglob("*.parquet"))
    assert files == [f"{run_id_of(cfg)}+a2.parquet"]  # the preempted attempt wrote none; the resumed one all
    timings = Store(tmp_path / "stopped").timings(sweep=SWEEP)
    assert sorted(zip(timings.component, timings.batch)) == [("act", 1), ("act", 16), ("update", 1)]


# ---- the evaluation and the off-policy loop alone ---------------------------------------------------------
class _Const:
    """A method that acts 0 with chunks of 2, stores nothing extra and never updates."""

    actors = ("a",)
    grad_steps = 0

    def __init__(self, act_dim: int):
        self.act_dim, self.calls = act_dim, 0

    def act(self, obs, actor, state, eval_mode):
        self.calls += 1
        return np.zeros((len(obs), 2, self.act_dim), np.float32), {}

    def buffer_extras(self):
        return {}

    def update(self, buffer, env_step):
        return []


class _Task:
    def __init__(self, wrap=None):
        self.wrap = wrap

    def make_env(self):
        env = gym.make("InvertedPendulum-v5", max_episode_steps=50)
        return self.wrap(env) if self.wrap else env

    def normalized_score(self, ret, info):
        return ret


def test_evaluate_actor_abandons_at_a_stop_request():
    method, asked = _Const(1), []

    def should_stop():
        asked.append(method.calls)
        return method.calls >= 3

    with pytest.raises(EvalAbandoned):
        evaluate_actor(method, _Task(), "a", [1, 2], "cpu", should_stop=should_stop)
    assert method.calls == 3 and asked[-1] == 3  # asked before every decision; none after the request


class _Buffer:
    def add(self, tr):
        pass


class _Stopped(Exception):
    pass


def test_an_off_policy_env_whose_state_cannot_be_saved_stops_at_its_episodes_end():
    # An unknown wrapper: bench/tasks/env_state.py cannot save the episode, so the loop neither stops between two
    # decisions nor lets an eval be abandoned (Loop.mid_stops), and stops at the episode's end, as before.
    task = _Task(wrap=gym.wrappers.ClipAction)
    method = _Const(1)
    cfg = RunConfig(seed=0, online=OnlineConfig(steps=500, checkpoint_every=10 ** 9), eval=EvalConfig(every=10 ** 9))
    progress = Progress(next_eval=10 ** 9, phase="finetune", pretrain_done=True)
    stops = []

    def maybe_stop():
        stops.append((progress.env_step, progress.episode))
        if len(stops) == 1:
            raise _Stopped

    loop = Loop(run_id="r", cfg=cfg, task=task, method=method, buffer=_Buffer(),
                train_state=ActorState.create(0), progress=progress, log=lambda *a, **k: None,
                evaluate=lambda phase: None, checkpoint=lambda: None, maybe_stop=maybe_stop)
    with pytest.raises(_Stopped):
        run_off_policy(loop, type("Bar", (), {"update": lambda self, n: None})())
    assert not loop.mid_stops and stops == [(progress.env_step, 1)]  # first asked at the first episode's end
