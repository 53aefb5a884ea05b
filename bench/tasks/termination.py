"""The termination rules of the MuJoCo locomotion tasks, as functions of the observation.

Why: a learned world model is bad at termination (the hopper issue's B2: on hopper-medium ~0.2% of transitions
terminate, and the demo-sized model's recall at p > 0.5 was 0), and a planner that cannot see a fall coming plans
through it. MBPO (and MOPO after it) give the model the task's own termination function instead, for these tasks
(jannerm/mbpo, mbpo/static/hopper.py and walker2d.py: `termination_fn(obs, act, next_obs)`; halfcheetah never
terminates). These are Gymnasium's v5 rules, which those files mirror, read from the observation (which starts
at qpos[1]: obs[0] is the torso height z, obs[1] its angle):
- Hopper-v5 (`is_healthy`): alive while z > 0.7, |angle| < 0.2 and |state| < 100 elementwise for the state after
  the x position, here obs[1:] (its velocities are the env's clipped ones, within ±10, so that part never fires);
- Walker2d-v5: alive while 0.8 < z < 2.0 and -1 < angle < 1;
- HalfCheetah-v5: never terminates.
A rule takes raw (unnormalised) observations (..., obs_dim), as numpy arrays or torch tensors (only operators
both have, so this module needs neither), and returns a boolean array of the leading shape: True where the
episode ends. NaN or infinite observations count as terminal.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


def hopper(obs: Any) -> Any:
    z, angle = obs[..., 0], obs[..., 1]
    alive = (z > 0.7) & (abs(angle) < 0.2) & (abs(obs[..., 1:]) < 100).all(-1)
    return ~alive


def walker2d(obs: Any) -> Any:
    z, angle = obs[..., 0], obs[..., 1]
    alive = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
    return ~alive


def never(obs: Any) -> Any:
    return obs[..., 0] != obs[..., 0]  # False, except where the observation is NaN


RULES: dict[str, Callable[[Any], Any]] = {"Hopper-v5": hopper, "Walker2d-v5": walker2d, "HalfCheetah-v5": never}


def rule_for(env_id: str) -> Callable[[Any], Any] | None:
    """The termination rule of `env_id`, or None where the task gives none (the model learns it)."""
    return RULES.get(env_id)
