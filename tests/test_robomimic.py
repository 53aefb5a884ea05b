"""robomimic suite: the shims, controller-config translation on the real old layout, the hdf5 reader on a
real-layout fixture, made Lift demos (opened by robomimic's own SequenceDataset, replayed open-loop from their
reset state), the success metric, and a tiny bc_dp run end to end.

Why: real robomimic files were written with robosuite <= 1.4; the suite runs robosuite 1.5. These tests pin the
translation and the reader to the real layout, and prove the made demos are physically produced (no state set).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import TINY, TINY_CS

pytest.importorskip("robosuite")

# env_args exactly as robomimic's v0.3 low_dim files carry them (robosuite 1.4.1, flat OSC_POSE config).
OLD_ENV_ARGS = {
    "env_name": "Lift", "env_version": "1.4.1", "type": 1,
    "env_kwargs": {
        "has_renderer": False, "has_offscreen_renderer": False, "ignore_done": True, "use_object_obs": True,
        "use_camera_obs": False, "control_freq": 20,
        "controller_configs": {
            "type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
            "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping": 1,
            "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_limits": [0, 10], "position_limits": None,
            "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True, "interpolation": None,
            "ramp_ratio": 0.2},
        "robots": ["Panda"], "camera_depths": False, "camera_heights": 84, "camera_widths": 84,
        "reward_shaping": False},
}
# The old layout's obs keys (robosuite 1.4 still emitted eef velocities).
OLD_OBS_DIMS = {"object": 10, "robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_eef_vel_ang": 3,
                "robot0_eef_vel_lin": 3, "robot0_gripper_qpos": 2, "robot0_gripper_qvel": 2, "robot0_joint_pos": 7,
                "robot0_joint_pos_cos": 7, "robot0_joint_pos_sin": 7, "robot0_joint_vel": 7}


@pytest.fixture(scope="module")
def robomimic_root(tmp_path_factory):
    """ROBOMIMIC_DATASETS_PATH with a made lift/ph (3 scripted demos)."""
    from bench.data.robomimic import make_robomimic_dataset

    root = tmp_path_factory.mktemp("robomimic")
    old = os.environ.get("ROBOMIMIC_DATASETS_PATH")
    os.environ["ROBOMIMIC_DATASETS_PATH"] = str(root)
    summary = make_robomimic_dataset("robomimic/lift/ph", n_demos=3, seed=0, progress=False)
    yield root, summary
    if old is None:
        os.environ.pop("ROBOMIMIC_DATASETS_PATH", None)
    else:
        os.environ["ROBOMIMIC_DATASETS_PATH"] = old


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


def test_registry_and_protocol():
    from bench.data.robomimic_hdf5 import ROBOMIMIC_TASKS
    from bench.tasks import get_task

    expect = {"lift": ("Lift", 300), "can": ("PickPlaceCan", 300), "square": ("NutAssemblySquare", 400),
              "transport": ("TwoArmTransport", 800)}
    for name, (env_name, steps) in expect.items():
        for kind in ("ph", "mh"):
            t = get_task(f"{name}-{kind}")
            assert (t.env_id, t.max_episode_steps, t.suite) == (env_name, steps, "robomimic")
            assert t.dataset_id == f"robomimic/{name}/{kind}" and t.success_metric
    assert ROBOMIMIC_TASKS["transport"][3][:3] == ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos")
    assert get_task("lift-ph").normalized_score(1.0, {"success": True}) == 100.0
    assert get_task("lift-ph").normalized_score(0.0, {"success": False}) == 0.0


def test_shims_let_robomimic_import():
    """mujoco_py stub: robomimic's robosuite env module imports. torchvision op stubs: defined only where
    torchvision is present without its ops (checked in a subprocess with a fake torchvision spec)."""
    from bench.data import shims

    shims.install()
    import robomimic.envs.env_robosuite as er

    assert sys.modules["mujoco_py"].builder.MujocoException is shims.MujocoException
    assert er.EnvRobosuite is not None
    code = ("import importlib.util, torch\n"
            "from bench.data import shims\n"
            "importlib.util.find_spec = lambda name, *a: object() if name == 'torchvision' else None\n"
            "assert shims.torchvision_op_stubs() is True\n"
            "assert shims.torchvision_op_stubs() is False  # already defined\n"
            "print(torch.ops.torchvision.nms.default._schema, torch.ops.torchvision.qnms.default._schema)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torchvision::nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor" in out.stdout


def test_translate_old_controller_config():
    from bench.tasks.robomimic import RobosuiteLowDimEnv, translate_controller_configs

    old = OLD_ENV_ARGS["env_kwargs"]["controller_configs"]
    new = translate_controller_configs(old, ["Panda"])
    assert new["type"] == "BASIC" and "right" in new["body_parts"]
    arm = new["body_parts"]["right"]
    assert arm["type"] == "OSC_POSE" and arm["gripper"] == {"type": "GRIP"}
    assert arm["input_ref_frame"] == "world" and arm["input_type"] == "delta"
    assert arm["damping_ratio"] == 1 and arm["damping_ratio_limits"] == [0, 10] and "damping" not in arm
    assert translate_controller_configs(new, ["Panda"]) == new  # composite passes through
    env = RobosuiteLowDimEnv(OLD_ENV_ARGS, ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "object"),
                             300)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (19,) and env.action_space.shape == (7,)
    ctrl = env.env.robots[0].composite_controller.part_controllers["right"]
    assert ctrl.input_ref_frame == "world" and np.allclose(ctrl.kp[:3], 150)
    env.close()


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


def test_made_lift_demos(robomimic_root):
    """Made demos open in robomimic's SequenceDataset and, replayed open-loop from their reset seed (whose state
    equals the recorded first state), reach the recorded rewards and success."""
    import h5py
    from robomimic.utils.dataset import SequenceDataset

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
    task = get_task("lift-ph").for_dataset("robomimic/lift/ph")
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


def test_success_metric_success_and_failure(robomimic_root):
    from bench.data.robomimic import ScriptNoise, record_demo
    from bench.tasks import get_task

    task = get_task("lift-ph")
    env = task.make_env()
    d = record_demo(env, "lift", ScriptNoise(), seed=11, max_steps=task.max_episode_steps)
    assert d["success"] and d["rewards"][-1] == 1.0 and d["rewards"][:-1].sum() == 0
    assert task.normalized_score(float(d["rewards"].sum()), {"success": d["success"]}) == 100.0
    env.close()
    short = dataclasses.replace(task, max_episode_steps=5)
    env = short.make_env()
    env.reset(seed=11)
    for _ in range(5):
        _, r, term, trunc, info = env.step(np.zeros(7))
    assert trunc and not term and not info["success"] and r == 0.0
    assert short.normalized_score(0.0, info) == 0.0
    env.close()


def test_tiny_bc_dp_run(robomimic_root, tmp_path):
    from bench.config.layers import resolve_config
    from bench.runner.lifecycle import run_one
    from results.store import Store

    over = dict(TINY, **TINY_CS, **{"eval.episodes": 2})
    cfg = resolve_config("bc_dp", "lift-ph", 0, over)
    rid = run_one(cfg, store_root=tmp_path, sweep_id="r", progress=False)
    row = Store(tmp_path).runs(sweep="r").iloc[0]
    assert row.status == "finished" and row.suite == "robomimic"
    c = Store(tmp_path).curves(sweep="r", run_ids=[rid])
    assert {"return", "normalized_score", "success"} <= set(c.metric)
    assert c[c.metric == "success"].value.between(0, 1).all()
    assert json.loads(row.config_json)["task"] == "lift-ph"
