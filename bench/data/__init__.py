"""Offline datasets in one transition format, whatever their source.

Why: the runner and every method see one format (`OfflineDataset`) whether the data came from a Minari id, a
raw D4RL hdf5 file, a robomimic hdf5 file, or was made here by `mbench data make`. Timeouts stay apart from
terminals, so TD targets bootstrap through the first and never through the second.

This module imports nothing from the project, so every other module of `bench.data` may import it without a
cycle; `bench.data` imports `bench.tasks` (makers drive a task's env), never the reverse. The layout:
- `minari_io`: the Minari root, the one Minari writer, the Minari reader and listing;
- `d4rl`: raw D4RL hdf5 files and the look-alike D4RL maker (a SAC behaviour agent, `behaviour`);
- `kitchen`: the kitchen observation flattener and the scripted kitchen maker;
- `robomimic_hdf5`: robomimic's file layout (reader, writer, where files live); `robomimic`: its scripted maker;
- `suites`: the registry of dataset suites (id prefix, loader, maker, observation flattening);
- `loaders`: `load_dataset`, which looks the suite up; `make`: the `mbench data make|list` commands.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np


class DatasetError(ValueError):
    """A missing, corrupt or mismatched dataset; the message is one line naming the problem and the fix."""


@dataclasses.dataclass
class OfflineDataset:
    dataset_id: str
    observations: np.ndarray  # float32 (N, obs_dim)
    actions: np.ndarray  # float32 (N, act_dim)
    rewards: np.ndarray  # float32 (N,)
    next_observations: np.ndarray  # float32 (N, obs_dim)
    terminals: np.ndarray  # bool (N,): a true end (fall, success); never bootstrap
    timeouts: np.ndarray  # bool (N,): an episode cut off (time limit or end of data); bootstrap
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    # D4RL-style score refs, only as the data carries them, and only as a pair: a raw D4RL hdf5 file has none, so
    # both are None (never made up), and so is ref_source, which otherwise says where the refs came from.
    ref_min: float | None = None
    ref_max: float | None = None
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    ref_source: str | None = None
    # The file the data was read from when it was named by path (`--set dataset_path=FILE`); None for an id.
    source_path: str | None = None

    def __len__(self) -> int:
        return int(self.observations.shape[0])

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    @property
    def episode_ends(self) -> np.ndarray:
        return self.terminals | self.timeouts

    def episodes(self) -> list[tuple[int, int]]:
        """[start, stop) index pairs of the episodes, in order."""
        ends = np.flatnonzero(self.episode_ends)
        out, start = [], 0
        for e in ends:
            out.append((start, int(e) + 1))
            start = int(e) + 1
        if start < len(self):
            out.append((start, len(self)))
        return out

    def episode_returns(self) -> np.ndarray:
        return np.array([self.rewards[a:b].sum() for a, b in self.episodes()], dtype=np.float64)

    def content_hash(self) -> str:
        h = hashlib.sha256()
        for arr in (self.observations, self.actions, self.rewards, self.next_observations,
                    self.terminals, self.timeouts):
            a = np.ascontiguousarray(arr)
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())
        return h.hexdigest()[:16]

    def validate(self, obs_dim: int | None = None, act_dim: int | None = None) -> OfflineDataset:
        n = len(self)
        if n == 0:
            raise DatasetError(f"dataset '{self.dataset_id}' is empty")
        for name in ("actions", "rewards", "next_observations", "terminals", "timeouts"):
            if getattr(self, name).shape[0] != n:
                raise DatasetError(f"dataset '{self.dataset_id}': field '{name}' has "
                                   f"{getattr(self, name).shape[0]} rows, observations has {n}")
        for name in ("observations", "actions", "rewards", "next_observations"):
            arr = getattr(self, name)
            if not np.all(np.isfinite(arr)):
                bad = int(np.flatnonzero(~np.isfinite(arr).reshape(n, -1).all(axis=1))[0])
                raise DatasetError(f"dataset '{self.dataset_id}': field '{name}' has NaN/inf (first at row {bad})")
        for what, found, expected in (("obs", self.obs_dim, obs_dim), ("action", self.act_dim, act_dim)):
            if expected is not None and found != expected:
                raise DatasetError(self._dim_message(what, found, expected))
        return self

    def _dim_message(self, what: str, found: int, expected: int) -> str:
        if self.source_path is not None:
            # A file cannot be remade by id: it was recorded on another env than the task's.
            return (f"dataset file '{self.source_path}' has {what} dim {found} but the env has {expected}: the file "
                    f"was recorded on another env; pass a file recorded on this task's env "
                    f"(`--set dataset_path=FILE`), or pick the task whose env matches the file")
        return (f"dataset '{self.dataset_id}' has {what} dim {found} but the env has {expected}: wrong dataset for "
                f"this task (remake it with `mbench data make {self.dataset_id}`)")
