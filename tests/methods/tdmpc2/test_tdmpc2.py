"""TD-MPC2 port: parameter counts equal the official ones, two-hot and SimNorm behave, MPPI finds the best
action of a toy model, both terminal values train, and a tiny offline-then-online run lands in the store."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.config.parse import parse_section
from methods.base import ActorState, MethodContext, TaskSpaces
from methods.common.normalize import Normalizer
from methods.tdmpc2 import TDMPC2, heuristic_discount
from methods.tdmpc2.config import TDMPC2Config
from methods.tdmpc2.model import SimNorm, TwoHot, WorldModel, model_dims


def _method(obs_dim=17, act_dim=6, episode=1000, **cfg):
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=-np.ones(act_dim, np.float32),
                        act_high=np.ones(act_dim, np.float32), max_episode_steps=episode)
    nrm = Normalizer(np.zeros(obs_dim), np.ones(obs_dim), -np.ones(act_dim), np.ones(act_dim))
    return TDMPC2(parse_section(TDMPC2Config, cfg, "tdmpc2."), MethodContext(spaces=spaces, normalizer=nrm))


@pytest.mark.parametrize("size,expected", [(5, 4_958_826), (1, 1_212_859)])
def test_parameter_counts_equal_official(size, expected):
    # measured on the official code at e9f5932 with cheetah-run's shapes (obs 17, act 6, episodic off)
    official = model_dims(17, 6, TDMPC2Config(model_size=size, episodic=False))
    assert WorldModel(official).trainable_parameters() == expected
    # the termination head adds one more MLP (latent -> 2 x mlp_dim -> 1)
    d = model_dims(17, 6, TDMPC2Config(model_size=size))
    extra = WorldModel(d).trainable_parameters() - expected
    assert extra == (d.latent_dim + 3) * d.mlp_dim + (d.mlp_dim + 3) * d.mlp_dim + d.mlp_dim + 1


def test_two_hot_round_trip():
    th = TwoHot(101, -10.0, 10.0)
    x = torch.tensor([[-300.0], [-1.0], [0.0], [0.37], [5.0], [1234.5]])
    enc = th.encode(x)
    assert torch.allclose(enc.sum(-1), torch.ones(len(x)))
    assert ((enc > 0).sum(-1) <= 2).all()
    back = th.decode(torch.log(enc.clamp_min(1e-30)))
    assert torch.allclose(back, x, rtol=1e-4, atol=1e-4)
    # beyond the support it saturates at symexp(+-10)
    big = th.decode(torch.log(th.encode(torch.tensor([[1e9]])).clamp_min(1e-30)))
    assert torch.allclose(big, torch.expm1(torch.tensor([[10.0]])), rtol=1e-4)
    # the soft cross-entropy is minimal at the two-hot target
    ce = th.cross_entropy(torch.log(enc.clamp_min(1e-30)), x)
    assert (ce <= th.cross_entropy(torch.zeros_like(enc), x)).all()


def test_simnorm_groups_sum_to_one():
    y = SimNorm(8)(torch.randn(4, 3, 64) * 5)
    groups = y.view(4, 3, 8, 8).sum(-1)
    assert torch.allclose(groups, torch.ones_like(groups), atol=1e-6)
    assert (y >= 0).all()
    z = WorldModel(model_dims(5, 2, TDMPC2Config(model_size=1))).encode(torch.randn(7, 5))
    assert torch.allclose(z.view(7, -1, 8).sum(-1), torch.ones(7, z.shape[-1] // 8), atol=1e-5)


class _ToyModel:
    """Replaces the learned pieces: the latent is constant, reward = -|a - target|^2, no termination, Q = 0."""

    def __init__(self, model, target):
        self.model, self.target = model, target

    def install(self):
        m, th, target = self.model, self.model.two_hot, self.target
        latent = m.dims.latent_dim
        m.encode = lambda obs: torch.zeros(obs.shape[0], latent)
        m.next = lambda z, a: z
        m.reward = lambda z, a: torch.log(th.encode(-((a - target) ** 2).sum(-1, keepdim=True)).clamp_min(1e-30))
        m.termination_logit = lambda z: torch.full((z.shape[0], 1), -10.0)
        m.q_two = lambda z, a, members, reduce, **kw: torch.zeros(z.shape[0], 1)


def test_mppi_picks_the_best_action_of_a_toy_model():
    torch.manual_seed(0)
    meth = _method(obs_dim=3, act_dim=2, model_size=1, mlp_dim=32, latent_dim=16, enc_dim=32)
    target = torch.tensor([0.6, -0.35])
    _ToyModel(meth.model, target).install()
    state = ActorState.create(0)
    obs = np.zeros((2, 3), np.float32)  # a batch of 2: every row plans independently
    a, _ = meth.act(obs, "mpc", state, eval_mode=True)
    assert a.shape == (2, 1, 2)
    assert np.abs(a[:, 0] - target.numpy()).max() < 0.08, a
    # the warm start is kept per env, and the plan's mean has converged on the target
    mean = state.memory["prev_mean"]
    assert mean.shape == (2, 3, 2) and (mean - target).abs().max() < 0.08  # (env, horizon, action)
    # a random reward landscape far from the target gives a different plan (the test can fail)
    meth2 = _method(obs_dim=3, act_dim=2, model_size=1, mlp_dim=32, latent_dim=16, enc_dim=32)
    _ToyModel(meth2.model, torch.tensor([-0.8, 0.9])).install()
    b, _ = meth2.act(obs, "mpc", ActorState.create(0), eval_mode=True)
    assert np.abs(b[:, 0] - target.numpy()).max() > 0.5


def test_planner_respects_predicted_termination():
    """Two actions with reward 1 per step; one is predicted to terminate at once: the planner avoids it."""
    meth = _method(obs_dim=3, act_dim=1, model_size=1, mlp_dim=32, latent_dim=16, enc_dim=32)
    m, th = meth.model, meth.model.two_hot
    m.encode = lambda obs: torch.zeros(obs.shape[0], 16)
    m.next = lambda z, a: torch.cat([a.expand(-1, 1), z[:, 1:]], -1)  # latent remembers the last action
    m.reward = lambda z, a: torch.log(th.encode(torch.ones(z.shape[0], 1)).clamp_min(1e-30))
    m.termination_logit = lambda z: torch.where(z[:, :1] > 0, 10.0, -10.0)  # a > 0 ends the episode
    m.q_two = lambda z, a, members, reduce, **kw: torch.full((z.shape[0], 1), 10.0)
    a, _ = meth.act(np.zeros((1, 3), np.float32), "mpc", ActorState.create(0), eval_mode=True)
    assert a[0, 0, 0] <= 0.0


@pytest.mark.parametrize("terminal", ["q", "v"])
def test_updates_reduce_losses(terminal):
    torch.manual_seed(0)
    meth = _method(obs_dim=5, act_dim=2, episode=200, model_size=1, mlp_dim=64, latent_dim=32, enc_dim=64,
                   batch_size=64, planner={"terminal": terminal, "num_samples": 64, "num_elites": 8,
                                           "num_pi_trajs": 4, "iterations": 2})
    assert meth.discount == pytest.approx(heuristic_discount(200, 5, 0.95, 0.995)) == pytest.approx(0.975)
    batch = meth._synthetic_batch(64)
    first = meth._step(batch)
    for _ in range(60):
        last = meth._step(batch)
    assert last["loss/reward"] < first["loss/reward"] and last["loss/consistency"] < first["loss/consistency"]
    if terminal == "v":
        assert "loss/v" in last and np.isfinite(last["loss/v"])
        assert meth.model.value_head is not None
    a, _ = meth.act(np.zeros((3, 5), np.float32), "mpc", ActorState.create(1), eval_mode=False)
    assert a.shape == (3, 1, 2) and np.isfinite(a).all() and np.abs(a).max() <= 1.0


@pytest.mark.slow
def test_tiny_offline_then_online_run(demo_dataset, store_root):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store
    from tests.helpers import TINY

    cfg = resolve_config("tdmpc2", "demo", 0, {**TINY, "preset": "test", "tdmpc2.online_ratio": 0.25})
    assert cfg.section.planner.terminal == "q" and cfg.section.online_ratio == 0.25
    rid = run_one(cfg, store_root=store_root, sweep_id="t", progress=False)
    store = Store(store_root)
    row = store.runs(sweep="t").iloc[0]
    assert row.status == "finished" and row.method == "tdmpc2"
    assert int(row.env_steps) >= TINY["online.steps"]
    # offline updates, then one update per online env step (utd 1, no seeding after pretraining)
    assert int(row.grad_steps) >= TINY["pretrain.steps"] + TINY["online.steps"]
    c = store.curves(sweep="t")
    for phase in ("pretrain", "finetune"):
        losses = c[(c.phase == phase) & c.metric.str.startswith("loss/")]
        assert len(losses) > 0 and np.isfinite(losses.value).all()
        assert {"loss/consistency", "loss/value", "loss/reward", "loss/termination", "loss/pi"} <= set(losses.metric)
    scores = c[c.metric == "normalized_score"]
    assert set(scores.actor) == {"mpc", "pi"} and scores.env_step.max() >= TINY["online.steps"]
    assert rid == row.run_id


def test_sequences_are_drawn_per_episode_like_the_official_buffer():
    """The official buffer (torchrl SliceSampler) draws an episode uniformly, then a start within it. Drawing
    starts uniformly over transitions instead lets one long episode drown out many short, terminating ones:
    the terminations the termination head and the TD targets of an episodic task learn from."""
    from methods.common.replay import ReplayBuffer

    meth = _method(obs_dim=2, act_dim=1, model_size=1, mlp_dim=32, latent_dim=16, enc_dim=32, batch_size=512)
    buf = ReplayBuffer(2, 1, seed=0, capacity=2000)
    for n, term in [(1000, False)] + [(5, True)] * 50:  # one 1000-step episode, then 50 falls after 5 steps
        for i in range(n):
            buf.add({"obs": np.zeros(2), "action": np.zeros(1), "reward": 1.0, "next_obs": np.zeros(2),
                     "terminal": term and i == n - 1, "timeout": (not term) and i == n - 1})
    meth.attach_buffer(buf)
    seen = []
    meth._step = lambda batch: seen.append(batch["terminal"].any(1).float().mean().item()) or {}
    for _ in range(4):
        meth._online_step(buf)
    # per episode: 50/51 episodes are short, 1 of the 3 starts of each holds the terminal -> ~0.33
    assert 0.27 < np.mean(seen) < 0.39, seen
    meth.cfg.episode_sampling = False  # uniform over starts: 50 of 1148 starts -> ~0.04
    seen.clear()
    for _ in range(4):
        meth._online_step(buf)
    assert np.mean(seen) < 0.08, seen
