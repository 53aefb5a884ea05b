"""Evaluation: every actor of a method on the task's fixed eval seeds, isolated from training.

Why (DESIGN.md, "Protocol rules"): evaluation uses its own envs, the task's fixed eval seeds, its own RNG
stream and a fresh ActorState, so it never disturbs training (warm starts, chunk queues, RNG). The episodes
of one eval run in lockstep envs so that the actor sees a batch of observations (one batched call per
decision instead of one per episode).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.base import ActorState, Method


@torch.no_grad()
def evaluate_actor(method: Method, task, actor: str, eval_seeds: list[int], device) -> dict[str, Any]:
    """Run len(eval_seeds) episodes in lockstep envs; the actor sees a batch of observations.

    A fresh ActorState with its own generator (seeded from the eval seeds) is used, so evaluation is a pure
    function of the method's weights and never touches the training actor state."""
    envs = [task.make_env() for _ in eval_seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, eval_seeds)]).astype(np.float32)
    state = ActorState.create(int(eval_seeds[0]) * 31 + 17, device)
    n = len(envs)
    returns = np.zeros(n)
    done = np.zeros(n, bool)
    infos: list[dict] = [{} for _ in range(n)]
    while not done.all():
        chunks, _ = method.act(obs, actor, state, True)
        for t in range(chunks.shape[1]):
            for i, env in enumerate(envs):
                if done[i]:
                    continue
                o, r, term, trunc, info = env.step(chunks[i, t])
                returns[i] += float(r)
                obs[i] = o
                if term or trunc:
                    done[i] = True
                    infos[i] = info
            if done.all():
                break
    for env in envs:
        env.close()
    scores = np.array([task.normalized_score(r, info) for r, info in zip(returns, infos)])
    succ = [info.get("success", info.get("is_success")) for info in infos]
    out = {"return": float(returns.mean()), "normalized_score": float(np.mean(scores)),
           "returns": returns.tolist()}
    if task.success_metric or any(s is not None for s in succ):
        out["success"] = float(np.mean([float(bool(s)) for s in succ]))
    return out


def evaluate_actors(method: Method, task, eval_seeds: list[int], device) -> dict[str, dict[str, float]]:
    """Every actor of `method` on the eval seeds: {actor: {return, normalized_score[, success]}}."""
    out = {}
    for actor in method.actors:
        res = evaluate_actor(method, task, actor, eval_seeds, device)
        metrics = {"return": res["return"], "normalized_score": res["normalized_score"]}
        if res.get("success") is not None:
            metrics["success"] = res["success"]
        out[actor] = metrics
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

