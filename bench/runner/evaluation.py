"""Evaluation: every actor of a method on the run's eval states, isolated from training.

Why (DESIGN.md, "Protocol rules"): evaluation uses its own envs, the run's eval states (reset seeds: per run
seed, the same for every method and eval point, bench/tasks/eval_states.py), its own RNG stream and a fresh
ActorState, so it never disturbs training (warm starts, chunk queues, RNG). The episodes of one eval run in
lockstep envs so that the actor sees a batch of observations (one batched call per decision instead of one per
episode), and only the unfinished ones (no actions computed for episodes that ended). Every episode's outcome is
returned, for the store's episodes table, beside the means that the curves keep.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from bench.tasks import TUNE_EVAL_SEEDS
from bench.tasks.eval_states import EvalStatesError, actor_seed, reset_seeds
from methods.base import ActorState, Method
from methods.common.section import ConfigError


class EvalAbandoned(Exception):
    """An eval stopped before its end because a stop was asked for; nothing of it is returned."""


def run_eval_seeds(cfg, task) -> list[int]:
    """A run's eval states (reset seeds, bench/tasks/eval_states.py), enough for its largest eval: an eval of n
    episodes starts from the first n. `cfg` is the run's RunConfig, `task` its TaskSpec."""
    ev = cfg.eval
    fixed = task.eval_seeds if ev.seed_set == "report" else TUNE_EVAL_SEEDS
    try:
        return reset_seeds(ev.states, ev.seed_set, cfg.seed, max(ev.episodes, ev.last_episodes), fixed)
    except EvalStatesError as e:
        raise ConfigError(f"config keys 'eval.episodes'/'eval.final_episodes': {e}") from None


@torch.no_grad()
def evaluate_actor(method: Method, task, actor: str, eval_seeds: list[int], device,
                   should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run len(eval_seeds) episodes in lockstep envs, episode i from reset seed eval_seeds[i]; the actor sees a
    batch of observations: one batched call per decision, on the episodes that have not ended.

    A fresh ActorState with its own generator (eval_states.actor_seed of the eval seeds) is used, so evaluation
    is a pure function of the method's weights and never touches the training actor state. Acting on the
    unfinished episodes alone (issue 24) changes the order of a sampling actor's random draws against acting on
    the whole batch, not their distribution; a deterministic actor acts exactly as before
    (tests/bench/runner/test_evaluation.py). Returns the means and `episodes`, one record per episode.
    `should_stop()` true before a decision: the eval is abandoned (EvalAbandoned), its envs closed."""
    envs = [task.make_env() for _ in eval_seeds]
    try:
        obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, eval_seeds)]).astype(np.float32)
        state = ActorState.create(actor_seed(eval_seeds), device)
        n = len(envs)
        returns = np.zeros(n)
        lengths = np.zeros(n, dtype=np.int64)
        terminated = np.zeros(n, bool)
        done = np.zeros(n, bool)
        infos: list[dict] = [{} for _ in range(n)]
        active = np.arange(n)  # the unfinished episodes, in order; the actor state's rows follow them
        while len(active):
            if should_stop is not None and should_stop():
                raise EvalAbandoned(f"eval of actor {actor} abandoned at a stop request, "
                                    f"{int(done.sum())} of {n} episodes done")
            chunks, _ = method.act(obs[active], actor, state, True)
            for t in range(chunks.shape[1]):
                for row, i in enumerate(active):
                    if done[i]:
                        continue
                    o, r, term, trunc, info = envs[i].step(chunks[row, t])
                    returns[i] += float(r)
                    lengths[i] += 1
                    obs[i] = o
                    if term or trunc:
                        done[i], terminated[i], infos[i] = True, bool(term), info
                if done[active].all():
                    break
            still = ~done[active]
            if not still.all():
                state.keep(np.flatnonzero(still))
                active = active[still]
    finally:
        for env in envs:
            env.close()
    scores = np.array([task.normalized_score(r, info) for r, info in zip(returns, infos)])
    succ = [info.get("success", info.get("is_success")) for info in infos]
    has_success = task.success_metric or any(s is not None for s in succ)
    episodes = [{"episode": i, "reset_seed": int(seed), "return": float(returns[i]),
                 "normalized_score": float(scores[i]), "success": float(bool(succ[i])) if has_success else None,
                 "length": int(lengths[i]), "terminated": bool(terminated[i])}
                for i, seed in enumerate(eval_seeds)]
    out = {"return": float(returns.mean()), "normalized_score": float(np.mean(scores)),
           "returns": returns.tolist(), "episodes": episodes}
    if has_success:
        out["success"] = float(np.mean([float(bool(s)) for s in succ]))
    return out


def evaluate_actors(method: Method, task, eval_seeds: list[int], device,
                    should_stop: Callable[[], bool] | None = None) -> dict[str, dict[str, Any]]:
    """Every actor of `method` on the eval seeds: {actor: {"metrics": {return, normalized_score[, success]},
    "episodes": [one record per episode]}}. `should_stop`: as evaluate_actor's (all the actors are abandoned).
    An actor that the method declares to act exactly as an earlier one (`eval_same_as`) gets a copy of that
    actor's result instead of a second evaluation of the same episodes."""
    out = {}
    same_as = method.eval_same_as()
    for actor in method.actors:
        if same_as.get(actor) in out:
            out[actor] = copy.deepcopy(out[same_as[actor]])
            continue
        res = evaluate_actor(method, task, actor, eval_seeds, device, should_stop=should_stop)
        metrics = {"return": res["return"], "normalized_score": res["normalized_score"]}
        if res.get("success") is not None:
            metrics["success"] = res["success"]
        out[actor] = {"metrics": metrics, "episodes": res["episodes"]}
    return out


def advance_grid(next_eval: int, env_step: int, every: int, dense_every: int = 0, dense_until: int = 0) -> int:
    """The next grid step strictly after env_step (every >= 1; validated with the config). The grid is the
    multiples of `every`, plus the multiples of `dense_every` up to `dense_until` (eval.dense_*; 0 = none)."""
    if every < 1:
        raise ValueError(f"eval.every must be >= 1, got {every}")
    if next_eval > env_step:
        return next_eval
    nxt = (env_step // every + 1) * every  # anchored at 0: a late eval never shifts the grid
    if dense_every >= 1 and dense_until > 0:
        dense = (env_step // dense_every + 1) * dense_every
        if dense <= dense_until:
            nxt = min(nxt, dense)
    return nxt

