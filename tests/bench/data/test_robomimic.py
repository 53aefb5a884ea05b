"""robomimic suite data: the hdf5 reader on a real-layout fixture, and made Lift demos, opened by robomimic's
own SequenceDataset and replayed open-loop from their reset state.

Why: real robomimic files were written with robosuite <= 1.4; the suite runs robosuite 1.5. These tests pin
the reader to the real layout, and prove the made demos are physically produced (no state set).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import OLD_ENV_ARGS

pytest.importorskip("robosuite")


# The old layout's obs keys (robosuite 1.4 still emitted eef velocities).
OLD_OBS_DIMS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_eef_vel_ang": 3,
                "robot0_eef_vel_lin": 3, "robot0_gripper_qpos": 2, "robot0_gripper_qvel": 2, "robot0_joint_pos": 7,
                "robot0_joint_pos_cos": 7, "robot0_joint_pos_sin": 7, "robot0_joint_vel": 7}


def _old_layout_file(path, n_demos=3):
    """A tiny file in robomimic's real v0.3 layout (MH-style masks included); demos end with 2 success steps."""
    from bench.data.robomimic_hdf5 import write_robomimic_hdf5

    rng = np.random.default_rng(0)
    demos = []
    for i in range(n_demos):
        n = 6 + i
        obs = {k: rng.normal(size=(n, d)) for k, d in OLD_OBS_DIMS.items()}
        nobs = {k: np.concatenate([v[1:], rng.normal(size=(1, v.shape[1]))]) for k, v in obs.items()}
        demos.append({"obs": obs, "next_obs": nobs, "actions": rng.uniform(-1, 1, (n, 7)),
                      "rewards": np.r_[np.zeros(n - 2), 1.0, 1.0], "dones": np.r_[np.zeros(n - 1), 1].astype(np.int64),
                      "states": rng.normal(size=(n, 32)), "attrs": {"model_file": "<mujoco/>"}})
    masks = {"train": ["demo_0", "demo_1"], "valid": ["demo_2"], "better": ["demo_0"], "okay": ["demo_1"],
             "worse": ["demo_2"]}
    return write_robomimic_hdf5(path, OLD_ENV_ARGS, demos, masks), demos


def _init_obs_utils(keys):
    import robomimic.utils.obs_utils as ObsUtils

    ObsUtils.initialize_obs_utils_with_obs_specs(obs_modality_specs={"obs": {"low_dim": list(keys), "rgb": []}})


def test_real_layout_file_loads(tmp_path):
    from robomimic.utils.dataset import SequenceDataset

    from bench.data.loaders import load_dataset
    from bench.data.robomimic_hdf5 import load_robomimic

    path, demos = _old_layout_file(tmp_path / "low_dim_v141.hdf5")
    ds = load_dataset(str(path), obs_dim=19, act_dim=7)
    # Each demo is cut at its first success (reward 1), which is terminal: lengths 5, 6, 7 of 6, 7, 8.
    assert len(ds) == 5 + 6 + 7 and ds.terminals.sum() == 3 and not ds.timeouts.any()
    keys = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
    first = np.concatenate([demos[0]["obs"][k][0] for k in keys])
    np.testing.assert_allclose(ds.observations[0], first, rtol=1e-6)
    np.testing.assert_allclose(ds.next_observations[0], np.concatenate([demos[0]["next_obs"][k][0] for k in keys]),
                               rtol=1e-6)
    assert ds.provenance["env_args"]["env_version"] == "1.4.1"
    assert ds.provenance["masks"] == {"train": 2, "valid": 1, "better": 1, "okay": 1, "worse": 1}
    assert len(load_robomimic(path, filter_key="better")) == 5
    with pytest.raises(Exception, match="no mask 'expert'"):
        load_robomimic(path, filter_key="expert")
    _init_obs_utils(keys)
    sd = SequenceDataset(hdf5_path=str(path), obs_keys=keys, dataset_keys=("actions", "rewards", "dones"),
                         seq_length=4, hdf5_cache_mode=None, filter_by_attribute="train")
    assert len(sd) == 6 + 7
    assert sd[0]["actions"].shape == (4, 7)


@pytest.mark.slow
def test_made_lift_demos(robomimic_root):
    """Made demos open in robomimic's SequenceDataset and, replayed open-loop from their reset seed (whose state
    equals the recorded first state), reach the recorded rewards and success."""
    import h5py
    from robomimic.utils.dataset import SequenceDataset

    from bench.data.loaders import bind_task
    from bench.data.robomimic_hdf5 import resolve_path
    from bench.tasks import get_task

    _root, summary = robomimic_root
    assert summary["status"] == "made" and summary["demos"] == 3
    path = resolve_path("robomimic/lift/ph")
    keys = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object")
    _init_obs_utils(keys)
    sd = SequenceDataset(hdf5_path=str(path), obs_keys=keys, dataset_keys=("actions", "rewards", "dones"),
                         seq_length=8, hdf5_cache_mode="low_dim", filter_by_attribute=None)
    item = sd[0]
    assert item["actions"].shape == (8, 7) and item["obs"]["object"].shape == (8, 10)
    task = bind_task(get_task("lift-ph"), "robomimic/lift/ph")
    env = task.make_env()
    with h5py.File(path, "r") as f:
        for name in sorted(f["data"]):
            g = f["data"][name]
            env.reset(seed=int(g.attrs["reset_seed"]))
            np.testing.assert_allclose(env.get_state(), g["states"][0], atol=1e-10)
            rewards, info = [], {}
            for a in g["actions"][()]:
                obs, r, term, _trunc, info = env.step(a)
                rewards.append(r)
            np.testing.assert_allclose(rewards, g["rewards"][()], atol=1e-12)
            assert term and info["success"] and np.asarray(g["rewards"])[-1] == 1.0
            np.testing.assert_allclose(obs[-10:], g["next_obs"]["object"][-1], atol=1e-6)
    env.close()
