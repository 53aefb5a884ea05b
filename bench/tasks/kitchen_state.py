"""The state of a kitchen env (bench/tasks/kitchen.py) as plain values, for an exact on-policy resume.

Why: FrankaKitchen-v1 (gymnasium-robotics) keeps episode state beyond its MuJoCo simulator, and a resumed
episode needs all of it (bench/tasks/env_state.py calls `kitchen_capture` and `kitchen_restore` for a kitchen
env):
- its robot's MujocoEnv: the simulator, and the np_random that draws the observation noise;
- the last noisy joint positions that the next action's velocity control starts from (`_last_robot_qpos`);
- the task bookkeeping: the tasks still to complete (whose reward is still to come), this episode's and this
  step's completions, and the kitchen's own np_random.
FlatKitchen, the suite's wrapper, keeps no episode state: `FLAT_KITCHEN_ATTRS` is what it may hold.
"""
from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch

from bench.tasks.sim_state import (
    WRAPPER_ATTRS,
    EnvStateError,
    mujoco_capture,
    mujoco_restore,
    rng_from,
    rng_state,
)

# bench/tasks/kitchen_env.py's FlatKitchen: its task list is set once, at construction; it keeps no episode state
# (the completed tasks are FrankaKitchen's own, saved with it below).
FLAT_KITCHEN_ATTRS = WRAPPER_ATTRS | {"tasks", "observation_space"}


def is_kitchen_env(base) -> bool:
    """`base` is FrankaKitchen's env (gymnasium-robotics' KitchenEnv). An env can only be an instance of a
    class whose module is loaded, so this imports nothing (no gymnasium-robotics)."""
    mod = sys.modules.get("gymnasium_robotics.envs.franka_kitchen.kitchen_env")
    kitchen = getattr(mod, "KitchenEnv", None) if mod is not None else None
    return kitchen is not None and isinstance(base, kitchen)


# -- FrankaKitchen-v1 (gymnasium-robotics): a GoalEnv over a MuJoCo FrankaRobot --
def kitchen_capture(base, name: str) -> dict[str, Any]:
    """The robot's MujocoEnv (simulator, and its np_random, which draws the observation noise), the last noisy
    joint positions that the next action's velocity control starts from (`_last_robot_qpos`), and the task
    bookkeeping: the tasks still to complete (whose reward is still to come), this episode's and this step's
    completions, and the kitchen's own np_random."""
    robot = base.robot_env
    st = mujoco_capture(robot, name)
    last = getattr(robot, "_last_robot_qpos", None)
    st.update(last_robot_qpos=None if last is None else torch.from_numpy(np.array(last, np.float64)),
              goal=[str(t) for t in base.goal],
              tasks_to_complete=[str(t) for t in base.goal if t in base.tasks_to_complete],
              episode_task_completions=[str(t) for t in base.episode_task_completions],
              step_task_completions=[str(t) for t in base.step_task_completions],
              kitchen_np_random=rng_state(base._np_random),
              kitchen_np_random_seed=-1 if base._np_random_seed is None else int(base._np_random_seed))
    return st


def kitchen_restore(base, st: dict[str, Any], name: str) -> None:
    if list(st["goal"]) != list(base.goal):
        raise EnvStateError(f"the checkpoint's {name} env has tasks {st['goal']}, the run's has {list(base.goal)}")
    robot = base.robot_env
    mujoco_restore(robot, st, name)
    if st["last_robot_qpos"] is not None:
        robot._last_robot_qpos = st["last_robot_qpos"].numpy().astype(np.float64).copy()
    # The set built as reset builds it, less the completed tasks: the same set, iterated in the same order.
    todo = set(base.goal.keys())
    for task in base.goal:
        if task not in st["tasks_to_complete"]:
            todo.remove(task)
    base.tasks_to_complete = todo
    base.episode_task_completions[:] = list(st["episode_task_completions"])  # the env keeps one list object
    base.step_task_completions[:] = list(st["step_task_completions"])
    if st["kitchen_np_random"]:
        base._np_random = rng_from(st["kitchen_np_random"])
    base._np_random_seed = None if int(st["kitchen_np_random_seed"]) < 0 else int(st["kitchen_np_random_seed"])
