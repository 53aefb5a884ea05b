"""benchmarks/parl_collapse.py (the hopper issue's B5): PA-RL's 2x2 of critics learning or frozen online x DP
distillation on or off, through the runner, with its follow-up arms.

- the arms: the four cells, and one arm per follow-up flag on the chosen cell, each changing one key;
- --smoke runs the 2x2 end to end on the demo task (slow: ~30 s of CPU), and the cell that changes nothing online
  (frozen+nodistill) scores at every eval point what it scored at env step 0.
"""
from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.helpers import ROOT


def script():
    spec = importlib.util.spec_from_file_location("parl_collapse", ROOT / "benchmarks" / "parl_collapse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["parl_collapse"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_arms_are_the_four_cells_and_one_per_follow_up_flag():
    pc = script()
    args = pc.argparse.Namespace(arms_only=False, arm_cell="frozen+distill", no_optim_reset=True,
                                 target_tau="0.005,0.002", online_ratio="0.1", sweep="parl-collapse",
                                 arm=["parl.distill_argmax=true"])
    arms = pc.arms_of(args)
    assert [a.label for a in arms[:4]] == list(pc.CELLS)
    assert [a.overrides for a in arms[4:]] == [{"parl.reset_critic_optim_online": False},
                                               {"parl.critic.target_tau": 0.005}, {"parl.critic.target_tau": 0.002},
                                               {"parl.online_ratio": 0.1}, {"parl.distill_argmax": True}]
    assert all(a.cell == "frozen+distill" for a in arms[4:])
    specs = pc.run_specs(args, "hopper-medium", [10], {"online.steps": 6000})
    cfgs = {a.label: r.cfg for a, r in specs}
    frozen = cfgs["frozen+distill, critic.target_tau=0.005"]
    assert not frozen.section.critics_online and frozen.section.distill and frozen.section.critic.target_tau == 0.005
    assert frozen.online.steps == 6000 and frozen.pretrain.steps == 20000 and frozen.preset == "demo"
    assert cfgs["learn+distill"].section.critics_online and cfgs["learn+distill"].section.distill
    assert len({r.run_id for _, r in specs}) == len(specs)
    only = pc.arms_of(pc.argparse.Namespace(arms_only=True, arm_cell="learn+distill", no_optim_reset=False,
                                            target_tau="", online_ratio="0.25", arm=[]))
    assert [a.label for a in only] == ["learn+distill", "learn+distill, online_ratio=0.25"]


@pytest.mark.slow
def test_smoke_runs_the_2x2_and_the_null_cell_repeats_step_0(demo_dataset, capsys):
    pc = script()
    assert pc.main(["--smoke", "--seeds", "10"]) == 0
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert lines[-1].startswith("parl_collapse: demo seeds 10 at 300 env steps")
    null = out.split("## frozen+nodistill")[1].split("##")[0]
    rows = [line.split(" | ") for line in null.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r[0] for r in rows] == ["| 0", "| 150", "| 300"]
    assert len({(r[1], r[2]) for r in rows}) == 1  # rerank and dp scores as at env step 0
    assert all(r[-1].rstrip(" |") == "-" for r in rows)  # no critic loss online
    for cell in pc.CELLS:
        assert f"## {cell}\n" in out
