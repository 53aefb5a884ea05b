"""robomimic's hdf5 layout: where its files live, the reader, the writer, and the facts its files record.

Why: the paper's manipulation results use robomimic's datasets, whose format is `data/demo_i/{obs/<key>,
next_obs/<key>, actions, rewards, dones, states}` with `data.attrs["env_args"]` (the env they were recorded in),
`mask/<filter>` lists of demo names (train/valid splits; MH files add operator-quality filters such as
`better`, `okay`, `worse`), and per-demo `num_samples` / `model_file` attributes. The reader turns such a file
into our `OfflineDataset`; the writer writes files in exactly that layout (robomimic's own `SequenceDataset`
opens them). The scripted maker is in `bench.data.robomimic`; the env, and the table of tasks with their obs keys
and env_args, in `bench.tasks.robomimic`, which imports nothing from `bench.data`: a task is bound to a file's
env_args here (`bind_task`, the robomimic suite's binding; bench/data/suites.py).

Where files live: a dataset id `robomimic/<task>/<ph|mh>` is the file `<root>/<task>/<ph|mh>/low_dim*.hdf5` with
`<root>` = `ROBOMIMIC_DATASETS_PATH` (default `~/.robomimic/datasets`), i.e. robomimic's download layout. A made
file is `low_dim_made.hdf5`; a real one (`low_dim_v141.hdf5`, `low_dim_v15.hdf5`, `low_dim.hdf5`) wins if present.

Transitions: robomimic's demos go on for a few steps after the first success (reward 1 on each). Our env ends
the episode at the first success (as robomimic's rollouts do), so the reader cuts each demo there and marks that
step terminal; a demo that never succeeds ends in a timeout.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError, OfflineDataset
from bench.tasks.robomimic import ENV_TO_TASK, ROBOMIMIC_TASKS
from results.atomic import atomic_path

ROBOMIMIC_PREFIX = "robomimic/"
REAL_FILE_NAMES = ("low_dim_v15.hdf5", "low_dim_v141.hdf5", "low_dim.hdf5")
MADE_FILE_NAME = "low_dim_made.hdf5"
# Score refs of robomimic data: its reward is sparse, 1 on success and 0 otherwise.
REF_SOURCE = "robomimic's sparse reward: 0 without success, 1 on success"

def robomimic_root() -> Path:
    env = os.environ.get("ROBOMIMIC_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".robomimic" / "datasets"


def parse_id(dataset_id: str) -> tuple[str, str]:
    parts = dataset_id.split("/")
    if len(parts) != 3 or parts[0] != "robomimic" or parts[1] not in ROBOMIMIC_TASKS or parts[2] not in ("ph", "mh"):
        raise DatasetError(f"bad robomimic dataset id '{dataset_id}': expected robomimic/<task>/<ph|mh> with task "
                           f"in {sorted(ROBOMIMIC_TASKS)}")
    return parts[1], parts[2]


def is_robomimic_file(path: str | os.PathLike) -> bool:
    """An hdf5 file with robomimic's layout (a `data` group of `demo_*` groups)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return "data" in f and isinstance(f["data"], h5py.Group) and (
                "env_args" in f["data"].attrs or any(k.startswith("demo") for k in f["data"]))
    except OSError:
        return False


def resolve_path(source: str | os.PathLike) -> Path | None:
    """The hdf5 file of a robomimic id or path; None for anything that is not robomimic data."""
    s = str(source)
    if s.startswith(ROBOMIMIC_PREFIX):
        task, kind = parse_id(s)
        folder = robomimic_root() / task / kind
        for name in REAL_FILE_NAMES + (MADE_FILE_NAME,):
            if (folder / name).exists():
                return folder / name
        raise DatasetError(f"dataset '{s}' not found in {folder}: download robomimic's low_dim file there "
                           f"(robomimic/scripts/download_datasets.py --tasks {task} --dataset_types {kind} "
                           f"--hdf5_types low_dim), or run `mbench data make {s}`, or set ROBOMIMIC_DATASETS_PATH")
    if s.endswith((".hdf5", ".h5")) and os.path.exists(s) and is_robomimic_file(s):
        return Path(s)
    return None


def read_env_args(path: str | os.PathLike) -> dict[str, Any]:
    import h5py

    with h5py.File(path, "r") as f:
        if "data" not in f or "env_args" not in f["data"].attrs:
            raise DatasetError(f"robomimic file '{Path(path).name}' has no data.attrs['env_args']")
        raw = f["data"].attrs["env_args"]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw)


def bind_task(task: Any, source: str) -> Any:
    """The task (a bench.tasks.TaskSpec) with its env built from the dataset's env_args (data and env must match);
    unchanged where `source` is not robomimic data."""
    path = resolve_path(source)
    if path is None:
        return task
    env_args = read_env_args(path)
    if env_args.get("env_name") != task.env_id:
        raise DatasetError(f"robomimic file '{path.name}' was made for env '{env_args.get('env_name')}', "
                           f"but task '{task.name}' runs '{task.env_id}'")
    return dataclasses.replace(task, env_kwargs=dict(task.env_kwargs, env_args=env_args))


def _demo_sort_key(name: str) -> int:
    return int(name.split("_")[-1]) if name.split("_")[-1].isdigit() else 1 << 30


def load_robomimic(source: str | os.PathLike, dataset_id: str | None = None, obs_keys: tuple[str, ...] | None = None,
                   filter_key: str | None = None, cut_at_success: bool = True) -> OfflineDataset:
    """Read a robomimic hdf5 file (id or path) into an OfflineDataset.

    obs_keys: default robomimic's low-dim keys for the file's env. filter_key: a `mask/<key>` (e.g. `train`,
    `better`) selecting demos; None reads every demo."""
    import h5py

    path = resolve_path(source)
    if path is None:
        raise DatasetError(f"'{source}' is not a robomimic hdf5 file (no data/demo_* groups)")
    env_args = read_env_args(path)
    if obs_keys is None:
        task = ENV_TO_TASK.get(env_args.get("env_name"))
        if task is None:
            raise DatasetError(f"robomimic file '{path.name}': unknown env '{env_args.get('env_name')}'; pass obs_keys")
        obs_keys = ROBOMIMIC_TASKS[task][3]
    obs, act, rew, nobs, term, tout = [], [], [], [], [], []
    with h5py.File(path, "r") as f:
        masks = {k: sorted(x.decode() if isinstance(x, bytes) else str(x) for x in f["mask"][k][()])
                 for k in f["mask"]} if "mask" in f else {}
        demos = sorted(f["data"].keys(), key=_demo_sort_key)
        if filter_key is not None:
            if filter_key not in masks:
                raise DatasetError(f"robomimic file '{path.name}' has no mask '{filter_key}' (has {sorted(masks)})")
            demos = sorted(masks[filter_key], key=_demo_sort_key)
        data_attrs = {k: _plain_attr(v) for k, v in f["data"].attrs.items() if k != "env_args"}
        for name in demos:
            g = f["data"][name]
            missing = [k for k in obs_keys if k not in g["obs"]]
            if missing:
                raise DatasetError(f"robomimic file '{path.name}' {name}: obs keys {missing} missing "
                                   f"(has {sorted(g['obs'])})")
            o = np.concatenate([np.asarray(g["obs"][k], np.float64).reshape(len(g["actions"]), -1)
                                for k in obs_keys], axis=1)
            if "next_obs" in g:
                no = np.concatenate([np.asarray(g["next_obs"][k], np.float64).reshape(len(g["actions"]), -1)
                                     for k in obs_keys], axis=1)
            else:  # s' is the next row; the last row repeats itself (it is terminal or cut off)
                no = np.concatenate([o[1:], o[-1:]], axis=0)
            a = np.asarray(g["actions"], np.float64).reshape(len(o), -1)
            r = np.asarray(g["rewards"], np.float64).reshape(len(o)) if "rewards" in g else np.zeros(len(o))
            d = np.asarray(g["dones"]).reshape(len(o)).astype(bool) if "dones" in g else np.zeros(len(o), bool)
            n = len(o)
            if n == 0:
                continue
            t = np.zeros(n, bool)
            hits = np.flatnonzero(r > 0)
            if cut_at_success and hits.size:
                n = int(hits[0]) + 1
                t[n - 1] = True
            elif d.any():
                n = int(np.flatnonzero(d)[0]) + 1
                t[n - 1] = bool(r[n - 1] > 0)
            to = np.zeros(n, bool)
            if not t[n - 1]:
                to[n - 1] = True
            obs.append(o[:n]), nobs.append(no[:n]), act.append(a[:n]), rew.append(r[:n]), term.append(t[:n])
            tout.append(to)
    if not obs:
        raise DatasetError(f"robomimic file '{path.name}' has no demos" + (f" in mask '{filter_key}'" if filter_key else ""))
    return OfflineDataset(
        dataset_id=dataset_id or str(source),
        observations=np.concatenate(obs).astype(np.float32), actions=np.concatenate(act).astype(np.float32),
        rewards=np.concatenate(rew).astype(np.float32), next_observations=np.concatenate(nobs).astype(np.float32),
        terminals=np.concatenate(term), timeouts=np.concatenate(tout),
        provenance={"source": "robomimic_hdf5", "path_name": path.name, "env_args": env_args,
                    "obs_keys": list(obs_keys), "filter_key": filter_key, "demos": len(obs),
                    "masks": {k: len(v) for k, v in masks.items()}, "data_attrs": data_attrs,
                    "made": path.name == MADE_FILE_NAME},
        ref_min=0.0, ref_max=1.0, ref_source=REF_SOURCE,
        source_path=None if str(source).startswith(ROBOMIMIC_PREFIX) else str(path),
    )


def _plain_attr(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# ---- writing (robomimic's layout) ---------------------------------------------------------------------------
def write_robomimic_hdf5(path: str | os.PathLike, env_args: dict[str, Any], demos: list[dict[str, Any]],
                         masks: dict[str, list[str]], attrs: dict[str, Any] | None = None) -> Path:
    """Write demos in robomimic's layout. Each demo: obs/next_obs (dicts of (T, d) arrays), actions, rewards,
    dones, states, and attrs (num_samples, model_file, ...). Written atomically (results/atomic.py)."""
    import h5py

    path = Path(path)
    total = 0
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        data = f.create_group("data")
        for i, d in enumerate(demos):
            g = data.create_group(f"demo_{i}")
            for part in ("obs", "next_obs"):
                pg = g.create_group(part)
                for k, v in d[part].items():
                    pg.create_dataset(k, data=np.asarray(v))
            for k in ("actions", "rewards", "dones", "states"):
                g.create_dataset(k, data=np.asarray(d[k]))
            g.attrs["num_samples"] = len(d["actions"])
            for k, v in d.get("attrs", {}).items():
                g.attrs[k] = v
            total += len(d["actions"])
        data.attrs["total"] = total
        data.attrs["env_args"] = json.dumps(env_args)
        for k, v in (attrs or {}).items():
            data.attrs[k] = v
        mg = f.create_group("mask")
        for k, names in masks.items():
            mg.create_dataset(k, data=np.array([n.encode() for n in names], dtype="S"))
    return path
