"""Readers that turn real dataset formats into one `OfflineDataset`.

Why: methods must not care where data came from. A Minari id (downloaded, or made here by `mbench data make`)
and a raw D4RL hdf5 file both become the same transition arrays with episode boundaries, and timeouts stay
apart from terminals so TD targets bootstrap through the first and never through the second.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError, OfflineDataset

# The metadata key under which `mbench data make` stores how a dataset was made (a JSON string, so any Minari
# reader passes it through untouched).
PROVENANCE_KEY = "mbench_provenance"
HDF5_SUFFIXES = (".hdf5", ".h5")


def minari_root() -> Path:
    """The Minari datasets folder: `MINARI_DATASETS_PATH`, else Minari's own default."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


def missing_dataset_message(dataset_id: str) -> str:
    return (f"dataset '{dataset_id}' not found in {minari_root()}: run `minari download {dataset_id}` "
            f"(a real Minari dataset) or `mbench data make {dataset_id}` (make a look-alike offline), "
            f"or set MINARI_DATASETS_PATH")


def flatten_obs(obs: Any) -> np.ndarray:
    """(T, d) float array from an array or a (nested) dict of arrays, keys in sorted order."""
    if isinstance(obs, dict):
        if not obs:
            raise DatasetError("observation dict is empty")
        parts = [flatten_obs(obs[k]) for k in sorted(obs)]
        return np.concatenate(parts, axis=1)
    arr = np.asarray(obs)
    return arr.reshape(arr.shape[0], -1)


def _minari_path(dataset_id: str) -> Path:
    return minari_root() / dataset_id


def load_minari(dataset_id: str, obs_flatten: Callable[[Any], np.ndarray] | None = None) -> OfflineDataset:
    """Read a Minari dataset by id through `minari.load_dataset`.

    `obs_flatten` maps an episode's observations (an array, or a dict of arrays for goal-conditioned envs) to a
    (T+1, obs_dim) array; the default concatenates dict entries in sorted-key order.
    """
    if not (_minari_path(dataset_id) / "data").exists():
        raise DatasetError(missing_dataset_message(dataset_id))
    import minari

    flatten = obs_flatten or flatten_obs
    try:
        ds = minari.load_dataset(dataset_id)
        metadata = ds.storage.metadata
        episodes = list(ds.iterate_episodes())
    except (OSError, ValueError, KeyError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DatasetError(f"dataset '{dataset_id}' could not be read ({msg}): remake or re-download it") from e

    obs, act, rew, nobs, term, tout = [], [], [], [], [], []
    for ep in episodes:
        n = len(ep.rewards)
        if n == 0:
            continue
        o = flatten(ep.observations)
        if o.shape[0] != n + 1:
            raise DatasetError(f"dataset '{dataset_id}' episode {ep.id}: {o.shape[0]} observations for {n} steps "
                               f"(expected {n + 1})")
        terminations = np.asarray(ep.terminations, dtype=bool).reshape(n)
        truncations = np.asarray(ep.truncations, dtype=bool).reshape(n).copy()
        # An episode whose last step carries neither flag was cut off by the end of collection: a timeout.
        if not (terminations[-1] or truncations[-1]):
            truncations[-1] = True
        obs.append(o[:-1])
        nobs.append(o[1:])
        act.append(np.asarray(ep.actions).reshape(n, -1))
        rew.append(np.asarray(ep.rewards).reshape(n))
        term.append(terminations)
        tout.append(truncations & ~terminations)
    if not obs:
        raise DatasetError(f"dataset '{dataset_id}' has no steps")

    provenance: dict[str, Any] = {"source": "minari", "dataset_id": dataset_id,
                                  "minari_version": metadata.get("minari_version"),
                                  "algorithm_name": metadata.get("algorithm_name"),
                                  "env_spec": _env_id(metadata.get("env_spec"))}
    blob = metadata.get(PROVENANCE_KEY)
    if blob:
        try:
            provenance.update(json.loads(blob) if isinstance(blob, str) else dict(blob))
        except (ValueError, TypeError) as e:
            raise DatasetError(f"dataset '{dataset_id}': metadata '{PROVENANCE_KEY}' is not valid JSON") from e
    ref_min, ref_max = metadata.get("ref_min_score"), metadata.get("ref_max_score")
    return OfflineDataset(
        dataset_id=dataset_id,
        observations=np.concatenate(obs).astype(np.float32),
        actions=np.concatenate(act).astype(np.float32),
        rewards=np.concatenate(rew).astype(np.float32),
        next_observations=np.concatenate(nobs).astype(np.float32),
        terminals=np.concatenate(term),
        timeouts=np.concatenate(tout),
        provenance=provenance,
        ref_min=None if ref_min is None else float(ref_min),
        ref_max=None if ref_max is None else float(ref_max),
    )


def _env_id(env_spec: Any) -> str | None:
    if not env_spec:
        return None
    try:
        return json.loads(env_spec).get("id") if isinstance(env_spec, str) else getattr(env_spec, "id", None)
    except ValueError:
        return None


def _read_key(f, key: str, path: str, required: bool = True):
    if key not in f:
        if required:
            raise DatasetError(f"D4RL hdf5 '{path}' lacks the key '{key}'")
        return None
    try:
        return np.asarray(f[key][()])
    except (OSError, TypeError, ValueError) as e:
        raise DatasetError(f"D4RL hdf5 '{path}': key '{key}' could not be read ({type(e).__name__})") from e


def load_d4rl_hdf5(path: str | os.PathLike, dataset_id: str | None = None) -> OfflineDataset:
    """Read a raw D4RL hdf5 file (observations, actions, rewards, terminals, timeouts[, next_observations]).

    Without `next_observations` the next row gives s' inside an episode; the final row of each episode has no
    s' and is dropped (D4RL's `qlearning_dataset` does the same), and the row before it inherits its flag.
    A last episode that was cut off with neither flag set ends in a timeout.
    """
    import h5py

    path = str(path)
    if not os.path.exists(path):
        raise DatasetError(f"D4RL hdf5 file '{path}' does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetError(f"D4RL hdf5 '{path}' is not a readable hdf5 file ({e})") from e
    with f:
        obs = _read_key(f, "observations", path)
        act = _read_key(f, "actions", path)
        rew = _read_key(f, "rewards", path)
        term = _read_key(f, "terminals", path)
        tout = _read_key(f, "timeouts", path)
        nobs = _read_key(f, "next_observations", path, required=False)
        meta = {k: _scalar(f["metadata"][k]) for k in f["metadata"]} if "metadata" in f else {}
    n = obs.shape[0]
    for name, arr in (("actions", act), ("rewards", rew), ("terminals", term), ("timeouts", tout)):
        if arr.shape[0] != n:
            raise DatasetError(f"D4RL hdf5 '{path}': key '{name}' has {arr.shape[0]} rows, observations has {n}")
    if nobs is not None and nobs.shape != obs.shape:
        raise DatasetError(f"D4RL hdf5 '{path}': key 'next_observations' has shape {nobs.shape}, "
                           f"observations has {obs.shape}")
    obs = obs.reshape(n, -1).astype(np.float32)
    act = act.reshape(n, -1).astype(np.float32)
    rew = rew.reshape(n).astype(np.float32)
    term = term.reshape(n).astype(bool)
    tout = tout.reshape(n).astype(bool) & ~term
    if n and not (term[-1] or tout[-1]):
        tout[-1] = True  # cut off by the end of the file
    if nobs is not None:
        nobs = nobs.reshape(n, -1).astype(np.float32)
    else:
        # s' of row i is row i+1 within an episode. A terminal row's s' is never bootstrapped from, so its own
        # observation stands in. A timeout row's s' is unknown: drop that row and pass its timeout to the row
        # before it (which then bootstraps from the dropped row's observation, its true s').
        nobs = np.empty_like(obs)
        nobs[:-1] = obs[1:]
        nobs[-1] = obs[-1]
        nobs[term] = obs[term]
        keep = ~tout
        prev = np.flatnonzero(tout) - 1
        prev = prev[prev >= 0]
        prev = prev[~(term[prev] | tout[prev])]  # a 1-step episode has no row before it in the same episode
        tout = tout.copy()
        tout[prev] = True
        obs, act, rew, nobs, term, tout = (a[keep] for a in (obs, act, rew, nobs, term, tout))
    dataset_id = dataset_id or Path(path).stem
    return OfflineDataset(
        dataset_id=dataset_id, observations=obs, actions=act, rewards=rew, next_observations=nobs,
        terminals=term, timeouts=tout,
        provenance={"source": "d4rl_hdf5", "path_name": Path(path).name, "metadata": meta},
    )


def _scalar(item) -> Any:
    try:
        v = item[()]
    except (AttributeError, TypeError):
        return None
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    return None if isinstance(v, np.ndarray) else v


def _robomimic_path(source: str) -> Path | None:
    """The robomimic hdf5 behind an id or path, or None (robomimic support is optional)."""
    try:
        from bench.data.robomimic import resolve_path
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("bench"):
            return None
        raise
    return resolve_path(source)


def list_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """One line per dataset found under the Minari root: id, size, refs, and whether mbench made it."""
    import warnings

    import minari

    root = Path(root) if root is not None else minari_root()
    if not root.exists():
        return []
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = minari.list_local_datasets()
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    lines = []
    for ds_id, meta in sorted(found.items()):
        made = None
        if isinstance(meta.get(PROVENANCE_KEY), str):
            with contextlib.suppress(ValueError):
                made = json.loads(meta[PROVENANCE_KEY])
        line = f"{ds_id}  ({'made by mbench' if made else 'minari'}) {meta.get('total_episodes')} episodes, " \
               f"{meta.get('total_steps')} steps"
        if meta.get("ref_min_score") is not None and meta.get("ref_max_score") is not None:
            line += f", refs [{float(meta['ref_min_score']):.1f}, {float(meta['ref_max_score']):.1f}]"
        if made and made.get("collected"):
            line += f", mean return {made['collected']['mean_return']:.1f}"
        lines.append(line)
    return lines


def load_dataset(task_or_id: Any, obs_dim: int | None = None, act_dim: int | None = None,
                 path: str | os.PathLike | None = None,
                 obs_flatten: Callable[[Any], np.ndarray] | None = None) -> OfflineDataset:
    """Load and validate a dataset for a task (TaskSpec or task name), a Minari id, or an hdf5 path.

    Dispatch: a robomimic id or file goes to `bench.data.robomimic`; another path ending in .hdf5/.h5 is raw
    D4RL hdf5; anything else is a Minari id. `path` overrides where the data is read from, keeping the task's
    dataset id as the name.
    """
    dataset_id = getattr(task_or_id, "dataset_id", None)
    if dataset_id is None:
        name = str(task_or_id)
        if path is None and not name.endswith(HDF5_SUFFIXES) and "/" not in name:
            # A task name rather than a dataset id.
            from bench.tasks import TaskError, get_task

            try:
                dataset_id = get_task(name).dataset_id
            except TaskError:
                dataset_id = name
        else:
            dataset_id = name
    source = str(path) if path is not None else dataset_id
    robomimic_file = _robomimic_path(source)
    if robomimic_file is not None:
        from bench.data.robomimic import load_robomimic

        ds = load_robomimic(robomimic_file, dataset_id=dataset_id if path is not None or not
                            source.endswith(HDF5_SUFFIXES) else None)
    elif source.endswith(HDF5_SUFFIXES):
        ds = load_d4rl_hdf5(source, dataset_id=None if path is None else dataset_id)
    else:
        ds = load_minari(source, obs_flatten=obs_flatten or _suite_obs_flatten(source))
    return ds.validate(obs_dim, act_dim)


def _suite_obs_flatten(dataset_id: str) -> Callable[[Any], np.ndarray] | None:
    """A suite's own observation rule for its Minari ids (kitchen keeps only `observation`), or None."""
    if dataset_id.startswith("D4RL/kitchen/"):
        from bench.data.kitchen import flatten_kitchen_obs

        return flatten_kitchen_obs
    return None
