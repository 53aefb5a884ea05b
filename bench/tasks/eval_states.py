"""Eval initial states: the env reset seeds an evaluation starts its episodes from, and the eval actor's seed.

Why (issue 25): when every run, method and eval point used the task's same 10 reset seeds and the same actor
seed, one state that every run fails looked like a certainty (five runs at exactly 91.3 printed "± 0.0"). So,
under `eval.states=per_seed` (what every task suite sets since store schema 3):
- each run seed draws its states from its own block of a large pool, so run seeds get disjoint states and
  the seeds of a cell sample the state distribution instead of sharing ten draws from it;
- the states depend on the run seed alone (with the seed set and the task, whose env turns a reset seed into
  a state), so every method's run of one run seed meets the same states: a paired design;
- a run uses the same states and the same actor seed at every eval point (the first `n` of its block, so a
  longer final eval starts with the grid's states).
`eval.states=fixed` is the older protocol, kept so that stored runs keep their meaning and their run ids: the
task's fixed `eval_seeds` (or TUNE_EVAL_SEEDS), the same for every run. The `tune` seed set keeps its role
under both: tuning evaluates on states that no reported run ever sees (a pool of its own).
"""
from __future__ import annotations

from collections.abc import Sequence

# Disjoint pools of reset seeds, one per seed set, each BLOCK states per run seed for run seeds below MAX_RUN_SEED
# (all under 2**31, and far from the older fixed seeds, 10_000.. and 20_000..).
POOLS = {"report": 100_000_000, "tune": 1_100_000_000}
BLOCK = 1_000  # states per run seed: the most episodes one eval can have
MAX_RUN_SEED = 1_000_000
STATES = ("fixed", "per_seed")


class EvalStatesError(ValueError):
    pass


def reset_seeds(states: str, seed_set: str, run_seed: int, n: int, fixed: Sequence[int]) -> list[int]:
    """The `n` reset seeds of a run's evals: its own block of the seed set's pool (per_seed), or the first `n`
    of `fixed`, the task's fixed seeds of that seed set (fixed)."""
    if states not in STATES:
        raise EvalStatesError(f"eval.states must be one of {STATES}, got {states!r}")
    if states == "fixed":
        if n > len(fixed):
            raise EvalStatesError(f"{n} eval episodes exceed the task's {len(fixed)} fixed eval seeds")
        return [int(s) for s in fixed[:n]]
    if seed_set not in POOLS:
        raise EvalStatesError(f"unknown eval seed set {seed_set!r}; expected one of {tuple(POOLS)}")
    if not 0 <= run_seed < MAX_RUN_SEED:
        raise EvalStatesError(f"run seed {run_seed} is outside the eval state pool (0 .. {MAX_RUN_SEED - 1})")
    if n > BLOCK:
        raise EvalStatesError(f"{n} eval episodes exceed the {BLOCK} eval states of a run seed")
    start = POOLS[seed_set] + run_seed * BLOCK
    return list(range(start, start + n))


def actor_seed(seeds: Sequence[int]) -> int:
    """The eval actor's RNG seed, from the eval's first reset seed: per run seed under per_seed (the same for
    every method and eval point of that seed), the same for every run under fixed (the older protocol)."""
    return int(seeds[0]) * 31 + 17
