"""Suite `kitchen`: FrankaKitchen-v1 (gymnasium-robotics) with D4RL's three task sets.

Why: the paper's long-horizon task. D4RL's protocol (d4rl/kitchen/__init__.py and kitchen_envs.py):
- kitchen-complete and kitchen-partial both run KitchenMicrowaveKettleLightSliderV0: microwave, kettle,
  light switch, slide cabinet. kitchen-mixed runs KitchenMicrowaveKettleBottomBurnerLightV0: microwave, kettle,
  bottom burner, light switch. (partial and complete share the task; they differ in their data.)
- 280 steps per episode; the reward of a step is the number of subtasks it newly completes (FrankaKitchen-v1's
  own reward with `remove_task_when_completed`), so the return counts completed subtasks; ref 0 and 4 as D4RL.
- The score is completed/4 x 100, and success means all 4 are done (DPPO's threshold of 4); the env ends the
  episode then (`terminate_on_tasks_completed`).
The observation is flat: FrankaKitchen-v1's `observation` entry (robot qpos and qvel, object qpos and qvel: 59
numbers). The goal entries are constant within a task, so they carry no information and are dropped, both here
and in the loader (bench/data/kitchen.py), so env and data agree.

This module does not import `bench.tasks` (which imports it to register its tasks): `TASKS` lists them. Nor
does it import gymnasium: the env's wrapper, FlatKitchen, is bench/tasks/kitchen_env.py, which make_kitchen_env
imports when it makes an env, so the tasks are listed and configured without gymnasium (`mbench list tasks`,
`mbench config`, and `mbench time` on a machine that lacks it).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.tasks.kitchen_env import FlatKitchen

KITCHEN_TASK_SETS: dict[str, tuple[str, ...]] = {
    "complete": ("microwave", "kettle", "light switch", "slide cabinet"),
    "partial": ("microwave", "kettle", "light switch", "slide cabinet"),
    "mixed": ("microwave", "kettle", "bottom burner", "light switch"),
}
KITCHEN_MAX_STEPS = 280
KITCHEN_ENV_ID = "FrankaKitchen-v1"


def make_kitchen_env(task: Any, **overrides) -> FlatKitchen:
    """`task`: a bench.tasks.TaskSpec of this suite."""
    import gymnasium as gym
    import gymnasium_robotics

    from bench.tasks.kitchen_env import FlatKitchen  # lazy: gymnasium

    gym.register_envs(gymnasium_robotics)
    kwargs = {"tasks_to_complete": list(KITCHEN_TASK_SETS[task.env_kwargs["variant"]]),
              "max_episode_steps": task.max_episode_steps}
    kwargs.update(overrides)  # e.g. tasks_to_complete=[one subtask] in tests of the success metric
    return FlatKitchen(gym.make(KITCHEN_ENV_ID, **kwargs), tuple(kwargs["tasks_to_complete"]))


def kitchen_score(episode_return: float, info: dict) -> float:
    """completed/4 x 100. The completed count comes from the env's final info; the return (one per completed
    subtask) stands in when no info is given."""
    completed = info.get("completed", len(info["episode_task_completions"])
                         if "episode_task_completions" in info else episode_return)
    return 100.0 * float(completed) / 4.0


# The suite's tasks, as TaskSpec fields; bench.tasks registers them.
TASKS: tuple[dict[str, Any], ...] = tuple(
    {"name": f"kitchen-{_variant}", "suite": "kitchen", "env_id": KITCHEN_ENV_ID,
     "dataset_id": f"D4RL/kitchen/{_variant}-v2", "ref_min": 0.0, "ref_max": 4.0,
     "ref_source": "d4rl kitchen refs (0 and 4 subtasks); score = completed/4 x 100",
     "max_episode_steps": KITCHEN_MAX_STEPS, "eval_episodes": 10, "max_return": 4.0, "env_kwargs": {"variant": _variant},
     "gamma": 0.99, "chunk": 4, "success_metric": True, "score_fn": kitchen_score, "make_env_fn": make_kitchen_env,
     "description": f"D4RL kitchen-{_variant}: {', '.join(_tasks)}"}
    for _variant, _tasks in KITCHEN_TASK_SETS.items())
