"""Kitchen suite data: the Minari loader on the real `D4RL/kitchen/*-v2` layout, and made data, opened by
Minari itself and replayed open-loop from its reset seeds.

Why: the suite must read real `D4RL/kitchen/*-v2` data and run here on data it makes itself; a replay that
reproduces the recorded rewards proves the maker only chose actions (no state was set).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gymnasium_robotics")


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
                 code_permalink="tests/bench/data/test_kitchen.py", description="real-layout fixture")
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
