"""MODIP: the planner on known toys, the critics and world model on data, distillation, and tiny runs.

Why: MODIP's claims are only testable if each piece does what the paper says. The toys have known dynamics,
rewards and values, so the planner's choice can be checked exactly; the data tests use the tiny demo dataset
made by the `demo_dataset` fixture; the end-to-end tests run the real runner with tiny budgets.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import methods.modip
from bench.config.parse import parse_section
from methods.base import ActorState, MethodContext, TaskSpaces
from methods.common.diffusion import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.common.section import ConfigError
from methods.modip.diagnostics import spearman
from methods.modip.planner import PlanModels, PlannerConfig, plan
from methods.registry import get_method_class
from tests.helpers import dp_context

GAMMA = 0.99


# ---- toys: a 1-D point x' = x + 0.5 a, a in [-1, 1] ---------------------------------------------------------
def point_models(reward, value, terminal=None):
    def step(s, a):
        s2 = s + 0.5 * a
        r = reward(s2)
        d = terminal(s2) if terminal is not None else torch.zeros_like(r)
        return s2, r, d, torch.zeros_like(r)

    return PlanModels(step=step, value=lambda s: value(s), q=None, policy=None)


def toy_plan(models, x0: float, terminal: str = "v", **over) -> torch.Tensor:
    # temperature multiplies score differences (TD-MPC2's convention); the toys' scores are O(0.1-10).
    over = {"temperature": 20.0, **over}
    cfg = PlannerConfig(terminal=terminal, horizon=5, samples=256, elites=32, iterations=6, pi_trajectories=0,
                        **over)
    g = torch.Generator().manual_seed(0)
    res = plan(models, torch.tensor([[x0]]), None, g, cfg, GAMMA, act_dim=1)
    return res.mean[0, :, 0]


def test_planner_picks_the_right_action_on_a_point_with_known_value():
    # reward and value both peak at x = 0.5: from the left move right, from the right move left.
    target = 0.5
    models = point_models(reward=lambda s: -(s[:, 0] - target) ** 2,
                          value=lambda s: -(s[:, 0] - target) ** 2 / (1 - GAMMA))
    assert toy_plan(models, 0.0)[0] > 0.5  # optimum: a = 1 (x → 0.5 in one step)
    assert toy_plan(models, 1.0)[0] < -0.5
    positions = 0.25 + torch.cumsum(0.5 * toy_plan(models, 0.25), 0)  # x → 0.5 with a = 0.5, then stay
    assert (positions - target).abs().max() < 0.1


def test_terminal_value_steers_the_plan():
    # reward mildly prefers the left, V strongly prefers the right: `none` goes left, `v` goes right.
    models = point_models(reward=lambda s: -0.1 * s[:, 0], value=lambda s: 100.0 * s[:, 0])
    a_none = toy_plan(models, 0.0, terminal="none")
    a_v = toy_plan(models, 0.0, terminal="v")
    assert a_none.mean() < -0.5 and a_v.mean() > 0.5


def test_planner_does_not_plan_through_a_terminal():
    # alive reward 1 per step; a cliff at x > 0.6 terminates; a bonus of 10 per step lies past it (x > 1.2).
    def reward(s):
        return 1.0 + 10.0 * (s[:, 0] > 1.2).float()

    def cliff(s):
        return (s[:, 0] > 0.6).float()

    def zero_value(s):
        return 0.0 * s[:, 0]

    positions = torch.cumsum(0.5 * toy_plan(point_models(reward, zero_value, terminal=cliff), 0.0), 0)
    assert positions.max() <= 0.6
    # The same toy without termination goes for the bonus, so the check above can fail.
    unmasked = torch.cumsum(0.5 * toy_plan(point_models(reward, zero_value), 0.0), 0)
    assert unmasked.max() > 1.2


# ---- the real method, built without the runner --------------------------------------------------------------
def build(overrides: dict | None = None, obs_dim: int = 3, seed: int = 0, normalizer=None, preset: str = "test",
          terminal_fn=None):
    cls = get_method_class("modip")
    section = dict(cls.Config.presets[preset]["modip"]) if preset else {}
    for key, value in (overrides or {}).items():
        node = section
        parts = key.split(".")
        for p in parts[:-1]:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[parts[-1]] = value
    cfg = parse_section(cls.Config, section, "modip.")
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=1, act_low=np.array([-1.0]), act_high=np.array([1.0]),
                        max_episode_steps=200, gamma=GAMMA, chunk=4, terminal_fn=terminal_fn)
    normalizer = normalizer or Normalizer(np.zeros(obs_dim), np.ones(obs_dim), spaces.act_low, spaces.act_high)
    dp_cfg = DPConfig(hidden=[32, 32], denoising_steps=10)
    return cls(cfg, MethodContext(spaces=spaces, normalizer=normalizer, dp_cfg=dp_cfg, seed=seed))


def denoiser_calls_per_plan(terminal: str) -> int:
    m = build({"planner.terminal": terminal})
    calls_before = m.dp.ema.module.denoiser_calls
    m.act(np.zeros((2, 3), np.float32), "mpc", ActorState.create(0), True)
    return m.dp.ema.module.denoiser_calls - calls_before


def test_terminal_q_calls_the_dp_and_v_does_not():
    m = build()
    steps, iters = m.dp_cfg.denoising_steps, m.cfg.planner.iterations
    proposals = -(-m.cfg.planner.horizon // m.chunk) * steps  # DP chains of the proposal rollouts
    n_none, n_v, n_q = (denoiser_calls_per_plan(t) for t in ("none", "v", "q"))
    assert n_none == proposals
    assert n_v == n_none  # V adds no denoiser call
    assert n_q == n_none + steps * iters  # q adds one full chain per iteration (batched over samples)


def test_cached_proposal_rollouts_score_like_a_fresh_rollout():
    """The plan rolls the DP proposals out once and reuses (Σ r, m_H, ŝ_H) in every iteration; the scores must
    equal those of rolling every candidate out afresh (the planning world model is deterministic)."""
    from methods.modip.planner import rollout, score_sequences

    m = build()
    models = m.plan_models(True)
    g = torch.Generator().manual_seed(0)
    b, n, p, h = 2, 12, 4, m.cfg.planner.horizon
    s0 = torch.randn(b, 3, generator=g)
    s = s0.unsqueeze(1).expand(b, n, 3)
    actions = torch.rand(b, n, h, 1, generator=g) * 2 - 1
    fresh = score_sequences(models, s, actions, m.cfg.planner, GAMMA, g)
    r, alive, s_h = rollout(models, s[:, :p].reshape(b * p, 3), actions[:, :p].reshape(b * p, h, 1), GAMMA)
    cached = score_sequences(models, s, actions, m.cfg.planner, GAMMA, g,
                             (r.view(b, p), alive.view(b, p), s_h.view(b, p, 3)))
    torch.testing.assert_close(cached, fresh, rtol=1e-5, atol=1e-5)
    # a wrong cache changes the scores of exactly its candidates, so the comparison above can fail
    wrong = score_sequences(models, s, actions, m.cfg.planner, GAMMA, g,
                            (r.view(b, p) + 1.0, alive.view(b, p), s_h.view(b, p, 3)))
    assert ((wrong - fresh)[:, :p] > 0.5).all() and torch.allclose(wrong[:, p:], fresh[:, p:], atol=1e-5)


def test_plan_has_no_host_syncs():
    """No `.item()`/`bool(tensor)` inside the plan (each is one aten::_local_scalar_dense), so it can be graphed."""
    from torch.profiler import ProfilerActivity, profile

    m = build({"planner.terminal": "q"})
    models = m.plan_models(True)
    s = torch.zeros(2, 3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        plan(models, s, None, torch.Generator().manual_seed(0), m.cfg.planner, GAMMA, 1)
    names = [e.name for e in prof.events()]
    assert "aten::_local_scalar_dense" not in names and "aten::item" not in names


def test_mpc_actor_chunks_planned_actions_and_warm_start():
    m = build({"planner.replan_every": 2})
    st = ActorState.create(0)
    chunk, extras = m.act(np.zeros((3, 3), np.float32), None, st, False)  # training: the planner
    assert chunk.shape == (3, 2, 1)
    # one noise-free planned action per executed step, and the plan's reward per decision: the shapes say which
    assert extras["plan_action"].shape == (3, 2, 1) and extras["plan_reward"].shape == (3,)
    assert m.buffer_extras() == {"plan_action": (1,), "plan_reward": ()}
    # exploration noise is on the executed actions, never on the planned ones (the labels)
    noise = chunk - m.normalizer.unnorm_act(torch.as_tensor(extras["plan_action"])).numpy()
    assert 0.02 < np.abs(noise).mean() < 0.3
    assert np.abs(extras["plan_action"]).max() <= 1.0
    assert st.memory["mean"].shape == (3, m.cfg.planner.horizon, 1)
    assert torch.all(st.memory["mean"][:, -2:] == 0)  # shifted by the executed length, zero-padded
    # a resumed ActorState holds plain lists; the planner accepts them
    st.memory["mean"] = st.memory["mean"].tolist()
    m.act(np.zeros((3, 3), np.float32), "mpc", st, True)
    # in eval mode the executed actions are the plan's noise-free first steps
    st2 = ActorState.create(1)
    out, extras = m.act(np.zeros((1, 3), np.float32), "mpc", st2, True)
    np.testing.assert_allclose(out[0], extras["plan_action"][0], atol=1e-6)
    # the ceiling actor executes the DP's whole chunk of each plan, open-loop
    st3 = ActorState.create(2)
    assert m.act(np.zeros((2, 3), np.float32), "mpc_chunk", st3, True)[0].shape == (2, m.chunk, 1)
    assert torch.all(torch.as_tensor(st3.memory["mean"])[:, -m.chunk:] == 0)


def scaled_point_models(scale: float = 900.0, target: float = 0.5):
    """The point toy in return units like the demo's (value scale ~900): reward and value peak at x = target."""
    return point_models(reward=lambda s: -scale * (s[:, 0] - target) ** 2,
                        value=lambda s: -scale * (s[:, 0] - target) ** 2 / (1 - GAMMA))


def test_elite_weights_are_unit_free_and_not_an_argmax():
    """Issue 15, defect 2: on the toy at the planner's default settings (in the demo's return units), the ESS of
    the elite weights is at least elites / 4, and the first action is no further from the optimum than with
    TD-MPC2's raw exp(temperature · Δscore) weights (score_norm none, temperature 0.5), which are near one-hot."""
    models = scaled_point_models()
    x0 = torch.tensor([[0.0], [1.0], [0.25], [-0.5]])
    optimum = torch.tensor([1.0, -1.0, 0.5, 1.0])

    def run(**over):
        cfg = PlannerConfig(pi_trajectories=0, **over)
        errs, ess = [], []
        for seed in range(30):
            res = plan(models, x0, None, torch.Generator().manual_seed(seed), cfg, GAMMA, act_dim=1)
            errs.append(float((res.mean[:, 0, 0] - optimum).abs().mean()))
            ess.append(float(res.ess.mean()))
        return np.mean(errs), np.mean(ess), cfg.elites

    err_new, ess_new, elites = run()
    err_old, ess_old, _ = run(score_norm="none", temperature=0.5)
    assert ess_old < 4  # the defect: near one-hot weights in return units
    assert ess_new >= elites / 4, ess_new
    assert err_new <= err_old, (err_new, err_old)
    # unit-free: the same plan whatever the reward scale
    small = plan(scaled_point_models(1.0), x0, None, torch.Generator().manual_seed(0), PlannerConfig(pi_trajectories=0),
                 GAMMA, act_dim=1)
    big = plan(models, x0, None, torch.Generator().manual_seed(0), PlannerConfig(pi_trajectories=0), GAMMA, act_dim=1)
    torch.testing.assert_close(small.mean, big.mean, rtol=1e-4, atol=1e-4)


def test_plan_reports_whether_a_dp_proposal_won():
    m = build()
    models = m.plan_models(True)
    res = plan(models, torch.zeros(4, 3), None, torch.Generator().manual_seed(0), m.cfg.planner, GAMMA, 1)
    assert res.dp_won.shape == (4,) and set(res.dp_won.tolist()) <= {0.0, 1.0}
    assert ((res.ess >= 1.0 - 1e-5) & (res.ess <= m.cfg.planner.elites + 1e-4)).all()
    # on the point toy, a DP that proposes the optimum (a = +1 toward a far target) wins every plan, and one that
    # proposes the opposite wins none
    toy = scaled_point_models(target=3.0)
    cfg = PlannerConfig(pi_trajectories=4, samples=64, elites=8, iterations=2)
    for proposal, won in ((1.0, 1.0), (-1.0, 0.0)):
        toy.policy = lambda s, generator, a=proposal: torch.full((len(s), 4, 1), a)
        res = plan(toy, torch.zeros(3, 1), None, torch.Generator().manual_seed(0), cfg, GAMMA, 1)
        assert res.dp_won.tolist() == [won] * 3, (proposal, res.dp_won)


# ---- critics and world model on the demo dataset ------------------------------------------------------------
def demo_split(demo_dataset, holdout: float = 0.25):
    from bench.data.loaders import load_dataset
    from bench.tasks.demo import DEMO_DATASET

    d = load_dataset(DEMO_DATASET)
    ends = np.flatnonzero(d.terminals | d.timeouts)
    cut = int(ends[int(len(ends) * (1 - holdout)) - 1]) + 1  # the last episodes are held out
    return d, cut


def method_on_demo(demo_dataset, overrides=None, seed=0):
    d, cut = demo_split(demo_dataset)
    obs_dim = d.observations.shape[1]
    norm = Normalizer.fit(d.observations[:cut], np.array([-1.0]), np.array([1.0]))
    m = build(overrides, obs_dim=obs_dim, seed=seed, normalizer=norm)
    buf = ReplayBuffer(obs_dim, 1, extras=m.buffer_extras(), seed=seed, capacity=cut + 4096)
    buf.add_offline(d.observations[:cut], d.actions[:cut], d.rewards[:cut], d.next_observations[:cut],
                    d.terminals[:cut], d.timeouts[:cut])
    m.attach_buffer(buf)
    m._fit_offline()  # the offline statistics, as the method's first verb takes them
    return m, d, cut


@pytest.mark.parametrize("target", ["indep", "policy"])
def test_v_and_q_losses_fall(demo_dataset, target):
    torch.manual_seed(0)
    m, _, _ = method_on_demo(demo_dataset, {"critic.target": target, "critic.batch_size": 64})
    v, q = [], []
    for _ in range(150):
        out = m._critic_step("offline")
        v.append(out["loss/v"])
        q.append(out["loss/q"])
    assert np.mean(v[-20:]) < 0.5 * np.mean(v[:10])
    assert np.mean(q[-20:]) < 0.5 * np.mean(q[:10])


def test_world_model_learns(demo_dataset):
    torch.manual_seed(0)
    m, _, _ = method_on_demo(demo_dataset)
    before = m._wm_diagnostics("offline")
    for _ in range(200):
        m._wm_step("offline")
    after = m._wm_diagnostics("offline")
    # errors are in units of the data's Δs variance: 1.0 = no better than predicting the mean change
    assert after["wm/one_step_obs_nmse"] < 0.5 * min(before["wm/one_step_obs_nmse"], 1.0)
    assert after["wm/one_step_reward_nmse"] < 0.5 * min(before["wm/one_step_reward_nmse"], 1.0)
    assert np.isfinite(after["wm/h4_obs_nmse"])  # open-loop error: reported in the curves, noisy on tiny data


def test_v_ranks_held_out_states_like_monte_carlo_returns(demo_dataset):
    """Spearman(V(s), discounted MC return) >= 0.5 on states of held-out terminated episodes."""
    torch.manual_seed(0)
    m, d, cut = method_on_demo(demo_dataset, {"critic.hidden": [64, 64], "critic.batch_size": 128,
                                              "critic.target_tau": 0.02})
    for _ in range(600):
        m._critic_step("offline")
    obs, rets = [], []
    ends = np.flatnonzero(d.terminals | d.timeouts)
    start = cut
    for end in ends[ends >= cut]:
        if d.terminals[end]:  # an exact MC return: no truncation at a timeout
            g = 0.0
            ep_rets = []
            for r in d.rewards[start: end + 1][::-1]:
                g = float(r) + GAMMA * g
                ep_rets.append(g)
            rets.extend(ep_rets[::-1])
            obs.append(d.observations[start: end + 1])
        start = end + 1
    assert len(rets) > 50
    with torch.no_grad():
        v = m.critics.value(m.normalizer.norm_obs(torch.as_tensor(np.concatenate(obs)))).numpy()
    rho = spearman(v, np.asarray(rets))
    assert rho >= 0.5, rho


def add_online(buf, obs, plan_actions, rewards=None, end_last: bool = True):
    """Online transitions as the runner stores them: one noise-free planned action per step."""
    for i in range(len(obs)):
        buf.add({"obs": obs[i], "action": plan_actions[i], "reward": 0.0 if rewards is None else rewards[i],
                 "next_obs": obs[min(i + 1, len(obs) - 1)], "terminal": False,
                 "timeout": end_last and i == len(obs) - 1, "plan_action": plan_actions[i], "plan_reward": 0.0})


def test_distillation_moves_the_dp_toward_planned_labels(demo_dataset):
    torch.manual_seed(0)
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "label_ramp": 0, "distill_batch": 64,
                                              "label_weighting": "none"})
    for _ in range(100):  # a world model and critics worth planning with
        m._wm_step("offline")
        m._critic_step("offline")
    # plan along a held-out episode and store each step's planned action, as the runner does
    states = d.observations[cut: cut + 64]
    st = ActorState.create(0)
    _, extras = m.act(states, "mpc", st, True)
    planned = extras["plan_action"][:, 0]  # (64, 1)
    add_online(m.buffer, states, planned)
    # the chunk sampler's labels: the planned actions from each state on
    idx = np.arange(m.buffer.n_offline, m.buffer.n_offline + len(states))
    chunks = m.buffer.sample_chunks(len(idx), m.chunk, idx=idx, field="plan_action")
    cond = m.normalizer.norm_obs(chunks["obs"])
    x0 = chunks["action_chunk"]

    def label_loss():
        with torch.no_grad():
            return float(m.dp.ema.module.loss(x0.repeat(8, 1, 1), cond.repeat(8, 1),
                                              generator=torch.Generator().manual_seed(1)))

    def distance():  # the DP's noise-free (DDPM mean path) chunks against the labels
        with torch.no_grad():
            out = m.dp.ema.module.sample(cond, generator=torch.Generator().manual_seed(2), deterministic=True)
        return float((out - x0).abs().mean())

    loss0, dist0 = label_loss(), distance()
    m.distilling = True
    for _ in range(500):
        m._distill()
    assert label_loss() < 0.8 * loss0
    assert distance() < 0.8 * dist0


def test_label_window_keeps_only_recent_labels(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "label_ramp": 0, "label_window": 20})
    # planned actions 0..59: each names its age, so a sampled label's first action tells where it started
    add_online(m.buffer, np.repeat(d.observations[cut: cut + 1], 60, 0), np.arange(60)[:, None] / 100.0)
    ages = torch.round(m.distill_batch(256)["chunk"][:, 0, 0] * 100).long()
    assert int(ages.min()) >= 40 and int(ages.max()) == 59  # only the last 20 env steps' labels
    m.cfg.label_window = 0
    assert int(torch.round(m.distill_batch(256)["chunk"][:, 0, 0] * 100).min()) < 40  # all labels


def test_a_label_is_the_chunk_of_planned_actions_from_its_state(demo_dataset):
    """Each label chunk starts at its state's own planned action and runs on through the episode (the last one
    repeated past the end); a chunk of an episode still running never waits on steps not yet taken."""
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "label_ramp": 0})
    obs = d.observations[cut: cut + 10]
    add_online(m.buffer, obs, np.arange(10)[:, None] / 100.0)  # episode A: 10 steps, ended
    add_online(m.buffer, obs[:6], 0.5 + np.arange(6)[:, None] / 100.0, end_last=False)  # episode B: running
    b = m.label_batch(512)
    first = torch.round(b["chunk"][:, 0, 0] * 100).long()
    idx = b["index"].numpy() - m.buffer.n_offline
    np.testing.assert_allclose(b["obs"].numpy(), m.normalizer.norm_obs(torch.as_tensor(
        m.buffer.sample_chunks(len(idx), 1, idx=b["index"].numpy())["obs"])).numpy(), atol=1e-6)
    for k, i in enumerate(idx):
        c = torch.round(b["chunk"][k, :, 0] * 100).long().tolist()
        if i < 10:  # episode A: i, i+1, ... capped at its last step 9
            assert c == [min(i + j, 9) for j in range(m.chunk)], (i, c)
        else:  # episode B: step i - 10 holds 50 + (i - 10)
            assert c == [50 + i - 10 + j for j in range(m.chunk)], (i, c)
    assert int(first.max()) <= 50 + 6 - m.chunk  # the last Ta - 1 steps of B wait for their chunk


def test_every_world_model_member_gets_the_online_mix(demo_dataset):
    """Issue 15, defect 1: each member's batch holds online transitions at online_ratio, within sampling error
    (a k·n draw viewed as (k, n) gave the first members offline data only and the last online data only)."""
    m, d, cut = method_on_demo(demo_dataset, {"world_model.members": 5, "world_model.batch_size": 200,
                                              "online_ratio": 0.5, "online_ramp": 0})
    obs = d.observations[cut: cut + 300]
    add_online(m.buffer, obs, np.zeros((300, 1)), rewards=np.full(300, 1e3))  # online rewards are marked
    seen = {}

    def capture(s, a, s_next, r, terminal):
        seen["r"] = r
        raise StopIteration

    m.world_model.loss = capture
    with pytest.raises(StopIteration):
        m._wm_step("mixed")
    share = (seen["r"] == 1e3).float().mean(1)  # per member
    assert share.shape == (5,)
    assert torch.all((share - 0.5).abs() < 0.1), share.tolist()


def test_online_share_and_label_share_ramp_with_their_pools(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, {"online_ratio": 0.5, "online_ramp": 100, "label_ratio": 0.8,
                                              "label_ramp": 200})
    assert m.online_ratio_now() == 0.0 and m.label_share() == 0.0
    add_online(m.buffer, d.observations[cut: cut + 50], np.zeros((50, 1)))
    assert m.online_ratio_now() == pytest.approx(0.25) and m.label_share() == pytest.approx(0.2)
    b = m.distill_batch(100)
    assert int(b["is_label"].sum()) == 20
    add_online(m.buffer, d.observations[cut: cut + 250], np.zeros((250, 1)))
    assert m.online_ratio_now() == pytest.approx(0.5) and m.label_share() == pytest.approx(0.8)
    m.distill_start = 250  # once distillation starts, the share ramps with the labels made since
    assert m.label_share() == pytest.approx(0.8 * 50 / 200)


def test_distillation_waits_for_the_start_rule_and_starts_with_fresh_moments(demo_dataset):
    """Issue 15, defect 4: no DP step before the pool holds distill_start_labels labels (with the advantage rule
    off; the planner's last episode beats the data); at the start the DP's Adam moments from BC are dropped."""
    m, d, cut = method_on_demo(demo_dataset, {"distill_start_labels": 40, "distill_start_adv_labels": 0,
                                              "distill_start_episodes": 1, "label_ramp": 0, "online_ramp": 0})
    m.train_returns = [2.0 * m.offline_return]
    for _ in range(3):
        m.dp.bc_step(m.buffer, 32)  # BC leaves Adam moments behind (3 steps)
    m.dp.reset_to_ema()  # as the harness's common-start load does
    assert len(m.dp.optim.state) > 0
    before = [p.detach().clone() for p in m.dp.policy.parameters()]
    add_online(m.buffer, d.observations[cut: cut + 39], np.zeros((39, 1)))
    out = m._finetune()
    assert "loss/dp_distill" not in out and not m.distilling
    assert all(torch.equal(p, q) for p, q in zip(before, m.dp.policy.parameters()))
    add_online(m.buffer, d.observations[cut: cut + 1], np.zeros((1, 1)))
    steps_before = {id(p): int(st["step"]) for p, st in m.dp.optim.state.items()}
    out = m._finetune()
    assert m.distilling and out["distill/started_at"] == 40 and "loss/dp_distill" in out
    assert set(steps_before.values()) == {3}
    assert {int(st["step"]) for st in m.dp.optim.state.values()} == {1}  # fresh moments: one step since


def test_the_advantage_rule_adds_a_positive_advantage_to_the_start(demo_dataset):
    """With the advantage rule on, a planner that beats the data starts distillation only on a positive mean label
    advantage (issue 25 C4: no longer an early start by itself)."""
    m, d, cut = method_on_demo(demo_dataset, {"distill_start_labels": 0, "distill_start_adv_labels": 20,
                                              "distill_start_episodes": 1, "label_ramp": 0})
    m.train_returns = [2.0 * m.offline_return]
    add_online(m.buffer, d.observations[cut: cut + 30], np.zeros((30, 1)))
    m.critics.q_value = lambda s, a: a[:, 0] * -1.0  # prefers low actions; the labels (0) lose to...
    m.dp.ema.module.sample = lambda s, generator=None, sampler=None: torch.full((len(s), m.chunk, 1), -0.5)
    out = m._start_rule()
    assert out["distill/pool_adv"] < 0 and not m.distilling
    m.dp.ema.module.sample = lambda s, generator=None, sampler=None: torch.full((len(s), m.chunk, 1), 0.5)
    out = m._start_rule()
    assert out["distill/pool_adv"] > 0 and m.distilling


def test_the_return_rule_starts_when_the_planner_beats_the_data(demo_dataset):
    """The default start rule: the mean return of the last k training episodes reaches the offline data's mean
    episode return (a training-side signal; no eval score is read)."""
    m, d, cut = method_on_demo(demo_dataset, {"distill_start_labels": 0, "distill_start_episodes": 3})
    ends = np.flatnonzero(d.terminals[:cut] | d.timeouts[:cut])
    starts = np.concatenate([[0], ends[:-1] + 1])
    data_return = float(np.mean([d.rewards[a: b + 1].sum() for a, b in zip(starts, ends)]))
    assert m.offline_return == pytest.approx(data_return, rel=1e-5)
    add_online(m.buffer, d.observations[cut: cut + 10], np.zeros((10, 1)))

    def episode(ret):
        return {"reward": np.full(10, ret / 10, np.float32), "obs": d.observations[cut: cut + 10],
                "next_obs": d.observations[cut + 1: cut + 11], "terminal": np.zeros(10, bool),
                "timeout": np.eye(10, dtype=bool)[-1], "plan_reward": np.zeros(10, np.float32),
                "has_plan_reward": np.zeros(10, bool)}

    for ret in (2 * data_return, 2 * data_return, 0.1 * data_return):  # mean 1.37x the data's level: start
        m._on_episode(episode(ret))
    assert m._start_rule() and m.distilling
    m2, _, _ = method_on_demo(demo_dataset, {"distill_start_labels": 0, "distill_start_episodes": 3})
    add_online(m2.buffer, d.observations[cut: cut + 10], np.zeros((10, 1)))
    for ret in (0.9 * data_return,) * 5:
        m2._on_episode(episode(ret))
    assert m2._start_rule() == {} and not m2.distilling
    m2._on_episode(episode(1.5 * data_return))  # the last 3: 0.9, 0.9, 1.5 -> 1.1x
    assert m2._start_rule() and m2.distilling


def test_a_planner_below_the_data_never_starts_distillation(demo_dataset):
    """Issue 25 C4: on Hopper the label-count fallback started distillation at 1000 env steps while the planner's
    episodes scored ~1-5 normalised. Now no start condition starts it alone: with a full pool (far above
    distill_start_labels) and a positive label advantage, a planner whose training episodes stay below the
    offline data's mean episode return never distils, update after update; it starts once they reach it."""
    m, d, cut = method_on_demo(demo_dataset, {"distill_start_labels": 40, "distill_start_adv_labels": 20,
                                              "distill_start_episodes": 2, "label_ramp": 0, "online_ramp": 0})
    assert np.isfinite(m.offline_return) and m.offline_return > 0  # from the offline buffer the method holds
    add_online(m.buffer, d.observations[cut: cut + 400], np.zeros((400, 1)))
    m.critics.q_value = lambda s, a: a[:, 0]  # planned labels (0) beat the DP's chunks (-0.5): advantage > 0
    m.dp.ema.module.sample = lambda s, generator=None, sampler=None: torch.full((len(s), m.chunk, 1), -0.5)
    below = {"reward": np.full(10, 0.099 * m.offline_return, np.float32), "obs": d.observations[cut: cut + 10],
             "next_obs": d.observations[cut + 1: cut + 11], "terminal": np.zeros(10, bool),
             "timeout": np.eye(10, dtype=bool)[-1], "plan_reward": np.zeros(10, np.float32),
             "has_plan_reward": np.zeros(10, bool)}  # an episode at 0.99 of the data's mean return
    for _ in range(6):
        m._on_episode(below)
        out = m._finetune()
        assert "loss/dp_distill" not in out and "distill/started_at" not in out and not m.distilling
    assert m.label_count() >= 300  # the pool far above distill_start_labels (the demo data's held-out part)
    m._on_episode({**below, "reward": below["reward"] * 1.2})  # the last 2: 0.99 and 1.19 of the data's
    out = m._finetune()
    assert m.distilling and out["distill/pool_adv"] > 0 and "loss/dp_distill" in out


def test_distillation_cannot_be_configured_to_skip_the_planner_gate():
    with pytest.raises(ConfigError, match="distill_start_episodes"):
        build({"distill_start_episodes": 0})
    build({"distill_start_episodes": 0, "distill": False})  # no distillation: nothing to gate


def test_label_weighting_by_advantage():
    """Issue 15, defect 5: filter keeps A > 0 only; AWR is exp(β A / value_scale), clipped at the max weight."""
    m = build({"label_weighting": "filter"})
    adv = torch.tensor([-5.0, 0.0, 2.0])
    assert m.label_weights(adv).tolist() == [0.0, 0.0, 1.0]
    m.cfg.label_weighting = "none"
    assert m.label_weights(adv).tolist() == [1.0, 1.0, 1.0]
    m.cfg.label_weighting = "awr"
    m.critics.value_scale.fill_(10.0)
    w = m.label_weights(torch.tensor([-10.0, 0.0, 1.0, 100.0]))
    torch.testing.assert_close(w, torch.tensor([np.exp(-10.0), 1.0, np.exp(1.0), 100.0], dtype=torch.float32))


def test_filtered_labels_carry_no_weight_in_the_dp_loss(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "label_ramp": 0, "distill_batch": 64})
    add_online(m.buffer, d.observations[cut: cut + 30], np.linspace(-1, 1, 30)[:, None])
    m.critics.q_value = lambda s, a: a[:, 0]  # labels above the DP's action win
    m.dp.ema.module.sample = lambda s, generator=None, sampler=None: torch.zeros(len(s), m.chunk, 1)
    b = m.distill_batch(64)
    assert torch.equal(b["weights"], (b["chunk"][:, 0, 0] > 0).float())


def test_distillation_moves_the_dp_to_the_better_mode():
    """On a toy with two modes in the offline data (a = -0.6 and a = +0.6, half each), labels that say +0.6
    move at least 70% of the DP's samples to that mode within 300 distillation updates (fixed seed)."""
    torch.manual_seed(0)
    m = build({"label_ratio": 0.9, "label_ramp": 0, "distill_batch": 64, "label_weighting": "none"}, obs_dim=3)
    rng = np.random.default_rng(0)
    n = 2000
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    acts = np.where(rng.random((n, 1)) < 0.5, -0.6, 0.6).astype(np.float32)
    ends = np.zeros(n, bool)
    ends[::4] = True  # 4-step episodes with one mode each, so a chunk never mixes modes
    acts = np.repeat(acts[::4], 4, 0)
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=0, capacity=n + 512)
    buf.add_offline(obs, acts, np.zeros(n, np.float32), obs, np.zeros(n, bool), np.roll(ends, -1))
    m.attach_buffer(buf)
    for _ in range(600):  # BC: a bimodal DP
        m.dp.bc_step(m.buffer, 64)
    m.dp.reset_to_ema()  # as the harness's common-start load does
    probe = torch.as_tensor(rng.normal(size=(256, 3)).astype(np.float32))

    def share_good():
        with torch.no_grad():
            a = m.dp.ema.module.sample(probe, generator=torch.Generator().manual_seed(3))[:, 0, 0]
        return float((a > 0.3).float().mean())

    start = share_good()
    assert 0.2 < start < 0.8  # both modes present before distillation
    add_online(buf, rng.normal(size=(256, 3)).astype(np.float32), np.full((256, 1), 0.6, np.float32))
    m.distilling = True
    for _ in range(300):
        m._distill()
    assert share_good() >= 0.7, (start, share_good())


def test_distill_hyperparameters_apply_from_fine_tuning_on():
    m = build({"distill_lr": 1e-3, "distill_ema_decay": 0.9})
    assert m.dp.optim.param_groups[0]["lr"] == m.dp_cfg.lr and m.dp.ema.decay == m.dp_cfg.ema_decay
    m._set_distill_hparams()  # what every online update does first
    assert m.dp.optim.param_groups[0]["lr"] == 1e-3 and m.dp.ema.decay == 0.9 and m.finetuning
    fresh = build({"distill_lr": 1e-3, "distill_ema_decay": 0.9})  # a resume: the optimiser's lr comes back,
    fresh.load_state_dict(m.state_dict())  # and the next online update sets the EMA decay again
    assert fresh.dp.optim.param_groups[0]["lr"] == 1e-3 and fresh.finetuning


# ---- end to end, through the runner -------------------------------------------------------------------------
def tiny_cfg(method: str, seed: int = 0, **extra):
    from bench.config.layers import resolve_config
    from tests.helpers import tiny

    over = tiny(method)
    if method == "modip":
        over["preset"] = "test"
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


@pytest.mark.slow
@pytest.mark.parametrize("terminal", ["v", "q"])
def test_tiny_run_end_to_end(demo_dataset, store_root, terminal, monkeypatch):
    from bench.runner.lifecycle import run_one
    from results.store import Store

    # The bar the planner must reach before distillation starts, lowered so that a tiny run's untrained planner
    # reaches it and the distillation rows are written (the data's horizon kept).
    bar = methods.modip.offline_episode_return
    monkeypatch.setattr(methods.modip, "offline_episode_return", lambda data: (float("-inf"), bar(data)[1]))

    cfg = tiny_cfg("modip", **{"modip.planner.terminal": terminal, "eval.timing": True, "eval.timing_reps": 2,
                               "eval.timing_batch": 2})
    rid = run_one(cfg, store_root=store_root, sweep_id="m", progress=False)
    store = Store(store_root)
    assert store.runs(sweep="m").iloc[0].status == "finished"
    c = store.curves(sweep="m", run_ids=[rid])
    scores = c[c.metric == "normalized_score"]
    assert set(scores.actor) == {"dp", "mpc", "mpc_chunk"}
    metrics = set(c.metric)
    for name in ("loss/v", "loss/q", "loss/wm_nll", "loss/dp_distill", "wm/one_step_obs_nmse", "wm/h4_obs_nmse",
                 "diag/v_minus_mc", "plan/ess", "plan/dp_won", "loss/dp_distill_label", "loss/dp_distill_offline",
                 "distill/label_adv", "distill/dp_label_dist", "distill/started_at", "wm/member0_online_obs_nmse",
                 "wm/member2_offline_obs_nmse", "diag/dp_spread", "wm/online_ratio"):
        assert name in metrics, name
    t = store.timings(sweep="m")
    assert {"plan", "dp_act", "update"} <= set(t.component)
    assert set(t[t.component == "plan"].terminal) == {terminal}


def test_the_runner_stores_each_steps_planned_action_and_labels_pair_with_their_state(demo_dataset, store_root,
                                                                                     monkeypatch):
    """Through the real runner: every executed step of a plan stores that step's noise-free planned action at
    the state it was taken from, exploration noise stays out of it, and label chunks pair with the state of
    their first action."""
    from bench.runner.lifecycle import run_one
    from methods.modip import MODIP

    decisions, holder = [], {}
    act_mpc, finetune = MODIP.act_mpc, MODIP._finetune

    def recording_act(self, obs, state, eval_mode, execute=None):
        out, extras = act_mpc(self, obs, state, eval_mode, execute)
        if not eval_mode:
            decisions.append((obs[0].copy(), extras["plan_action"][0].copy(), out[0].copy()))
        return out, extras

    def keeping_step(self):
        holder["m"] = self
        return finetune(self)

    monkeypatch.setattr(MODIP, "act_mpc", recording_act)
    monkeypatch.setattr(MODIP, "_finetune", keeping_step)
    cfg = tiny_cfg("modip", **{"modip.planner.replan_every": 2, "online.steps": 120, "eval.every": 1000})
    run_one(cfg, store_root=store_root, sweep_id="lab", progress=False)
    m = holder["m"]
    buf, n_off = m.buffer, m.buffer.n_offline
    assert buf.n_online == 120
    data = {k: v.numpy()[n_off:] for k, v in buf.state_dict()["data"].items()}
    plan_actions, acts = data["plan_action"], data["action"]
    assert data["has_plan_action"].all()
    i = 0
    for obs, planned, executed in decisions:  # a decision runs 2 steps, or fewer where its episode ends
        np.testing.assert_allclose(data["obs"][i], obs)  # the decision's state at its first step
        for j in range(len(planned)):
            np.testing.assert_allclose(plan_actions[i], planned[j], atol=1e-6)
            np.testing.assert_allclose(acts[i], executed[j], atol=1e-6)
            i += 1
            if data["terminal"][i - 1] or data["timeout"][i - 1] or i == 120:
                break
    assert i == 120 and len(decisions) >= 60
    executed_norm = m.normalizer.norm_act(torch.as_tensor(acts)).numpy()
    assert np.abs(executed_norm - plan_actions).mean() > 0.02  # the executed actions carry exploration noise
    b = m.label_batch(64)
    ends = data["terminal"] | data["timeout"]
    for k, i in enumerate(b["index"].numpy() - n_off):
        np.testing.assert_allclose(b["obs"][k].numpy(), m.normalizer.norm_obs(torch.as_tensor(data["obs"][i])).numpy(),
                                   atol=1e-6)
        j = i  # the whole chunk: the planned actions of steps i, i+1, ... of the same episode, the last repeated
        for t in range(m.chunk):
            np.testing.assert_allclose(b["chunk"][k, t].numpy(), plan_actions[j], atol=1e-6)
            if not ends[j] and j + 1 < 120:
                j += 1


def test_common_start_dp_actor_equals_bc_dp(demo_dataset, store_root):
    from bench.runner.lifecycle import run_one
    from results.store import Store

    over = {"online.steps": 0, "eval.timing": False}
    r_bc = run_one(tiny_cfg("bc_dp", seed=3, **over), store_root=store_root, sweep_id="cs", progress=False)
    r_m = run_one(tiny_cfg("modip", seed=3, **over), store_root=store_root, sweep_id="cs", progress=False)
    c = Store(store_root).curves(sweep="cs")
    at0 = c[(c.env_step == 0) & (c.metric == "return")]
    bc = at0[(at0.run_id == r_bc) & (at0.actor == "dp")].value.tolist()
    md = at0[(at0.run_id == r_m) & (at0.actor == "dp")].value.tolist()
    assert len(bc) == 1 and bc == md


def test_modip_dp_actor_executes_act_steps():
    from methods.base import ActorState
    from methods.modip import MODIP
    from methods.modip.config import ModipConfig

    m = MODIP(ModipConfig(), dp_context(DPConfig(hidden=[16, 16], denoising_steps=3, act_steps=2)))
    assert m.act(np.zeros((3, 5), np.float32), "dp", ActorState.create(0), True)[0].shape == (3, 2, 2)
    comps = m.timed_components(batch_size=1)
    assert comps["dp_act"].actions_per_call == 2 and comps["plan"].actions_per_call == m.cfg.planner.replan_every


@pytest.mark.parametrize("over", [{}, {"planner.search": "best_of_dp", "planner.horizon": 1},
                                  {"planner.horizon": 0}], ids=["mppi", "best_of_dp", "horizon0"])
def test_mpc_chunk_is_declared_the_same_as_mpc_only_when_it_acts_alike(over):
    """At replan_every = Ta, mpc_chunk's calls are mpc's (same plans, same draws, same warm starts), so the harness
    may evaluate mpc once for both (Method.eval_same_as); at another replan_every they differ and both run."""
    m = build({**over, "planner.replan_every": 4})
    assert m.chunk == 4 and m.eval_same_as() == {"mpc_chunk": "mpc"}
    obs = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
    a, b = ActorState.create(7), ActorState.create(7)
    for _ in range(3):  # successive decisions, memory carried
        out_a, ex_a = m.act(obs, "mpc", a, True)
        out_b, ex_b = m.act(obs, "mpc_chunk", b, True)
        np.testing.assert_array_equal(out_a, out_b)
        np.testing.assert_array_equal(ex_a["plan_action"], ex_b["plan_action"])
        obs = obs + 0.1
    assert build({**over, "planner.replan_every": 2}).eval_same_as() == {}
