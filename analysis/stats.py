"""Statistics for reports: per-cell confidence intervals and rliable's aggregate estimates.

Why: DESIGN's statistics rules (at least 5 seeds per reported comparison, every cell flagged below that, IQM
with stratified-bootstrap CIs over tasks, probability of improvement, performance profiles) must be computed
the same way by every report. Every score interval of a report (the headline table, the curve bands, the Pareto
figure, the ablation's score cells) resamples runs and eval episodes (analysis/bootstrap.py, analysis/bands.py);
Student's t over runs (`mean_ci`) is left for the ablation's latency and update-time cells; anything aggregated
over tasks goes through rliable.
"""
from __future__ import annotations

import contextlib
import warnings

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics
from scipy import stats as sps

MIN_SEEDS = 5


@contextlib.contextmanager
def _quiet():
    """rliable passes a RandomState to `arch`, which warns about it on every call; the result is the same."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextlib.contextmanager
def _seeded(seed: int):
    """NumPy's global RNG seeded inside the block and put back after it. Why: rliable hands `arch` its RandomState,
    which arch 7 does not draw from: its bootstrap draws from the global RNG, so without this two reports of one
    store printed different probability-of-improvement and profile intervals."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


CONFIDENCE = 0.95


def mean_ci(values) -> tuple[float, float, int]:
    """Mean, half-width of the 95% Student-t interval (nan below 2 values), and the count (NaNs dropped)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), n
    half = float(sps.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, half, n


def cell_table(frame: pd.DataFrame, value: str, rows: str = "line", cols: str = "task") -> pd.DataFrame:
    """Long table of mean, ci (half-width), n and `flagged` (n < MIN_SEEDS) per (rows, cols) cell."""
    records = []
    for (row, col), group in frame.groupby([rows, cols], sort=True):
        mean, half, n = mean_ci(group[value])
        records.append({rows: row, cols: col, "mean": mean, "ci": half, "n": n, "flagged": n < MIN_SEEDS})
    return pd.DataFrame(records, columns=[rows, cols, "mean", "ci", "n", "flagged"])


def score_matrices(scores: pd.DataFrame, value: str = "final", notes=None) -> tuple[dict, list]:
    """rliable's input: line -> array (runs x tasks), over the tasks that every line has.

    rliable needs the same number of runs per task within a line; where seeds differ across tasks the
    extra seeds are dropped (lowest seeds kept) with a warning.
    """
    tasks_per_line = scores.groupby("line")["task"].apply(set)
    common = set.intersection(*tasks_per_line) if len(tasks_per_line) else set()
    tasks = sorted(common)
    dropped = sorted(set(scores["task"]) - common)
    if dropped and notes is not None:
        notes.warn(f"tasks {dropped} are missing for some lines and left out of the aggregates over tasks")
    matrices = {}
    for line, group in scores[scores["task"].isin(tasks)].groupby("line", sort=True):
        per_task = [g.sort_values("seed")[value].to_numpy(dtype=float) for _, g in group.groupby("task", sort=True)]
        n = min(len(v) for v in per_task)
        if notes is not None and any(len(v) != n for v in per_task):
            notes.warn(f"{line}: seed counts differ across tasks; aggregates use the first {n} seeds per task")
        matrices[line] = np.stack([v[:n] for v in per_task], axis=1)
    return matrices, tasks


def enough_runs(matrices: dict, minimum: int = MIN_SEEDS) -> tuple[dict, dict]:
    """(lines with at least `minimum` runs per task, {line: runs} of the others). A bootstrap over fewer runs
    is degenerate (two runs give a probability of improvement of 1.000 [1.000, 1.000]), so reports give
    rliable's aggregates only for the first and name the others."""
    kept = {k: v for k, v in matrices.items() if v.shape[0] >= minimum}
    return kept, {k: int(v.shape[0]) for k, v in matrices.items() if v.shape[0] < minimum}


def interval_estimates(matrices: dict, reps: int = 2000, seed: int = 0, gamma: float = 100.0):
    """IQM, median, mean and optimality gap (to `gamma`, 100 for normalised scores) with stratified-bootstrap
    95% CIs. Returns a long DataFrame: line, metric, estimate, low, high."""
    names = ["IQM", "Median", "Mean", "Optimality gap"]

    def aggregate(x):
        return np.array([iqm_over_axis(x.reshape(-1), axis=0), metrics.aggregate_median(x), metrics.aggregate_mean(x),
                         metrics.aggregate_optimality_gap(x, gamma)])

    with _quiet(), _seeded(seed):
        points, cis = rly.get_interval_estimates(matrices, aggregate, reps=reps,
                                                 random_state=np.random.RandomState(seed))
    records = []
    for line in matrices:
        for i, name in enumerate(names):
            records.append({"line": line, "metric": name, "estimate": float(points[line][i]),
                            "low": float(cis[line][0, i]), "high": float(cis[line][1, i])})
    return pd.DataFrame(records)


def _method_of(line: str) -> str:
    return line.split("/")[0].split("[")[0]


def improvement_pairs(matrices: dict, target_prefix: str | None = None) -> list[tuple[str, str]]:
    """(x, y) line pairs for P(X > Y). With a target method: each of its lines against each line of every other
    method. Without: every two lines of different methods, once, x being the one with the higher mean score."""
    if target_prefix:
        targets = [k for k in matrices if _method_of(k) == target_prefix]
        others = [k for k in matrices if _method_of(k) != target_prefix]
        return [(x, y) for x in targets for y in others]
    lines = sorted(matrices, key=lambda k: (-float(np.nanmean(matrices[k])), k))
    return [(x, y) for i, x in enumerate(lines) for y in lines[i + 1:] if _method_of(x) != _method_of(y)]


def improvement_probability(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """rliable's `metrics.probability_of_improvement`, vectorised: per task, P(X > Y) + P(X = Y) / 2 over every
    pair of runs (the Mann-Whitney U of X over its m x n pairs; 0.5 where the two columns are equal), averaged over
    tasks. Why: rliable calls scipy's mannwhitneyu per task and bootstrap replicate, whose input checks took 62% of a
    report's time (issue 24's profile of the demo report); tests/analysis pin it to rliable's on ties and shapes."""
    x, y = np.asarray(scores_x, dtype=float), np.asarray(scores_y, dtype=float)
    # P(X > Y) + P(X = Y) / 2 = 1/2 + (P(X > Y) - P(X < Y)) / 2 = 1/2 + mean(sign(X - Y)) / 2 per task, every task
    # over the same m x n pairs (a NaN propagates, as in scipy; equal columns give 1/2 by symmetry)
    return float(0.5 + 0.5 * np.sign(x[:, None, :] - y[None, :, :]).mean())


def score_distribution(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """rliable's `library.score_distributions` (the fraction of runs x tasks above each tau), vectorised over the
    taus rather than one `run_score_deviation` call per tau and replicate."""
    flat = np.asarray(scores, dtype=float).reshape(-1)
    return (flat[:, None] > np.asarray(taus, dtype=float)[None, :]).mean(axis=0)


def probability_of_improvement(matrices: dict, target_prefix: str | None, reps: int = 2000, seed: int = 0):
    """P(X > Y) with bootstrap CIs over the pairs of `improvement_pairs` (target method, or every pair): rliable's
    interval estimates of rliable's metric (`improvement_probability`, its vectorised form)."""
    order = improvement_pairs(matrices, target_prefix)
    pairs = {f"{x} vs {y}": (matrices[x], matrices[y]) for x, y in order}
    if not pairs:
        return pd.DataFrame(columns=["pair", "x", "y", "estimate", "low", "high"])
    with _quiet(), _seeded(seed):
        points, cis = rly.get_interval_estimates(pairs, improvement_probability, reps=reps,
                                                 random_state=np.random.RandomState(seed))
    records = []
    for x, y in order:
        key = f"{x} vs {y}"
        records.append({"pair": key, "x": x, "y": y, "estimate": float(np.squeeze(points[key])),
                        "low": float(np.squeeze(cis[key][0])), "high": float(np.squeeze(cis[key][1]))})
    return pd.DataFrame(records)


def performance_profiles(matrices: dict, taus: np.ndarray, reps: int = 2000, seed: int = 0):
    """Fraction of runs scoring above each tau, with bootstrap CIs (rliable's score distributions, through its
    `custom_profile_func`: `score_distribution`)."""
    with _quiet(), _seeded(seed):
        return rly.create_performance_profile(matrices, taus, reps=reps, custom_profile_func=score_distribution)


def iqm_over_axis(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean along one axis, NaN-free input (rliable's aggregate_iqm, vectorised): scipy's trim_mean at
    0.25, its partition and slice, without its per-call input checks (a fifth of a report's time, once called per
    bootstrap replicate)."""
    a = np.asarray(values, dtype=float)
    n = a.shape[axis]
    low = int(0.25 * n)
    part = np.partition(a, (low, n - low - 1), axis=axis)
    return np.take(part, np.arange(low, n - low), axis=axis).mean(axis=axis)


def iqm_by_group(frame: pd.DataFrame, keys: list[str], value: str = "value") -> pd.DataFrame:
    """IQM of `value` over the rows of each group (e.g. seeds per method x task x env_step).

    Groups of equal size are computed in one vectorised call (the usual case: a dense grid); the rest
    one by one. Equal to metrics.aggregate_iqm on each group.
    """
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "iqm", "n"])
    codes = frame.groupby(keys, sort=True).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    vals = frame[value].to_numpy(dtype=float)[order]
    iqm = np.empty(len(sizes))
    for size in np.unique(sizes):
        groups = np.flatnonzero(sizes == size)
        idx = starts[groups][:, None] + np.arange(size)[None, :]
        iqm[groups] = iqm_over_axis(vals[idx], axis=1)
    first = frame.iloc[order[starts]][keys].reset_index(drop=True)
    first["iqm"] = iqm
    first["n"] = sizes
    return first


def aggregate_curve(values: np.ndarray, reps: int = 2000, seed: int = 0):
    """IQM over runs and tasks at each step, with stratified-bootstrap CIs.

    values: line -> array (runs x tasks x steps). Returns {line: (estimate[steps], low[steps], high[steps])}.
    """
    def iqm_per_step(x):
        return iqm_over_axis(x.reshape(-1, x.shape[-1]), axis=0)

    with _quiet(), _seeded(seed):
        points, cis = rly.get_interval_estimates(values, iqm_per_step, reps=reps,
                                                 random_state=np.random.RandomState(seed))
    return {k: (points[k], cis[k][0], cis[k][1]) for k in values}


def ratio_ci(numerator: np.ndarray, denominator: np.ndarray, reps: int = 2000, seed: int = 0):
    """Ratio of means of two independent samples with a bootstrap 95% CI (rliable's independent bootstrap)."""
    x = np.asarray(numerator, dtype=float)
    y = np.asarray(denominator, dtype=float)
    x, y = x[~np.isnan(x)], y[~np.isnan(y)]
    if len(x) == 0 or len(y) == 0 or y.mean() == 0:
        return float("nan"), float("nan"), float("nan")
    estimate = float(x.mean() / y.mean())
    if len(x) < 2 or len(y) < 2:
        return estimate, float("nan"), float("nan")
    with _quiet(), _seeded(seed):
        _, cis = rly.get_interval_estimates(
            {"ratio": (x[:, None], y[:, None])}, lambda a, b: np.array([a.mean() / b.mean()]), reps=reps,
            random_state=np.random.RandomState(seed))
    return estimate, float(cis["ratio"][0, 0]), float(cis["ratio"][1, 0])
