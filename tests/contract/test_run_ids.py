"""Run ids are pinned: every shipped sweep file expands to the same run ids as when they were pinned.

Why: a run id is the hash of the resolved config's canonical JSON, and a finished run is found again by it. A
change that moves ids orphans every store's finished runs, so it must be deliberate: a key added at its default
value does not change an id, and a change that must move ids updates `tests/data/sweep_run_ids.json` in the same
commit and says why.
"""
from __future__ import annotations

import json

import pytest

from bench.sweep.spec import expand, load_sweep
from tests.helpers import ROOT

PINNED = json.loads((ROOT / "tests" / "data" / "sweep_run_ids.json").read_text())


def test_every_sweep_file_is_pinned():
    assert sorted(p.name for p in (ROOT / "sweeps").glob("*.yaml")) == sorted(PINNED)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_sweep_run_ids_are_unchanged(name):
    ids = sorted(r.run_id for r in expand(load_sweep(ROOT / "sweeps" / name)))
    assert ids == PINNED[name], f"{name}: run ids moved ({len(set(ids) - set(PINNED[name]))} new)"


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps" / "screen").glob("*.yaml")), ids=lambda p: p.stem)
def test_screen_sweeps_resolve(path):
    """Every screen file of sweeps/screen (part C) expands into runs with its seeds, named as its file."""
    spec = load_sweep(path)
    runs = expand(spec)
    assert spec.name == path.stem and runs and len({r.run_id for r in runs}) == len(runs)
