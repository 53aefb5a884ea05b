"""DSRL: steer the frozen common-start DP through its initial noise (Wagenmaker et al., "Steering Your Diffusion
Policy with Latent Space Reinforcement Learning", CoRL 2025, arXiv 2506.15799).

Why: it is the control for "fine-tune the weights or steer the noise?". MODIP, DPPO and PA-RL change the DP's
weights; DSRL never does. The DP runs as a deterministic DDIM chain, a = DP(s, w), and SAC learns a noise policy
π^W(w | s) that says where the chain starts. Sources: the official code, ajwagen/dsrl at 8d21b9c (train_dsrl.py,
utils.py, env_utils.py, cfg/gym/dsrl_hopper.yaml: "the config" below) and its Stable-Baselines3 fork at 10e5d311
(stable_baselines3/dsrl/dsrl.py: "the fork"). The updates are in learner.py; the config section, presets and
suite defaults in config.py.

- variants (`variant`): `na` (DSRL-NA, the config's `algorithm: dsrl_na`, the default): Q^A(s, a) over actions
  learns by TD with a' = DP(s', w'), w' ~ π^W(s'); Q^W(s, w) is distilled from Q^A at w ~ N(0, I); π^W maximises
  Q^W. `sac` (DSRL-SAC): plain SAC whose action is the noise, Q(s, w), the DP inside the env (train_dsrl.py's
  `DiffusionPolicyEnvWrapper`).
- the chain: DDIM with η = 0, `ddim_steps` 5 on DPPO's leading schedule (t = 16, 12, 8, 4, 0 of 20: w is x at
  t = 16, not pure noise at 19), the noise re-derived from each clamped x0 (DPPO's DDIM, which the fork calls
  with `controllable_noise`, x = w). It runs on the common start's EMA weights, which nothing updates.
- noise: the full Ta-chunk, (Ta, act_dim) flattened (the config's act_steps = horizon_steps 4; here the DP's chunk,
  of which act_steps are executed). π^W = `bound` · tanh(N(μ(s), σ(s))): DSRL-NA's bound is the env chunk box,
  [-1, 1] (the fork's action space is the env's tiled action space; `action_magnitude` does not reach DSRL-NA in
  the code, whatever the README says: `na_noise_bound` 1); DSRL-SAC's is `action_magnitude` 1.5.
- the critic's data: decision transitions from decision starts only (the replay keeps each decision's noise with
  its first transition, which marks it; a decision still waiting on steps is left out), the executed chunk,
  rewards summed, γ once per decision (the fork's ActionChunkWrapper, one replay entry per chunk transition).
  Three departures, the harness's rules: a time limit is a timeout that bootstraps (the fork stores it as a terminal), a chunk stops at its episode's end
  (the fork steps a terminated env to the chunk's end and sums those rewards too), and a decision cut short by
  a timeout is left out (methods/common/decisions.py). Replay is online only (the
  config's load_offline_data False); the offline dataset is not used. π^W's log-probability uses SB3's tanh
  correction, log(1 - tanh² + 1e-6) (`tanh_eps`).
- units: the config counts in vector steps of n_envs 4 envs, each a chunk transition (a decision). `train_freq` 2
  vector steps between train calls is 8 decisions; each call makes `utd` 20 gradient steps (a fresh batch of
  256 each), then `noise_critic_grad_steps` 10 distillation steps. Here a call comes every train_freq · n_envs ·
  act_steps env steps (a decision is act_steps env steps; episode ends cut some short). `init_rollout_steps`
  2001 vector steps = 8004 decisions of the DP at w ~ N(0, I) (unclipped for NA, clipped to ±action_magnitude for
  SAC: utils.collect_rollouts) fill the replay first; they are online env steps and count toward `online.steps`
  (the fork does not count them in its timesteps). One update (one grad step of the harness) is one train call.
- actors: `steered` (the product; π^W then the chain; at evaluation a stochastic π^W sample, the config's
  deterministic_eval False) and `dp` (the DP alone, sampled through `eval.sampler` as bc_dp is: at env step 0 it
  equals bc_dp). `steered` is exempt from `eval.sampler` (its chain is the method; `actor_sampling` records it).
  Its step-0 score is that of the untrained π^W, which is not N(0, I).
Not built: the fork's first learn() step takes uniform noise (learning_starts 1), and offline-data mixing.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.common.section import ConfigError
from methods.dp_method import DPMethod, act_components
from methods.dsrl.config import ACTORS, DsrlConfig
from methods.dsrl.learner import DsrlLearner, LearnerSpec


@register("dsrl")
class DSRL(DPMethod):
    Config = DsrlConfig
    actors = ACTORS

    def __init__(self, cfg: DsrlConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        if cfg.ddim_steps > self.dp_cfg.denoising_steps:
            raise ConfigError(f"config key 'dsrl.ddim_steps'={cfg.ddim_steps} exceeds the DP's "
                              f"dp.denoising_steps={self.dp_cfg.denoising_steps}")
        self.noise_shape = (self.chunk, self.spaces.act_dim)
        self.noise_dim = noise_dim = self.chunk * self.spaces.act_dim
        spec = LearnerSpec(variant=cfg.variant, hidden=list(cfg.hidden), activation=cfg.activation,
                           layer_norm=cfg.layer_norm, critics=cfg.critics, backup=cfg.backup, lr=cfg.lr, tau=cfg.tau,
                           ent_init=cfg.ent_init, target_entropy=cfg.target_entropy, log_std_min=cfg.log_std_min,
                           log_std_max=cfg.log_std_max, noise_bound=cfg.noise_bound(), tanh_eps=cfg.tanh_eps)
        self.learner = DsrlLearner(self.spaces.obs_dim, noise_dim, self.act_steps * self.spaces.act_dim, spec,
                                   self.spaces.gamma).to(self.device)
        self.timesteps = self.dp.policy.ddim_timesteps(cfg.ddim_steps, cfg.ddim_schedule)
        self.dp.policy.requires_grad_(False)
        self.dp.ema.module.requires_grad_(False)
        # The updates' own RNG stream (π^W's samples, the distillation's noise), on the device, checkpointed.
        self.update_generator = torch.Generator(device=self.device)
        self.update_generator.manual_seed(self.seed + 7_777)

    # ---- the chain -----------------------------------------------------------------------------------------
    @property
    def frozen_dp(self) -> torch.nn.Module:
        """The common start's EMA DP, which DSRL samples and never updates."""
        return self.dp.ema.module

    @torch.no_grad()
    def chain(self, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """a = DP(s, w): the deterministic DDIM chain from noise w (B, Ta, act_dim or flat) at normalised states,
        normalised chunks (B, Ta, act_dim)."""
        return self.frozen_dp.ddim_from(w.reshape(w.shape[0], *self.noise_shape), s, self.timesteps,
                                        recompute_eps=True)

    def steer(self, s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The critic's action input of DP(s, w): the executed part of the chunk, flattened."""
        return self.dp.executed(self.chain(s, w)).reshape(s.shape[0], -1)

    # ---- data ----------------------------------------------------------------------------------------------
    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        """Each decision's initial noise, stored with its first transition: it marks where decisions start (the
        fork's replay holds one entry per chunk transition) and is DSRL-SAC's critic input."""
        return {"noise": self.noise_shape}

    def init_env_steps(self) -> int:
        """Online env steps of the DP at w ~ N(0, I) before π^W acts and training starts."""
        return int(self.cfg.init_rollout_steps) * self.cfg.n_envs * self.act_steps

    def train_period(self) -> int:
        """Env steps between train calls: train_freq vector steps of n_envs decisions."""
        return int(self.cfg.train_freq) * self.cfg.n_envs * self.act_steps

    def decision_starts(self, n: int) -> np.ndarray | None:
        """n buffer indices of online decision starts (the rows that carry a decision's noise) whose chunk is
        complete; None while the buffer has no online data (a timing probe on offline data only)."""
        if self.buffer.n_online == 0:
            return None
        try:
            return self.buffer.draw_carrying(n, "noise", "online", complete=self.act_steps)
        except RuntimeError as e:
            raise RuntimeError("dsrl: the online data carries no decision noise (the replay was not filled by "
                               "DSRL's own act)") from e

    def batch(self) -> dict[str, torch.Tensor]:
        """`batch_size` decision transitions from decision starts (normalised; online data only, as the fork's
        replay), with the critic's input x: the executed chunk (NA) or the decision's noise (SAC)."""
        n = self.cfg.batch_size
        idx = self.decision_starts(n)
        # A decision cut short by a timeout (or by the data's end) is redrawn among the decision starts
        # (methods/common/decisions.py); one cut by a terminal stays, discounted over the k steps it took:
        # γ^(k / act_steps), γ being per decision (its discount never enters the target: no bootstrap).
        redraw = None if idx is None else (lambda bad: self.decision_starts(len(bad)))
        d = self.buffer.sample_decisions(n, self.act_steps, source="mixed", device=self.device, idx=idx, whole=True,
                                         redraw=redraw)
        discount = float(self.spaces.gamma) ** (d["steps"].float() / self.act_steps)
        out = {"obs": self.normalizer.norm_obs(d["obs"]), "next_obs": self.normalizer.norm_obs(d["next_obs"]),
               "reward": d["reward"] * self.cfg.reward_scale, "terminal": d["terminal"],
               "discount": discount, "index": d["index"]}
        if self.cfg.variant == "na":
            out["x"] = self.normalizer.norm_act(d["action_chunk"]).reshape(n, -1)
        else:  # a timing probe on offline data reads zeros here; a run always has online decisions
            out["x"] = self.buffer.fields_at(d["index"].cpu().numpy(), ("noise",), self.device)["noise"].reshape(n, -1)
        return out

    def start_states(self, n: int) -> torch.Tensor:
        """n normalised states at decision starts (the distillation's states)."""
        idx = self.decision_starts(n)
        if idx is None:
            return self.batch()["obs"]
        obs = self.buffer.fields_at(idx, ("obs",), self.device)["obs"]
        return self.normalizer.norm_obs(obs)

    # ---- updates -------------------------------------------------------------------------------------------
    def updates_due(self, env_step: int) -> int:
        start = self.init_env_steps()
        return int(env_step > start and (env_step - start) % self.train_period() == 0)

    def update(self, buffer, env_step: int) -> list[dict[str, float]]:
        return [self._train_call() for _ in range(self.updates_due(env_step))]

    def _train_call(self) -> dict[str, float]:
        """One train call of the fork: `utd` gradient steps, then (NA) `noise_critic_grad_steps` Q^W steps."""
        acc: dict[str, list[float]] = {}
        for _ in range(self.cfg.utd):
            for k, v in self.learner.gradient_step(self.batch(), self.steer, self.update_generator).items():
                acc.setdefault(k, []).append(v)
        if self.cfg.variant == "na":
            for _ in range(self.cfg.noise_critic_grad_steps):
                s = self.start_states(self.cfg.batch_size)
                w = torch.randn((s.shape[0], self.noise_dim), generator=self.update_generator,
                                device=self.device)
                acc.setdefault("loss/noise_critic", []).append(self.learner.distill_step(s, w, self.steer))
        return {k: float(np.mean(v)) for k, v in acc.items()}

    # ---- acting --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def noise(self, s: torch.Tensor, state: ActorState, eval_mode: bool) -> torch.Tensor:
        """The initial noise of each state's chain (B, Ta · act_dim): N(0, I) during the initial rollouts
        (clipped to ±action_magnitude for SAC), then π^W (tanh(mean) at evaluation if deterministic_eval)."""
        b = s.shape[0]
        if not eval_mode and self.buffer is not None and self.buffer.n_online < self.init_env_steps():
            w = torch.randn((b, self.noise_dim), generator=state.generator,
                            device=state.generator.device).to(self.device)
            if self.cfg.variant == "sac":
                w = w.clamp(-self.cfg.action_magnitude, self.cfg.action_magnitude)
            return w
        w, _ = self.learner.actor(s, deterministic=eval_mode and self.cfg.deterministic_eval, with_log_prob=False,
                                  generator=state.generator)
        return w

    def act(self, obs, actor: str | None, state: ActorState, eval_mode: bool):
        if actor == "dp":
            return self.dp.act(obs, state.generator, eval_mode), {}
        if actor not in ("steered", None):  # None: training collects with `steered`
            raise ValueError(f"dsrl has actors {self.actors}, not '{actor}'")
        s = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        w = self.noise(s, state, eval_mode)
        extras = {} if eval_mode else {"noise": w.reshape(-1, *self.noise_shape).cpu().numpy()}
        return self.normalizer.unnorm_act(self.dp.executed(self.chain(s, w))).cpu().numpy(), extras

    # ---- timing --------------------------------------------------------------------------------------------
    def timed_components(self, batch_size: int = 1):
        """`steered_act` (π^W and the chain), `dp_act`, and `update` (one train call)."""
        settings = {"samples": 1, "denoising_steps": self.cfg.ddim_steps, "horizon": 0}
        comps = act_components(self, batch_size, self.act_steps, settings)
        if self.buffer is not None:
            comps["update"] = TimedComponent(self._train_call, ComponentKind.UPDATE, settings=settings,
                                             updates_per_env_step=1.0 / self.train_period())
        return comps

    def actor_sampling(self) -> dict[str, str]:
        return {"steered": f"deterministic DDIM (eta 0), {self.cfg.ddim_steps} steps on the {self.cfg.ddim_schedule} "
                           f"schedule from t={self.timesteps[0]}, from the noise policy's w: the method's own chain, "
                           f"exempt from eval.sampler"}

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        return {"dp_ema": self.dp.ema.module, "learner": self.learner, **self.learner.optimizers()}

    def extra_state(self) -> dict[str, Any]:
        return {"update_generator": self.update_generator.get_state()}
