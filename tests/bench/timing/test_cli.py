"""`mbench time` (bench/timing/cli.py): it runs with gymnasium, MuJoCo and Minari unimportable, and takes a
run checkpoint's config from the store.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.helpers import ROOT

BLOCKER = textwrap.dedent("""
    import importlib.abc, sys
    # What a bare GPU machine lacks of our dependencies (it has torch, numpy, pandas, pyarrow, h5py, ...).
    BLOCKED = ("gymnasium", "mujoco", "minari", "gymnasium_robotics", "robosuite", "mink", "optuna", "submitit",
               "rliable")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named '{name}' (blocked by the test)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from bench.cli import main
    code = main(sys.argv[1:])
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not leaked, leaked
    sys.exit(code)
""")


@pytest.mark.slow
def test_mbench_time_runs_without_mujoco_gymnasium_minari(tmp_path):
    """Imports of gymnasium, MuJoCo, Minari (and the other packages a GPU machine lacks) raise, as there."""
    from results.store import Store

    store = tmp_path / "store"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    args = ["--store", str(store), "time", "--method", "bc_dp", "--task", "demo", "--batch", "3", "--reps", "3",
            "--warmup", "1", "--quiet"]
    proc = subprocess.run([sys.executable, "-c", BLOCKER, *args], cwd=tmp_path, env=env, capture_output=True,
                          check=False, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "bc_dp" in proc.stdout and "denoising_steps=20" in proc.stdout
    header = proc.stdout.splitlines()[0].split()
    assert header[:6] == ["method", "component", "kind", "actor", "actions/call", "updates/env_step"]
    act_line = next(line.split() for line in proc.stdout.splitlines() if line.split()[:2] == ["bc_dp", "act"])
    assert act_line[2:5] == ["act", "dp", "4"]
    t = Store(store).timings(sweep="timing")
    assert set(t.method) == {"bc_dp"} and set(t.task) == {"demo"}
    assert sorted(zip(t.component, t.batch)) == [("act", 1), ("act", 3), ("update", 1)]
    assert set(zip(t.component, t.kind)) == {("act", "act"), ("update", "update")}
    assert (t[t.component == "act"].actions_per_call == 4).all() and (t[t.component == "act"].actor == "dp").all()
    assert (t.denoising_steps == 20).all() and (t.device == "cpu").all() and (t.threads == 1).all()
    assert (t.p50_ms <= t.p90_ms).all() and (t.p90_ms <= t.p99_ms).all() and (t.mean_ms > 0).all()
    runs = Store(store).runs(sweep="timing")
    assert list(runs.status) == ["finished"] and list(runs.dataset) == ["synthetic"]


def test_run_checkpoint_takes_its_config_from_the_store(tmp_path):
    """A run's last.pt names its run_id; `mbench time --checkpoint` rebuilds that run's config from the store."""
    import json

    from bench.config.layers import resolve_config
    from bench.timing.measure import measure
    from bench.timing.synthetic import build_subject
    from results.store import Store

    torch.set_num_threads(1)
    over = ["dp.hidden=[32,32]", "dp.denoising_steps=5"]
    src = build_subject("bc_dp", "demo", overrides=over)
    ckpt = tmp_path / "last.pt"
    torch.save({"run_id": "run0", "method": src.method.state_dict(),
                "normalizer": src.method.normalizer.state_dict()}, ckpt)
    cfg = resolve_config("bc_dp", "demo", 0, over)
    Store(tmp_path / "store").write_run({"run_id": "run0", "sweep_id": "s", "method": "bc_dp", "task": "demo",
                                         "seed": 0, "config_json": json.dumps(cfg.to_json()), "status": "finished",
                                         "attempt": 1})
    _, got_cfg, rows = measure("bc_dp", "demo", checkpoint=str(ckpt), store_root=str(tmp_path / "store"),
                               batch=2, reps=2, warmup=0)
    assert got_cfg.dp.hidden == [32, 32] and {r["denoising_steps"] for r in rows} == {5}
    assert {r["checkpoint_kind"] for r in rows} == {"run"}
