"""The eval grid (bench/runner/evaluation.py): every `eval.every` env steps, after an optional dense start."""
from __future__ import annotations

import pytest

from bench.config.layers import resolve_config


def test_the_eval_grid_has_an_optional_dense_start():
    from bench.runner.evaluation import advance_grid
    from methods.common.section import ConfigError

    def points(every, dense_every=0, dense_until=0, total=5000):
        out, g = [], advance_grid(0, 0, every, dense_every, dense_until)
        while g <= total:
            out.append(g)
            g = advance_grid(g, g, every, dense_every, dense_until)
        return out

    assert points(1000) == [1000, 2000, 3000, 4000, 5000]
    assert points(1000, 250, 2000) == [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 3000, 4000, 5000]
    assert advance_grid(250, 262, 1000, 250, 2000) == 500  # an eval that landed late moves to the next point
    # the main grid stays on multiples of `every` after a dense phase that ends off it
    assert points(1000, 300, 1000) == [300, 600, 900, 1000, 2000, 3000, 4000, 5000]
    assert points(1000, 400, 1500) == [400, 800, 1000, 1200, 2000, 3000, 4000, 5000]
    assert advance_grid(1000, 1003, 1000) == 2000
    with pytest.raises(ConfigError, match="dense_every"):
        resolve_config("bc_gauss", "demo", 0, {"eval.dense_until": 2000})
