"""Shared fixtures: a tiny demo dataset made once per session, a temporary store, one torch thread.

Why: tests use small data that the project makes itself (no downloads), and tiny budgets so the whole suite
stays well inside CI's 30 minutes on 2 cores.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("MPLBACKEND", "Agg")

# Budgets for contract tests of every method: each run is seconds.
TINY = {
    "pretrain.steps": 40,
    "pretrain.log_every": 10,
    "pretrain.checkpoint_every": 20,
    "online.steps": 240,
    "online.checkpoint_every": 60,
    "online.log_every": 60,
    "eval.every": 120,
    "eval.episodes": 2,
    "eval.timing": False,
    "threads": 1,
}
# The common-start DP of the methods that start from it, at the same tiny budget (a `common_start` key is an
# error for the other methods; sweep files scope it by themselves).
TINY_CS = {"common_start.steps": 40, "common_start.log_every": 10}


def tiny(method: str, **extra) -> dict:
    """TINY, plus TINY_CS where `method` starts from the common-start DP, plus `extra`."""
    from methods.registry import get_method_class

    over = dict(TINY)
    if get_method_class(method).uses_pretrained_dp:
        over.update(TINY_CS)
    over.update(extra)
    return over


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
