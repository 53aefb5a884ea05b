"""The task registry: one TaskSpec per benchmark task.

Why: every method must see the same env factory, dataset, score normalisation and eval protocol, so these
live in one place the runner reads.

Each suite module (`d4rl`, `demo`, `kitchen`, `robomimic`) lists its tasks as `TASKS`, a tuple of TaskSpec
fields, and never imports this package: so this registry imports every suite, and no suite imports it back (no
import cycle). Another task can still be added with `register_task`. Nothing in `bench/tasks` imports `bench.data`:
the datasets' side imports the tasks (a maker drives a task's env; a robomimic file binds a task to its env_args,
bench.data.loaders.bind_task).

A task env's episode state, which the on-policy loop's checkpoints hold, is saved and restored by env kind in
`env_state` (over `sim_state`, `kitchen_state` and `robomimic_state`); this package does not import those
modules (they need torch and gymnasium).
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any

from bench.tasks import d4rl, demo, kitchen, robomimic

SUITES = (d4rl, demo, kitchen, robomimic)
# A fixed list of eval seeds shared by every method; tuning uses the disjoint TUNE_EVAL_SEEDS.
EVAL_SEEDS = tuple(range(10_000, 10_050))
TUNE_EVAL_SEEDS = tuple(range(20_000, 20_050))


class TaskError(ValueError):
    pass


@dataclasses.dataclass
class TaskSpec:
    name: str
    suite: str
    env_id: str
    dataset_id: str
    ref_min: float | None
    ref_max: float | None
    ref_source: str
    max_episode_steps: int
    eval_episodes: int = 10  # per eval point (the suite layer's eval.episodes)
    eval_final_episodes: int = 0  # the run's last eval of every actor (eval.final_episodes; 0: eval_episodes)
    eval_seeds: tuple[int, ...] = EVAL_SEEDS  # the older protocol's fixed states (eval.states=fixed)
    # The most an episode can return, where the task knows it (the demo's full balance, kitchen's 4 subtasks):
    # reports flag a cell whose episodes sit at it (a ceiling). None: unknown (D4RL's locomotion).
    max_return: float | None = None
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    gamma: float = 0.99
    chunk: int = 4  # default action chunk length for DP methods on this task
    success_metric: bool = False  # the env reports success (kitchen, robomimic)
    score_fn: Callable[[float, dict], float] | None = None  # suite-specific score (kitchen)
    make_env_fn: Callable[..., Any] | None = None  # suite-specific factory (robosuite)
    description: str = ""

    def make_env(self, seed: int | None = None, **overrides):
        """A fresh env with the task's episode limit. Tasks with a custom factory use it."""
        if self.make_env_fn is not None:
            env = self.make_env_fn(self, **overrides)
        else:
            import gymnasium as gym

            kwargs = dict(self.env_kwargs)
            kwargs.update(overrides)
            env = gym.make(self.env_id, max_episode_steps=self.max_episode_steps, **kwargs)
        if seed is not None:
            env.action_space.seed(seed)
        return env

    def normalized_score(self, episode_return: float, info: dict | None = None) -> float:
        if self.score_fn is not None:
            return float(self.score_fn(episode_return, info or {}))
        if self.ref_min is None or self.ref_max is None:
            return float("nan")
        return 100.0 * (episode_return - self.ref_min) / (self.ref_max - self.ref_min)

    def eval_defaults(self) -> dict[str, Any]:
        """The task's eval protocol: its suite layer of a run's `eval` section (bench/config/layers.py)."""
        out: dict[str, Any] = {"states": "per_seed", "episodes": self.eval_episodes}
        if self.eval_final_episodes:
            out["final_episodes"] = self.eval_final_episodes
        return out

    def ceiling(self) -> dict[str, Any]:
        """What a run records of the task's ceiling, for reports: the max return (an episode within 1% of it
        is at the ceiling), or success (an episode that succeeds is), or nothing known."""
        if self.max_return is not None:
            return {"metric": "return", "max": float(self.max_return)}
        if self.success_metric:
            return {"metric": "success", "max": 1.0}
        return {}

    def with_refs(self, ref_min: float, ref_max: float, source: str) -> TaskSpec:
        return dataclasses.replace(self, ref_min=float(ref_min), ref_max=float(ref_max), ref_source=source)


_TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    _TASKS[spec.name] = spec
    return spec


for _suite in SUITES:
    for _fields in _suite.TASKS:
        register_task(TaskSpec(**_fields))


def get_task(name: str) -> TaskSpec:
    if name not in _TASKS:
        close = difflib.get_close_matches(name, list(_TASKS), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else " (see `mbench list tasks`)"
        raise TaskError(f"unknown task '{name}'{hint}")
    return _TASKS[name]


def all_tasks() -> dict[str, TaskSpec]:
    return dict(_TASKS)
