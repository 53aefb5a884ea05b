"""Checkpoints: atomic save and load of a run's whole state, and the process-wide RNG states.

Why: a resumed run must repeat the uninterrupted one exactly (the contract tests check it on the CPU), and a
crash mid-write must never leave a torn file. So a checkpoint is written to a temporary name and moved into
place (results/atomic.py), it holds every RNG (torch, numpy, Python, the buffer's, the training actor's), and it is
loaded with `weights_only=True` (results/checkpoint_files.py): a poisoned file cannot run code, and an
unreadable one gives one line naming the file and the fix instead of torch's traceback.
"""
from __future__ import annotations

import contextlib
import copy
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.runner.progress import Progress
from results.atomic import atomic_write, leftovers_of
from results.checkpoint_files import load_checkpoint

CHECKPOINT_VERSION = 2


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save, atomically (results/atomic.py): on a full disk, one line naming the path, no temp file left."""
    atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_leftovers(path: Path) -> None:
    """Remove the temporary files of torn writes of `path` (a process killed mid-write leaves one); only for a
    caller that holds the file's run lock, so that no live writer owns them."""
    for tmp in leftovers_of(path):
        with contextlib.suppress(OSError):
            tmp.unlink()


def rng_states() -> dict[str, Any]:
    """torch, numpy and Python global RNG states, as plain tensors and strings."""
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)),
                                                      int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": json.dumps(random.getstate())}


def set_rng_states(st: dict[str, Any]) -> None:
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    py = json.loads(st["python"])
    random.setstate((py[0], tuple(py[1]), py[2]))


def snapshot(method, buffer=None) -> dict[str, Any]:
    """In memory, a copy of what a checkpoint holds of `method` (its state_dict: modules, generator, extras) and
    the process's RNGs (and the buffer's, where given), for `restore_snapshot` to put back: an update or a timing
    abandoned at a stop request leaves the run as it found it, so that its checkpoint is the state before it."""
    return {"method": copy.deepcopy(method.state_dict()), "rng": rng_states(),
            "buffer_rng": buffer.get_rng_state() if buffer is not None else None}


def restore_snapshot(snap: dict[str, Any], method, buffer=None) -> None:
    """Put back what `snapshot` copied."""
    method.load_state_dict(snap["method"])
    set_rng_states(snap["rng"])
    if buffer is not None and snap["buffer_rng"] is not None:
        buffer.set_rng_state(snap["buffer_rng"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def plain(x: Any) -> Any:
    """x as JSON-able plain values (dicts, lists, numbers)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def save_run(path: Path, *, run_id: str, dataset_hash: str, method, buffer, normalizer, train_state,
             progress: Progress, curve: list[dict[str, Any]], loop_state: dict[str, Any],
             episodes: list[dict[str, Any]] | None = None) -> None:
    """Write a run's checkpoint: method, buffer, normaliser, training actor state, RNGs, progress, curve, eval
    episodes, and what its loop keeps (the on-policy loop's envs)."""
    state = {
        "version": CHECKPOINT_VERSION, "run_id": run_id, "dataset_hash": dataset_hash,
        "method": method.state_dict(), "buffer": buffer.state_dict(), "normalizer": normalizer.state_dict(),
        "train_state": {"generator": train_state.generator.get_state(),
                        "memory": json.dumps(plain(train_state.memory))},
        "rng": rng_states(), "counters": progress.to_json(), "curve": json.dumps(curve), "loop": loop_state,
        "episodes": json.dumps(episodes or []),
    }
    atomic_torch_save(state, path)


def read_run(path: Path, run_id: str, dataset_hash: str) -> dict[str, Any] | None:
    """The run's checkpoint if one exists for this run_id and version, else None. Raises CheckpointError (one
    line) for an unreadable file, and a ValueError naming both hashes if it was taken on another dataset."""
    if not path.exists():
        return None
    st = load_checkpoint(path)
    if st.get("run_id") != run_id or st.get("version") != CHECKPOINT_VERSION:
        return None
    old = st.get("dataset_hash")
    if old and old != dataset_hash:
        raise DatasetChanged(f"the checkpoint {path} was taken on dataset {old}, but the dataset now has hash "
                             f"{dataset_hash}; rerun with --restart to start over on the new data")
    return st


class DatasetChanged(ValueError):
    """Resuming would mix a checkpoint of one dataset with another."""


def restore_run(st: dict[str, Any], *, method, buffer, normalizer, train_state
                ) -> tuple[Progress, list[dict[str, Any]], dict[str, Any]]:
    """Load a checkpoint read by read_run into the run's parts; returns (progress, curve, loop state) (attempt
    counting is the lifecycle's)."""
    method.load_state_dict(st["method"])
    buffer.load_state_dict(st["buffer"])
    normalizer.load_state_dict(st["normalizer"])
    train_state.generator.set_state(st["train_state"]["generator"])
    train_state.memory = json.loads(st["train_state"]["memory"])
    set_rng_states(st["rng"])
    return Progress.from_json(st["counters"]), json.loads(st["curve"]), st.get("loop", {}) or {}


def restored_episodes(st: dict[str, Any]) -> list[dict[str, Any]]:
    """The eval episodes a checkpoint holds (none in a checkpoint of code older than the episodes table)."""
    return json.loads(st.get("episodes") or "[]")
