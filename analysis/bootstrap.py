"""Two-level percentile bootstrap of a cell's final score from its runs' eval episodes (issue 25).

Why: an interval over run seeds alone says "± 0.0" when every run fails the same eval state, although nine
successes in ten states is a binomial interval of about ±20 points. A cell's score has two sources of
uncertainty, the runs (training) and the eval states (which initial states the episodes met), so its interval
resamples both: level 1 draws runs with replacement; level 2 draws, within each drawn run, its final eval's
episodes with replacement. How level 2 draws follows the eval design, read off the episodes' reset seeds:
- `nested`: each run met its own states (eval.states=per_seed: disjoint per run seed): each drawn run draws its
  own episodes;
- `crossed`: every run met the same states (the older fixed protocol): a state is one draw for every run, so one
  draw of states per replicate serves all drawn runs (five runs that fail one shared state move together).
A paired difference of two lines (the same run seeds and states: the paired design) applies the same draws to
both lines, so their common runs and states cancel. Intervals are percentile intervals of RESAMPLES replicates,
vectorised in numpy with a seeded generator (the same inputs give the same interval).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

RESAMPLES = 5000
CONFIDENCE = 0.95
_CHUNK = 500  # replicates per vectorised block (bounds memory at reps x runs x episodes)


@dataclasses.dataclass(frozen=True)
class Episodes:
    """A cell's episodes as an array: values (lines, runs, states), NaN where a run has fewer episodes than
    the widest; `counts` (runs,) episodes per run; `design` nested or crossed (module doc)."""

    values: np.ndarray
    counts: np.ndarray
    design: str
    seeds: tuple = ()


def design_of(state_lists: list[tuple]) -> str:
    """crossed where every run met the same states in the same order (and there are several runs), else nested."""
    return "crossed" if len(state_lists) > 1 and all(s == state_lists[0] for s in state_lists) else "nested"


def episodes_of(frame: pd.DataFrame, value: str = "normalized_score") -> Episodes:
    """One line's episodes (rows of one run each per `run_id`, ordered by `episode`) as an Episodes of 1 line."""
    runs = [g.sort_values("episode") for _, g in frame.groupby("run_id", sort=True)]
    width = max(len(g) for g in runs)
    values = np.full((1, len(runs), width), np.nan)
    for i, g in enumerate(runs):
        values[0, i, :len(g)] = g[value].to_numpy(dtype=float)
    states = [tuple(g["reset_seed"]) for g in runs]
    return Episodes(values, np.array([len(g) for g in runs]), design_of(states),
                    tuple(int(g["seed"].iloc[0]) if "seed" in g else i for i, g in enumerate(runs)))


def paired_of(x: pd.DataFrame, y: pd.DataFrame, value: str = "normalized_score") -> Episodes | None:
    """Two lines' episodes, paired: the run seeds both have and, within each, the states (reset seeds) both met,
    in the order of x. None where they share no run seed and state."""
    rows, states = [], []
    for seed, gx in x.groupby("seed", sort=True):
        gy = y[y["seed"] == seed]
        if gy.empty:
            continue
        gx = gx.sort_values("episode").drop_duplicates("reset_seed")
        gy = gy.drop_duplicates("reset_seed").set_index("reset_seed")
        common = gx[gx["reset_seed"].isin(gy.index)]
        if common.empty:
            continue
        rows.append((seed, common[value].to_numpy(float), gy.loc[common["reset_seed"], value].to_numpy(float)))
        states.append(tuple(common["reset_seed"]))
    if not rows:
        return None
    width = max(len(r[1]) for r in rows)
    values = np.full((2, len(rows), width), np.nan)
    for i, (_, vx, vy) in enumerate(rows):
        values[0, i, :len(vx)], values[1, i, :len(vy)] = vx, vy
    return Episodes(values, np.array([len(r[1]) for r in rows]), design_of(states), tuple(r[0] for r in rows))


def point(eps: Episodes) -> np.ndarray:
    """Each line's estimate: the mean over runs of each run's mean episode (lines,)."""
    return np.nanmean(eps.values, axis=2).mean(axis=1)


def replicates(eps: Episodes, reps: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """(reps, lines): each line's estimate on `reps` two-level resamples, the same draws for every line."""
    rng = np.random.default_rng(seed)
    lines, n, width = eps.values.shape
    out = np.empty((reps, lines))
    for start in range(0, reps, _CHUNK):
        b = min(_CHUNK, reps - start)
        runs = rng.integers(0, n, size=(b, n))  # level 1: runs
        if eps.design == "crossed":  # level 2: one draw of the shared states serves every drawn run
            states = rng.integers(0, width, size=(b, width))
            per_run = eps.values[:, runs[:, :, None], states[:, None, :]].mean(axis=-1)
        else:  # level 2: each drawn run draws its own episodes (as many as it has)
            m = eps.counts[runs]  # (b, n)
            states = (rng.random((b, n, width)) * m[..., None]).astype(np.int64)
            picked = eps.values[:, runs[..., None], states]  # (lines, b, n, width)
            per_run = np.where(np.arange(width) < m[..., None], picked, 0.0).sum(axis=-1) / m
        out[start:start + b] = per_run.mean(axis=-1).T
    return out


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The percentile interval (CONFIDENCE) of 1-d replicates."""
    lo, hi = np.percentile(draws, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
    return float(lo), float(hi)


def runs_as_episodes(runs: pd.DataFrame, score: str, value: str = "normalized_score") -> pd.DataFrame:
    """Each run's one `score` as its only episode, on a state of its own: the input of a one-level bootstrap
    over runs, for runs that stored no episodes (stores older than schema 3). runs: run_id, seed, `score`."""
    return pd.DataFrame({"run_id": runs["run_id"].to_numpy(), "seed": runs["seed"].to_numpy(), "episode": 0,
                         "reset_seed": np.arange(len(runs)), value: runs[score].to_numpy(dtype=float)})


def cell_interval(frame: pd.DataFrame, value: str = "normalized_score", reps: int = RESAMPLES,
                  seed: int = 0) -> dict:
    """One cell (one line on one task; one row per final-eval episode of each run): its mean, its two-level
    percentile interval, the runs, the episodes and the design."""
    eps = episodes_of(frame, value)
    lo, hi = interval(replicates(eps, reps, seed)[:, 0])
    return {"mean": float(point(eps)[0]), "low": lo, "high": hi, "n": len(eps.counts),
            "episodes": int(eps.counts.sum()), "design": eps.design}


def paired_difference(x: pd.DataFrame, y: pd.DataFrame, value: str = "normalized_score", reps: int = RESAMPLES,
                      seed: int = 0) -> dict | None:
    """mean(x) - mean(y) over their common run seeds and states, with its paired two-level interval."""
    eps = paired_of(x, y, value)
    if eps is None:
        return None
    draws = replicates(eps, reps, seed)
    lo, hi = interval(draws[:, 0] - draws[:, 1])
    est = point(eps)
    return {"difference": float(est[0] - est[1]), "low": lo, "high": hi, "n": len(eps.counts),
            "episodes": int(eps.counts.sum()), "design": eps.design}


def ratio(x: pd.DataFrame, y: pd.DataFrame, value: str = "normalized_score", reps: int = RESAMPLES,
          seed: int = 0) -> dict:
    """mean(x) / mean(y) of two cells' episodes, with a two-level percentile interval: the same draws for both
    (paired) where they met the same run seeds and states, else independent draws. NaN bounds where y's
    replicates reach 0."""
    ex, ey = episodes_of(x, value), episodes_of(y, value)
    both = paired_of(x, y, value)
    paired = both is not None and len(both.counts) == len(ex.counts) == len(ey.counts) \
        and int(both.counts.sum()) == int(ex.counts.sum()) == int(ey.counts.sum())
    if paired:
        draws = replicates(both, reps, seed)
        num, den = draws[:, 0], draws[:, 1]
    else:
        num, den = replicates(ex, reps, seed)[:, 0], replicates(ey, reps, seed + 1)[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = float(point(ex)[0] / point(ey)[0])
        values = num / den
    finite = values[np.isfinite(values)]
    lo, hi = interval(finite) if len(finite) == len(values) else (float("nan"), float("nan"))
    return {"ratio": estimate, "low": lo, "high": hi, "paired": paired}

