"""Issue 25, "frozen before it runs": every run records its commit and its dataset's content hash, every report
prints them, and `mbench report --one-commit` refuses a sweep that mixes commits (across runs, or across the
attempts of one run), ran from a dirty checkout, or read different data under one dataset name."""
from __future__ import annotations

import json

import pytest

from analysis import origins, report
from analysis.episodes import run_records
from results.store import Store

SWEEP = "frozen"
A, B = "a" * 40, "b" * 40


def _write(store, run_id, seed, sha=A, dirty=False, data="d" * 16, commits=None):
    row = {"run_id": run_id, "sweep_id": SWEEP, "method": "m1", "variant": "", "suite": "demo", "task": "demo",
           "dataset": "demo-medium", "seed": seed, "status": "finished", "attempt": 1, "git_sha": sha,
           "git_dirty": dirty, "config_json": json.dumps({"method": "m1"}),
           "provenance_json": json.dumps({"dataset_hash": data})}
    if commits is not None:
        row["git_commits"] = commits
    store.write_run(row)
    store.write_curves(SWEEP, run_id, [{"phase": p, "env_step": s, "grad_step": s, "wall_s": 1.0, "actor": "a",
                                        "metric": "normalized_score", "value": 50.0 + seed, "n_episodes": 1}
                                       for p, s in (("pretrain", 0), ("finetune", 100))], attempt=1)


@pytest.mark.parametrize("case, says", [
    ("commits", "runs of 2 commits: aaaaaaaaaaaa (1 run), bbbbbbbbbbbb (1 run)"),
    ("dirty", "1 run(s) ran from a checkout whose tracked files differed"),
    ("resumed", "1 run(s) resumed under another commit"),
    ("data", "dataset demo-medium read with 2 content hashes"),
])
def test_the_report_refuses_a_sweep_that_is_not_one_commit_on_one_dataset(tmp_path, capsys, case, says):
    store = Store(tmp_path / "store")
    _write(store, "r0", 0, commits=[A])
    _write(store, "r1", 1, sha=B if case == "commits" else A, dirty=case == "dirty",
           data="e" * 16 if case == "data" else "d" * 16,
           commits={"resumed": [B, A], "commits": [B]}.get(case, [A]))
    problems = origins.mixing(run_records(store.runs(sweep=SWEEP)))
    assert any(says in p for p in problems) and len(problems) == 1 + (case == "resumed")
    with pytest.raises(origins.MixedOrigins, match="not one commit's runs on one dataset"):
        report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=20, cell_reps=50, one_commit=True)
    assert not (tmp_path / "out").exists()  # refused before anything is written
    from bench.cli import main

    assert main(["--store", str(tmp_path / "store"), "report", SWEEP, "--out", str(tmp_path / "cli"), "--reps",
                 "20", "--one-commit"]) == 2
    err = capsys.readouterr().err
    assert "mbench: error: sweep 'frozen' is not one commit's runs" in err and says in err
    # without the flag the report is written, names the commits and datasets, and warns
    text = report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=20, cell_reps=50).read_text()
    assert "Code and data of the finished runs: commits:" in text and says in text


def test_one_commits_runs_on_one_dataset_pass_and_are_named(tmp_path):
    store = Store(tmp_path / "store")
    for seed in range(3):
        _write(store, f"r{seed}", seed, commits=[A] if seed else None)  # r0: a run older than git_commits
    records = run_records(store.runs(sweep=SWEEP))
    assert origins.mixing(records) == [] and list(records["commits"]) == [(A,), (A,), (A,)]
    path = report.write_report(tmp_path / "store", SWEEP, tmp_path / "out", reps=20, cell_reps=50, one_commit=True)
    text = path.read_text()
    assert f"commits: {A[:12]} (3 runs); dataset demo-medium: content hash {'d' * 16} (3 runs)" in text
    assert "not one commit" not in text
    # a run that recorded no commit at all cannot be shown to be one commit's
    bare = Store(tmp_path / "bare")
    _write(bare, "r0", 0, sha="unknown")
    assert origins.mixing(run_records(bare.runs(sweep=SWEEP))) == ["no run recorded its commit (1 runs)"]
