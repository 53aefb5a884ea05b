"""robomimic suite tasks: the registry and protocol, the shims, controller-config translation of the real
old layout (robosuite <= 1.4) to robosuite 1.5, the success metric, and a tiny bc_dp run end to end.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import OLD_ENV_ARGS, ROOT, TINY, TINY_CS

pytest.importorskip("robosuite")


def test_registry_and_protocol():
    from bench.tasks import get_task
    from bench.tasks.robomimic import ROBOMIMIC_TASKS

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


@pytest.mark.slow
def test_shims_let_robomimic_import():
    """mujoco_py stub: robomimic's robosuite env module imports. torchvision op stubs: defined only where
    torchvision is present without its ops (checked in a subprocess with a fake torchvision spec)."""
    from bench.tasks import shims

    shims.install()
    import robomimic.envs.env_robosuite as er

    assert sys.modules["mujoco_py"].builder.MujocoException is shims.MujocoException
    assert er.EnvRobosuite is not None
    code = ("import importlib.util, torch\n"
            "from bench.tasks import shims\n"
            "importlib.util.find_spec = lambda name, *a: object() if name == 'torchvision' else None\n"
            "assert shims.torchvision_op_stubs() is True\n"
            "assert shims.torchvision_op_stubs() is False  # already defined\n"
            "print(torch.ops.torchvision.nms.default._schema, torch.ops.torchvision.qnms.default._schema)\n")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
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


@pytest.mark.slow
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
