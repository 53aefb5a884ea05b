"""Foundation tests: the replay buffer, configs, the DP, BC learning, and one-line errors for bad input."""
from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from bench.config.layers import resolve_config
from bench.runner.lifecycle import run_one
from methods.common.diffusion import DiffusionPolicy
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.common.section import ConfigError
from results.store import Store
from tests.conftest import TINY


def _buffer(n_eps=3, ep_len=5, extras=None):
    b = ReplayBuffer(2, 1, extras=extras, seed=0)
    obs = np.arange(n_eps * ep_len, dtype=np.float32)[:, None].repeat(2, 1)
    term = np.zeros(n_eps * ep_len, bool)
    tout = np.zeros(n_eps * ep_len, bool)
    term[ep_len - 1] = True  # episode 0 ends in a terminal, the others in timeouts
    tout[2 * ep_len - 1] = tout[3 * ep_len - 1] = True
    b.add_offline(obs, obs[:, :1], obs[:, 0], obs + 1, term, tout)
    return b


def test_buffer_sequences_never_cross_episodes():
    b = _buffer()
    s = b.sample_sequences(200, 3, source="offline")
    o = s["obs"][..., 0].numpy()
    assert np.all(np.diff(o, axis=1) == 1)  # consecutive
    assert np.all((o[:, 0] // 5) == (o[:, -1] // 5))  # same episode
    assert set(np.unique(o[:, 0] % 5)) == {0, 1, 2}


def test_buffer_chunks_pad_with_last_action_of_episode():
    b = _buffer()
    c = b.sample_chunks(100, 4, idx=np.array([3, 4, 8, 10]))
    a = c["action_chunk"][..., 0].numpy()
    np.testing.assert_array_equal(a[0], [3, 4, 4, 4])
    np.testing.assert_array_equal(a[1], [4, 4, 4, 4])
    np.testing.assert_array_equal(a[2], [8, 9, 9, 9])
    np.testing.assert_array_equal(a[3], [10, 11, 12, 13])


def test_buffer_mixing_extras_and_save_load():
    b = _buffer(extras={"label": (2,)})
    for i in range(6):
        b.add({"obs": np.full(2, 100 + i), "action": np.zeros(1), "reward": 1.0, "next_obs": np.zeros(2),
               "terminal": False, "timeout": i == 5, "label": np.ones(2) * i if i % 2 == 0 else None})
    assert b.n_online == 6
    s = b.sample(1000, source="mixed", online_ratio=0.25)
    frac = (s["obs"][:, 0] >= 100).float().mean().item()
    assert 0.2 < frac < 0.3
    lab = b.sample(50, require="label")
    assert lab["has_label"].all() and set(lab["label"][:, 0].tolist()) <= {0.0, 2.0, 4.0}
    # recent=k draws only among the last k transitions (labels at online steps 0, 2, 4; the last 3 hold only 4)
    recent = b.sample(50, source="online", require="label", recent=3)
    assert set(recent["label"][:, 0].tolist()) == {4.0}
    assert b.carries("label", source="online", recent=3) and not b.carries("label", source="offline")
    assert not b.carries("label", source="online", recent=1)  # online step 5 carries no label
    st = b.state_dict()
    b2 = ReplayBuffer(2, 1, extras={"label": (2,)})
    b2.load_state_dict(st)
    x1, x2 = b.sample(32), b2.sample(32)
    for k in x1:
        assert torch.equal(x1[k], x2[k])
    # the online episode got its own id, and its sequence sampling stays inside it
    seq = b2.sample_sequences(20, 6, source="online")
    assert (seq["obs"][:, 0, 0] == 100).all()


def test_normalizer_actions_roundtrip():
    n = Normalizer.fit(np.random.randn(100, 3) * 5 + 2, act_low=[-2, 0], act_high=[2, 1])
    a = torch.tensor([[-2.0, 0.0], [0.0, 0.5], [2.0, 1.0]])
    z = n.norm_act(a)
    assert torch.allclose(z, torch.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(n.unnorm_act(z), a)


def test_dp_learns_a_bimodal_target_and_ddim_samples():
    torch.manual_seed(0)
    dp = DiffusionPolicy(1, 1, DPConfig(hidden=[64, 64]), chunk=2)
    opt = torch.optim.Adam(dp.parameters(), lr=3e-3)
    cond = torch.zeros(256, 1)
    losses = []
    for _ in range(1500):
        x0 = (torch.randint(0, 2, (256, 1, 1)).float() * 1.2 - 0.6).expand(256, 2, 1)
        loss = dp.loss(x0, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-100:]) < 0.3 * np.mean(losses[:50])
    g = torch.Generator().manual_seed(0)
    x = dp.sample(torch.zeros(200, 1), generator=g)
    assert x.shape == (200, 2, 1) and x.abs().max() <= 1
    near = ((x - 0.6).abs() < 0.25) | ((x + 0.6).abs() < 0.25)
    assert near.float().mean() > 0.8
    dp.denoiser_calls = 0
    dp.sample(torch.zeros(4, 1), generator=g, sampler="ddim")
    assert dp.denoiser_calls == dp.cfg.ddim_steps


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="'dp.samplr'.*dp.sampler"):
        resolve_config("bc_dp", "demo", 0, ["dp.samplr=ddim"])
    with pytest.raises(ConfigError, match="'eval.sampler' must be one of"):
        resolve_config("bc_dp", "demo", 0, ["eval.sampler=euler"])
    with pytest.raises(ConfigError, match="'dp' does not apply"):
        resolve_config("bc_gauss", "demo", 0, ["dp.sampler=ddim"])
    cfg = resolve_config("bc_dp", "demo", 0, ["eval.sampler=ddim"])
    assert cfg.dp.eval_sampler == "ddim"


@pytest.mark.parametrize("method", ["bc_gauss", "bc_dp"])
def test_bc_loss_falls_and_rows_are_right(method, demo_dataset, store_root):
    steps = {"pretrain.steps": 300, "pretrain.log_every": 50}
    if method == "bc_dp":  # its training is the common start
        steps = {"common_start.steps": 300, "common_start.log_every": 50}
    cfg = resolve_config(method, "demo", 0, {**TINY, **steps})
    rid = run_one(cfg, store_root=store_root, sweep_id="bc", progress=False)
    c = Store(store_root).curves(sweep="bc", run_ids=[rid])
    loss = c[c.metric.str.startswith("loss/")].groupby("metric")
    for _, g in loss:
        g = g.sort_values("grad_step")
        assert g.value.iloc[-1] < g.value.iloc[0]
    sc = c[c.metric == "normalized_score"]
    assert len(sc) == 1 and sc.env_step.iloc[0] == 0 and np.isfinite(sc.value.iloc[0])
    runs = Store(store_root).runs(sweep="bc")
    assert runs.iloc[0].grad_steps == 300 and runs.iloc[0].status == "finished"


def _mbench(*args, env=None):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=e,
                          timeout=300)


def _bad_hdf5(path, obs_dim=9, nan=False):
    n = 50
    obs = np.random.randn(n, obs_dim).astype(np.float32)
    if nan:
        obs[7, 2] = np.nan
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((n, 1), np.float32)
        f["rewards"] = np.ones(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % 25 == 24


@pytest.mark.parametrize("case", ["method", "task", "key", "obs_dim", "nan", "missing"])
def test_bad_input_gives_one_line_error(case, tmp_path):
    store = str(tmp_path / "store")
    base = ["--store", store, "run", "--quiet", "--set", "pretrain.steps=2"]
    if case == "method":
        r, want = _mbench(*base, "--method", "bc_dpp", "--task", "demo"), "unknown method 'bc_dpp'"
    elif case == "task":
        r, want = _mbench(*base, "--method", "bc_dp", "--task", "hoper-medium"), "unknown task 'hoper-medium'"
    elif case == "key":
        r, want = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", "dp.hiden=[8]"), "'dp.hiden'"
    elif case == "obs_dim":
        _bad_hdf5(tmp_path / "d.hdf5", obs_dim=5)
        r = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", f"dataset_path={tmp_path / 'd.hdf5'}")
        want = "obs dim 5"
    elif case == "nan":
        _bad_hdf5(tmp_path / "d.hdf5", nan=True)
        r = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", f"dataset_path={tmp_path / 'd.hdf5'}")
        want = "NaN"
    else:
        r = _mbench(*base, "--method", "bc_dp", "--task", "hopper-medium",
                    env={"MINARI_DATASETS_PATH": str(tmp_path / "none")})
        want = "mbench data make mujoco/hopper/medium-v0"
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert want in lines[0]
    # nothing lands in the store as finished
    import pathlib

    if pathlib.Path(store).exists():
        runs = Store(store).runs()
        assert not (runs.status == "finished").any() if len(runs) else True
