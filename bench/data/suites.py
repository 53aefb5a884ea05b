"""The registry of dataset suites: for each, its id prefix, its loader, its maker and its observation flattening.

Why: which suite a dataset id or file belongs to is decided here, by one lookup, and nowhere else by string
prefix: `load_dataset` (bench.data.loaders) and `mbench data make` (bench.data.make) both ask `suite_for`. A
new suite is one `register_suite` call.

- A dataset id belongs to the suite with the longest prefix it starts with; the `d4rl` suite's prefix is '', so
  it takes every other Minari id (`mujoco/...`, `mbench/...`, or any real Minari dataset).
- A file (`--set dataset_path=FILE`, an .hdf5/.h5 path) belongs to the first suite whose `owns_file` accepts it:
  a robomimic file (a `data` group of `demo_*` groups), else a raw D4RL file.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.data import DatasetError, OfflineDataset, d4rl, kitchen, robomimic, robomimic_hdf5
from bench.data.minari_io import load_minari

HDF5_SUFFIXES = d4rl.HDF5_SUFFIXES
ObsFlatten = Callable[[Any], np.ndarray]


@dataclasses.dataclass(frozen=True)
class DataSuite:
    """One dataset suite.

    load(source, dataset_id, obs_flatten): read an id or a file of this suite; `dataset_id` names the result
    (None: the id itself, or the file's own name); `obs_flatten` is this suite's flattening unless overridden.
    make(dataset_id, root=, size=, agent_steps=, seed=, progress=, force=) -> summary dict, or None when ids of
    this suite cannot be made here. obs_flatten: how a Minari episode's observations become (T+1, obs_dim)
    (None: dict entries concatenated in sorted-key order). owns_file(path): a file in this suite's format.
    bind(task, source): the task (a bench.tasks.TaskSpec) bound to a source of this suite, e.g. robomimic builds
    the task's env from the file's env_args so that data and env match (None: the task as it is).
    """
    name: str
    prefix: str
    load: Callable[[str, str | None, ObsFlatten | None], OfflineDataset]
    make: Callable[..., dict[str, Any]] | None
    obs_flatten: ObsFlatten | None = None
    owns_file: Callable[[str], bool] | None = None
    ids: str = ""  # the ids it takes, for messages
    bind: Callable[[Any, str], Any] | None = None

    def read(self, source: str, dataset_id: str | None = None,
             obs_flatten: ObsFlatten | None = None) -> OfflineDataset:
        return self.load(source, dataset_id, obs_flatten or self.obs_flatten)


_SUITES: dict[str, DataSuite] = {}


def register_suite(suite: DataSuite) -> DataSuite:
    _SUITES[suite.name] = suite
    return suite


def all_suites() -> dict[str, DataSuite]:
    return dict(_SUITES)


def is_file_source(source: str | os.PathLike) -> bool:
    """A path to an hdf5 file rather than a dataset id."""
    return str(source).endswith(HDF5_SUFFIXES)


def suite_for(source: str | os.PathLike) -> DataSuite:
    """The suite a dataset id (longest matching prefix) or an hdf5 file (first `owns_file`) belongs to."""
    s = str(source)
    if not is_file_source(s) and os.path.isfile(s):
        raise DatasetError(f"'{s}' is a file, but not an hdf5 file (.hdf5 or .h5): dataset_path takes a raw D4RL "
                           "or robomimic hdf5 file, and a dataset id names a Minari dataset")
    if is_file_source(s):
        for suite in _SUITES.values():
            if suite.owns_file is not None and suite.owns_file(s):
                return suite
        raise DatasetError(f"no dataset suite reads the file '{s}'")
    matches = [suite for suite in _SUITES.values() if s.startswith(suite.prefix)]
    if not matches:
        raise DatasetError(f"no dataset suite takes the id '{s}' (suites: {sorted(_SUITES)})")
    return max(matches, key=lambda suite: len(suite.prefix))


def make(dataset_id: str, *, root: str | os.PathLike | None = None, size: int | None = None,
         agent_steps: int | None = None, seed: int = 0, progress: bool = True, force: bool = False) -> dict[str, Any]:
    """Make `dataset_id` with its suite's maker (`mbench data make`); `size` is the suite's size knob."""
    suite = suite_for(dataset_id)
    if is_file_source(dataset_id) or suite.make is None:
        makeable = ", ".join(s.ids for s in _SUITES.values() if s.make is not None and s.ids)
        raise DatasetError(f"cannot make '{dataset_id}': the {suite.name} suite has no maker here "
                           f"(makeable: {makeable})")
    return suite.make(dataset_id, root=root, size=size, agent_steps=agent_steps, seed=seed, progress=progress,
                      force=force)


# ---- the suites ---------------------------------------------------------------------------------------------------
def _load_minari_id(source: str, dataset_id: str | None, obs_flatten: ObsFlatten | None) -> OfflineDataset:
    return load_minari(source, obs_flatten=obs_flatten)


def _load_d4rl(source: str, dataset_id: str | None, obs_flatten: ObsFlatten | None) -> OfflineDataset:
    if is_file_source(source):
        return d4rl.load_d4rl_hdf5(source, dataset_id=dataset_id)
    return load_minari(source, obs_flatten=obs_flatten)


def _make_d4rl(dataset_id: str, *, size: int | None, agent_steps: int | None, **kw) -> dict[str, Any]:
    return d4rl.make_dataset(dataset_id, agent_steps=agent_steps, dataset_size=size, **kw)


def _make_kitchen(dataset_id: str, *, size: int | None, agent_steps: int | None, **kw) -> dict[str, Any]:
    return kitchen.make_kitchen_dataset(dataset_id, n_episodes=size, **kw)  # scripted: no agent to train


def _load_robomimic(source: str, dataset_id: str | None, obs_flatten: ObsFlatten | None) -> OfflineDataset:
    return robomimic_hdf5.load_robomimic(source, dataset_id=dataset_id)


def _make_robomimic(dataset_id: str, *, size: int | None, agent_steps: int | None, **kw) -> dict[str, Any]:
    return robomimic.make_robomimic_dataset(dataset_id, n_demos=size, **kw)  # scripted: no agent to train


def _is_robomimic_file(path: str) -> bool:
    return os.path.exists(path) and robomimic_hdf5.is_robomimic_file(path)


# Registration order is the order files are offered to `owns_file`: robomimic's layout first, raw D4RL last.
register_suite(DataSuite(
    name="robomimic", prefix=robomimic_hdf5.ROBOMIMIC_PREFIX, load=_load_robomimic, make=_make_robomimic,
    owns_file=_is_robomimic_file, ids="robomimic/<lift|can>/<ph|mh>", bind=robomimic_hdf5.bind_task))
register_suite(DataSuite(
    name="kitchen", prefix=kitchen.KITCHEN_PREFIX, load=_load_minari_id, make=_make_kitchen,
    obs_flatten=kitchen.flatten_kitchen_obs, ids="D4RL/kitchen/<complete|partial|mixed>-v2"))
register_suite(DataSuite(
    name="d4rl", prefix="", load=_load_d4rl, make=_make_d4rl, owns_file=lambda path: True,
    ids=f"<namespace>/<{'|'.join(d4rl.ENVS)}>/<{'|'.join(d4rl.QUALITIES)}>-v<N>"))
