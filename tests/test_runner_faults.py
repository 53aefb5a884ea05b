"""The runner's faults found by probing as a user would (issue 13), each pinned by a test that failed before.

Tiny bc_gauss / dppo runs on the session's tiny demo dataset: seconds each.
"""
from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from bench.runner import Preempted, request_stop_at, run_one
from bench.runner.checkpoints import CheckpointError
from results.store import Store
from tests.conftest import TINY


def _cfg(method="bc_gauss", seed=0, **extra):
    over = dict(TINY)
    if method == "bc_dp":
        over["dp.hidden"] = [32, 32]  # the DP of the other methods' test presets: one common-start cache
    elif method != "bc_gauss":
        over["preset"] = "test"
    if method in ("bc_dp", "dppo", "modip"):
        over["common_start.steps"] = TINY["pretrain.steps"]
        over["common_start.log_every"] = TINY["pretrain.log_every"]
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


def _files(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


# ---- fault 1: attempts are immutable; a rerun of a finished run does nothing unless asked ---------------------
def test_rerun_of_a_finished_run_does_nothing_and_a_failed_rerun_keeps_the_finished_one(demo_dataset, store_root,
                                                                                        tmp_path, monkeypatch,
                                                                                        capsys):
    cfg = _cfg()
    rid = run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    before = _files(store_root)
    curve = Store(store_root).curves(sweep="s", run_ids=[rid])
    assert len(curve) > 0
    assert run_one(cfg, store_root=store_root, sweep_id="s", progress=False) == rid
    assert "already finished" in capsys.readouterr().err
    assert _files(store_root) == before  # nothing written, nothing emptied
    # --rerun while the dataset has gone missing: the new attempt fails, the finished one stays
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "empty"))
    with pytest.raises(Exception):
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False, rerun=True)
    store = Store(store_root)
    row = store.runs(sweep="s").iloc[0]
    assert row.status == "finished" and int(row.attempt) == 1
    pd.testing.assert_frame_equal(store.curves(sweep="s", run_ids=[rid]).reset_index(drop=True),
                                  curve.reset_index(drop=True))
    att = store.attempts(sweep="s")
    assert list(att.status) == ["finished", "failed"] and list(att.attempt) == [1, 2]


def test_unreadable_attempt_file_is_counted_and_never_overwritten(demo_dataset, store_root):
    cfg = _cfg()
    rid = run_id_of(cfg)
    bad = store_root / "table=runs" / "sweep=s" / f"{rid}+a1.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(Exception) as err:  # the store names the unreadable file before any work
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    assert str(bad.name) in str(err.value)
    assert bad.read_bytes() == b"not parquet at all"
    bad.rename(tmp := bad.with_name("moved.bin"))
    # with the bad file moved away, the next attempt is still numbered after it (its curves file counts)
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    assert int(Store(store_root).runs(sweep="s").iloc[0].attempt) >= 1
    assert tmp.read_bytes() == b"not parquet at all"


# ---- fault 2 and 6: every config value is validated before any work starts ----------------------------------
@pytest.mark.parametrize("key,value", [("eval.every", 0), ("eval.every", -5), ("online.steps", -1),
                                       ("eval.episodes", -1), ("eval.episodes", 0),
                                       ("online.checkpoint_every", 0), ("pretrain.checkpoint_every", 0),
                                       ("threads", 0), ("reward_scale", float("nan")), ("eval.timing_reps", 0),
                                       ("eval.dense_every", -1), ("modip.label_ramp", -3),
                                       ("modip.planner.temperature", 0.0), ("modip.awr_max_weight", 0.5)])
def test_bad_values_are_named_before_any_work(key, value):
    from methods.common.section import ConfigError

    method = key.split(".")[0] if key.startswith("modip.") else "bc_gauss"
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        resolve_config(method, "demo", 0, {key: value})


def test_the_eval_grid_has_an_optional_dense_start():
    from bench.runner.evaluation import advance_grid
    from methods.common.section import ConfigError

    def points(every, dense_every=0, dense_until=0, total=5000):
        out, g = [], advance_grid(0, 0, every, dense_every, dense_until)
        while g <= total:
            out.append(g)
            g = advance_grid(g, g, every, dense_every, dense_until)
        return out

    assert points(1000) == [1000, 2000, 3000, 4000, 5000]
    assert points(1000, 250, 2000) == [250, 500, 750, 1000, 1250, 1500, 1750, 2000, 3000, 4000, 5000]
    assert advance_grid(250, 262, 1000, 250, 2000) == 500  # an eval that landed late moves to the next point
    # the main grid stays on multiples of `every` after a dense phase that ends off it
    assert points(1000, 300, 1000) == [300, 600, 900, 1000, 2000, 3000, 4000, 5000]
    assert points(1000, 400, 1500) == [400, 800, 1000, 1200, 2000, 3000, 4000, 5000]
    assert advance_grid(1000, 1003, 1000) == 2000
    with pytest.raises(ConfigError, match="dense_every"):
        resolve_config("bc_gauss", "demo", 0, {"eval.dense_until": 2000})


def test_negative_seed_and_missing_cuda_are_one_line_errors(demo_dataset, store_root):
    from methods.common.section import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        resolve_config("bc_gauss", "demo", -1)
    if not torch.cuda.is_available():
        cfg = _cfg(device="cuda")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
        assert not (Store(store_root).runs(sweep="s").status == "finished").any()


# ---- fault 3: resuming refuses a changed dataset --------------------------------------------------------------
def test_resume_refuses_a_changed_dataset(demo_dataset, store_root, tmp_path, monkeypatch):
    from bench.data.d4rl import make_dataset
    from bench.tasks.demo import DEMO_DATASET

    cfg = _cfg()
    request_stop_at(grad_step=20)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    other = tmp_path / "other"
    make_dataset(DEMO_DATASET, root=other, agent_steps=600, dataset_size=900, seed=3, progress=False)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(other))
    with pytest.raises(ValueError, match="--restart") as err:
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    msg = str(err.value)
    assert msg.count("dataset") >= 2 and len(msg.splitlines()) == 1
    hashes = [w for w in msg.replace(",", " ").replace(";", " ").split() if len(w) >= 12 and w.isalnum()]
    assert len(set(hashes)) >= 2  # both hashes are named
    # --restart starts over on the new data
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False, resume=False)
    assert Store(store_root).runs(sweep="s").iloc[0].status == "finished"


# ---- fault 4: wall time is counted once ---------------------------------------------------------------------
def test_run_wall_time_is_counted_once(demo_dataset, store_root):
    cfg = _cfg("dppo", **{"online.steps": 400})
    rid = run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    row = Store(store_root).runs(sweep="s").iloc[0]
    last_curve = Store(store_root).curves(sweep="s", run_ids=[rid]).wall_s.max()
    assert last_curve > 0
    # the record's wall time covers the curve (and a little after its last row), never twice over
    assert last_curve <= row.wall_s <= 1.25 * last_curve + 1.0


# ---- fault 7: corrupt or poisoned checkpoints and caches give one line --------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("content", ["truncated", "poisoned"])
def test_corrupt_or_poisoned_checkpoint_is_one_line(demo_dataset, store_root, content):
    cfg = _cfg()
    request_stop_at(grad_step=20)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    ckpt = store_root / "checkpoints" / "s" / run_id_of(cfg) / "last.pt"
    assert ckpt.exists()
    if content == "truncated":
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    else:
        ckpt.write_bytes(pickle.dumps({"version": 2, "x": _Evil()}))
    with pytest.raises(CheckpointError) as err:
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(ckpt) in msg and "--restart" in msg
    assert "weights_only=False" not in msg


def test_corrupt_common_start_cache_is_named_and_rebuilt_by_restart(demo_dataset, store_root):
    cfg = _cfg("bc_dp")
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    cache = next((store_root / "pretrained").glob("*.pt"))
    cache.write_bytes(b"garbage")
    cfg2 = _cfg("dppo")
    with pytest.raises(CheckpointError) as err:
        run_one(cfg2, store_root=store_root, sweep_id="s", progress=False)
    assert str(cache) in str(err.value) and len(str(err.value).splitlines()) == 1
    run_one(cfg2, store_root=store_root, sweep_id="s", progress=False, resume=False)
    assert cache.read_bytes() != b"garbage"
    assert (Store(store_root).runs(sweep="s").status == "finished").sum() == 2


# ---- the common start honours its section ------------------------------------------------------------------
def test_common_start_settings_are_honoured_and_keyed(demo_dataset, store_root):
    a = _cfg("bc_dp")
    b = _cfg("bc_dp", **{"common_start.batch_size": 64})
    assert run_id_of(a) != run_id_of(b)
    ra = run_one(a, store_root=store_root, sweep_id="s", progress=False)
    rb = run_one(b, store_root=store_root, sweep_id="s", progress=False)
    assert len(list((store_root / "pretrained").glob("*.pt"))) == 2
    c = Store(store_root).curves(sweep="s")
    la = c[(c.run_id == ra) & (c.metric == "loss/denoise")].value.to_numpy()
    lb = c[(c.run_id == rb) & (c.metric == "loss/denoise")].value.to_numpy()
    assert len(la) == len(lb) > 0 and not np.allclose(la, lb)
    # dppo with the same common_start and dp sections reuses bc_dp's cache: equal step-0 scores
    d = _cfg("dppo")
    rd = run_one(d, store_root=store_root, sweep_id="s", progress=False)
    assert len(list((store_root / "pretrained").glob("*.pt"))) == 2
    s = c[(c.metric == "normalized_score") & (c.env_step == 0) & (c.run_id == ra)].value.iloc[0]
    c2 = Store(store_root).curves(sweep="s", run_ids=[rd])
    assert c2[(c2.metric == "normalized_score") & (c2.env_step == 0)].value.iloc[0] == pytest.approx(s)


def test_common_start_section_only_applies_where_used():
    from methods.common.section import ConfigError

    with pytest.raises(ConfigError, match="common_start"):
        resolve_config("bc_gauss", "demo", 0, {"common_start.steps": 10})
    with pytest.raises(ConfigError, match="bc_dp.batch_size"):
        resolve_config("bc_dp", "demo", 0, {"bc_dp.batch_size": 64})


# ---- fault 9: a raw D4RL file on a task whose refs come from its dataset -----------------------------------
def test_raw_d4rl_file_without_refs_on_a_dataset_ref_task_is_one_line(demo_dataset, store_root, tmp_path):
    from bench.data import DatasetError

    n = 400
    path = tmp_path / "raw.hdf5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset("observations", data=rng.normal(size=(n, 9)).astype(np.float32))
        f.create_dataset("actions", data=rng.uniform(-1, 1, size=(n, 1)).astype(np.float32))
        f.create_dataset("rewards", data=np.ones(n, np.float32))
        f.create_dataset("terminals", data=np.zeros(n, bool))
        t = np.zeros(n, bool)
        t[199::200] = True
        f.create_dataset("timeouts", data=t)
    cfg = _cfg(dataset_path=str(path))
    with pytest.raises(DatasetError) as err:
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    msg = str(err.value)
    assert "refs" in msg and str(path) in msg and len(msg.splitlines()) == 1
    assert not (Store(store_root).runs(sweep="s").status == "finished").any()


# ---- fault 11: progress ----------------------------------------------------------------------------------
def test_resumed_run_says_so_and_evals_print_a_line(demo_dataset, store_root, capsys):
    cfg = _cfg("dppo")
    request_stop_at(env_step=100)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store_root, sweep_id="s", progress=True)
    capsys.readouterr()
    run_one(cfg, store_root=store_root, sweep_id="s", progress=True)
    err = capsys.readouterr().err
    assert "resuming run" in err and "from env step" in err and "attempt 2" in err
    assert "eval at env step" in err


def test_on_policy_runs_exactly_the_env_step_budget(demo_dataset, store_root):
    cfg = _cfg("dppo", **{"online.steps": 203})  # 3 envs x 8 decisions x 4 actions per rollout: not a multiple
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    row = Store(store_root).runs(sweep="s").iloc[0]
    assert int(row.env_steps) == 203


def test_common_start_bar_is_its_own(demo_dataset, store_root, capsys):
    """The pretrain bar of a method without offline pretraining shows no common-start steps."""
    cfg = _cfg("dppo")
    run_one(cfg, store_root=store_root, sweep_id="s", progress=True)
    err = capsys.readouterr().err
    assert "common start" in err
    assert f"{TINY['pretrain.steps'] * 2}/{TINY['pretrain.steps']}" not in err
    assert "dppo pretrain" not in err  # dppo has no offline phase of its own: no pretrain bar


# ---- the common-start cache is built once under concurrency -------------------------------------------------
def test_concurrent_jobs_build_the_common_start_once(tmp_path, monkeypatch):
    import threading
    import time
    import types

    from bench.runner import common_start

    calls = []

    def slow_train(*args, **kw):
        calls.append(1)
        time.sleep(0.5)
        return {"dp": {}, "chunk": 4}, [{"grad_step": 1, "loss/denoise": 1.0}]

    monkeypatch.setattr(common_start, "train_common_start", slow_train)
    cfg = resolve_config("bc_dp", "demo", 0, {"common_start.steps": 1, "dp.hidden": [8]})
    spaces = types.SimpleNamespace(chunk=4, obs_dim=2, act_dim=1)
    built = []
    threads = [threading.Thread(target=lambda: built.append(
        common_start.obtain(cfg, tmp_path, "h", spaces, None, None, "cpu")[2])) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(built) == [False, False, True]
