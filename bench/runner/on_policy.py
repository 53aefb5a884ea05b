"""The runner's on-policy path: vector-env rollouts of chunk decisions, then one method update per rollout.

Why: on-policy methods (DPPO) learn from whole rollouts collected by the current policy, so the harness
owns a different loop than the off-policy one, under the same protocol (DESIGN.md):
- Envs. `n_envs` copies of the task's env in a `gymnasium.vector.SyncVectorEnv`, each wrapped so that one
  vector step executes one decision: `method.decision_length()` actions (`ChunkStep`; a DP method's first
  `dp.act_steps` of its sampled Ta-chunk). A decision stops early at the end of an episode. An env with
  gymnasium's API that is not a gymnasium.Env (robosuite's, bench/tasks/robomimic.py) goes in `AsGymEnv`.
- Autoreset. Gymnasium 1.x vector envs autoreset on the *next* step: the step after an episode ends is a
  reset whose action is ignored, with reward 0 and no termination. That slot is marked `valid = False`:
  it counts no env steps, and the method's GAE and update skip it.
- Terminals and timeouts stay apart: `terminal` never bootstraps; `timeout` (and the end of a rollout)
  bootstraps from `next_obs`, which at an episode's end is the episode's last obs (next-step autoreset
  returns it before resetting).
- Env steps count every real `env.step` of every env, as in the off-policy path; autoreset slots count none.
- Evaluation happens at the first chunk-decision boundary at or after each grid step (the policy is fixed
  within a rollout) and records the actual env_step. It uses its own envs, seeds and ActorState.
- Episodes continue across rollouts, as in DPPO (its gym configs' `reset_at_iteration: False`,
  agent/finetune/train_ppo_diffusion_agent.py): the vector envs are reset once, at the start of the online
  phase, seeded by (run seed, env index); each rollout then continues where the previous one stopped, and
  only next-step autoreset starts new episodes. `EnvCarry` is what one rollout hands the next: the last obs,
  the autoreset-pending flags, the first-decision flags and the running undiscounted returns (train/return).
  An episode cut by the end of a rollout bootstraps there like a timeout; the method's reward scaler carries
  its running return over (methods/dppo).
- Resume. Checkpoints are taken only at rollout boundaries, and each holds the envs' state in the run's
  `loop_state` (`capture_envs`): per env its MuJoCo integration state (`mj_getState`), its TimeLimit step
  count, and the rest of its episode state by env kind: a gymnasium `MujocoEnv` its `np_random`;
  FrankaKitchen (kitchen) also its noisy last joint positions and its task bookkeeping; a robosuite env
  (robomimic) its episode's model (MJCF), counters, observables, controllers and grippers, and the wrapper's
  step count and reset RNG (see `_kitchen_capture`, `_robosuite_capture`); plus the vector env's autoreset
  flags and the carry, all as tensors, numbers, strings and lists. The on-policy loop restores them on
  resume (`restore_envs`), so a resumed run repeats the uninterrupted one exactly (the contract tests check
  it, stopping mid-episode). Only those env kinds behind known wrappers can be captured; for any other env,
  taking a checkpoint raises `EnvStateError` naming it.

A rollout handed to `method.update_rollout` holds arrays shaped (T, n_envs, ...), T <= n_steps (the last
rollout stops at the env-step budget): obs, next_obs, reward (the decision's sum, times the run's reward_scale),
terminal, timeout, done, valid, first (the first decision of an episode), env_steps, plus every array that
`method.act_rollout` returned per decision (DPPO: its denoising chains).
"""
from __future__ import annotations

import collections
import dataclasses
import json
import sys
import zlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from bench.runner.evaluation import advance_grid, evaluate, grid_args


class ChunkStep(gym.Wrapper):
    """One step executes one decision's actions (chunk, act_dim), chunk = the method's decision_length (a DP
    method's act_steps of its Ta-chunk), and returns the summed reward, stopping at the end of an episode;
    `info["env_steps"]` is the number of env steps it executed."""

    def __init__(self, env: gym.Env, chunk: int):
        super().__init__(env)
        space = env.action_space
        self.chunk = chunk
        self.action_space = gym.spaces.Box(np.broadcast_to(space.low, (chunk, *space.shape)),
                                           np.broadcast_to(space.high, (chunk, *space.shape)),
                                           dtype=space.dtype)

    limit: int | None = None  # set by the loop for one step: execute at most this many actions (budget end)

    def reset(self, **kw):
        self.limit = None  # an autoreset ignores the action, and with it any limit set for this step
        obs, info = self.env.reset(**kw)
        self._obs = obs
        return obs, info

    def step(self, chunk):
        limit, self.limit = self.limit, None
        if limit is not None:
            if limit <= 0:  # the env-step budget is spent: this env executes nothing (its slot is not valid)
                return self._obs, 0.0, False, False, {"env_steps": 0}
            chunk = chunk[:limit]
        total, n = 0.0, 0
        for action in chunk:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            n += 1
            if terminated or truncated:
                break
        info = dict(info)
        info["env_steps"] = n
        self._obs = obs
        return obs, total, terminated, truncated, info


def env_seed(run_seed: int, env_index: int) -> int:
    """The seed of env `env_index`'s one reset at the start of the online phase."""
    return int((run_seed * 1_000_003 + env_index * 7_919 + 54_321) % (2 ** 31 - 1))


class AsGymEnv(gym.Env):
    """A gymnasium.Env over an env that has gymnasium's API but is not a gymnasium.Env (bench/tasks/robomimic.py's
    RobosuiteLowDimEnv), so that ChunkStep and SyncVectorEnv take it. It holds no state of its own."""

    def __init__(self, env):
        self.env = env
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self.metadata = dict(getattr(env, "metadata", None) or {"render_modes": []})
        self.render_mode = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        return self.env.step(action)

    def close(self):
        self.env.close()


def as_gym_env(env) -> gym.Env:
    return env if isinstance(env, gym.Env) else AsGymEnv(env)


def make_vector_env(task, n_envs: int, chunk: int) -> gym.vector.SyncVectorEnv:
    """n_envs copies of the task's env, one decision (`chunk` actions: a method's decision_length) per step."""
    return gym.vector.SyncVectorEnv([lambda: ChunkStep(as_gym_env(task.make_env()), chunk) for _ in range(n_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


@dataclasses.dataclass
class EnvCarry:
    """What one rollout hands the next (per env, shape (n_envs,) unless said)."""

    obs: np.ndarray  # (n_envs, obs_dim): the obs the vector env returned last
    prev_done: np.ndarray  # the env's episode ended at its last step: its next step is an autoreset slot
    first: np.ndarray  # the env's next valid decision is the first of an episode
    ep_return: np.ndarray  # undiscounted return so far of the env's current episode (for train/return)

    @classmethod
    def fresh(cls, obs: np.ndarray) -> EnvCarry:
        """Right after a reset of every env."""
        n = len(obs)
        return cls(np.asarray(obs), np.zeros(n, bool), np.ones(n, bool), np.zeros(n))


def collect_rollout(envs, method, state, carry: EnvCarry | np.ndarray, n_steps: int, reward_scale: float,
                    budget_left: int, on_step=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Collect up to n_steps chunk decisions from `envs`, continuing from `carry` (an EnvCarry, updated in
    place; or the obs of freshly reset envs), stopping once `budget_left` env steps have been spent.
    `on_step(env_steps_of_this_decision)` runs after each decision (evaluation, progress). Returns
    (rollout, stats)."""
    if not isinstance(carry, EnvCarry):
        carry = EnvCarry.fresh(np.asarray(carry))
    obs, prev_done, first, ep_return = carry.obs, carry.prev_done, carry.first, carry.ep_return.copy()
    n_envs = len(obs)
    keys = ("obs", "next_obs", "reward", "terminal", "timeout", "done", "valid", "first", "env_steps")
    buf: dict[str, list] = {k: [] for k in keys}
    extras: dict[str, list] = {}
    finished: list[float] = []
    spent = 0
    for _ in range(n_steps):
        if spent >= budget_left:
            break
        chunks, info = method.act_rollout(obs.astype(np.float32), state)
        left = budget_left - spent
        capped = left < n_envs * chunks.shape[1]
        if capped:  # the last decision of the budget: envs execute only the env steps that are left, in order
            for i, env in enumerate(envs.envs):
                k = 0 if prev_done[i] else min(chunks.shape[1], left)
                env.limit = k
                left -= k
        nobs, reward, term, trunc, infos = envs.step(chunks)
        raw_steps = np.asarray(infos.get("env_steps", np.zeros(n_envs)), np.int64)
        valid = ~prev_done & (raw_steps > 0) if capped else ~prev_done
        steps = np.where(valid, raw_steps, 0)
        term, trunc = term & valid, trunc & valid
        done = term | trunc
        buf["obs"].append(obs.astype(np.float32))
        buf["next_obs"].append(np.asarray(nobs, np.float32))
        buf["reward"].append(np.where(valid, reward, 0.0) * reward_scale)
        buf["terminal"].append(term)
        buf["timeout"].append(trunc & ~term)
        buf["done"].append(done)
        buf["valid"].append(valid)
        buf["first"].append(first & valid)
        buf["env_steps"].append(steps)
        for k, v in info.items():
            extras.setdefault(k, []).append(v)
        ep_return += np.where(valid, reward, 0.0)
        finished.extend(float(ep_return[i]) for i in np.flatnonzero(done))
        ep_return[done] = 0.0
        # After an autoreset slot the env has a new episode; after a valid slot the episode goes on; a slot
        # left empty by the budget's end changes nothing.
        first = np.where(valid, False, first | prev_done)
        prev_done = done
        obs = np.asarray(nobs)
        n = int(steps.sum())
        spent += n
        if on_step is not None:
            on_step(n)
    carry.obs, carry.prev_done, carry.first, carry.ep_return = obs, prev_done, first, ep_return
    rollout = {k: np.stack(v) for k, v in buf.items()} if buf["obs"] else {}
    rollout.update({k: np.stack(v) for k, v in extras.items()})
    return rollout, {"episodes": finished, "env_steps": spent}


# ---- env state for exact resume ---------------------------------------------------------------------------
class EnvStateError(RuntimeError):
    """An env whose state the on-policy loop cannot checkpoint (or restore)."""


def _loaded_class(module: str, name: str):
    """Class `name` of `module` if that module is imported, else None. An env can only be an instance of a class
    whose module is loaded, so the checks below import nothing (no robosuite, no gymnasium-robotics)."""
    mod = sys.modules.get(module)
    return getattr(mod, name, None) if mod is not None else None


def _mujoco_env_class():
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # mujoco is not installed: no env can be a MujocoEnv
        return None
    return MujocoEnv


def _env_name(env: gym.Env) -> str:
    u = env.unwrapped
    if isinstance(u, AsGymEnv):  # e.g. "RobosuiteLowDimEnv:Lift"
        inner = u.env
        spec = getattr(inner, "spec", None)
        if spec is not None:
            return spec.id
        args = getattr(inner, "env_args", None)
        sub = f":{args['env_name']}" if isinstance(args, dict) and "env_name" in args else ""
        return f"{type(inner).__name__}{sub}"
    spec = getattr(u, "spec", None) or getattr(env, "spec", None)
    return spec.id if spec is not None else type(u).__name__


# Wrappers that hold no state a resumed episode needs (PassiveEnvChecker only warns).
_STATELESS_WRAPPERS = ("PassiveEnvChecker",)
# The attributes every gymnasium.Wrapper has; a known wrapper with others may have grown state.
_WRAPPER_ATTRS = frozenset({"env", "_action_space", "_observation_space", "_metadata", "_cached_spec",
                            "_reward_range"})
# bench/tasks/kitchen.py's FlatKitchen: its task list is set once, at construction; it keeps no episode state
# (the completed tasks are FrankaKitchen's own, saved with it below).
_FLAT_KITCHEN_ATTRS = _WRAPPER_ATTRS | {"tasks", "observation_space"}
# bench/tasks/robomimic.py's RobosuiteLowDimEnv: its episode state is `_t`, `_rng` and `last_raw`.
_ROBOSUITE_WRAPPER_ATTRS = frozenset({"env", "env_args", "obs_keys", "max_episode_steps", "action_space",
                                      "observation_space", "spec", "metadata", "_rng", "_t", "last_raw"})


def _check_attrs(obj, known: frozenset, name: str) -> None:
    extra = sorted(set(vars(obj)) - known)
    if extra:
        raise EnvStateError(f"cannot checkpoint the on-policy envs of {name}: {type(obj).__name__} has attributes "
                            f"{extra} that bench/runner/on_policy.py does not know, and they may be episode state")


def _unwrap(env: gym.Env, name: str) -> tuple[list[gym.Env], Any]:
    """The wrapper layers of one sub-env below ChunkStep, and the env under them (through AsGymEnv); raises
    EnvStateError for a wrapper whose state is not known."""
    flat_kitchen = _loaded_class("bench.tasks.kitchen", "FlatKitchen")
    layers = []
    w = env.env if isinstance(env, ChunkStep) else env
    while True:
        if isinstance(w, AsGymEnv):  # holds nothing itself: the env it adapts is the base
            return layers, w.env
        if not isinstance(w, gym.Wrapper):
            return layers, w
        kind = type(w)
        if flat_kitchen is not None and kind is flat_kitchen:
            _check_attrs(w, _FLAT_KITCHEN_ATTRS, name)
        elif kind not in (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing) and \
                kind.__name__ not in _STATELESS_WRAPPERS:
            raise EnvStateError(
                f"cannot checkpoint the on-policy envs of {name}: its wrapper {kind.__name__} may hold episode "
                f"state that is not known to bench/runner/on_policy.py; only TimeLimit, OrderEnforcing, FlatKitchen "
                f"and {', '.join(_STATELESS_WRAPPERS)} can be saved")
        layers.append(w)
        w = w.env


def _base_kind(base, name: str) -> str:
    """Which of the known env kinds `base` is: FrankaKitchen (gymnasium-robotics), a robosuite env in
    bench/tasks/robomimic.py's wrapper, or a gymnasium MujocoEnv."""
    kitchen = _loaded_class("gymnasium_robotics.envs.franka_kitchen.kitchen_env", "KitchenEnv")
    if kitchen is not None and isinstance(base, kitchen):
        return "kitchen"
    robosuite_env = _loaded_class("bench.tasks.robomimic", "RobosuiteLowDimEnv")
    if robosuite_env is not None and isinstance(base, robosuite_env):
        return "robosuite"
    mujoco_env = _mujoco_env_class()
    if mujoco_env is not None and isinstance(base, mujoco_env):
        return "mujoco"
    raise EnvStateError(
        f"cannot checkpoint the on-policy envs of {name}: {type(base).__name__} is not a gymnasium MujocoEnv, "
        f"FrankaKitchen or a robosuite env in bench/tasks/robomimic.py's wrapper, and no other way to save its "
        f"simulator state is known to bench/runner/on_policy.py (episodes continue across rollouts, so a "
        f"checkpoint must hold it)")


# -- plain values (the checkpoint is read with torch.load(weights_only=True)) --
def _rng_state(rng) -> str:
    return "" if rng is None else json.dumps(rng.bit_generator.state)


def _rng_from(state: str):
    if not state:
        return None
    st = json.loads(state)
    rng = np.random.Generator(getattr(np.random, st["bit_generator"])())
    rng.bit_generator.state = st
    return rng


def _pack(items) -> dict[str, Any]:
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


def _unpack(st: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: t.numpy().copy() for k, t in st["arrays"].items()}
    out.update({k: t.numpy()[()] for k, t in st["scalars"].items()})
    out.update(st["values"])
    out.update({k: out[src] for k, src in st["alias"].items()})
    return out


def _pack_attrs(obj) -> dict[str, Any]:
    return _pack(vars(obj).items())


def _unpack_attrs(obj, st: dict[str, Any]) -> None:
    for k, v in _unpack(st).items():
        setattr(obj, k, v)


# -- MuJoCo (gymnasium's MujocoEnv, and the MuJoCo model under FrankaKitchen and robosuite) --
def _integration_spec() -> int:
    import mujoco

    return int(mujoco.mjtState.mjSTATE_INTEGRATION)


def _mj_state(model, data) -> dict[str, Any]:
    """The MuJoCo integration state: time, qpos, qvel, act, warm start, controls, applied forces, mocap, ...:
    everything mj_step reads."""
    import mujoco

    spec = _integration_spec()
    sim = np.empty(mujoco.mj_stateSize(model, spec), np.float64)
    mujoco.mj_getState(model, data, sim, spec)
    return {"sim_spec": spec, "sim": torch.from_numpy(sim)}


def _set_mj_state(model, data, st: dict[str, Any], name: str) -> None:
    import mujoco

    spec = int(st["sim_spec"])
    sim = st["sim"].numpy().astype(np.float64)
    if sim.size != mujoco.mj_stateSize(model, spec):
        raise EnvStateError(f"the checkpoint's simulator state of {name} has {sim.size} numbers, but the env's "
                            f"model takes {mujoco.mj_stateSize(model, spec)}")
    mujoco.mj_setState(model, data, sim, spec)
    mujoco.mj_forward(model, data)  # derived quantities (positions, contacts) for the new state


def _mujoco_capture(base, name: str) -> dict[str, Any]:
    st = _mj_state(base.model, base.data)
    st["np_random"] = _rng_state(base._np_random)
    st["np_random_seed"] = -1 if base._np_random_seed is None else int(base._np_random_seed)
    return st


def _mujoco_restore(base, st: dict[str, Any], name: str) -> None:
    _set_mj_state(base.model, base.data, st, name)
    if st["np_random"]:
        base._np_random = _rng_from(st["np_random"])
    base._np_random_seed = None if int(st["np_random_seed"]) < 0 else int(st["np_random_seed"])


# -- FrankaKitchen-v1 (gymnasium-robotics): a GoalEnv over a MuJoCo FrankaRobot --
def _kitchen_capture(base, name: str) -> dict[str, Any]:
    """The robot's MujocoEnv (simulator, and its np_random, which draws the observation noise), the last noisy
    joint positions that the next action's velocity control starts from (`_last_robot_qpos`), and the task
    bookkeeping: the tasks still to complete (whose reward is still to come), this episode's and this step's
    completions, and the kitchen's own np_random."""
    robot = base.robot_env
    st = _mujoco_capture(robot, name)
    last = getattr(robot, "_last_robot_qpos", None)
    st.update(last_robot_qpos=None if last is None else torch.from_numpy(np.array(last, np.float64)),
              goal=[str(t) for t in base.goal],
              tasks_to_complete=[str(t) for t in base.goal if t in base.tasks_to_complete],
              episode_task_completions=[str(t) for t in base.episode_task_completions],
              step_task_completions=[str(t) for t in base.step_task_completions],
              kitchen_np_random=_rng_state(base._np_random),
              kitchen_np_random_seed=-1 if base._np_random_seed is None else int(base._np_random_seed))
    return st


def _kitchen_restore(base, st: dict[str, Any], name: str) -> None:
    if list(st["goal"]) != list(base.goal):
        raise EnvStateError(f"the checkpoint's {name} env has tasks {st['goal']}, the run's has {list(base.goal)}")
    robot = base.robot_env
    _mujoco_restore(robot, st, name)
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
        base._np_random = _rng_from(st["kitchen_np_random"])
    base._np_random_seed = None if int(st["kitchen_np_random_seed"]) < 0 else int(st["kitchen_np_random_seed"])


# -- robosuite (bench/tasks/robomimic.py's RobosuiteLowDimEnv over a robosuite env) --
_ROBOSUITE_CONTROLLERS = ("OperationalSpaceController", "SimpleGripController")


def _robosuite_check(env, name: str) -> None:
    """Only what the robomimic tasks use is known: fixed-base robots with a BASIC composite controller of OSC arms
    and simple grippers (no interpolators), observables without noise, delay or filters, and no viewer."""
    from robosuite.utils.observables import NO_CORRUPTION, NO_DELAY, NO_FILTER

    def bad(what: str):
        return EnvStateError(f"cannot checkpoint the on-policy envs of {name}: {what}, whose state is not known to "
                             f"bench/runner/on_policy.py")

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
        out[k] = {"arms": {arm: _pack_attrs(b) for arm, b in v.items() if b is not None}} if isinstance(v, dict) \
            else {"buffer": _pack_attrs(v)}
    return out


def _robosuite_capture(base, name: str) -> dict[str, Any]:
    """The episode's model (the MJCF robosuite compiled at its last reset, zlib-compressed), the MuJoCo
    integration state of its sim (a superset of `sim.get_state().flatten()`, which holds time, qpos and qvel
    only: also the solver's warm start, controls, actuator activations, ..., without which the contacts differ
    in their last bits), every number and array of the robosuite env (timestep, cur_time, done, and a task's
    own, e.g. objects_in_bins), its observation cache and each observable's sampling state and last value,
    each robot's part controllers (goals, gains, the episode's initial joints that the nullspace torques pull
    to, update flags), its grippers' ramped command (`current_action`) and its recent_* buffers; and the
    wrapper's step count, reset RNG and last raw observation."""
    env = base.env
    _check_attrs(base, _ROBOSUITE_WRAPPER_ATTRS, name)
    _robosuite_check(env, name)
    sim = env.sim
    st = _mj_state(sim.model._model, sim.data._data)
    xml = zlib.compress(env.model.get_xml().encode(), 6)
    st["robosuite"] = {
        "model_xml_zlib": torch.frombuffer(bytearray(xml), dtype=torch.uint8),
        "env": _pack_attrs(env),
        "rng": _rng_state(env.rng) if isinstance(getattr(env, "rng", None), np.random.Generator) else "",
        "obs_cache": _pack(env._obs_cache.items()),
        "observables": {k: _pack_attrs(o) for k, o in env._observables.items()},
        "robots": [{"controllers": {part: _pack_attrs(c) for part, c in r.composite_controller.part_controllers.items()},
                    "grippers": {part: _pack([("current_action", g.current_action)])
                                 for part, g in r.composite_controller.grippers.items()},
                    "buffers": _robosuite_buffers(r)} for r in env.robots],
    }
    raw = getattr(base, "last_raw", None)
    st["wrapper"] = {"t": int(base._t), "rng": _rng_state(base._rng),
                     "last_raw": None if raw is None else _pack(raw.items())}
    return st


def _robosuite_restore(base, st: dict[str, Any], name: str) -> None:
    env = base.env
    _check_attrs(base, _ROBOSUITE_WRAPPER_ATTRS, name)
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
    _set_mj_state(sim.model._model, sim.data._data, st, name)
    _unpack_attrs(env, rs["env"])
    if rs["rng"]:
        env.rng = _rng_from(rs["rng"])
    env._obs_cache.clear()
    env._obs_cache.update(_unpack(rs["obs_cache"]))
    for k, o in env._observables.items():
        _unpack_attrs(o, rs["observables"][k])
    for robot, held_st in zip(env.robots, robots):
        for part, c in robot.composite_controller.part_controllers.items():
            _unpack_attrs(c, held_st["controllers"][part])
        for part, g in robot.composite_controller.grippers.items():
            _unpack_attrs(g, held_st["grippers"][part])
        for k, b in held_st["buffers"].items():
            held = getattr(robot, k)
            if "arms" in b:
                for arm, packed in b["arms"].items():
                    _unpack_attrs(held[arm], packed)
            else:
                _unpack_attrs(held, b["buffer"])
    w = st["wrapper"]
    base._t = int(w["t"])
    base._rng = _rng_from(w["rng"])
    if w["last_raw"] is not None:
        base.last_raw = collections.OrderedDict(_unpack(w["last_raw"]))


_KINDS = {"mujoco": (_mujoco_capture, _mujoco_restore), "kitchen": (_kitchen_capture, _kitchen_restore),
          "robosuite": (_robosuite_capture, _robosuite_restore)}


def sub_env_state(env: gym.Env) -> dict[str, Any]:
    """One sub-env's state as plain values: its simulator's state and the rest of its episode state (per env
    kind: `_mujoco_capture`, `_kitchen_capture`, `_robosuite_capture`), its TimeLimit step count and its
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


def set_sub_env_state(env: gym.Env, st: dict[str, Any]) -> None:
    """Load what sub_env_state returned into a sub-env of the same task that has been reset once."""
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


def _vector_flags(envs: gym.vector.SyncVectorEnv) -> np.ndarray:
    if not hasattr(envs, "_autoreset_envs") or not hasattr(envs, "_env_obs"):
        raise EnvStateError(f"this gymnasium {gym.__version__} SyncVectorEnv has no _autoreset_envs/_env_obs: "
                            f"bench/runner/on_policy.py cannot save or restore its autoreset flags")
    return envs._autoreset_envs


def capture_envs(envs: gym.vector.SyncVectorEnv, carry: EnvCarry) -> dict[str, Any]:
    """The vector envs' and the carry's state at a rollout boundary, as tensors, numbers, strings and lists
    (the checkpoint is read with weights_only=True)."""
    def t(x):  # a copy, in the array's own dtype
        return torch.from_numpy(np.array(x))

    return {"n_envs": len(envs.envs), "envs": [sub_env_state(e) for e in envs.envs],
            "autoreset": t(_vector_flags(envs)), "obs": t(carry.obs), "prev_done": t(carry.prev_done),
            "first": t(carry.first), "ep_return": t(carry.ep_return)}


def restore_envs(envs: gym.vector.SyncVectorEnv, st: dict[str, Any], seeds: list[int]) -> EnvCarry:
    """Put freshly made vector envs back into the state capture_envs saved, and return the carry."""
    if int(st["n_envs"]) != len(envs.envs):
        raise EnvStateError(f"the checkpoint holds {st['n_envs']} on-policy envs, but the run has {len(envs.envs)}")
    envs.reset(seed=seeds)  # initialises every layer; everything it set is overwritten below
    _vector_flags(envs)
    obs = st["obs"].numpy().copy()
    for i, (env, s) in enumerate(zip(envs.envs, st["envs"])):
        set_sub_env_state(env, s)
        env._obs = obs[i].copy()
        envs._env_obs[i] = obs[i].copy()
    envs._autoreset_envs = st["autoreset"].numpy().astype(bool).copy()
    return EnvCarry(obs, st["prev_done"].numpy().astype(bool).copy(), st["first"].numpy().astype(bool).copy(),
                    st["ep_return"].numpy().astype(np.float64).copy())


def run_on_policy(run, bar) -> None:
    """Drive the online phase of an on-policy method for `online.steps` env steps (see the module doc)."""
    cfg, method, c = run.cfg, run.method, run.counters
    total = int(cfg["online"]["steps"])
    if total <= 0:
        return
    n_envs, n_steps = method.rollout_size()
    chunk = int(method.decision_length())
    envs = make_vector_env(run.task, n_envs, chunk)
    grid = grid_args(cfg)
    c.setdefault("rollout", 0)
    seeds = [env_seed(int(cfg["seed"]), i) for i in range(n_envs)]

    def on_step(n: int) -> None:
        c["env_step"] += n
        bar.update(n)
        if c["env_step"] >= c["next_eval"]:
            evaluate(run, "finetune")
            c["next_eval"] = advance_grid(c["next_eval"], c["env_step"], *grid)

    try:
        saved = (run.loop_state or {}).get("on_policy")
        if saved is not None:  # a resumed run: the envs continue from the checkpoint
            carry = restore_envs(envs, saved, seeds)
        elif c["env_step"] > 0 or c["rollout"] > 0:
            raise EnvStateError(f"the checkpoint of run {run.ctx.run_id} is at env step {c['env_step']} of the "
                                f"on-policy phase but holds no env state (an older checkpoint); rerun with "
                                f"--restart")
        else:  # the one reset of the online phase
            obs, _ = envs.reset(seed=seeds)
            carry = EnvCarry.fresh(np.asarray(obs))
            run.train_state.reset()
        # Each checkpoint (only ever taken at a rollout boundary, below) saves the envs as they are then.
        run.capture_loop_state = lambda: dict(run.loop_state, on_policy=capture_envs(envs, carry))
        while c["env_step"] < total:
            rollout, stats = collect_rollout(envs, method, run.train_state, carry, n_steps,
                                             float(cfg["reward_scale"]), total - c["env_step"], on_step)
            if rollout and rollout["valid"].any():
                before = method.grad_steps
                metrics = method.update_rollout(rollout)
                c["grad_step"] += method.grad_steps - before
                # One row per metric per rollout: nothing is held back across a rollout boundary, where a
                # checkpoint may be taken (online.log_every does not apply to on-policy runs).
                run.log("finetune", metrics)
            c["rollout"] += 1
            if stats["episodes"]:
                run.log("finetune", {"train/return": float(np.mean(stats["episodes"]))},
                        n_episodes=len(stats["episodes"]))
            if c["env_step"] < total:  # rollout boundary: the only place a checkpoint is taken
                if c["env_step"] - c["last_ckpt_env_step"] >= int(cfg["online"]["checkpoint_every"]):
                    run.checkpoint()
                run.maybe_stop()
    finally:
        run.capture_loop_state = None
        envs.close()
