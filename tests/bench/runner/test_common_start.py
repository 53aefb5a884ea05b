"""The common start through the runner (bench/runner/common_start.py): its cache is keyed by its section,
named and rebuilt by --restart when corrupt, and built once under concurrency; its progress bar is its own.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.config.layers import resolve_config
from bench.config.run import run_id_of
from bench.runner.lifecycle import run_one
from results.checkpoint_files import CheckpointError
from results.store import Store
from tests.helpers import TINY, runner_cfg


def test_corrupt_common_start_cache_is_named_and_rebuilt_by_restart(demo_dataset, store_root):
    cfg = runner_cfg("bc_dp")
    run_one(cfg, store_root=store_root, sweep_id="s", progress=False)
    cache = next((store_root / "pretrained").glob("*.pt"))
    cache.write_bytes(b"garbage")
    cfg2 = runner_cfg("dppo")
    with pytest.raises(CheckpointError) as err:
        run_one(cfg2, store_root=store_root, sweep_id="s", progress=False)
    assert str(cache) in str(err.value) and len(str(err.value).splitlines()) == 1
    run_one(cfg2, store_root=store_root, sweep_id="s", progress=False, resume=False)
    assert cache.read_bytes() != b"garbage"
    assert (Store(store_root).runs(sweep="s").status == "finished").sum() == 2


# ---- the common start honours its section ------------------------------------------------------------------
def test_common_start_settings_are_honoured_and_keyed(demo_dataset, store_root):
    a = runner_cfg("bc_dp")
    b = runner_cfg("bc_dp", **{"common_start.batch_size": 64})
    assert run_id_of(a) != run_id_of(b)
    ra = run_one(a, store_root=store_root, sweep_id="s", progress=False)
    rb = run_one(b, store_root=store_root, sweep_id="s", progress=False)
    assert len(list((store_root / "pretrained").glob("*.pt"))) == 2
    c = Store(store_root).curves(sweep="s")
    la = c[(c.run_id == ra) & (c.metric == "loss/denoise")].value.to_numpy()
    lb = c[(c.run_id == rb) & (c.metric == "loss/denoise")].value.to_numpy()
    assert len(la) == len(lb) > 0 and not np.allclose(la, lb)
    # dppo with the same common_start and dp sections reuses bc_dp's cache: equal step-0 scores
    d = runner_cfg("dppo")
    rd = run_one(d, store_root=store_root, sweep_id="s", progress=False)
    assert len(list((store_root / "pretrained").glob("*.pt"))) == 2
    s = c[(c.metric == "normalized_score") & (c.env_step == 0) & (c.run_id == ra)].value.iloc[0]
    c2 = Store(store_root).curves(sweep="s", run_ids=[rd])
    assert c2[(c2.metric == "normalized_score") & (c2.env_step == 0)].value.iloc[0] == pytest.approx(s)


def test_common_start_bar_is_its_own(demo_dataset, store_root, capsys):
    """The pretrain bar of a method without offline pretraining shows no common-start steps."""
    cfg = runner_cfg("dppo")
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
