"""PA-RL, a critic-based control for MODIP on the shared DP: its action optimisation climbs Q inside the
box, its distillation moves >= 70% of the DP's samples to the better mode within 300 updates (fixed
seed), its critic keeps PA-RL's defaults, and its online switches (critics_online, distill,
reset_critic_optim_online) do what they say and leave run ids alone at their defaults.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.parse import parse_section
from methods.base import ActorState
from methods.common.section import ConfigError
from tests.helpers import bimodal_buffer, toy_method, trained_on_bimodal


def share_good(m, probe: torch.Tensor) -> float:
    with torch.no_grad():
        a = m.dp.ema.module.sample(probe, generator=torch.Generator().manual_seed(3))[:, 0, 0]
    return float((a > 0.3).float().mean())


# ---- PA-RL -------------------------------------------------------------------------------------------------
def test_action_optimisation_climbs_q_inside_the_box():
    from methods.parl.action_opt import ascend, choose, rerank

    def q_fn(s, a):  # best at a = 0.9 for every executed action
        return -((a - 0.9) ** 2).sum((1, 2))

    s = torch.zeros(3, 2)
    cands = torch.linspace(-1, 1, 8)[None, :, None, None].expand(3, 8, 4, 1).clone()
    kept = rerank(q_fn, s, cands, keep=3, executed=2)
    assert kept[:, -1, 0, 0].tolist() == pytest.approx([1.0] * 3)  # best last
    assert (kept[:, :, 0, 0] > 0.4).all()
    opt, q = ascend(q_fn, s, kept, steps=20, step_size=0.2, executed=2)
    assert (opt.abs() <= 1).all()
    assert (q >= q_fn(s.repeat_interleave(3, 0), kept[:, :, :2].reshape(9, 2, 1)).view(3, 3) - 1e-6).all()
    assert torch.allclose(opt[:, :, :2], torch.full_like(opt[:, :, :2], 0.9), atol=0.02)
    torch.testing.assert_close(opt[:, :, 2:], kept[:, :, 2:])  # the chunk's tail is not executed: untouched
    assert choose(opt, q, argmax=True).shape == (3, 4, 1)


def test_action_step_moves_actions_whatever_q_s_scale():
    """Issue 25 C3: PA-RL's step, 3e-4 times the raw gradient, barely moves an action on a Q of order 10
    (parl/q_gain 0.005-0.011 on Hopper). The default step is in action units: each step moves every candidate by
    action_step RMS per executed element along the gradient. Q here is -10 mean((a - 0.5)^2) over the executed
    actions, the DP's proposals and the data sit at -0.5 (Q = -10): 5 steps of 0.05 in action units bring them to
    -0.25 (Q = -5.6), PA-RL's raw step to about -0.485 (Q = -9.7)."""
    def q_fn(s, a):
        return -10.0 * ((a - 0.5) ** 2).mean((1, 2))

    gains = {}
    for units in ("action", "q"):
        m = toy_method("parl", {"opt_steps": 5, "keep": 2, "samples": 4, **({"step_units": units} if units == "action" else {})})
        m.q_mean = q_fn
        m.proposals = lambda s, n, generator, sampler: torch.full((len(s), n, 4, 1), -0.5)
        s, data = torch.zeros(8, 3), torch.full((8, 4, 1), -0.5)
        target, stats = m.distill_targets(s, data)
        gains[units] = stats["parl/q_gain"]
        if units == "action":
            assert stats["parl/q_gain"] == pytest.approx(10 - 10 * 0.75 ** 2, rel=1e-4)
            torch.testing.assert_close(target[:, :2], torch.full((8, 2, 1), -0.25))
            assert stats["parl/action_move"] == pytest.approx(0.25)  # per executed element
            assert stats["parl/data_chosen"] == 0.0 and 0.0 <= stats["parl/data_won"] <= 1.0  # the data moved too
            assert m.cfg.action_step == 0.05  # its default size
        else:  # PA-RL's own step, the default: gradient 10 at -0.5, 3e-4 per step
            assert m.cfg.step_units == "q"  # until an action step is chosen on seeds 10-12 (config.py)
            assert stats["parl/action_move"] == pytest.approx(5 * 3e-4 * 10, rel=0.05)  # 0.015
    assert gains["action"] > 10 * gains["q"]


@pytest.mark.slow
def test_parl_distillation_moves_the_dp_to_the_better_mode():
    """The critic learned on the bimodal data prefers +0.6; PA-RL's distillation moves >= 70% of the DP's samples
    there within 300 updates (fixed seed)."""
    m = trained_on_bimodal("parl", {"samples": 8, "keep": 4, "opt_steps": 2, "step_units": "q", "step_size": 1e-2,
                                    "batch_size": 64,
                                    "critic.target_tau": 0.05, "critic.lr": 3e-3, "distill_lr": 1e-3,
                                    "distill_warmup": 0}, critic_steps=300)
    probe = torch.as_tensor(np.random.default_rng(2).normal(size=(256, 3)).astype(np.float32))
    start = share_good(m, probe)
    assert 0.2 < start < 0.8
    for _ in range(300):
        m._distill_step()
    assert share_good(m, probe) >= 0.7, (start, share_good(m, probe))


def test_parl_critic_keeps_pa_rls_defaults_when_one_key_is_set():
    from methods.parl.config import ParlConfig

    cfg = parse_section(ParlConfig, {"critic": {"hidden": [64, 64]}}, "parl.")
    assert cfg.critic.hidden == [64, 64] and cfg.critic.expectile == 0.7 and cfg.critic.target_tau == 0.002
    assert not cfg.critic.v_residual and cfg.critic.layer_norm and cfg.critic.activation == "silu"


def test_parl_rerank_actor_acts_in_the_box_and_keep_cannot_exceed_samples():
    m = toy_method("parl")
    out, _ = m.act(np.zeros((2, 3), np.float32), "rerank", ActorState.create(0), True)
    assert out.shape == (2, 2, 1) and np.all(np.abs(out) <= 1)
    with pytest.raises(ConfigError, match="parl.keep"):
        toy_method("parl", {"keep": 40})


def parl_switched(overrides: dict):
    """PA-RL (test preset) on the bimodal data with 40 online transitions, after 20 offline critic steps and the
    switch to fine-tuning (fixed seed)."""
    torch.manual_seed(0)
    m = toy_method("parl", {"update_after": 0, **overrides})
    buf = bimodal_buffer(m)
    rng = np.random.default_rng(5)
    for i in range(40):
        buf.add({"obs": rng.normal(size=3).astype(np.float32), "action": np.array([0.6], np.float32),
                 "reward": 1.0, "next_obs": rng.normal(size=3).astype(np.float32), "terminal": False,
                 "timeout": i % 4 == 3})
    m.dp.reset_to_ema()  # as the harness's common-start load does
    for _ in range(20):
        m.pretrain(buf)
    assert m.update(buf, 0) == []  # the switch to fine-tuning; no update is due at env step 0
    return m


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("critics_online", [True, False])
def test_parl_critics_online_false_leaves_every_critic_weight_unchanged_online(critics_online):
    m = parl_switched({"critics_online": critics_online})
    critics, dp = snapshot(m.critics), snapshot(m.dp.policy)
    logged = [x for k in range(1, 6) for x in m.update(m.buffer, k * m.cfg.update_every)]
    assert len(logged) == 5
    assert same(snapshot(m.critics), critics) is not critics_online  # V, Q and the target Q
    assert not same(snapshot(m.dp.policy), dp)  # distillation runs in both
    assert all(("loss/critic_q" in x) is critics_online for x in logged)


@pytest.mark.parametrize("distill", [True, False])
def test_parl_distill_false_leaves_the_dp_unchanged_and_still_logs_the_targets(distill):
    m = parl_switched({"distill": distill})
    policy, ema, critics = snapshot(m.dp.policy), snapshot(m.dp.ema.module), snapshot(m.critics)
    logged = [x for k in range(1, 6) for x in m.update(m.buffer, k * m.cfg.update_every)]
    assert len(logged) == 5
    assert same(snapshot(m.dp.policy), policy) is not distill
    assert same(snapshot(m.dp.ema.module), ema) is not distill
    assert not same(snapshot(m.critics), critics)  # the critics learn in both
    assert all(("loss/dp_distill" in x) is distill for x in logged)
    assert all("parl/q_gain" in x and "parl/data_chosen" in x for x in logged)
    assert m.distill_steps == (5 if distill else 0)


@pytest.mark.parametrize("reset", [True, False])
def test_parl_reset_critic_optim_online_false_keeps_the_critics_moments(reset):
    m = parl_switched({"reset_critic_optim_online": reset})
    states = [opt.state for opt in m.critics.optimizers().values()]
    assert all((len(st) == 0) is reset for st in states)


def test_parl_switches_are_id_neutral_at_their_defaults():
    from bench.config.layers import resolve_config

    # the variant label is set, so that it is not derived from the overrides (which would name the keys)
    over = {"preset": "demo", "variant": "v"}
    base = resolve_config("parl", "hopper-medium", 10, over)
    at_default = resolve_config("parl", "hopper-medium", 10, {**over, "parl.critics_online": True,
                                                              "parl.distill": True,
                                                              "parl.reset_critic_optim_online": True})
    assert at_default.run_id == base.run_id
    for key in ("critics_online", "distill", "reset_critic_optim_online"):
        off = resolve_config("parl", "hopper-medium", 10, {**over, f"parl.{key}": False})
        assert off.run_id != base.run_id, key
