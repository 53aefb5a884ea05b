"""The state of a robomimic env (bench/tasks/robomimic.py) as plain values, for an exact on-policy resume.

Why: a robosuite env keeps episode state well beyond its MuJoCo simulator, and a resumed episode needs all of
it (bench/tasks/env_state.py calls `robosuite_capture` and `robosuite_restore` for a RobosuiteLowDimEnv): the
episode's model (robosuite rebuilds it at each reset, and a task may draw parts of it, as Lift its cube's
size), the sim's MuJoCo integration state, the env's counters, observables, controllers, grippers and recent_*
buffers, and the wrapper's step count, reset RNG and last raw observation. Only what the robomimic tasks use
is known (`_robosuite_check`); anything else raises EnvStateError.
`robosuite` is imported inside `_robosuite_check`: it is optional, and only a robosuite env reaches that
check.
"""
from __future__ import annotations

import collections
import zlib
from typing import Any

import numpy as np
import torch

from bench.tasks.sim_state import (
    EnvStateError,
    check_attrs,
    mj_state,
    pack,
    pack_attrs,
    rng_from,
    rng_state,
    set_mj_state,
    unpack,
    unpack_attrs,
)

# bench/tasks/robomimic.py's RobosuiteLowDimEnv: its episode state is `_t`, `_rng` and `last_raw`.
_ROBOSUITE_WRAPPER_ATTRS = frozenset({"env", "env_args", "obs_keys", "max_episode_steps", "action_space",
                                      "observation_space", "spec", "metadata", "_rng", "_t", "last_raw"})


# -- robosuite (bench/tasks/robomimic.py's RobosuiteLowDimEnv over a robosuite env) --
_ROBOSUITE_CONTROLLERS = ("OperationalSpaceController", "SimpleGripController")


def _robosuite_check(env, name: str) -> None:
    """Only what the robomimic tasks use is known: fixed-base robots with a BASIC composite controller of OSC arms
    and simple grippers (no interpolators), observables without noise, delay or filters, and no viewer."""
    from robosuite.utils.observables import NO_CORRUPTION, NO_DELAY, NO_FILTER

    def bad(what: str):
        return EnvStateError(f"cannot checkpoint the on-policy envs of {name}: {what}, whose state is not known to "
                             f"bench/tasks/robomimic_state.py")

    if getattr(env, "viewer", None) is not None:
        raise bad("its robosuite env has a viewer")
    for robot in env.robots:
        if type(robot).__name__ != "FixedBaseRobot" or type(robot.composite_controller).__name__ != "CompositeController":
            raise bad(f"its robot {type(robot).__name__} with {type(robot.composite_controller).__name__}")
        for part, c in robot.composite_controller.part_controllers.items():
            if type(c).__name__ not in _ROBOSUITE_CONTROLLERS:
                raise bad(f"its {part} controller is a {type(c).__name__}")
            if any(getattr(c, k, None) is not None for k in ("interpolator", "interpolator_pos", "interpolator_ori")):
                raise bad(f"its {part} controller interpolates")
    for oname, o in env._observables.items():
        if o._corrupter is not NO_CORRUPTION or o._delayer is not NO_DELAY or o._filter is not NO_FILTER:
            raise bad(f"its observable {oname} is corrupted, delayed or filtered")


def _robosuite_buffers(robot) -> dict[str, Any]:
    """The robot's recent_* buffers (DeltaBuffer, RingBuffer; a dict of them per arm for the eef ones)."""
    out: dict[str, Any] = {}
    for k, v in vars(robot).items():
        if not k.startswith("recent_") or v is None:
            continue
        out[k] = {"arms": {arm: pack_attrs(b) for arm, b in v.items() if b is not None}} if isinstance(v, dict) \
            else {"buffer": pack_attrs(v)}
    return out


def robosuite_capture(base, name: str) -> dict[str, Any]:
    """The episode's model (the MJCF robosuite compiled at its last reset, zlib-compressed), the MuJoCo
    integration state of its sim (a superset of `sim.get_state().flatten()`, which holds time, qpos and qvel
    only: also the solver's warm start, controls, actuator activations, ..., without which the contacts differ
    in their last bits), every number and array of the robosuite env (timestep, cur_time, done, and a task's
    own, e.g. objects_in_bins), its observation cache and each observable's sampling state and last value,
    each robot's part controllers (goals, gains, the episode's initial joints that the nullspace torques pull
    to, update flags), its grippers' ramped command (`current_action`) and its recent_* buffers; and the
    wrapper's step count, reset RNG and last raw observation."""
    env = base.env
    check_attrs(base, _ROBOSUITE_WRAPPER_ATTRS, name)
    _robosuite_check(env, name)
    sim = env.sim
    st = mj_state(sim.model._model, sim.data._data)
    xml = zlib.compress(env.model.get_xml().encode(), 6)
    st["robosuite"] = {
        "model_xml_zlib": torch.frombuffer(bytearray(xml), dtype=torch.uint8),
        "env": pack_attrs(env),
        "rng": rng_state(env.rng) if isinstance(getattr(env, "rng", None), np.random.Generator) else "",
        "obs_cache": pack(env._obs_cache.items()),
        "observables": {k: pack_attrs(o) for k, o in env._observables.items()},
        "robots": [{"controllers": {part: pack_attrs(c) for part, c in r.composite_controller.part_controllers.items()},
                    "grippers": {part: pack([("current_action", g.current_action)])
                                 for part, g in r.composite_controller.grippers.items()},
                    "buffers": _robosuite_buffers(r)} for r in env.robots],
    }
    raw = getattr(base, "last_raw", None)
    st["wrapper"] = {"t": int(base._t), "rng": rng_state(base._rng),
                     "last_raw": None if raw is None else pack(raw.items())}
    return st


def robosuite_restore(base, st: dict[str, Any], name: str) -> None:
    env = base.env
    check_attrs(base, _ROBOSUITE_WRAPPER_ATTRS, name)
    rs = st["robosuite"]
    # The episode's own model first: robosuite rebuilds it at every (hard) reset, and a task may draw parts of it
    # (Lift's cube size) from the reset's RNG. robosuite's own way back to a model (robomimic's reset_to) is to
    # rebuild the sim from its MJCF; that reset draws nothing, and numpy's global RNG is left as it was.
    xml = zlib.decompress(bytes(rs["model_xml_zlib"].numpy().tobytes())).decode()
    saved = np.random.get_state()
    try:
        env.reset_from_xml_string(xml)
    finally:
        np.random.set_state(saved)
    _robosuite_check(env, name)
    robots = rs["robots"]
    parts = [list(r.composite_controller.part_controllers) for r in env.robots]
    if [list(r["controllers"]) for r in robots] != parts or list(rs["observables"]) != list(env._observables):
        raise EnvStateError(f"the checkpoint's {name} env has robot parts {[list(r['controllers']) for r in robots]} "
                            f"and observables {list(rs['observables'])}; the run's has {parts} and "
                            f"{list(env._observables)}")
    sim = env.sim
    set_mj_state(sim.model._model, sim.data._data, st, name)
    unpack_attrs(env, rs["env"])
    if rs["rng"]:
        env.rng = rng_from(rs["rng"])
    env._obs_cache.clear()
    env._obs_cache.update(unpack(rs["obs_cache"]))
    for k, o in env._observables.items():
        unpack_attrs(o, rs["observables"][k])
    for robot, held_st in zip(env.robots, robots):
        for part, c in robot.composite_controller.part_controllers.items():
            unpack_attrs(c, held_st["controllers"][part])
        for part, g in robot.composite_controller.grippers.items():
            unpack_attrs(g, held_st["grippers"][part])
        for k, b in held_st["buffers"].items():
            held = getattr(robot, k)
            if "arms" in b:
                for arm, packed in b["arms"].items():
                    unpack_attrs(held[arm], packed)
            else:
                unpack_attrs(held, b["buffer"])
    w = st["wrapper"]
    base._t = int(w["t"])
    base._rng = rng_from(w["rng"])
    if w["last_raw"] is not None:
        base.last_raw = collections.OrderedDict(unpack(w["last_raw"]))

