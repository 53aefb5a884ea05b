"""Issue 25's figures: curve bands and the Pareto figure's and the ablation's score intervals from the two-level
bootstrap of runs and eval episodes (over runs only, labelled, where a store has no episodes), each family one hue
and each actor a line style, references thin and without bands, at most ten lines a panel, and a Pareto figure
that says what its bars span."""
from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from analysis import ablate, bands, bootstrap, curves, figures, looks, panels, report, score_table, stats
from analysis.data import Notes, align_to_grid, eval_points, load_sweep, run_scores
from analysis.episodes import final_episodes, run_records
from results.store import Store

SWEEP = "figs"
STEPS = (0, 1000, 2000)
FULL, FALL = 100.0, 13.0
REPS = 400


def _write(store, run_id, method, seed, actors, product, n=10, steps=STEPS, episodes=True, timing=None,
           variant="", config=None):
    """A finished run: per actor, an eval of n episodes at each step (and a `final` eval at the last) whose
    episode i scores actors[actor](step, i); every run meets the same eval states (a shared, crossed design)."""
    prov = {"actors": {"product": product, "selection": {a: "DP sample" for a in actors}},
            "ceiling": {}, "data_score": 30.0, "seeds": {"run": seed, "eval": [], "eval_states": "fixed"},
            "dataset_hash": "d" * 16}
    store.write_run({"run_id": run_id, "sweep_id": SWEEP, "method": method, "variant": variant, "suite": "demo",
                     "task": "demo", "dataset": "demo-medium", "seed": seed, "status": "finished", "attempt": 1,
                     "git_sha": "a" * 40, "config_json": json.dumps(config or {"method": method}),
                     "provenance_json": json.dumps(prov)})
    curve, eps = [], []
    evals = [(s, "pretrain" if s == 0 else "finetune") for s in steps] + [(steps[-1], "final")]
    for actor, score in actors.items():
        for k, (step, phase) in enumerate(evals):
            values = [score(step, i) for i in range(n)]
            curve.append({"phase": phase, "env_step": step, "grad_step": 100 + step, "wall_s": 1.0 + k,
                          "actor": actor, "metric": "normalized_score", "value": float(np.mean(values)),
                          "n_episodes": n})
            eps += [{"phase": phase, "env_step": step, "grad_step": 100 + step, "actor": actor, "episode": i,
                     "reset_seed": 10_000 + i, "normalized_score": v, "return": 10 * v, "success": None,
                     "length": 100, "terminated": v < FULL} for i, v in enumerate(values)]
    store.write_curves(SWEEP, run_id, curve, attempt=1)
    if episodes:
        store.write_episodes(SWEEP, run_id, eps, attempt=1)
    if timing:
        rows = [{"component": c, "device": "cpu", "batch": 1, "warmup": 1, "reps": 7, "mean_ms": ms, "p50_ms": ms,
                 "p90_ms": ms, "p99_ms": ms, "threads": 1, "compiled": False, "kind": kind, "actor": actor,
                 "actions_per_call": per_call, "updates_per_env_step": None}
                for c, (ms, kind, actor, per_call) in timing.items()]
        store.write_timings(SWEEP, run_id, rows, attempt=1)


def _fails_state_7(step, i):
    return FALL if i == 7 else FULL


def _sweep(root, episodes=True):
    """m1 (actors best, the product, failing eval state 7 on every run; and dp), m2/pi and a reference (one
    eval: no online phase), five seeds each."""
    store = Store(root)
    for seed in range(5):
        _write(store, f"m1-{seed}", "m1", seed, {"best": _fails_state_7, "dp": lambda s, i: 40.0 + i + s / 100},
               "best", episodes=episodes, timing={"choose": (8.0 * (seed + 1), "plan", "best", 2),
                                                   "act": (1.0, "act", "dp", 4)})
        _write(store, f"m2-{seed}", "m2", seed, {"pi": lambda s, i: 30.0 + i}, "pi", episodes=episodes)
        _write(store, f"ref-{seed}", "ref", seed, {"pi": lambda s, i, seed=seed: 35.0 + i + seed}, "pi", steps=(0,),
               episodes=episodes)
    return load_sweep(root, SWEEP, Notes(echo=False))


def _points(sweep):
    return align_to_grid(eval_points(sweep.curves), Notes(echo=False))


# ---------------------------------------------------------------------------------------------------- bands
def test_curve_bands_resample_runs_and_episodes_and_say_where_they_cannot(tmp_path):
    sweep = _sweep(tmp_path / "store")
    points = _points(sweep)
    band = bands.curve_bands(points, sweep.episodes, reps=REPS).set_index(["line", "env_step"])
    best = band.loc["m1/best"]
    # five runs failing the same state: over run seeds alone the interval is "± 0.0" ...
    runs = points[(points["line"] == "m1/best") & (points["env_step"] == 2000)]["value"]
    assert stats.mean_ci(runs)[1] == pytest.approx(0.0, abs=1e-9)
    # ... the two-level band is at least 10 points either side at every eval point
    assert (best["how"] == bands.TWO_LEVEL).all() and ((best["high"] - best["low"]) / 2 >= 10).all()
    assert best["mean"].to_numpy() == pytest.approx(91.3)
    # the point at the last step shows the final eval (the same episodes here), as the curve does
    assert band.loc[("m1/best", 2000), "episodes"] == 50
    # a store without episodes (older than schema 3): over runs only, and said so
    old = _sweep(tmp_path / "old", episodes=False)
    band = bands.curve_bands(_points(old), old.episodes, reps=REPS)
    assert (band["how"] == bands.RUNS_ONLY).all()
    assert (band.loc[band["line"] == "m1/best", "high"] - band.loc[band["line"] == "m1/best", "low"]).max() < 1e-9


def test_a_point_interpolated_between_two_evals_falls_back_to_runs_only():
    points = pd.DataFrame({"task": "t", "line": "m/a", "run_id": ["r0", "r1"], "actor": "a", "seed": [0, 1],
                           "env_step": 1000, "value": [50.0, 60.0], "source_step": [1000.0, np.nan]})
    eps = pd.DataFrame({"run_id": "r0", "actor": "a", "env_step": 1000, "phase": "finetune", "grad_step": 5,
                        "episode": range(4), "reset_seed": range(4), "normalized_score": 50.0, "seed": 0})
    got = bands.curve_bands(points, eps, reps=REPS).iloc[0]
    assert got["how"] == bands.RUNS_ONLY and got["mean"] == pytest.approx(55.0)


# ---------------------------------------------------------------------------------------------------- looks
def test_each_family_one_hue_each_actor_a_line_style_product_solid():
    lines = ["m1/best", "m1/dp", "m1[k=2]/dp", "m2/pi", "ref/pi"]
    look = looks.looks(lines, {"m1": "best", "m1[k=2]": "dp"})
    assert look.colors["m1/best"] == look.colors["m1/dp"]  # one family, one hue
    hues = {look.colors[ln] for ln in ("m1/best", "m1[k=2]/dp", "m2/pi", "ref/pi")}
    assert len(hues) == 4  # a variant is a family of its own
    assert look.styles["m1/best"] == "-" and look.styles["m1/dp"] == "--"  # the product solid
    # no product recorded: the actors in name order
    assert looks.looks(lines).styles["m1/best"] == "-" and looks.looks(lines).styles["m1/dp"] == "--"
    assert looks.split_line("m[x=a/b]") == ("m[x=a/b]", "") and looks.split_line("m[v]/dp") == ("m[v]", "dp")


def test_more_than_ten_lines_are_split_by_family_each_panel_repeating_the_references():
    lines = ["r1/a", "r2/a"] + [f"f{k}/{a}" for k in range(6) for a in ("x", "y")]  # 14 lines
    groups = panels.panel_groups(lines, refs={"r1/a", "r2/a"})
    assert len(groups) == 2 and all(len(g) <= panels.MAX_LINES for g in groups)
    assert all({"r1/a", "r2/a"} <= set(g) for g in groups)
    for k in range(6):  # a family is never split
        assert sum(f"f{k}/x" in g and f"f{k}/y" in g for g in groups) == 1
    assert panels.panel_groups(lines[:10], refs={"r1/a"}) == [sorted(lines[:10])]


def test_the_curve_figure_draws_references_thin_without_a_band_and_families_in_one_hue(tmp_path):
    sweep = _sweep(tmp_path / "store")
    points = _points(sweep)
    look = looks.looks(points["line"], looks.family_products(run_records(sweep.finished), points))
    fig = curves.sample_efficiency(points, bands.curve_bands(points, sweep.episodes, reps=REPS), look)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    drawn = {ln.get_label(): ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1}
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["m1/best", "m1/dp", "m2/pi", "ref/pi (reference)"]
    handles = dict(zip(legend, ax.get_legend().legend_handles))
    assert handles["ref/pi (reference)"].get_linewidth() == looks.REFERENCE_WIDTH
    assert handles["m1/best"].get_linewidth() == looks.LINE_WIDTH
    assert handles["m1/best"].get_color() == handles["m1/dp"].get_color() != handles["m2/pi"].get_color()
    assert handles["m1/best"].get_linestyle() == "-" and handles["m1/dp"].get_linestyle() == "--"
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 3  # a band for each line with an online phase; none for the reference
    ref_color = matplotlib.colors.to_rgba(look.colors["ref/pi"])
    assert not any(np.allclose(p.get_facecolor()[0][:3], ref_color[:3]) for p in polys)
    assert "two-level" not in ax.get_legend().get_title().get_text()  # the title says it in words
    assert "over runs and their eval episodes" in ax.get_legend().get_title().get_text()
    assert drawn  # the lines are there
    plt.close(fig)
    # fourteen lines on one task: two panels of at most ten, each with the references
    many = pd.concat([points] + [points[points["line"] == "m1/dp"].assign(line=f"f{k}/{a}")
                                 for k in range(5) for a in ("x", "y")])
    fig = curves.sample_efficiency(many, bands.curve_bands(many, pd.DataFrame(), reps=50), looks.looks(many["line"]))
    axes = [a for a in fig.axes if a.get_visible()]
    assert len(axes) == 2 and all(len(a.get_legend().get_texts()) <= panels.MAX_LINES for a in axes)
    assert all("ref/pi (reference) ‡" in [t.get_text() for t in a.get_legend().get_texts()] for a in axes)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- pareto
def test_the_pareto_figure_shows_the_two_level_score_interval_and_says_what_the_bars_span(tmp_path):
    sweep = _sweep(tmp_path / "store")
    points = _points(sweep)
    scores = run_scores(points)
    final = final_episodes(sweep.episodes)
    cells = score_table.final_cells(scores, final, pd.DataFrame(), REPS)
    frame = report.per_action_latency(sweep.timings, scores, Notes(echo=False), cells).set_index("line")
    best = frame.loc["m1/best"]
    # a plan of 2 actions per call at p50 8, 16, ..., 40 ms: per action 4..20, the median 12
    assert (best["latency_ms"], best["latency_low"], best["latency_high"]) == (12.0, 4.0, 20.0)
    assert best["runs"] == 5 and best["timed_calls"] == "7"
    cell = cells.set_index("line").loc["m1/best"]
    assert (best["score"], best["low"], best["high"]) == (cell["mean"], cell["low"], cell["high"])
    assert best["how"] == bands.TWO_LEVEL and (best["high"] - best["low"]) / 2 >= 10
    fig = figures.pareto(frame.reset_index(), looks.looks(frame.index))
    ax = fig.axes[0]
    title = fig.legends[0].get_title().get_text()
    assert "min-max of it over runs" in title and "p50" in title and "bootstrap over runs and their" in title
    segments = [s for c in ax.collections for s in c.get_segments()]
    horizontal = [s for s in segments if np.isclose(s[0][1], s[1][1]) and not np.isclose(s[0][0], s[1][0])]
    assert any(np.allclose(sorted([s[0][0], s[1][0]]), [4.0, 20.0]) for s in horizontal)
    plt.close(fig)
    # the report's caption says the same
    text = report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=50, cell_reps=REPS).read_text()
    assert "min-max of that per-run latency over the runs" in text and "7 timed calls" in text
    assert "could not be made" not in text


# ------------------------------------------------------------------------------------------------- ablation
def test_the_ablation_scores_resample_runs_and_episodes(tmp_path):
    store = Store(tmp_path / "store")
    for seed in range(5):
        for knob, score in ((1, _fails_state_7), (2, lambda s, i: 0.5 * _fails_state_7(s, i))):
            _write(store, f"k{knob}-{seed}", "m1", seed, {"best": score}, "best", variant=f"k{knob}",
                   config={"method": "m1", "m1": {"knob": knob}})
    path = ablate.write_ablation(tmp_path / "store", SWEEP, tmp_path / "out", reps=REPS,
                                 spec={"method": "m1", "axes": {"m1.knob": [1, 2]}})
    summary = pd.read_csv(tmp_path / "out" / "tables" / "ablation_summary.csv").set_index("cell")
    low, high = map(float, re.search(r"\[(.*?)\]", summary.loc["knob=1", "score best"]).group(1).split(","))
    assert (high - low) / 2 >= 10  # not "± 0.0": the five runs fail the same state
    # the ratio resamples both cells the same way (same seeds and states): exactly 0.5
    assert summary.loc["knob=2", "score best ratio"] == "0.50 [0.50, 0.50]"
    assert "two-level" in path.read_text()
    final = final_episodes(store.episodes(sweep=SWEEP))
    half, whole = (final[final["run_id"].str.startswith(f"k{k}-")] for k in (2, 1))
    got = bootstrap.ratio(half, whole, reps=REPS)
    assert got["paired"] and got["ratio"] == pytest.approx(0.5) and got["high"] - got["low"] < 1e-9
    # two cells on other states: independent draws, a wider interval around the same ratio
    other = bootstrap.ratio(half.assign(reset_seed=half["reset_seed"] + 7), whole, reps=REPS)
    assert not other["paired"] and other["low"] < 0.5 < other["high"]


def test_gradient_steps_are_counted_from_each_runs_first_eval():
    """One family counts its 20000 offline steps, another does not: on the diagnostics axis both start at 0."""
    points = pd.DataFrame({"run_id": ["a", "a", "a", "b", "b"], "env_step": [0, 2000, 4000, 0, 2000],
                           "grad_step": [20000, 21000, 22000, 0, 150]})
    out = curves.online_grad_steps(points)
    assert out["online_grad_step"].tolist() == [0, 1000, 2000, 0, 150]
    assert out["grad_step"].tolist() == points["grad_step"].tolist()  # the raw count is kept
    assert curves.X_LABELS["online_grad_step"].startswith("gradient steps after env step 0")
