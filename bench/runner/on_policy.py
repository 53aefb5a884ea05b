"""The runner's on-policy path: vector-env rollouts of chunk decisions, then one method update per rollout.

Why: on-policy methods (DPPO) learn from whole rollouts collected by the current policy, so the harness
owns a different loop than the off-policy one, under the same protocol (DESIGN.md):
- Envs. `n_envs` copies of the task's env in a `gymnasium.vector.SyncVectorEnv`, each wrapped so that one
  vector step executes one whole action chunk (`ChunkStep`). A chunk stops early at the end of an episode.
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
  count and its `np_random` state, plus the vector env's autoreset flags and the carry. The on-policy loop
  restores them on resume (`restore_envs`), so a resumed run repeats the uninterrupted one exactly (the
  contract test checks it, stopping mid-episode). Only MuJoCo envs (gymnasium's `MujocoEnv`) behind known
  wrappers can be captured; for any other env, taking a checkpoint raises `EnvStateError` naming it.

A rollout handed to `method.update_rollout` holds arrays shaped (T, n_envs, ...), T <= n_steps (the last
rollout stops at the env-step budget): obs, next_obs, reward (chunk sum, times the run's reward_scale),
terminal, timeout, done, valid, first (the first decision of an episode), env_steps, plus every array that
`method.act_rollout` returned per decision (DPPO: its denoising chains).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from bench.runner.evaluation import advance_grid, evaluate


class ChunkStep(gym.Wrapper):
    """One step executes an action chunk (Ta, act_dim) and returns the summed reward, stopping at the end of
    an episode; `info["env_steps"]` is the number of env steps it executed."""

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


def make_vector_env(task, n_envs: int, chunk: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: ChunkStep(task.make_env(), chunk) for _ in range(n_envs)],
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


def _env_name(env: gym.Env) -> str:
    spec = getattr(env.unwrapped, "spec", None) or getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _mujoco_env_class():
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except ImportError:  # mujoco is not installed: no env can be a MujocoEnv
        return None
    return MujocoEnv


# Wrappers that hold no state a resumed episode needs (PassiveEnvChecker only warns).
_STATELESS_WRAPPERS = ("PassiveEnvChecker",)


def _layers(env: gym.Env, name: str) -> tuple[list[gym.Env], gym.Env]:
    """The wrapper layers of one sub-env below ChunkStep, and its unwrapped env; raises EnvStateError for a
    wrapper or an env whose state is not known."""
    layers = []
    w = env.env if isinstance(env, ChunkStep) else env
    while isinstance(w, gym.Wrapper):
        kind = type(w)
        if kind not in (gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing) and \
                kind.__name__ not in _STATELESS_WRAPPERS:
            raise EnvStateError(
                f"cannot checkpoint the on-policy envs of {name}: its wrapper {kind.__name__} may hold episode "
                f"state that is not known to bench/runner/on_policy.py; only TimeLimit, OrderEnforcing and "
                f"{', '.join(_STATELESS_WRAPPERS)} around a gymnasium MujocoEnv can be saved")
        layers.append(w)
        w = w.env
    mujoco_env = _mujoco_env_class()
    if mujoco_env is None or not isinstance(w, mujoco_env):
        raise EnvStateError(
            f"cannot checkpoint the on-policy envs of {name}: {type(w).__name__} is not a gymnasium MujocoEnv, "
            f"and no other way to save its simulator state is known to bench/runner/on_policy.py (episodes "
            f"continue across rollouts, so a checkpoint must hold it)")
    return layers, w


def _integration_spec() -> int:
    import mujoco

    return int(mujoco.mjtState.mjSTATE_INTEGRATION)


def sub_env_state(env: gym.Env) -> dict[str, Any]:
    """One sub-env's state as plain values: its MuJoCo integration state (time, qpos, qvel, act, warm start,
    controls, applied forces, mocap, ...: everything mj_step reads), its TimeLimit step count, its
    OrderEnforcing flag and its np_random state."""
    import mujoco

    name = _env_name(env)
    layers, base = _layers(env, name)
    spec = _integration_spec()
    sim = np.empty(mujoco.mj_stateSize(base.model, spec), np.float64)
    mujoco.mj_getState(base.model, base.data, sim, spec)
    st: dict[str, Any] = {"env_id": name, "sim_spec": spec, "sim": torch.from_numpy(sim)}
    for w in layers:
        if isinstance(w, gym.wrappers.TimeLimit):
            st["elapsed_steps"] = -1 if w._elapsed_steps is None else int(w._elapsed_steps)
        elif isinstance(w, gym.wrappers.OrderEnforcing):
            st["has_reset"] = bool(w._has_reset)
    rng = base._np_random
    st["np_random"] = "" if rng is None else json.dumps(rng.bit_generator.state)
    st["np_random_seed"] = -1 if base._np_random_seed is None else int(base._np_random_seed)
    return st


def set_sub_env_state(env: gym.Env, st: dict[str, Any]) -> None:
    """Load what sub_env_state returned into a sub-env of the same task that has been reset once."""
    import mujoco

    name = _env_name(env)
    if st["env_id"] != name:
        raise EnvStateError(f"the checkpoint's on-policy env is {st['env_id']}, but the run's env is {name}")
    layers, base = _layers(env, name)
    spec = int(st["sim_spec"])
    sim = st["sim"].numpy().astype(np.float64)
    if sim.size != mujoco.mj_stateSize(base.model, spec):
        raise EnvStateError(f"the checkpoint's simulator state of {name} has {sim.size} numbers, but the env's "
                            f"model takes {mujoco.mj_stateSize(base.model, spec)}")
    mujoco.mj_setState(base.model, base.data, sim, spec)
    mujoco.mj_forward(base.model, base.data)  # derived quantities (positions, contacts) for the new state
    for w in layers:
        if isinstance(w, gym.wrappers.TimeLimit):
            w._elapsed_steps = None if int(st["elapsed_steps"]) < 0 else int(st["elapsed_steps"])
        elif isinstance(w, gym.wrappers.OrderEnforcing):
            w._has_reset = bool(st["has_reset"])
    if st["np_random"]:
        state = json.loads(st["np_random"])
        rng = np.random.Generator(getattr(np.random, state["bit_generator"])())
        rng.bit_generator.state = state
        base._np_random = rng
    base._np_random_seed = None if int(st["np_random_seed"]) < 0 else int(st["np_random_seed"])


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
    every = int(cfg["eval"]["every"])
    c.setdefault("rollout", 0)
    seeds = [env_seed(int(cfg["seed"]), i) for i in range(n_envs)]

    def on_step(n: int) -> None:
        c["env_step"] += n
        bar.update(n)
        if c["env_step"] >= c["next_eval"]:
            evaluate(run, "finetune")
            c["next_eval"] = advance_grid(c["next_eval"], c["env_step"], every)

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
