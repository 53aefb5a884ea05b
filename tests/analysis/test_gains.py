"""analysis/gains.py: paired gains over the own start and over the same seed's common start, and the dip."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import gains


def episodes(run_id, line, seed, env_step, phase, scores, start=0):
    return pd.DataFrame({"run_id": run_id, "line": line, "task": "t", "seed": seed, "actor": line.split("/")[-1],
                         "env_step": env_step, "grad_step": env_step, "phase": phase,
                         "episode": np.arange(len(scores)), "reset_seed": 1000 * seed + start + np.arange(len(scores)),
                         "normalized_score": np.asarray(scores, float)})


def store(gain=20.0, seeds=range(5)):
    rng = np.random.default_rng(0)
    eps, pts, recs = [], [], []
    for s in seeds:
        base = 30 + rng.normal(0, 1, 10)
        eps.append(episodes(f"bc{s}", "bc/dp", s, 0, "final", base))  # the common start: one eval
        eps.append(episodes(f"ft{s}", "ft/dp", s, 0, "pretrain", base))  # the fine-tuner starts there
        eps.append(episodes(f"ft{s}", "ft/dp", s, 2000, "finetune", base - 10))  # dips by 10
        eps.append(episodes(f"ft{s}", "ft/dp", s, 4000, "final", base + gain))
        pts += [{"run_id": f"ft{s}", "line": "ft/dp", "task": "t", "env_step": e, "value": float(np.mean(v))}
                for e, v in ((0, base), (2000, base - 10), (4000, base + gain))]
        pts.append({"run_id": f"bc{s}", "line": "bc/dp", "task": "t", "env_step": 0, "value": float(base.mean())})
        recs += [{"run_id": f"bc{s}", "product": "dp", "common_start": True},
                 {"run_id": f"ft{s}", "product": "dp", "common_start": False}]
    e = pd.concat(eps, ignore_index=True)
    final = e[e["phase"] == "final"].reset_index(drop=True)
    return e, final, pd.DataFrame(pts), pd.DataFrame(recs)


def test_gains_are_paired_and_the_dip_is_found():
    e, final, pts, recs = store(gain=20.0)
    t = gains.gains_table(e, final, pts, recs, reps=2000).set_index("line")
    ft = t.loc["ft/dp"]
    assert abs(ft.step0 - ft.final + 20) < 1e-9 and abs(ft.gain_start - 20) < 1e-9
    assert abs(ft.gain_common - 20) < 1e-9 and ft.gain_common_low > 19.9  # paired: the shared states cancel
    assert abs(ft.dip + 10) < 1e-9 and ft.dip_at == 2000
    assert np.isnan(t.loc["bc/dp"].gain_common) and np.isnan(t.loc["bc/dp"].gain_start)  # the reference itself
    shown = gains.display(t.reset_index())
    assert shown.loc[shown["line"] == "ft/dp", "gain over common start"].item().endswith("*")


def test_no_gain_no_star_and_no_flag_no_common_column():
    e, final, pts, recs = store(gain=0.0)
    t = gains.gains_table(e, final, pts, recs.assign(common_start=None), reps=500).set_index("line")
    assert np.isnan(t.loc["ft/dp"].gain_common)  # records before the flag: no common-start column
    assert abs(t.loc["ft/dp"].gain_start) < 1e-9
    assert "*" not in gains.display(t.reset_index()).loc[1, "gain over own step 0"]
