"""Kitchen suite: D4RL's task sets, the Minari loader on the real layout, made data (opened by Minari itself,
replayed open-loop from its reset seeds), the success metric, and a tiny bc_dp run end to end.

Why: the suite must read real `D4RL/kitchen/*-v2` data and run here on data it makes itself; a replay that
reproduces the recorded rewards proves the maker only chose actions (no state was set).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import TINY, TINY_CS

pytest.importorskip("gymnasium_robotics")


@pytest.fixture(scope="module")
def kitchen_root(tmp_path_factory):
    """A Minari root holding a made kitchen-complete (2 scripted episodes) and a real-layout fixture."""
    from bench.data.kitchen import make_kitchen_dataset

    root = tmp_path_factory.mktemp("kitchen_minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    summary = make_kitchen_dataset("D4RL/kitchen/complete-v2", root=root, n_episodes=2, seed=0, progress=False)
    yield root, summary
    if old is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = old


def test_task_sets_and_protocol():
    from bench.tasks import get_task

    # D4RL: complete and partial run KitchenMicrowaveKettleLightSliderV0, mixed KitchenMicrowaveKettleBottomBurnerLightV0
    expect = {"complete": {"microwave", "kettle", "light switch", "slide cabinet"},
              "partial": {"microwave", "kettle", "light switch", "slide cabinet"},
              "mixed": {"microwave", "kettle", "bottom burner", "light switch"}}
    for variant, tasks in expect.items():
        t = get_task(f"kitchen-{variant}")
        assert t.max_episode_steps == 280 and t.success_metric and t.dataset_id == f"D4RL/kitchen/{variant}-v2"
        env = t.make_env()
        assert set(env.unwrapped.goal) == tasks
        assert env.observation_space.shape == (59,) and env.action_space.shape == (9,)
        env.close()
    t = get_task("kitchen-mixed")
    assert t.normalized_score(3.0, {"completed": 3}) == 75.0
    assert t.normalized_score(2.0, {}) == 50.0


def test_real_layout_minari_fixture_loads(kitchen_root):
    """A hand-written dataset in Minari's D4RL/kitchen-v2 layout (dict observations with achieved/desired goal
    dicts) loads as flat 59-dim observations; the episode cut off with neither flag ends in a timeout."""
    import gymnasium as gym
    import gymnasium_robotics

    from bench.data.loaders import load_dataset
    from bench.data.minari_io import write_minari

    root, _ = kitchen_root
    gym.register_envs(gymnasium_robotics)
    tasks = ["microwave", "kettle", "bottom burner", "light switch"]
    env = gym.make("FrankaKitchen-v1", tasks_to_complete=tasks, max_episode_steps=280)
    rng = np.random.default_rng(0)
    dims = {"microwave": 1, "kettle": 7, "bottom burner": 2, "light switch": 2}
    episodes = []
    for n, term in ((5, True), (4, False)):
        goal = {k: rng.normal(size=(n + 1, d)) for k, d in dims.items()}
        episodes.append({"observations": {"observation": rng.normal(size=(n + 1, 59)), "achieved_goal": goal,
                                          "desired_goal": {k: np.ones((n + 1, d)) for k, d in dims.items()}},
                         "actions": rng.uniform(-1, 1, (n, 9)).astype(np.float32),
                         "rewards": np.r_[np.zeros(n - 1), 1.0], "terminations": np.r_[np.zeros(n - 1, bool), term],
                         "truncations": np.zeros(n, bool), "seed": 7})
    write_minari(root, "D4RL/kitchen/mixed-v2", episodes, env.spec, provenance={"source": "fixture"}, ref_min=0.0,
                 ref_max=4.0, num_episodes_average_score=len(episodes), algorithm_name="fixture",
                 code_permalink="tests/test_kitchen.py", description="real-layout fixture")
    env.close()
    ds = load_dataset("kitchen-mixed", obs_dim=59, act_dim=9)
    assert ds.observations.shape == (9, 59)
    np.testing.assert_allclose(ds.observations[:5], episodes[0]["observations"]["observation"][:5], rtol=1e-6)
    np.testing.assert_allclose(ds.next_observations[8], episodes[1]["observations"]["observation"][4], rtol=1e-6)
    assert ds.terminals.tolist() == [False] * 4 + [True] + [False] * 4
    assert ds.timeouts.tolist() == [False] * 8 + [True]


def test_made_data_opens_in_minari_and_replays(kitchen_root):
    import minari

    from bench.tasks import get_task

    _root, summary = kitchen_root
    assert summary["status"] == "made" and summary["episodes"] == 2
    ds = minari.load_dataset("D4RL/kitchen/complete-v2")
    assert ds.total_episodes == 2
    meta = list(ds.storage.get_episode_metadata([0, 1]))
    task = get_task("kitchen-complete")
    for ep, m in zip(ds.iterate_episodes(), meta):
        assert set(ep.observations) == {"observation", "achieved_goal", "desired_goal"}
        env = task.make_env()
        obs, _ = env.reset(seed=int(m["seed"]))
        np.testing.assert_allclose(obs, ep.observations["observation"][0], atol=1e-12)
        rewards, info = [], {}
        for a in ep.actions:
            obs, r, term, trunc, info = env.step(a)
            rewards.append(r)
        env.close()
        # The replay reaches exactly the recorded rewards, flags and final state: nothing was teleported.
        np.testing.assert_array_equal(rewards, ep.rewards)
        assert bool(term) == bool(ep.terminations[-1]) and bool(trunc or term)
        np.testing.assert_allclose(obs, ep.observations["observation"][-1], atol=1e-9)
        assert info["completed"] == int(np.sum(ep.rewards))


def test_success_metric_scripted_success_and_failure():
    """A scripted kitchen-complete episode completes all 4 subtasks: replayed in the suite's env it terminates
    with success and score 100. The same actions cut off before the last completion leave 3 of 4 done: no
    success, score 75."""
    from bench.data.kitchen import scripted_episode
    from bench.tasks import get_task
    from bench.tasks.kitchen import KITCHEN_TASK_SETS

    task = get_task("kitchen-complete")
    tasks = KITCHEN_TASK_SETS["complete"]
    env = task.make_env()
    ep = scripted_episode(env, tasks, seed=0, rng=np.random.default_rng(0), action_std=0.0,
                          jitter_std=0.0, max_steps=280)
    env.close()
    assert ep["terminations"][-1] and ep["rewards"].sum() == 4.0 and len(ep["actions"]) < 280
    assert sorted(ep["completed"]) == sorted(tasks)
    env = task.make_env()
    env.reset(seed=0)
    for a in ep["actions"]:
        _, _r, term, _trunc, info = env.step(a)
    assert term and info["success"] and info["completed"] == 4
    assert task.normalized_score(4.0, info) == 100.0
    last = int(np.flatnonzero(ep["rewards"])[-1])  # the step that completes the 4th subtask
    env.reset(seed=0)
    for a in ep["actions"][:last]:
        _, _r, term, _trunc, info = env.step(a)
    assert not term and not info["success"] and info["completed"] == 3
    assert task.normalized_score(3.0, info) == 75.0
    env.close()


def test_tiny_bc_dp_run(kitchen_root, tmp_path):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store

    over = dict(TINY, **TINY_CS, **{"eval.episodes": 2})
    cfg = resolve_config("bc_dp", "kitchen-complete", 0, over)
    rid = run_one(cfg, store_root=tmp_path, sweep_id="k", progress=False)
    row = Store(tmp_path).runs(sweep="k").iloc[0]
    assert row.status == "finished" and row.suite == "kitchen"
    assert row.task == "kitchen-complete" and json.loads(row.config_json)["task"] == "kitchen-complete"
    c = Store(tmp_path).curves(sweep="k", run_ids=[rid])
    assert {"return", "normalized_score", "success"} <= set(c.metric)
    score = c[c.metric == "normalized_score"].value
    assert ((score >= 0) & (score <= 100)).all()
