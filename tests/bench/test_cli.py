"""Tests of the command line: every flag documented, the store spelled --store everywhere, `mbench config`,
store errors in one line, `mbench report` on an empty sweep, `mbench sweep status` on reruns, and `mbench run`
printing the real status (a skipped rerun included), and bad input to `mbench run` in one line. No run
trains here: `run_one` is replaced by a fake that writes what the runner would."""
from __future__ import annotations

import argparse
import subprocess
import sys

import h5py
import numpy as np
import pandas as pd
import pytest

from bench.cli import build_parser, main
from results.store import Store

try:
    # Imported now, at collection: submitit configures logging on import, which closes the stream of absl's
    # handler (absl comes with rliable, via analysis) when that stream is no longer sys.stderr, e.g. pytest's
    # capture stream while a test runs under capsys; pytest then fails at teardown.
    import bench.sweep.launch  # noqa: F401
except ImportError:  # no submitit here: the sweep commands are unavailable and their tests skip
    pass

SWEEP = "sw"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def _row(run_id, status="finished", attempt=1, **extra):
    row = {"run_id": run_id, "sweep_id": SWEEP, "method": "bc_gauss", "variant": "", "suite": "demo",
           "task": "demo", "dataset": "demo", "seed": 0, "config_json": "{}", "status": status, "error": "",
           "wall_s": 3.0, "env_steps": 10, "grad_steps": 10, "attempt": attempt}
    row.update(extra)
    return row


def _curve(n, value=50.0):
    return [{"phase": "finetune", "env_step": 100 * k, "grad_step": k, "wall_s": 0.1 * k, "actor": "policy",
             "metric": "normalized_score", "value": value + k, "n_episodes": 2} for k in range(n)]


def test_run_help_documents_every_flag():
    run = _subparsers(build_parser())["run"]
    undocumented = [a.option_strings for a in run._actions
                    if a.option_strings and a.dest != "help" and (not a.help or a.help == argparse.SUPPRESS)]
    assert undocumented == []
    assert {"--rerun", "--restart", "--store"} <= set(run._option_string_actions)


@pytest.mark.parametrize("argv", [
    ["run", "--method", "bc_gauss", "--task", "demo"],
    ["demo"],
    ["report", "s"],
    ["ablate", "s"],
    ["sweep", "status", "s"],
    ["sweep", "launch", "f.yaml"],
    ["tune", "f.yaml"],
    ["store", "compact"],
])
def test_store_is_spelled_store_before_or_after_the_command(argv):
    parser = build_parser()
    if argv[0] not in _subparsers(parser):
        pytest.skip(f"mbench {argv[0]} is unavailable here")
    assert parser.parse_args([*argv, "--store", "/x/after"]).store == "/x/after"
    assert parser.parse_args(["--store", "/x/before", *argv]).store == "/x/before"


def test_no_visible_root_flag_for_the_store():
    parser = build_parser()
    subs = _subparsers(parser)
    for parser_ in (subs["report"], _subparsers(subs["store"])["compact"], *_subparsers(subs["sweep"]).values()):
        assert "--root" not in parser_.format_help()


def test_config_lists_keys_types_and_defaults(capsys):
    assert main(["config", "modip"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = {line.split()[0]: line.split()[1:] for line in lines}
    assert all(len(v) >= 2 for v in table.values()), lines
    assert table["dp.sampler"] == ["ddpm|ddim", '"ddpm"']
    assert table["pretrain.steps"][0] == "int" and table["eval.episodes"] == ["int", "10"]
    assert "modip.planner.terminal" in table and "seed" in table and "method" not in table
    try:
        from methods.common.common_start import CommonStartConfig  # noqa: F401
    except ImportError:
        pass
    else:
        assert "common_start.steps" in table
    assert main(["config", "bc_gauss"]) == 0
    keys = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert "bc_gauss.lr" in keys and not any(k.startswith(("dp.", "modip.", "common_start.")) for k in keys)


def test_config_of_an_unknown_method_is_one_line(capsys):
    assert main(["config", "modp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mbench: error: unknown method 'modp'") and "modip" in err and "\n" not in err


@pytest.mark.parametrize("argv", [["sweep", "status", SWEEP], ["report", SWEEP]])
def test_foreign_parquet_in_the_store_is_one_line_naming_it(tmp_path, capsys, argv):
    store = Store(tmp_path)
    store.write_run(_row("r0"))
    foreign = tmp_path / "table=runs" / f"sweep={SWEEP}" / "notes.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    assert main(["--store", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mbench: error: ") and str(foreign) in err and "move it out" in err and "\n" not in err


def test_report_of_a_sweep_with_no_runs_says_so_and_fails(tmp_path, capsys):
    assert main(["report", "nosuch", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"no runs in sweep 'nosuch' under {tmp_path}; launch it with mbench sweep launch" in err
    assert not (tmp_path / "reports").exists()


def test_sweep_status_shows_a_finished_run_with_a_newer_failed_attempt(tmp_path, capsys):
    store = Store(tmp_path)
    store.write_run(_row("r0", "finished", 1))
    store.write_run(_row("r0", "failed", 2, error="FileNotFoundError: dataset gone\nTraceback ..."))
    store.write_run(_row("r1", "finished", 1))
    assert main(["sweep", "status", SWEEP, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "finished 2" in out and "failed 0" in out
    assert "r0 : finished (attempt 1; attempt 2 failed: FileNotFoundError: dataset gone)" in out
    assert "r1 :" not in out


class FakeRunner:
    """Stands in for bench.runner.lifecycle.run_one (which `mbench run` imports when it runs): writes what a run
    of `status` writes, or nothing when skipping."""

    def __init__(self, write: bool = True, status: str = "finished"):
        self.write, self.status, self.calls = write, status, []

    def __call__(self, cfg, store_root, sweep_id, resume=True, progress=True, rerun=False):
        from bench.config.run import run_id_of

        rid = run_id_of(cfg)
        self.calls.append({"resume": resume, "rerun": rerun})
        if self.write:
            store = Store(store_root)
            attempt = store.next_attempt(sweep_id, rid)
            store.write_curves(sweep_id, rid, _curve(3), attempt=attempt)
            store.write_run({**_row(rid, self.status, attempt), "sweep_id": sweep_id})
        return rid


def test_run_prints_the_real_status_and_says_when_it_skipped(tmp_path, capsys, monkeypatch):
    import bench.runner.lifecycle

    argv = ["--store", str(tmp_path), "run", "--method", "bc_gauss", "--task", "demo", "--sweep", SWEEP, "--quiet"]
    fake = FakeRunner()
    monkeypatch.setattr(bench.runner.lifecycle, "run_one", fake)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "finished (attempt 1): final normalized_score policy=52.0 (3s)" in out and "nothing was run" not in out
    # A second run of a finished run: the runner skips it (writes nothing); the CLI says so and does not crash.
    monkeypatch.setattr(bench.runner.lifecycle, "run_one", skip := FakeRunner(write=False))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "finished (attempt 1)" in out and "already finished, so nothing was run" in out
    assert skip.calls == [{"resume": True, "rerun": False}]
    # --rerun is passed through, and the new attempt is what is printed.
    monkeypatch.setattr(bench.runner.lifecycle, "run_one", again := FakeRunner())
    assert main([*argv, "--rerun"]) == 0
    assert again.calls == [{"resume": True, "rerun": True}]
    assert "finished (attempt 2)" in capsys.readouterr().out


def test_run_with_no_record_in_the_store_does_not_crash(tmp_path, capsys, monkeypatch):
    import bench.runner.lifecycle

    monkeypatch.setattr(bench.runner.lifecycle, "run_one", FakeRunner(write=False))
    argv = ["--store", str(tmp_path), "run", "--method", "bc_gauss", "--task", "demo", "--sweep", SWEEP]
    assert main(argv) == 1
    assert "no record of it in the store" in capsys.readouterr().err


def test_every_user_error_is_caught():
    """`mbench` prints these as one line and exits 2: ValueError stands for the project's own user errors."""
    from bench.cli import _user_errors
    from bench.data import DatasetError
    from bench.tasks import TaskError
    from methods.common.section import ConfigError, MethodError
    from results.schema import SchemaVersionError, StoreError
    from results.sweep_errors import SweepError

    for cls in (ConfigError, MethodError, TaskError, DatasetError, SweepError, StoreError, SchemaVersionError,
                FileNotFoundError, FloatingPointError):
        assert issubclass(cls, _user_errors()), cls


def _mbench(*args, env=None):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, env=e,
                          timeout=300)


def _bad_hdf5(path, obs_dim=9, nan=False):
    n = 50
    obs = np.random.randn(n, obs_dim).astype(np.float32)
    if nan:
        obs[7, 2] = np.nan
    with h5py.File(path, "w") as f:
        f["observations"] = obs
        f["actions"] = np.zeros((n, 1), np.float32)
        f["rewards"] = np.ones(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % 25 == 24


@pytest.mark.slow
@pytest.mark.parametrize("case", ["method", "task", "key", "obs_dim", "nan", "missing"])
def test_bad_input_gives_one_line_error(case, tmp_path):
    store = str(tmp_path / "store")
    base = ["--store", store, "run", "--quiet", "--set", "pretrain.steps=2"]
    if case == "method":
        r, want = _mbench(*base, "--method", "bc_dpp", "--task", "demo"), "unknown method 'bc_dpp'"
    elif case == "task":
        r, want = _mbench(*base, "--method", "bc_dp", "--task", "hoper-medium"), "unknown task 'hoper-medium'"
    elif case == "key":
        r, want = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", "dp.hiden=[8]"), "'dp.hiden'"
    elif case == "obs_dim":
        _bad_hdf5(tmp_path / "d.hdf5", obs_dim=5)
        r = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", f"dataset_path={tmp_path / 'd.hdf5'}")
        want = "obs dim 5"
    elif case == "nan":
        _bad_hdf5(tmp_path / "d.hdf5", nan=True)
        r = _mbench(*base, "--method", "bc_dp", "--task", "demo", "--set", f"dataset_path={tmp_path / 'd.hdf5'}")
        want = "NaN"
    else:
        r = _mbench(*base, "--method", "bc_dp", "--task", "hopper-medium",
                    env={"MINARI_DATASETS_PATH": str(tmp_path / "none")})
        want = "mbench data make mujoco/hopper/medium-v0"
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert want in lines[0]
    # nothing lands in the store as finished
    import pathlib

    if pathlib.Path(store).exists():
        runs = Store(store).runs()
        assert not (runs.status == "finished").any() if len(runs) else True
