"""MODIP's planner with the task's termination rule (world_model.termination: task; MBPO's static functions)."""
import numpy as np
import pytest
import torch

from bench.tasks.termination import hopper, never, rule_for, walker2d
from methods.common.section import ConfigError


def test_the_rules_follow_gymnasiums_v5_health_checks():
    ok = np.array([1.25, 0.0, 0.1, -0.3, 0.2, 1.0, 0.5, -0.4, 2.0, -1.0, 3.0])
    fallen, tilted, nan = ok.copy(), ok.copy(), ok.copy()
    fallen[0], tilted[1], nan[4] = 0.69, 0.21, np.nan
    assert hopper(np.stack([ok, fallen, tilted, nan])).tolist() == [False, True, True, True]
    t = torch.as_tensor(np.stack([ok, fallen]), dtype=torch.float32)  # torch tensors too, batched
    assert hopper(t).tolist() == [False, True]
    w = np.array([[1.25, 0.9], [0.79, 0.0], [2.01, 0.0], [1.2, -1.01]])
    assert walker2d(w).tolist() == [False, True, True, True]
    assert never(w).tolist() == [False] * 4
    assert rule_for("Hopper-v5") is hopper and rule_for("Pendulum-v1") is None


def test_a_hopper_env_terminates_exactly_where_the_rule_says():
    import gymnasium as gym

    env = gym.make("Hopper-v5")
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(400):
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 3))
        assert bool(hopper(obs)) == term
        if term or trunc:
            obs, _ = env.reset(seed=int(rng.integers(1000)))
    env.close()


def test_modip_plans_with_the_rule_and_refuses_a_task_without_one():
    from methods.common.normalize import Normalizer
    from tests.methods.modip.test_modip import build

    norm = Normalizer(np.full(2, 1.0), np.full(2, 2.0), np.array([-1.0]), np.array([1.0]))
    m = build({"world_model.termination": "task"}, obs_dim=2, normalizer=norm, terminal_fn=lambda o: o[..., 0] > 1.5)
    models, learned = m.plan_models(True), m.world_model.step
    s, a = torch.randn(64, 2), torch.zeros(64, 1)
    s_next, r, d, _ = models.step(s, a)
    want_s, want_r, _, _ = learned(s, a, disagreement=False)
    torch.testing.assert_close(s_next, want_s)  # the model's prediction, only the termination replaced
    torch.testing.assert_close(r, want_r)
    assert d.tolist() == ((s_next[:, 0] * 2.0 + 1.0) > 1.5).float().tolist()  # on the raw observation
    assert 0 < d.sum() < 64
    with pytest.raises(ConfigError, match="termination"):
        build({"world_model.termination": "task"}, obs_dim=2, terminal_fn=None)
