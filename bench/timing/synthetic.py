"""Synthetic inputs for timing: a method built from a task's spaces alone, with no env and no dataset.

Why: `mbench time` must run on a bare GPU machine (no gymnasium, MuJoCo or Minari, no datasets). A method's
inference cost depends on its config and the task's dimensions, not on what its weights learned, so a fresh
model (or a checkpoint) fed random inputs measures the same latency. So a timing subject is built by
`assemble(cfg, data="synthetic")` (bench/runner/assemble.py):
  - TaskSpaces from a small table of known obs/act dims per env id (the env itself only as a fallback, when
    gymnasium happens to be importable);
  - a Normalizer with unit statistics;
  - a ReplayBuffer of random transitions (offline and online, with every extra the method asks for), so that
    `update` components can sample batches.
This module adds checkpoints (a run's last.pt or a pretrained DP) and the timing run id.
Nothing here imports gymnasium, MuJoCo or Minari at module level.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from bench.config.layers import resolve_config
from bench.config.run import RunConfig
from bench.runner.assemble import assemble
from methods.base import Method, TaskSpaces
from results.checkpoint_files import load_checkpoint


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclasses.dataclass
class TimingSubject:
    """A method ready to be timed, and what it was built from."""

    method: Method
    cfg: RunConfig
    spaces: TaskSpaces
    checkpoint: str = ""
    checkpoint_kind: str = ""  # "" (fresh model) | "run" (a run's last.pt) | "pretrained_dp"


def load_checkpoint_into(method: Method, path: str | Path) -> str:
    """Load a run checkpoint (`last.pt`: method state + normalizer) or a cached pretrained-DP file into
    `method`; returns which kind it was. Loads with weights_only=True like the runner."""
    st = load_checkpoint(path, fix="pass a run's last.pt or a cached pretrained-DP file")
    try:
        if isinstance(st, dict) and "method" in st and "modules" in st["method"]:
            method.load_state_dict(st["method"])
            if "normalizer" in st:
                method.normalizer.load_state_dict(st["normalizer"])
            return "run"
        if isinstance(st, dict) and "dp_state" in st:
            method.load_pretrained_dp(st["dp_state"])
            return "pretrained_dp"
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"checkpoint {path} does not fit this {method.name} config ({first}); pass the run's "
                         "--set overrides") from None
    raise ValueError(f"checkpoint {path} is neither a run checkpoint nor a pretrained DP")


def build_subject(method: str, task: str, device: str = "cpu", overrides: list[str] | dict | None = None,
                  checkpoint: str | None = None, seed: int = 0, obs_dim: int | None = None,
                  act_dim: int | None = None, base: dict[str, Any] | None = None) -> TimingSubject:
    """A method built from its resolved config and the task's spaces, a unit normaliser and a synthetic buffer."""
    cfg = resolve_config(method, task, seed, overrides or [], sweep=base).model_copy(update={"device": str(device)})
    torch.manual_seed(seed)
    # Built with `seed` (a `--set seed=N` changes the config, and so the timing run id, not the weights).
    parts = assemble(cfg.model_copy(update={"seed": seed}), data="synthetic", obs_dim=obs_dim, act_dim=act_dim)
    m, spaces = parts.method, parts.spaces
    kind = ""
    if checkpoint:
        kind = load_checkpoint_into(m, checkpoint)
    return TimingSubject(method=m, cfg=cfg, spaces=spaces, checkpoint=str(checkpoint or ""), checkpoint_kind=kind)


def timing_run_id(subject: TimingSubject, compile_key: str) -> str:
    """hash(method, task, device, resolved config, checkpoint content, compile setting): the timing "run"."""
    keyed = {"kind": "timing", "cfg": {k: v for k, v in subject.cfg.to_json().items() if k not in ("threads",)},
             "checkpoint": file_digest(subject.checkpoint) if subject.checkpoint else "", "compile": compile_key,
             "obs_dim": subject.spaces.obs_dim, "act_dim": subject.spaces.act_dim}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
