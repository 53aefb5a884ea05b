"""Bad values of `mbench run` (issue 26, low): an empty --set value, a device that is not one, a seed out of
range. One line naming the key and the fix, before anything is built or recorded."""
from __future__ import annotations

import pytest
import torch

from bench.cli import main

CASES = [
    (["--set", "preset="], ["'preset=' has an empty value"]),
    (["--set", "dataset_path="], ["'dataset_path=' has an empty value"]),
    (["--set", "device=cuda:abc"], ["'device'", "cuda:abc", "cpu"]),
    (["--seed", "99999999999999999999999"], ["'seed'", "99999999999999999999999", "<="]),
]
if not torch.backends.mps.is_available():
    CASES.append((["--set", "device=mps"], ["'device'", "mps", "not available"]))
if torch.cuda.device_count() < 8:
    CASES.append((["--set", "device=cuda:7"], ["'device'", "cuda:7"]))


@pytest.mark.parametrize("extra, needles", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_value_is_one_line_before_anything_is_built(tmp_path, capsys, extra, needles):
    store = tmp_path / "store"
    rc = main(["--store", str(store), "run", "--method", "bc_gauss", "--task", "demo", "--quiet", *extra])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1, err
    assert all(n in err[0] for n in needles), err
    assert not list(store.glob("table=*")) and not (store / "checkpoints").exists()  # nothing recorded


@pytest.mark.parametrize("flag, value", [("--batch", "0"), ("--batch", "-3"), ("--reps", "0"), ("--warmup", "-1")])
def test_mbench_time_counts_are_checked_before_any_timing(tmp_path, capsys, flag, value):
    store = tmp_path / "store"
    rc = main(["--store", str(store), "time", "--method", "bc_gauss", "--quiet", flag, value])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and flag in err[0] and value in err[0], err
    assert not list(store.glob("table=*"))
