"""IQL's critic update (methods/common/iql.py): Q fits its targets, V an upper expectile of the target Q."""
from __future__ import annotations

import torch

from tests.helpers import toy_method


def test_iql_update_fits_v_to_an_expectile_of_the_target_q():
    m = toy_method("idql", {"critic.target_tau": 1.0, "critic.lr": 1e-2})
    c = m.critics
    s = torch.randn(64, 3)
    a = torch.randn(64, 2, 1)
    q_true = a.sum((1, 2))  # what Q can be driven to with the reward below (terminal transitions)
    for _ in range(400):
        c.update(s, a, q_true, s, torch.ones(64, dtype=torch.bool))
    err = (c.q.min(s, a) - q_true).abs().mean()
    assert float(err.detach()) < 0.15
    # V at a state is an upper expectile (tau 0.8) of Q over the actions seen there: above their mean
    s1 = torch.zeros(64, 3)
    v_before = float(c.value(s1).mean().detach())
    for _ in range(300):
        c.v_optim.zero_grad()
        c.v_loss(s1, a).backward()
        c.v_optim.step()
    v = float(c.value(s1).mean().detach())
    q_at = c.q_target.min(s1, a)
    assert float(q_at.mean()) < v < float(q_at.max()), (v_before, v, float(q_at.mean()))
