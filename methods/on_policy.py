"""The base of on-policy methods: the harness collects whole vector-env rollouts with the current policy and
hands each one over for one update (bench/runner/on_policy.py runs the loop).

Why: an on-policy method (DPPO) learns from rollouts of its own policy, not from a replay buffer, so its verbs
differ from `update`: how big a rollout is, how to act in one (keeping what the update needs, e.g. the
denoising chains), and the update from a whole rollout. Subclassing OnPolicy is what makes the harness run the
on-policy loop; a method never declares its loop.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import numpy as np

from methods.base import ActorState, Method, RolloutKind


class OnPolicy(Method):
    """rollout_size, act_rollout, update_rollout (and Method's act for evaluation)."""

    _kind_base = True
    rollout_kind = RolloutKind.ON_POLICY

    @abc.abstractmethod
    def rollout_size(self) -> tuple[int, int, int]:
        """(n_envs, n_steps, decision_length): vector envs, decisions per env in one rollout, and env actions one
        decision executes."""

    @abc.abstractmethod
    def act_rollout(self, obs: np.ndarray, state: ActorState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """obs (n_envs, obs_dim) -> (actions (n_envs, decision_length, act_dim) in env units, per-env arrays to
        keep with the decision in the rollout, e.g. DPPO's denoising chains)."""

    @abc.abstractmethod
    def update_rollout(self, rollout: dict[str, Any],
                       between: Callable[[], None] | None = None) -> list[dict[str, float]]:
        """The update from one rollout (arrays shaped (n_steps, n_envs, ...); bench/runner/on_policy.py says
        which), one metrics dict per gradient step: the harness counts them and logs their means.

        `between()`, where given, is the harness's safe point: call it before each gradient step (and between
        other long stretches of work, e.g. passes over the whole rollout before the first step). It returns
        nothing, or raises to abandon the update (a stop was asked for: Slurm kills ~30 s after SIGTERM, and a
        whole update can take minutes); let that propagate, undoing nothing. The harness snapshots, before the
        call, what the update may change: the method's checkpointed state (modules(), extra_state(), its
        generator) and the process's RNGs, which must therefore be all the update changes. It puts the
        snapshot back, saves the run with the rollout still pending, and the resumed run redoes the update
        whole."""
