"""benchmarks/gpu_check.py: its CPU fallback runs end to end."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.slow
def test_gpu_check_cpu_fallback_smoke(tmp_path):
    out = tmp_path / "rows.csv"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                           "--methods", "bc_gauss", "--no-compile", "--reps", "2", "--warmup", "0", "--batch", "2",
                           "--csv", str(out)], cwd=tmp_path, capture_output=True, check=False, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("slowest_act_p50_b1 bc_gauss/act: ") and last.endswith(")") and " ms (" in last
    assert out.read_text().count("\n") == 4  # header + act b1, update b1, act b2
