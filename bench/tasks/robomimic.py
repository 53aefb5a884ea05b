"""Suite `robomimic`: Lift, PickPlaceCan, NutAssemblySquare and TwoArmTransport on robosuite 1.5, low-dim state.

Why: the paper's manipulation tasks, with robomimic's protocol: the low-dim observation keys of robomimic's
configs, sparse reward (1 on success), success read from the env, and an episode that ends on success (as
robomimic's `run_rollout(terminate_on_success=True)`). Max steps follow DPPO (lift 300, can 300, square 400,
transport 800). The env is built from a dataset's `env_args` (robomimic's contract that data and env match);
real robomimic files were written with robosuite <= 1.4, whose flat `controller_configs` robosuite 1.5 rejects,
so `translate_controller_configs` rewrites it into 1.5's composite form.

Tasks: `<task>-<ph|mh>` (lift-ph, can-mh, ...), dataset ids `robomimic/<task>/<ph|mh>` (see
bench/data/robomimic_hdf5.py for where those files live, and for the table of tasks and their obs keys, which
the data's reader needs too). The normalised score is 100 x success.

This module does not import `bench.tasks` (which imports it to register its tasks): `TASKS` lists them.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar

import numpy as np

from bench.data import DatasetError
from bench.data.robomimic_hdf5 import (
    OSC_POSE_V14,
    ROBOMIMIC_TASKS,
    default_env_args,
    read_env_args,
    resolve_path,
)
from bench.data.shims import install as install_shims

# `task` below is a bench.tasks.TaskSpec; it is not imported, since bench.tasks imports this module.


def translate_controller_configs(cfg: dict[str, Any], robots: list[str]) -> dict[str, Any]:
    """robosuite <= 1.4 flat part config ({"type": "OSC_POSE", ...}) -> robosuite 1.5's composite form.

    Uses robosuite's own `refactor_composite_controller_config` for the layout. Two 1.4 semantics are kept:
    1.4's OSC took deltas in the world frame (1.5 defaults to the robot base frame, which differs for the rotated
    robots of TwoArmTransport), and 1.4 named the damping keys `damping`/`damping_limits` (1.5:
    `damping_ratio`/`damping_ratio_limits`). A config already in composite form passes through unchanged."""
    from robosuite.controllers.composite.composite_controller_factory import (
        is_part_controller_config,
        refactor_composite_controller_config,
    )

    if not is_part_controller_config(cfg):
        return copy.deepcopy(cfg)
    part = copy.deepcopy(cfg)
    for old, new in (("damping", "damping_ratio"), ("damping_limits", "damping_ratio_limits")):
        if old in part:
            part.setdefault(new, part.pop(old))
    part.setdefault("input_ref_frame", "world")
    # 1.4's `control_delta` became `input_type`.
    if "control_delta" in part:
        part.setdefault("input_type", "delta" if part.pop("control_delta") else "absolute")
    robot = robots[0] if robots else "Panda"
    return refactor_composite_controller_config(part, robot, ["right"])


class RobosuiteLowDimEnv:
    """A gymnasium-style env over a robosuite env: flat low-dim obs, sparse reward, success in `info`.

    - obs: concatenation of `obs_keys` (robomimic's order); `object` is robosuite's `object-state`.
    - reward: robosuite's sparse reward (1 on success with reward_shaping off). The episode terminates on success
      and is truncated at `max_episode_steps`.
    - reset(seed): robosuite's placement samplers draw from numpy's global RNG, so reset seeds it for the reset
      only and restores it afterwards (the runner's own global RNG stream is left as it was).
    """

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, env_args: dict[str, Any], obs_keys: tuple[str, ...], max_episode_steps: int):
        import gymnasium as gym

        install_shims()
        import robosuite

        self.env_args = copy.deepcopy(env_args)
        kwargs = dict(self.env_args.get("env_kwargs", {}))
        robots = kwargs.get("robots", ["Panda"])
        robots = robots if isinstance(robots, list) else [robots]
        kwargs["controller_configs"] = translate_controller_configs(kwargs.get("controller_configs") or OSC_POSE_V14,
                                                                    robots)
        # Low-dim only, no rendering; the time limit is ours.
        kwargs.update(has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False, ignore_done=True,
                      use_object_obs=True)
        for key in ("camera_depths", "camera_heights", "camera_widths", "camera_names", "render_gpu_device_id"):
            kwargs.pop(key, None)
        self.env = robosuite.make(self.env_args["env_name"], **kwargs)
        self.obs_keys = tuple(obs_keys)
        self.max_episode_steps = int(max_episode_steps)
        low, high = self.env.action_spec
        self.action_space = gym.spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32))
        self._rng = np.random.default_rng()
        obs = self._flat(self.env.reset())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=obs.shape, dtype=np.float32)
        self._t = 0
        self.spec = None

    def _flat(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        parts = []
        for k in self.obs_keys:
            parts.append(np.asarray(raw["object-state" if k == "object" else k], np.float64).reshape(-1))
        return np.concatenate(parts).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        reset_seed = int(self._rng.integers(2 ** 31 - 1))
        saved = np.random.get_state()
        np.random.seed(reset_seed)
        try:
            raw = self.env.reset()
        finally:
            np.random.set_state(saved)
        self._t = 0
        self.last_raw = raw
        return self._flat(raw), {"success": False, "reset_seed": reset_seed}

    def get_state(self) -> np.ndarray:
        """The flattened MuJoCo state (robomimic's `states` entry)."""
        return np.asarray(self.env.sim.get_state().flatten())

    def is_success(self) -> bool:
        return bool(self.env._check_success())

    def step(self, action):
        action = np.clip(np.asarray(action, np.float64).reshape(-1), self.action_space.low, self.action_space.high)
        raw, reward, _, _ = self.env.step(action)
        self.last_raw = raw  # robosuite's full observation dict (the maker records it in robomimic's layout)
        self._t += 1
        success = self.is_success()
        terminated = success
        truncated = (not terminated) and self._t >= self.max_episode_steps
        return self._flat(raw), float(reward), terminated, truncated, {"success": success}

    def close(self):
        self.env.close()


def make_robomimic_env(task: Any, **overrides) -> RobosuiteLowDimEnv:
    name = task.env_kwargs["task"]
    env_args = overrides.pop("env_args", None) or task.env_kwargs.get("env_args") or default_env_args(name)
    if overrides:
        raise TypeError(f"unexpected env overrides for {task.name}: {sorted(overrides)}")
    return RobosuiteLowDimEnv(env_args, ROBOMIMIC_TASKS[name][3], task.max_episode_steps)


def bind_dataset(task: Any, source: str) -> Any:
    """The task with its env built from the dataset's env_args (data and env must match)."""
    path = resolve_path(source)
    if path is None:
        return task
    env_args = read_env_args(path)
    if env_args.get("env_name") != task.env_id:
        raise DatasetError(f"robomimic file '{path.name}' was made for env '{env_args.get('env_name')}', "
                           f"but task '{task.name}' runs '{task.env_id}'")
    return dataclasses.replace(task, env_kwargs=dict(task.env_kwargs, env_args=env_args))


def success_score(episode_return: float, info: dict) -> float:
    return 100.0 * float(bool(info.get("success", False)))


# The suite's tasks, as TaskSpec fields; bench.tasks registers them.
TASKS: tuple[dict[str, Any], ...] = tuple(
    {"name": f"{_task}-{_kind}", "suite": "robomimic", "env_id": _env_name,
     "dataset_id": f"robomimic/{_task}/{_kind}", "ref_min": 0.0, "ref_max": 1.0,
     "ref_source": "success rate x 100 (robomimic: sparse reward, success from env)",
     "max_episode_steps": _steps, "eval_episodes": 10, "env_kwargs": {"task": _task}, "gamma": 0.99, "chunk": 4,
     "success_metric": True, "score_fn": success_score, "make_env_fn": make_robomimic_env,
     "bind_dataset_fn": bind_dataset,
     "description": f"robomimic {_task} ({_kind.upper()}) on robosuite {_env_name}, low-dim obs {list(_keys)}"}
    for _task, (_env_name, _robots, _steps, _keys) in ROBOMIMIC_TASKS.items() for _kind in ("ph", "mh"))
