"""`mbench demo` goes through the shipped sweep file and the sweep launcher's local worker pool."""
from __future__ import annotations

import pytest

from results.store import Store


@pytest.mark.slow
def test_demo_quick_runs_the_sweep_file_through_the_pool_and_skips_finished_runs(demo_dataset, tmp_path, capsys):
    from bench.demo import demo_spec, run_demo

    spec = demo_spec()
    assert spec.executor == "local" and spec.resources.array_parallelism == 2
    store = tmp_path / "store"
    report = run_demo(store_root=str(store), quick=True, seeds=2, methods="bc_gauss,bc_dp")
    out = capsys.readouterr().out
    assert "to 2 local workers" in out and "per family" in out and report.exists()
    runs = Store(store).runs(sweep="demo-quick")
    assert sorted(runs.method) == ["bc_dp", "bc_dp", "bc_gauss", "bc_gauss"] and (runs.status == "finished").all()
    run_demo(store_root=str(store), quick=True, seeds=2, methods="bc_gauss,bc_dp")
    assert "nothing to submit" in capsys.readouterr().out
