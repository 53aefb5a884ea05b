"""D4RL's MuJoCo datasets: the raw D4RL hdf5 reader, and the maker of look-alikes (`mbench data make ID`).

Why (the reader): D4RL's raw hdf5 files (`--set dataset_path=FILE`) become the same transition arrays as a Minari
id; timeouts stay apart from terminals. Such a file carries no score refs, and none are made up for it.

Why (the maker): the benchmark must run where the real datasets cannot be downloaded, and the demo task has no
upstream dataset at all. Following D4RL's recipe, one SAC behaviour agent is trained per env (cached and
resumable, see `behaviour.py`), and the four quality levels come from it:
- `expert`: the final agent;
- `medium`: the snapshot whose evaluated return is closest to one third of the expert's (D4RL's definition);
  the return it actually reached is recorded;
- `medium-replay`: the agent's replay buffer up to that snapshot;
- `medium-expert`: the union of medium and expert.
The refs are measured here: ref_min is the random policy's mean return, ref_max the expert's. The result is
written by the one Minari writer (`bench.data.minari_io.write_minari`), so `minari.load_dataset(id)` opens it,
and how it was made goes into the metadata key `mbench_provenance` as JSON.
The dataset seed is a make argument, fixed across the run seeds that later use the data.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.data import DatasetError, OfflineDataset
from bench.data.minari_io import PROVENANCE_KEY, minari_root, write_minari
from results.atomic import atomic_write
from results.locks import exclusive

if TYPE_CHECKING:  # behaviour imports torch: loaded by the maker only, so reading data needs no torch
    from bench.data.behaviour import SACConfig

HDF5_SUFFIXES = (".hdf5", ".h5")


# ---- the raw D4RL hdf5 reader -------------------------------------------------------------------------------------
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
        if not len(f.keys()):
            raise DatasetError(_no_transitions(path, "the file holds no keys"))
        obs = _read_key(f, "observations", path)
        act = _read_key(f, "actions", path)
        rew = _read_key(f, "rewards", path)
        term = _read_key(f, "terminals", path)
        tout = _read_key(f, "timeouts", path)
        nobs = _read_key(f, "next_observations", path, required=False)
        if "metadata" in f and not isinstance(f["metadata"], h5py.Group):
            raise DatasetError(f"D4RL hdf5 '{path}': key 'metadata' is a dataset, not a group of keys "
                               "(ref_min_score, ...); remove it, or store it as a group")
        meta = {k: _scalar(f["metadata"][k]) for k in f["metadata"]} if "metadata" in f else {}
    n = obs.shape[0] if obs.ndim else 0
    if n == 0:
        raise DatasetError(_no_transitions(path, f"its 'observations' has shape {obs.shape}"))
    for name, arr in (("observations", obs), ("actions", act), ("rewards", rew), ("terminals", term),
                      ("timeouts", tout), ("next_observations", nobs)):
        if arr is None:
            continue
        if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise DatasetError(f"D4RL hdf5 '{path}': key '{name}' holds {arr.dtype} values, not numbers")
        if not arr.ndim or arr.shape[0] != n:
            raise DatasetError(f"D4RL hdf5 '{path}': key '{name}' has {arr.shape[0] if arr.ndim else 0} rows, "
                               f"observations has {n}")
        if name in ("rewards", "terminals", "timeouts") and arr.size != n:
            raise DatasetError(f"D4RL hdf5 '{path}': key '{name}' has shape {arr.shape}, but holds one value per "
                               f"row: expected ({n},)")
    if nobs is not None and nobs.shape != obs.shape:
        raise DatasetError(f"D4RL hdf5 '{path}': key 'next_observations' has shape {nobs.shape}, "
                           f"observations has {obs.shape}")
    obs = obs.reshape(n, -1).astype(np.float32)
    act = act.reshape(n, -1).astype(np.float32)
    rew = rew.reshape(n).astype(np.float32)
    term = term.reshape(n).astype(bool)
    tout = tout.reshape(n).astype(bool) & ~term
    if not (term[-1] or tout[-1]):
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
        # A raw D4RL file carries no score refs (D4RL keeps them in d4rl/infos.py): none are made up here.
        ref_min=None, ref_max=None, ref_source=None, source_path=path,
    )


def _no_transitions(path: str, why: str) -> str:
    return (f"D4RL hdf5 '{path}' has no transitions ({why}): pass a D4RL file that holds data "
            f"(re-download or re-export it)")


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


# ---- the look-alike maker -----------------------------------------------------------------------------------------
# env name in a dataset id -> (gymnasium id, episode limit). The demo env is cut to 200-step episodes.
ENVS: dict[str, tuple[str, int]] = {
    "hopper": ("Hopper-v5", 1000),
    "walker2d": ("Walker2d-v5", 1000),
    "halfcheetah": ("HalfCheetah-v5", 1000),
    "inverted-double-pendulum": ("InvertedDoublePendulum-v5", 200),
}
QUALITIES = ("medium", "medium-replay", "expert", "medium-expert")
MEDIUM_FRACTION = 1.0 / 3.0  # D4RL: medium is a policy at about one third of the expert's return

# Default budgets per env. agent_steps: SAC env steps; dataset_size: transitions collected for medium and expert
# (D4RL uses 1M; ours are smaller so a make finishes on a CPU; medium-expert has twice this, medium-replay has
# whatever the replay held). Expert returns reached are in BUDGETS.md.
_MUJOCO_BUDGET = {"agent_steps": 300_000, "checkpoint_every": 10_000, "dataset_size": 200_000, "hidden": 256,
                  "start_steps": 5_000, "eval_episodes": 5, "ref_episodes": 10}
DEFAULT_BUDGETS: dict[str, dict[str, Any]] = {
    "hopper": dict(_MUJOCO_BUDGET),
    "walker2d": dict(_MUJOCO_BUDGET),
    "halfcheetah": dict(_MUJOCO_BUDGET),
    # The demo: small nets and lr 1e-3 (with 3e-4 the agent was still climbing at 20k steps), made in about
    # 2 minutes on a quiet CPU core.
    "inverted-double-pendulum": {"agent_steps": 20_000, "checkpoint_every": 1_000, "dataset_size": 20_000,
                                 "hidden": 64, "lr": 1e-3, "start_steps": 1_000, "eval_episodes": 10,
                                 "ref_episodes": 20},
}
RANDOM_REF_EPISODES = 100  # as D4RL and Minari
_ID_RE = re.compile(r"^(?:(?P<ns>.+)/)?(?P<env>[a-z0-9-]+)/(?P<quality>[a-z-]+)-v(?P<version>\d+)$")


@dataclasses.dataclass
class MakePlan:
    dataset_id: str
    env_name: str
    env_id: str
    max_episode_steps: int
    quality: str


def parse_id(dataset_id: str) -> MakePlan:
    m = _ID_RE.match(dataset_id)
    if not m or m["env"] not in ENVS or m["quality"] not in QUALITIES:
        raise DatasetError(f"cannot make '{dataset_id}': expected '<namespace>/<env>/<quality>-v<N>' with env in "
                           f"{sorted(ENVS)} and quality in {list(QUALITIES)}")
    env_id, steps = ENVS[m["env"]]
    return MakePlan(dataset_id, m["env"], env_id, steps, m["quality"])


def _env_factory(plan: MakePlan):
    import gymnasium as gym

    return lambda: gym.make(plan.env_id, max_episode_steps=plan.max_episode_steps)


def collect(make_env, policy, n_steps: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Roll `policy` for exactly n_steps env steps; the last episode, cut by the budget, ends in a truncation."""
    env = make_env()
    episodes, ep = [], None
    obs, _ = env.reset(seed=seed)
    ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
    for t in range(n_steps):
        act = policy(obs)
        obs, rew, terminated, truncated, _ = env.step(act)
        truncated = truncated or t == n_steps - 1
        for k, v in (("observations", obs), ("actions", act), ("rewards", rew), ("terminations", terminated),
                     ("truncations", truncated and not terminated)):
            ep[k].append(v)
        if terminated or truncated:
            episodes.append({k: np.asarray(v) for k, v in ep.items()})
            if t < n_steps - 1:
                obs, _ = env.reset(seed=seed + len(episodes))
                ep = {"observations": [obs], "actions": [], "rewards": [], "terminations": [], "truncations": []}
    env.close()
    return episodes


def episodes_from_replay(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Split a replay prefix into episodes; an episode cut by the prefix ends in a truncation."""
    n = len(arrays["rewards"])
    term, trunc = arrays["terminations"].copy(), arrays["truncations"].copy()
    if n and not (term[-1] or trunc[-1]):
        trunc[-1] = True
    ends = np.flatnonzero(term | trunc)
    out, start = [], 0
    for e in ends:
        sl = slice(start, e + 1)
        out.append({"observations": np.concatenate([arrays["observations"][sl], arrays["next_observations"][e:e + 1]]),
                    "actions": arrays["actions"][sl], "rewards": arrays["rewards"][sl],
                    "terminations": term[sl], "truncations": trunc[sl] & ~term[sl]})
        start = e + 1
    return out


def _return_stats(episodes: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    rets = np.array([float(np.sum(e["rewards"])) for e in episodes])
    return {"episodes": len(episodes), "transitions": int(sum(len(e["rewards"]) for e in episodes)),
            "mean_return": float(rets.mean()), "std_return": float(rets.std()),
            "min_return": float(rets.min()), "max_return": float(rets.max())}


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("gymnasium", "mujoco", "torch", "minari", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _budget(env_name: str, agent_steps: int | None, dataset_size: int | None) -> dict[str, Any]:
    b = dict(DEFAULT_BUDGETS[env_name])
    if agent_steps is not None:
        b["agent_steps"] = int(agent_steps)
    if dataset_size is not None:
        b["dataset_size"] = int(dataset_size)
    # Tiny budgets (tests) still get several snapshots and some learning steps.
    b["checkpoint_every"] = max(1, min(b["checkpoint_every"], b["agent_steps"] // 5))
    b["start_steps"] = max(1, min(b["start_steps"], b["agent_steps"] // 4))
    return b


def _agent_dir(root: Path, plan: MakePlan, cfg: SACConfig, seed: int) -> Path:
    key = json.dumps({"cfg": dataclasses.asdict(cfg), "seed": seed, "env": plan.env_id,
                      "max_steps": plan.max_episode_steps}, sort_keys=True)
    # Hidden, so that Minari's listing never mistakes it for a namespace.
    return root / ".mbench-agents" / f"{plan.env_id}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _cached_collect(workdir: Path, name: str, make_env, policy, n_steps: int, seed: int):
    path = workdir / "collected" / f"{name}-{n_steps}-seed{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            lengths = z["lengths"]
            flat = {k: z[k] for k in z.files if k != "lengths"}
        episodes, a = [], 0
        for i, n in enumerate(lengths):
            n = int(n)
            episodes.append({"observations": flat["observations"][a + i:a + i + n + 1],
                             **{k: flat[k][a:a + n] for k in ("actions", "rewards", "terminations", "truncations")}})
            a += n
        return episodes
    episodes = collect(make_env, policy, n_steps, seed)
    atomic_write(path, lambda handle: np.savez(
        handle, lengths=np.array([len(e["rewards"]) for e in episodes]),
        **{k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]}))
    return episodes


def make_dataset(dataset_id: str, *, root: str | os.PathLike | None = None, agent_steps: int | None = None,
                 dataset_size: int | None = None, seed: int = 0, progress: bool = True,
                 force: bool = False) -> dict[str, Any]:
    """Make `dataset_id` (see the module docstring) under `root` (default: MINARI_DATASETS_PATH) and summarise it."""
    import torch

    from bench.data.behaviour import BehaviourTrainer, SACConfig, evaluate  # lazy: torch

    t0 = time.time()
    plan = parse_id(dataset_id)
    root = Path(root) if root is not None else minari_root()
    target = root / plan.dataset_id
    if (target / "data").exists() and not force:
        meta = json.loads((target / "data" / "metadata.json").read_text())
        prov = json.loads(meta.get(PROVENANCE_KEY, "{}"))
        return {"dataset_id": dataset_id, "path": str(target), "status": "exists", "ref_min": meta.get("ref_min_score"),
                "ref_max": meta.get("ref_max_score"), "collected": prov.get("collected"), "wall_s": time.time() - t0}

    budget = _budget(plan.env_name, agent_steps, dataset_size)
    cfg = SACConfig(hidden=budget["hidden"], lr=budget.get("lr", SACConfig.lr), start_steps=budget["start_steps"],
                    checkpoint_every=budget["checkpoint_every"], eval_episodes=budget["eval_episodes"])
    make_env = _env_factory(plan)
    workdir = _agent_dir(root, plan, cfg, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    with exclusive(workdir / "lock"):
        # Two makes of the same env (say medium and expert at once) train one agent: the second waits.
        trainer = BehaviourTrainer(make_env, workdir, cfg, seed=seed)
        t_train = time.time()
        trainer.train(budget["agent_steps"], progress=progress)
        train_s = time.time() - t_train
    snaps = [c for c in trainer.checkpoints if c["step"] <= budget["agent_steps"]]
    expert_ckpt = snaps[-1]
    env = make_env()
    env_spec = env.spec
    env.action_space.seed(seed)
    ref_min = evaluate(env, lambda o: env.action_space.sample(), RANDOM_REF_EPISODES, seed=2_000_000 + seed)
    # The expert's return, measured on more episodes than a snapshot's eval, is both ref_max and the yardstick
    # for medium: the snapshot closest to a third of it (ties: the earlier one).
    ref_max = evaluate(env, trainer.policy_fn(expert_ckpt), budget["ref_episodes"], seed=3_000_000 + seed)
    env.close()
    target_return = MEDIUM_FRACTION * ref_max
    medium_ckpt = min(snaps[:-1] or snaps, key=lambda c: (abs(c["return"] - target_return), c["step"]))

    size = budget["dataset_size"]
    torch.manual_seed(seed)
    q = plan.quality
    parts: dict[str, Any] = {}
    if q in ("medium", "medium-expert"):
        parts["medium"] = _cached_collect(workdir, f"medium-step{medium_ckpt['step']}", make_env,
                                          trainer.policy_fn(medium_ckpt), size, seed=4_000_000 + seed)
    if q in ("expert", "medium-expert"):
        parts["expert"] = _cached_collect(workdir, f"expert-step{expert_ckpt['step']}", make_env,
                                          trainer.policy_fn(expert_ckpt), size, seed=5_000_000 + seed)
    if q == "medium-replay":
        parts["medium-replay"] = episodes_from_replay(trainer.replay.arrays(stop=medium_ckpt["step"]))
    episodes = [e for part in parts.values() for e in part]
    if not episodes:
        raise DatasetError(f"'{dataset_id}': no data collected (the medium snapshot is at step 0 and "
                           f"medium-replay is empty); raise --agent-steps")

    collected = _return_stats(episodes)
    provenance = {
        "source": "made", "made_by": "mbench data make", "dataset_id": dataset_id, "quality": q,
        "env_id": plan.env_id, "max_episode_steps": plan.max_episode_steps, "dataset_seed": seed,
        "agent": {"algo": "sac", **dataclasses.asdict(cfg), "steps": trainer.step, "seed": seed,
                  "train_wall_s": round(train_s, 1), "workdir_name": workdir.name},
        "budget": budget,
        "checkpoints": [{"step": c["step"], "return": c["return"]} for c in snaps],
        "quality_rule": "medium: snapshot closest to 1/3 of the expert's return; expert: final snapshot; "
                        "medium-replay: replay up to the medium snapshot; medium-expert: medium + expert",
        "expert_checkpoint": {"step": expert_ckpt["step"], "return": expert_ckpt["return"]},
        "medium_checkpoint": {"step": medium_ckpt["step"], "return": medium_ckpt["return"],
                              "target_return": target_return},
        "checkpoint_used": {k: {"step": c["step"], "return": c["return"]} for k, c in
                            (("medium", medium_ckpt), ("expert", expert_ckpt)) if k in parts or
                            (k == "medium" and "medium-replay" in parts)},
        "collected": collected,
        "collected_parts": {k: _return_stats(v) for k, v in parts.items()},
        "refs": {"ref_min": ref_min, "ref_min_source": "uniform random policy",
                 "ref_min_episodes": RANDOM_REF_EPISODES, "ref_max": ref_max,
                 "ref_max_source": "final (expert) snapshot, stochastic policy",
                 "ref_max_episodes": budget["ref_episodes"]},
        "versions": _versions(),
    }
    path = write_minari(
        root, plan.dataset_id, episodes, env_spec, provenance=provenance, ref_min=ref_min, ref_max=ref_max,
        num_episodes_average_score=budget["ref_episodes"], algorithm_name="mbench-sac-behaviour",
        code_permalink="modip-bench: bench/data/d4rl.py",
        description=f"Look-alike of D4RL {plan.quality} on {plan.env_id} made offline by `mbench data make`.",
        requirements=[f"{k}=={v}" for k, v in provenance["versions"].items() if k in ("gymnasium", "mujoco")])
    return {"dataset_id": dataset_id, "path": str(path), "status": "made", "env_id": plan.env_id,
            "agent_steps": trainer.step, "ref_min": ref_min, "ref_max": ref_max,
            "medium_checkpoint": provenance["medium_checkpoint"], "expert_checkpoint": provenance["expert_checkpoint"],
            "collected": collected, "wall_s": round(time.time() - t0, 1), "train_wall_s": round(train_s, 1)}
