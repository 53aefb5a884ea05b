"""The run key compile_train (methods/common/compiling.py): the DP's denoising step, IQL's critic update and MODIP's
critic losses, compiled, compute what the eager steps compute, in one graph each; the key reaches them from the run
config, leaves run ids and the common start's cache key alone at its default, and is recorded on timing rows.

The compiled steps here use the aot_eager backend (dynamo's tracing and AOTAutograd's forward and backward graphs,
without inductor's code generation, 20-30 s per function on this CPU): what is checked is that the steps trace
whole and that the key is wired; inductor's speed is benchmarks/compile_train.py's.
"""
from __future__ import annotations

import hashlib
import json

import pytest
import torch

from bench.config.run import run_id_of
from bench.runner import common_start as runner_common_start
from bench.runner.assemble import assemble
from bench.runner.timing import time_components
from methods.common import compiling
from methods.common.diffusion import DPModule
from methods.common.dp_config import DPConfig
from tests.helpers import runner_cfg, toy_method


@pytest.fixture
def aot_eager(monkeypatch):
    monkeypatch.setattr(compiling, "BACKEND", "aot_eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    assert not torch._dynamo.utils.counters["graph_break"], dict(torch._dynamo.utils.counters["graph_break"])
    torch._dynamo.reset()


def _close(a, b, atol=1e-6):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, atol=atol, rtol=1e-5)


def test_off_is_the_function_itself():
    f = DPModule._weighted_losses
    assert compiling.compile_step(f, False) is f


def test_the_compiled_dp_step_is_the_eager_step(aot_eager):
    torch.manual_seed(0)
    cfg = DPConfig(hidden=[32, 32], time_dim=8, denoising_steps=10)
    eager, comp = DPModule(3, 2, cfg, 4, "cpu"), DPModule(3, 2, cfg, 4, "cpu", compile_train=True)
    comp.load_state_dict(eager.state_dict())
    x0, cond, w = torch.rand(16, 4, 2) * 2 - 1, torch.randn(16, 3), torch.rand(16)
    for weights in (None, w):
        outs = [m.train_step_errors(x0, cond, torch.Generator().manual_seed(1), weights) for m in (eager, comp)]
        assert outs[0][0] == pytest.approx(outs[1][0], abs=1e-6)
        torch.testing.assert_close(outs[0][1], outs[1][1], atol=1e-6, rtol=1e-5)
        _close(eager.policy.parameters(), comp.policy.parameters())
        _close(eager.ema.module.parameters(), comp.ema.module.parameters())


def test_the_compiled_iql_update_is_the_eager_update(aot_eager):
    eager, comp = toy_method("idql"), toy_method("idql", compile_train=True)
    comp.critics.load_state_dict(eager.critics.state_dict())
    g = torch.Generator().manual_seed(0)
    s, a, s2 = torch.randn(32, 3, generator=g), torch.randn(32, 2, 1, generator=g), torch.randn(32, 3, generator=g)
    r, term = torch.randn(32, generator=g), torch.rand(32, generator=g) < 0.2
    for _ in range(2):
        m_e, m_c = (m.critics.update(s, a, r, s2, term) for m in (eager, comp))
        assert m_e == pytest.approx(m_c, abs=1e-6)
    _close(eager.critics.parameters(), comp.critics.parameters())


@pytest.mark.parametrize("target", ["indep", "policy"])
def test_the_compiled_modip_critic_losses_are_the_eager_losses(aot_eager, target):
    eager, comp = (toy_method("modip", {"critic.target": target}, compile_train=c) for c in (False, True))
    comp.critics.load_state_dict(eager.critics.state_dict())
    g = torch.Generator().manual_seed(0)
    batch = {"obs": torch.randn(32, 3, generator=g), "action": torch.randn(32, 1, generator=g),
             "next_obs": torch.randn(32, 3, generator=g), "reward": torch.randn(32, generator=g),
             "terminal": torch.rand(32, generator=g) < 0.2}
    grads, metrics = [], []
    for m in (eager, comp):
        loss, met = m.critics.loss(batch, lambda s: torch.tanh(s[:, :1]))
        loss.backward()
        grads.append([p.grad for p in m.critics.parameters_to_train()])
        metrics.append(met)
    assert metrics[0] == pytest.approx(metrics[1], abs=1e-6)
    _close(*grads)


def test_the_key_is_id_neutral_keyed_when_on_and_recorded(demo_dataset, aot_eager):
    off, on = runner_cfg("bc_dp"), runner_cfg("bc_dp", compile_train=True)
    assert run_id_of(runner_cfg("bc_dp", compile_train=False)) == run_id_of(off) != run_id_of(on)
    # the common start's cache key: as before the key at its default, another one when on
    keyed = {"version": runner_common_start.CACHE_VERSION, "common_start": off.common_start.model_dump(mode="json"),
             "dataset": "h", "chunk": 4, "seed": off.seed,
             "dp": off.dp.model_dump(mode="json", exclude=set(DPConfig.SAMPLING_KEYS))}
    before = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
    assert runner_common_start.cache_key(off, "h", 4) == before != runner_common_start.cache_key(on, "h", 4)
    for cfg in (off, on):
        m = assemble(cfg).method
        assert (m.dp._losses != m.dp._weighted_losses) is cfg.compile_train  # compiled, or the bound method
        rows = time_components(m, (1,), warmup=0, reps=1)
        assert rows and all(r["compile_train"] is cfg.compile_train for r in rows)
