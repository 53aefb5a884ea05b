"""A compact SAC agent that exists only to make offline data (it is not a benchmark method).

Why: `mbench data make` needs policies at D4RL's quality levels (random, medium, expert) and the replay buffer
that led to them. One training run per env produces all of them: policy snapshots are kept at regular
intervals with their evaluated returns, so making another quality level never retrains. Training is resumable:
the full state (networks, optimisers, replay, RNG, counters) is saved atomically at episode boundaries, and a
killed make continues from its last save.

SAC as in Haarnoja et al. 2018 (v2): twin Q critics with Polyak targets, a tanh-squashed Gaussian actor, and a
learned temperature with target entropy -|A|. The actor and the actor's and temperature's losses are the shared
SAC pieces (methods/common/sac.py), which DSRL's noise policy uses too; the critics and the loop are this agent's.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from methods.common.networks import mlp
from methods.common.sac import SquashedGaussianActor, actor_loss, temperature_loss
from results.atomic import atomic_write
from results.checkpoint_files import load_checkpoint

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass
class SACConfig:
    hidden: int = 256
    layers: int = 2
    lr: float = 3e-4
    gamma: float = 0.99
    tau: float = 0.005
    batch_size: int = 256
    start_steps: int = 5000  # uniform random actions before the policy acts
    update_every: int = 1  # env steps per gradient update
    checkpoint_every: int = 10_000  # env steps between policy snapshots (each one evaluated)
    eval_episodes: int = 5


def behaviour_actor(obs_dim: int, act_dim: int, hidden: int, layers: int) -> SquashedGaussianActor:
    """The behaviour policy: the shared tanh-squashed Gaussian actor (methods/common/sac.py), ReLU MLP, log std in
    [-5, 2]; actions in [-1, 1] are rescaled to the env's bounds outside."""
    return SquashedGaussianActor(obs_dim, act_dim, [hidden] * layers, act=nn.ReLU, log_std_min=LOG_STD_MIN,
                                 log_std_max=LOG_STD_MAX)


class TwinQ(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, [hidden] * layers, 1, act=nn.ReLU)
        self.q2 = mlp(obs_dim + act_dim, [hidden] * layers, 1, act=nn.ReLU)

    def forward(self, obs, act):
        x = torch.cat([obs, act], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class Replay:
    """Every transition the agent saw, in order (medium-replay is a prefix of it), growing as needed."""

    FIELDS = ("observations", "actions", "rewards", "next_observations", "terminations", "truncations")

    def __init__(self, obs_dim: int, act_dim: int, capacity: int = 1024):
        self.size = 0
        self.data = {
            "observations": np.zeros((capacity, obs_dim), np.float32),
            "actions": np.zeros((capacity, act_dim), np.float32),
            "rewards": np.zeros(capacity, np.float32),
            "next_observations": np.zeros((capacity, obs_dim), np.float32),
            "terminations": np.zeros(capacity, bool),
            "truncations": np.zeros(capacity, bool),
        }

    def add(self, obs, act, rew, next_obs, terminated, truncated) -> None:
        if self.size == len(self.data["rewards"]):
            for k, v in self.data.items():
                self.data[k] = np.concatenate([v, np.zeros_like(v)])
        i = self.size
        self.data["observations"][i] = obs
        self.data["actions"][i] = act
        self.data["rewards"][i] = rew
        self.data["next_observations"][i] = next_obs
        self.data["terminations"][i] = terminated
        self.data["truncations"][i] = truncated
        self.size += 1

    def sample(self, rng: np.random.Generator, batch: int) -> dict[str, torch.Tensor]:
        idx = rng.integers(0, self.size, size=batch)
        return {k: torch.as_tensor(v[idx]) for k, v in self.data.items()}

    def arrays(self, stop: int | None = None) -> dict[str, np.ndarray]:
        stop = self.size if stop is None else min(stop, self.size)
        return {k: v[:stop].copy() for k, v in self.data.items()}

    def save(self, path: Path) -> None:
        atomic_write(path, lambda handle: np.savez(handle, size=self.size, **self.arrays()))

    @classmethod
    def load(cls, path: Path, obs_dim: int, act_dim: int, size: int) -> Replay:
        with np.load(path) as z:
            stored = int(z["size"])
            rep = cls(obs_dim, act_dim, capacity=max(1024, stored))
            for k in cls.FIELDS:
                rep.data[k][:stored] = z[k]
        rep.size = min(size, stored)
        return rep


class SACAgent:
    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, cfg: SACConfig, seed: int = 0):
        self.cfg = cfg
        self.obs_dim, self.act_dim = obs_dim, act_dim
        torch.manual_seed(seed)
        self.actor = behaviour_actor(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic = TwinQ(obs_dim, act_dim, cfg.hidden, cfg.layers)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.lr, foreach=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr, foreach=True)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr, foreach=True)
        self.low = np.asarray(action_low, np.float32)
        self.high = np.asarray(action_high, np.float32)

    def to_env(self, unit_action: np.ndarray) -> np.ndarray:
        return self.low + (unit_action + 1.0) * 0.5 * (self.high - self.low)

    def to_unit(self, env_action: np.ndarray) -> np.ndarray:
        return 2.0 * (env_action - self.low) / (self.high - self.low) - 1.0

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        a, _ = self.actor(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0), deterministic, False)
        return self.to_env(a.squeeze(0).numpy())

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg = self.cfg
        obs, nobs = batch["observations"], batch["next_observations"]
        act = torch.as_tensor(self.to_unit(batch["actions"].numpy()))
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            nact, nlogp = self.actor(nobs)
            tq = torch.min(*self.critic_target(nobs, nact)) - alpha * nlogp
            # Bootstrap through truncations (time limits), never through terminations.
            target = batch["rewards"] + cfg.gamma * (1.0 - batch["terminations"].float()) * tq
        q1, q2 = self.critic(obs, act)
        critic_loss = F.mse_loss(q1, target) + F.mse_loss(q2, target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        pact, logp = self.actor(obs)
        self.critic.requires_grad_(False)
        pi_loss = actor_loss(alpha, logp, torch.min(*self.critic(obs, pact)))
        self.critic.requires_grad_(True)
        self.actor_opt.zero_grad()
        pi_loss.backward()
        self.actor_opt.step()

        alpha_loss = temperature_loss(self.log_alpha, logp, self.target_entropy)
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for p, tp in zip(self.critic.parameters(), self.critic_target.parameters()):
                tp.lerp_(p, cfg.tau)
        return {"critic_loss": critic_loss.item(), "actor_loss": pi_loss.item(), "alpha": alpha.item()}

    def state_dict(self) -> dict[str, Any]:
        return {"actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
                "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
                "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
                "alpha_opt": self.alpha_opt.state_dict()}

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        self.actor.load_state_dict(sd["actor"])
        self.critic.load_state_dict(sd["critic"])
        self.critic_target.load_state_dict(sd["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(sd["log_alpha"])
        self.actor_opt.load_state_dict(sd["actor_opt"])
        self.critic_opt.load_state_dict(sd["critic_opt"])
        self.alpha_opt.load_state_dict(sd["alpha_opt"])


def run_episode(env, policy: Callable[[np.ndarray], np.ndarray], seed: int | None = None) -> float:
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, r, terminated, truncated, _ = env.step(policy(obs))
        total += float(r)
        done = terminated or truncated
    return total


def evaluate(env, policy, episodes: int, seed: int) -> float:
    """Mean undiscounted return over `episodes` episodes with seeds seed, seed+1, ..."""
    return float(np.mean([run_episode(env, policy, seed + i) for i in range(episodes)]))


class BehaviourTrainer:
    """Trains SAC on one env under `workdir`, keeping evaluated policy snapshots and a resumable state.

    Files: `policy-<step>.pt` (actor weights of each snapshot), `state.pt` (everything else needed to resume,
    loadable with weights_only=True), `replay.npz`, and `progress.json` (a readable mirror of the snapshot list).
    """

    def __init__(self, make_env: Callable[[], Any], workdir: str | os.PathLike, cfg: SACConfig, seed: int = 0):
        self.make_env = make_env
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cfg = cfg
        self.seed = seed
        env = make_env()
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        self.low, self.high = env.action_space.low, env.action_space.high
        env.close()
        self.agent = SACAgent(self.obs_dim, self.act_dim, self.low, self.high, cfg, seed)
        self.replay = Replay(self.obs_dim, self.act_dim)
        self.step = 0
        self.episodes = 0
        self.checkpoints: list[dict[str, Any]] = []  # {"step", "return", "file"}
        self.rng = np.random.default_rng(seed)
        self._load()

    # -- persistence -------------------------------------------------------------------------------------
    def _config_blob(self) -> dict[str, Any]:
        return {"algo": "sac", "seed": self.seed, **dataclasses.asdict(self.cfg)}

    def _load(self) -> None:
        state_path = self.workdir / "state.pt"
        if not state_path.exists():
            return
        state = load_checkpoint(state_path, fix=f"delete {self.workdir}, or make the data again with --force")
        saved_cfg = json.loads(state["config"])
        if saved_cfg != self._config_blob():
            raise RuntimeError(f"behaviour agent in {self.workdir} was trained with another config "
                               f"({saved_cfg}); use another root or --force")
        self.agent.load_state_dict(state["agent"])
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.checkpoints = json.loads(state["checkpoints"])
        self.rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.replay = Replay.load(self.workdir / "replay.npz", self.obs_dim, self.act_dim, self.step)
        if self.replay.size != self.step:
            raise RuntimeError(f"behaviour agent in {self.workdir}: replay has {self.replay.size} rows, "
                               f"state says {self.step}; delete the folder to retrain")

    def _save(self) -> None:
        # Replay first, state last: a kill in between leaves a replay longer than the state, which _load trims.
        self.replay.save(self.workdir / "replay.npz")
        state = {"agent": self.agent.state_dict(), "step": self.step, "episodes": self.episodes,
                 "checkpoints": json.dumps(self.checkpoints), "numpy_rng": json.dumps(self.rng.bit_generator.state),
                 "torch_rng": torch.get_rng_state(), "config": json.dumps(self._config_blob())}
        atomic_write(self.workdir / "state.pt", lambda f: torch.save(state, f))
        atomic_write(self.workdir / "progress.json",
                lambda f: f.write(json.dumps({"step": self.step, "config": self._config_blob(),
                                              "checkpoints": self.checkpoints}, indent=1).encode()))

    def _snapshot(self, eval_env) -> None:
        name = f"policy-{self.step}.pt"
        atomic_write(self.workdir / name, lambda f: torch.save(self.agent.actor.state_dict(), f))
        with torch.random.fork_rng(devices=[]):  # evaluating never changes the training RNG stream
            ret = evaluate(eval_env, lambda o: self.agent.act(o), self.cfg.eval_episodes,
                           seed=1_000_000 + self.step)
        self.checkpoints.append({"step": self.step, "return": ret, "file": name})

    # -- training ----------------------------------------------------------------------------------------
    def train(self, total_steps: int, progress: bool = True) -> list[dict[str, Any]]:
        """Train until `total_steps` env steps (continuing from a save), snapshotting every checkpoint_every."""
        cfg = self.cfg
        if self.step >= total_steps:
            return self.checkpoints
        env, eval_env = self.make_env(), self.make_env()
        obs, _ = env.reset(seed=self.seed + self.episodes)
        if self.step == 0 and not self.checkpoints:
            self._snapshot(eval_env)  # the untrained policy: step 0
        bar = tqdm(total=total_steps, initial=self.step, desc=f"SAC {env.spec.id if env.spec else ''}",
                   disable=not progress, unit="step", dynamic_ncols=True)
        env.action_space.seed(int(self.rng.integers(2**31)))
        ep_return, save_due = 0.0, False
        while self.step < total_steps:
            if self.step < cfg.start_steps:
                act = env.action_space.sample()
            else:
                act = self.agent.act(obs)
            next_obs, rew, terminated, truncated, _ = env.step(act)
            self.replay.add(obs, act, rew, next_obs, terminated, truncated)
            self.step += 1
            ep_return += float(rew)
            obs = next_obs
            if self.step >= cfg.start_steps and self.step % cfg.update_every == 0:
                self.agent.update(self.replay.sample(self.rng, cfg.batch_size))
            if self.step % cfg.checkpoint_every == 0 or self.step == total_steps:
                self._snapshot(eval_env)
                bar.set_postfix(eval_return=f"{self.checkpoints[-1]['return']:.1f}")
                save_due = True
            bar.update(1)
            if terminated or truncated or self.step == total_steps:
                self.episodes += 1
                if self.step == total_steps and not (terminated or truncated):
                    self.replay.data["truncations"][self.replay.size - 1] = True  # cut off by the budget
                ep_return = 0.0
                if save_due or self.step == total_steps:
                    self._save()
                    save_due = False
                obs, _ = env.reset(seed=self.seed + self.episodes)
        bar.close()
        env.close()
        eval_env.close()
        return self.checkpoints

    def load_policy(self, checkpoint: dict[str, Any]) -> SquashedGaussianActor:
        actor = behaviour_actor(self.obs_dim, self.act_dim, self.cfg.hidden, self.cfg.layers)
        actor.load_state_dict(load_checkpoint(self.workdir / checkpoint["file"],
                                              fix=f"delete {self.workdir}, or make the data again with --force"))
        actor.eval()
        return actor

    def policy_fn(self, checkpoint: dict[str, Any], deterministic: bool = False) -> Callable[[np.ndarray], np.ndarray]:
        actor = self.load_policy(checkpoint)

        @torch.no_grad()
        def policy(obs: np.ndarray) -> np.ndarray:
            a, _ = actor(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0), deterministic, False)
            return self.agent.to_env(a.squeeze(0).numpy())

        return policy
