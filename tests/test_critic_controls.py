"""IDQL and PA-RL, the two critic-based controls for MODIP on the shared DP, and the critic pieces they share.

- decision transitions (a chunk critic's data) sum the chunk's rewards and stop at its episode's end;
- the expectile loss weighs the two signs as IQL and DPPO do; IQL's update order and targets;
- IDQL's selection: on a bimodal toy DP whose learned critic prefers one mode, the selected actions come from it;
  in training it explores by the sign of the advantage;
- PA-RL's action optimisation climbs Q inside the box, and its distillation moves >= 70% of the DP's samples to
  the better mode within 300 updates (fixed seed);
- through the runner: both leave the right rows, and their plain-DP actor equals bc_dp at env step 0.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.parse import parse_section
from methods.base import ActorState, MethodContext, TaskSpaces
from methods.common.critics import QEnsemble, expectile_loss
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.common.section import ConfigError
from methods.registry import get_method_class


def build(method: str, overrides: dict | None = None, obs_dim: int = 3, act_steps: int = 2, seed: int = 0):
    cls = get_method_class(method)
    section = dict(cls.presets["test"][method])
    for key, value in (overrides or {}).items():
        node = section
        parts = key.split(".")
        for p in parts[:-1]:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[parts[-1]] = value
    cfg = parse_section(cls.Config, section, f"{method}.")
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=1, act_low=np.array([-1.0]), act_high=np.array([1.0]),
                        max_episode_steps=200, gamma=0.9, chunk=4)
    normalizer = Normalizer(np.zeros(obs_dim), np.ones(obs_dim), spaces.act_low, spaces.act_high)
    dp_cfg = DPConfig(hidden=[32, 32], denoising_steps=10, act_steps=act_steps)
    return cls(cfg, MethodContext(spaces=spaces, normalizer=normalizer, dp_cfg=dp_cfg, seed=seed))


def bimodal_buffer(m, n: int = 2000, seed: int = 0) -> ReplayBuffer:
    """Offline data with two modes (a = -0.6 and +0.6), one per 4-step episode, rewarded 1 per step at +0.6."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    acts = np.repeat(np.where(rng.random((n // 4, 1)) < 0.5, -0.6, 0.6), 4, 0).astype(np.float32)
    ends = np.zeros(n, bool)
    ends[3::4] = True
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=seed, capacity=n + 512)
    buf.add_offline(obs, acts, (acts[:, 0] > 0).astype(np.float32), np.roll(obs, -1, 0), np.zeros(n, bool), ends)
    m.attach_buffer(buf)
    return buf


def trained_on_bimodal(method: str, overrides: dict, critic_steps: int):
    """`method` on the bimodal data: a BC-trained bimodal DP (600 steps), `critic_steps` offline critic steps, then
    the switch to fine-tuning (fixed seed)."""
    torch.manual_seed(0)
    m = build(method, overrides)
    bimodal_buffer(m)
    for _ in range(600):
        m.bc_step(64)
    for _ in range(critic_steps):
        m.pretrain_step()
    m.end_pretrain()
    return m


def share_good(m, probe: torch.Tensor) -> float:
    with torch.no_grad():
        a = m.dp.ema.module.sample(probe, generator=torch.Generator().manual_seed(3))[:, 0, 0]
    return float((a > 0.3).float().mean())


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


def test_decision_transitions_sum_the_chunk_and_stop_at_the_episode_end():
    buf = ReplayBuffer(1, 1, seed=0)
    r = np.arange(1, 7, dtype=np.float32)  # one 6-step episode ending in a terminal, then a 2-step one
    obs = np.arange(8, dtype=np.float32)[:, None]
    term = np.zeros(8, bool)
    term[5] = True
    tout = np.zeros(8, bool)
    tout[7] = True
    buf.add_offline(obs, obs * 10, np.concatenate([r, [100, 200]]).astype(np.float32), obs + 0.5, term, tout)
    d = buf.sample_decisions(4, 3, idx=np.array([0, 4, 5, 6]))
    assert d["reward"].tolist() == [1 + 2 + 3, 5 + 6, 6, 100 + 200]
    assert d["steps"].tolist() == [3, 2, 1, 2]
    assert d["next_obs"][:, 0].tolist() == [2.5, 5.5, 5.5, 7.5]
    assert d["terminal"].tolist() == [False, True, True, False]
    assert d["action_chunk"][1, :, 0].tolist() == [40, 50, 50]  # padded with the episode's last action
    g = buf.sample_decisions(1, 3, idx=np.array([0]), step_gamma=0.5)
    assert float(g["reward"][0]) == pytest.approx(1 + 0.5 * 2 + 0.25 * 3)


def test_iql_update_fits_v_to_an_expectile_of_the_target_q():
    m = build("idql", {"critic.target_tau": 1.0, "critic.lr": 1e-2})
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


# ---- IDQL --------------------------------------------------------------------------------------------------
def test_idql_selects_the_mode_its_critic_prefers_and_explores_by_advantage():
    m = trained_on_bimodal("idql", {"samples": 16, "critic.target_tau": 0.05, "critic.lr": 3e-3, "batch_size": 128,
                                    "reward_scale": 1.0}, critic_steps=400)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(200, 3)).astype(np.float32)
    dp = m.act(obs, "dp", ActorState.create(0), True)[:, 0, 0]
    sel = m.act(obs, "resample", ActorState.create(0), True)[:, 0, 0]
    assert 0.2 < float((dp > 0.3).mean()) < 0.8  # the DP alone samples both modes
    assert float((sel > 0.3).mean()) >= 0.9, float((sel > 0.3).mean())
    # training: expectile exploration keeps some of the other mode (weights 0.7 / 0.3 by the advantage's sign)
    explore = m.act(obs, "resample", ActorState.create(0), False)[:, 0, 0]
    assert float((sel > 0.3).mean()) > float((explore > 0.3).mean()) > float((dp > 0.3).mean())


def test_idql_update_rate_is_replay_ratio_per_decision_not_updates_per_step():
    m = build("idql", {"batch_size": 1000, "replay_ratio": 128, "update_after": 10})
    assert m.update_rate() == pytest.approx(128 / (1000 * 2))
    due = [m.updates_due(t) for t in range(1, 10011)]
    assert sum(due[:10]) == 0 and sum(due) == pytest.approx(0.064 * 10000, abs=1)


def test_idql_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="idql.exploration_tau"):
        build("idql", {"exploration_tau": 1.0})
    with pytest.raises(ConfigError, match="idql.critic.expectile"):
        build("idql", {"critic.expectile": 0.2})


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


def test_parl_distillation_moves_the_dp_to_the_better_mode():
    """The critic learned on the bimodal data prefers +0.6; PA-RL's distillation moves >= 70% of the DP's samples
    there within 300 updates (fixed seed)."""
    m = trained_on_bimodal("parl", {"samples": 8, "keep": 4, "opt_steps": 2, "step_size": 1e-2, "batch_size": 64,
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
    m = build("parl")
    out = m.act(np.zeros((2, 3), np.float32), "rerank", ActorState.create(0), True)
    assert out.shape == (2, 2, 1) and np.all(np.abs(out) <= 1)
    with pytest.raises(ConfigError, match="parl.keep"):
        build("parl", {"keep": 40})


def parl_switched(overrides: dict):
    """PA-RL (test preset) on the bimodal data with 40 online transitions, after 20 offline critic steps and the
    switch to fine-tuning (fixed seed)."""
    torch.manual_seed(0)
    m = build("parl", {"update_after": 0, **overrides})
    buf = bimodal_buffer(m)
    rng = np.random.default_rng(5)
    for i in range(40):
        buf.add({"obs": rng.normal(size=3).astype(np.float32), "action": np.array([0.6], np.float32),
                 "reward": 1.0, "next_obs": rng.normal(size=3).astype(np.float32), "terminal": False,
                 "timeout": i % 4 == 3})
    for _ in range(20):
        m.pretrain_step()
    m.end_pretrain()
    return m


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("critics_online", [True, False])
def test_parl_critics_online_false_leaves_every_critic_weight_unchanged_online(critics_online):
    m = parl_switched({"critics_online": critics_online})
    critics, dp = snapshot(m.critics), snapshot(m.dp.policy)
    logged = [m.finetune_step() for _ in range(5)]
    assert same(snapshot(m.critics), critics) is not critics_online  # V, Q and the target Q
    assert not same(snapshot(m.dp.policy), dp)  # distillation runs in both
    assert all(("loss/critic_q" in x) is critics_online for x in logged)


@pytest.mark.parametrize("distill", [True, False])
def test_parl_distill_false_leaves_the_dp_unchanged_and_still_logs_the_targets(distill):
    m = parl_switched({"distill": distill})
    policy, ema, critics = snapshot(m.dp.policy), snapshot(m.dp.ema.module), snapshot(m.critics)
    logged = [m.finetune_step() for _ in range(5)]
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


# ---- through the runner -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["idql", "parl"])
def test_plain_dp_actor_equals_bc_dp_at_step_0_and_rows_land(method, demo_dataset, store_root):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store
    from tests.conftest import tiny

    cfg = resolve_config(method, "demo", 2, {**tiny(method), "preset": "test"})
    rid = run_one(cfg, store_root=store_root, sweep_id="c", progress=False)
    bc = resolve_config("bc_dp", "demo", 2, tiny("bc_dp"))
    rid_bc = run_one(bc, store_root=store_root, sweep_id="c", progress=False)
    store = Store(store_root)
    runs = store.runs(sweep="c").set_index("run_id")
    assert runs.loc[rid, "status"] == "finished"
    c = store.curves(sweep="c")
    score = c[(c.metric == "normalized_score") & (c.env_step == 0)]
    plain = score[(score.run_id == rid) & (score.actor == "dp")].value
    assert len(plain) == 1 and float(plain.iloc[0]) == float(score[score.run_id == rid_bc].value.iloc[0])
    mine = c[c.run_id == rid]
    headline = {"idql": "resample", "parl": "rerank"}[method]
    assert len(mine[(mine.metric == "normalized_score") & (mine.actor == headline) & (mine.env_step == 0)]) == 1
    critic = mine[mine.metric == "loss/critic_q"]
    assert len(critic) > 0 and np.isfinite(critic.value).all()
    dp_loss = mine[mine.metric == {"idql": "loss/dp_bc", "parl": "loss/dp_distill"}[method]]
    assert len(dp_loss) > 0 and (dp_loss.phase == "finetune").all()
