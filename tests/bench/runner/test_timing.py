"""bench/runner/timing.py: honest latencies, ordered percentiles, components timed by their kind (never their
name) with their metadata in the rows, the runner's timing rows in the store, and a compile deadline
that skips and says so.
"""
from __future__ import annotations

import time
import types

import numpy as np
import pytest
import torch

from bench.runner.timing import summarize, time_callable, time_components
from methods.base import ComponentKind, TimedComponent


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
    """A duck-typed method: one sampling act path and one update; `wrong` makes its act path depend on how often
    it was called (state no RNG restore brings back), so that its compiled path cannot agree with the eager one."""

    def __init__(self, wrong: bool = False):
        self.device = torch.device("cpu")
        self.net = torch.nn.Linear(3, 2)
        self.wrong = wrong
        self.updates = 0
        self.calls = 0

    def _act(self, obs, g):
        self.calls += 1
        with torch.no_grad():
            noise = torch.randn(obs.shape, generator=g)
            return (self.net(obs + noise) + (0.5 * self.calls if self.wrong else 0.0)).numpy()

    def timed_components(self, batch_size=1):
        obs = torch.zeros(batch_size, 3)
        g = torch.Generator().manual_seed(0)
        settings = {"samples": 8, "terminal": "v"}

        def update():
            self.updates += 1

        return {"act": TimedComponent(lambda: self._act(obs, g), ComponentKind.ACT, actor="policy",
                                      settings=settings),
                "update": TimedComponent(update, ComponentKind.UPDATE, updates_per_env_step=0.5,
                                         settings=settings)}


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

    def timed_components(self, batch_size=1):
        def plan():
            self.calls["update_plan"] += 1
            return torch.zeros(batch_size, 3, 2)

        def step():
            self.calls["step"] += 1

        clash = {"actor": "clash"}  # a setting named like a metadata column is kept apart from it
        return {"update_plan": TimedComponent(plan, ComponentKind.PLAN, actor="foo", actions_per_call=3,
                                              settings=clash),
                "step": TimedComponent(step, ComponentKind.UPDATE, updates_per_env_step=0.25, settings=clash)}


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
    fake = types.SimpleNamespace(device=torch.device("cpu"),
                                 timed_components=lambda batch_size=1: {"act": lambda: None})
    with pytest.raises(TypeError, match=r"\['act'\] is a function, not a methods.base.TimedComponent"):
        time_components(fake, (1,), warmup=0, reps=1)


def test_compile_deadline_skips_and_says_so():
    rows = time_components(_Fake(), (1,), warmup=0, reps=2, compile=True, compile_backend="eager",
                           compile_deadline=0.0)
    skipped = [r for r in rows if r["compiled"]]
    assert len(skipped) == 1 and skipped[0]["compile_agree"] is None and skipped[0]["reps"] == 0
    assert "budget" in skipped[0]["compile_detail"]
