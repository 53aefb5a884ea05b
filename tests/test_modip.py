"""MODIP: the planner on known toys, the critics and world model on data, distillation, and tiny runs.

Why: MODIP's claims are only testable if each piece does what the paper says. The toys have known dynamics,
rewards and values, so the planner's choice can be checked exactly; the data tests use the tiny demo dataset
made by the `demo_dataset` fixture; the end-to-end tests run the real runner with tiny budgets.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from methods.base import ActorState, MethodContext, TaskSpaces, get_method_class
from methods.common.diffusion import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.config import from_dict
from methods.modip import spearman
from methods.modip.planner import PlanModels, PlannerConfig, plan

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
def build(overrides: dict | None = None, obs_dim: int = 3, seed: int = 0, normalizer=None, preset: str = "test"):
    cls = get_method_class("modip")
    section = dict(cls.presets[preset]["modip"]) if preset else {}
    for key, value in (overrides or {}).items():
        node = section
        parts = key.split(".")
        for p in parts[:-1]:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[parts[-1]] = value
    cfg = from_dict(cls.Config, section)
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=1, act_low=np.array([-1.0]), act_high=np.array([1.0]),
                        max_episode_steps=200, gamma=GAMMA, chunk=4)
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


def test_mpc_actor_chunks_labels_and_warm_start():
    m = build({"planner.replan_every": 2})
    st = ActorState.create(0)
    chunk = m.act(np.zeros((3, 3), np.float32), "mpc", st, False)
    assert chunk.shape == (3, 2, 1)
    assert st.extras["label"].shape == (3, m.chunk, 1) and st.extras["plan_reward"].shape == (3,)
    assert np.abs(st.extras["label"]).max() <= 1.0
    assert st.memory["mean"].shape == (3, m.cfg.planner.horizon, 1)
    assert torch.all(st.memory["mean"][:, -2:] == 0)  # shifted by the executed length, zero-padded
    # a resumed ActorState holds plain lists; the planner accepts them
    st.memory["mean"] = st.memory["mean"].tolist()
    m.act(np.zeros((3, 3), np.float32), "mpc", st, True)
    # eval_mode labels are noise-free means and the executed actions are the mean's first steps
    st2 = ActorState.create(1)
    out = m.act(np.zeros((1, 3), np.float32), "mpc", st2, True)
    np.testing.assert_allclose(out[0], st2.extras["label"][0, :2], atol=1e-6)


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


def test_distillation_moves_the_dp_toward_planned_labels(demo_dataset):
    torch.manual_seed(0)
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "distill_batch": 64})
    for _ in range(100):  # a world model and critics worth planning with
        m._wm_step("offline")
        m._critic_step("offline")
    # plan at held-out states and store the labels as online transitions, as the runner does
    states = d.observations[cut: cut + 64]
    st = ActorState.create(0)
    m.act(states, "mpc", st, True)
    labels = st.extras["label"]
    buf = m.buffer
    for i in range(len(states)):
        buf.add({"obs": states[i], "action": labels[i, 0], "reward": 0.0, "next_obs": states[i],
                 "terminal": False, "timeout": i == len(states) - 1, "label": labels[i], "plan_reward": 0.0})
    cond = m.normalizer.norm_obs(torch.as_tensor(states))
    x0 = torch.as_tensor(labels)

    def label_loss():
        with torch.no_grad():
            return float(m.dp.ema.module.loss(x0.repeat(8, 1, 1), cond.repeat(8, 1),
                                              generator=torch.Generator().manual_seed(1)))

    def distance():  # the DP's noise-free (DDPM mean path) chunks against the labels
        with torch.no_grad():
            chunks = m.dp.ema.module.sample(cond, generator=torch.Generator().manual_seed(2), deterministic=True)
        return float((chunks - x0).abs().mean())

    loss0, dist0 = label_loss(), distance()
    for _ in range(500):
        b = m.distill_batch(64)
        m.dp.train_step(b["chunk"], b["obs"])
    assert label_loss() < 0.8 * loss0
    assert distance() < 0.8 * dist0


def test_label_window_keeps_only_recent_labels(demo_dataset):
    m, d, cut = method_on_demo(demo_dataset, {"label_ratio": 1.0, "label_window": 20})
    buf = m.buffer
    for i in range(60):  # labels 0..59: each chunk is filled with its index, so a sample names its age
        buf.add({"obs": d.observations[cut], "action": np.zeros(1), "reward": 0.0, "next_obs": d.observations[cut],
                 "terminal": False, "timeout": i == 59, "label": np.full((m.chunk, 1), i / 100.0),
                 "plan_reward": 0.0})
    ages = torch.round(m.distill_batch(256)["chunk"][:, 0, 0] * 100).long()
    assert int(ages.min()) >= 40 and int(ages.max()) == 59  # only the last 20 env steps' labels
    m.cfg.label_window = 0
    assert int(torch.round(m.distill_batch(256)["chunk"][:, 0, 0] * 100).min()) < 40  # all labels


def test_distill_hyperparameters_apply_from_fine_tuning_on():
    m = build({"distill_lr": 1e-3, "distill_ema_decay": 0.9})
    assert m.dp.optim.param_groups[0]["lr"] == m.dp_cfg.lr and m.dp.ema.decay == m.dp_cfg.ema_decay
    m.end_pretrain()
    assert m.dp.optim.param_groups[0]["lr"] == 1e-3 and m.dp.ema.decay == 0.9
    fresh = build({"distill_lr": 1e-3, "distill_ema_decay": 0.9})  # a resume restores them
    fresh.load_state_dict(m.state_dict())
    assert fresh.dp.optim.param_groups[0]["lr"] == 1e-3 and fresh.dp.ema.decay == 0.9


# ---- end to end, through the runner -------------------------------------------------------------------------
def tiny_cfg(method: str, seed: int = 0, **extra):
    from bench.runner import resolve_config
    from tests.conftest import tiny

    over = tiny(method)
    if method == "modip":
        over["preset"] = "test"
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


@pytest.mark.parametrize("terminal", ["v", "q"])
def test_tiny_run_end_to_end(demo_dataset, store_root, terminal):
    from bench.runner import run_one
    from results.store import Store

    cfg = tiny_cfg("modip", **{"modip.planner.terminal": terminal, "eval.timing": True, "eval.timing_reps": 2,
                               "eval.timing_batch": 2})
    rid = run_one(cfg, store_root=store_root, sweep_id="m", progress=False)
    store = Store(store_root)
    assert store.runs(sweep="m").iloc[0].status == "finished"
    c = store.curves(sweep="m", run_ids=[rid])
    scores = c[c.metric == "normalized_score"]
    assert set(scores.actor) == {"dp", "mpc"}
    metrics = set(c.metric)
    for name in ("loss/v", "loss/q", "loss/wm_nll", "loss/dp_distill", "wm/one_step_obs_nmse", "wm/h4_obs_nmse",
                 "diag/v_minus_mc"):
        assert name in metrics, name
    t = store.timings(sweep="m")
    assert {"plan", "dp_act", "update"} <= set(t.component)
    assert set(t[t.component == "plan"].terminal) == {terminal}


def test_common_start_dp_actor_equals_bc_dp(demo_dataset, store_root):
    from bench.runner import run_one
    from results.store import Store

    over = {"online.steps": 0, "eval.timing": False}
    r_bc = run_one(tiny_cfg("bc_dp", seed=3, **over), store_root=store_root, sweep_id="cs", progress=False)
    r_m = run_one(tiny_cfg("modip", seed=3, **over), store_root=store_root, sweep_id="cs", progress=False)
    c = Store(store_root).curves(sweep="cs")
    at0 = c[(c.env_step == 0) & (c.metric == "return")]
    bc = at0[(at0.run_id == r_bc) & (at0.actor == "dp")].value.tolist()
    md = at0[(at0.run_id == r_m) & (at0.actor == "dp")].value.tolist()
    assert len(bc) == 1 and bc == md
    assert isinstance(c, pd.DataFrame)
