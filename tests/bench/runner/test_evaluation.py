"""Evaluation (bench/runner/evaluation.py): the eval grid (every `eval.every` env steps, after an optional dense
start), the lockstep episodes acting on the unfinished ones alone, and the run's eval states."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.layers import resolve_config


def test_the_eval_grid_has_an_optional_dense_start():
    from bench.runner.evaluation import advance_grid
    from methods.common.section import ConfigError

    def points(every, dense_every=0, dense_until=0, total=5000):
        out, g = [], advance_grid(0, 0, every, dense_every, dense_until)
        while g <= total:
            out.append(g)
            g = advance_grid(g, g, every, dense_every, dense_until)
        return out

    assert points(1000) == [1000, 2000, 3000, 4000, 5000]
    assert points(1000, 250, 2000) == [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 3000, 4000, 5000]
    assert advance_grid(250, 262, 1000, 250, 2000) == 500  # an eval that landed late moves to the next point
    # the main grid stays on multiples of `every` after a dense phase that ends off it
    assert points(1000, 300, 1000) == [300, 600, 900, 1000, 2000, 3000, 4000, 5000]
    assert points(1000, 400, 1500) == [400, 800, 1000, 1200, 2000, 3000, 4000, 5000]
    assert advance_grid(1000, 1003, 1000) == 2000
    with pytest.raises(ConfigError, match="dense_every"):
        resolve_config("bc_gauss", "demo", 0, {"eval.dense_until": 2000})


# ---- evaluation acts on the unfinished episodes alone (issue 24) ----------------------------------------------
class _ToyEnv:
    """obs (x, t): x drawn at reset, episodes of 3..9 steps (drawn at reset, so they end at different times);
    reward -|a - x|."""

    def reset(self, seed):
        rng = np.random.default_rng(seed)
        self.x, self.t, self.horizon = float(rng.uniform(-1, 1)), 0, int(rng.integers(3, 10))
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, a):
        self.t += 1
        return (np.array([self.x, self.t], np.float32), -abs(float(a[0]) - self.x), self.t >= self.horizon, False,
                {})

    def close(self):
        pass


class _ToyTask:
    success_metric = False

    def make_env(self):
        return _ToyEnv()

    def normalized_score(self, r, info=None):
        return 10.0 * r


class _ToyActor:
    """A two-action chunk per decision. `deterministic`: from the obs and a per-env memory (a running sum, so a
    memory row that followed the wrong env shows); else Gaussian draws from the actor's generator."""

    actors = ("a",)

    def __init__(self, deterministic):
        self.deterministic, self.batches = deterministic, []

    def act(self, obs, actor, state, eval_mode):
        self.batches.append(len(obs))
        x = torch.as_tensor(obs[:, :1])
        if self.deterministic:
            acc = state.memory.get("acc")
            acc = x.clone() if acc is None else acc + x
            state.memory["acc"] = acc
            a = torch.stack([0.5 * acc, 0.25 * acc + x], dim=1)
        else:
            a = x[:, None, :] + torch.randn(len(obs), 2, 1, generator=state.generator)
        return a.numpy(), {}


def _whole_batch_returns(method, task, seeds):
    """The evaluation before issue 24: the actor acts on every episode of the batch until all have ended."""
    from bench.tasks.eval_states import actor_seed
    from methods.base import ActorState

    envs = [task.make_env() for _ in seeds]
    obs = np.stack([e.reset(seed=s)[0] for e, s in zip(envs, seeds)])
    state, returns, done = ActorState.create(actor_seed(seeds)), np.zeros(len(seeds)), np.zeros(len(seeds), bool)
    while not done.all():
        chunks, _ = method.act(obs, "a", state, True)
        for t in range(chunks.shape[1]):
            for i, env in enumerate(envs):
                if not done[i]:
                    o, r, term, trunc, _ = env.step(chunks[i, t])
                    returns[i] += r
                    obs[i] = o
                    done[i] = term or trunc
    return returns


def test_evaluation_acts_only_on_unfinished_episodes_and_a_deterministic_actor_acts_as_before():
    from bench.runner.evaluation import evaluate_actor

    seeds = list(range(100, 112))
    actor = _ToyActor(deterministic=True)
    res = evaluate_actor(actor, _ToyTask(), "a", seeds, "cpu")
    lengths = [ep["length"] for ep in res["episodes"]]
    assert len(set(lengths)) > 1  # the episodes end at different times
    # one batched call per decision, on the episodes still running: the batch shrinks as they end
    assert actor.batches[0] == len(seeds) and actor.batches == sorted(actor.batches, reverse=True)
    assert actor.batches[-1] < len(seeds) and len(actor.batches) == -(-max(lengths) // 2)
    assert sum(actor.batches) == sum(-(-n // 2) for n in lengths)  # no call for an episode that has ended
    np.testing.assert_array_equal(res["returns"], _whole_batch_returns(_ToyActor(True), _ToyTask(), seeds))
    assert [ep["reset_seed"] for ep in res["episodes"]] == seeds
    assert res["normalized_score"] == pytest.approx(10 * np.mean(res["returns"]))


def test_a_sampling_actor_draws_in_another_order_but_from_the_same_distribution():
    from scipy import stats

    from bench.runner.evaluation import evaluate_actor

    task, ours, theirs = _ToyTask(), [], []
    for k in range(150):
        seeds = list(range(1000 + 10 * k, 1010 + 10 * k))
        ours.append(evaluate_actor(_ToyActor(False), task, "a", seeds, "cpu")["returns"])
        theirs.append(_whole_batch_returns(_ToyActor(False), task, seeds))
    ours, theirs = np.concatenate(ours), np.concatenate(theirs)
    # The draws moved: an episode that outlives another gets other draws than under the whole-batch loop ...
    assert not np.allclose(ours, theirs)
    # ... but from the same distribution (1500 episodes per side; a wrong row or a shared draw would show).
    assert stats.ks_2samp(ours, theirs).pvalue > 0.01
    assert abs(ours.mean() - theirs.mean()) < 3 * np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))


# ---- the eval states (bench/tasks/eval_states.py) ----------------------------------------------------------
def test_eval_states_are_per_run_seed_disjoint_paired_and_the_older_protocol_still_reads():
    from bench.runner.evaluation import run_eval_seeds
    from bench.tasks import EVAL_SEEDS, TUNE_EVAL_SEEDS, get_task
    from bench.tasks.eval_states import BLOCK, actor_seed
    from methods.common.section import ConfigError

    task = get_task("hopper-medium")
    cfgs = {(m, s): resolve_config(m, "hopper-medium", s) for m in ("bc_gauss", "bc_dp") for s in (0, 1, 2)}
    assert {c.eval.states for c in cfgs.values()} == {"per_seed"}
    assert {(c.eval.episodes, c.eval.last_episodes) for c in cfgs.values()} == {(10, 50)}
    seeds = {k: run_eval_seeds(c, task) for k, c in cfgs.items()}
    assert all(len(v) == 50 == len(set(v)) for v in seeds.values())
    # paired: every method meets the same states for one run seed; disjoint across run seeds
    for s in (0, 1, 2):
        assert seeds[("bc_gauss", s)] == seeds[("bc_dp", s)]
    assert not set(seeds[("bc_gauss", 0)]) & set(seeds[("bc_gauss", 1)])
    assert actor_seed(seeds[("bc_gauss", 0)]) != actor_seed(seeds[("bc_gauss", 1)])
    # the tuning set keeps its role: states that no reported run sees; the older fixed protocol is the same for all
    tune = run_eval_seeds(resolve_config("bc_gauss", "hopper-medium", 0, {"eval.seed_set": "tune"}), task)
    assert not set(tune) & set().union(*seeds.values())
    fixed = {s: run_eval_seeds(resolve_config("bc_gauss", "hopper-medium", s, {"eval.states": "fixed"}), task)
             for s in (0, 1)}
    assert fixed[0] == fixed[1] == list(EVAL_SEEDS[:50])
    assert not set(TUNE_EVAL_SEEDS) & set().union(*seeds.values(), tune)
    with pytest.raises(ConfigError, match="eval.final_episodes"):
        run_eval_seeds(resolve_config("bc_gauss", "hopper-medium", 0, {"eval.final_episodes": BLOCK + 1}), task)
    assert resolve_config("bc_gauss", "demo", 0).eval.episodes == 30


def test_an_actor_declared_the_same_as_an_earlier_one_is_evaluated_once_and_recorded_for_both():
    from bench.runner.evaluation import evaluate_actors

    class Twins(_ToyActor):
        actors = ("a", "b", "c")

        def __init__(self, same):
            super().__init__(deterministic=True)
            self.same, self.calls = same, []

        def eval_same_as(self):
            return self.same

        def act(self, obs, actor, state, eval_mode):
            self.calls.append(actor)
            return super().act(obs, actor, state, eval_mode)

    seeds = list(range(100, 106))
    twins = Twins({"b": "a"})
    out = evaluate_actors(twins, _ToyTask(), seeds, "cpu")
    assert set(twins.calls) == {"a", "c"} and list(out) == ["a", "b", "c"]
    assert out["b"] == out["a"] and out["b"] is not out["a"] and out["b"]["episodes"] is not out["a"]["episodes"]
    every = Twins({})
    full = evaluate_actors(every, _ToyTask(), seeds, "cpu")
    assert set(every.calls) == {"a", "b", "c"} and full["b"] == out["b"]  # the copy is what b's own eval gives
