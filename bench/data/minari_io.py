"""Minari datasets: where they live, the one writer every maker uses, the reader, and the listing.

Why: made data must be real Minari data (`minari.load_dataset(id)` opens it), written the same way whoever made
it, and read back into one `OfflineDataset`. `write_minari` is the only place that calls Minari's writer
(`create_dataset_from_buffers`, no jax); the D4RL look-alike maker (`bench.data.d4rl`) and the kitchen maker
(`bench.data.kitchen`) both call it. How a dataset was made goes into the metadata key `PROVENANCE_KEY` as JSON,
so any Minari reader passes it through untouched.

This module imports only `bench.data` from the project, so every suite may import it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError, OfflineDataset

# The metadata key under which `mbench data make` stores how a dataset was made (a JSON string).
PROVENANCE_KEY = "mbench_provenance"


def minari_root() -> Path:
    """The Minari datasets folder: `MINARI_DATASETS_PATH`, else Minari's own default."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env) if env else Path.home() / ".minari" / "datasets"


@contextlib.contextmanager
def datasets_path(root: str | os.PathLike) -> Iterator[None]:
    """Point Minari at `root` (its API reads MINARI_DATASETS_PATH) for the duration of the block."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


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


# ---- writing ------------------------------------------------------------------------------------------------------
def write_minari(root: str | os.PathLike, dataset_id: str, episodes: Sequence[dict[str, Any]], env_spec, *,
                 provenance: dict[str, Any], ref_min: float, ref_max: float, num_episodes_average_score: int,
                 algorithm_name: str, code_permalink: str, description: str,
                 requirements: Sequence[str] | None = None) -> Path:
    """Write `episodes` as the Minari dataset `dataset_id` under `root`; returns its folder.

    Each episode is a dict of `observations` (T+1 rows: an array, or a dict of arrays), `actions`, `rewards`,
    `terminations`, `truncations` (T rows) and optionally `seed` (its reset seed). Written through Minari's own
    writer into a hidden staging root, then moved into place, so readers never see a torn dataset; the
    namespace is created if it is new. `provenance` goes into the metadata key `PROVENANCE_KEY`.
    """
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    root = Path(root)
    staging = root / ".mbench-staging" / f"{os.getpid()}-{time.time_ns()}"
    buffers = [EpisodeBuffer(id=i, seed=e.get("seed"), observations=e["observations"],
                             actions=np.asarray(e["actions"]).astype(np.float32),
                             rewards=np.asarray(e["rewards"]).astype(np.float64),
                             terminations=np.asarray(e["terminations"]).astype(bool),
                             truncations=np.asarray(e["truncations"]).astype(bool))
               for i, e in enumerate(episodes)]
    with datasets_path(staging), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = minari.create_dataset_from_buffers(
            dataset_id, buffers, env=env_spec, eval_env=env_spec, algorithm_name=algorithm_name,
            author="modip-bench", author_email="n/a", code_permalink=code_permalink,
            ref_min_score=float(ref_min), ref_max_score=float(ref_max),
            num_episodes_average_score=int(num_episodes_average_score), description=description,
            requirements=None if requirements is None else list(requirements),
        )
        ds.storage.update_metadata({PROVENANCE_KEY: json.dumps(provenance)})
    target = root / dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging / dataset_id, target)
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # only when no other make is staging
    with datasets_path(root):
        ns = parse_dataset_id(dataset_id)[0]
        if ns is not None and ns not in list_local_namespaces():
            create_namespace(ns)
    return target


# ---- reading ------------------------------------------------------------------------------------------------------
def _minari_path(dataset_id: str) -> Path:
    return minari_root() / dataset_id


def _env_id(env_spec: Any) -> str | None:
    if not env_spec:
        return None
    try:
        return json.loads(env_spec).get("id") if isinstance(env_spec, str) else getattr(env_spec, "id", None)
    except ValueError:
        return None


def refs_source(metadata: dict[str, Any], provenance: dict[str, Any]) -> str:
    """Where a Minari dataset's refs came from: measured by `mbench data make`, or the dataset's metadata."""
    refs = provenance.get("refs") if provenance.get("source") == "made" else None
    if isinstance(refs, dict) and refs.get("ref_min_source") and refs.get("ref_max_source"):
        return (f"measured when the dataset was made (ref_min: {refs['ref_min_source']}, "
                f"{refs.get('ref_min_episodes')} episodes; ref_max: {refs['ref_max_source']}, "
                f"{refs.get('ref_max_episodes')} episodes)")
    return "dataset metadata (Minari ref_min_score / ref_max_score)"


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
    has_refs = ref_min is not None and ref_max is not None  # one ref alone normalises nothing
    return OfflineDataset(
        dataset_id=dataset_id,
        observations=np.concatenate(obs).astype(np.float32),
        actions=np.concatenate(act).astype(np.float32),
        rewards=np.concatenate(rew).astype(np.float32),
        next_observations=np.concatenate(nobs).astype(np.float32),
        terminals=np.concatenate(term),
        timeouts=np.concatenate(tout),
        provenance=provenance,
        ref_min=float(ref_min) if has_refs else None,
        ref_max=float(ref_max) if has_refs else None,
        ref_source=refs_source(metadata, provenance) if has_refs else None,
    )


def list_datasets(root: str | os.PathLike | None = None) -> list[str]:
    """One line per dataset found under the Minari root: id, size, refs, and whether mbench made it."""
    import minari

    root = Path(root) if root is not None else minari_root()
    if not root.exists():
        return []
    with datasets_path(root), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = minari.list_local_datasets()
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
