"""`mbench data make ID`: make a look-alike D4RL dataset offline and save it as a real Minari dataset.

Why: the benchmark must run where the real datasets cannot be downloaded, and the demo task has no upstream
dataset at all. Following D4RL's recipe, one SAC behaviour agent is trained per env (cached and resumable, see
`behaviour.py`), and the four quality levels come from it:
- `expert`: the final agent;
- `medium`: the snapshot whose evaluated return is closest to one third of the expert's (D4RL's definition);
  the return it actually reached is recorded;
- `medium-replay`: the agent's replay buffer up to that snapshot;
- `medium-expert`: the union of medium and expert.
The refs are measured here: ref_min is the random policy's mean return, ref_max the expert's. The result is
written through Minari's own writer (`create_dataset_from_buffers`, no jax), so `minari.load_dataset(id)`
opens it, and how it was made goes into the metadata key `mbench_provenance` as JSON.
The dataset seed is a make argument, fixed across the run seeds that later use the data.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import DatasetError
from bench.data.behaviour import BehaviourTrainer, SACConfig, evaluate
from bench.data.loaders import PROVENANCE_KEY, list_datasets, minari_root

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


@contextlib.contextmanager
def _datasets_path(root: Path):
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


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
    from importlib.metadata import PackageNotFoundError, version

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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, lengths=np.array([len(e["rewards"]) for e in episodes]),
             **{k: np.concatenate([e[k] for e in episodes]) for k in episodes[0]})
    os.replace(tmp, path)
    return episodes


def _write_minari(root: Path, plan: MakePlan, episodes, env_spec, ref_min: float, ref_max: float,
                  provenance: dict[str, Any]) -> Path:
    """Write through Minari's writer into a hidden staging root, then move into place (no torn datasets)."""
    import minari
    from minari.data_collector.episode_buffer import EpisodeBuffer
    from minari.dataset.minari_dataset import parse_dataset_id
    from minari.namespace import create_namespace, list_local_namespaces

    staging = root / ".mbench-staging" / f"{os.getpid()}-{time.time_ns()}"
    buffers = [EpisodeBuffer(id=i, observations=e["observations"], actions=e["actions"].astype(np.float32),
                             rewards=e["rewards"].astype(np.float64), terminations=e["terminations"].astype(bool),
                             truncations=e["truncations"].astype(bool))
               for i, e in enumerate(episodes)]
    with _datasets_path(staging), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = minari.create_dataset_from_buffers(
            plan.dataset_id, buffers, env=env_spec, eval_env=env_spec,
            algorithm_name="mbench-sac-behaviour", author="modip-bench", author_email="n/a",
            code_permalink="modip-bench: bench/data/make.py", ref_min_score=float(ref_min),
            ref_max_score=float(ref_max), num_episodes_average_score=int(provenance["refs"]["ref_max_episodes"]),
            description=f"Look-alike of D4RL {plan.quality} on {plan.env_id} made offline by `mbench data make`.",
            requirements=[f"{k}=={v}" for k, v in provenance["versions"].items() if k in ("gymnasium", "mujoco")],
        )
        ds.storage.update_metadata({PROVENANCE_KEY: json.dumps(provenance)})
    target = root / plan.dataset_id
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging / plan.dataset_id, target)
    shutil.rmtree(staging, ignore_errors=True)
    with contextlib.suppress(OSError):
        staging.parent.rmdir()  # only when no other make is staging
    with _datasets_path(root):
        ns = parse_dataset_id(plan.dataset_id)[0]
        if ns is not None and ns not in list_local_namespaces():
            create_namespace(ns)
    return target


def make_dataset(dataset_id: str, *, root: str | os.PathLike | None = None, agent_steps: int | None = None,
                 dataset_size: int | None = None, seed: int = 0, progress: bool = True,
                 force: bool = False) -> dict[str, Any]:
    """Make `dataset_id` (see the module docstring) under `root` (default: MINARI_DATASETS_PATH) and summarise it."""
    import torch

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
    with open(workdir / "lock", "w") as lock:
        # Two makes of the same env (say medium and expert at once) train one agent: the second waits.
        fcntl.flock(lock, fcntl.LOCK_EX)
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
    path = _write_minari(root, plan, episodes, env_spec, ref_min, ref_max, provenance)
    return {"dataset_id": dataset_id, "path": str(path), "status": "made", "env_id": plan.env_id,
            "agent_steps": trainer.step, "ref_min": ref_min, "ref_max": ref_max,
            "medium_checkpoint": provenance["medium_checkpoint"], "expert_checkpoint": provenance["expert_checkpoint"],
            "collected": collected, "wall_s": round(time.time() - t0, 1), "train_wall_s": round(train_s, 1)}


def _cmd_make(args) -> int:
    if args.id.startswith("robomimic/"):
        from bench.data.robomimic import make_robomimic_dataset

        summary = make_robomimic_dataset(args.id, root=args.root, n_demos=args.size, seed=args.seed,
                                         progress=not args.no_progress, force=args.force)
        print(json.dumps(summary, indent=1, default=str))
        return 0
    if args.id.startswith("D4RL/kitchen/"):
        from bench.data.kitchen import make_kitchen_dataset

        summary = make_kitchen_dataset(args.id, root=args.root, n_episodes=args.size, seed=args.seed,
                                       progress=not args.no_progress, force=args.force)
        print(json.dumps(summary, indent=1, default=str))
        return 0
    summary = make_dataset(args.id, root=args.root, agent_steps=args.agent_steps, dataset_size=args.size,
                           seed=args.seed, progress=not args.no_progress, force=args.force)
    print(json.dumps(summary, indent=1))
    return 0


def _cmd_list(args) -> int:
    lines = list_datasets(args.root)
    print("\n".join(lines) if lines else f"no datasets under {Path(args.root) if args.root else minari_root()}")
    return 0


def add_cli(subparsers) -> None:
    """Add `data make` and `data list` to an argparse subparsers object; each leaf sets `func(args)`."""
    data = subparsers.add_parser("data", help="make or list offline datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    mk = dsub.add_parser("make", help="make a look-alike dataset offline, saved in the Minari format")
    mk.add_argument("id", help="dataset id, e.g. mujoco/hopper/medium-v0 or mbench/inverted-double-pendulum/medium-v0")
    mk.add_argument("--agent-steps", type=int, default=None, help="SAC env steps (default: DEFAULT_BUDGETS)")
    mk.add_argument("--size", type=int, default=None, help="transitions per collected part (default: DEFAULT_BUDGETS); "
                    "robomimic and kitchen ids: number of demos")
    mk.add_argument("--root", default=None, help="datasets folder (default: MINARI_DATASETS_PATH; robomimic ids: "
                    "ROBOMIMIC_DATASETS_PATH)")
    mk.add_argument("--seed", type=int, default=0, help="dataset seed (fixed across run seeds)")
    mk.add_argument("--force", action="store_true", help="remake even if the dataset exists")
    mk.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    mk.set_defaults(func=_cmd_make)
    ls = dsub.add_parser("list", help="list datasets found under the Minari root")
    ls.add_argument("--root", default=None, help="Minari datasets folder (default: MINARI_DATASETS_PATH)")
    ls.set_defaults(func=_cmd_list)
