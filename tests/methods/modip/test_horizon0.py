"""MODIP at planner.horizon 0, the single-factor control for the world model (issue 25 C6): the world model is
never built, trained, checkpointed or called; the plan is the DP proposal with the highest Q(s, a_0); the rest
(critics, labels, their filter, distillation, its start rule) runs as MODIP's.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.modip
from methods.base import ActorState
from methods.common.section import ConfigError
from tests.methods.modip.test_modip import add_online, build, method_on_demo

H0 = {"planner.horizon": 0, "planner.pi_trajectories": 5, "planner.replan_every": 2, "distill_start_labels": 0,
      "distill_start_episodes": 1, "label_ramp": 0, "online_ramp": 0}


def world_model_metrics(out: dict) -> list[str]:
    """The world model's metrics among `out` (wm/online_ratio is the critics' batch mix too: not one)."""
    return [k for k in out if k.startswith(("wm/", "loss/wm")) and k != "wm/online_ratio"]


class NoWorldModel:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a world model was built at planner.horizon 0")


def test_horizon_0_never_builds_trains_or_calls_a_world_model(demo_dataset, monkeypatch):
    monkeypatch.setattr(methods.modip, "WorldModel", NoWorldModel)
    m, d, cut = method_on_demo(demo_dataset, H0)
    assert m.world_model is None and m.wm_optim is None
    assert not {"world_model", "wm_optim"} & set(m.modules())
    for _ in range(3):
        out = m.pretrain(m.buffer)
        assert "loss/v" in out and not world_model_metrics(out)
    obs = d.observations[cut: cut + 3]
    for actor, n in (("mpc", 2), ("mpc_chunk", m.chunk), ("dp", m.act_steps)):
        actions, _ = m.act(obs, actor, ActorState.create(0), True)
        assert actions.shape == (3, n, 1)
    st = ActorState.create(1)
    actions, extras = m.act(obs, None, st, False)  # training: the planner with exploration noise
    assert extras["plan_action"].shape == (3, 2, 1) and not np.any(extras["plan_reward"]) and "mean" not in st.memory
    # the online phase: labels, the start rule, distillation, the diagnostics, the timed components
    add_online(m.buffer, d.observations[cut: cut + 40], np.zeros((40, 1)))
    m.train_returns = [2.0 * m.offline_return]
    m.cfg.diag_every = 1
    out = m._finetune()
    assert m.distilling and "loss/dp_distill" in out and not world_model_metrics(out)
    m._on_episode(m.buffer.last_episode())
    assert "diag/plan_gap" not in m.pending
    comps = m.timed_components(2)
    comps["plan"]()
    comps["update"]()
    assert comps["plan"].settings["horizon"] == 0 and comps["plan"].settings["wm_members"] == 0
    state = m.state_dict()
    m.load_state_dict(state)


def test_horizon_0_executes_the_dp_proposal_with_the_highest_q(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, H0)
    proposals = torch.linspace(-0.8, 0.8, 5)  # proposal j of every state: the chunk of constant action p_j

    def sample(s, generator=None, sampler=None):
        return proposals.repeat(len(s) // 5)[:, None, None].expand(-1, m.chunk, 1).clone()

    m.dp.ema.module.sample = sample
    m.critics.q_value = lambda s, a: -((a[:, 0] - 0.35) ** 2)  # Q prefers the action closest to 0.35: p_3 = 0.4
    actions, extras = m.act(d.observations[cut: cut + 4], "mpc", ActorState.create(0), True)
    torch.testing.assert_close(torch.as_tensor(extras["plan_action"]), torch.full((4, 2, 1), 0.4))
    np.testing.assert_allclose(actions, m.normalizer.unnorm_act(torch.full((4, 2, 1), 0.4)).numpy(), atol=1e-6)


def test_horizon_0_config():
    with pytest.raises(ConfigError, match="replan_every"):
        build({"planner.horizon": 0, "planner.replan_every": 5})  # the test DP's chunk is 4
    with pytest.raises(ConfigError, match="pi_trajectories"):
        build({"planner.horizon": 0, "planner.pi_trajectories": 0})
    with pytest.raises(ConfigError, match="horizon"):
        build({"planner.horizon": 2})  # 0 < H < the chunk: the mpc_chunk actor could not run
    assert build({"planner.horizon": 0}).world_model is None
