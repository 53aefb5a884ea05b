"""`mbench ablate` on a real tiny 2x2 sweep: four MODIP runs (planner.terminal v/q x critic.target indep/policy)
and a bc_dp reference, run by the real runner into a store, then the ablation report read from that store with
the shipped sweep file's `ablation:` section (sweeps/ablate-modip.yaml)."""
from __future__ import annotations

import pandas as pd
import pytest

from analysis import ablate
from bench.config.layers import resolve_config
from bench.runner.lifecycle import run_one
from results.store import Store
from tests.helpers import ROOT, TINY

SWEEP = "ablate-tiny"
SWEEP_FILE = ROOT / "sweeps" / "ablate-modip.yaml"


@pytest.mark.slow
def test_ablation_report_on_a_real_tiny_2x2_sweep(demo_dataset, tmp_path):
    store = tmp_path / "store"
    base = {**TINY, "online.steps": 48, "eval.every": 24, "eval.timing": True, "eval.timing_reps": 3,
            "eval.timing_batch": 2}
    for terminal in ("v", "q"):
        for target in ("indep", "policy"):
            cfg = resolve_config("modip", "demo", 0, {**base, "preset": "test",
                                                      "modip.planner.terminal": terminal,
                                                      "modip.critic.target": target})
            run_one(cfg, store_root=store, sweep_id=SWEEP, progress=False)
    run_one(resolve_config("bc_dp", "demo", 0, base), store_root=store, sweep_id=SWEEP, progress=False)
    runs = Store(store).runs(sweep=SWEEP)
    assert len(runs) == 5 and (runs.status == "finished").all()

    # the runner stored each component's metadata, read from the live config
    timings = Store(store).timings(sweep=SWEEP)
    modip = timings[timings.method == "modip"]
    plan, dp_act = modip[modip.component == "plan"], modip[modip.component == "dp_act"]
    replan = {r.run_id: cfg_replan for r, cfg_replan in zip(runs.itertuples(), runs.config_json)}
    assert set(plan.kind) == {"plan"} and set(plan.actor) == {"mpc"}
    assert set(dp_act.kind) == {"act"} and set(dp_act.actor) == {"dp"} and set(dp_act.actions_per_call) == {4}
    import json

    for r in plan.itertuples():
        assert r.actions_per_call == json.loads(replan[r.run_id])["modip"]["planner"]["replan_every"]
    upd = modip[modip.component == "update"]
    assert set(upd.kind) == {"update"} and (upd.updates_per_env_step == 1 / 4).all()  # test preset: update_every 4

    path = ablate.write_ablation(store, SWEEP, tmp_path / "out", reps=200, sweep_file=SWEEP_FILE)
    text = path.read_text()
    summary = pd.read_csv(tmp_path / "out" / "tables" / "ablation_summary.csv").set_index("cell")
    assert set(summary.index) >= {"terminal=v, target=indep", "terminal=q, target=indep",
                                  "terminal=v, target=policy", "terminal=q, target=policy"}
    # The q cells pay a denoising chain per sample and iteration at the terminal state: slower plans, measured.
    ratio = float(str(summary.loc["terminal=q, target=indep", "action latency ms mpc ratio"]).split()[0])
    assert ratio > 1.0
    assert float(str(summary.loc["terminal=v, target=indep", "action latency ms mpc ratio"]).split()[0]) == 1.0
    # one seed per cell: every score cell is flagged as under-seeded
    assert "(n=1) †" in summary.loc["terminal=v, target=indep", "score mpc"]
    assert "figures/ablation_curves.png" in text and (tmp_path / "out" / "figures" / "ablation_curves.png").exists()
