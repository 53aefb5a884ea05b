"""`mbench ablate` on a real tiny 2x2 sweep: four MODIP runs (planner.terminal v/q x critic.target indep/policy)
and a bc_dp reference, run by the real runner into a store, then the ablation report read from that store."""
from __future__ import annotations

import pandas as pd

from analysis import ablate
from bench.runner import resolve_config, run_one
from results.store import Store
from tests.conftest import TINY

SWEEP = "ablate-tiny"


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

    path = ablate.write_ablation(store, SWEEP, tmp_path / "out", reps=200)
    text = path.read_text()
    summary = pd.read_csv(tmp_path / "out" / "tables" / "ablation_summary.csv").set_index("cell")
    assert set(summary.index) >= {"terminal=v, target=indep", "terminal=q, target=indep",
                                  "terminal=v, target=policy", "terminal=q, target=policy"}
    # The q cells pay a denoising chain per sample and iteration at the terminal state: slower plans, measured.
    ratio = float(str(summary.loc["terminal=q, target=indep", "action latency ms ratio"]).split()[0])
    assert ratio > 1.0
    assert float(str(summary.loc["terminal=v, target=indep", "action latency ms ratio"]).split()[0]) == 1.0
    # one seed per cell: every score cell is flagged as under-seeded
    assert "(n=1) †" in summary.loc["terminal=v, target=indep", "score mpc"]
    assert "figures/ablation_curves.png" in text and (tmp_path / "out" / "figures" / "ablation_curves.png").exists()
