"""The suites' own envs survive an on-policy checkpoint (bench/tasks/env_state.py, kitchen_state.py,
robomimic_state.py): captured at a rollout boundary and restored into new envs, their next rollouts equal
the uninterrupted ones bit for bit, task bookkeeping included.

The tests build the suites' envs from their task specs (a few seconds, most of it importing robosuite and
building its envs) and drive them with the on-policy loop's rollout collection.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from bench.runner.on_policy import (
    EnvCarry,
    capture_envs,
    collect_rollout,
    make_vector_env,
    restore_envs,
)
from tests.helpers import OnPolicyStandIn


# ---- the suites' own envs: FrankaKitchen (gymnasium-robotics) and robosuite (robomimic) ---------------------
class _SuiteTask:
    """A registered task's env (bench.tasks) with a short episode, so that a test passes an episode's end."""

    chunk = 4

    def __init__(self, name: str, limit: int):
        self.name, self.limit = name, limit

    def make_env(self):
        from bench.tasks import get_task

        task = get_task(self.name)
        if task.suite == "kitchen":
            return task.make_env(max_episode_steps=self.limit)
        env = task.make_env()
        env.max_episode_steps = self.limit  # RobosuiteLowDimEnv's own time limit (it has no TimeLimit)
        return env


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _continues_exactly(task, act_dim: int, prepare=None, check_restored=None):
    """Reset 2 envs, `prepare` them, run 8 env steps (mid-episode), capture -> torch.load(weights_only=True) ->
    restore into new envs (reset with other seeds first); the next rollouts of both, with the same policy,
    must be equal bit for bit, through an episode's end and the autoreset after it. `check_restored(envs, st)`
    looks at the new envs right after the restore. Returns (first rollout, captured state, rollouts after it)."""
    m = OnPolicyStandIn(2, 2, act_dim, gain=0.5)
    envs = make_vector_env(task, 2, 4)
    obs, _ = envs.reset(seed=[5, 6])
    if prepare is not None:
        prepare(envs)
    carry = EnvCarry.fresh(np.asarray(obs))
    first = collect_rollout(envs, m, None, carry, 2, 1.0, 10 ** 6)[0]
    st = _roundtrip(capture_envs(envs, carry))
    a = [collect_rollout(envs, m, None, carry, 3, 1.0, 10 ** 6)[0] for _ in range(2)]
    envs.close()
    envs2 = make_vector_env(task, 2, 4)
    carry2 = restore_envs(envs2, st, seeds=[100, 200])
    if check_restored is not None:
        check_restored(envs2, st)
    b = [collect_rollout(envs2, m, None, carry2, 3, 1.0, 10 ** 6)[0] for _ in range(2)]
    envs2.close()
    assert a[0]["timeout"][0].all() and a[0]["env_steps"][0].tolist() == [task.limit - 8] * 2  # the episodes end
    assert a[1]["timeout"][1].all()  # ... new ones begin after the autoreset slot, and end too
    assert sum(int(ro["first"].sum()) for ro in a) == 2
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            np.testing.assert_array_equal(ra[key], rb[key], err_msg=key)
    np.testing.assert_array_equal(carry.ep_return, carry2.ep_return)
    return first, st, a


def test_kitchen_envs_continue_exactly_with_their_task_bookkeeping():
    """FrankaKitchen: the robot's MuJoCo state and np_random (observation noise), the last noisy joint positions
    its velocity control starts from, and the task bookkeeping. Env 0's microwave is opened before the first
    rollout, so its subtask is complete at the capture: a restore that forgot it would pay its reward again."""
    pytest.importorskip("gymnasium_robotics", reason="the kitchen suite needs gymnasium-robotics")
    import mujoco

    def open_microwave(envs):
        k = envs.envs[0].unwrapped
        k.data.qpos[22] = -0.75  # the microwave hinge at its goal (OBS_ELEMENT_INDICES / _GOALS)
        mujoco.mj_forward(k.model, k.data)

    def bookkeeping(envs, st):
        k = envs.envs[0].unwrapped
        assert k.tasks_to_complete == {"kettle", "light switch", "slide cabinet"}
        assert k.episode_task_completions == ["microwave"]
        np.testing.assert_array_equal(k.robot_env._last_robot_qpos, st["envs"][0]["last_robot_qpos"].numpy())

    first, st, a = _continues_exactly(_SuiteTask("kitchen-complete", 10), 9, open_microwave, bookkeeping)
    assert first["reward"][:, 0].sum() == 1.0 and first["reward"][:, 1].sum() == 0.0
    e0 = st["envs"][0]
    assert e0["kind"] == "kitchen" and e0["env_id"] == "FrankaKitchen-v1" and e0["elapsed_steps"] == 8
    assert e0["episode_task_completions"] == ["microwave"]
    assert e0["tasks_to_complete"] == ["kettle", "light switch", "slide cabinet"]
    assert st["envs"][1]["episode_task_completions"] == []
    assert a[0]["reward"][:, 0].sum() == 0.0  # the microwave is not paid twice


@pytest.mark.slow
def test_robosuite_envs_continue_exactly():
    """robosuite Lift (robomimic's lift): the sim's full MuJoCo state, the episode's model (Lift draws its cube's
    size at each reset), the env's counters and observables, the controllers' state (the episode's initial
    joints, goals), the grippers' ramped command, and the wrapper's step count and reset RNG."""
    pytest.importorskip("robosuite", reason="the robomimic suite needs robosuite")
    _, st, _ = _continues_exactly(_SuiteTask("lift-ph", 10), 7)
    for e in st["envs"]:
        assert e["kind"] == "robosuite" and e["env_id"] == "RobosuiteLowDimEnv:Lift"
        assert e["wrapper"]["t"] == 8 and e["robosuite"]["env"]["values"]["timestep"] == 8
        assert e["sim"].dtype == torch.float64 and e["robosuite"]["model_xml_zlib"].dtype == torch.uint8
    # The two envs' episodes have different cubes: the model is per episode, and the checkpoint holds it.
    assert not torch.equal(st["envs"][0]["robosuite"]["model_xml_zlib"], st["envs"][1]["robosuite"]["model_xml_zlib"])
