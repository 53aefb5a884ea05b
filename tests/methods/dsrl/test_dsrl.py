"""DSRL: the frozen DP steered through its initial noise.

- the deterministic DDIM chain maps the same (s, w) to the same action, and other noise to other actions; DPPO's
  leading schedule starts at t = 16 of 20;
- fine-tuning leaves every DP weight bit-identical while the noise policy and its critics move;
- changing the noise policy's output changes the steered actions;
- on a toy task where positive noise maps to the rewarded mode, the noise policy moves there (both variants);
- the update schedule is the config's: a train call every train_freq · n_envs decisions after the initial rollouts;
- batches start at decisions (marked by their stored noise; an open decision is left out); the TD target reads the
  target critic, the actor the noise critic, the distillation the online Q^A; DSRL-SAC's noise is bounded by
  action_magnitude;
- through the runner: the plain-DP actor equals bc_dp at env step 0, the steered actor has its own step-0 score,
  and the run records the steered actor's sampling exemption.
(Resume equals uninterrupted: tests/contract/test_contract.py, over every registered method.)
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from methods.common.replay import ReplayBuffer
from methods.common.section import ConfigError
from tests.helpers import bimodal_buffer, toy_method


def bimodal_dsrl(overrides: dict | None = None, bc_steps: int = 600):
    """DSRL on a BC-trained bimodal DP (a = -0.6 or +0.6), its EMA weights set to the trained ones."""
    torch.manual_seed(0)
    m = toy_method("dsrl", overrides)
    bimodal_buffer(m)
    m.dp.policy.requires_grad_(True)
    for _ in range(bc_steps):
        m.dp.bc_step(m.buffer, 64)
    m.dp.ema.module.load_state_dict(m.dp.policy.state_dict())
    m.dp.policy.requires_grad_(False)
    return m


def toy_rollouts(m, env_steps: int, seed: int = 0, start: int = 0) -> int:
    """The harness's off-policy loop in miniature on a toy bandit: each episode is one decision (act_steps env
    steps, then a terminal) from a random state, with reward 1 for each executed action above 0; updates as
    `update` makes them. Runs from env step `start` to `env_steps`; returns the env step reached."""
    from methods.base import ActorState

    rng = np.random.default_rng(seed)
    state = ActorState.create(seed)
    step = start
    while step < env_steps:
        obs = rng.normal(size=3).astype(np.float32)
        chunks, extras = m.act(obs[None], None, state, False)  # training collects with `steered`
        chunk, extras = chunks[0], {k: v[0] for k, v in extras.items()}
        for t, a in enumerate(chunk):
            nobs = rng.normal(size=3).astype(np.float32)
            tr = {"obs": obs, "action": a, "reward": float(a[0] > 0), "next_obs": nobs,
                  "terminal": t == len(chunk) - 1, "timeout": False, **(extras if t == 0 else {})}
            m.buffer.add(tr)
            step += 1
            obs = nobs
            m.update(m.buffer, step)
    return step


def good_share(m, probe: torch.Tensor) -> float:
    """The share of the steered actor's (stochastic) first actions above 0.3, on probe states."""
    from methods.base import ActorState

    a = m.act(probe.numpy(), "steered", ActorState.create(5), True)[0][:, 0, 0]
    return float((a > 0.3).mean())


def online_buffer(m, n: int = 400, seed: int = 0) -> ReplayBuffer:
    """A buffer with n online transitions of random data in 4-step episodes, decisions of act_steps steps, each
    decision's noise stored with its first transition (as DSRL's act leaves it)."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=seed, capacity=n + 64)
    for i in range(n):
        tr = {"obs": rng.normal(size=3), "action": rng.uniform(-1, 1, 1), "reward": float(rng.random()),
              "next_obs": rng.normal(size=3), "terminal": False, "timeout": i % 4 == 3}
        if i % m.act_steps == 0:
            tr["noise"] = rng.normal(size=(4, 1))
        buf.add(tr)
    m.attach_buffer(buf)
    return buf


def test_chain_is_a_deterministic_function_of_state_and_noise():
    m = toy_method("dsrl", {"ddim_steps": 5})
    assert m.timesteps == [8, 6, 4, 2, 0]  # the test DP has 10 denoising steps; leading: ratio 2
    assert m.dp.policy.ddim_timesteps(5, "leading") == [8, 6, 4, 2, 0]
    s = torch.randn(6, 3)
    w = torch.randn(6, 4)
    a1, a2 = m.chain(s, w), m.chain(s, w.clone())
    assert torch.equal(a1, a2) and a1.shape == (6, 4, 1)
    assert (m.chain(s, w + 1.0) - a1).abs().max() > 1e-3  # other noise, other chunk
    assert (m.chain(s + 1.0, w) - a1).abs().max() > 1e-3  # other state, other chunk


def test_leading_schedule_starts_at_16_of_20():
    from methods.common.diffusion import DiffusionPolicy
    from methods.common.dp_config import DPConfig

    dp = DiffusionPolicy(3, 1, DPConfig(hidden=[8]), 4)
    assert dp.ddim_timesteps(5, "leading") == [16, 12, 8, 4, 0]
    assert dp.ddim_timesteps(5, "linspace") == [19, 14, 10, 5, 0]
    with pytest.raises(ValueError, match="unknown DDIM schedule"):
        dp.ddim_timesteps(5, "trailing")


@pytest.mark.parametrize("variant", ["na", "sac"])
def test_fine_tuning_leaves_the_dp_bit_identical(variant):
    m = toy_method("dsrl", {"variant": variant})
    online_buffer(m)
    before = {k: v.clone() for k, v in m.dp.ema.module.state_dict().items()}
    before_policy = {k: v.clone() for k, v in m.dp.policy.state_dict().items()}
    actor_before = [p.clone() for p in m.learner.actor.parameters()]
    for _ in range(3):
        metrics = m._train_call()
    assert all(np.isfinite(v) for v in metrics.values())
    assert all(torch.equal(before[k], v) for k, v in m.dp.ema.module.state_dict().items())
    assert all(torch.equal(before_policy[k], v) for k, v in m.dp.policy.state_dict().items())
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, m.learner.actor.parameters()))
    if variant == "na":
        assert "loss/noise_critic" in metrics
    assert not any(p.requires_grad for p in m.dp.ema.module.parameters())


def test_changing_the_noise_policy_output_changes_the_actions():
    from methods.base import ActorState

    m = toy_method("dsrl", {"deterministic_eval": True})
    online_buffer(m, n=40)
    obs = np.random.default_rng(1).normal(size=(5, 3)).astype(np.float32)
    a1, _ = m.act(obs, "steered", ActorState.create(0), True)
    assert np.array_equal(a1, m.act(obs, "steered", ActorState.create(9), True)[0])  # deterministic: tanh(mean)
    head = m.learner.actor.net[-1]
    with torch.no_grad():
        head.bias[:4] += 1.5  # the mean of the noise
    a2, _ = m.act(obs, "steered", ActorState.create(0), True)
    assert np.abs(a2 - a1).max() > 1e-3


@pytest.mark.parametrize("variant", ["na", "sac"])
def test_batches_leave_out_decisions_cut_short_by_a_timeout(variant):
    """Issue 25 C2: 5-step episodes of 2-step decisions: each episode's last decision (step 4) takes one step. Cut by
    a timeout, its target (one reward, then V of the state after it) is not the value of the chunk or noise the
    critic sees: it is left out. Cut by a terminal (no bootstrap) it stays, discounted over its one step."""
    m = toy_method("dsrl", {"variant": variant, "batch_size": 512})
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=0, capacity=128)
    for i in range(100):
        end, k = i % 5 == 4, i // 5
        tr = {"obs": rng.normal(size=3), "action": rng.uniform(-1, 1, 1), "reward": float(rng.random()),
              "next_obs": rng.normal(size=3), "terminal": end and k % 2 == 0, "timeout": end and k % 2 == 1}
        if i % 5 in (0, 2, 4):
            tr["noise"] = rng.normal(size=(4, 1))
        buf.add(tr)
    m.attach_buffer(buf)
    b = m.batch()
    idx = b["index"].numpy()
    last = idx % 5 == 4
    assert set(np.unique(idx % 5).tolist()) == {0, 2, 4}
    assert bool(((idx // 5) % 2 == 0)[last].all()), "a decision cut short by a timeout reached the critic"
    assert bool(b["terminal"].numpy()[last].all())
    gamma = float(m.spaces.gamma)
    torch.testing.assert_close(b["discount"][torch.as_tensor(~last)], torch.full((int((~last).sum()),), gamma))
    torch.testing.assert_close(b["discount"][torch.as_tensor(last)], torch.full((int(last.sum()),), gamma ** 0.5))


@pytest.mark.parametrize("variant", ["na", "sac"])
def test_batches_start_at_decisions_and_carry_their_noise(variant):
    m = toy_method("dsrl", {"variant": variant, "batch_size": 256})
    buf = online_buffer(m, n=41)  # the last decision (row 40) still waits on its second step
    b = m.batch()
    idx = b["index"].numpy()
    assert (idx % m.act_steps == 0).all() and idx.max() < 40 and len(set(idx.tolist())) > 10
    if variant == "sac":  # the critic sees each decision's stored noise
        stored = buf.fields_at(idx, ("noise",))["noise"].reshape(len(idx), -1)
        assert torch.equal(b["x"], stored) and float(b["x"].abs().sum()) > 0
    bare = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=0)
    bare.add({"obs": np.zeros(3), "action": np.zeros(1), "reward": 0.0, "next_obs": np.zeros(3), "terminal": False,
              "timeout": False})
    m.attach_buffer(bare)
    with pytest.raises(RuntimeError, match="carries no decision noise"):
        m.batch()


def test_update_uses_the_target_critic_and_the_actor_follows_the_noise_critic():
    """NA: the TD target reads Q̄ (not Q), the actor's loss reads Q^W (not Q^A), the distillation fits Q^W to the
    online Q^A head by head."""
    import copy

    m = toy_method("dsrl")
    online_buffer(m)
    b = m.batch()

    def step(learner):
        learner = copy.deepcopy(learner)
        return learner.gradient_step(b, m.steer, torch.Generator().manual_seed(0))

    def perturbed(name):
        learner = copy.deepcopy(m.learner)
        with torch.no_grad():
            for p in getattr(learner, name).parameters():
                p.add_(0.3 * torch.randn_like(p))
        return learner

    base = step(m.learner)
    assert step(copy.deepcopy(m.learner)) == base  # deterministic given the generator
    target, online, noise = step(perturbed("q_target")), step(perturbed("q")), step(perturbed("qw"))
    assert target["loss/critic"] != base["loss/critic"] and target["loss/actor"] == base["loss/actor"]
    assert online["loss/actor"] == base["loss/actor"]  # Q^A never reaches the actor
    assert noise["loss/actor"] != base["loss/actor"] and noise["loss/critic"] == base["loss/critic"]
    s, w = b["obs"], torch.randn(len(b["obs"]), 4)
    lrn = copy.deepcopy(m.learner)
    with torch.no_grad():
        want = lrn.q(s, m.steer(s, w))
        got = lrn.qw(s, w)
        expected = float(0.5 * ((got - want) ** 2).mean(1).sum())
    assert lrn.distill_step(s, w, m.steer) == pytest.approx(expected, rel=1e-6)


def test_sac_noise_is_bounded_by_the_action_magnitude():
    from methods.base import ActorState

    m = toy_method("dsrl", {"variant": "sac", "init_rollout_steps": 1})
    online_buffer(m, n=0)
    s = torch.zeros(2000, 3)
    w = m.noise(s, ActorState.create(0), eval_mode=False)  # initial rollouts: N(0, I) clipped to ±1.5
    assert float(w.abs().max()) == pytest.approx(1.5) and 0.8 < float(w.std()) < 0.95  # clipped N(0, 1): 0.88
    online_buffer(m, n=8)
    w = m.noise(s, ActorState.create(0), eval_mode=False)  # π^W: 1.5 · tanh
    assert 1.0 < float(w.abs().max()) <= 1.5


def test_initial_rollouts_use_standard_noise_then_the_policy():
    from methods.base import ActorState

    m = toy_method("dsrl", {"init_rollout_steps": 1})  # 1 vector step of 4 envs: 4 decisions of 2 env steps
    online_buffer(m, n=0)
    assert m.init_env_steps() == 8 and m.train_period() == 2 * 4 * 2
    s = torch.zeros(2000, 3)
    w = m.noise(s, ActorState.create(0), eval_mode=False)
    assert abs(float(w.std()) - 1.0) < 0.05 and float(w.abs().max()) > 2.0  # N(0, I), unclipped (NA)
    online_buffer(m, n=8)
    w = m.noise(s, ActorState.create(0), eval_mode=False)
    assert float(w.abs().max()) <= 1.0  # π^W: tanh-squashed to the bound
    due = [m.updates_due(k) for k in range(1, 8 + 3 * 16 + 1)]
    assert sum(due) == 3 and due[8 + 16 - 1] == 1 and due[8 - 1] == 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["na", "sac"])
def test_noise_policy_moves_to_the_rewarded_region(variant):
    """Toy bandit: the bimodal DP's chain maps noise to -0.6 or +0.6, and only +0.6 is rewarded. At the config's
    lr and τ (rewards scaled by 10), after 70 train calls (fixed seed) >= 80% of the steered actor's first
    actions are the rewarded mode, from under half (the untrained π^W)."""
    torch.manual_seed(0)
    m = bimodal_dsrl({"variant": variant, "hidden": [64, 64], "batch_size": 64, "utd": 10,
                      "noise_critic_grad_steps": 10, "init_rollout_steps": 25, "ddim_steps": 5, "reward_scale": 10.0})
    probe = torch.randn(200, 3, generator=torch.Generator().manual_seed(2))
    m.buffer = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=0, capacity=4096)
    start = good_share(m, probe)
    toy_rollouts(m, m.init_env_steps() + 70 * m.train_period())
    end = good_share(m, probe)
    assert start < 0.5 and end >= 0.8, (start, end)
    assert m.buffer.count_carrying("noise", "online") == m.buffer.n_online // m.act_steps  # one per decision


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="dsrl.tau"):
        toy_method("dsrl", {"tau": 2.0})
    with pytest.raises(ConfigError, match="dsrl.utd"):
        toy_method("dsrl", {"utd": 0})
    with pytest.raises(ConfigError, match="dsrl.ddim_steps"):
        toy_method("dsrl", {"ddim_steps": 50})


def provenance(run) -> dict:
    """A run row's provenance (packed into extra_json by the store)."""
    extra = json.loads(run["extra_json"])
    value = extra["provenance_json"]
    return json.loads(value) if isinstance(value, str) else value


def test_plain_dp_equals_bc_dp_at_step_0_and_the_run_records_its_sampling(demo_dataset, store_root):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store
    from tests.helpers import tiny

    cfg = resolve_config("dsrl", "demo", 2, {**tiny("dsrl"), "preset": "test"})
    rid = run_one(cfg, store_root=store_root, sweep_id="d", progress=False)
    rid_bc = run_one(resolve_config("bc_dp", "demo", 2, tiny("bc_dp")), store_root=store_root, sweep_id="d",
                     progress=False)
    store = Store(store_root)
    runs = store.runs(sweep="d").set_index("run_id")
    assert runs.loc[rid, "status"] == "finished"
    sampling = provenance(runs.loc[rid])["actor_sampling"]
    assert set(sampling) == {"steered"} and "exempt from eval.sampler" in sampling["steered"]
    assert provenance(runs.loc[rid_bc])["actor_sampling"] == {}
    from analysis.data import load_sweep

    listed = load_sweep(store_root, "d").sampling  # what the report lists
    assert list(listed) == ["dsrl[preset=test]/steered"] and "DDIM" in listed["dsrl[preset=test]/steered"]
    c = store.curves(sweep="d")
    score = c[(c.metric == "normalized_score") & (c.env_step == 0)]
    plain = score[(score.run_id == rid) & (score.actor == "dp")].value
    bc = score[score.run_id == rid_bc].value
    assert len(plain) == 1 and float(plain.iloc[0]) == float(bc.iloc[0])
    mine = c[c.run_id == rid]
    steered = mine[(mine.metric == "normalized_score") & (mine.actor == "steered") & (mine.env_step == 0)]
    assert len(steered) == 1  # the untrained noise policy's own step-0 score
    for metric in ("loss/critic", "loss/actor", "loss/noise_critic", "train/alpha"):
        rows = mine[mine.metric == metric]
        assert len(rows) > 0 and np.isfinite(rows.value).all() and (rows.phase == "finetune").all(), metric
