"""A run's faults found by probing as a user would (issue 13), each pinned by a test that failed before:
attempts are immutable and a finished run is not rerun unless asked, resuming refuses a changed dataset,
wall time is counted once, a corrupt or poisoned checkpoint and a raw D4RL file without refs give one line,
a resumed run says so.

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
from bench.runner.lifecycle import run_one
from bench.runner.stops import Preempted, request_stop_at
from results.checkpoint_files import CheckpointError
from results.store import Store
from tests.helpers import runner_cfg


def _files(root):
    return {p: p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


# ---- fault 1: attempts are immutable; a rerun of a finished run does nothing unless asked ---------------------
def test_rerun_of_a_finished_run_does_nothing_and_a_failed_rerun_keeps_the_finished_one(demo_dataset, store_root,
                                                                                        tmp_path, monkeypatch,
                                                                                        capsys):
    cfg = runner_cfg()
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
    cfg = runner_cfg()
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


def test_negative_seed_and_missing_cuda_are_one_line_errors(demo_dataset, store_root):
    from methods.common.section import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        resolve_config("bc_gauss", "demo", -1)
    if not torch.cuda.is_available():
        cfg = runner_cfg(device="cuda")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
        assert not (Store(store_root).runs(sweep="s").status == "finished").any()


# ---- fault 3: resuming refuses a changed dataset --------------------------------------------------------------
@pytest.mark.slow
def test_resume_refuses_a_changed_dataset(demo_dataset, store_root, tmp_path, monkeypatch):
    from bench.data.d4rl import make_dataset
    from bench.tasks.demo import DEMO_DATASET

    cfg = runner_cfg()
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
    cfg = runner_cfg("dppo", **{"online.steps": 400})
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
    cfg = runner_cfg()
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
    cfg = runner_cfg(dataset_path=str(path))
    with pytest.raises(DatasetError) as err:
        run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    msg = str(err.value)
    assert "refs" in msg and str(path) in msg and len(msg.splitlines()) == 1
    assert not (Store(store_root).runs(sweep="s").status == "finished").any()


# ---- fault 11: progress ----------------------------------------------------------------------------------
def test_resumed_run_says_so_and_evals_print_a_line(demo_dataset, store_root, capsys):
    cfg = runner_cfg("dppo")
    request_stop_at(env_step=100)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store_root, sweep_id="s", progress=True)
    capsys.readouterr()
    run_one(cfg, store_root=store_root, sweep_id="s", progress=True)
    err = capsys.readouterr().err
    assert "resuming run" in err and "from env step" in err and "attempt 2" in err
    assert "eval at env step" in err
    # the eval episodes before the stop came back with the checkpoint: the finished attempt has every eval's
    eps = Store(store_root).episodes(sweep="s")
    curve = Store(store_root).curves(sweep="s")
    evals = curve[curve.metric == "return"][["env_step", "actor", "n_episodes"]]
    assert set(eps.attempt) == {2} and len(eps) == evals.n_episodes.sum() and eps.env_step.min() == 0


def test_a_run_records_every_eval_episode_its_final_eval_and_what_reports_need(demo_dataset, store_root):
    """Issue 25: episodes in the store (reset seeds of the run seed's own states, the same at every eval point),
    a final eval on eval.final_episodes, and the run record's actors, ceiling and data score."""
    import json

    from bench.tasks.eval_states import BLOCK, POOLS

    rid = run_one(runner_cfg("bc_gauss", seed=3, **{"eval.final_episodes": 3}), store_root=store_root,
                  sweep_id="e", progress=False)
    store = Store(store_root)
    eps = store.episodes(sweep="e")
    first = POOLS["report"] + 3 * BLOCK
    assert list(eps[eps.phase == "pretrain"].reset_seed) == [first, first + 1]
    final = eps[eps.phase == "final"]
    assert list(final.reset_seed) == [first, first + 1, first + 2] and set(final.actor) == {"policy"}
    assert (eps["length"] > 0).all() and eps["return"].notna().all() and eps.success.isna().all()
    curve = store.curves(sweep="e")
    last = curve[(curve.metric == "normalized_score") & (curve.phase == "final")]
    assert list(last.n_episodes) == [3] and last.value.iloc[0] == pytest.approx(final.normalized_score.mean())
    prov = json.loads(json.loads(store.runs(sweep="e").iloc[0].extra_json)["provenance_json"])
    assert prov["actors"] == {"product": "policy", "selection": {"policy": "mean"}, "common_start": False}
    assert prov["ceiling"]["metric"] == "return" and prov["ceiling"]["max"] == pytest.approx(1872.0)
    assert np.isfinite(prov["data_score"]) and prov["seeds"]["eval_states"] == "per_seed"
    assert prov["seeds"]["eval"] == [first, first + 1, first + 2] and rid


def test_a_run_records_the_commit_it_started_from_and_those_of_the_attempts_it_resumes(demo_dataset, store_root,
                                                                                       monkeypatch):
    """Issue 25 ("every run records the commit"): the commit is read when the run starts, not at each row
    written (the checkout can move while a run trains), and a run resumed under other code lists both."""
    import json

    from bench.runner import lifecycle
    from bench.runner.provenance import commit_label

    calls = iter(f"{k:040x}" for k in range(1, 1000))
    monkeypatch.setattr(lifecycle, "git_state", lambda: (next(calls), False))  # HEAD moves at every read
    cfg = runner_cfg("dppo")
    request_stop_at(env_step=100)
    with pytest.raises(Preempted):
        run_one(cfg, store_root=store_root, sweep_id="c", progress=False)
    first = Store(store_root).attempts(sweep="c").iloc[-1]
    started = first.git_sha
    monkeypatch.setattr(lifecycle, "git_state", lambda: ("f" * 40, True))  # resumed from a dirty checkout
    run_one(cfg, store_root=store_root, sweep_id="c", progress=False)
    row = Store(store_root).runs(sweep="c").iloc[0]
    extra = json.loads(row.extra_json)
    assert row.status == "finished" and row.git_sha == "f" * 40 and extra["git_dirty"] is True
    assert extra["git_commits"] == [started, commit_label("f" * 40, True)]
    assert int(started, 16) <= 2  # the first attempt's commit is the one read as it started, not a later one
