"""Datasets: a tiny `data make` round trip through our loader and Minari's, the D4RL hdf5 layout, bad input."""
from __future__ import annotations

import argparse
import json

import h5py
import numpy as np
import pytest
import torch

from bench.data import DatasetError
from bench.data.d4rl import load_d4rl_hdf5, make_dataset
from bench.data.loaders import load_dataset
from bench.data.make import add_cli
from bench.data.minari_io import flatten_obs

torch.set_num_threads(1)
DEMO_ID = "mbench/inverted-double-pendulum/medium-v0"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    summary = make_dataset(DEMO_ID, root=root, agent_steps=300, dataset_size=250, progress=False)
    return root, summary


def test_make_round_trip_through_our_loader_and_minari(made, monkeypatch):
    root, summary = made
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    assert summary["status"] == "made" and summary["agent_steps"] == 300
    ds = load_dataset(DEMO_ID, obs_dim=9, act_dim=1)
    assert len(ds) == 250 == summary["collected"]["transitions"]
    assert ds.observations.dtype == np.float32 and ds.terminals.dtype == bool
    assert ds.ref_min == pytest.approx(summary["ref_min"]) and ds.ref_max == pytest.approx(summary["ref_max"])
    # Episode boundaries: every episode ends in exactly one flag, and the returns match what the make recorded.
    assert not np.any(ds.terminals & ds.timeouts)
    assert len(ds.episodes()) == summary["collected"]["episodes"]
    assert ds.episode_returns().mean() == pytest.approx(summary["collected"]["mean_return"], rel=1e-4)
    # s' of a step is s of the next step inside an episode.
    a, b = ds.episodes()[0]
    np.testing.assert_array_equal(ds.next_observations[a:b - 1], ds.observations[a + 1:b])
    prov = ds.provenance
    assert prov["source"] == "made" and prov["agent"]["algo"] == "sac" and prov["agent"]["steps"] == 300
    assert prov["medium_checkpoint"]["step"] in [c["step"] for c in prov["checkpoints"]]
    assert prov["expert_checkpoint"]["step"] == 300
    assert prov["refs"]["ref_min_episodes"] == 100

    import minari

    upstream = minari.load_dataset(DEMO_ID)
    assert upstream.total_steps == len(ds) and upstream.total_episodes == len(ds.episodes())
    eps = list(upstream.iterate_episodes())
    np.testing.assert_allclose(eps[0].observations[:-1], ds.observations[: len(eps[0].rewards)], rtol=1e-6)
    assert upstream.storage.metadata["ref_max_score"] == pytest.approx(summary["ref_max"])
    assert upstream.recover_environment().spec.max_episode_steps == 200
    assert DEMO_ID in minari.list_local_datasets()  # the agent cache does not confuse Minari's listing


def test_other_qualities_reuse_the_agent(made, monkeypatch):
    root, summary = made
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    replay = make_dataset("mbench/inverted-double-pendulum/medium-replay-v0", root=root, agent_steps=300,
                          dataset_size=250, progress=False)
    assert replay["train_wall_s"] < 1.0  # no retraining
    assert replay["collected"]["transitions"] == summary["medium_checkpoint"]["step"]
    me = make_dataset("mbench/inverted-double-pendulum/medium-expert-v0", root=root, agent_steps=300,
                      dataset_size=250, progress=False)
    assert me["collected"]["transitions"] == 500
    ds = load_dataset("mbench/inverted-double-pendulum/medium-expert-v0")
    medium = load_dataset(DEMO_ID)
    np.testing.assert_array_equal(ds.observations[:250], medium.observations)  # the medium half is the medium set
    again = make_dataset(DEMO_ID, root=root, progress=False)
    assert again["status"] == "exists"


def test_behaviour_agent_resumes(tmp_path):
    import gymnasium as gym

    from bench.data.behaviour import BehaviourTrainer, SACConfig

    cfg = SACConfig(hidden=16, start_steps=50, checkpoint_every=50, eval_episodes=1, batch_size=32)

    def make():
        return gym.make("InvertedDoublePendulum-v5", max_episode_steps=50)

    first = BehaviourTrainer(make, tmp_path, cfg)
    first.train(100, progress=False)
    resumed = BehaviourTrainer(make, tmp_path, cfg)
    assert resumed.step >= 100 and resumed.replay.size == resumed.step
    assert [c["step"] for c in resumed.checkpoints] == [0, 50, 100]
    resumed.train(150, progress=False)
    assert resumed.step == 150 and [c["step"] for c in resumed.checkpoints][-1] == 150
    np.testing.assert_array_equal(resumed.replay.data["observations"][:100], first.replay.data["observations"][:100])
    with pytest.raises(RuntimeError, match="another config"):
        BehaviourTrainer(make, tmp_path, SACConfig(hidden=32))


def _write_d4rl(path, *, next_obs=False, nan_field=None, drop=None):
    """The real D4RL layout: 3 episodes (terminal, timeout, cut off with neither flag)."""
    n = 10
    obs = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    data = {
        "observations": obs,
        "actions": np.linspace(-1, 1, n * 2, dtype=np.float32).reshape(n, 2),
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": np.zeros(n, bool),
    }
    data["terminals"][2] = True  # episode 0: rows 0-2, falls
    data["timeouts"][6] = True  # episode 1: rows 3-6, time limit; episode 2: rows 7-9, cut off
    if next_obs:
        data["next_observations"] = obs + 0.5
    if nan_field:
        data[nan_field] = data[nan_field].copy()
        data[nan_field][4] = np.nan
    with h5py.File(path, "w") as f:
        for k, v in data.items():
            if k != drop:
                f.create_dataset(k, data=v)
        f.create_dataset("infos/qpos", data=np.zeros((n, 4), np.float32))
        f.create_dataset("infos/action_log_probs", data=np.zeros(n, np.float32))
        f.create_dataset("metadata/algorithm", data=b"SAC")
        f.create_dataset("metadata/iteration", data=np.int64(1000))
        f.create_dataset("metadata/policy/fc0/weight", data=np.zeros((2, 2), np.float32))
    return path


def test_d4rl_hdf5_derives_next_obs_and_keeps_timeouts_apart(tmp_path):
    ds = load_dataset(_write_d4rl(tmp_path / "hopper_medium.hdf5"), obs_dim=3, act_dim=2)
    # The final rows of the timeout and cut-off episodes have no s' and are dropped; the row before inherits.
    assert len(ds) == 8
    np.testing.assert_array_equal(ds.rewards, [0, 1, 2, 3, 4, 5, 7, 8])
    np.testing.assert_array_equal(np.flatnonzero(ds.terminals), [2])
    np.testing.assert_array_equal(np.flatnonzero(ds.timeouts), [5, 7])
    np.testing.assert_array_equal(ds.next_observations[0], [3, 4, 5])  # obs of row 1
    np.testing.assert_array_equal(ds.next_observations[5], [18, 19, 20])  # obs of dropped row 6
    np.testing.assert_array_equal(ds.next_observations[7], [27, 28, 29])  # obs of dropped row 9
    assert [b - a for a, b in ds.episodes()] == [3, 3, 2]
    assert ds.provenance["metadata"]["algorithm"] == "SAC" and ds.provenance["metadata"]["iteration"] == 1000
    assert ds.dataset_id == "hopper_medium"


def test_d4rl_hdf5_with_next_observations_keeps_every_row(tmp_path):
    ds = load_d4rl_hdf5(_write_d4rl(tmp_path / "x.hdf5", next_obs=True), dataset_id="mine")
    assert len(ds) == 10 and ds.dataset_id == "mine"
    np.testing.assert_array_equal(np.flatnonzero(ds.terminals), [2])
    np.testing.assert_array_equal(np.flatnonzero(ds.timeouts), [6, 9])  # the cut-off last episode: a timeout
    np.testing.assert_array_equal(ds.next_observations[4], np.arange(12, 15) + 0.5)


def test_missing_minari_id_names_both_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError) as e:
        load_dataset("mujoco/hopper/medium-v0")
    msg = str(e.value)
    assert "\n" not in msg
    assert "minari download mujoco/hopper/medium-v0" in msg and "mbench data make mujoco/hopper/medium-v0" in msg


def test_task_name_resolves_to_its_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with pytest.raises(DatasetError, match="mbench data make mujoco/walker2d/expert-v0"):
        load_dataset("walker2d-expert")


@pytest.mark.parametrize("field", ["rewards", "observations", "actions"])
def test_nan_is_named(tmp_path, field):
    with pytest.raises(DatasetError, match=f"field '{field}' has NaN") as e:
        load_dataset(_write_d4rl(tmp_path / "nan.hdf5", nan_field=field))
    assert "\n" not in str(e.value)


def test_wrong_dims_and_missing_keys(tmp_path):
    path = _write_d4rl(tmp_path / "ok.hdf5")
    with pytest.raises(DatasetError, match="obs dim 3 but the env has 11"):
        load_dataset(path, obs_dim=11)
    with pytest.raises(DatasetError, match="action dim 2 but the env has 3"):
        load_dataset(path, obs_dim=3, act_dim=3)
    with pytest.raises(DatasetError, match="lacks the key 'timeouts'"):
        load_dataset(_write_d4rl(tmp_path / "nokey.hdf5", drop="timeouts"))
    bad = tmp_path / "corrupt.hdf5"
    bad.write_bytes(b"not an hdf5 file")
    with pytest.raises(DatasetError, match="not a readable hdf5"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="cannot make"):
        make_dataset("mujoco/ant/medium-v0", root=tmp_path)


def test_dict_observations_flatten_in_sorted_key_order():
    obs = {"b": np.ones((2, 1)), "a": {"y": np.full((2, 2), 3.0), "x": np.zeros((2, 1))}}
    np.testing.assert_array_equal(flatten_obs(obs), [[0, 3, 3, 1], [0, 3, 3, 1]])


def test_cli(made, capsys):
    root, _ = made
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["data", "make", DEMO_ID, "--agent-steps", "7", "--size", "9", "--root", str(root)])
    assert (args.agent_steps, args.size, args.force) == (7, 9, False) and callable(args.func)
    assert args.func(args) == 0  # exists already: nothing is remade
    assert json.loads(capsys.readouterr().out)["status"] == "exists"
    args = parser.parse_args(["data", "list", "--root", str(root)])
    assert args.func(args) == 0
    assert DEMO_ID in capsys.readouterr().out
