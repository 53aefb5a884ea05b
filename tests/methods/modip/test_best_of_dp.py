"""MODIP's `planner.search: best_of_dp` (issue 25 C): the plan is the DP proposal with the best model score
(Σ γ^t m_t r̂_t + γ^H m_H terminal(ŝ_H) over its first `horizon` actions), never a Gaussian sample or an average of
proposals; `horizon` may be shorter than the chunk; no warm start is kept.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.base import ActorState
from methods.common.section import ConfigError
from methods.modip.planner import PlanModels, PlannerConfig, plan_best_of_dp, propose_from_policy
from tests.methods.modip.test_modip import GAMMA, build, method_on_demo

BEST = {"planner.search": "best_of_dp", "planner.horizon": 1, "planner.pi_trajectories": 5,
        "planner.replan_every": 4, "world_model.termination": "learned"}
LEVELS = torch.linspace(-0.8, 0.8, 5)  # proposal j of every state: the chunk of constant action LEVELS[j]


def constant_proposals(chunk: int):
    def sample(s, generator=None, sampler=None):
        return LEVELS.repeat(len(s) // 5)[:, None, None].expand(-1, chunk, 1).clone()
    return sample


def point_step(s, a):  # x' = x + 0.5 a; reward -(x' - 0.2)^2; never terminates
    s2 = s + 0.5 * a
    r = -(s2[:, 0] - 0.2) ** 2
    return s2, r, torch.zeros_like(r), torch.zeros_like(r)


def test_the_plan_is_the_proposal_with_the_best_score():
    cfg = PlannerConfig(search="best_of_dp", horizon=1, pi_trajectories=5, terminal="none")
    models = PlanModels(step=point_step, value=None, q=None, policy=constant_proposals(4))
    res = plan_best_of_dp(models, torch.zeros(3, 1), torch.Generator().manual_seed(0), cfg, GAMMA, length=4)
    # from x = 0 one step of a reaches 0.5 a: a = 0.4 lands on 0.2, the reward's peak
    torch.testing.assert_close(res.mean, torch.full((3, 4, 1), 0.4))
    assert res.mean.shape == (3, 4, 1) and torch.all(res.dp_won == 1)
    torch.testing.assert_close(res.planned_reward, torch.zeros(3))


def test_the_terminal_value_decides_between_proposals_past_the_horizon():
    # V prefers x near -0.4: a = -0.8 reaches it in one step although its reward is the worst
    cfg = PlannerConfig(search="best_of_dp", horizon=1, pi_trajectories=5, terminal="v")
    models = PlanModels(step=point_step, value=lambda s: -100.0 * (s[:, 0] + 0.4) ** 2, q=None,
                        policy=constant_proposals(4))
    res = plan_best_of_dp(models, torch.zeros(2, 1), torch.Generator().manual_seed(0), cfg, GAMMA, length=4)
    torch.testing.assert_close(res.mean, torch.full((2, 4, 1), -0.8))


def test_proposals_step_the_model_only_to_reach_the_next_chunk():
    calls = []

    def step(s, a):
        calls.append(len(s))
        return point_step(s, a)

    models = PlanModels(step=step, policy=constant_proposals(4))
    g = torch.Generator().manual_seed(0)
    assert propose_from_policy(models, torch.zeros(1, 1), 5, 4, g).shape == (1, 5, 4, 1) and not calls
    assert propose_from_policy(models, torch.zeros(1, 1), 5, 6, g).shape == (1, 5, 6, 1) and len(calls) == 4


def test_the_mpc_actor_executes_the_best_dp_proposal(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, BEST)
    m.dp.ema.module.sample = constant_proposals(m.chunk)
    # the model's reward prefers the action closest to 0.35 (proposal 0.4); V is flat
    m.world_model.step = lambda s, a, disagreement=False: (s, -(a[:, 0] - 0.35).abs(), torch.zeros(len(s)),
                                                           torch.zeros(len(s)))
    m.critics.value = lambda s: torch.zeros(len(s))
    state = ActorState.create(0)
    actions, extras = m.act(d.observations[cut: cut + 4], "mpc", state, True)
    torch.testing.assert_close(torch.as_tensor(extras["plan_action"]), torch.full((4, 4, 1), 0.4))
    np.testing.assert_allclose(actions, m.normalizer.unnorm_act(torch.full((4, 4, 1), 0.4)).numpy(), atol=1e-6)
    assert "mean" not in state.memory  # no warm start
    chunk_actions, _ = m.act(d.observations[cut: cut + 4], "mpc_chunk", state, True)
    assert chunk_actions.shape == (4, m.chunk, 1)


def test_best_of_dp_config():
    assert build(BEST).plan_length == 4  # H 1 < the chunk 4: the plan is still a whole chunk
    assert build({**BEST, "planner.horizon": 6, "planner.replan_every": 6}).plan_length == 6
    with pytest.raises(ConfigError, match="replan_every"):
        build({**BEST, "planner.replan_every": 5})
    with pytest.raises(ConfigError, match="pi_trajectories"):
        build({**BEST, "planner.pi_trajectories": 0})
    with pytest.raises(ConfigError, match="horizon"):
        build({**BEST, "planner.search": "mppi"})  # MPPI's plan is its horizon: 1 < the chunk cannot run


def test_the_picks_lead_over_the_median_proposal_is_reported():
    """PlanResult.lead: the pick's lead over the median proposal, in the proposals' score std, then in the reward
    and terminal parts of the score; the method averages it over its training plans into `plan/lead_*`."""
    cfg = PlannerConfig(search="best_of_dp", horizon=1, pi_trajectories=5, terminal="v")
    def value(s):
        return -10.0 * (s[:, 0] + 0.1) ** 2

    models = PlanModels(step=point_step, value=value, q=None, policy=constant_proposals(4))
    res = plan_best_of_dp(models, torch.zeros(2, 1), torch.Generator().manual_seed(0), cfg, GAMMA, length=4)
    nxt = 0.5 * LEVELS
    reward, tail = -(nxt - 0.2) ** 2, GAMMA * -10.0 * (nxt + 0.1) ** 2
    score = reward + tail
    j = int(score.argmax())
    want = [(score[j] - score.median()) / score.std(unbiased=False), reward[j] - reward.median(),
            tail[j] - tail.median()]
    torch.testing.assert_close(res.lead, torch.tensor(want).expand(2, 3))
    assert res.lead[0, 0] > 0 and res.lead[0, 2] != 0


@pytest.mark.parametrize("over", [BEST, {"planner.horizon": 0}], ids=["best_of_dp", "horizon0"])
def test_training_plans_report_their_picks_lead_at_the_next_update(over):
    from tests.methods.modip.test_modip import build as build_method

    m = build_method(over)
    obs = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    st = ActorState.create(0)
    m.act(obs, "mpc", st, True)
    assert m.plan_lead[1] == 0  # evaluation plans are not counted
    m.act(obs, None, st, False)
    m.act(obs, None, st, False)
    assert m.plan_lead[1] == 6
    metrics = m._plan_metrics()
    assert metrics["plan/lead_sd"] > 0  # the argmax never trails the median
    horizon0 = over.get("planner.horizon") == 0  # no reward or terminal part: left out
    assert {"plan/lead_reward", "plan/lead_terminal"}.isdisjoint(metrics) == horizon0
    assert m.plan_lead[1] == 0 and m._plan_metrics() == {}  # reset by the update that reported them
