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
- Resume. Vector-env state cannot be saved, so every rollout starts from fresh resets seeded by
  (run seed, rollout index, env index), and checkpoints are taken only at rollout boundaries. A resumed
  run therefore repeats the uninterrupted one exactly (the contract test checks it).

A rollout handed to `method.update_rollout` holds arrays shaped (T, n_envs, ...), T <= n_steps (the last
rollout stops at the env-step budget): obs, next_obs, reward (chunk sum, times the run's reward_scale),
terminal, timeout, done, valid, first (the first decision of an episode), env_steps, plus every array that
`method.act_rollout` returned per decision (DPPO: its denoising chains).
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

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


def rollout_seed(run_seed: int, rollout: int, env_index: int) -> int:
    return int((run_seed * 1_000_003 + rollout * 104_729 + env_index * 7_919 + 54_321) % (2 ** 31 - 1))


def make_vector_env(task, n_envs: int, chunk: int) -> gym.vector.SyncVectorEnv:
    return gym.vector.SyncVectorEnv([lambda: ChunkStep(task.make_env(), chunk) for _ in range(n_envs)],
                                    autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def collect_rollout(envs, method, state, obs: np.ndarray, n_steps: int, reward_scale: float,
                    budget_left: int, on_step=None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Collect up to n_steps chunk decisions from freshly reset `envs` (whose reset obs is `obs`), stopping
    once `budget_left` env steps have been spent. `on_step(env_steps_of_this_decision)` runs after each
    decision (evaluation, progress). Returns (rollout, stats)."""
    n_envs = len(obs)
    keys = ("obs", "next_obs", "reward", "terminal", "timeout", "done", "valid", "first", "env_steps")
    buf: dict[str, list] = {k: [] for k in keys}
    extras: dict[str, list] = {}
    prev_done = np.zeros(n_envs, bool)  # the env's next step is an autoreset
    first = np.ones(n_envs, bool)
    ep_return = np.zeros(n_envs)
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
        # After an autoreset slot the env has a new episode; after a valid slot the episode goes on.
        first = ~valid
        prev_done = done
        obs = np.asarray(nobs)
        n = int(steps.sum())
        spent += n
        if on_step is not None:
            on_step(n)
    rollout = {k: np.stack(v) for k, v in buf.items()} if buf["obs"] else {}
    rollout.update({k: np.stack(v) for k, v in extras.items()})
    return rollout, {"episodes": finished, "env_steps": spent}


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

    def on_step(n: int) -> None:
        c["env_step"] += n
        bar.update(n)
        if c["env_step"] >= c["next_eval"]:
            evaluate(run, "finetune")
            c["next_eval"] = advance_grid(c["next_eval"], c["env_step"], every)

    try:
        while c["env_step"] < total:
            seeds = [rollout_seed(int(cfg["seed"]), int(c["rollout"]), i) for i in range(n_envs)]
            obs, _ = envs.reset(seed=seeds)
            run.train_state.reset()
            rollout, stats = collect_rollout(envs, method, run.train_state, np.asarray(obs), n_steps,
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
        envs.close()
