"""The critic pieces the critic-based methods share (methods/common/critics.py): the expectile loss weighs
the two signs as IQL and DPPO do; the Q ensemble takes a flattened chunk, its residual members apart.
"""
from __future__ import annotations

import pytest
import torch

from methods.common.critics import QEnsemble, expectile_loss


# ---- shared pieces -----------------------------------------------------------------------------------------
def test_expectile_loss_weighs_the_two_signs():
    u = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    torch.testing.assert_close(expectile_loss(u, 0.8), torch.tensor([0.2 * 4, 0.2, 0.0, 0.8, 0.8 * 4]))
    assert float(expectile_loss(u, 0.5).sum()) == pytest.approx(0.5 * float((u ** 2).sum()))


def test_q_ensemble_takes_a_flattened_chunk_and_residual_members_are_separate():
    q = QEnsemble(3, 2 * 4, [16, 16, 16], members=2, residual=True)
    s, a = torch.randn(5, 3), torch.randn(5, 4, 2)
    out = q(s, a)
    assert out.shape == (2, 5)
    torch.testing.assert_close(q.min(s, a), out.min(0).values)
    torch.testing.assert_close(out[1], q.nets[1](torch.cat([s, a.reshape(5, -1)], -1)).squeeze(-1))
    assert not torch.allclose(out[0], out[1])
