"""A run's parts from its config: the task, its spaces, the data, the normaliser, the method and its buffer.

Why: the runner, `mbench time` and the benchmarks that drive a method outside the runner must build it the same
way, from the typed RunConfig alone (the method from `cfg.section` and a MethodContext, never by hand). One
function, `assemble(cfg, data=...)`, does it for every caller; `data` says where the offline data comes from:

  "dataset"    the run's own (what `Run.setup` does after seeding): the task bound to its dataset (`bind_task`),
               one env for the spaces, `load_dataset`, the task's score refs from the dataset where the task has
               none, `Normalizer.fit` on the observations, the method, then the ReplayBuffer with the offline data
               (rewards times `reward_scale`) attached to it;
  "synthetic"  no env and no dataset (`mbench time` on a bare GPU machine): the spaces from KNOWN_SPACES (else
               the env, else `obs_dim`/`act_dim`, which also override the table), a unit normaliser, and a buffer
               of random transitions with every extra the method asks for, so that `update` components can sample;
  "none"       online from scratch: the spaces as for "synthetic", a unit normaliser, an empty buffer.

RNG: assemble seeds nothing; the caller seeds first (the runner: `seed_everything(cfg.seed)`, timing:
`torch.manual_seed`). The method's initialisation draws from torch's global RNG, after any env is built and the
dataset loaded and before the buffer is made, in the runner's order, so a run's numbers do not move. The buffer
draws from its own generator (seeded with cfg.seed), the synthetic transitions from another.
Nothing here imports gymnasium, MuJoCo or Minari at module level.
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch

from bench.config.run import RunConfig
from bench.data import DatasetError, OfflineDataset
from bench.data.loaders import bind_task, load_dataset
from bench.tasks import TaskSpec, get_task
from bench.tasks.termination import rule_for
from methods.base import Method, MethodContext, TaskSpaces
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.registry import get_method_class

Data = Literal["dataset", "synthetic", "none"]

# env id -> (obs_dim, act_dim, act_low, act_high). Read off the gymnasium envs (tests check the table against
# the env where gymnasium is installed). FrankaKitchen-v1's obs is its 59-dim `observation` key.
KNOWN_SPACES: dict[str, tuple[int, int, float, float]] = {
    "InvertedDoublePendulum-v5": (9, 1, -1.0, 1.0),
    "Hopper-v5": (11, 3, -1.0, 1.0),
    "Walker2d-v5": (17, 6, -1.0, 1.0),
    "HalfCheetah-v5": (17, 6, -1.0, 1.0),
    "FrankaKitchen-v1": (59, 9, -1.0, 1.0),
}


class SpacesUnknown(ValueError):
    pass


@dataclasses.dataclass
class RunParts:
    """What a run (or a timing subject, or a benchmark) is built from; `assemble` makes it."""

    task: TaskSpec  # bound to the dataset, with the dataset's score refs where the task has none
    spaces: TaskSpaces
    normalizer: Normalizer
    method: Method  # built from cfg.section, with `buffer` attached
    buffer: ReplayBuffer
    dataset: OfflineDataset | None = None  # data="dataset" only
    dataset_hash: str = ""  # the dataset's content hash; "" without one

    @property
    def act_low(self) -> np.ndarray:
        return self.spaces.act_low

    @property
    def act_high(self) -> np.ndarray:
        return self.spaces.act_high


def task_spaces(task_name: str, obs_dim: int | None = None, act_dim: int | None = None,
                reward_scale: float = 1.0) -> TaskSpaces:
    """TaskSpaces for `task_name` without its dataset: from KNOWN_SPACES, else from the env if it can be built,
    else from the explicit obs_dim/act_dim (which also override the table)."""
    task = get_task(task_name)
    if obs_dim is not None and act_dim is not None:
        o, a, lo, hi = int(obs_dim), int(act_dim), np.full(int(act_dim), -1.0), np.full(int(act_dim), 1.0)
    elif task.env_id in KNOWN_SPACES:
        o, a, lo_s, hi_s = KNOWN_SPACES[task.env_id]
        lo, hi = np.full(a, lo_s), np.full(a, hi_s)
    else:
        try:
            env = task.make_env()
        except ImportError as e:
            raise SpacesUnknown(f"task '{task_name}' (env {task.env_id}) is not in the timing table and its env "
                                f"cannot be built here ({e}); pass --obs-dim and --act-dim") from None
        o = int(np.prod(env.observation_space.shape))
        a = int(np.prod(env.action_space.shape))
        lo = np.asarray(env.action_space.low, np.float32).reshape(-1)
        hi = np.asarray(env.action_space.high, np.float32).reshape(-1)
        env.close()
    return TaskSpaces(obs_dim=o, act_dim=a, act_low=np.asarray(lo, np.float32), act_high=np.asarray(hi, np.float32),
                      max_episode_steps=task.max_episode_steps, gamma=task.gamma, chunk=task.chunk,
                      reward_scale=float(reward_scale), terminal_fn=rule_for(task.env_id))


def unit_normalizer(spaces: TaskSpaces) -> Normalizer:
    """Identity statistics: observations as they are, actions mapped from the env's box to [-1, 1]."""
    return Normalizer(np.zeros(spaces.obs_dim), np.ones(spaces.obs_dim), spaces.act_low, spaces.act_high)


def synthetic_buffer(spaces: TaskSpaces, extras: dict[str, tuple[int, ...]] | None = None, n_offline: int = 4096,
                     n_online: int = 512, episode_len: int = 128, seed: int = 0) -> ReplayBuffer:
    """Random transitions in episodes of `episode_len` (timeouts at the ends, no terminals), offline then
    online, every extra filled (so `require=<extra>` sampling works)."""
    rng = np.random.default_rng(seed)
    extras = dict(extras or {})
    buf = ReplayBuffer(spaces.obs_dim, spaces.act_dim, extras=extras, seed=seed, capacity=n_offline + n_online + 8)

    def block(n: int) -> dict[str, np.ndarray]:
        obs = rng.standard_normal((n + 1, spaces.obs_dim)).astype(np.float32)
        act = rng.uniform(spaces.act_low, spaces.act_high, size=(n, spaces.act_dim)).astype(np.float32)
        timeouts = (np.arange(n) % episode_len) == episode_len - 1
        timeouts[-1] = True
        return {"obs": obs[:-1], "action": act, "reward": rng.standard_normal(n).astype(np.float32),
                "next_obs": obs[1:], "terminal": np.zeros(n, bool), "timeout": timeouts,
                **{k: rng.standard_normal((n, *shape)).astype(np.float32) for k, shape in extras.items()}}

    off = block(n_offline)
    buf.add_offline(off["obs"], off["action"], off["reward"], off["next_obs"], off["terminal"], off["timeout"],
                    extras={k: off[k] for k in extras})
    on = block(n_online)
    for i in range(n_online):
        buf.add({k: v[i] for k, v in on.items()})
    return buf


def _with_dataset(cfg: RunConfig, task: TaskSpec) -> tuple[TaskSpec, TaskSpaces, OfflineDataset]:
    """The task bound to the run's dataset (refs included), its spaces from one env, and the dataset."""
    source = cfg.dataset_path or task.dataset_id
    task = bind_task(task, source)  # e.g. robomimic: the env comes from the dataset's env_args
    env = task.make_env()
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    act_low = np.asarray(env.action_space.low, np.float32).reshape(-1)
    act_high = np.asarray(env.action_space.high, np.float32).reshape(-1)
    env.close()
    dataset = load_dataset(source, obs_dim=obs_dim, act_dim=act_dim)
    if task.ref_min is None:
        if dataset.ref_min is None or dataset.ref_max is None:
            raise DatasetError(f"task '{task.name}' takes its score refs (random and expert returns) from "
                               f"its dataset's metadata, and {source} has none, so no normalized_score could "
                               f"be computed; use a dataset made by `mbench data make {task.dataset_id}` "
                               f"(it measures them), or a task with fixed refs")
        task = task.with_refs(dataset.ref_min, dataset.ref_max, dataset.ref_source or "dataset metadata")
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=act_low, act_high=act_high,
                        max_episode_steps=task.max_episode_steps, gamma=task.gamma, chunk=task.chunk,
                        reward_scale=cfg.reward_scale, terminal_fn=rule_for(task.env_id))
    return task, spaces, dataset


def assemble(cfg: RunConfig, data: Data = "dataset", *, obs_dim: int | None = None,
             act_dim: int | None = None) -> RunParts:
    """The parts of a run of `cfg` (module docstring): the method on cfg.device with seed cfg.seed, its buffer
    attached. `obs_dim`/`act_dim` set the spaces of data="synthetic" or "none" (both or neither)."""
    if data not in ("dataset", "synthetic", "none"):
        raise ValueError(f"data must be 'dataset', 'synthetic' or 'none', got {data!r}")
    if (obs_dim is None) != (act_dim is None):
        raise ValueError("obs_dim and act_dim go together (mbench time: --obs-dim with --act-dim)")
    if data == "dataset" and obs_dim is not None:
        raise ValueError("obs_dim/act_dim apply to data='synthetic' or 'none'; a dataset's come from its env")
    task = get_task(cfg.task)
    dataset = None
    if data == "dataset":
        task, spaces, dataset = _with_dataset(cfg, task)
        normalizer = Normalizer.fit(dataset.observations, spaces.act_low, spaces.act_high)
    else:
        spaces = task_spaces(cfg.task, obs_dim, act_dim, reward_scale=cfg.reward_scale)
        normalizer = unit_normalizer(spaces)
    method = get_method_class(cfg.method)(cfg.section, MethodContext(
        spaces=spaces, normalizer=normalizer, dp_cfg=cfg.dp, device=torch.device(cfg.device), seed=cfg.seed,
        common_start=cfg.common_start, compile_train=cfg.compile_train))
    extras = method.buffer_extras()
    if dataset is not None:
        buffer = ReplayBuffer(spaces.obs_dim, spaces.act_dim, extras=extras, seed=cfg.seed,
                              capacity=len(dataset) + 1024)
        d = dataset
        buffer.add_offline(d.observations, d.actions, d.rewards * cfg.reward_scale, d.next_observations,
                           d.terminals, d.timeouts)
    elif data == "synthetic":
        buffer = synthetic_buffer(spaces, extras, seed=cfg.seed)
    else:
        buffer = ReplayBuffer(spaces.obs_dim, spaces.act_dim, extras=extras, seed=cfg.seed, capacity=1024)
    method.attach_buffer(buffer)
    return RunParts(task=task, spaces=spaces, normalizer=normalizer, method=method, buffer=buffer, dataset=dataset,
                    dataset_hash=dataset.content_hash() if dataset is not None else "")
