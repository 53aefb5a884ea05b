"""benchmarks/profile_floor.py (the speed issue's profiles and matmul floors).

- each family runs three times (time, profile, flops) with the same budgets and start rules as throughput.py,
  on hopper at its `d4rl` preset where it has one (else demo), and the families without an online phase are
  measured over their offline or common-start steps;
- the floor row divides the measured cost by the floor per unit, says where the FLOP run's window differs, and
  a tree that cannot be driven gets a row that says so instead of failing the benchmark;
- --quick runs end to end (slow: about a minute on 2 busy cores, three families): a floor row per family whose
  measured/floor is a positive finite number, eval rows for the DP actor, and the tree's own frames in the
  profile.
"""
from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from tests.helpers import ROOT


def script():
    spec = importlib.util.spec_from_file_location("profile_floor", ROOT / "benchmarks" / "profile_floor.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["profile_floor"] = mod
    spec.loader.exec_module(mod)
    return mod


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_three_runs_per_family_on_throughputs_budgets():
    pf = script()
    tp = sys.modules["throughput"]
    jobs = pf.jobs_for("hopper-medium", "parl", tp.QUICK, "data", 5)
    assert [j["mode"] for j in jobs] == ["time", "profile", "flops"]
    assert all(j["overrides"] == jobs[0]["overrides"] and j["window"] == jobs[0]["window"] for j in jobs)
    assert jobs[0]["overrides"]["preset"] == ["d4rl", "demo"] and jobs[0]["training"] == "online"
    assert jobs[0]["overrides"]["parl.update_after"] == tp.START["parl"]["parl.update_after"]
    assert pf.jobs_for("demo", "bc_dp", tp.QUICK, "d", 5)[0]["training"] == "common_start"
    assert pf.jobs_for("demo", "bc_gauss", tp.QUICK, "d", 5)[0]["training"] == "pretrain"
    assert pf.jobs_for("demo", "dppo", tp.QUICK, "d", 5)[0]["window"][0] == tp.QUICK["dppo_window"][0]


def window(seconds: float, steps: int, span=(48, 128)) -> dict:
    return {"seconds": seconds, "act_update": seconds * 0.9, "steps": steps, "span": list(span), "load": [1.0, 1.5],
            "unit": "env step"}


def runs(flop_span=(48, 128)) -> dict:
    ev = {"dp": {"seconds": 0.002, "act": 0.001, "steps": 10}}
    floor = {"flops": 8e9, "floor_s": 0.8, "rate": 1e10, "timed_share": 1.0, "shapes": []}
    return {"time": {"preset": "demo", "window": window(0.05, 80), "eval": ev},
            "profile": {"preset": "demo", "window": window(0.06, 80), "eval": ev,
                        "profile": {"total_s": 4.0, "wall_s": 4.0, "frames": [], "leaves": []}},
            "flops": {"preset": "demo", "window": window(0.2, 80, flop_span), "eval": ev, "train_floor": floor,
                      "eval_floor": {"dp": {"flops": 1e7, "floor_s": 0.0005, "steps": 10}}}}


def test_floor_row_is_measured_over_floor_and_errors_are_rows():
    pf = script()
    c = pf.combine(runs())
    assert c["train"]["floor"] == pytest.approx(0.01) and c["train"]["ratio"] == pytest.approx(5.0)
    assert c["train"]["flops"] == pytest.approx(1e8) and not c["note"]
    assert c["eval"]["dp"]["ratio"] == pytest.approx(40.0)
    off = pf.combine(runs(flop_span=(50, 128)))
    assert "differs" in off["note"]
    bad = pf.combine({"time": {"error": "ImportError: no module"}, "profile": {}, "flops": {}})
    combined = {("demo", "parl"): {"new": c, "base": bad}}
    table = pf.train_table(combined).splitlines()
    new = cells(next(line for line in table if line.startswith("| demo | parl | new |")))
    assert new[10] == "5.00" and new[9] == "10"
    assert any(line.startswith("| demo | parl | base | - | could not be driven: ImportError") for line in table)
    assert pf.headline(combined) == "profile_floor: train measured/floor parl/demo x5.00 (new)"
    assert "| 1 | " not in pf.profile_tables(combined)  # empty profiles print no rows


@pytest.mark.slow
def test_quick_has_a_finite_floor_row_per_family(demo_dataset, capsys):
    pf = script()
    families = ["bc_gauss", "bc_dp", "parl"]
    assert pf.main(["--quick", "--families", ",".join(families), "--demo-data", str(demo_dataset), "--top", "4"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    for fam in families:
        rows = [cells(line) for line in lines if line.startswith(f"| demo | {fam} | new |")]
        assert len(rows) == 1, (fam, rows)
        measured, floor, ratio = (float(rows[0][i]) for i in (5, 9, 10))
        assert measured > 0 and floor > 0 and math.isfinite(ratio) and ratio > 0, rows[0]
        assert ratio == pytest.approx(measured / floor, rel=0.05)
    assert any(line.startswith("| demo | parl | dp | new |") for line in lines)
    assert "methods/parl/" in out.split("### parl on demo")[1]
    assert lines[-1].startswith("profile_floor: train measured/floor bc_gauss/demo x")
