"""bench/runner/compiled.py: RNG snapshots restore the captured generators, and the compiled-vs-eager check
can fail.
"""
from __future__ import annotations

import pytest
import torch

from bench.runner.compiled import check_agreement, rng_restore, rng_snapshot


def test_rng_snapshot_restores_captured_generators():
    g = torch.Generator().manual_seed(3)
    fn = lambda: torch.randn(4, generator=g)
    snap = rng_snapshot(fn)
    a = fn()
    rng_restore(snap)
    assert torch.equal(a, fn())


def test_agreement_detects_a_wrong_compiled_path_and_accepts_a_right_one():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    eager = lambda: torch.randn(5, generator=g1)
    assert check_agreement(eager, lambda: torch.randn(5, generator=g2)).agree
    bad = check_agreement(eager, lambda: torch.randn(5, generator=g2) + 1e-2)
    assert not bad.agree and bad.max_abs_diff == pytest.approx(1e-2, rel=1e-3)
