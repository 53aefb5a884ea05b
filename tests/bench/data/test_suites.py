"""Dataset suites: one suite registry used by the loader and by `mbench data make`, one Minari writer, and
the messages and refs of files (issue 13, faults 9 and 10). (No import cycle through bench.data or
bench.tasks: tests/structure/test_structure.py.)

Why: suites were chosen by string prefix in three places and the Minari writer existed twice, held together by
imports hidden in function bodies. A raw D4RL file has no refs, and an error about a file must be about the file.
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

import h5py
import numpy as np
import pytest

from bench.data import DatasetError, OfflineDataset
from bench.data.loaders import load_dataset
from tests.helpers import ROOT

PACKAGES = ("bench", "methods", "results", "analysis")


def test_every_suite_has_prefix_loader_maker_and_flattening():
    from bench.data import suites
    from bench.data.kitchen import flatten_kitchen_obs

    reg = suites.all_suites()
    assert set(reg) == {"d4rl", "kitchen", "robomimic"}
    for s in reg.values():
        assert isinstance(s.prefix, str) and callable(s.load) and callable(s.make)
        assert s.obs_flatten is None or callable(s.obs_flatten)
    assert suites.suite_for("D4RL/kitchen/mixed-v2").name == "kitchen"
    assert suites.suite_for("D4RL/kitchen/mixed-v2").obs_flatten is flatten_kitchen_obs
    assert suites.suite_for("robomimic/lift/ph").name == "robomimic"
    for other in ("mujoco/hopper/medium-v0", "mbench/inverted-double-pendulum/medium-v0", "D4RL/pen/human-v2"):
        assert suites.suite_for(other).name == "d4rl"


def test_files_go_to_the_suite_that_owns_their_layout(tmp_path):
    from bench.data import suites

    assert suites.suite_for(str(_write_d4rl(tmp_path / "raw.hdf5"))).name == "d4rl"
    assert suites.suite_for(str(_write_robomimic(tmp_path / "low_dim.hdf5"))).name == "robomimic"
    assert suites.suite_for(str(tmp_path / "absent.hdf5")).name == "d4rl"  # whose reader says it is absent


def _fake_suite(calls: list):
    from bench.data.suites import DataSuite

    def load(source, dataset_id, obs_flatten):
        calls.append(("load", source, dataset_id, obs_flatten))
        n = 4
        return OfflineDataset(source, np.zeros((n, 2), np.float32), np.zeros((n, 1), np.float32),
                              np.zeros(n, np.float32), np.zeros((n, 2), np.float32), np.zeros(n, bool),
                              np.r_[np.zeros(n - 1, bool), True])

    def make(dataset_id, **kw):
        calls.append(("make", dataset_id, kw))
        return {"dataset_id": dataset_id, "status": "made"}

    def flatten(obs):
        return np.asarray(obs)

    return DataSuite(name="fake", prefix="fake/", load=load, make=make, obs_flatten=flatten, ids="fake/<x>")


def test_loader_and_data_make_look_the_suite_up(monkeypatch, capsys):
    """A suite registered once is loaded by `load_dataset` (with its own flattening) and made by
    `mbench data make`: neither knows suites by prefix."""
    from bench.data import suites
    from bench.data.make import add_cli

    calls: list = []
    fake = _fake_suite(calls)
    monkeypatch.setitem(suites._SUITES, "fake", fake)
    ds = load_dataset("fake/thing-v0", obs_dim=2, act_dim=1)
    assert len(ds) == 4 and calls == [("load", "fake/thing-v0", None, fake.obs_flatten)]
    parser = argparse.ArgumentParser()
    add_cli(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["data", "make", "fake/thing-v0", "--size", "7", "--seed", "3", "--no-progress"])
    assert args.func(args) == 0
    assert calls[-1] == ("make", "fake/thing-v0", {"root": None, "size": 7, "agent_steps": None, "seed": 3,
                                                   "progress": False, "force": False})
    assert '"status": "made"' in capsys.readouterr().out


def test_data_make_of_a_file_says_it_cannot(tmp_path):
    from bench.data import suites

    with pytest.raises(DatasetError, match="cannot make") as e:
        suites.make(str(_write_d4rl(tmp_path / "raw.hdf5")))
    assert "\n" not in str(e.value)


def test_one_minari_writer():
    """Minari's writer is called in exactly one function, and every Minari maker calls that function."""
    callers = []
    for path in sorted((ROOT / "bench").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]:
            for node in ast.walk(fn):
                if isinstance(node, ast.Attribute) and node.attr == "create_dataset_from_buffers":
                    callers.append((path.relative_to(ROOT).as_posix(), fn.name))
    assert callers == [("bench/data/minari_io.py", "write_minari")]
    from bench.data import d4rl, kitchen

    for module, maker in ((d4rl, "make_dataset"), (kitchen, "make_kitchen_dataset")):
        tree = ast.parse(Path(module.__file__).read_text())
        fn = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == maker)
        called = {n.func.id for n in ast.walk(fn) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert "write_minari" in called, maker


# ---- files: messages (fault 10) and refs (fault 9) ------------------------------------------------------------
def _write_d4rl(path, n=10, obs_dim=3):
    with h5py.File(path, "w") as f:
        f.create_dataset("observations", data=np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim))
        f.create_dataset("actions", data=np.zeros((n, 2), np.float32))
        f.create_dataset("rewards", data=np.ones(n, np.float32))
        f.create_dataset("terminals", data=np.zeros(n, bool))
        f.create_dataset("timeouts", data=np.zeros(n, bool))
    return path


def _write_robomimic(path, n=5):
    from bench.data.robomimic_hdf5 import write_robomimic_hdf5
    from bench.tasks.robomimic import SINGLE_ARM_KEYS, default_env_args

    dims = {"robot0_eef_pos": 3, "robot0_eef_quat": 4, "robot0_gripper_qpos": 2, "object": 10}
    assert set(dims) == set(SINGLE_ARM_KEYS)
    obs = {k: np.zeros((n, d)) for k, d in dims.items()}
    demo = {"obs": obs, "next_obs": obs, "actions": np.zeros((n, 7)), "rewards": np.r_[np.zeros(n - 1), 1.0],
            "dones": np.r_[np.zeros(n - 1), 1].astype(np.int64), "states": np.zeros((n, 4))}
    return write_robomimic_hdf5(path, default_env_args("lift"), [demo], {"train": ["demo_0"]})


def test_empty_d4rl_file_is_one_line_naming_the_file(tmp_path):
    empty_rows = _write_d4rl(tmp_path / "empty_rows.hdf5", n=0)
    no_keys = tmp_path / "no_keys.hdf5"
    h5py.File(no_keys, "w").close()
    for path in (empty_rows, no_keys):
        with pytest.raises(DatasetError) as e:
            load_dataset(str(path), obs_dim=3, act_dim=2)
        msg = str(e.value)
        assert "\n" not in msg and str(path) in msg and "no transitions" in msg, msg
        assert "reshape" not in msg and "pass a D4RL file that holds data" in msg


@pytest.mark.parametrize("kind", ["d4rl", "robomimic"])
def test_dim_mismatch_of_a_file_names_the_file_not_a_make(tmp_path, kind):
    path = str(_write_d4rl(tmp_path / "hopper.hdf5") if kind == "d4rl" else _write_robomimic(tmp_path / "lift.hdf5"))
    found = 3 if kind == "d4rl" else 19
    for kwargs in ({}, {"path": path}):  # named as the source, or as `--set dataset_path=FILE` of a task
        source = "hopper-medium" if kwargs else path
        with pytest.raises(DatasetError) as e:
            load_dataset(source, obs_dim=11, **kwargs)
        msg = str(e.value)
        assert "\n" not in msg and f"file '{path}'" in msg and f"obs dim {found} but the env has 11" in msg
        assert "mbench data make" not in msg and "recorded on this task's env" in msg
        assert "pick the task" in msg


def _write_minari_id(root, dataset_id, provenance):
    import gymnasium as gym

    from bench.data.minari_io import write_minari

    rng = np.random.default_rng(0)
    episodes = [{"observations": rng.normal(size=(6, 9)), "actions": rng.uniform(-1, 1, (5, 1)),
                 "rewards": np.ones(5), "terminations": np.r_[np.zeros(4, bool), True],
                 "truncations": np.zeros(5, bool)}]
    write_minari(root, dataset_id, episodes, gym.spec("InvertedDoublePendulum-v5"), provenance=provenance,
                 ref_min=1.0, ref_max=9.0, num_episodes_average_score=1, algorithm_name="test",
                 code_permalink="tests/bench/data/test_suites.py", description="test")


def test_dim_mismatch_of_an_id_still_suggests_a_make(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    _write_minari_id(tmp_path, "mbench/inverted-double-pendulum/expert-v0", {"source": "test"})
    with pytest.raises(DatasetError) as e:
        load_dataset("mbench/inverted-double-pendulum/expert-v0", obs_dim=11)
    msg = str(e.value)
    assert "obs dim 9 but the env has 11" in msg and "mbench data make mbench/inverted-double-pendulum/expert-v0" in msg
    assert "file" not in msg


def test_raw_d4rl_file_has_no_refs_and_says_none(tmp_path):
    """On the demo task (refs from its dataset), a raw D4RL file gives no refs: None, never made up."""
    from bench.tasks import get_task

    task = get_task("demo")
    assert task.ref_min is None and task.ref_max is None
    assert "measured when the dataset was made" not in task.ref_source  # the task has none of its own
    path = str(_write_d4rl(tmp_path / "pendulum.hdf5"))
    for ds in (load_dataset(path, obs_dim=3, act_dim=2), load_dataset("demo", path=path, obs_dim=3, act_dim=2)):
        assert ds.ref_min is None and ds.ref_max is None and ds.ref_source is None


def test_datasets_with_refs_say_where_they_came_from(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    made = {"source": "made", "refs": {"ref_min_source": "uniform random policy", "ref_min_episodes": 100,
                                       "ref_max_source": "final (expert) snapshot", "ref_max_episodes": 20}}
    _write_minari_id(tmp_path, "mbench/inverted-double-pendulum/medium-v0", made)
    ds = load_dataset("demo", obs_dim=9, act_dim=1)
    assert (ds.ref_min, ds.ref_max) == (1.0, 9.0)
    assert ds.ref_source.startswith("measured when the dataset was made") and "uniform random policy" in ds.ref_source
    _write_minari_id(tmp_path, "mujoco/hopper/expert-v0", {"source": "test"})
    assert load_dataset("mujoco/hopper/expert-v0").ref_source == "dataset metadata (Minari ref_min_score / ref_max_score)"
    rm = load_dataset(str(_write_robomimic(tmp_path / "lift.hdf5")))
    assert (rm.ref_min, rm.ref_max) == (0.0, 1.0) and "sparse reward" in rm.ref_source


# ---- names used elsewhere ------------------------------------------------------------------------------------
def test_public_names_import_from_their_modules():
    from bench.data.d4rl import ENVS, QUALITIES, load_d4rl_hdf5, make_dataset, parse_id  # noqa: F401
    from bench.data.loaders import load_dataset  # noqa: F401
    from bench.data.make import add_cli  # noqa: F401
    from bench.data.minari_io import (  # noqa: F401
        PROVENANCE_KEY,
        flatten_obs,
        list_datasets,
        minari_root,
        missing_dataset_message,
    )
    from bench.data.robomimic import make_robomimic_dataset, record_demo  # noqa: F401
    from bench.data.robomimic_hdf5 import load_robomimic, resolve_path, write_robomimic_hdf5  # noqa: F401
    from bench.data.robomimic_hdf5 import parse_id as rm_parse_id
    from bench.tasks import EVAL_SEEDS, TUNE_EVAL_SEEDS, TaskError, all_tasks, get_task  # noqa: F401
    from bench.tasks.d4rl import D4RL_REFS
    from bench.tasks.robomimic import OSC_POSE_V14, ROBOMIMIC_TASKS, default_env_args  # noqa: F401

    assert parse_id("mujoco/hopper/medium-v0").env_id == "Hopper-v5"
    assert rm_parse_id("robomimic/can/mh") == ("can", "mh")
    names = set(all_tasks())
    assert len(names) == 25 and {"hopper-medium", "demo", "demo-long", "kitchen-mixed", "transport-mh"} <= names
    assert get_task("hopper-medium").ref_min == D4RL_REFS["hopper"][0]
