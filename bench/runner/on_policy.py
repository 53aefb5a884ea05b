"""The runner's on-policy path: vector-env rollouts of chunk decisions, then one method update per rollout.

Why: on-policy methods (DPPO) learn from whole rollouts collected by the current policy, so the harness
owns a different loop than the off-policy one, under the same protocol (DESIGN.md):
- Envs. `n_envs` copies of the task's env in a `gymnasium.vector.SyncVectorEnv`, each wrapped so that one
  vector step executes one decision: the decision length of `method.rollout_size()` actions (`ChunkStep`; a DP
  method's first `dp.act_steps` of its sampled Ta-chunk). A decision stops early at the end of an episode. An env with
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
- Stops. A stop request (SIGTERM, Ctrl-C: bench/runner/stops.py) is honoured between two decisions, not at the
  rollout's end (a DPPO hopper rollout is 40 envs x 500 decisions, minutes, and Slurm kills ~30 s after
  SIGTERM): that checkpoint also holds the rollout so far (`PartialRollout`), and an eval abandoned after a
  decision (bench/runner/evaluation.py) resumes right after it, redoing the eval. An update in progress
  (`update_rollout`; DPPO's at its hopper defaults is minutes on a CPU) is abandoned before its next gradient
  step (`update_or_stop`): the method and the RNGs are put back as they were before it (a snapshot taken at its
  start, bench/runner/checkpoints.py), and the checkpoint holds the whole rollout as still pending, so the
  resumed run redoes the update from the same state and repeats the uninterrupted run exactly.
- Resume. Periodic checkpoints are taken only at rollout boundaries, and each holds the envs' state
  (`capture_envs`, through `Loop.capture`): per env its task env's own state, saved by bench/tasks/env_state.py
  by env kind (its MuJoCo integration state, TimeLimit step count, RNGs and the rest of its episode state: a
  gymnasium `MujocoEnv`'s in bench/tasks/sim_state.py, FrankaKitchen's in bench/tasks/kitchen_state.py,
  robosuite's in bench/tasks/robomimic_state.py), plus the vector env's autoreset flags and the carry, all as
  tensors, numbers, strings and lists. The on-policy loop restores them on resume (`restore_envs`), so a
  resumed run repeats the uninterrupted one exactly (the contract tests check it, stopping mid-episode). Only
  those env kinds behind known wrappers can be captured; for any other env, taking a checkpoint raises
  `EnvStateError` (bench/tasks/sim_state.py) naming it.

A rollout handed to `method.update_rollout` holds arrays shaped (T, n_envs, ...), T <= n_steps (the last
rollout stops at the env-step budget): obs, next_obs, reward (the decision's sum, times the run's reward_scale),
terminal, timeout, done, valid, first (the first decision of an episode), env_steps, plus every array that
`method.act_rollout` returned per decision (DPPO: its denoising chains).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from bench.runner import checkpoints
from bench.runner.evaluation import advance_grid
from bench.runner.loop import Loop
from bench.runner.stops import stop_requested
from bench.tasks.env_state import set_sub_env_state, sub_env_state
from bench.tasks.sim_state import EnvStateError


class ChunkStep(gym.Wrapper):
    """One step executes one decision's actions (chunk, act_dim), chunk = the method's decision length (a DP
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


def mean_metrics(steps: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the steps that report it, in the order the metrics first appear."""
    acc: dict[str, list[float]] = {}
    for m in steps:
        for k, v in m.items():
            acc.setdefault(k, []).append(v)
    return {k: float(np.mean(v)) for k, v in acc.items()}


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
    """n_envs copies of the task's env, one decision (`chunk` actions: a method's decision length) per step."""
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


ROLLOUT_KEYS = ("obs", "next_obs", "reward", "terminal", "timeout", "done", "valid", "first", "env_steps")


@dataclasses.dataclass
class PartialRollout:
    """A rollout's decisions so far: per key a list of per-decision arrays (n_envs, ...), the method's extras
    likewise, the undiscounted returns of the episodes it finished, and its env steps. A stop between two
    decisions (or in an eval after one) saves it with the envs (`to_state`), and the resumed loop goes on with
    it (`from_state`)."""

    buf: dict[str, list[np.ndarray]]
    extras: dict[str, list[np.ndarray]]
    finished: list[float]
    spent: int = 0

    @classmethod
    def empty(cls) -> PartialRollout:
        return cls({k: [] for k in ROLLOUT_KEYS}, {}, [], 0)

    @property
    def decisions(self) -> int:
        return len(self.buf["obs"])

    def to_state(self) -> dict[str, Any]:
        """As tensors and numbers (a checkpoint is read with weights_only=True), each key's decisions stacked."""
        def stacked(lists: dict[str, list[np.ndarray]]) -> dict[str, torch.Tensor]:
            return {k: torch.from_numpy(np.stack([np.asarray(x) for x in v])) for k, v in lists.items()}

        return {"buf": stacked(self.buf), "extras": stacked(self.extras),
                "finished": torch.tensor(self.finished, dtype=torch.float64), "spent": int(self.spent)}

    @classmethod
    def from_state(cls, st: dict[str, Any]) -> PartialRollout:
        def unstacked(d: dict[str, torch.Tensor]) -> dict[str, list[np.ndarray]]:
            return {k: list(v.numpy().copy()) for k, v in d.items()}

        return cls(unstacked(st["buf"]), unstacked(st["extras"]), [float(x) for x in st["finished"].tolist()],
                   int(st["spent"]))


def collect_rollout(envs, method, state, carry: EnvCarry | np.ndarray, n_steps: int, reward_scale: float,
                    budget_left: int, on_step=None, between=None,
                    partial: PartialRollout | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Collect up to n_steps chunk decisions from `envs`, continuing from `carry` (an EnvCarry, updated in
    place after every decision; or the obs of freshly reset envs), stopping once `budget_left` env steps have
    been spent. `on_step(env_steps_of_this_decision)` runs after each decision (evaluation, progress);
    `between()` between two decisions (a safe point to stop at). `partial`: the rollout so far, extended in
    place (a resumed one: `on_step(0)` first redoes the checks after its last decision). Returns (rollout,
    stats)."""
    if not isinstance(carry, EnvCarry):
        carry = EnvCarry.fresh(np.asarray(carry))
    part = partial if partial is not None else PartialRollout.empty()
    buf, extras = part.buf, part.extras
    n_envs = len(carry.obs)
    if part.decisions and on_step is not None:
        on_step(0)
    while part.decisions < n_steps and part.spent < budget_left:
        if part.decisions and between is not None:
            between()
        obs, prev_done, first = carry.obs, carry.prev_done, carry.first
        chunks, info = method.act_rollout(obs.astype(np.float32), state)
        left = budget_left - part.spent
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
        if done.any() and state is not None:  # those envs start an episode: forget what the actor kept for them
            state.reset(np.flatnonzero(done))
        ep_return = carry.ep_return + np.where(valid, reward, 0.0)
        part.finished.extend(float(ep_return[i]) for i in np.flatnonzero(done))
        ep_return[done] = 0.0
        # After an autoreset slot the env has a new episode; after a valid slot the episode goes on; a slot
        # left empty by the budget's end changes nothing.
        carry.first = np.where(valid, False, first | prev_done)
        carry.prev_done, carry.obs, carry.ep_return = done, np.asarray(nobs), ep_return
        n = int(steps.sum())
        part.spent += n
        if on_step is not None:
            on_step(n)
    rollout = {k: np.stack(v) for k, v in buf.items()} if buf["obs"] else {}
    rollout.update({k: np.stack(v) for k, v in extras.items()})
    return rollout, {"episodes": part.finished, "env_steps": part.spent}


# ---- env state for exact resume (each env's own: bench/tasks/env_state.py) ----------------------------------
def task_env(env: gym.Env):
    """The task's own env in one of make_vector_env's sub-envs, below the loop's layers: ChunkStep (whose last obs
    restore_envs sets) and, for an env that is not a gymnasium.Env, AsGymEnv (which holds nothing)."""
    w = env.env if isinstance(env, ChunkStep) else env
    return w.env if isinstance(w, AsGymEnv) else w


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

    return {"n_envs": len(envs.envs), "envs": [sub_env_state(task_env(e)) for e in envs.envs],
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
        set_sub_env_state(task_env(env), s)
        env._obs = obs[i].copy()
        envs._env_obs[i] = obs[i].copy()
    envs._autoreset_envs = st["autoreset"].numpy().astype(bool).copy()
    return EnvCarry(obs, st["prev_done"].numpy().astype(bool).copy(), st["first"].numpy().astype(bool).copy(),
                    st["ep_return"].numpy().astype(np.float64).copy())


class _UpdateAbandoned(Exception):
    """Raised by the harness's safe point inside an update (`between`) at a stop request."""


def update_or_stop(loop: Loop, rollout: dict[str, Any]) -> list[dict[str, float]]:
    """`method.update_rollout(rollout)`, abandoned before its next gradient step if a stop is asked for: then the
    method and the RNGs are put back as before the update, and `loop.maybe_stop()` saves the run (with the
    rollout still pending: the loop's `capture`) and raises Preempted."""
    method = loop.method
    before = checkpoints.snapshot(method)

    def between() -> None:
        if stop_requested():
            raise _UpdateAbandoned

    try:
        return method.update_rollout(rollout, between=between)
    except _UpdateAbandoned:
        checkpoints.restore_snapshot(before, method)
    loop.maybe_stop()
    raise RuntimeError("a stop was asked for in the update, but the run did not stop")  # maybe_stop raises


def run_on_policy(loop: Loop, bar) -> None:
    """Drive the online phase of an on-policy method for `online.steps` env steps (see the module doc)."""
    cfg, method, c = loop.cfg, loop.method, loop.progress
    total = cfg.online.steps
    saved = loop.resumed.get("on_policy")
    # A checkpoint taken between two decisions holds the rollout so far: consumed here.
    partial = saved.pop("partial", None) if saved is not None else None
    if total <= 0 or (c.env_step >= total and partial is None):
        return
    n_envs, n_steps, chunk = (int(x) for x in method.rollout_size())
    envs = make_vector_env(loop.task, n_envs, chunk)
    grid = cfg.eval.grid()
    seeds = [env_seed(cfg.seed, i) for i in range(n_envs)]

    def on_step(n: int) -> None:
        c.env_step += n
        bar.update(n)
        if c.env_step >= c.next_eval:
            loop.evaluate("finetune")
            c.next_eval = advance_grid(c.next_eval, c.env_step, *grid)

    try:
        if saved is not None:  # a resumed run: the envs continue from the checkpoint
            carry = restore_envs(envs, saved, seeds)
        elif c.env_step > 0 or c.rollout > 0:
            raise EnvStateError(f"the checkpoint of run {loop.run_id} is at env step {c.env_step} of the "
                                f"on-policy phase but holds no env state (an older checkpoint); rerun with "
                                f"--restart")
        else:  # the one reset of the online phase
            obs, _ = envs.reset(seed=seeds)
            carry = EnvCarry.fresh(np.asarray(obs))
            loop.train_state.reset()
        part = PartialRollout.from_state(partial) if partial is not None else None

        def capture() -> dict[str, Any]:
            """The envs as they are now, with the rollout so far when between two of its decisions."""
            st = capture_envs(envs, carry)
            if part is not None and part.decisions:
                st["partial"] = part.to_state()
            return dict(loop.resumed, on_policy=st)

        loop.capture = capture
        while c.env_step < total or part is not None:
            if part is None:
                part = PartialRollout.empty()
            # The budget as at the rollout's start (a resumed rollout has spent some of it already).
            rollout, stats = collect_rollout(envs, method, loop.train_state, carry, n_steps, cfg.reward_scale,
                                             total - c.env_step + part.spent, on_step, between=loop.maybe_stop,
                                             partial=part)
            if rollout and rollout["valid"].any():
                # A stop in the update saves the rollout whole (`part`, through capture): the resume redoes it.
                steps = update_or_stop(loop, rollout)
                method.grad_steps += len(steps)
                c.grad_step += len(steps)
                # One row per metric per rollout (the mean over its grad steps): nothing is held back across a
                # rollout boundary, where a checkpoint may be taken (online.log_every does not apply here).
                loop.log("finetune", mean_metrics(steps))
            part = None
            c.rollout += 1
            if stats["episodes"]:
                loop.log("finetune", {"train/return": float(np.mean(stats["episodes"]))},
                        n_episodes=len(stats["episodes"]))
            if c.env_step < total:  # rollout boundary: where periodic checkpoints are taken
                if c.env_step - c.last_ckpt_env_step >= cfg.online.checkpoint_every:
                    loop.checkpoint()
                loop.maybe_stop()
    finally:
        loop.capture = None
        envs.close()
