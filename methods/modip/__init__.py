"""MODIP: a pretrained diffusion policy fine-tuned on targets planned by MPC in a learned world model.

Why: this is the method the harness exists to test (DESIGN.md, "Methods"). Its two claims are knobs here:
- inference time, `modip.planner.terminal` ∈ {v, q, none}: plans scored by a terminal V(s) cost no DP chain,
  while a terminal Q(s, a ~ DP) costs one full denoising chain per candidate and iteration (planner.py);
- training time, `modip.critic.target` ∈ {indep, policy}: critics learned from policy-independent TD targets
  (expectile TD on V, Q toward r + γV) against TD-MPC2-style targets that sample the DP (critics.py);
- the world model's worth, `modip.planner.horizon: 0`: the same method without one (never built, trained or
  consulted), whose plan is the DP proposal with the highest Q(s, a_0) (planner.py `plan_by_q`).

Pieces, read in this order: config.py (the `modip` section, its presets and how they were chosen; no torch),
world_model.py (ensemble of probabilistic MLPs over Δs, r, termination), critics.py (V and Q), planner.py (MPPI
top to bottom), then this file, which wires them into the harness, then the two halves it delegates to:
distill.py (labels, their advantage and weights, the start rule, the DP's distillation step) and diagnostics.py
(`wm/*`, `diag/dp_spread`, `diag/v_mc_*`, `diag/plan_gap`). In short:
- pretrain: the DP comes from the common-start bc_dp checkpoint (a DPMethod); MODIP's own offline
  steps train the world model and the critics on the dataset, never the DP;
- actors: `dp` (the product: the fine-tuned DP alone, EMA weights), `mpc` (the planner, executing
  `replan_every` actions of each plan) and `mpc_chunk` (eval only: the planner executing the first Ta actions
  of each plan open-loop, a diagnostic of what a chunked policy can reach, the DP's ceiling). Training acts
  with `mpc`, and each executed step stores its noise-free planned action (per-action buffer extra
  `plan_action`), so exploration noise never enters a label; the plan's H-step reward (`plan_reward`) goes with
  the plan's first step, for the planned-vs-realised diagnostic;
- labels (distill.py): a label is the Ta-chunk of planned actions executed from a stored state on (the buffer's chunk
  sampler over `plan_action`), paired with the state at its first action, so the DP imitates what the closed-loop
  planner did from that state (replanning every `replan_every` steps), not one plan's open-loop intent; the DP
  then executes `dp.act_steps` of each chunk it samples;
- fine-tune: every `update_every` env steps, one update of the world model (each member its own batch with the
  offline/online mix), the critics, and, once the start rule holds, the DP with its ordinary denoising loss on
  (s, label) pairs mixed with offline (s, chunk) pairs. Online data enters the world-model and critic batches on
  a ramp (`online_ramp`); labels enter the DP batch on a ramp with the labels made since distillation started
  (`label_ramp`); distillation starts only once the planner's training episodes beat the offline data's mean
  return and the pool is big enough (training-side signals only), with fresh optimiser moments; labels are weighted by
  their advantage Q(s, label[0]) - Q(s, a_DP[0]) (first action only; `label_weighting` ∈ {none, filter, awr});
- diagnostics into the curves: `wm/*` one-step and H-step errors (also per member on offline and online data),
  `plan/ess` and `plan/dp_won` (the elite weights' effective sample size; the share of plans won by a DP
  proposal), `plan/lead_sd`, `plan/lead_reward` and `plan/lead_terminal` (for the searches that pick one DP
  proposal: the pick's lead over the median proposal, in the proposals' score std, and in the score's reward and
  terminal parts), `distill/*` (label advantage, kept share, DP-to-label distance, label share), `diag/dp_spread`,
  `loss/dp_distill` with its label and offline parts, `diag/v_mc_*` V against Monte-Carlo returns of each
  finished training episode, `diag/plan_gap` planned minus realised H-step reward (`wm/*` and `diag/*` are
  computed in diagnostics.py, `distill/*` in distill.py).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.common.section import ConfigError
from methods.dp_method import DPMethod, probe_obs
from methods.modip import diagnostics, distill
from methods.modip.config import ACTORS, ModipConfig
from methods.modip.critics import Critics
from methods.modip.distill import offline_episode_return, ramp
from methods.modip.planner import PlanModels, plan, plan_best_of_dp, plan_by_q, shift_mean
from methods.modip.world_model import WorldModel


@register("modip")
class MODIP(DPMethod):
    Config = ModipConfig
    # dp first: the fine-tuned policy alone is the product (the headline actor); mpc_chunk is eval-only.
    actors = ACTORS

    def __init__(self, cfg: ModipConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        spaces = self.spaces
        best_of_dp = cfg.planner.search == "best_of_dp"
        if 0 < cfg.planner.horizon < self.chunk and not best_of_dp:
            raise ConfigError(f"config key 'modip.planner.horizon'={cfg.planner.horizon} must be 0 or >= the DP's "
                              f"chunk {self.chunk}: the mpc_chunk actor executes Ta actions of each plan")
        # A plan's length: horizon 0, one DP chunk; best_of_dp, max(horizon, chunk); mppi, the horizon.
        self.plan_length = max(cfg.planner.horizon, self.chunk) if best_of_dp else cfg.planner.horizon or self.chunk
        if (cfg.planner.horizon == 0 or best_of_dp) and cfg.planner.replan_every > self.plan_length:
            raise ConfigError(f"config key 'modip.planner.replan_every' must be <= {self.plan_length} at planner.horizon "
                              "0 or planner.search best_of_dp (a plan is a DP proposal of that many actions)")
        if cfg.world_model.termination == "task" and cfg.planner.horizon > 0 and spaces.terminal_fn is None:
            raise ConfigError("config key 'modip.world_model.termination'=task needs a task with a termination rule "
                              "(the MuJoCo locomotion tasks); this task has none: use termination=learned")
        self.gamma = float(spaces.gamma)
        # Horizon 0 (the control for the world model, planner.py `plan_by_q`): no world model at all, so it costs
        # nothing: not built, not trained, not checkpointed, never consulted.
        self.world_model: WorldModel | None = None
        self.wm_optim: torch.optim.Optimizer | None = None
        if cfg.planner.horizon > 0:
            self.world_model = WorldModel(spaces.obs_dim, spaces.act_dim, cfg.world_model).to(self.device)
            self.wm_optim = torch.optim.AdamW(self.world_model.parameters(), lr=cfg.world_model.lr,
                                              weight_decay=cfg.world_model.weight_decay, fused=True)
        self.critics = Critics(spaces.obs_dim, spaces.act_dim, cfg.critic, self.gamma,
                               compile_train=ctx.compile_train).to(self.device)
        self.critic_optim = torch.optim.Adam(self.critics.parameters_to_train(), lr=cfg.critic.lr, fused=True)
        # Episode diagnostics of the last finished training episode, returned with the next update (checkpointed).
        self.pending: dict[str, float] = {}
        # Training plans' ESS and DP-proposal wins since the last update: [Σ ess, Σ dp_won, plans].
        self.plan_acc = [0.0, 0.0, 0]
        # The picks' leads over the median proposal (PlanResult.lead) since the last update: [Σ lead (3,), plans].
        # Not checkpointed: a resume loses at most one update's worth of this diagnostic.
        self.plan_lead: list = [torch.zeros(3, dtype=torch.float64), 0]
        self.finetuning = False  # set at the first online update; the DP's fine-tuning lr / EMA decay apply from then on
        self.distilling = False  # set once by the start rule
        self.distill_start = -1  # online transitions when it fired (-1: not recorded)
        self.offline_return = float("nan")  # the offline data's mean episode return (set with the buffer)
        self.offline_horizon = 0  # its longest episode: training returns are counted over as many steps
        self.train_returns: list[float] = []  # returns of the last distill_start_episodes training episodes
        self.updates = 0  # offline and online updates made (the diagnostics' cadence, diag_every)
        self.fitted = False  # the offline statistics below are set (at the first verb: the buffer is there then)

    # ---- data ----------------------------------------------------------------------------------------------
    def _fit_offline(self) -> None:
        """The offline data's statistics, once: the critics' value scale, the world model's target statistics,
        and the data's mean episode return and horizon (the distillation start rule's bar). Called where the
        world model, the critics or the start rule are first used (the harness attaches the buffer first)."""
        if self.fitted or self.buffer is None:
            return
        self.fitted = True
        buffer = self.buffer
        off = buffer.offline_stats(("obs", "next_obs", "reward"))
        rewards = torch.as_tensor(off["reward"])
        self.critics.set_value_scale(rewards)
        if self.world_model is not None:
            with torch.no_grad():
                obs = self.normalizer.norm_obs(torch.as_tensor(off["obs"]).to(self.device))
                nobs = self.normalizer.norm_obs(torch.as_tensor(off["next_obs"]).to(self.device))
                self.world_model.set_target_stats(obs, nobs, rewards.to(self.device))
        self.offline_return, self.offline_horizon = offline_episode_return(
            buffer.offline_stats(("reward", "terminal", "timeout")))

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        return {"plan_action": (self.spaces.act_dim,), "plan_reward": ()}

    def _normalised(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"obs": self.normalizer.norm_obs(b["obs"]), "next_obs": self.normalizer.norm_obs(b["next_obs"]),
                "action": self.normalizer.norm_act(b["action"]), "reward": b["reward"],
                "terminal": b["terminal"]}

    def online_ratio_now(self) -> float:
        """The online share of world-model and critic batches: online_ratio, ramped in with the online data."""
        return ramp(self.cfg.online_ratio, self.buffer.n_online, self.cfg.online_ramp)

    # ---- updates -------------------------------------------------------------------------------------------
    def _wm_step(self, source: str) -> dict[str, float]:
        """One world-model step (nothing at horizon 0: there is no world model)."""
        if self.world_model is None:
            return {}
        self._fit_offline()
        wcfg = self.cfg.world_model
        k, n = wcfg.members, wcfg.batch_size
        # One batch per member, each with the offline/online mix on its own (groups=k): a single k·n draw,
        # viewed as (k, n), would give the first members only offline data and the last only online data.
        raw = self.buffer.sample(k * n, source=source, device=self.device, online_ratio=self.online_ratio_now(),
                                 fields=("obs", "action", "reward", "next_obs", "terminal"), groups=k)
        b = {key: v.view(k, n, *v.shape[1:]) for key, v in self._normalised(raw).items()}
        self.world_model.train()
        loss, metrics = self.world_model.loss(b["obs"], b["action"], b["next_obs"], b["reward"], b["terminal"])
        self.wm_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.world_model.parameters(), self.cfg.world_model.grad_clip)
        self.wm_optim.step()
        return metrics

    def _dp_first_action(self, s: torch.Tensor) -> torch.Tensor:
        """The critic.target=policy control: the EMA DP's first action at normalised states (global RNG)."""
        return self.dp.ema.module.sample(s, generator=None, sampler=self.dp_cfg.sampler)[:, 0]

    def _critic_step(self, source: str) -> dict[str, float]:
        self._fit_offline()
        raw = self.buffer.sample(self.cfg.critic.batch_size, source=source, device=self.device,
                                 online_ratio=self.online_ratio_now(),
                                 fields=("obs", "action", "reward", "next_obs", "terminal"))
        sampler = self._dp_first_action if self.cfg.critic.target == "policy" else None
        loss, metrics = self.critics.loss(self._normalised(raw), sampler)
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critics.parameters_to_train(), 10.0)
        self.critic_optim.step()
        self.critics.update_targets()
        return metrics

    # ---- distillation (distill.py) -------------------------------------------------------------------------
    def label_count(self) -> int:
        return distill.label_count(self)

    def label_batch(self, n: int) -> dict[str, torch.Tensor]:
        return distill.label_batch(self, n)

    def label_advantage(self, obs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return distill.label_advantage(self, obs, labels)

    def label_weights(self, adv: torch.Tensor) -> torch.Tensor:
        return distill.label_weights(self, adv)

    def label_share(self) -> float:
        return distill.label_share(self)

    def _start_rule(self) -> dict[str, float]:
        return distill.start_rule(self)

    def distill_batch(self, n: int) -> dict[str, torch.Tensor]:
        return distill.distill_batch(self, n)

    def _distill(self) -> dict[str, float]:
        return distill.distill(self)

    # ---- diagnostics (diagnostics.py) ----------------------------------------------------------------------
    def _wm_diagnostics(self, source: str) -> dict[str, float]:
        if self.world_model is None:
            return {}
        self._fit_offline()
        return diagnostics.wm_diagnostics(self, source)

    def _dp_spread(self, states: int = 32, samples: int = 8) -> dict[str, float]:
        return diagnostics.dp_spread(self, states, samples)

    def _episode_diagnostics(self, ep: dict[str, np.ndarray]) -> dict[str, float]:
        self._fit_offline()
        return diagnostics.episode_diagnostics(self, ep)

    # ---- pretrain and fine-tune ----------------------------------------------------------------------------
    def pretrain(self, buffer) -> dict[str, float]:
        """One offline update of the world model and the critics (each part samples its own batch; the world
        model takes one per member)."""
        metrics = {**self._wm_step("offline"), **self._critic_step("offline")}
        self.updates += 1
        if self.updates % self.cfg.diag_every == 0:
            metrics.update(self._wm_diagnostics("offline"))
        return metrics

    def _set_distill_hparams(self) -> None:
        """Fine-tuning lr and EMA decay of the DP (the pretrained DP's own unless set), at every online update
        (the loaded optimiser state carries the common start's lr)."""
        self.finetuning = True
        if self.cfg.distill_lr > 0:
            for group in self.dp.optim.param_groups:
                group["lr"] = self.cfg.distill_lr
        if self.cfg.distill_ema_decay > 0:
            self.dp.ema.decay = self.cfg.distill_ema_decay

    def update(self, buffer, env_step: int) -> list[dict[str, float]]:
        """A finished training episode's diagnostics first, then every update_every env steps updates_per_round
        updates."""
        self._set_distill_hparams()
        if buffer.episode_ended():
            self._on_episode(buffer.last_episode())
        due = self.cfg.updates_per_round if env_step % self.cfg.update_every == 0 else 0
        return [self._finetune() for _ in range(due)]

    def _finetune(self) -> dict[str, float]:
        metrics = {**self._wm_step("mixed"), **self._critic_step("mixed"),
                   "wm/online_ratio": self.online_ratio_now()}
        if self.cfg.distill and self.cfg.distill_updates > 0:
            if not self.distilling:
                metrics.update(self._start_rule())
            if self.distilling:
                metrics.update(self._distill())
        self.updates += 1
        if self.updates % self.cfg.diag_every == 0:
            metrics.update(self._wm_diagnostics("mixed"))
            metrics.update(self._dp_spread())
        metrics.update(self._plan_metrics())
        metrics.update(self.pending)
        self.pending = {}
        return metrics

    # ---- episode diagnostics -------------------------------------------------------------------------------
    def _on_episode(self, episode: dict[str, np.ndarray]) -> None:
        self.pending.update(self._episode_diagnostics(episode))
        # over the data's horizon: a task with longer episodes than its data (demo-long) must not pass on length
        ret = float(episode["reward"][: self.offline_horizon or None].sum())
        self.train_returns = (self.train_returns + [ret])[-max(1, self.cfg.distill_start_episodes):]
        if not self.distilling:
            self.pending["distill/offline_return"] = self.offline_return

    # ---- acting --------------------------------------------------------------------------------------------
    def plan_models(self, eval_mode: bool) -> PlanModels:
        sampler = self.cfg.planner.dp_sampler or (self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler)
        dp = self.dp.ema.module
        wm, need_spread = self.world_model, self.cfg.planner.uncertainty_penalty > 0
        step = None if wm is None else (lambda s, a: wm.step(s, a, disagreement=need_spread))
        if wm is not None and self.cfg.world_model.termination == "task":
            step = self._task_terminated(step)
        return PlanModels(step=step, value=self.critics.value,
                          q=self.critics.q_value,
                          policy=lambda s, generator: dp.sample(s, generator=generator, sampler=sampler))

    def _task_terminated(self, step):
        """`step` with its termination probability replaced by the task's rule on the predicted observation (1
        where it ends the episode, else 0): MBPO's static termination functions (`world_model.termination`)."""
        rule, norm = self.spaces.terminal_fn, self.normalizer

        def with_rule(s, a):
            s_next, reward, _, spread = step(s, a)
            return s_next, reward, rule(norm.unnorm_obs(s_next)).to(reward.dtype), spread
        return with_rule

    def _warm_start(self, state: ActorState, batch: int) -> torch.Tensor | None:
        mean = state.memory.get("mean")
        if mean is None:
            return None
        # After a resume the memory comes back as nested lists (it is checkpointed as plain data).
        mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        if mean.shape != (batch, self.cfg.planner.horizon, self.spaces.act_dim):
            return None
        return mean  # zero for the envs that started an episode (ActorState.reset)

    def _plan_metrics(self) -> dict[str, float]:
        """The training plans' diagnostics since the last update (`plan/*`), and the accumulators reset."""
        metrics: dict[str, float] = {}
        if self.plan_acc[2] > 0:
            metrics["plan/ess"] = self.plan_acc[0] / self.plan_acc[2]
            metrics["plan/dp_won"] = self.plan_acc[1] / self.plan_acc[2]
            self.plan_acc = [0.0, 0.0, 0]
        if self.plan_lead[1] > 0:
            names = ("plan/lead_sd", "plan/lead_reward", "plan/lead_terminal")
            lead = (self.plan_lead[0] / self.plan_lead[1]).tolist()
            metrics.update({k: v for k, v in zip(names, lead) if not math.isnan(v)})  # horizon 0: NaN parts out
            self.plan_lead = [torch.zeros(3, dtype=torch.float64), 0]
        return metrics

    @torch.no_grad()
    def act_mpc(self, obs: np.ndarray, state: ActorState, eval_mode: bool,
                execute: int | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Plan from each observation and return the first `execute` actions of the plan (replan_every unless
        given; the mpc_chunk actor passes the DP's chunk Ta), with the extras. In training, exploration noise is
        added to the executed actions only: the noise-free planned actions go to the buffer as `plan_action`,
        one per step, and the plan's H-step reward as `plan_reward`, with the decision."""
        pcfg = self.cfg.planner
        execute = int(pcfg.replan_every if execute is None else execute)
        s = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        if self.world_model is None:  # horizon 0: the DP proposal with the highest Q, no warm start
            result = plan_by_q(self.plan_models(eval_mode), s, state.generator, pcfg)
        elif pcfg.search == "best_of_dp":  # the best DP proposal by the model's score, no warm start
            self.world_model.eval()
            result = plan_best_of_dp(self.plan_models(eval_mode), s, state.generator, pcfg, self.gamma,
                                     self.plan_length)
        else:
            self.world_model.eval()
            result = plan(self.plan_models(eval_mode), s, self._warm_start(state, s.shape[0]), state.generator,
                          pcfg, self.gamma, self.spaces.act_dim)
        planned = result.mean[:, :execute]
        actions = planned
        if not eval_mode and pcfg.explore_std > 0:
            noise = torch.randn(actions.shape, device=self.device, generator=state.generator)
            actions = (actions + pcfg.explore_std * noise).clamp(-1.0, 1.0)
        if self.world_model is not None and pcfg.search == "mppi":
            state.memory["mean"] = shift_mean(result.mean, execute)
        extras = {"plan_action": planned.cpu().numpy(), "plan_reward": result.planned_reward.cpu().numpy()}
        if not eval_mode:
            self.plan_acc[0] += float(result.ess.sum())
            self.plan_acc[1] += float(result.dp_won.sum())
            self.plan_acc[2] += int(s.shape[0])
            if result.lead is not None:
                self.plan_lead[0] += result.lead.sum(0).to("cpu", torch.float64)
                self.plan_lead[1] += int(s.shape[0])
        return self.normalizer.unnorm_act(actions).cpu().numpy(), extras

    def act(self, obs, actor: str | None, state: ActorState, eval_mode: bool):
        self._fit_offline()
        if actor == "dp":  # the first dp.act_steps actions of the DP's chunk
            return self.dp.act(obs, state.generator, eval_mode), {}
        if actor in ("mpc", None):  # None: training collects with the planner
            return self.act_mpc(obs, state, eval_mode)
        if actor == "mpc_chunk":  # the DP's ceiling: whole Ta-chunks of each plan, open-loop
            return self.act_mpc(obs, state, eval_mode, execute=self.chunk)
        raise ValueError(f"modip has actors {self.actors}, not '{actor}'")

    def eval_same_as(self) -> dict[str, str]:
        """mpc_chunk executes Ta actions of each plan, mpc `replan_every`: at replan_every = Ta they are the same
        calls of act_mpc on the same draws, so the harness evaluates mpc once for both."""
        return {"mpc_chunk": "mpc"} if int(self.cfg.planner.replan_every) == int(self.chunk) else {}

    # ---- timing --------------------------------------------------------------------------------------------
    def planner_denoising_steps(self, eval_mode: bool = True) -> int:
        sampler = self.cfg.planner.dp_sampler or (self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler)
        return self.dp.denoising_steps(sampler)

    def timed_components(self, batch_size: int = 1):
        self._fit_offline()
        p = self.cfg.planner
        settings = {"horizon": p.horizon, "samples": p.samples, "iterations": p.iterations,
                    "denoising_steps": self.planner_denoising_steps(True), "terminal": p.terminal,
                    "critic_target": self.cfg.critic.target, "replan_every": p.replan_every,
                    "pi_trajectories": p.pi_trajectories,
                    "wm_members": self.cfg.world_model.members if self.world_model is not None else 0}
        obs = probe_obs(self, batch_size)
        plan_state = ActorState.create(0, self.device)
        dp_state = ActorState.create(1, self.device)
        chunk_state = ActorState.create(2, self.device)
        # A plan executes its first replan_every actions; a DP call the first dp.act_steps of its chunk;
        # `update` makes updates_per_round updates every update_every env steps.
        comps = {"plan": TimedComponent(lambda: self.act(obs, "mpc", plan_state, True), ComponentKind.PLAN,
                                        actor="mpc", actions_per_call=int(p.replan_every), settings=settings),
                 "plan_chunk": TimedComponent(lambda: self.act(obs, "mpc_chunk", chunk_state, True),
                                              ComponentKind.PLAN, actor="mpc_chunk", actions_per_call=int(self.chunk),
                                              settings=settings),
                 "dp_act": TimedComponent(lambda: self.act(obs, "dp", dp_state, True), ComponentKind.ACT,
                                          actor="dp", actions_per_call=self.act_steps, settings=settings)}
        if self.buffer is not None:
            comps["update"] = TimedComponent(self._timed_update, ComponentKind.UPDATE, settings=settings,
                                             updates_per_env_step=self.cfg.updates_per_round / self.cfg.update_every)
        return comps

    def _timed_update(self) -> dict[str, float]:
        """A fine-tune update with its DP step, whether or not the start rule has fired (a synthetic timing
        buffer never fires it; a distilling run's update is what the cost is about)."""
        was = self.distilling
        self.distilling = self.cfg.distill and self.cfg.distill_updates > 0
        try:
            return self._finetune()
        finally:
            self.distilling = was

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        wm = {} if self.world_model is None else {"world_model": self.world_model, "wm_optim": self.wm_optim}
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module, **wm,
                "critics": self.critics, "critic_optim": self.critic_optim}

    def extra_state(self) -> dict[str, Any]:
        return {"pending": dict(self.pending), "finetuning": self.finetuning, "distilling": self.distilling,
                "plan_acc": [float(self.plan_acc[0]), float(self.plan_acc[1]), int(self.plan_acc[2])],
                "train_returns": [float(x) for x in self.train_returns], "distill_start": int(self.distill_start),
                "updates": int(self.updates)}
