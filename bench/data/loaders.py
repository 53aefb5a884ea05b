"""`load_dataset`: any dataset (a task, a Minari id, an hdf5 file) as one validated `OfflineDataset`.

Why: methods must not care where data came from. A Minari id (downloaded, or made here by `mbench data make`),
a raw D4RL hdf5 file and a robomimic hdf5 file all become the same transition arrays with episode boundaries,
and timeouts stay apart from terminals so TD targets bootstrap through the first and never through the second.
Which reader (and which observation flattening) a source gets is looked up in the suite registry
(`bench.data.suites`); the readers themselves live with their suites.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.data import OfflineDataset
from bench.data.suites import is_file_source, suite_for
from bench.tasks import TaskError, get_task


def bind_task(task: Any, source: str | os.PathLike) -> Any:
    """The task (a bench.tasks.TaskSpec) bound to the dataset a run loads (id or path) by the source's suite:
    robomimic builds the env from the file's env_args, so that data and env match; most suites leave it as is."""
    suite = suite_for(source)
    return suite.bind(task, str(source)) if suite.bind is not None else task


def load_dataset(task_or_id: Any, obs_dim: int | None = None, act_dim: int | None = None,
                 path: str | os.PathLike | None = None,
                 obs_flatten: Callable[[Any], np.ndarray] | None = None) -> OfflineDataset:
    """Load and validate a dataset for a task (TaskSpec or task name), a Minari id, or an hdf5 path.

    The source's suite (bench.data.suites.suite_for) reads it: a robomimic id or file, a kitchen id (its own
    flattening), a raw D4RL hdf5 file, or any other Minari id. `path` overrides where the data is read from,
    keeping the task's dataset id as the name. `obs_flatten` overrides the suite's observation flattening.
    """
    dataset_id = getattr(task_or_id, "dataset_id", None)
    if dataset_id is None:
        name = str(task_or_id)
        if path is None and not is_file_source(name) and "/" not in name:
            # A task name rather than a dataset id.
            try:
                dataset_id = get_task(name).dataset_id
            except TaskError:
                dataset_id = name
        else:
            dataset_id = name
    source = str(path) if path is not None else dataset_id
    ds = suite_for(source).read(source, dataset_id=dataset_id if path is not None else None,
                                obs_flatten=obs_flatten)
    if is_file_source(source):
        ds.source_path = source  # named by path: a mismatch must name the file, not suggest a remake
    return ds.validate(obs_dim, act_dim)
