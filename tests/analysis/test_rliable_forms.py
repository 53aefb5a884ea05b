"""The report's vectorised forms of rliable's probability of improvement and score distribution (analysis/stats.py)
give rliable's own numbers: point by point, and through rliable's bootstrap with the same random state."""
from __future__ import annotations

import numpy as np
import pytest
from rliable import library as rly
from rliable import metrics

from analysis import stats


def _scores(rng, runs, tasks):
    return rng.integers(0, 4, size=(runs, tasks)).astype(float)  # few values: many ties


@pytest.mark.parametrize("shape_x, shape_y", [((5, 1), (5, 1)), ((5, 3), (4, 3)), ((2, 2), (7, 2))])
def test_improvement_probability_is_rliables(shape_x, shape_y):
    rng = np.random.default_rng(0)
    for _ in range(200):
        x, y = _scores(rng, *shape_x), _scores(rng, *shape_y)
        assert stats.improvement_probability(x, y) == pytest.approx(metrics.probability_of_improvement(x, y),
                                                                    abs=1e-12)
    x = _scores(rng, 5, 2)
    assert stats.improvement_probability(x, x) == metrics.probability_of_improvement(x, x) == 0.5
    x[0, 1] = np.nan
    with np.errstate(invalid="ignore"):
        assert np.isnan(stats.improvement_probability(x, _scores(rng, 5, 2)))


def test_score_distribution_is_rliables():
    rng = np.random.default_rng(1)
    taus = np.linspace(-1.0, 4.0, 31)
    for shape in ((5, 1), (10, 3)):
        scores = rng.normal(1.5, 1.0, size=shape).round(1)
        np.testing.assert_allclose(stats.score_distribution(scores, taus), rly.score_distributions(scores, taus))


def test_through_rliables_bootstrap_the_intervals_are_the_same():
    rng = np.random.default_rng(2)
    pairs = {"a vs b": (rng.normal(50, 20, (5, 1)), rng.normal(45, 20, (5, 1))),
             "a vs c": (rng.normal(50, 20, (5, 1)).round(), rng.normal(50, 20, (5, 1)).round())}
    np.random.seed(0)  # arch 7 draws from NumPy's global RNG, not from the RandomState rliable hands it
    ours = rly.get_interval_estimates(pairs, stats.improvement_probability, reps=300,
                                      random_state=np.random.RandomState(0))
    np.random.seed(0)
    theirs = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=300,
                                        random_state=np.random.RandomState(0))
    for key in pairs:
        np.testing.assert_allclose(ours[0][key], theirs[0][key], atol=1e-12)
        np.testing.assert_allclose(ours[1][key], theirs[1][key], atol=1e-12)
    matrices = {"a": pairs["a vs b"][0], "b": pairs["a vs b"][1]}
    taus = np.linspace(0.0, 100.0, 21)
    ours = stats.performance_profiles(matrices, taus, reps=300, seed=3)
    np.random.seed(3)
    theirs = rly.create_performance_profile(matrices, taus, reps=300)
    for key in matrices:
        np.testing.assert_allclose(ours[0][key], theirs[0][key], atol=1e-12)
        np.testing.assert_allclose(ours[1][key], theirs[1][key], atol=1e-12)


def test_the_reports_rliable_intervals_are_seeded():
    """Two calls give the same intervals, and the caller's global RNG is left where it was."""
    rng = np.random.default_rng(4)
    matrices = {"a": rng.normal(50, 20, (5, 1)), "b": rng.normal(45, 20, (5, 1))}
    np.random.seed(9)
    before = np.random.get_state()[1].copy()
    first = stats.interval_estimates(matrices, reps=200)
    second = stats.interval_estimates(matrices, reps=200)
    assert first.equals(second)
    assert (np.random.get_state()[1] == before).all()
    one = stats.performance_profiles(matrices, np.linspace(0, 100, 11), reps=200)
    two = stats.performance_profiles(matrices, np.linspace(0, 100, 11), reps=200)
    np.testing.assert_array_equal(one[1]["a"], two[1]["a"])


def test_the_iqm_is_rliables():
    rng = np.random.default_rng(5)
    for runs in (1, 2, 3, 4, 5, 8, 10, 13):
        x = rng.normal(0, 1, (runs, 3)).round(1)
        assert stats.iqm_over_axis(x.reshape(-1), axis=0) == pytest.approx(metrics.aggregate_iqm(x), abs=1e-12)
        per_task = stats.iqm_over_axis(x, axis=0)
        np.testing.assert_allclose(per_task, [metrics.aggregate_iqm(x[:, [t]]) for t in range(3)], atol=1e-12)
