"""Kitchen suite tasks: D4RL's task sets and the protocol, the success metric, and a tiny bc_dp run end to
end on made data.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import TINY, TINY_CS

pytest.importorskip("gymnasium_robotics")


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


@pytest.mark.slow
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
