"""A results store that cannot be written (issue 26, medium 5, and low: `--store ""`): every command that writes
the store says so in one line naming the store, before any work; nothing is written anywhere else (an empty
name is not the current folder)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.cli import main
from tests.helpers import ROOT

COMMANDS = {
    "run": ["run", "--method", "bc_gauss", "--task", "demo", "--quiet"],
    "time": ["time", "--method", "bc_gauss", "--reps", "2", "--quiet"],
    "sweep launch": ["sweep", "launch", str(ROOT / "sweeps" / "demo-tiny.yaml"), "--executor", "debug"],
    "tune": ["tune", str(ROOT / "sweeps" / "tune-modip-hopper.yaml"), "--executor", "debug"],
    "demo": ["demo", "--quick", "--methods", "bc_gauss"],
    "store compact": ["store", "compact"],
}


@pytest.fixture
def no_work(monkeypatch):
    """Any of the commands' work, if it starts, fails the test."""
    import bench.demo
    import bench.runner.lifecycle
    import bench.sweep.launch
    import bench.sweep.tune
    import bench.timing.measure
    import results.store

    def started(*a, **k):
        raise AssertionError("the work started before the store was checked")

    monkeypatch.setattr(bench.runner.lifecycle, "run_one", started)
    monkeypatch.setattr(bench.timing.measure, "measure", started)
    monkeypatch.setattr(bench.sweep.launch, "launch", started)
    monkeypatch.setattr(bench.sweep.tune, "tune", started)
    monkeypatch.setattr(bench.demo, "run_demo", started)
    monkeypatch.setattr(results.store.Store, "compact", started)


def _one_line(capsys, rc: int, *needles: str) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1, err
    assert all(n in err[0] for n in needles), err
    return err[0]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_store_that_is_a_file_is_one_line_before_any_work(tmp_path, capsys, no_work, command):
    store = tmp_path / "a-file"
    store.write_text("not a folder")
    rc = main(["--store", str(store), *COMMANDS[command]])
    _one_line(capsys, rc, str(store), "not a folder")
    assert store.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["run", "sweep launch"])
def test_a_read_only_store_is_one_line_before_any_work(tmp_path, capsys, no_work, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)], capture_output=True, check=False
    ).returncode == 0
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root ignores folder permissions, and no read-only tmpfs could be mounted")
        ro.chmod(0o555)
    try:
        rc = main(["--store", str(ro / "store"), *COMMANDS[command]])
        _one_line(capsys, rc, str(ro / "store"), "cannot be written")
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=False)
        else:
            ro.chmod(0o755)


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_empty_store_name_is_one_line_and_writes_nothing_here(tmp_path, capsys, monkeypatch, no_work, how):
    monkeypatch.chdir(tmp_path)
    if how == "env":
        monkeypatch.setenv("MBENCH_STORE", "")
        rc = main(COMMANDS["run"])
    else:
        rc = main(["--store", "", *COMMANDS["run"]])
    _one_line(capsys, rc, "empty", "--store")
    assert list(Path(tmp_path).iterdir()) == []
