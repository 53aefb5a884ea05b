"""Offline datasets in one transition format, whatever their source.

Why: the runner and every method see one format (`OfflineDataset`) whether the data came from a Minari id, a
raw D4RL hdf5 file, a robomimic hdf5 file, or was made here by `mbench data make`. Timeouts stay apart from
terminals, so TD targets bootstrap through the first and never through the second.
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
    ref_min: float | None = None
    ref_max: float | None = None
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

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
        if obs_dim is not None and self.obs_dim != obs_dim:
            raise DatasetError(f"dataset '{self.dataset_id}' has obs dim {self.obs_dim} but the env has {obs_dim}: "
                               f"wrong dataset for this task (remake it with `mbench data make {self.dataset_id}`)")
        if act_dim is not None and self.act_dim != act_dim:
            raise DatasetError(f"dataset '{self.dataset_id}' has action dim {self.act_dim} but the env has {act_dim}: "
                               f"wrong dataset for this task")
        return self
