"""Shared fixtures: a tiny demo dataset made once per session, a temporary store, one torch thread, and the
kitchen and robomimic suites' made data (made once per session, their root set for each module that asks).

Why: tests use small data that the project makes itself (no downloads), and tiny budgets so the whole suite
stays well inside CI's 30 minutes on 2 cores. What test files share other than fixtures is in tests/helpers.py.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> Path:
    """A tiny demo dataset made by `make_dataset` with budget flags; sets MINARI_DATASETS_PATH for the session."""
    from bench.data.d4rl import make_dataset
    from bench.tasks.demo import DEMO_DATASET

    root = tmp_path_factory.mktemp("minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    make_dataset(DEMO_DATASET, root=root, agent_steps=2000, dataset_size=1500, progress=False)
    yield root
    if old is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = old


@pytest.fixture
def store_root(tmp_path) -> Path:
    return tmp_path / "store"


@contextlib.contextmanager
def _environ(name: str, value) -> Iterator[None]:
    """`name` set to `value` inside the block, and put back as it was after it."""
    old = os.environ.get(name)
    os.environ[name] = str(value)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


@pytest.fixture(scope="session")
def _kitchen_made(tmp_path_factory):
    from bench.data.kitchen import make_kitchen_dataset

    root = tmp_path_factory.mktemp("kitchen_minari")
    with _environ("MINARI_DATASETS_PATH", root):
        summary = make_kitchen_dataset("D4RL/kitchen/complete-v2", root=root, n_episodes=2, seed=0, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def kitchen_root(_kitchen_made):
    """A Minari root holding a made kitchen-complete (2 scripted episodes; real-layout fixtures are written next
    to it by the tests); MINARI_DATASETS_PATH points at it for the module."""
    root, summary = _kitchen_made
    with _environ("MINARI_DATASETS_PATH", root):
        yield root, summary


@pytest.fixture(scope="session")
def _robomimic_made(tmp_path_factory):
    from bench.data.robomimic import make_robomimic_dataset

    root = tmp_path_factory.mktemp("robomimic")
    with _environ("ROBOMIMIC_DATASETS_PATH", root):
        summary = make_robomimic_dataset("robomimic/lift/ph", n_demos=3, seed=0, progress=False)
    return root, summary


@pytest.fixture(scope="module")
def robomimic_root(_robomimic_made):
    """ROBOMIMIC_DATASETS_PATH with a made lift/ph (3 scripted demos), for the module."""
    root, summary = _robomimic_made
    with _environ("ROBOMIMIC_DATASETS_PATH", root):
        yield root, summary
