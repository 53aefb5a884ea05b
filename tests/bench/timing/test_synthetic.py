"""`build_subject` (bench/timing/synthetic.py): a pretrained-DP or a run checkpoint loads into the timed
method, and one that does not fit is refused.
"""
from __future__ import annotations

import pytest
import torch


def test_checkpoint_loads_into_the_timed_method(tmp_path):
    from bench.timing.synthetic import build_subject

    torch.set_num_threads(1)
    a = build_subject("bc_dp", "demo", seed=1)
    dp_file, run_file = tmp_path / "dp.pt", tmp_path / "last.pt"
    torch.save({"dp_state": a.method.export_pretrained_dp(), "curve": "[]"}, dp_file)
    torch.save({"method": a.method.state_dict(), "normalizer": a.method.normalizer.state_dict()}, run_file)
    for path, kind in ((dp_file, "pretrained_dp"), (run_file, "run")):
        b = build_subject("bc_dp", "demo", seed=2, checkpoint=str(path))
        assert b.checkpoint_kind == kind
        for (k, pa), pb in zip(a.method.dp.ema.module.state_dict().items(), b.method.dp.ema.module.state_dict().values()):
            assert torch.equal(pa, pb), k
    with pytest.raises(ValueError, match="does not fit"):
        build_subject("bc_dp", "demo", checkpoint=str(dp_file), overrides=["dp.hidden=[32,32]"])
