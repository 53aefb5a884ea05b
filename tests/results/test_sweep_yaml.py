"""Hostile sweep and tune files (issue 26, high 2): the one YAML loader refuses aliases and anchors, duplicate
keys and oversized files, in one line, before any expansion."""
from __future__ import annotations

import subprocess
import sys

import pytest

from results.safe_yaml import MAX_BYTES
from results.sweep_errors import SweepError
from results.sweep_file import read_sweep_file
from tests.helpers import ROOT


def _bomb() -> str:
    """About 1 KB: 8 nested levels of ten aliases each under `overrides:` (10^8 leaves once expanded)."""
    lines = ["name: bomb", "methods: [bc_gauss]", "tasks: [demo]", "seeds: [0]", "overrides:",
             "  l0: &a0 {" + ", ".join(f"k{j}: 1" for j in range(10)) + "}"]
    for i in range(1, 9):
        lines.append(f"  l{i}: &a{i} {{" + ", ".join(f"k{j}: *a{i - 1}" for j in range(10)) + "}")
    return "\n".join(lines) + "\n"


def test_a_1kb_alias_bomb_fails_fast_in_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb())
    assert len(path.read_bytes()) < 1100
    # In a child with a memory cap and a deadline, so that the bomb, if it goes off, harms nothing here.
    code = ("import resource, sys, time\n"
            "resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))\n"
            "from bench.sweep.spec import load_sweep\n"
            "t = time.perf_counter()\n"
            "try:\n    load_sweep(sys.argv[1])\n    print('loaded')\n"
            "except Exception as e:\n    print(f'{type(e).__name__}|{e}')\n"
            "print(time.perf_counter() - t)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True,
                             timeout=20, check=False).stdout.splitlines()
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb did not fail within 20 s")
    assert len(out) == 2, out
    kind, _, msg = out[0].partition("|")
    assert kind == "SweepError" and str(path) in msg and "alias" in msg, out
    assert float(out[1]) < 1.0


@pytest.mark.parametrize("text, words", [
    ("name: a\nname: b\nmethods: [bc_gauss]\n", ["line 2", "duplicate key 'name'"]),
    ("name: a\noverrides: {x: 1, x: 2}\n", ["line 2", "duplicate key 'x'"]),
    ("name: a\ndefaults: &d {x: 1}\noverrides: {<<: *d}\n", ["line 2", "anchor 'd'"]),
    ("name: a\nmethods: [bc_gauss\n", ["not valid YAML"]),
])
def test_duplicate_keys_anchors_and_bad_yaml_are_one_line_errors(tmp_path, text, words):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SweepError) as err:
        read_sweep_file(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and all(w in msg for w in words), msg


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n" + "# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(SweepError, match="over the limit of"):
        read_sweep_file(path)
