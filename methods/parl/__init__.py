"""PA-RL (Policy Agnostic RL; Mark et al., arXiv 2412.06685): critic-optimised actions distilled into the DP.

Why: it is MODIP with the world model and the MPC replaced by critic-guided action optimisation, the control
that asks whether planning in a model beats optimising against a critic. MODIP's design grew from it. Sources:
the official code (MaxSobolMark/PolicyAgnosticRL, "PA-RL" below): jaxrl_m/agents/continuous/parl_iql.py,
action_optimization.py, iql.py, configs/base_config.py, train.py.

- critics (methods/common/iql.py, shared with IDQL; the config sections and presets: config.py): PA-RL's IQL variant trains IQL's V and Q on replay and
  dataset actions and never its Gaussian actor (parl_iql.py `update`, train_actor=False); the action optimisation
  enters no TD target. Here Q is the same chunk critic as IDQL's, over the executed actions of a decision
  (PA-RL's state configs act one action at a time; a chunk critic is what lets PA-RL, IDQL and MODIP share the
  DP's chunks). PA-RL's IQL defaults: expectile 0.7, target rate 0.002, lr 3e-4, (256, 256) MLPs with layer norm
  and swish (configs/base_config.py BASE_PARL_IQL_CONFIG; iql.py `get_default_config`). Its critic there is
  distributional (HL-Gauss over 128 bins in [-100, 0]); ours regresses the value (MSE), with 2 heads (iql.py
  hard-codes 2 without the distributional critic). The Cal-QL variant (parl_calql.py, where the optimised action
  is CQL's policy inside every TD target) is not built; `variant` names the one that is.
  Note: the IQL path in the official repo does not run as committed (base_config.py sets BASE_PARL_IQL_CONFIG to
  the None that dict.update returns; parl_iql.py calls an unbound super()), so its values are the code's intent.
- action optimisation (action_opt.py): N = `samples` 32 DP samples per state, the top `keep` 10 by mean Q,
  `opt_steps` 10 steps of gradient ascent on mean Q, clipped to the box (base_config.py parl_config; parl_iql.py
  constructor defaults). PA-RL's step, 3e-4 times the raw gradient (`step_units: q`, the default), barely moves
  an action on Q of the demo's and Hopper's scale; a labelled deviation steps in action units instead
  (`step_units: action`, `action_step` RMS per element along the gradient), off by default until its size is
  chosen on tuning seeds: at 0.05 it dropped the rerank actor's step-0 score on Hopper from ~82 to ~12 (config.py).
- actors: `dp` (the product: the distilled DP alone, EMA weights) and `rerank` (the DP's samples reranked and
  optimised, the argmax executed: PA-RL's `evaluation_particle_choosing_strategy: max_q_value`, which train.py
  also uses to collect data). Training collects with `rerank`.
- distillation: on a batch of buffer states (offline and online data uniformly, as PA-RL's DP batch is the
  offline share offline / (offline + online)), the worst kept candidate is replaced by the dataset's chunk, all
  k are optimised, one is sampled from softmax(Q / distill_temperature) (`distill_argmax: False`), and the DP
  takes one step of its ordinary denoising loss on it. lr 5e-5 after a 2000-step linear warm-up, no clipping
  (base_config.py's DP fine-tuning optimiser). DP samples are drawn fresh for every batch, all B · N in one
  batched chain (PA-RL: `add_base_policy_actions_to_batch` draws N per state per batch; nothing is cached).
- updates: per env step, `distill_updates` DP steps and `critic_updates` critic steps (PA-RL's base_policy_utd
  and critic_utd, both 1; it runs them in a block after each collected episode, distillation first; here they
  are spread over env steps in the same order), from `update_after` env steps on (PA-RL collects one episode of
  up to 1000 steps before its first online update). Critic batches are half offline, half online (mixing_ratio
  0.5). At the switch to online the critics' optimiser moments are reset (train.py).
- diagnostic switches (config.py, id-neutral): `critics_online` (false: no critic update online), `distill`
  (false: no DP step; the targets' statistics are still logged), `reset_critic_optim_online` (false: keep the
  critics' optimiser moments at the switch); benchmarks/parl_collapse.py runs their 2x2 and follow-up arms.
- the offline phase (`pretrain.steps`): the critics on the dataset (PA-RL: 1M offline critic steps); the DP is the
  common start (PA-RL BC-pretrains its own DP separately, 3000 epochs).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.base import ActorState, MethodContext, register
from methods.critic_dp import CriticDPMethod
from methods.parl.action_opt import ascend, choose, rerank
from methods.parl.config import ACTORS, ParlConfig


@register("parl")
class PARL(CriticDPMethod):
    Config = ParlConfig
    actors = ACTORS

    def __init__(self, cfg: ParlConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.distill_steps = 0

    def q_mean(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The ensemble mean of Q over the executed chunk a (B, act_steps, A): what PA-RL optimises."""
        return self.critics.q.mean(s, a)

    # ---- updates -------------------------------------------------------------------------------------------
    def _critic_step(self, source: str, online_ratio: float | None) -> dict[str, float]:
        return self.critic_update(self.decisions(self.cfg.batch_size, source, online_ratio))

    def _go_online(self) -> None:
        """The switch to online, at the first online update: fresh DP optimiser moments and (PA-RL, train.py)
        fresh critic optimiser moments. Once: `finetuning` is checkpointed."""
        if self.finetuning:
            return
        if self.cfg.reset_critic_optim_online:  # PA-RL resets the critic optimiser at the switch (config.py)
            for opt in self.critics.optimizers().values():
                opt.state.clear()
        self.dp.reset_optimizer_moments()
        self.finetuning = True

    def updates_due(self, env_step: int) -> int:
        return 1 if env_step > self.cfg.update_after and env_step % self.cfg.update_every == 0 else 0

    @torch.no_grad()
    def proposals(self, s: torch.Tensor, n: int, generator: torch.Generator | None, sampler: str) -> torch.Tensor:
        """n chunks of the EMA DP at each normalised state, in one batched chain: (B, n, Ta, A)."""
        chunks = self.dp.ema.module.sample(s.repeat_interleave(n, 0), generator=generator, sampler=sampler)
        return chunks.view(s.shape[0], n, *chunks.shape[1:])

    def distill_targets(self, s: torch.Tensor, data_chunk: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """PA-RL's distillation targets at normalised states s, with the dataset's chunks there."""
        cfg, k = self.cfg, self.act_steps
        sampler = cfg.distill_sampler or self.dp_cfg.sampler
        kept, q_kept = rerank(self.q_mean, s, self.proposals(s, cfg.samples, None, sampler), cfg.keep, k, with_q=True)
        cands = torch.cat([kept[:, 1:], data_chunk[:, None]], dim=1)  # the worst kept one out, the data in
        q0 = q_kept[:, -1]  # the best proposal's Q, as rerank scored it
        opt, q = ascend(self.q_mean, s, cands, cfg.opt_steps, cfg.step(), k, cfg.step_units)
        target = choose(opt, q, cfg.distill_argmax, cfg.distill_temperature)
        stats = {"parl/q_gain": float((q.max(1).values - q0).mean()),
                 "parl/data_chosen": float((target == data_chunk).all(-1).all(-1).float().mean()),
                 # the chosen candidate is the one that started from the data chunk (the last one), optimised too:
                 # data_chosen above counts only a data chunk that the optimisation left exactly where it was
                 "parl/data_won": float((target == opt[:, -1]).all(-1).all(-1).float().mean()),
                 # how far the optimisation moved the candidates: mean |Δa| per executed element (normalised box)
                 "parl/action_move": float((opt[:, :, :k] - cands[:, :, :k]).abs().mean())}
        return target, stats

    def _distill_step(self) -> dict[str, float]:
        n_off, n_on = self.buffer.n_offline, self.buffer.n_online
        b = self.buffer.sample_chunks(self.cfg.batch_size, self.chunk, source="mixed", device=self.device,
                                      online_ratio=n_on / max(1, n_off + n_on))
        s, data = self.normalizer.norm_obs(b["obs"]), self.normalizer.norm_act(b["action_chunk"])
        target, stats = self.distill_targets(s, data)
        if not self.cfg.distill:  # the diagnostic switch: the targets' statistics only, no DP step
            return stats
        warm = min(1.0, (self.distill_steps + 1) / self.cfg.distill_warmup) if self.cfg.distill_warmup else 1.0
        for group in self.dp.optim.param_groups:
            group["lr"] = self.cfg.distill_lr * warm
        stats["loss/dp_distill"] = self.dp.train_step(target, s, grad_clip=0)
        self.distill_steps += 1
        return stats

    def update(self, buffer, env_step: int) -> list[dict[str, float]]:
        self._go_online()
        return [self._update() for _ in range(self.updates_due(env_step))]

    def _update(self) -> dict[str, float]:
        """PA-RL's updates of one env step: `distill_updates` DP steps, then `critic_updates` critic steps."""
        acc: dict[str, list[float]] = {}
        steps = [self._distill_step] * self.cfg.distill_updates
        if self.cfg.critics_online:
            steps += [lambda: self._critic_step("mixed", self.cfg.online_ratio)] * self.cfg.critic_updates
        for step in steps:  # distillation first, then the critics (PA-RL's order)
            for key, v in step().items():
                acc.setdefault(key, []).append(v)
        return {key: float(np.mean(v)) for key, v in acc.items()}

    # ---- acting --------------------------------------------------------------------------------------------
    def act_rerank(self, obs, state: ActorState, eval_mode: bool) -> np.ndarray:
        cfg, k = self.cfg, self.act_steps
        s = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        sampler = self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler
        kept = rerank(self.q_mean, s, self.proposals(s, cfg.samples, state.generator, sampler), cfg.keep, k)
        opt, q = ascend(self.q_mean, s, kept, cfg.opt_steps, cfg.step(), k, cfg.step_units)
        chosen = choose(opt, q, argmax=True)
        return self.normalizer.unnorm_act(self.dp.executed(chosen)).detach().cpu().numpy()

    def act(self, obs, actor: str | None, state: ActorState, eval_mode: bool):
        if actor == "dp":
            return self.dp.act(obs, state.generator, eval_mode), {}
        if actor in ("rerank", None):  # None: training collects with `rerank` (PA-RL's train.py)
            return self.act_rerank(obs, state, eval_mode), {}
        raise ValueError(f"parl has actors {self.actors}, not '{actor}'")

    # ---- timing --------------------------------------------------------------------------------------------
    def timed_components(self, batch_size: int = 1):
        settings = {"samples": self.cfg.samples, "keep": self.cfg.keep, "iterations": self.cfg.opt_steps,
                    "denoising_steps": self.dp.denoising_steps(), "horizon": 0}
        return self._timed(batch_size, self._update, 1.0 / self.cfg.update_every, settings)

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {**super().extra_state(), "distill_steps": int(self.distill_steps)}
