"""`assemble`: a run's parts from its typed config, for each kind of data (bench/runner/assemble.py).

- "dataset": the run's own data: the spaces of the task's env, the task's refs from the dataset, the normaliser
  fitted on it, the offline data in the buffer with rewards times reward_scale, the buffer attached to the method;
- "synthetic" and "none": the spaces from the timing table (or obs_dim/act_dim), a unit normaliser, random
  transitions or none;
- the same config and seed give the same method weights;
- the timing table's known spaces (KNOWN_SPACES) match the envs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.layers import resolve_config
from bench.runner.assemble import assemble


def test_dataset_parts_are_the_runs(demo_dataset):
    from bench.data.loaders import load_dataset
    from bench.tasks.demo import DEMO_DATASET

    cfg = resolve_config("bc_dp", "demo", 3, {"reward_scale": 2.0, "dp.hidden": [16, 16]})
    parts = assemble(cfg)
    d = load_dataset(DEMO_DATASET)
    assert (parts.spaces.obs_dim, parts.spaces.act_dim) == (d.obs_dim, d.act_dim) == (9, 1)
    assert parts.spaces.reward_scale == 2.0 and parts.spaces.max_episode_steps == 200
    assert parts.act_low.dtype == np.float32 and parts.act_high.tolist() == [1.0]
    assert (parts.task.ref_min, parts.task.ref_max) == (d.ref_min, d.ref_max) and parts.task.ref_min is not None
    assert parts.dataset_hash == d.content_hash() == parts.dataset.content_hash()
    assert parts.method.buffer is parts.buffer and parts.buffer.n_offline == len(d) and parts.buffer.n_online == 0
    stored = parts.buffer.fields_at(np.arange(len(d)), ("obs", "reward"))
    assert np.array_equal(stored["obs"].numpy(), d.observations)
    assert np.array_equal(stored["reward"].numpy(), (d.rewards * 2.0).astype(np.float32))
    assert np.allclose(parts.normalizer.obs_mean.numpy(), d.observations.mean(0), atol=1e-5)
    assert parts.method.seed == 3 and parts.method.device == torch.device("cpu")
    with pytest.raises(ValueError, match="apply to data='synthetic'"):
        assemble(cfg, obs_dim=3, act_dim=1)


def test_synthetic_and_empty_parts():
    cfg = resolve_config("bc_dp", "hopper-medium", 0, {"dp.hidden": [16, 16, 16]})
    torch.manual_seed(0)
    syn = assemble(cfg, data="synthetic")
    assert (syn.spaces.obs_dim, syn.spaces.act_dim, syn.spaces.max_episode_steps) == (11, 3, 1000)
    assert syn.dataset is None and syn.dataset_hash == ""
    assert syn.buffer.n_offline == 4096 and syn.buffer.n_online == 512 and syn.method.buffer is syn.buffer
    assert torch.equal(syn.normalizer.obs_mean, torch.zeros(11)) and torch.equal(syn.normalizer.obs_std, torch.ones(11))
    torch.manual_seed(0)
    again = assemble(cfg, data="synthetic")  # the caller's seed and the config's fix the weights
    assert all(torch.equal(a, b) for a, b in zip(syn.method.dp.policy.state_dict().values(),
                                                 again.method.dp.policy.state_dict().values(), strict=True))
    empty = assemble(cfg, data="none", obs_dim=5, act_dim=2)
    assert (empty.spaces.obs_dim, empty.spaces.act_dim) == (5, 2) and empty.buffer.size == 0
    assert empty.method.buffer is empty.buffer
    with pytest.raises(ValueError, match="go together"):
        assemble(cfg, data="synthetic", obs_dim=5)
    with pytest.raises(ValueError, match="data must be"):
        assemble(cfg, data="random")


def test_known_spaces_match_the_envs():
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from bench.runner.assemble import KNOWN_SPACES

    for env_id, (obs_dim, act_dim, lo, hi) in KNOWN_SPACES.items():
        if env_id == "FrankaKitchen-v1":
            continue  # needs gymnasium-robotics; its obs is the `observation` key of a dict space
        env = gym.make(env_id)
        assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,), env_id
        assert np.all(env.action_space.low == lo) and np.all(env.action_space.high == hi), env_id
        env.close()
