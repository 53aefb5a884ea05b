"""IDQL: IQL critics, with the diffusion policy as the proposal distribution (Hansen-Estruch et al., 2023).

Why: it is MODIP at horizon 0, the control that asks whether planning in a world model matters. Both take the
common-start DP and learn V and Q without sampling the DP in a TD target; IDQL then picks among DP samples by Q
at the current state, where MODIP plans H steps ahead in a model. It follows DPPO's own PyTorch baseline
(irom-princeton/dppo at cc7234a: model/diffusion/diffusion_idql.py, agent/finetune/train_idql_diffusion_agent.py,
cfg/gym/finetune/hopper-v2/ft_idql_diffusion_mlp.yaml; "DPPO" below means those files):

- critics (methods/common/iql.py; the config and presets: config.py): V by expectile regression on min_k Q̄_k(s, a) - V(s), Q toward r + γ V(s'),
  target Q̄ by Polyak averaging at `critic_tau`. Q is a **chunk critic**: Q(s, a_{t:t+act_steps}) over the
  executed actions of a decision, flattened (DPPO's CriticObsAct with `action_steps: act_steps`), with the
  chunk's rewards summed and γ once per decision (`chunk_gamma: decision`, DPPO's) or Σ γ^i r_i and γ^k
  (`step`). V takes the state only. Rewards are scaled by `reward_scale` (DPPO's `scale_reward_factor`).
- actors: `resample` (the product) draws `samples` chunks from the DP at the state. At evaluation it executes
  the argmax of min_k Q̄_k (DPPO: `eval_deterministic: True`); in training it samples one with probability
  ∝ τ where Q̄ - V > 0 and 1 - τ elsewhere (DPPO's expectile exploration, `critic_hyperparam` 0.7). `dp` is the
  DP alone: at env step 0 it is the common start (the bc_dp checkpoint), so it equals bc_dp's step-0 score.
- the DP keeps training by behaviour cloning (its ordinary denoising loss) on replay chunks from the same start
  states as the critic batch, from `actor_start` env steps on (DPPO's `n_critic_warmup_itr`); no EMA, and the
  actors act with the trained weights (DPPO's fine-tuning acts with its actor, not an EMA copy).
- the offline phase (`pretrain.steps`): the critics learn on the dataset's decision transitions (IDQL is an
  offline-to-online method; DPPO's fine-tuning config starts its critics from scratch online, with a warm-up).
  The DP is not trained offline here: it is the common start.
- updates: `replay_ratio` is how often a stored decision is reused, not updates per step. DPPO makes
  n_steps · n_envs / batch_size · replay_ratio updates per iteration of n_steps · n_envs decisions, so
  replay_ratio / (batch_size · act_steps) updates per env step; here they are spread evenly over env steps
  (DPPO runs them in one block after each iteration), from `update_after` env steps on.
Sampling: both actors sample the DP through `eval.sampler` at evaluation and `dp.sampler` in training, the
harness's one rule for every DP method (DPPO's deterministic eval chain uses DDPM with a floor on the std).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from methods.base import ActorState, register
from methods.critic_dp import CriticDPMethod
from methods.idql.config import ACTORS, IdqlConfig


@register("idql")
class IDQL(CriticDPMethod):
    Config = IdqlConfig
    actors = ACTORS

    # ---- data ----------------------------------------------------------------------------------------------
    def decisions(self, n: int, source: str, online_ratio: float | None = None,
                  per_step_discount: bool | None = None) -> dict[str, torch.Tensor]:
        """Decision transitions (CriticDPMethod.decisions, discounted as `chunk_gamma` says) with the DP's Ta-chunk
        from the same start states (`dp_chunk`)."""
        step = self.cfg.chunk_gamma == "step" if per_step_discount is None else per_step_discount
        b = super().decisions(n, source, online_ratio, per_step_discount=step)
        chunks = self.buffer.sample_chunks(n, self.chunk, device=self.device, idx=b["index"].cpu().numpy())
        b["dp_chunk"] = self.normalizer.norm_act(chunks["action_chunk"])
        return b

    # ---- updates -------------------------------------------------------------------------------------------
    def _set_actor_hparams(self) -> None:
        """The DP's fine-tuning optimiser settings, from the first online update on (the common start's
        optimiser state, loaded with the DP, carries its own)."""
        self.finetuning = True
        for group in self.dp.optim.param_groups:
            group["lr"] = self.cfg.actor_lr
            group["weight_decay"] = self.cfg.actor_weight_decay

    def update_rate(self) -> float:
        """Updates per env step: replay_ratio / (batch_size · act_steps) (see the module doc)."""
        return float(self.cfg.replay_ratio) / (self.cfg.batch_size * self.act_steps)

    def updates_due(self, env_step: int) -> int:
        if env_step <= self.cfg.update_after:
            return 0
        r = self.update_rate()
        return int(math.floor(r * env_step) - math.floor(r * (env_step - 1)))

    def _update(self, train_dp: bool) -> dict[str, float]:
        """One IQL update of the critics, then (train_dp) one BC step of the DP on the same start states."""
        b = self.decisions(self.cfg.batch_size, "mixed", self.cfg.online_ratio)
        m = self.critic_update(b)
        if train_dp:
            m["loss/dp_bc"] = self.dp.train_step(b["dp_chunk"], b["obs"], update_ema=False,
                                                 grad_clip=self.cfg.actor_grad_clip)
        return m

    def update(self, buffer, env_step: int) -> list[dict[str, float]]:
        self._set_actor_hparams()
        return [self._update(train_dp=buffer.n_online >= self.cfg.actor_start)
                for _ in range(self.updates_due(env_step))]

    # ---- acting --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def select(self, obs: np.ndarray, state: ActorState, eval_mode: bool) -> tuple[torch.Tensor, dict[str, float]]:
        """The resampled DP: `samples` normalised chunks per state, one kept per state (B, Ta, act_dim)."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        s = self.normalizer.norm_obs(o)
        n, b = self.cfg.samples, s.shape[0]
        s_rep = s.repeat(n, 1)  # sample j of state i at row j * B + i (DPPO's repeat along a leading dim)
        sampler = self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler
        chunks = self.dp.policy.sample(s_rep, generator=state.generator, sampler=sampler)
        q = self.critics.target_min(s_rep, self.dp.executed(chunks)).view(n, b)
        if eval_mode or not self.cfg.expectile_exploration:
            pick = q.argmax(0)
        else:
            adv = q - self.critics.value(s_rep).view(n, b)
            tau = self.cfg.exploration_tau
            w = torch.where(adv > 0, tau, 1.0 - tau)
            pick = torch.multinomial((w / w.sum(0)).T, 1, generator=state.generator).squeeze(1)
        chosen = chunks.view(n, b, *chunks.shape[1:])[pick, torch.arange(b, device=self.device)]
        return chosen, {}

    def act(self, obs, actor: str | None, state: ActorState, eval_mode: bool):
        if actor == "dp":
            return self.dp.act(obs, state.generator, eval_mode, policy=self.dp.policy), {}
        if actor in ("resample", None):  # None: training collects with `resample`
            chosen, _ = self.select(obs, state, eval_mode)
            return self.normalizer.unnorm_act(self.dp.executed(chosen)).cpu().numpy(), {}
        raise ValueError(f"idql has actors {self.actors}, not '{actor}'")

    # ---- timing --------------------------------------------------------------------------------------------
    def timed_components(self, batch_size: int = 1):
        """Every actor's act and a fine-tune update with its DP step (the cost of a run past actor_start)."""
        settings = {"samples": self.cfg.samples, "denoising_steps": self.dp.denoising_steps(), "horizon": 0}
        return self._timed(batch_size, lambda: self._update(train_dp=True), self.update_rate(), settings)
