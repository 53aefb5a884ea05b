"""The on-policy loop's persistent envs: episodes continue across rollouts, and their state survives a
checkpoint; a run takes exactly its env-step budget.

Why: DPPO continues episodes across rollout iterations (`reset_at_iteration: False` in its gym configs), so
the loop (bench/runner/on_policy.py) keeps its vector envs between rollouts, and a checkpoint at a rollout
boundary must hold each env's simulator state, TimeLimit count and RNG for a resumed run to repeat the
uninterrupted one. These tests drive `run_on_policy` with a stand-in run and method (no DP, no dataset): a
second each. The suites' own envs (kitchen, robosuite): tests/bench/tasks/test_env_state.py.
"""
from __future__ import annotations

import dataclasses
import io
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from bench.config.run import EvalConfig, OnlineConfig, RunConfig
from bench.runner.lifecycle import run_one
from bench.runner.loop import Loop
from bench.runner.on_policy import (
    EnvCarry,
    capture_envs,
    collect_rollout,
    make_vector_env,
    restore_envs,
    run_on_policy,
)
from bench.runner.progress import Progress
from bench.tasks.sim_state import EnvStateError
from methods.base import ActorState
from results.store import Store
from tests.helpers import OnPolicyStandIn, runner_cfg


class _Task:
    chunk = 4

    def __init__(self, env_id: str, limit: int):
        self.env_id, self.limit = env_id, limit

    def make_env(self):
        return gym.make(self.env_id, max_episode_steps=self.limit)


class _Bar:
    def update(self, n):
        pass


class _Stop(Exception):
    pass


class _Run:
    """A Loop (bench/runner/loop.py) for run_on_policy. `stop_at`: at the first rollout boundary at or after this
    env step, take a checkpoint (through torch.save and torch.load(weights_only=True)) and stop. `resume`: what
    such a stop saved, to continue from."""

    def __init__(self, task, method, steps: int, stop_at: int | None = None, resume: dict | None = None):
        cfg = RunConfig(seed=3, online=OnlineConfig(steps=steps, checkpoint_every=10 ** 9),
                        eval=EvalConfig(every=10 ** 9))
        self.progress = Progress(**resume["counters"]) if resume else Progress(next_eval=10 ** 9)
        self.stop_at, self.saved = stop_at, None
        self.loop = Loop(run_id="r0", cfg=cfg, task=task, method=method, buffer=None,
                         train_state=ActorState.create(0), progress=self.progress, log=lambda *a, **k: None,
                         evaluate=lambda phase: None, checkpoint=lambda: None, maybe_stop=self.maybe_stop,
                         resumed=resume["loop"] if resume else {})

    @property
    def counters(self) -> dict:
        return dataclasses.asdict(self.progress)

    def maybe_stop(self):
        if self.stop_at is not None and self.progress.env_step >= self.stop_at:
            buf = io.BytesIO()
            torch.save({"loop": self.loop.capture(), "counters": self.counters}, buf)
            buf.seek(0)
            self.saved = torch.load(buf, weights_only=True)
            raise _Stop


def _per_env_episodes(rollouts, i):
    """Lengths (env steps) of env i's complete episodes, read across rollouts in order."""
    lengths, n = [], None
    for ro in rollouts:
        for t in range(len(ro["valid"])):
            if not ro["valid"][t, i]:
                continue
            if ro["first"][t, i]:
                n = 0
            if n is not None:
                n += int(ro["env_steps"][t, i])
            if ro["done"][t, i]:
                if n is not None:
                    lengths.append(n)
                n = None
    return lengths


def test_episodes_continue_across_rollouts():
    # HalfCheetah never terminates: every episode is the TimeLimit's 20 env steps, while one rollout is
    # n_steps x chunk = 2 x 4 = 8 env steps per env.
    task = _Task("HalfCheetah-v5", 20)
    method = OnPolicyStandIn(n_envs=2, n_steps=2, act_dim=6)
    run_on_policy(_Run(task, method, steps=2 * 20 * 3).loop, _Bar())
    ros = method.rollouts
    assert len(ros) >= 6
    for i in range(2):
        lengths = _per_env_episodes(ros, i)
        assert len(lengths) >= 2 and all(n == 20 for n in lengths), lengths
        assert max(lengths) > method.n_steps * 4
    for a, b in itertools.pairwise(ros):
        # Each rollout starts where the previous one stopped: the same obs, and no new episode unless the
        # previous one ended.
        np.testing.assert_array_equal(b["obs"][0], a["next_obs"][-1])
        mid = a["valid"][-1] & ~a["done"][-1]
        assert not (b["first"][0] & mid).any()
        np.testing.assert_array_equal(b["valid"][0], ~a["done"][-1])  # an episode's end: autoreset slot next
    # Timeouts fall on every 20th env step of an env, wherever the rollout boundaries are.
    steps = np.concatenate([ro["env_steps"][:, 0] for ro in ros])
    timeouts = np.concatenate([ro["timeout"][:, 0] for ro in ros])
    assert (np.cumsum(steps)[timeouts] % 20 == 0).all() and timeouts.sum() >= 2


def test_resume_from_a_mid_episode_checkpoint_repeats_the_rollouts():
    # InvertedDoublePendulum falls in about 9 env steps: terminals, autoresets (whose initial states come from
    # each env's np_random) and episodes cut by rollout boundaries (one decision, 4 env steps, per env per rollout).
    task = _Task("InvertedDoublePendulum-v5", 30)
    steps = 2 * 4 * 12

    ref = OnPolicyStandIn(2, 1, 1)
    run_on_policy(_Run(task, ref, steps).loop, _Bar())
    # Stop at the first boundary where an env is in the middle of an episode that began in an earlier rollout.
    spent, stop = 0, None
    for k, ro in enumerate(ref.rollouts[:-1]):
        spent += int(ro["env_steps"].sum())
        started = ro["first"].any(axis=0)  # an episode of this env began in this rollout
        if (ro["valid"][-1] & ~ro["done"][-1] & ~started).any():
            stop = (k, spent)
            break
    assert stop is not None, "no rollout boundary cuts an episode in this setting"
    k, at = stop

    first = OnPolicyStandIn(2, 1, 1)
    run = _Run(task, first, steps, stop_at=at)
    with pytest.raises(_Stop):
        run_on_policy(run.loop, _Bar())
    st = run.saved["loop"]["on_policy"]
    assert st["n_envs"] == 2 and run.saved["counters"]["env_step"] == at
    mid = [i for i in range(2) if not bool(st["autoreset"][i]) and st["envs"][i]["elapsed_steps"] > 4]
    assert mid, [e["elapsed_steps"] for e in st["envs"]]  # an episode longer than one rollout, still going
    assert all(e["env_id"] == "InvertedDoublePendulum-v5" and e["sim"].dtype == torch.float64 for e in st["envs"])

    second = OnPolicyStandIn(2, 1, 1)
    resumed = _Run(task, second, steps, resume=run.saved)
    run_on_policy(resumed.loop, _Bar())
    got = first.rollouts + second.rollouts
    assert len(got) == len(ref.rollouts) and len(first.rollouts) == k + 1
    for a, b in zip(ref.rollouts, got):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert resumed.counters["env_step"] == steps


@pytest.mark.parametrize("env_id,limit,act_dim", [("InvertedDoublePendulum-v5", 30, 1),  # terminals
                                                   ("Hopper-v5", 40, 3),  # hopper-medium's env
                                                   ("HalfCheetah-v5", 10, 6)])  # timeouts only
def test_restored_envs_continue_exactly_including_resets(env_id, limit, act_dim):
    """capture_envs -> torch.load(weights_only=True) -> restore into new envs: the next rollouts are identical,
    through episode ends (terminals, or the TimeLimit's count) and autoresets (reset states drawn from the
    restored np_random)."""
    task = _Task(env_id, limit)
    m = OnPolicyStandIn(2, 3, act_dim)
    envs = make_vector_env(task, 2, 4)
    obs, _ = envs.reset(seed=[5, 6])
    carry = EnvCarry.fresh(np.asarray(obs))
    collect_rollout(envs, m, None, carry, 2, 1.0, 10 ** 6)  # 8 env steps: mid-episode
    buf = io.BytesIO()
    torch.save(capture_envs(envs, carry), buf)
    buf.seek(0)
    st = torch.load(buf, weights_only=True)
    a = [collect_rollout(envs, m, None, carry, 3, 1.0, 10 ** 6)[0] for _ in range(4)]
    envs.close()
    envs2 = make_vector_env(task, 2, 4)
    carry2 = restore_envs(envs2, st, seeds=[100, 200])  # other reset seeds: everything they set is overwritten
    b = [collect_rollout(envs2, m, None, carry2, 3, 1.0, 10 ** 6)[0] for _ in range(4)]
    envs2.close()
    assert sum(int(ro["first"].sum()) for ro in a) >= 2  # new episodes began after the restore
    assert all(e["elapsed_steps"] == 8 for e in st["envs"]) and not st["autoreset"].any()  # captured mid-episode
    if env_id.startswith("HalfCheetah"):  # its first episodes end 2 env steps after the restore, by the TimeLimit
        assert a[0]["timeout"][0].all() and a[0]["env_steps"][0].tolist() == [2, 2]
    for ra, rb in zip(a, b):
        for key in ra:
            np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    np.testing.assert_array_equal(carry.ep_return, carry2.ep_return)


def test_env_without_a_known_state_is_named_at_checkpoint():
    task = _Task("Pendulum-v1", 50)
    envs = make_vector_env(task, 2, 4)
    obs, _ = envs.reset(seed=[1, 2])
    with pytest.raises(EnvStateError, match="Pendulum-v1"):
        capture_envs(envs, EnvCarry.fresh(np.asarray(obs)))
    envs.close()
    # Through the loop: a run that never checkpoints is fine; the first checkpoint raises, naming the env.
    method = OnPolicyStandIn(2, 2, 1)
    run = _Run(task, method, steps=64, stop_at=16)
    with pytest.raises(EnvStateError, match="Pendulum-v1"):
        run_on_policy(run.loop, _Bar())
    run_on_policy(_Run(task, OnPolicyStandIn(2, 2, 1), steps=64).loop, _Bar())


def test_on_policy_runs_exactly_the_env_step_budget(demo_dataset, store_root):
    cfg = runner_cfg("dppo", **{"online.steps": 203})  # 3 envs x 8 decisions x 4 actions per rollout: not a multiple
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    row = Store(store_root).runs(sweep="s").iloc[0]
    assert int(row.env_steps) == 203
