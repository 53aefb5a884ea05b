"""DPPO: the denoising MDP's log-probs, the clipped loss, the first update, frozen steps, the common start,
the on-policy runner's autoreset handling, reward scaling as DPPO does it (the constant after the running
scaler, whose per-env return carries across rollouts), a tiny run on the demo task, and its exact resume from
a checkpoint taken while an env is mid-episode.
"""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch

from bench.config.layers import resolve_config
from bench.config.parse import parse_section
from bench.config.run import run_id_of
from bench.runner.lifecycle import run_one
from bench.runner.on_policy import collect_rollout, make_vector_env
from bench.runner.stops import Preempted, request_stop_at
from methods.base import ActorState, MethodContext, TaskSpaces
from methods.common.diffusion import cosine_betas
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.dppo import DPPO, RunningRewardScaler, gae
from methods.dppo.config import DPPOConfig
from methods.dppo.ppo import clipped_surrogate
from results.store import Store
from tests.helpers import TINY, TINY_CS

OBS, ACT, TA = 5, 2, 3


def _method(ft_steps: int = 4, T: int = 8, act_steps: int = 0, **cfg) -> DPPO:
    torch.manual_seed(0)
    spaces = TaskSpaces(obs_dim=OBS, act_dim=ACT, act_low=-np.ones(ACT, np.float32),
                        act_high=np.ones(ACT, np.float32), max_episode_steps=20, chunk=TA)
    norm = Normalizer(np.zeros(OBS), np.ones(OBS), -np.ones(ACT), np.ones(ACT))
    c = parse_section(DPPOConfig, dict({"ft_denoising_steps": ft_steps, "n_envs": 3, "n_steps": 6, "batch_size": 16,
                                        "update_epochs": 2, "critic_hidden": [16]}, **cfg), "dppo.")
    return DPPO(c, MethodContext(spaces=spaces, normalizer=norm, seed=0,
                                 dp_cfg=DPConfig(denoising_steps=T, hidden=[32, 32], time_dim=8,
                                                 act_steps=act_steps)))


def _rollout(m: DPPO, n_steps: int = 6, n_envs: int = 3, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    st = ActorState.create(seed)
    obs = rng.standard_normal((n_steps, n_envs, OBS)).astype(np.float32)
    chains = np.stack([m.act_rollout(obs[t], st)[1]["chain"] for t in range(n_steps)])
    done = rng.random((n_steps, n_envs)) < 0.2
    valid = np.ones((n_steps, n_envs), bool)
    valid[1:] = ~done[:-1]
    done &= valid
    return {"obs": obs, "next_obs": rng.standard_normal((n_steps, n_envs, OBS)).astype(np.float32),
            "reward": rng.standard_normal((n_steps, n_envs)) * valid, "terminal": done & (rng.random(done.shape) < .5),
            "done": done, "valid": valid, "first": np.vstack([np.ones((1, n_envs), bool), ~valid[:-1]]) & valid,
            "chain": chains}


def test_chain_log_prob_matches_direct_gaussian():
    m = _method(ft_steps=4, T=8)
    model = m.model
    cond = torch.randn(7, OBS)
    _, chain = model.sample_chain(cond, torch.Generator().manual_seed(3), 0.1, 3.0)
    assert chain.shape == (7, 5, TA, ACT)
    # The DDPM posterior written out again from the cosine schedule (Ho et al. 2020, eqs. 6-7).
    betas = cosine_betas(8).double()
    ab = torch.cumprod(1 - betas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    for j in range(4):
        t = 4 - 1 - j
        x_t, x_next = chain[:, j].double(), chain[:, j + 1].double()
        with torch.no_grad():
            eps = model.denoiser(chain[:, j], torch.full((7,), t), cond).double()
        x0 = ((x_t - (1 - ab[t]).sqrt() * eps) / ab[t].sqrt()).clamp(-1, 1)
        mean = betas[t] * ab_prev[t].sqrt() / (1 - ab[t]) * x0 + (1 - ab_prev[t]) * (1 - betas[t]).sqrt() / (1 - ab[t]) * x_t
        std = (betas[t] * (1 - ab_prev[t]) / (1 - ab[t])).sqrt().clamp_min(0.1)
        direct = torch.distributions.Normal(mean, std).log_prob(x_next)
        with torch.no_grad():
            ours = model.chain_log_prob(cond, chain[:, j], chain[:, j + 1], torch.full((7,), j), 0.1)
        torch.testing.assert_close(ours.double(), direct, rtol=1e-4, atol=1e-4)
    # The last step (t = 0) has DDPM variance 0: its std is the floor, so the action is explored too.
    assert float((chain[:, -1] - chain[:, -2]).abs().max()) > 0


def test_clipped_loss_has_zero_gradient_outside_clip_range():
    clip = 0.2
    # (ratio, advantage): above the range with A > 0 and below it with A < 0 are clipped: no gradient.
    # Inside the range, and outside it on the side PPO does not clip, the gradient is -A / n.
    ratio = torch.tensor([1.5, 0.5, 1.1, 1.5, 0.5], requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
    clipped_surrogate(ratio, adv, clip).backward()
    assert ratio.grad[0] == 0 and ratio.grad[1] == 0
    torch.testing.assert_close(ratio.grad[2:], -adv[2:] / 5)
    # Through the whole DPPO loss: if every pair's ratio is pushed past the clip range in the direction of its
    # advantage, the actor gets no gradient at all.
    m = _method()
    cond = torch.randn(9, OBS)
    _, chain = m.model.sample_chain(cond, torch.Generator().manual_seed(0), 0.1, 3.0)
    j = torch.arange(9) % 4
    with torch.no_grad():
        lp = m.model.step_log_prob(cond, chain[torch.arange(9), j], chain[torch.arange(9), j + 1], j)
    adv = torch.randn(9)
    shift = torch.where(adv > 0, -1.0, 1.0)  # old lp lower for A > 0: ratio = e >> 1 + eps; higher for A < 0
    m.model.norm_adv = False
    loss, info = m.model.policy_loss(cond, chain[torch.arange(9), j], chain[torch.arange(9), j + 1], j, adv,
                                     lp + shift)
    loss.backward()
    assert info["clipfrac"] == 1.0
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in m.model.denoiser.parameters())


def test_ratio_uses_the_executed_actions_only():
    """dp.act_steps 2 of Ta 3: PPO's ratio is over the log-probs of the 2 executed actions of each chunk (DPPO:
    `reward_horizon = act_steps`, newlogprobs[:, :reward_horizon] in PPODiffusion.loss). What the chain holds
    after them (never executed, never rewarded) changes neither the per-step log-prob nor the loss's gradient."""
    m = _method(act_steps=2)
    cond = torch.randn(9, OBS)
    _, chain = m.model.sample_chain(cond, torch.Generator().manual_seed(0), 0.1, 3.0)
    j = torch.arange(9) % 4
    x_prev, x_next = chain[torch.arange(9), j], chain[torch.arange(9), j + 1]
    with torch.no_grad():
        lp = m.model.step_log_prob(cond, x_prev, x_next, j)
        full = m.model.chain_log_prob(cond, x_prev, x_next, j, m.cfg.min_logprob_denoising_std).clamp(-5, 2)
    torch.testing.assert_close(lp, full[:, :2].mean(dim=(-1, -2)))
    moved = x_next.clone()
    moved[:, 2:] += 0.7  # the unexecuted action of each chunk's step output
    adv = torch.randn(9)
    grads = []
    for nxt in (x_next, moved):
        m.model.denoiser.zero_grad(set_to_none=True)
        loss, _ = m.model.policy_loss(cond, x_prev, nxt, j, adv, lp - 0.01)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.model.denoiser.parameters() if p.grad is not None]))
    with torch.no_grad():
        torch.testing.assert_close(m.model.step_log_prob(cond, x_prev, moved, j), lp)
    torch.testing.assert_close(grads[0], grads[1])
    assert m.model.reward_horizon == 2 and _method().model.reward_horizon == TA  # act_steps 0: the whole chunk is executed and scored


def test_first_minibatch_ratio_is_one_and_kl_zero():
    m = _method()
    seen = []
    orig = m.model.policy_loss

    def spy(*a, **k):
        loss, info = orig(*a, **k)
        seen.append(info)
        return loss, info

    m.model.policy_loss = spy
    steps = m.update_rollout(_rollout(m))
    metrics = steps[-1]  # one dict per minibatch step, the rollout's statistics with the last
    assert len(steps) == len(seen) and "ppo/explained_var" in metrics
    first = seen[0]
    assert first["ratio"] == 1.0 and first["ratio_max_dev"] == 0.0
    assert abs(first["approx_kl"]) < 1e-7 and first["clipfrac"] == 0.0
    # later minibatches moved the policy
    assert max(s["ratio_max_dev"] for s in seen[1:]) > 0
    assert np.isfinite(metrics["loss/policy"]) and np.isfinite(metrics["loss/value"])


def test_the_update_calls_between_before_each_minibatch_step_and_lets_a_stop_through():
    """`between()` is the harness's safe point (methods/on_policy.py): called before each of the K passes that score
    the chains and before every minibatch step, and what it raises ends the update there, after the steps made."""
    m = _method()
    made = []
    step = m.minibatch_step
    m.minibatch_step = lambda *a, **k: made.append(1) or step(*a, **k)
    asked = []
    steps = m.update_rollout(_rollout(m), between=lambda: asked.append(len(made)))
    k = m.model.ft_steps
    assert len(steps) > 2 and asked == [0] * k + list(range(len(steps)))

    class Stop(Exception):
        pass

    def between():
        if len(made) == 2:
            raise Stop

    made.clear()
    with pytest.raises(Stop):
        m.update_rollout(_rollout(m), between=between)
    assert len(made) == 2


def test_frozen_denoising_steps_get_no_gradient_and_stay_frozen():
    m = _method(ft_steps=4, T=8)
    base_before = {k: v.clone() for k, v in m.model.denoiser_base.state_dict().items()}
    ft_before = {k: v.clone() for k, v in m.model.denoiser.state_dict().items()}
    cond = torch.randn(6, OBS)
    _, chain_a = m.model.sample_chain(cond, torch.Generator().manual_seed(5), 0.1, 3.0)
    m.update_rollout(_rollout(m))
    assert all(p.grad is None for p in m.model.denoiser_base.parameters())
    assert all(not p.requires_grad for p in m.model.denoiser_base.parameters())
    for k, v in m.model.denoiser_base.state_dict().items():
        assert torch.equal(v, base_before[k])
    assert any(not torch.equal(v, ft_before[k]) for k, v in m.model.denoiser.state_dict().items())
    # The first T-K steps still run the pretrained network: the chain's first entry (the input of the first
    # fine-tuned step) is unchanged by the update, the later ones are not.
    _, chain_b = m.model.sample_chain(cond, torch.Generator().manual_seed(5), 0.1, 3.0)
    assert torch.equal(chain_a[:, 0], chain_b[:, 0])
    assert not torch.equal(chain_a[:, -1], chain_b[:, -1])


def test_gae_skips_autoreset_and_bootstraps_timeouts_not_terminals():
    # One env: decisions 0,1 (timeout at 1), autoreset slot 2, decisions 3, 4 (terminal at 4).
    r = np.array([[1.0], [2.0], [0.0], [3.0], [4.0]])
    v = np.array([[0.5], [0.6], [9.0], [0.7], [0.8]])
    nv = np.array([[0.6], [5.0], [9.0], [0.8], [7.0]])
    term = np.array([[0], [0], [0], [0], [1]], float)
    done = np.array([[0], [1], [0], [0], [1]], float)
    valid = np.array([[1], [1], [0], [1], [1]], bool)
    g, lam = 0.9, 0.8
    adv = gae(r, v, nv, term, done, valid, g, lam)
    d1 = 2.0 + g * 5.0 - 0.6  # timeout: bootstraps from the episode's last obs
    d0 = 1.0 + g * 0.6 - 0.5
    d4 = 4.0 - 0.8  # terminal: no bootstrap
    d3 = 3.0 + g * 0.8 - 0.7
    np.testing.assert_allclose(adv[:, 0], [d0 + g * lam * d1, d1, 0.0, d3 + g * lam * d4, d4])


class _ZeroPolicy:
    """Stands in for a method in collect_rollout: constant chunks, with a per-env extra."""

    def act_rollout(self, obs, state):
        return np.zeros((len(obs), 4, 1), np.float32), {"tag": obs[:, :1].copy()}


class _ShortTask:
    chunk = 4

    def make_env(self):
        return gym.make("InvertedDoublePendulum-v5", max_episode_steps=6)


def test_autoreset_step_is_skipped_and_not_counted():
    envs = make_vector_env(_ShortTask(), 2, 4)
    obs, _ = envs.reset(seed=[1, 2])
    counted = []
    ro, stats = collect_rollout(envs, _ZeroPolicy(), None, obs, n_steps=5, reward_scale=1.0, budget_left=10 ** 6,
                                on_step=counted.append)
    envs.close()
    # The zero action keeps the pendulum up for 6 steps: decisions of 4 and 2 steps (timeout), then the
    # autoreset slot, then a new episode.
    np.testing.assert_array_equal(ro["env_steps"][:, 0], [4, 2, 0, 4, 2])
    np.testing.assert_array_equal(ro["valid"][:, 0], [True, True, False, True, True])
    np.testing.assert_array_equal(ro["first"][:, 0], [True, False, False, True, False])
    np.testing.assert_array_equal(ro["timeout"][:, 0], [False, True, False, False, True])
    assert not ro["terminal"].any()
    assert ro["reward"][2, 0] == 0.0
    # At the episode's end next_obs is the episode's last obs; the autoreset slot returns the reset obs,
    # which is the next decision's obs.
    assert not np.allclose(ro["next_obs"][1, 0], ro["obs"][3, 0])
    np.testing.assert_array_equal(ro["next_obs"][2, 0], ro["obs"][3, 0])
    assert counted == list(ro["env_steps"].sum(axis=1)) and stats["env_steps"] == 24
    assert ro["tag"].shape == (5, 2, 1)
    assert len(stats["episodes"]) == 4


def test_autoreset_after_terminal_and_budget_stop():
    envs = make_vector_env(_ShortTask(), 2, 4)
    obs, _ = envs.reset(seed=[3, 4])

    class Push(_ZeroPolicy):
        def act_rollout(self, obs, state):  # a full push topples the pendulum: a terminal inside a chunk
            return np.ones((len(obs), 4, 1), np.float32), {}

    ro, stats = collect_rollout(envs, Push(), None, obs, n_steps=50, reward_scale=2.0, budget_left=9)
    envs.close()
    assert ro["terminal"].any()
    t, i = np.argwhere(ro["terminal"])[0]
    assert not ro["valid"][t + 1, i] and ro["env_steps"][t + 1, i] == 0
    assert not ro["timeout"][t, i]
    assert stats["env_steps"] >= 9 and stats["env_steps"] - 9 < 2 * 4  # stops at the first decision past it


def _tiny(method, seed=0, **extra):
    over = dict(TINY, preset="test", **TINY_CS)
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


def test_tiny_run_on_demo_task_and_common_start(demo_dataset, store_root):
    cfg = _tiny("dppo", seed=1)
    rid = run_one(cfg, store_root=store_root, sweep_id="d", progress=False)
    # bc_dp with the same DP config and seed reuses the same pretrained DP (the common start).
    bc = resolve_config("bc_dp", "demo", 1, dict(TINY, **TINY_CS, **{"dp.hidden": [32, 32]}))
    rid_bc = run_one(bc, store_root=store_root, sweep_id="d", progress=False)
    store = Store(store_root)
    runs = store.runs(sweep="d").set_index("run_id")
    assert runs.loc[rid, "status"] == "finished" and runs.loc[rid_bc, "status"] == "finished"
    assert int(runs.loc[rid, "env_steps"]) >= cfg.online.steps
    c = store.curves(sweep="d")
    score = c[c.metric == "normalized_score"]
    s0 = score[(score.env_step == 0)].set_index("run_id").value
    assert s0.loc[rid] == s0.loc[rid_bc]
    mine = c[c.run_id == rid]
    assert (mine[mine.metric == "loss/policy"].grad_step > 0).all()
    assert np.isfinite(mine[mine.metric.str.startswith("loss")].value).all()
    assert mine[mine.metric == "ppo/ratio"].shape[0] >= 2
    # Evals land on the grid (first decision boundary at or after each grid step) and at the end.
    steps = sorted(score[(score.run_id == rid)].env_step)
    every = cfg.eval.every
    assert steps[0] == 0 and steps[1] >= every and steps[1] < every + 3 * 4 and steps[-1] >= cfg.online.steps


def test_suite_defaults_sit_under_presets_and_overrides():
    lift = resolve_config("dppo", "lift-ph", 0, {}).to_json()["dppo"]
    assert lift["gamma"] == 0.999 and lift["n_critic_warmup_itr"] == 2 and lift["n_envs"] == 50
    hopper = resolve_config("dppo", "hopper-medium", 0, {}).to_json()["dppo"]
    assert hopper["gamma"] == 0.99 and hopper["n_steps"] == 500 and hopper["ft_denoising_steps"] == 10
    assert resolve_config("dppo", "lift-ph", 0, {"dppo.gamma": 0.9}).to_json()["dppo"]["gamma"] == 0.9
    assert resolve_config("dppo", "lift-ph", 0, {"preset": "demo"}).to_json()["dppo"]["n_envs"] == 8
    assert resolve_config("dppo", "kitchen-mixed", 0, {}).to_json()["dppo"]["n_steps"] == 70


# ---- reward scaling as DPPO does it ------------------------------------------------------------------------
def _gae_rewards(monkeypatch, **cfg) -> np.ndarray:
    """The rewards that the update hands GAE, for one fixed rollout."""
    from methods import dppo

    seen = []

    def spy(reward, *a, **k):
        seen.append(np.array(reward))
        return gae(reward, *a, **k)

    monkeypatch.setattr(dppo, "gae", spy)
    m = _method(**cfg)
    m.update_rollout(_rollout(m))
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("running", [True, False])
def test_reward_scale_const_scales_the_rewards_the_update_sees(monkeypatch, running):
    """DPPO multiplies by reward_scale_const after the running scaler (train_ppo_diffusion_agent.py, in the GAE
    delta); before it, the scaler divided the constant back out."""
    base = _gae_rewards(monkeypatch, reward_scale_running=running)
    for const in (4.0, 0.1):
        scaled = _gae_rewards(monkeypatch, reward_scale_running=running, reward_scale_const=const)
        np.testing.assert_array_equal(scaled, base * const)
    assert np.abs(base).max() > 0


def test_running_reward_scaler_carries_each_envs_return_across_rollouts():
    rng = np.random.default_rng(0)
    n, n_envs, g = 10, 3, 0.9
    reward = rng.standard_normal((n, n_envs))
    valid = np.ones((n, n_envs), bool)
    valid[6, 1] = False  # an autoreset slot
    first = np.zeros((n, n_envs), bool)
    first[0] = True
    first[7, 1] = True
    first[2, 2] = True
    whole = RunningRewardScaler(g, n_envs)
    whole(reward, first, valid)
    split = RunningRewardScaler(g, n_envs)
    split(reward[:4], first[:4], valid[:4])
    carried = split.ret.copy()
    assert not first[4].any() and np.abs(carried).min() > 0  # every env's episode runs on into the next call
    split(reward[4:], first[4:], valid[4:])
    np.testing.assert_array_equal(split.ret, whole.ret)
    # The second call's returns continue from `carried` (DPPO's backward_discounted_sum from prevret): their
    # moments, merged with the first call's, are those of the whole sequence of returns.
    ret, rets = np.zeros(n_envs), []
    for t in range(n):
        ret = np.where(valid[t], reward[t] + np.where(first[t], 0.0, g * ret), ret)
        rets.append(ret[valid[t]])
    x = np.concatenate(rets)
    assert split.count == pytest.approx(1e-4 + x.size)
    assert split.mean == pytest.approx((x.sum()) / (1e-4 + x.size), rel=1e-9)
    # The checkpoint holds the running returns (DPPO's extra_state), and loads them back.
    m = _method()
    m.reward_scaler = split
    st = m.extra_state()["reward_scaler"]
    assert isinstance(st["ret"], torch.Tensor) and st["ret"].dtype == torch.float64
    m2 = _method()
    m2.load_state_dict({**m.state_dict(), "extra": {"iteration": 1, "reward_scaler": st}})
    np.testing.assert_array_equal(m2.reward_scaler.ret, split.ret)
    assert (m2.reward_scaler.mean, m2.reward_scaler.var) == (split.mean, split.var)


# ---- exact resume mid-episode --------------------------------------------------------------------------------
def _curve(store_root, sweep, rid) -> pd.DataFrame:
    c = Store(store_root).curves(sweep=sweep, run_ids=[rid])
    cols = ["phase", "env_step", "grad_step", "actor", "metric", "value", "n_episodes"]
    return c[cols].sort_values(cols[:5]).reset_index(drop=True)


def test_resume_mid_episode_equals_uninterrupted(demo_dataset, tmp_path, monkeypatch):
    """Episodes continue across rollouts, so a checkpoint at a rollout boundary can cut one: the resumed run
    must still repeat the uninterrupted one exactly (env simulator state, TimeLimit count, RNG, autoreset and
    first flags, and the reward scaler's running return, all from the checkpoint)."""
    from bench.runner import on_policy
    from bench.runner.checkpoints import load_checkpoint
    from bench.tasks.env_state import sub_env_state

    # Watch the uninterrupted run's rollout boundaries, to stop at one where an env is mid-episode.
    boundaries = []
    collect = on_policy.collect_rollout

    def spy(envs, method, state, carry, *a, **k):
        ro, stats = collect(envs, method, state, carry, *a, **k)
        elapsed = [sub_env_state(on_policy.task_env(e))["elapsed_steps"] for e in envs.envs]
        boundaries.append((stats["env_steps"], elapsed, carry.prev_done.copy()))
        return ro, stats

    monkeypatch.setattr(on_policy, "collect_rollout", spy)
    for seed in (1, 2, 3):  # the first seed whose tiny DP leaves an env mid-episode at some boundary
        boundaries.clear()
        cfg = _tiny("dppo", seed=seed)
        a = run_one(cfg, store_root=tmp_path / f"a{seed}", sweep_id="r", progress=False)
        spent, stop = 0, None
        for n, elapsed, pending in boundaries[:-1]:  # the last rollout ends the run: no checkpoint there
            spent += n
            if any(e > 0 and not p for e, p in zip(elapsed, pending)):
                stop = spent
                break
        if stop is not None:
            break
    assert stop is not None, "no rollout boundary of seeds 1-3 leaves an env mid-episode"
    monkeypatch.setattr(on_policy, "collect_rollout", collect)

    request_stop_at(env_step=stop)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=tmp_path / "b", sweep_id="r", progress=False)
    ckpt = load_checkpoint(tmp_path / "b" / "checkpoints" / "r" / run_id_of(cfg) / "last.pt")
    assert int(json.loads(ckpt["counters"])["env_step"]) == stop
    envs = ckpt["loop"]["on_policy"]
    mid = [i for i, e in enumerate(envs["envs"]) if e["elapsed_steps"] > 0 and not bool(envs["autoreset"][i])]
    assert mid and not envs["first"][mid].any()
    ret = ckpt["method"]["extra"]["reward_scaler"]["ret"]
    assert ret.shape == (cfg.section.n_envs,) and all(float(ret[i]) != 0.0 for i in mid)
    b = run_one(cfg, store_root=tmp_path / "b", sweep_id="r", progress=False)
    assert a == b
    rb = Store(tmp_path / "b").runs(sweep="r").iloc[0]
    assert rb.status == "finished" and int(rb.attempt) == 2
    ca, cb = _curve(tmp_path / f"a{seed}", "r", a), _curve(tmp_path / "b", "r", b)
    assert (ca.metric == "train/return").sum() >= 2 and (ca.env_step > stop).any()
    pd.testing.assert_frame_equal(ca, cb)


def test_act_steps_executes_the_first_actions_of_each_chunk(demo_dataset, store_root, monkeypatch):
    """dp.act_steps = 2 of Ta = 4: each decision executes 2 env actions (DPPO's `output_venv[:, :act_steps]`),
    the chains PPO scores stay whole-chunk, the run spends exactly its env-step budget, and its timing says 2
    actions per act call."""
    seen = []
    update = DPPO.update_rollout

    def spy(self, rollout, between=None):
        seen.append((self.act_steps, self.chunk, rollout["env_steps"].max(), np.asarray(rollout["chain"]).shape))
        return update(self, rollout, between)

    monkeypatch.setattr(DPPO, "update_rollout", spy)
    act_rollout = DPPO.act_rollout
    shapes = []

    def act_spy(self, obs, state):
        actions, info = act_rollout(self, obs, state)
        shapes.append(actions.shape)
        return actions, info

    monkeypatch.setattr(DPPO, "act_rollout", act_spy)
    cfg = _tiny("dppo", seed=0, **{"dp.act_steps": 2, "eval.timing": True, "eval.timing_reps": 1})
    rid = run_one(cfg, store_root=store_root, sweep_id="a", progress=False)
    store = Store(store_root)
    run = store.runs(sweep="a").set_index("run_id").loc[rid]
    assert run.status == "finished" and int(run.env_steps) == cfg.online.steps
    assert seen and shapes
    for act_steps, chunk, most, chain_shape in seen:
        assert (act_steps, chunk) == (2, 4) and most == 2
        assert chain_shape[3] == 4  # (T, n_envs, K + 1, Ta, act_dim): the chain is the whole chunk
    assert {s[1] for s in shapes} == {2}
    t = store.timings(sweep="a")
    act = t[t.kind == "act"]
    assert len(act) and set(act.actions_per_call) == {2}
    upd = t[t.kind == "update"]
    assert len(upd), t[["component", "kind"]]
    # Updates per env step: a rollout's nominal minibatch steps over its decisions x act_steps env steps.
    m_cfg = cfg.to_json()["dppo"]
    decisions = m_cfg["n_envs"] * m_cfg["n_steps"]
    grad = m_cfg["update_epochs"] * max(1, decisions * m_cfg["ft_denoising_steps"] // m_cfg["batch_size"])
    assert np.allclose(upd.updates_per_env_step.astype(float), grad / (decisions * 2))
