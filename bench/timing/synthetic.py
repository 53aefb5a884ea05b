"""Synthetic inputs for timing: a method built from a task's spaces alone, with no env and no dataset.

Why: `mbench time` must run on a bare GPU machine (no gymnasium, MuJoCo or Minari, no datasets). A method's
inference cost depends on its config and the task's dimensions, not on what its weights learned, so a fresh
model (or a checkpoint) fed random inputs measures the same latency. So this module builds
  - TaskSpaces from a small table of known obs/act dims per env id (the env itself only as a fallback, when
    gymnasium happens to be importable);
  - a Normalizer with unit statistics;
  - a ReplayBuffer of random transitions (offline and online, with every extra the method asks for), so that
    `update` components can sample batches.
Nothing here imports gymnasium, MuJoCo or Minari at module level.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config.run import RunConfig
from methods.base import Method, MethodContext, TaskSpaces, get_method_class
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer

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


def task_spaces(task_name: str, obs_dim: int | None = None, act_dim: int | None = None,
                reward_scale: float = 1.0) -> TaskSpaces:
    """TaskSpaces for `task_name`: from KNOWN_SPACES, else from the env if it can be built, else from the
    explicit obs_dim/act_dim (which also override the table)."""
    from bench.tasks import get_task

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
                      reward_scale=float(reward_scale))


def unit_normalizer(spaces: TaskSpaces) -> Normalizer:
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


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


@dataclasses.dataclass
class TimingSubject:
    """A method ready to be timed, and what it was built from."""

    method: Method
    cfg: RunConfig
    spaces: TaskSpaces
    checkpoint: str = ""
    checkpoint_kind: str = ""  # "" (fresh model) | "run" (a run's last.pt) | "pretrained_dp"


def load_checkpoint_into(method: Method, path: str | Path) -> str:
    """Load a run checkpoint (`last.pt`: method state + normalizer) or a cached pretrained-DP file into
    `method`; returns which kind it was. Loads with weights_only=True like the runner."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    try:
        if isinstance(st, dict) and "method" in st and "modules" in st["method"]:
            method.load_state_dict(st["method"])
            if "normalizer" in st:
                method.normalizer.load_state_dict(st["normalizer"])
            return "run"
        if isinstance(st, dict) and "dp_state" in st:
            method.load_pretrained_dp(st["dp_state"])
            return "pretrained_dp"
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"checkpoint {path} does not fit this {method.name} config ({first}); pass the run's "
                         "--set overrides") from None
    raise ValueError(f"checkpoint {path} is neither a run checkpoint nor a pretrained DP")


def build_subject(method: str, task: str, device: str = "cpu", overrides: list[str] | dict | None = None,
                  checkpoint: str | None = None, seed: int = 0, obs_dim: int | None = None,
                  act_dim: int | None = None, base: dict[str, Any] | None = None) -> TimingSubject:
    """A method built from its resolved config and the task's spaces, a unit normaliser and a synthetic buffer."""
    from bench.config.layers import resolve_config

    cfg = resolve_config(method, task, seed, overrides or [], sweep=base).model_copy(update={"device": str(device)})
    spaces = task_spaces(task, obs_dim, act_dim, reward_scale=cfg.reward_scale)
    torch.manual_seed(seed)
    m = get_method_class(method)(cfg.section, MethodContext(
        spaces=spaces, normalizer=unit_normalizer(spaces), dp_cfg=cfg.dp, device=torch.device(device), seed=seed,
        common_start=cfg.common_start))
    m.attach_buffer(synthetic_buffer(spaces, m.buffer_extras(), seed=seed))
    kind = ""
    if checkpoint:
        kind = load_checkpoint_into(m, checkpoint)
    return TimingSubject(method=m, cfg=cfg, spaces=spaces, checkpoint=str(checkpoint or ""), checkpoint_kind=kind)


def timing_run_id(subject: TimingSubject, compile_key: str) -> str:
    """hash(method, task, device, resolved config, checkpoint content, compile setting): the timing "run"."""
    keyed = {"kind": "timing", "cfg": {k: v for k, v in subject.cfg.to_json().items() if k not in ("threads",)},
             "checkpoint": file_digest(subject.checkpoint) if subject.checkpoint else "", "compile": compile_key,
             "obs_dim": subject.spaces.obs_dim, "act_dim": subject.spaces.act_dim}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()[:16]
