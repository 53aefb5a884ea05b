"""Env state as plain values, for an exact resume of the on-policy loop: what every env kind shares.

Why: the on-policy loop (bench/runner/on_policy.py) continues episodes across rollouts, so its checkpoints
hold each env's state (bench/tasks/env_state.py saves and restores it by env kind). A checkpoint is read with
`torch.load(weights_only=True)`, so that state is tensors, numbers, strings and lists only. Here:
- `EnvStateError`, and the check that a known wrapper or env object has grown no unknown attributes;
- RNGs as JSON strings, and an object's numbers and arrays as plain values (`pack`, `unpack`);
- the MuJoCo integration state (`mj_state`), and a gymnasium `MujocoEnv`'s state: its integration state and
  its `np_random` (`mujoco_capture`), which the MuJoCo envs under FrankaKitchen (bench/tasks/kitchen_state.py)
  and robosuite (bench/tasks/robomimic_state.py) build on.
`mujoco` is imported inside the functions that need it: it is optional, and an env without it (e.g. Pendulum)
must still reach the error that names it.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch


class EnvStateError(RuntimeError):
    """An env whose state the on-policy loop cannot checkpoint (or restore)."""


# The attributes every gymnasium.Wrapper has; a known wrapper with others may have grown state.
WRAPPER_ATTRS = frozenset({"env", "_action_space", "_observation_space", "_metadata", "_cached_spec",
                           "_reward_range"})


def check_attrs(obj, known: frozenset, name: str) -> None:
    extra = sorted(set(vars(obj)) - known)
    if extra:
        raise EnvStateError(f"cannot checkpoint the on-policy envs of {name}: {type(obj).__name__} has attributes "
                            f"{extra} that bench/tasks/env_state.py does not know, and they may be episode state")


# -- plain values (the checkpoint is read with torch.load(weights_only=True)) --
def rng_state(rng) -> str:
    return "" if rng is None else json.dumps(rng.bit_generator.state)


def rng_from(state: str):
    if not state:
        return None
    st = json.loads(state)
    rng = np.random.Generator(getattr(np.random, st["bit_generator"])())
    rng.bit_generator.state = st
    return rng


def pack(items) -> dict[str, Any]:
    """(name, value) pairs as plain values: numeric arrays that own their data as tensors (their dtype kept),
    numpy scalars as 0-d tensors, Python numbers, bools, strings and None as they are. An array that two names
    hold is saved once, and restored shared (`alias`). Anything else (lists of indices, names, references to
    the simulator or to other objects) is structure that a fresh env of the same task has too, and is skipped;
    so are arrays that are views into another buffer (the simulator's), which is restored with its owner."""
    arrays, scalars, values, alias, seen = {}, {}, {}, {}, {}
    for k, v in items:
        if isinstance(v, np.ndarray):
            if v.base is not None or v.dtype.kind not in "biuf":
                continue
            if id(v) in seen:
                alias[k] = seen[id(v)]
                continue
            seen[id(v)] = k
            arrays[k] = torch.from_numpy(v.copy())
        elif isinstance(v, np.generic):
            if v.dtype.kind in "biuf":
                scalars[k] = torch.from_numpy(np.array(v))
        elif v is None or isinstance(v, (bool, int, float, str)):
            values[k] = v
    return {"arrays": arrays, "scalars": scalars, "values": values, "alias": alias}


def unpack(st: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: t.numpy().copy() for k, t in st["arrays"].items()}
    out.update({k: t.numpy()[()] for k, t in st["scalars"].items()})
    out.update(st["values"])
    out.update({k: out[src] for k, src in st["alias"].items()})
    return out


def pack_attrs(obj) -> dict[str, Any]:
    return pack(vars(obj).items())


def unpack_attrs(obj, st: dict[str, Any]) -> None:
    for k, v in unpack(st).items():
        setattr(obj, k, v)


# -- MuJoCo (gymnasium's MujocoEnv, and the MuJoCo model under FrankaKitchen and robosuite) --
def _integration_spec() -> int:
    import mujoco

    return int(mujoco.mjtState.mjSTATE_INTEGRATION)


def mj_state(model, data) -> dict[str, Any]:
    """The MuJoCo integration state: time, qpos, qvel, act, warm start, controls, applied forces, mocap, ...:
    everything mj_step reads."""
    import mujoco

    spec = _integration_spec()
    sim = np.empty(mujoco.mj_stateSize(model, spec), np.float64)
    mujoco.mj_getState(model, data, sim, spec)
    return {"sim_spec": spec, "sim": torch.from_numpy(sim)}


def set_mj_state(model, data, st: dict[str, Any], name: str) -> None:
    import mujoco

    spec = int(st["sim_spec"])
    sim = st["sim"].numpy().astype(np.float64)
    if sim.size != mujoco.mj_stateSize(model, spec):
        raise EnvStateError(f"the checkpoint's simulator state of {name} has {sim.size} numbers, but the env's "
                            f"model takes {mujoco.mj_stateSize(model, spec)}")
    mujoco.mj_setState(model, data, sim, spec)
    mujoco.mj_forward(model, data)  # derived quantities (positions, contacts) for the new state


def mujoco_capture(base, name: str) -> dict[str, Any]:
    st = mj_state(base.model, base.data)
    st["np_random"] = rng_state(base._np_random)
    st["np_random_seed"] = -1 if base._np_random_seed is None else int(base._np_random_seed)
    return st


def mujoco_restore(base, st: dict[str, Any], name: str) -> None:
    set_mj_state(base.model, base.data, st, name)
    if st["np_random"]:
        base._np_random = rng_from(st["np_random"])
    base._np_random_seed = None if int(st["np_random_seed"]) < 0 else int(st["np_random_seed"])

