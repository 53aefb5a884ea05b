"""bc_cont, the continued-BC control: online, it takes BC steps on offline chunks only, at the configured rate,
with fresh optimiser moments at its first update, and its DP moves."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.common.dp_config import DPConfig
from methods.common.replay import ReplayBuffer
from bench.config.parse import parse_section
from methods.common.section import ConfigError
from methods.registry import get_method_class
from tests.helpers import dp_context


def build(**section):
    cls = get_method_class("bc_cont")
    return cls(parse_section(cls.Config, section, "bc_cont."), dp_context(DPConfig(hidden=[32, 32], denoising_steps=5)))


def with_buffer(m, n=400, seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 5)).astype(np.float32)
    act = np.tanh(obs[:, :2]).astype(np.float32)
    ends = np.zeros(n, bool)
    ends[49::50] = True
    buf = ReplayBuffer(5, 2, seed=seed, capacity=n + 100)
    buf.add_offline(obs, act, np.zeros(n, np.float32), obs, np.zeros(n, bool), ends)
    m.attach_buffer(buf)
    return buf


def test_bc_steps_on_offline_chunks_at_the_configured_rate(monkeypatch):
    m = build(update_every=2, updates_per_round=3, batch_size=16)
    buf = with_buffer(m)
    m.dp.optim.state[next(m.dp.policy.parameters())] = {"step": torch.tensor(5.0)}  # stale common-start moments
    seen = []
    real = m.dp.bc_step
    monkeypatch.setattr(m.dp, "bc_step", lambda b, n, source="offline": seen.append((n, source)) or real(b, n, source))
    before = [p.detach().clone() for p in m.dp.ema.module.parameters()]
    steps = sum(len(m.update(buf, t)) for t in range(1, 11))
    assert steps == 15 and seen == [(16, "offline")] * 15  # 5 rounds (t = 2, 4, ..., 10) x 3 steps
    assert m.started and all(s.get("step", 0) == 15 for s in m.dp.optim.state.values())  # fresh moments
    assert any(not torch.equal(a, b) for a, b in zip(before, m.dp.ema.module.parameters()))
    assert m.extra_state() == {"started": True}


def test_lr_and_ema_decay_apply_online_and_the_config_is_checked():
    m = build(lr=5e-5, ema_decay=0.9)
    m.update(with_buffer(m), 1)
    assert all(g["lr"] == 5e-5 for g in m.dp.optim.param_groups) and m.dp.ema.decay == 0.9
    with pytest.raises(ConfigError, match="update_every"):
        build(update_every=0)
    with pytest.raises(ConfigError, match="ema_decay"):
        build(ema_decay=1.0)
