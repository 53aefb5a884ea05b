"""IDQL, a critic-based control for MODIP on the shared DP: on a bimodal toy DP whose learned critic prefers
one mode, the selected actions come from it, and in training it explores by the sign of the advantage; its
update rate is the replay ratio per decision; its config errors name the key.
"""
from __future__ import annotations

import numpy as np
import pytest

from methods.base import ActorState
from methods.common.section import ConfigError
from tests.helpers import toy_method, trained_on_bimodal


# ---- IDQL --------------------------------------------------------------------------------------------------
def test_idql_selects_the_mode_its_critic_prefers_and_explores_by_advantage():
    m = trained_on_bimodal("idql", {"samples": 16, "critic.target_tau": 0.05, "critic.lr": 3e-3, "batch_size": 128,
                                    "reward_scale": 1.0}, critic_steps=400)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    dp = m.act(obs, "dp", ActorState.create(0), True)[0][:, 0, 0]
    sel = m.act(obs, "resample", ActorState.create(0), True)[0][:, 0, 0]
    assert 0.2 < float((dp > 0.3).mean()) < 0.8  # the DP alone samples both modes
    assert float((sel > 0.3).mean()) >= 0.9, float((sel > 0.3).mean())
    # training: expectile exploration keeps some of the other mode (weights 0.7 / 0.3 by the advantage's sign)
    explore = m.act(obs, None, ActorState.create(0), False)[0][:, 0, 0]  # training collects with resample
    assert float((sel > 0.3).mean()) > float((explore > 0.3).mean()) > float((dp > 0.3).mean())


def test_idql_update_rate_is_replay_ratio_per_decision_not_updates_per_step():
    m = toy_method("idql", {"batch_size": 1000, "replay_ratio": 128, "update_after": 10})
    assert m.update_rate() == pytest.approx(128 / (1000 * 2))
    due = [m.updates_due(t) for t in range(1, 10011)]
    assert sum(due[:10]) == 0 and sum(due) == pytest.approx(0.064 * 10000, abs=1)


def test_idql_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="idql.exploration_tau"):
        toy_method("idql", {"exploration_tau": 1.0})
    with pytest.raises(ConfigError, match="idql.critic.expectile"):
        toy_method("idql", {"critic.expectile": 0.2})
