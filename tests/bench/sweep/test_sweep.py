"""Sweep files, grid expansion, launch/skip/stale logic and optuna tuning, without a cluster.

Why: everything here runs in-process (submitit's debug executor), so the sweep plumbing is tested on any machine;
tests/bench/sweep/test_slurm.py runs the same code against a real Slurm cluster.
"""
from __future__ import annotations

import pytest

from bench.sweep.spec import load_sweep, parse_sweep
from results.sweep_errors import SweepError
from results.sweep_file import TUNE_SEED_BASE, TUNE_SEED_STOP
from tests.helpers import ROOT, TINY, TINY_CS


def _spec(**kw):
    data = {"name": "t", "methods": ["bc_gauss"], "tasks": ["demo"], "seeds": [0]}
    data.update(kw)
    return parse_sweep(data, "test.yaml")


def test_tuning_seeds_are_10_to_19_and_never_report():
    """Issue 25 C5: tune files tune on the tuning seeds (10-14 in use, 10-19 reserved), never on a reported seed
    (0-4, 100-104); another sweep runs on tuning seeds only to diagnose, on the tuning eval seeds."""
    tune = {"method": "bc_gauss", "task": "demo", "trials": 1, "params": {"bc_gauss.lr": {"type": "float",
                                                                                          "low": 1e-4, "high": 1e-3}}}
    assert _spec(seeds=[10, 14, 19], tune=tune).seeds
    for seeds in ([0], [9], [20], [100], [1000]):
        with pytest.raises(SweepError, match="tuning seeds must be in 10-19"):
            _spec(seeds=seeds, tune=tune)
    with pytest.raises(SweepError, match="reserved for tuning"):
        _spec(seeds=[0, 10])
    assert list(_spec(seeds=[10, 11], overrides={"eval.seed_set": "tune"}).seeds) == [10, 11]
    assert _spec(seeds=[0, 4, 100, 104, 1000]).seeds


@pytest.mark.parametrize("data, needle", [
    ({"resources": {"cpu": 1}}, "unknown key 'resources.cpu' (did you mean 'cpus'?)"),
    ({"methodz": ["x"]}, "unknown key 'methodz'"),
    ({"executor": "k8s"}, "'executor' must be one of slurm, local, debug"),
    ({"seeds": [0, 0]}, "'seeds' has duplicates"),
    ({"seeds": [TUNE_SEED_BASE]}, "reserved for tuning"),
    ({"grid": {"threads": 1}}, "'grid.threads' must be a non-empty list"),
    ({"name": "../escape"}, "invalid sweep name"),
    ({"resources": {"time": "soon"}}, "'resources.time'"),
])
def test_bad_sweep_files_fail_in_one_line_naming_the_key(data, needle):
    with pytest.raises(SweepError) as e:
        _spec(**data)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_bad_config_key_fails_at_expansion_before_anything_is_submitted():
    with pytest.raises(SweepError, match="unknown config key 'pretrain.stepz'"):
        _spec(overrides={"pretrain.stepz": 3}).expand()


def test_unsafe_yaml_is_refused(tmp_path):
    f = tmp_path / "evil.yaml"
    f.write_text("name: !!python/object/apply:os.system ['true']\nmethods: [bc_gauss]\ntasks: [demo]\nseeds: [0]\n")
    with pytest.raises(SweepError, match="not valid YAML"):
        load_sweep(f)


def test_grid_expansion_scopes_method_keys_and_dedupes():
    spec = _spec(methods=["bc_gauss", "bc_dp", "modip"], seeds={"start": 0, "count": 2},
                 overrides={"threads": 1, "dp.hidden": [32, 32]},
                 grid={"modip.planner.terminal": ["v", "q"], "modip.critic.target": ["indep", "policy"]},
                 per_method={"bc_dp": {"pretrain.steps": 7}})
    runs = spec.expand()
    by_method = {m: [r for r in runs if r.method == m] for m in spec.methods}
    # the 2x2 grid multiplies modip's runs only; other methods are not duplicated
    assert len(by_method["modip"]) == 2 * 4 and len(by_method["bc_gauss"]) == 2 and len(by_method["bc_dp"]) == 2
    assert {(r.cfg.section.planner.terminal, r.cfg.section.critic.target)
            for r in by_method["modip"]} == {("v", "indep"), ("v", "policy"), ("q", "indep"), ("q", "policy")}
    assert "dp" not in by_method["bc_gauss"][0].cfg  # dp. keys only reach DP methods
    assert all(r.cfg.pretrain.steps == 7 for r in by_method["bc_dp"])
    assert len({r.run_id for r in runs}) == len(runs)


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweep_files_load_and_expand(path):
    spec = load_sweep(path)
    runs = spec.expand()
    assert runs
    if spec.tune is None and spec.name.startswith("paper-"):
        assert set(spec.methods) == {"bc_dp", "dppo", "tdmpc2", "modip", "idql", "parl", "dsrl"} and len(spec.seeds) >= 5
    if spec.tune is not None:  # tuning on the tuning seeds 10-14
        assert set(spec.seeds) == set(range(10, 15)) and TUNE_SEED_BASE == 10 and TUNE_SEED_STOP == 20
    if spec.name.startswith(("paper-", "ablate-")):  # reference sweeps report the held-out seeds 100-104
        assert set(spec.seeds) == set(range(100, 105))
    if TUNE_SEED_BASE <= min(spec.seeds) < TUNE_SEED_STOP and spec.tune is None:  # a diagnosis on tuning seeds
        assert runs[0].cfg.eval.seed_set == "tune"
    if spec.name == "ablate-modip":
        combos = {(r.cfg.section.planner.terminal, r.cfg.section.critic.target) for r in runs
                  if r.method == "modip"}
        assert combos == {("v", "indep"), ("v", "policy"), ("q", "indep"), ("q", "policy")}


def _tiny_spec(name, methods=("bc_gauss",), seeds=(0,), executor="debug", **kw):
    over = dict(TINY, **TINY_CS)
    over["dp.hidden"] = [32, 32]
    data = {"name": name, "methods": list(methods), "tasks": ["demo"], "seeds": list(seeds), "overrides": over,
            "executor": executor, "resources": {"time": 10}}
    data.update(kw)
    return parse_sweep(data, f"{name}.yaml")


def test_debug_launch_skips_finished_and_warns_on_stale_sha(demo_dataset, store_root):
    from bench.sweep.launch import launch, sweep_status
    from results.store import Store

    spec = _tiny_spec("dbg", methods=("bc_gauss",), seeds=(0, 1))
    lines: list[str] = []
    p = launch(spec, store_root, out=lines.append)
    assert len(p["jobs"]) == 2
    st = sweep_status(store_root, "dbg")
    assert st["store"] == {"finished": 2}
    p = launch(spec, store_root, out=lines.append)
    assert p["jobs"] == [] and any("nothing to submit" in s for s in lines)

    # a finished run made at another git sha is stale: warned, kept, and rerun only with rerun_stale
    store = Store(store_root)
    row = store.runs(sweep="dbg").iloc[0].to_dict()
    row["git_sha"] = "0" * 40
    store.write_run(row)
    lines.clear()
    p = launch(spec, store_root, out=lines.append, executor="debug")
    assert p["jobs"] == [] and any("stale" in s and "--rerun-stale" in s for s in lines)
    from bench.sweep.launch import plan

    again = plan(spec, store_root, rerun_stale=True)
    assert [r.run_id for r in again["todo"]] == [row["run_id"]]


def test_tune_uses_disjoint_seeds_final_score_and_resumes(demo_dataset, store_root):
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    from bench.sweep.tune import final_score, load_study, tune
    from bench.tasks import EVAL_SEEDS, TUNE_EVAL_SEEDS
    from results.store import Store

    spec = _tiny_spec("tn", methods=("bc_gauss",), seeds=(TUNE_SEED_BASE, TUNE_SEED_BASE + 1),
                      tune={"method": "bc_gauss", "task": "demo", "trials": 2, "workers": 1, "sampler_seed": 0,
                            "params": {"bc_gauss.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}}})
    tune(spec, store_root, n_trials=2, out=lambda s: None)
    study = load_study(spec, store_root)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2
    runs = Store(store_root).runs(sweep="tn")
    assert len(runs) == 2 and set(runs.seed) <= {TUNE_SEED_BASE, TUNE_SEED_BASE + 1}
    import json

    for t in complete:
        row = runs[runs.run_id == t.user_attrs["run_id"]].iloc[0]
        cfg = json.loads(row.config_json)
        assert cfg["eval"]["seed_set"] == "tune"
        seeds = json.loads(row.provenance_json)["seeds"]["eval"] if "provenance_json" in row else None
        if seeds:
            assert set(seeds) <= set(TUNE_EVAL_SEEDS) and not set(seeds) & set(EVAL_SEEDS)
        # the objective is the last eval, not the best
        curves = Store(store_root).curves(sweep="tn", run_ids=[row.run_id])
        score = curves[(curves.metric == "normalized_score") & (curves.actor == "policy")]
        assert t.value == pytest.approx(score.sort_values("env_step").value.iloc[-1])
        assert t.value == pytest.approx(final_score(store_root, "tn", row.run_id, "policy"))

    # an interrupted trial (its worker died) is failed and retried with the same params and seed
    dead = study.ask({"bc_gauss.lr": FloatDistribution(1e-4, 1e-3, log=True)})
    dead.set_user_attr("worker", "pid:" + __import__("socket").gethostname() + ":999999999")
    dead.set_user_attr("seed", TUNE_SEED_BASE + 1)
    lr = dead.params["bc_gauss.lr"]
    tune(spec, store_root, n_trials=3, out=lambda s: None)
    study = load_study(spec, store_root)
    assert study.trials[dead.number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params["bc_gauss.lr"] == pytest.approx(lr) and retried[0].user_attrs["seed"] == TUNE_SEED_BASE + 1
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) == 3
    assert isinstance(optuna.__version__, str)
