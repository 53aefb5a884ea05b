"""FlatKitchen, the kitchen suite's wrapper of FrankaKitchen-v1 (bench/tasks/kitchen.py's make_kitchen_env wraps
each env in it).

Why a module of its own: the wrapper is a gymnasium Wrapper, so defining it needs gymnasium, and the suite's
module, which registers its tasks, must not: the tasks are listed and configured without gymnasium (`mbench list
tasks`, `mbench config`, and `mbench time` on a bare GPU machine that lacks it).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

# The flat observation: FrankaKitchen-v1's `observation` entry (robot qpos and qvel, object qpos and qvel).
KITCHEN_OBS_DIM = 59


class FlatKitchen(gym.Wrapper):
    """FrankaKitchen-v1 with the flat `observation` entry and `info["success"]` / `info["completed"]`.

    The inner env keeps one list object for `episode_task_completions` across steps and clears it on reset;
    the infos returned here hold copies, so a final info kept by the caller stays true after a reset."""

    def __init__(self, env, tasks: tuple[str, ...]):
        super().__init__(env)
        self.tasks = tuple(tasks)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(KITCHEN_OBS_DIM,), dtype=np.float64)

    def _info(self, info: dict[str, Any]) -> dict[str, Any]:
        done = list(info.get("episode_task_completions", []))
        return {"tasks_to_complete": list(info.get("tasks_to_complete", [])),
                "step_task_completions": list(info.get("step_task_completions", [])),
                "episode_task_completions": done, "completed": len(done),
                "success": len(done) == len(self.tasks)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        return np.array(obs["observation"], dtype=np.float64), self._info(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return np.array(obs["observation"], dtype=np.float64), float(reward), terminated, truncated, self._info(info)
