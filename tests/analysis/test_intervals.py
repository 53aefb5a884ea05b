"""Issue 25's report: two-level bootstrap intervals over runs and eval episodes, paired differences, the ceiling
and shared-failure flags, and the report that prints them with each actor's action-selection rule."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from analysis import bootstrap, report, stats
from analysis.episodes import cell_flags, final_episodes, run_records
from results.store import Store

SWEEP = "ep"
FULL, FALL = 100.0, 13.0  # a full balance's score, and a fall's (IDQL's 91.3 = 9 x 100 + 13, over 10)


def _cell(n_runs=5, states=10, fail_at=(7,), shared=True, score=None):
    """Episodes of one line: every run fails the states `fail_at` (the same eval states when `shared`)."""
    rows = []
    for s in range(n_runs):
        for i in range(states):
            value = score(s, i) if score else (FALL if i in fail_at else FULL)
            rows.append({"run_id": f"r{s}", "seed": s, "episode": i, "normalized_score": value,
                         "reset_seed": 10_000 + i + (0 if shared else 1000 * s)})
    return pd.DataFrame(rows)


def test_five_runs_failing_the_same_state_get_a_half_width_of_at_least_10_points():
    cell = _cell()
    runs = cell.groupby("run_id")["normalized_score"].mean()
    assert np.allclose(runs, 91.3) and stats.mean_ci(runs)[1] == 0.0  # over run seeds alone: "± 0.0"
    got = bootstrap.cell_interval(cell)
    assert got["design"] == "crossed" and got["mean"] == pytest.approx(91.3)
    assert (got["high"] - got["low"]) / 2 >= 10.0 and got["low"] <= 91.3 <= got["high"]
    # the same failures on each run's own states (the per-seed protocol) are five independent draws: narrower
    own = bootstrap.cell_interval(_cell(shared=False))
    assert own["design"] == "nested" and 0 < own["high"] - own["low"] < got["high"] - got["low"]


def test_the_bootstrap_is_seeded_and_its_spread_is_the_designs():
    """Replicates' sd against the analytic one: crossed, 10 shared states, p = 0.1 of a fall: 87 sqrt(0.09 / 10);
    nested, 5 runs x 10 own states: that over sqrt(5). Runs that differ add the spread of their means."""
    for shared, n_runs in ((True, 5), (False, 5)):
        eps = bootstrap.episodes_of(_cell(n_runs=n_runs, shared=shared))
        draws = bootstrap.replicates(eps, bootstrap.RESAMPLES, seed=1)[:, 0]
        want = (FULL - FALL) * np.sqrt(0.09 / 10) / (1 if shared else np.sqrt(n_runs))
        assert draws.std() == pytest.approx(want, rel=0.06)
        assert np.array_equal(draws, bootstrap.replicates(eps, bootstrap.RESAMPLES, seed=1)[:, 0])
    # runs that differ but never fail: only level 1 moves the estimate (sd of the mean of 5 runs, ddof 0)
    levels = np.array([60.0, 70.0, 80.0, 90.0, 100.0])
    eps = bootstrap.episodes_of(_cell(shared=False, score=lambda s, i: levels[s]))
    draws = bootstrap.replicates(eps, bootstrap.RESAMPLES, seed=2)[:, 0]
    assert draws.std() == pytest.approx(levels.std() / np.sqrt(5), rel=0.06)


def test_paired_differences_cancel_what_two_lines_share():
    x = _cell(shared=False, fail_at=(3, 7))
    y = x.assign(normalized_score=x["normalized_score"] - 5.0)  # y is x less 5 on every episode
    d = bootstrap.paired_difference(x, y)
    assert d["difference"] == pytest.approx(5.0) and d["low"] == pytest.approx(5.0) and d["high"] == pytest.approx(5.0)
    unpaired = bootstrap.cell_interval(x)
    assert unpaired["high"] - unpaired["low"] > 10  # each line alone is uncertain; their difference is not
    # a line that meets other states is matched on the states both met only
    assert bootstrap.paired_difference(x, y.assign(reset_seed=y["reset_seed"] + 500_000)) is None


def _finals(score, ret, success=None, terminated=False, n_runs=3, shared=True):
    rows = []
    for s in range(n_runs):
        for i in range(10):
            rows.append({"run_id": f"r{s}", "seed": s, "actor": "a", "line": "m/a", "task": "t", "phase": "final",
                         "env_step": 9, "grad_step": 9, "episode": i, "reset_seed": i + (0 if shared else 100 * s),
                         "normalized_score": score(s, i), "return": ret(s, i), "success": success,
                         "terminated": terminated(s, i) if callable(terminated) else terminated})
    return pd.DataFrame(rows)


def _records(ceiling, n_runs=3):
    return pd.DataFrame({"run_id": [f"r{s}" for s in range(n_runs)], "ceiling": [ceiling] * n_runs})


def test_the_ceiling_and_shared_failure_flags():
    top = {"metric": "return", "max": 1872.0}
    # 9 of 10 episodes within 1% of the max return: at the ceiling; state 7 failed by all three runs
    final = _finals(lambda s, i: 100.0, lambda s, i: 1860.0 if i != 7 else 200.0)
    flags = cell_flags(final, _records(top)).iloc[0]
    assert flags["ceiling_share"] == pytest.approx(0.9) and flags["ceiling"]
    assert (flags["shared_states"], flags["shared_failures"]) == (10, 1)
    # 7 of 10: no ceiling; the failures differ per run: no state failed by all
    final = _finals(lambda s, i: 50.0, lambda s, i: 1860.0 if (i + 3 * s) % 10 >= 3 else 200.0)
    flags = cell_flags(final, _records(top)).iloc[0]
    assert not flags["ceiling"] and flags["shared_failures"] == 0
    # success tasks; and a task with no known ceiling, where a failure is an episode the env ended (a fall)
    final = _finals(lambda s, i: 100.0, lambda s, i: 1.0, success=1.0)
    assert cell_flags(final, _records({"metric": "success", "max": 1.0})).iloc[0]["ceiling"]
    final = _finals(lambda s, i: 40.0, lambda s, i: 900.0, terminated=lambda s, i: i == 2)
    flags = cell_flags(final, _records({})).iloc[0]
    assert np.isnan(flags["ceiling_share"]) and not flags["ceiling"] and flags["shared_failures"] == 1
    # per-seed states are never shared across runs: nothing to flag there
    final = _finals(lambda s, i: 40.0, lambda s, i: 900.0, terminated=True, shared=False)
    assert cell_flags(final, _records({})).iloc[0]["shared_states"] == 0


def _write(store, run_id, method, seed, actor_scores, product, selection, shared=True, episodes=True, n=10, variant=""):
    prov = {"actors": {"product": product, "selection": selection}, "ceiling": {"metric": "return", "max": 1872.0},
            "data_score": 31.5, "seeds": {"run": seed, "eval": [], "eval_states": "fixed" if shared else "per_seed"}}
    store.write_run({"run_id": run_id, "sweep_id": SWEEP, "method": method, "variant": variant, "suite": "demo",
                     "task": "demo", "seed": seed, "status": "finished", "attempt": 1,
                     "config_json": json.dumps({"method": method}), "provenance_json": json.dumps(prov)})
    curve, eps = [], []
    for actor, score in actor_scores.items():
        values = [score(i) for i in range(n)]
        for step, phase in ((0, "pretrain"), (1000, "final")):
            base = {"phase": phase, "env_step": step, "grad_step": step, "wall_s": 1.0 + step, "actor": actor,
                    "n_episodes": n}
            curve.append({**base, "metric": "normalized_score", "value": float(np.mean(values)) - (step == 0)})
            eps += [{"phase": phase, "env_step": step, "grad_step": step, "actor": actor, "episode": i,
                     "reset_seed": 10_000 + i + (0 if shared else 1000 * seed), "normalized_score": v,
                     "return": 18.72 * v, "success": None, "length": 200, "terminated": v < 100}
                    for i, v in enumerate(values)]
    store.write_curves(SWEEP, run_id, curve, attempt=1)
    if episodes:
        store.write_episodes(SWEEP, run_id, eps, attempt=1)


def test_the_report_prints_the_intervals_flags_and_action_rules(tmp_path):
    store = Store(tmp_path / "store")
    for seed in range(5):  # "idql"-like: the product resamples and fails state 7 on every run; its DP is worse
        _write(store, f"i{seed}", "m1", seed, {"best": lambda i: FALL if i == 7 else FULL,
                                               "dp": lambda i: 40.0 + i}, "best",
               {"best": "argmax over samples", "dp": "DP sample"})
        _write(store, f"b{seed}", "m2", seed, {"pi": lambda i: 30.0 + i}, "pi", {"pi": "mean"})
    text = re.sub(r" +", " ", report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=50).read_text())
    row = next(line for line in text.splitlines() if line.startswith("| m1/best") and "[" in line)
    assert "91.3 [" in row and "(n=5) ⌃ ≡1" in row and "± 0.0" not in text
    low, high = map(float, row.split("[")[1].split("]")[0].split(","))
    assert (high - low) / 2 >= 10
    assert "| m1/best | yes | argmax over samples |" in text and "| m1/dp | no | DP sample |" in text
    assert "| m2/pi | yes | mean |" in text and "return 1872" in text and "31.5" in text
    # ordering: product lines only (m1/dp is not one), by final score, paired
    assert "m1/best > m2/pi" in text and "m1/dp > " not in text
    assert (tmp_path / "out" / "tables" / "paired_differences.csv").exists()
    # a store without episodes (older than schema 3) still reports, with run-level intervals, and says so
    old = Store(tmp_path / "old")
    for seed in range(2):
        _write(old, f"b{seed}", "m2", seed, {"pi": lambda i: 30.0 + i}, "pi", {"pi": "mean"}, episodes=False)
    text = re.sub(r" +", " ", report.write_report(tmp_path / "old", SWEEP, tmp_path / "out_old", reps=50).read_text())
    assert "(n=2) † ‡" in text and "no eval episodes in the store" in text and "could not be made" not in text


def test_variants_of_one_method_are_ordered_like_two_methods(tmp_path):
    """A control of a method in the same sweep (here m1 at x=1 and its x=0 control) is a line of its own, and the
    paired ordering compares it with the method's other variant, as the reference sweep's horizon-0 control needs."""
    store = Store(tmp_path / "store")
    for seed in range(5):
        _write(store, f"a{seed}", "m1", seed, {"dp": lambda i: 60.0 + i}, "dp", {"dp": "DP sample"}, variant="x=1")
        _write(store, f"c{seed}", "m1", seed, {"dp": lambda i: 30.0 + i}, "dp", {"dp": "DP sample"}, variant="x=0")
    report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=50)
    paired = pd.read_csv(tmp_path / "out" / "tables" / "paired_differences.csv")
    assert list(zip(paired["x"], paired["y"])) == [("m1[x=1]/dp", "m1[x=0]/dp")]
    assert paired["claim"].iloc[0] == "m1[x=1]/dp > m1[x=0]/dp" and paired["low"].iloc[0] > 0


def test_final_episodes_prefers_the_final_phase_and_records_read_back(tmp_path):
    store = Store(tmp_path)
    _write(store, "r0", "m1", 0, {"a": lambda i: float(i)}, "a", {"a": "mean"}, n=4)
    eps = store.episodes(sweep=SWEEP)
    eps["line"] = "m1/a"
    final = final_episodes(pd.concat([eps, eps.assign(phase="finetune", episode=eps["episode"] + 10)]))
    assert set(final["phase"]) == {"final"} and list(final["episode"]) == [0, 1, 2, 3]
    rec = run_records(store.runs(sweep=SWEEP)).iloc[0]
    assert rec["product"] == "a" and rec["selection"] == {"a": "mean"} and rec["data_score"] == 31.5
