"""What more than one test file uses, in one place (fixtures stay in tests/conftest.py).

- ROOT, the repository's root;
- TINY / TINY_CS / tiny(): budgets for contract tests of every method (each run is seconds), and runner_cfg():
  a tiny config on the demo task for the runner's tests;
- toy_method(), bimodal_buffer(), trained_on_bimodal(): the critic-based methods (IDQL, PA-RL, DSRL and their
  shared IQL critic) on a 3-dim toy task with bimodal offline data;
- fitted_normalizer(), dp_context(): a method's context on synthetic spaces, for the shared DP's tests;
- OnPolicyStandIn: an on-policy method's stand-in for the on-policy loop and the suites' env state;
- OLD_ENV_ARGS: env_args exactly as robomimic's v0.3 low_dim files carry them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bench.config.layers import resolve_config
from bench.config.parse import parse_section
from methods.base import MethodContext, TaskSpaces
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer
from methods.common.replay import ReplayBuffer
from methods.registry import get_method_class

ROOT = Path(__file__).resolve().parents[1]

# Budgets for contract tests of every method: each run is seconds.
TINY = {
    "pretrain.steps": 40,
    "pretrain.log_every": 10,
    "pretrain.checkpoint_every": 20,
    "online.steps": 240,
    "online.checkpoint_every": 60,
    "online.log_every": 60,
    "eval.every": 120,
    "eval.episodes": 2,
    "eval.timing": False,
    "threads": 1,
}
# The common-start DP of the methods that start from it, at the same tiny budget (a `common_start` key is an
# error for the other methods; sweep files scope it by themselves).
TINY_CS = {"common_start.steps": 40, "common_start.log_every": 10}


def tiny(method: str, **extra) -> dict:
    """TINY, plus TINY_CS where `method` starts from the common-start DP, plus `extra`."""
    over = dict(TINY)
    if get_method_class(method).uses_pretrained_dp:
        over.update(TINY_CS)
    over.update(extra)
    return over


def runner_cfg(method="bc_gauss", seed=0, **extra):
    """`method` on the demo task at TINY budgets (the test preset where there is one), for the runner's tests."""
    over = dict(TINY)
    if method == "bc_dp":
        over["dp.hidden"] = [32, 32]  # the DP of the other methods' test presets: one common-start cache
    elif method != "bc_gauss":
        over["preset"] = "test"
    if method in ("bc_dp", "dppo", "modip"):
        over["common_start.steps"] = TINY["pretrain.steps"]
        over["common_start.log_every"] = TINY["pretrain.log_every"]
    over.update(extra)
    return resolve_config(method, "demo", seed, over)


# ---- the critic-based methods on a toy task ----------------------------------------------------------------
def toy_method(method: str, overrides: dict | None = None, obs_dim: int = 3, act_steps: int = 2, seed: int = 0,
               compile_train: bool = False):
    """`method` from its test preset (with `overrides`, dotted keys inside its section) on a toy task: obs_dim
    observations, one action in [-1, 1], chunks of 4 (compile_train: the run key)."""
    cls = get_method_class(method)
    section = dict(cls.Config.presets["test"][method])
    for key, value in (overrides or {}).items():
        node = section
        parts = key.split(".")
        for p in parts[:-1]:
            node[p] = dict(node.get(p, {}))
            node = node[p]
        node[parts[-1]] = value
    cfg = parse_section(cls.Config, section, f"{method}.")
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=1, act_low=np.array([-1.0]), act_high=np.array([1.0]),
                        max_episode_steps=200, gamma=0.9, chunk=4)
    normalizer = Normalizer(np.zeros(obs_dim), np.ones(obs_dim), spaces.act_low, spaces.act_high)
    dp_cfg = DPConfig(hidden=[32, 32], denoising_steps=10, act_steps=act_steps)
    return cls(cfg, MethodContext(spaces=spaces, normalizer=normalizer, dp_cfg=dp_cfg, seed=seed,
                                  compile_train=compile_train))


def bimodal_buffer(m, n: int = 2000, seed: int = 0) -> ReplayBuffer:
    """Offline data with two modes (a = -0.6 and +0.6), one per 4-step episode, rewarded 1 per step at +0.6."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    acts = np.repeat(np.where(rng.random((n // 4, 1)) < 0.5, -0.6, 0.6), 4, 0).astype(np.float32)
    ends = np.zeros(n, bool)
    ends[3::4] = True
    buf = ReplayBuffer(3, 1, extras=m.buffer_extras(), seed=seed, capacity=n + 512)
    buf.add_offline(obs, acts, (acts[:, 0] > 0).astype(np.float32), np.roll(obs, -1, 0), np.zeros(n, bool), ends)
    m.attach_buffer(buf)
    return buf


def trained_on_bimodal(method: str, overrides: dict, critic_steps: int):
    """`method` on the bimodal data: a BC-trained bimodal DP (600 steps), `critic_steps` offline critic steps, then
    the switch to fine-tuning (fixed seed)."""
    torch.manual_seed(0)
    m = toy_method(method, overrides)
    bimodal_buffer(m)
    for _ in range(600):
        m.dp.bc_step(m.buffer, 64)
    m.dp.reset_to_ema()  # as the harness's common-start load does
    for _ in range(critic_steps):
        m.pretrain(m.buffer)
    assert m.update(m.buffer, 0) == []  # the first online call switches to fine-tuning; no update is due at 0
    return m


# ---- the shared DP on synthetic spaces ---------------------------------------------------------------------
def fitted_normalizer(obs_dim=5, act_dim=2) -> Normalizer:
    return Normalizer.fit(np.random.default_rng(1).normal(size=(100, obs_dim)), -np.ones(act_dim), np.ones(act_dim))


def dp_context(dp_cfg: DPConfig, obs_dim=5, act_dim=2):
    spaces = TaskSpaces(obs_dim=obs_dim, act_dim=act_dim, act_low=-np.ones(act_dim, np.float32),
                        act_high=np.ones(act_dim, np.float32), max_episode_steps=50, chunk=4)
    return MethodContext(spaces=spaces, normalizer=fitted_normalizer(obs_dim, act_dim), dp_cfg=dp_cfg)


# ---- an on-policy method's stand-in ------------------------------------------------------------------------
class OnPolicyStandIn:
    """Stands in for an on-policy method: chunks that are a fixed function of the obs; keeps every rollout."""

    def __init__(self, n_envs: int, n_steps: int, act_dim: int, gain: float = 0.3):
        self.n_envs, self.n_steps, self.act_dim, self.gain = n_envs, n_steps, act_dim, gain
        self.grad_steps = 0
        self.rollouts: list[dict] = []

    def rollout_size(self):
        return self.n_envs, self.n_steps, 4

    def act_rollout(self, obs, state):
        a = self.gain * np.tanh(obs[:, :self.act_dim] - obs[:, -self.act_dim:])
        return np.repeat(a[:, None], 4, axis=1).astype(np.float32), {}

    def update_rollout(self, rollout, between=None):
        self.rollouts.append(rollout)
        return [{}]

    def state_dict(self):  # what the harness snapshots before an update (bench/runner/on_policy.py): nothing
        return {}

    def load_state_dict(self, state):
        pass


# ---- robomimic's real old layout ---------------------------------------------------------------------------
# env_args exactly as robomimic's v0.3 low_dim files carry them (robosuite 1.4.1, flat OSC_POSE config).
OLD_ENV_ARGS = {
    "env_name": "Lift", "env_version": "1.4.1", "type": 1,
    "env_kwargs": {
        "has_renderer": False, "has_offscreen_renderer": False, "ignore_done": True, "use_object_obs": True,
        "use_camera_obs": False, "control_freq": 20,
        "controller_configs": {
            "type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
            "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping": 1,
            "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_limits": [0, 10], "position_limits": None,
            "orientation_limits": None, "uncouple_pos_ori": True, "control_delta": True, "interpolation": None,
            "ramp_ratio": 0.2},
        "robots": ["Panda"], "camera_depths": False, "camera_heights": 84, "camera_widths": 84,
        "reward_shaping": False},
}
