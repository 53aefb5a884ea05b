"""A task env's state as plain values, by env kind: what the on-policy loop's checkpoints hold.

Why: the on-policy loop (bench/runner/on_policy.py) continues episodes across rollouts, so a checkpoint taken
at a rollout boundary must hold each env's episode state for a resumed run to repeat the uninterrupted one
(`sub_env_state`, `set_sub_env_state`; the loop adds its vector env's autoreset flags and its carry). Per env:
- its wrapper layers: only those known to hold nothing a resumed episode needs (OrderEnforcing's flag and the
  TimeLimit's step count are saved; PassiveEnvChecker only warns; FlatKitchen holds its task list only); any
  other wrapper raises EnvStateError naming the env;
- the env under them, by kind: a gymnasium `MujocoEnv` its MuJoCo integration state and `np_random`
  (bench/tasks/sim_state.py); FrankaKitchen also its noisy last joint positions and its task bookkeeping
  (bench/tasks/kitchen_state.py); a robosuite env in bench/tasks/robomimic.py's wrapper its episode's model,
  counters, observables, controllers and grippers, and the wrapper's step count and reset RNG
  (bench/tasks/robomimic_state.py). Any other env raises EnvStateError naming it.
The env given is the task's own (what `TaskSpec.make_env` returned), without the loop's layers around it.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from bench.tasks.kitchen_env import FlatKitchen
from bench.tasks.kitchen_state import FLAT_KITCHEN_ATTRS, is_kitchen_env, kitchen_capture, kitchen_restore
from bench.tasks.robomimic import RobosuiteLowDimEnv
from bench.tasks.robomimic_state import robosuite_capture, robosuite_restore
from bench.tasks.sim_state import EnvStateError, check_attrs, mujoco_capture, mujoco_restore


def _mujoco_env_class():
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # mujoco is not installed: no env can be a MujocoEnv
        return None
    return MujocoEnv


def _env_name(env) -> str:
    if not isinstance(env, gym.Env):  # an env with gymnasium's API only, e.g. "RobosuiteLowDimEnv:Lift"
        spec = getattr(env, "spec", None)
        if spec is not None:
            return spec.id
        args = getattr(env, "env_args", None)
        sub = f":{args['env_name']}" if isinstance(args, dict) and "env_name" in args else ""
        return f"{type(env).__name__}{sub}"
    u = env.unwrapped
    spec = getattr(u, "spec", None) or getattr(env, "spec", None)
    return spec.id if spec is not None else type(u).__name__


# Wrappers that hold no state a resumed episode needs (PassiveEnvChecker only warns).
_STATELESS_WRAPPERS = ("PassiveEnvChecker",)


def _unwrap(env, name: str) -> tuple[list[gym.Env], Any]:
    """The wrapper layers of a task's env, and the env under them; raises EnvStateError for a wrapper whose state
    is not known."""
    layers = []
    w = env
    while True:
        if not isinstance(w, gym.Wrapper):
            return layers, w
        kind = type(w)
        if kind is FlatKitchen:
            check_attrs(w, FLAT_KITCHEN_ATTRS, name)
        elif kind not in (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing) and \
                kind.__name__ not in _STATELESS_WRAPPERS:
            raise EnvStateError(
                f"cannot checkpoint the on-policy envs of {name}: its wrapper {kind.__name__} may hold episode "
                f"state that is not known to bench/tasks/env_state.py; only TimeLimit, OrderEnforcing, FlatKitchen "
                f"and {', '.join(_STATELESS_WRAPPERS)} can be saved")
        layers.append(w)
        w = w.env


def _base_kind(base, name: str) -> str:
    """Which of the known env kinds `base` is: FrankaKitchen (gymnasium-robotics), a robosuite env in
    bench/tasks/robomimic.py's wrapper, or a gymnasium MujocoEnv."""
    if is_kitchen_env(base):
        return "kitchen"
    if isinstance(base, RobosuiteLowDimEnv):
        return "robosuite"
    mujoco_env = _mujoco_env_class()
    if mujoco_env is not None and isinstance(base, mujoco_env):
        return "mujoco"
    raise EnvStateError(
        f"cannot checkpoint the on-policy envs of {name}: {type(base).__name__} is not a gymnasium MujocoEnv, "
        f"FrankaKitchen or a robosuite env in bench/tasks/robomimic.py's wrapper, and no other way to save its "
        f"simulator state is known to bench/tasks/env_state.py (episodes continue across rollouts, so a "
        f"checkpoint must hold it)")


_KINDS = {"mujoco": (mujoco_capture, mujoco_restore), "kitchen": (kitchen_capture, kitchen_restore),
          "robosuite": (robosuite_capture, robosuite_restore)}


def sub_env_state(env) -> dict[str, Any]:
    """One task env's state as plain values: its simulator's state and the rest of its episode state (per env
    kind: `mujoco_capture`, `kitchen_capture`, `robosuite_capture`), its TimeLimit step count and its
    OrderEnforcing flag."""
    name = _env_name(env)
    layers, base = _unwrap(env, name)
    kind = _base_kind(base, name)
    st: dict[str, Any] = {"env_id": name, "kind": kind}
    st.update(_KINDS[kind][0](base, name))
    for w in layers:
        if isinstance(w, gym.wrappers.TimeLimit):
            st["elapsed_steps"] = -1 if w._elapsed_steps is None else int(w._elapsed_steps)
        elif isinstance(w, gym.wrappers.OrderEnforcing):
            st["has_reset"] = bool(w._has_reset)
    return st


def set_sub_env_state(env, st: dict[str, Any]) -> None:
    """Load what sub_env_state returned into a task env of the same task that has been reset once."""
    name = _env_name(env)
    if st["env_id"] != name:
        raise EnvStateError(f"the checkpoint's on-policy env is {st['env_id']}, but the run's env is {name}")
    layers, base = _unwrap(env, name)
    kind = _base_kind(base, name)
    if st.get("kind", "mujoco") != kind:
        raise EnvStateError(f"the checkpoint's on-policy env {name} was saved as a {st.get('kind')} env, "
                            f"but the run's is a {kind} env")
    _KINDS[kind][1](base, st, name)
    for w in layers:
        if isinstance(w, gym.wrappers.TimeLimit):
            w._elapsed_steps = None if int(st["elapsed_steps"]) < 0 else int(st["elapsed_steps"])
        elif isinstance(w, gym.wrappers.OrderEnforcing):
            w._has_reset = bool(st["has_reset"])
