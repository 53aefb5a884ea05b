"""benchmarks/modip_model_diag.py (the hopper issue's B2 and B4): its pieces, and its --smoke run end to end."""
from __future__ import annotations

import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from tests.helpers import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))

import modip_model_diag as diag


def test_hopper_rule_is_the_envs_termination():
    """MBPO's hand-written Hopper rule on observations agrees with Hopper-v5's `terminated` step by step."""
    gym = pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    env = gym.make("Hopper-v5")
    rng = np.random.default_rng(0)
    flags, rule = [], []
    for ep in range(5):
        env.reset(seed=ep)
        for _ in range(1000):
            obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 3))
            flags.append(term)
            rule.append(bool(diag.hopper_unhealthy(obs[None])[0]))
            if term or trunc:
                break
    env.close()
    assert sum(flags) == 5 and flags == rule


def test_auroc():
    assert diag.auroc(np.array([0.9, 0.8]), np.array([0.1, 0.2, 0.3])) == 1.0
    assert diag.auroc(np.array([0.1]), np.array([0.9])) == 0.0
    assert diag.auroc(np.array([0.5]), np.array([0.5])) == 0.5
    assert np.isnan(diag.auroc(np.zeros(0), np.array([0.5])))


def _fake_method(v: float, scale: float = 10.0):
    """critics.value = the constant v; the identity normaliser."""
    critics = types.SimpleNamespace(value=lambda s: torch.full(s.shape[:1], v), value_scale=torch.tensor(scale))
    return types.SimpleNamespace(critics=critics, normalizer=types.SimpleNamespace(norm_obs=lambda x: x))


def test_v_vs_mc_truncation_modes():
    g, T = 0.9, 30
    ep_trunc = {"obs": np.zeros((T, 2), np.float32), "reward": np.ones(T), "terminated": False, "truncated": True,
                "last_obs": np.zeros(2, np.float32)}
    m = _fake_method(1.0 / (1 - g))  # V = the value of reward 1 forever: exact under bootstrap
    boot = diag.v_vs_mc(m, [ep_trunc], g, "bootstrap", window=10)
    assert boot["states"] == T and abs(boot["gap"]) < 1e-9
    drop = diag.v_vs_mc(m, [ep_trunc], g, "drop", window=10)
    assert drop["states"] == T - 9  # states with at least 10 steps left
    # without a tail, the first state's MC misses g^T of V; the last kept state's misses g^10
    assert 0 < drop["gap"] <= g ** 10 / (1 - g) + 1e-9
    ep_term = dict(ep_trunc, terminated=True, truncated=False)
    for mode in ("bootstrap", "drop"):
        res = diag.v_vs_mc(m, [ep_term], g, mode, window=10)
        mc = np.array([(1 - g ** (T - i)) / (1 - g) for i in range(T)])
        assert res["states"] == T and abs(res["mc"] - mc.mean()) < 1e-9
        assert abs(res["gap_norm"] - res["gap"] / 10.0) < 1e-12


@pytest.mark.slow
def test_smoke_run(tmp_path):
    """--smoke: the checkpoint made by run_one, three models and the baseline, both B4 truncation modes, the
    recorder checked against evaluate_actor, a headline last."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "modip_model_diag.py"), "--smoke"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for section in ("## B2: the models", "## B2: held-out obs NMSE", "## B2: held-out reward NMSE",
                    "## B2: termination", "## B4: V against"):
        assert section in out
    for model in ("| ckpt |", "| demo |", "| mbpo |", "| persist |"):
        assert model in out
    assert "| bootstrap |" in out and "| drop |" in out and "dp episodes" in out and "mpc episodes" in out
    b4 = [line for line in out.splitlines() if "| offline held-out | drop |" in line]
    assert len(b4) == 4 and sum("| post-offline |" in line for line in b4) == 2  # --v-env-steps: a later one each
    last = out.strip().splitlines()[-1]
    assert last.startswith("modip_model_diag: demo seeds 10,11, H=4: held-out obs NMSE")
    assert "nan" not in last.lower()
