"""Tests of bench/runner/timing.py, bench/runner/compiled.py and `mbench time`: honest latencies, ordered
percentiles, rows in the store, a compiled-vs-eager check that can fail, and a CLI that runs with gymnasium,
MuJoCo and Minari unimportable."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.runner.compiled import check_agreement, rng_restore, rng_snapshot
from bench.runner.timing import summarize, time_callable, time_components
from methods.base import ComponentKind, TimedComponent

ROOT = Path(__file__).resolve().parents[1]


def test_known_duration_lands_within_loose_bounds():
    r = time_callable(lambda: time.sleep(0.02), component="sleep", warmup=1, reps=5)
    # sleep never returns early; a loaded CI machine can add a lot, so the upper bound is loose.
    assert 19.5 <= r.p50_ms <= 80.0
    assert 19.5 <= r.mean_ms <= 120.0
    assert r.reps == 5 and r.warmup == 1 and r.threads == torch.get_num_threads()


def test_percentiles_ordered_and_exact_on_known_samples():
    s = summarize([float(x) for x in range(1, 101)])
    assert s["p50_ms"] <= s["p90_ms"] <= s["p99_ms"]
    assert s["mean_ms"] == pytest.approx(50.5) and s["p50_ms"] == pytest.approx(50.5)
    assert s["p90_ms"] == pytest.approx(90.1) and s["p99_ms"] == pytest.approx(99.01)
    calls = iter([0.001, 0.004, 0.002, 0.008, 0.003] * 4)
    r = time_callable(lambda: time.sleep(next(calls)), warmup=0, reps=20)
    assert r.p50_ms <= r.p90_ms <= r.p99_ms and r.p90_ms > r.p50_ms


def test_max_s_caps_the_timed_loop():
    r = time_callable(lambda: time.sleep(0.01), warmup=0, reps=1000, max_s=0.05, min_reps=3)
    assert 3 <= r.reps < 50


class _Fake:
    """A duck-typed method: one sampling act path and one update; `wrong` makes its own compiled path lie."""

    def __init__(self, wrong: bool = False):
        self.device = torch.device("cpu")
        self.net = torch.nn.Linear(3, 2)
        self.wrong = wrong
        self.updates = 0

    def cost_settings(self):
        return {"samples": 8, "terminal": "v"}

    def _act(self, obs, g, bias=0.0):
        with torch.no_grad():
            noise = torch.randn(obs.shape, generator=g)
            return (self.net(obs + noise) + bias).numpy()

    def timed_components(self, batch_size=1):
        obs = torch.zeros(batch_size, 3)
        g = torch.Generator().manual_seed(0)

        def update():
            self.updates += 1

        return {"act": TimedComponent(lambda: self._act(obs, g), ComponentKind.ACT, actor="policy"),
                "update": TimedComponent(update, ComponentKind.UPDATE, updates_per_env_step=0.5)}

    def compiled_components(self, batch_size=1, mode="default"):
        if not self.wrong:
            return None  # the harness wraps act in torch.compile itself
        obs = torch.zeros(batch_size, 3)
        g = torch.Generator().manual_seed(0)
        return {"act": lambda: self._act(obs, g, bias=0.5)}


def test_rng_snapshot_restores_captured_generators():
    g = torch.Generator().manual_seed(3)
    fn = lambda: torch.randn(4, generator=g)
    snap = rng_snapshot(fn)
    a = fn()
    rng_restore(snap)
    assert torch.equal(a, fn())


def test_agreement_detects_a_wrong_compiled_path_and_accepts_a_right_one():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    eager = lambda: torch.randn(5, generator=g1)
    assert check_agreement(eager, lambda: torch.randn(5, generator=g2)).agree
    bad = check_agreement(eager, lambda: torch.randn(5, generator=g2) + 1e-2)
    assert not bad.agree and bad.max_abs_diff == pytest.approx(1e-2, rel=1e-3)


def test_time_components_rows_eager_and_compiled():
    m = _Fake()
    rows = time_components(m, (1, 4), warmup=1, reps=3, compile=True, compile_backend="eager")
    key = {(r["component"], r["batch"], r["compiled"]) for r in rows}
    # update timed once (batch 1, never compiled); act at both sizes, eager and compiled
    assert key == {("act", 1, False), ("act", 1, True), ("update", 1, False), ("act", 4, False), ("act", 4, True)}
    compiled = [r for r in rows if r["compiled"]]
    assert all(r["compile_agree"] and r["compile_s"] > 0 for r in compiled)
    assert all(r["samples"] == 8 and r["terminal"] == "v" and r["horizon"] is None for r in rows)
    assert all(r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in rows)
    wrong = time_components(_Fake(wrong=True), (1,), warmup=0, reps=2, compile=True)
    assert [r["compile_agree"] for r in wrong if r["compiled"]] == [False]


def test_runner_write_timings_goes_through_the_helper(tmp_path):
    from bench.config.run import EvalConfig
    from bench.runner.lifecycle import Run
    from bench.runner.progress import Progress
    from results.store import Store

    fake_run = types.SimpleNamespace(
        cfg=types.SimpleNamespace(eval=EvalConfig(timing_batch=4, timing_reps=3)), method=_Fake(),
        device=torch.device("cpu"), ctx=types.SimpleNamespace(run_id="r0", sweep_id="s0", store_root=tmp_path),
        progress=Progress(attempt=1),
        say=lambda *a, **k: None)
    Run.write_timings(fake_run)
    Store(tmp_path).write_run({"run_id": "r0", "sweep_id": "s0", "method": "fake", "task": "demo", "seed": 0,
                               "status": "finished", "attempt": 1})
    df = Store(tmp_path).timings(sweep="s0")
    assert sorted(zip(df.component, df.batch)) == [("act", 1), ("act", 4), ("update", 1)]
    assert (df.samples == 8).all() and (df.reps == 3).all() and not df.compiled.any()
    # the components' metadata are columns of the stored rows
    meta = {r.component: (r.kind, r.actor, r.actions_per_call, r.updates_per_env_step) for r in df.itertuples()}
    assert meta["act"][:3] == ("act", "policy", 1) and np.isnan(meta["act"][3])
    assert meta["update"][0] == "update" and not meta["update"][1] and meta["update"][3] == 0.5


class _Named:
    """Components whose names lie about what they are: what they are is their kind, never their name."""

    device = torch.device("cpu")

    def __init__(self):
        self.calls = {"update_plan": 0, "step": 0}

    def cost_settings(self):
        return {"actor": "clash"}  # a setting named like a metadata column is kept apart from it

    def timed_components(self, batch_size=1):
        def plan():
            self.calls["update_plan"] += 1
            return torch.zeros(batch_size, 3, 2)

        def step():
            self.calls["step"] += 1

        return {"update_plan": TimedComponent(plan, ComponentKind.PLAN, actor="foo", actions_per_call=3),
                "step": TimedComponent(step, ComponentKind.UPDATE, updates_per_env_step=0.25)}


def test_kind_not_name_decides_what_is_a_training_step_and_rows_carry_metadata():
    rows = time_components(_Named(), (1, 4), warmup=0, reps=2, compile=True, compile_backend="eager")
    key = {(r["component"], r["batch"], r["compiled"]) for r in rows}
    # the plan (named update_*) is an act path: timed at both sizes and compiled; the update `step` once, eager
    assert key == {("update_plan", 1, False), ("update_plan", 1, True), ("update_plan", 4, False),
                   ("update_plan", 4, True), ("step", 1, False)}
    for r in rows:
        if r["component"] == "update_plan":
            assert (r["kind"], r["actor"], r["actions_per_call"], r["updates_per_env_step"]) == ("plan", "foo", 3, None)
        else:
            assert (r["kind"], r["actor"], r["actions_per_call"], r["updates_per_env_step"]) == ("update", "", None, 0.25)
        assert r["method_actor"] == "clash"


def test_a_bare_closure_is_refused_with_the_component_named():
    fake = types.SimpleNamespace(device=torch.device("cpu"), cost_settings=dict,
                                 timed_components=lambda batch_size=1: {"act": lambda: None})
    with pytest.raises(TypeError, match=r"\['act'\] is a function, not a methods.base.TimedComponent"):
        time_components(fake, (1,), warmup=0, reps=1)


def test_every_registered_method_declares_its_components_from_its_config():
    """Each method's components carry kind, actor and actions per call read from its live config."""
    from bench.timing.synthetic import build_subject

    torch.set_num_threads(1)
    want = {"bc_gauss": {"act": ("act", "policy", 1)},
            "bc_dp": {"act": ("act", "dp", 4)},
            "dppo": {"act": ("act", "dp", 4)},
            "tdmpc2": {"plan": ("plan", "mpc", 1), "pi_act": ("act", "pi", 1)},
            "modip": {"plan": ("plan", "mpc", 3), "plan_chunk": ("plan", "mpc_chunk", 4), "dp_act": ("act", "dp", 4)},
            "idql": {"resample_act": ("act", "resample", 2), "dp_act": ("act", "dp", 2)},
            "parl": {"rerank_act": ("act", "rerank", 4), "dp_act": ("act", "dp", 4)},
            "dsrl": {"steered_act": ("act", "steered", 4), "dp_act": ("act", "dp", 4)}}
    over = {"dppo": ["preset=test"], "tdmpc2": ["preset=test", "tdmpc2.utd=0.5"],
            "idql": ["preset=test", "dp.act_steps=2", "idql.batch_size=100", "idql.replay_ratio=50"],
            "parl": ["preset=test", "parl.update_every=4"],
            "dsrl": ["preset=test", "dsrl.train_freq=3"],
            "modip": ["preset=test", "modip.planner.replan_every=3", "modip.update_every=4",
                      "modip.updates_per_round=2"]}
    for name, acts in want.items():
        m = build_subject(name, "demo", overrides=over.get(name, [])).method
        comps = m.timed_components(batch_size=1)
        assert all(isinstance(c, TimedComponent) for c in comps.values()), name
        got = {k: (c.kind.value, c.actor, c.actions_per_call) for k, c in comps.items() if c.kind != ComponentKind.UPDATE}
        assert got == acts, name
        ups = comps["update"].updates_per_env_step
        expected = {"bc_gauss": None, "bc_dp": None, "tdmpc2": 0.5, "modip": 0.5, "idql": 50 / (100 * 2),
                    "parl": 0.25,
                    # a train call every train_freq 3 vector steps of n_envs 4 decisions of 4 actions
                    "dsrl": 1 / (3 * 4 * 4),
                    # preset test: 3 envs x 8 decisions x 4 actions; 2 epochs x max(1, 24 * 4 // 64) minibatches
                    "dppo": 2 * 1 / (3 * 8 * 4)}[name]
        assert ups == (pytest.approx(expected) if expected is not None else None), name


def test_checkpoint_loads_into_the_timed_method(tmp_path):
    from bench.timing.synthetic import build_subject

    torch.set_num_threads(1)
    a = build_subject("bc_dp", "demo", seed=1)
    dp_file, run_file = tmp_path / "dp.pt", tmp_path / "last.pt"
    torch.save({"dp_state": a.method.export_pretrained_dp(), "curve": "[]"}, dp_file)
    torch.save({"method": a.method.state_dict(), "normalizer": a.method.normalizer.state_dict()}, run_file)
    for path, kind in ((dp_file, "pretrained_dp"), (run_file, "run")):
        b = build_subject("bc_dp", "demo", seed=2, checkpoint=str(path))
        assert b.checkpoint_kind == kind
        for (k, pa), pb in zip(a.method.dp.ema.module.state_dict().items(), b.method.dp.ema.module.state_dict().values()):
            assert torch.equal(pa, pb), k
    with pytest.raises(ValueError, match="does not fit"):
        build_subject("bc_dp", "demo", checkpoint=str(dp_file), overrides=["dp.hidden=[32,32]"])


def test_known_spaces_match_the_envs():
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    import gymnasium as gym

    from bench.runner.assemble import KNOWN_SPACES

    for env_id, (obs_dim, act_dim, lo, hi) in KNOWN_SPACES.items():
        if env_id == "FrankaKitchen-v1":
            continue  # needs gymnasium-robotics; its obs is the `observation` key of a dict space
        env = gym.make(env_id)
        assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,), env_id
        assert np.all(env.action_space.low == lo) and np.all(env.action_space.high == hi), env_id
        env.close()


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


def test_compile_deadline_skips_and_says_so():
    rows = time_components(_Fake(), (1,), warmup=0, reps=2, compile=True, compile_backend="eager",
                           compile_deadline=0.0)
    skipped = [r for r in rows if r["compiled"]]
    assert len(skipped) == 1 and skipped[0]["compile_agree"] is None and skipped[0]["reps"] == 0
    assert "budget" in skipped[0]["compile_detail"]


def test_gpu_check_cpu_fallback_smoke(tmp_path):
    out = tmp_path / "rows.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--methods", "bc_gauss", "--no-compile", "--reps", "2", "--warmup", "0", "--batch", "2",
                           "--csv", str(out)], cwd=tmp_path, capture_output=True, check=False, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("slowest_act_p50_b1 bc_gauss/act: ") and last.endswith(")") and " ms (" in last
    assert out.read_text().count("\n") == 4  # header + act b1, update b1, act b2


def test_run_checkpoint_takes_its_config_from_the_store(tmp_path):
    """A run's last.pt names its run_id; `mbench time --checkpoint` rebuilds that run's config from the store."""
    import json

    from bench.config.layers import resolve_config
    from bench.timing.cli import measure
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
