"""benchmarks/throughput.py (the speed issue's cost benchmark): this tree against another, interleaved.

- the summary line takes, per measure, the smallest base/new ratio over the families' rows;
- every family starts from the same budgets on both sides, with its start rules set to fire before the window;
- --quick runs end to end against this same tree as its base (slow: 1-1.5 min on 2 busy cores, one family), and its
  last line has the issue's form.
"""
from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from tests.helpers import ROOT


def script():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["throughput"] = mod
    spec.loader.exec_module(mod)
    return mod


LAST = re.compile(r"^throughput: eval x\d+\.\d\d, train x\d+\.\d\d, common start x\d+\.\d\d "
                  r"\(minimum over families, new/base\)$")


def test_headline_is_the_smallest_ratio_per_measure():
    tp = script()
    rows = tp.summarise({
        ("idql", "demo", "train total / env step"): {"new": [1.0, 2.0, 3.0], "base": [4.0, 4.0, 4.0], "loads": [],
                                                     "window": {"new": "env steps 48-128", "base": "env steps 49-128"}},
        ("parl", "demo", "train total / env step"): {"new": [2.0] * 3, "base": [1.0] * 3, "loads": [], "window": {}},
        ("parl", "demo", "eval dp / episode-step"): {"new": [1.0] * 3, "base": [3.0] * 3, "loads": [1.5],
                                                     "window": {"new": "60 steps", "base": "60 steps"}},
        ("dppo", "demo", "common start / grad step"): {"new": [1.0] * 3, "base": [1.25] * 3, "loads": [],
                                                       "window": {}},
    })
    assert rows[0]["new"] == (2.0, 1.0, 3.0) and rows[0]["ratio"] == 2.0
    assert rows[0]["window"] == "env steps 48-128 (base: env steps 49-128)" and rows[2]["window"] == "60 steps"
    line = tp.headline(rows)
    assert line == "throughput: eval x3.00, train x0.50, common start x1.25 (minimum over families, new/base)"
    assert LAST.match(line)
    assert ("| parl | demo | eval dp / episode-step (ms) | 60 steps | 1e+03 [1e+03-1e+03] | 3e+03 [3e+03-3e+03] "
            "| 3.00 | 1.50-1.50 |") in tp.table(rows)


def test_budgets_are_the_same_for_both_trees_and_start_rules_fire_early():
    tp = script()
    for family in tp.FAMILIES:
        over = tp.overrides(family, tp.QUICK)
        assert over["threads"] == 1 and over["preset"] == "demo"
        assert ("common_start.steps" in over) == (family in tp.DP_FAMILIES)
        for key, value in tp.START.get(family, {}).items():
            assert over[key] == value
    assert tp.overrides("idql", tp.QUICK)["idql.update_after"] < tp.QUICK["window"][0]
    jobs = tp.run_jobs(["demo"], ["dppo", "modip"], tp.QUICK, {"demo": "data"})
    assert [j["kind"] for j in jobs] == ["sac", "run", "run"]
    assert jobs[1]["window"][0] == tp.QUICK["dppo_window"][0] and jobs[2]["minari"] == "data"


@pytest.mark.slow
def test_quick_against_itself_ends_with_the_summary_line(demo_dataset, capsys):
    tp = script()
    assert tp.main(["--quick", "--base", str(ROOT), "--families", "dppo", "--demo-data", str(demo_dataset)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert LAST.match(lines[-1]), lines[-1]
    table = [line for line in lines if line.startswith("| dppo | demo |")]
    measures = {line.split(" | ")[2] for line in table}
    assert {"train total / env step (ms)", "train act / env step (ms)", "train update / env step (ms)",
            "train env / env step (ms)", "eval dp / episode-step (ms)", "common start / grad step (ms)"} <= measures
    assert any(line.startswith("| data make (SAC) | demo | SAC update / step (ms)") for line in lines)
