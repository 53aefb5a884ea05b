"""MODIP: a pretrained diffusion policy fine-tuned on targets planned by MPC in a learned world model.

Why: this is the method the harness exists to test (DESIGN.md, "Methods"). Its two claims are knobs here:
- inference time, `modip.planner.terminal` ∈ {v, q, none}: plans scored by a terminal V(s) cost no DP chain,
  while a terminal Q(s, a ~ DP) costs one full denoising chain per candidate and iteration (planner.py);
- training time, `modip.critic.target` ∈ {indep, policy}: critics learned from policy-independent TD targets
  (expectile TD on V, Q toward r + γV) against TD-MPC2-style targets that sample the DP (critics.py).

Pieces, read in this order: config.py (the `modip` section, its presets and how they were chosen; no torch),
world_model.py (ensemble of probabilistic MLPs over Δs, r, termination), critics.py (V and Q), planner.py (MPPI
top to bottom), then this file, which wires them into the harness:
- pretrain: the DP comes from the common-start bc_dp checkpoint (uses_pretrained_dp); MODIP's own offline
  steps train the world model and the critics on the dataset, never the DP;
- actors: `dp` (the product: the fine-tuned DP alone, EMA weights), `mpc` (the planner, executing
  `replan_every` actions of each plan) and `mpc_chunk` (eval only: the planner executing the first Ta actions
  of each plan open-loop, a diagnostic of what a chunked policy can reach, the DP's ceiling). Training acts
  with `mpc`, and each executed step stores its noise-free planned action (per-action buffer extra
  `plan_action`), so exploration noise never enters a label; the plan's H-step reward (`plan_reward`) goes with
  the plan's first step, for the planned-vs-realised diagnostic;
- labels: a label is the Ta-chunk of planned actions executed from a stored state on (the buffer's chunk
  sampler over `plan_action`), paired with the state at its first action, so the DP imitates what the closed-loop
  planner did from that state (replanning every `replan_every` steps), not one plan's open-loop intent; the DP
  then executes `dp.act_steps` of each chunk it samples;
- fine-tune: every `update_every` env steps, one update of the world model (each member its own batch with the
  offline/online mix), the critics, and, once the start rule holds, the DP with its ordinary denoising loss on
  (s, label) pairs mixed with offline (s, chunk) pairs. Online data enters the world-model and critic batches on
  a ramp (`online_ramp`); labels enter the DP batch on a ramp with the labels made since distillation started
  (`label_ramp`); distillation starts when the planner's training episodes beat the offline data's mean return,
  or the pool is big enough (training-side signals only), with fresh optimiser moments; labels are weighted by
  their advantage Q(s, label[0]) - Q(s, a_DP[0]) (first action only; `label_weighting` ∈ {none, filter, awr});
- diagnostics into the curves: `wm/*` one-step and H-step errors (also per member on offline and online data),
  `plan/ess` and `plan/dp_won` (the elite weights' effective sample size; the share of plans won by a DP
  proposal), `distill/*` (label advantage, kept share, DP-to-label distance, label share), `diag/dp_spread`,
  `loss/dp_distill` with its label and offline parts, `diag/v_mc_*` V against Monte-Carlo returns of each
  finished training episode, `diag/plan_gap` planned minus realised H-step reward.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.common.section import ConfigError
from methods.dp_method import DPMethod
from methods.modip.config import PRESETS, SUITE_DEFAULTS, ModipConfig
from methods.modip.critics import Critics
from methods.modip.planner import PlanModels, plan, shift_mean
from methods.modip.world_model import WorldModel


def ramp(value: float, count: int, length: int) -> float:
    """value · min(1, count / length): a share that grows with its pool (length 0 = the full value at once)."""
    return float(value) if length <= 0 else float(value) * min(1.0, count / length)


@register("modip")
class MODIP(DPMethod):
    Config = ModipConfig
    rollout_kind = "off_policy"
    uses_pretrained_dp = True
    # dp first: the fine-tuned policy alone is the product (the headline actor); mpc_chunk is eval-only.
    actors = ("dp", "mpc", "mpc_chunk")
    train_actor = "mpc"
    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS  # methods/modip/config.py, with how each was chosen
    suite_defaults: ClassVar[dict[str, dict[str, Any]]] = SUITE_DEFAULTS

    def __init__(self, cfg: ModipConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        spaces = self.spaces
        if cfg.planner.horizon < self.chunk:
            raise ConfigError(f"config key 'modip.planner.horizon'={cfg.planner.horizon} must be >= the DP's "
                              f"chunk {self.chunk}: the mpc_chunk actor executes Ta actions of each plan")
        self.gamma = float(spaces.gamma)
        self.world_model = WorldModel(spaces.obs_dim, spaces.act_dim, cfg.world_model).to(self.device)
        self.wm_optim = torch.optim.AdamW(self.world_model.parameters(), lr=cfg.world_model.lr,
                                          weight_decay=cfg.world_model.weight_decay)
        self.critics = Critics(spaces.obs_dim, spaces.act_dim, cfg.critic, self.gamma).to(self.device)
        self.critic_optim = torch.optim.Adam(self.critics.parameters_to_train(), lr=cfg.critic.lr)
        # Episode diagnostics computed in observe(), returned by the next update (saved in checkpoints).
        self.pending: dict[str, float] = {}
        # Training plans' ESS and DP-proposal wins since the last update: [Σ ess, Σ dp_won, plans].
        self.plan_acc = [0.0, 0.0, 0]
        self.finetuning = False  # set by end_pretrain; the DP's fine-tuning lr / EMA decay apply from then on
        self.distilling = False  # set once by the start rule
        self.distill_start = -1  # online transitions when it fired (-1: not recorded)
        self.offline_return = float("nan")  # the offline data's mean episode return (set with the buffer)
        self.offline_horizon = 0  # its longest episode: training returns are counted over as many steps
        self.train_returns: list[float] = []  # returns of the last distill_start_episodes training episodes

    # ---- data ----------------------------------------------------------------------------------------------
    def attach_buffer(self, buffer) -> None:
        super().attach_buffer(buffer)
        off = buffer.offline_stats(("obs", "next_obs", "reward"))
        rewards = torch.as_tensor(off["reward"])
        self.critics.set_value_scale(rewards)
        with torch.no_grad():
            obs = self.normalizer.norm_obs(torch.as_tensor(off["obs"]).to(self.device))
            nobs = self.normalizer.norm_obs(torch.as_tensor(off["next_obs"]).to(self.device))
            self.world_model.set_target_stats(obs, nobs, rewards.to(self.device))
        self.offline_return, self.offline_horizon = offline_episode_return(
            buffer.offline_stats(("reward", "terminal", "timeout")))

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        return {"plan_action": (self.spaces.act_dim,), "plan_reward": ()}

    def per_action_extras(self) -> tuple[str, ...]:
        return ("plan_action",)

    def _normalised(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"obs": self.normalizer.norm_obs(b["obs"]), "next_obs": self.normalizer.norm_obs(b["next_obs"]),
                "action": self.normalizer.norm_act(b["action"]), "reward": b["reward"],
                "terminal": b["terminal"]}

    def online_ratio_now(self) -> float:
        """The online share of world-model and critic batches: online_ratio, ramped in with the online data."""
        return ramp(self.cfg.online_ratio, self.buffer.n_online, self.cfg.online_ramp)

    # ---- updates -------------------------------------------------------------------------------------------
    def _wm_step(self, source: str) -> dict[str, float]:
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

    # ---- labels --------------------------------------------------------------------------------------------
    def label_count(self) -> int:
        """Labels in the pool: online steps with a planned action (within the label window)."""
        return self.buffer.count_carrying("plan_action", source="online", recent=self.cfg.label_window)

    def label_batch(self, n: int) -> dict[str, torch.Tensor]:
        """n labels: normalised states, each with the Ta-chunk of noise-free planned actions executed from it on
        (the episode's last planned action repeated past its end; a chunk never waits on steps not yet taken)."""
        lab = self.buffer.sample_chunks(n, self.chunk, source="online", device=self.device, field="plan_action",
                                        require="plan_action", recent=self.cfg.label_window, complete=True)
        # planned actions are stored as planned: normalised actions in [-1, 1], the DP's own space
        return {"obs": self.normalizer.norm_obs(lab["obs"]), "chunk": lab["action_chunk"], "index": lab["index"]}

    @torch.no_grad()
    def label_advantage(self, obs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A = Q(s, label[0]) - Q(s, a_DP[0]) in env units, at normalised states, with a fresh chunk of the EMA DP
        (sampled as the planner samples it; global RNG). The first action only. Returns (A, the DP's chunks)."""
        sampler = self.cfg.planner.dp_sampler or self.dp_cfg.sampler
        dp_chunks = self.dp.ema.module.sample(obs, generator=None, sampler=sampler)
        adv = self.critics.q_value(obs, labels[:, 0]) - self.critics.q_value(obs, dp_chunks[:, 0])
        return adv, dp_chunks

    def label_weights(self, adv: torch.Tensor) -> torch.Tensor:
        """The `label_weighting` of each label from its advantage (env units)."""
        mode = self.cfg.label_weighting
        if mode == "none":
            return torch.ones_like(adv)
        if mode == "filter":
            return (adv > 0).float()
        return torch.exp(self.cfg.awr_beta * adv / self.critics.value_scale).clamp(max=self.cfg.awr_max_weight)

    def label_share(self) -> float:
        """label_ratio, ramped in with the labels made since distillation started (all labels before a start is
        recorded, e.g. when a test sets `distilling` by hand)."""
        made = self.buffer.n_online - self.distill_start if self.distill_start >= 0 else self.label_count()
        return ramp(self.cfg.label_ratio, min(made, self.label_count()), self.cfg.label_ramp)

    def _start_rule(self) -> dict[str, float]:
        """Start distillation at the first of the rules in ModipConfig (training-side signals only). Fine-tuning on
        labels starts with fresh optimiser moments: BC's Adam moments belong to other targets."""
        cfg, n = self.cfg, self.label_count()
        out: dict[str, float] = {}
        if n == 0:
            return out
        k = cfg.distill_start_episodes
        ready = 0 < cfg.distill_start_labels <= n
        if not ready and k > 0 and len(self.train_returns) >= k:
            ready = float(np.mean(self.train_returns[-k:])) >= self.offline_return
        if not ready and 0 < cfg.distill_start_adv_labels <= n:
            b = self.label_batch(min(cfg.distill_batch, n))
            adv = float(self.label_advantage(b["obs"], b["chunk"])[0].mean())
            out["distill/pool_adv"] = adv
            ready = adv > 0
        if ready:
            self.distilling = True
            self.distill_start = int(self.buffer.n_online)
            self.dp.reset_optimizer_moments()
            out["distill/started_at"] = float(self.buffer.n_online)
        return out

    def distill_batch(self, n: int) -> dict[str, torch.Tensor]:
        """Labels at the ramped label share, weighted by their advantage, mixed with offline (s, chunk) pairs
        (weight 1). `is_label` marks the label rows; `adv` and `dp_chunk` belong to them."""
        n_label = min(n, round(n * self.label_share()))
        parts: dict[str, list[torch.Tensor]] = {"obs": [], "chunk": [], "weights": [], "is_label": []}
        out: dict[str, torch.Tensor] = {}
        if n_label > 0:
            lab = self.label_batch(n_label)
            adv, dp_chunks = self.label_advantage(lab["obs"], lab["chunk"])
            parts["obs"].append(lab["obs"])
            parts["chunk"].append(lab["chunk"])
            parts["weights"].append(self.label_weights(adv))
            parts["is_label"].append(torch.ones(n_label, dtype=torch.bool, device=self.device))
            out.update(adv=adv, dp_chunk=dp_chunks, label_chunk=lab["chunk"])
        if n - n_label > 0:
            off = self.dp_batch(n - n_label, "offline")
            parts["obs"].append(off["obs"])
            parts["chunk"].append(off["chunk"])
            parts["weights"].append(torch.ones(n - n_label, device=self.device))
            parts["is_label"].append(torch.zeros(n - n_label, dtype=torch.bool, device=self.device))
        out.update({k: torch.cat(v) for k, v in parts.items()})
        return out

    def _distill(self) -> dict[str, float]:
        """distill_updates DP steps on distillation batches, with the loss split into its label and offline parts."""
        acc: dict[str, list[float]] = {}
        for _ in range(self.cfg.distill_updates):
            b = self.distill_batch(self.cfg.distill_batch)
            loss, errors = self.dp.train_step_errors(b["chunk"], b["obs"], weights=b["weights"])
            lab = b["is_label"]
            rows = {"loss/dp_distill": loss, "distill/label_share": float(lab.float().mean())}
            if lab.any():
                w = b["weights"][lab]
                rows["loss/dp_distill_label"] = float((errors[lab] * w).sum() / w.sum().clamp_min(1e-8))
                rows["distill/label_adv"] = float(b["adv"].mean())
                rows["distill/label_kept"] = float((w > 0).float().mean())
                rows["distill/label_weight"] = float(w.mean())
                rows["distill/dp_label_dist"] = float((b["dp_chunk"] - b["label_chunk"]).abs().mean())
            if (~lab).any():
                rows["loss/dp_distill_offline"] = float(errors[~lab].mean())
            for k, v in rows.items():
                acc.setdefault(k, []).append(v)
        return {k: float(np.mean(v)) for k, v in acc.items()}

    # ---- diagnostics ---------------------------------------------------------------------------------------
    def _wm_diagnostics(self, source: str) -> dict[str, float]:
        h = self.cfg.planner.horizon
        out: dict[str, float] = {}
        self.world_model.eval()
        # per member, one step, on offline and (once there is any) online data
        n = self.cfg.diag_sequences
        for part in ("offline", "online"):
            if part == "online" and self.buffer.n_online == 0:
                continue
            raw = self._normalised(self.buffer.sample(n, source=part, device=self.device,
                                                      fields=("obs", "action", "reward", "next_obs", "terminal")))
            errs = self.world_model.member_errors(raw["obs"], raw["action"], raw["next_obs"])
            out.update({f"wm/member{k}_{part}_obs_nmse": float(e) for k, e in enumerate(errs)})
        try:
            seq = self.buffer.sample_sequences(n, h, source=source, device=self.device,
                                               online_ratio=self.online_ratio_now())
        except RuntimeError:  # no segment of length H yet
            return out
        obs = self.normalizer.norm_obs(torch.cat([seq["obs"][:, :1], seq["next_obs"]], dim=1))
        out.update(self.world_model.errors(obs, self.normalizer.norm_act(seq["action"]), seq["reward"]))
        return out

    @torch.no_grad()
    def _dp_spread(self, states: int = 32, samples: int = 8) -> dict[str, float]:
        """The spread of the DP's actions: the std of its chunks over repeated samples at the same states (label
        states once there are labels, else offline states), averaged over states, steps and dims."""
        if self.distilling and self.label_count() > 0:
            s = self.label_batch(states)["obs"]
        else:
            s = self.dp_batch(states, "offline")["obs"]
        chunks = self.dp.ema.module.sample(s.repeat(samples, 1), generator=None, sampler=self.dp_cfg.sampler)
        return {"diag/dp_spread": float(chunks.view(samples, states, *chunks.shape[1:]).std(0).mean())}

    def pretrain_batch(self):
        return None  # each part samples its own batch (the world model takes one per member)

    def pretrain_step(self, batch=None) -> dict[str, float]:
        metrics = {**self._wm_step("offline"), **self._critic_step("offline")}
        self.grad_steps += 1
        if self.grad_steps % self.cfg.diag_every == 0:
            metrics.update(self._wm_diagnostics("offline"))
        return metrics

    def end_pretrain(self) -> None:
        self.dp.reset_to_ema()  # fine-tuning starts from the EMA weights (protocol rule)
        self.finetuning = True
        self._set_distill_hparams()

    def _set_distill_hparams(self) -> None:
        """Fine-tuning lr and EMA decay of the DP (the pretrained DP's own unless set). Applied again after a
        checkpoint load, since the optimiser state carries the pretrained lr."""
        if self.cfg.distill_lr > 0:
            for group in self.dp.optim.param_groups:
                group["lr"] = self.cfg.distill_lr
        if self.cfg.distill_ema_decay > 0:
            self.dp.ema.decay = self.cfg.distill_ema_decay

    def updates_due(self, env_step: int) -> int:
        return self.cfg.updates_per_round if env_step % self.cfg.update_every == 0 else 0

    def finetune_step(self) -> dict[str, float]:
        metrics = {**self._wm_step("mixed"), **self._critic_step("mixed"),
                   "wm/online_ratio": self.online_ratio_now()}
        if self.cfg.distill and self.cfg.distill_updates > 0:
            if not self.distilling:
                metrics.update(self._start_rule())
            if self.distilling:
                metrics.update(self._distill())
        self.grad_steps += 1
        if self.grad_steps % self.cfg.diag_every == 0:
            metrics.update(self._wm_diagnostics("mixed"))
            metrics.update(self._dp_spread())
        if self.plan_acc[2] > 0:
            metrics["plan/ess"] = self.plan_acc[0] / self.plan_acc[2]
            metrics["plan/dp_won"] = self.plan_acc[1] / self.plan_acc[2]
            self.plan_acc = [0.0, 0.0, 0]
        metrics.update(self.pending)
        self.pending = {}
        return metrics

    # ---- episode diagnostics -------------------------------------------------------------------------------
    def observe_episode(self, episode: dict[str, np.ndarray]) -> None:
        self.pending.update(self._episode_diagnostics(episode))
        # over the data's horizon: a task with longer episodes than its data (demo-long) must not pass on length
        ret = float(episode["reward"][: self.offline_horizon or None].sum())
        self.train_returns = (self.train_returns + [ret])[-max(1, self.cfg.distill_start_episodes):]
        if not self.distilling:
            self.pending["distill/offline_return"] = self.offline_return

    @torch.no_grad()
    def _episode_diagnostics(self, ep: dict[str, np.ndarray]) -> dict[str, float]:
        """V against the episode's discounted Monte-Carlo returns (bootstrapped with V_target at a timeout, so
        exact on terminated episodes), and planned minus realised H-step reward at each plan."""
        g = self.gamma
        rewards = ep["reward"].astype(np.float64)
        terminated = bool(ep["terminal"][-1])
        tail = 0.0
        if not terminated:
            s_last = self.normalizer.norm_obs(torch.as_tensor(ep["next_obs"][-1:], device=self.device))
            tail = float(self.critics.v_target(s_last).squeeze() * self.critics.value_scale)
        returns = np.zeros(len(rewards))
        acc = tail
        for i in range(len(rewards) - 1, -1, -1):
            acc = rewards[i] + g * acc
            returns[i] = acc
        values = self.critics.value(self.normalizer.norm_obs(
            torch.as_tensor(ep["obs"], device=self.device))).cpu().numpy().astype(np.float64)
        out = {"diag/v_minus_mc": float(np.mean(values - returns))}
        if len(rewards) > 2 and values.std() > 0 and returns.std() > 0:
            out["diag/v_mc_spearman"] = spearman(values, returns)
        # planned vs realised H-step reward, where the realised window is complete (or ended by a terminal)
        h = self.cfg.planner.horizon
        planned, realised = [], []
        discounts = g ** np.arange(h)
        for j in np.flatnonzero(ep["has_plan_reward"]):
            window = rewards[j: j + h]
            if len(window) == h or terminated:
                planned.append(float(ep["plan_reward"][j]))
                realised.append(float((discounts[: len(window)] * window).sum()))
        if planned:
            out["diag/plan_gap"] = float(np.mean(np.subtract(planned, realised)))
        return out

    # ---- acting --------------------------------------------------------------------------------------------
    def plan_models(self, eval_mode: bool) -> PlanModels:
        sampler = self.cfg.planner.dp_sampler or (self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler)
        dp = self.dp.ema.module
        wm, need_spread = self.world_model, self.cfg.planner.uncertainty_penalty > 0
        return PlanModels(step=lambda s, a: wm.step(s, a, disagreement=need_spread), value=self.critics.value,
                          q=self.critics.q_value,
                          policy=lambda s, generator: dp.sample(s, generator=generator, sampler=sampler))

    def _warm_start(self, state: ActorState, batch: int) -> torch.Tensor | None:
        mean = state.memory.get("mean")
        if mean is None:
            return None
        # After a resume the memory comes back as nested lists (it is checkpointed as plain data).
        mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        if mean.shape != (batch, self.cfg.planner.horizon, self.spaces.act_dim):
            return None
        resets = state.memory.pop("reset_envs", None)
        if resets:
            mean = mean.clone()
            mean[sorted(int(i) for i in resets)] = 0.0
        return mean

    @torch.no_grad()
    def act_mpc(self, obs: np.ndarray, state: ActorState, eval_mode: bool, execute: int | None = None) -> np.ndarray:
        """Plan from each observation and return the first `execute` actions of the plan (replan_every unless
        given; the mpc_chunk actor passes the DP's chunk Ta). In training, exploration noise is added to the
        executed actions only: the noise-free planned actions go to the buffer as `plan_action`, one per step."""
        pcfg = self.cfg.planner
        execute = int(pcfg.replan_every if execute is None else execute)
        s = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        self.world_model.eval()
        result = plan(self.plan_models(eval_mode), s, self._warm_start(state, s.shape[0]), state.generator, pcfg,
                      self.gamma, self.spaces.act_dim)
        planned = result.mean[:, :execute]
        actions = planned
        if not eval_mode and pcfg.explore_std > 0:
            noise = torch.randn(actions.shape, device=self.device, generator=state.generator)
            actions = (actions + pcfg.explore_std * noise).clamp(-1.0, 1.0)
        state.memory["mean"] = shift_mean(result.mean, execute)
        state.extras = {"plan_action": planned.cpu().numpy(), "plan_reward": result.planned_reward.cpu().numpy()}
        if not eval_mode:
            self.plan_acc[0] += float(result.ess.sum())
            self.plan_acc[1] += float(result.dp_won.sum())
            self.plan_acc[2] += int(s.shape[0])
        return self.normalizer.unnorm_act(actions).cpu().numpy()

    def act(self, obs, actor: str, state: ActorState, eval_mode: bool) -> np.ndarray:
        if actor == "dp":  # the first dp.act_steps actions of the DP's chunk (DPMethod.act_dp)
            return self.act_dp(obs, state, eval_mode)
        if actor == "mpc":
            return self.act_mpc(obs, state, eval_mode)
        if actor == "mpc_chunk":  # the DP's ceiling: whole Ta-chunks of each plan, open-loop
            return self.act_mpc(obs, state, eval_mode, execute=self.chunk)
        raise ValueError(f"modip has actors {self.actors}, not '{actor}'")

    # ---- timing --------------------------------------------------------------------------------------------
    def planner_denoising_steps(self, eval_mode: bool = True) -> int:
        sampler = self.cfg.planner.dp_sampler or (self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler)
        return self.dp_cfg.ddim_steps if sampler == "ddim" else self.dp_cfg.denoising_steps

    def cost_settings(self) -> dict[str, Any]:
        p = self.cfg.planner
        return {"horizon": p.horizon, "samples": p.samples, "iterations": p.iterations,
                "denoising_steps": self.planner_denoising_steps(True), "terminal": p.terminal,
                "critic_target": self.cfg.critic.target, "replan_every": p.replan_every,
                "pi_trajectories": p.pi_trajectories, "wm_members": self.cfg.world_model.members}

    def timed_components(self, batch_size: int = 1):
        if self.buffer is not None and self.buffer.size >= batch_size:
            obs = self.buffer.offline_stats(("obs",), limit=batch_size)["obs"]
        else:
            obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        plan_state = ActorState.create(0, self.device)
        dp_state = ActorState.create(1, self.device)
        chunk_state = ActorState.create(2, self.device)
        # A plan executes its first replan_every actions; a DP call the first dp.act_steps of its chunk (what
        # act_dp returns); updates_due makes updates_per_round updates every update_every env steps.
        executed = self.act_steps
        comps = {"plan": TimedComponent(lambda: self.act(obs, "mpc", plan_state, True), ComponentKind.PLAN,
                                        actor="mpc", actions_per_call=int(self.cfg.planner.replan_every)),
                 "plan_chunk": TimedComponent(lambda: self.act(obs, "mpc_chunk", chunk_state, True), ComponentKind.PLAN,
                                              actor="mpc_chunk", actions_per_call=int(self.chunk)),
                 "dp_act": TimedComponent(lambda: self.act(obs, "dp", dp_state, True), ComponentKind.ACT,
                                          actor="dp", actions_per_call=executed)}
        if self.buffer is not None:
            comps["update"] = TimedComponent(self._timed_update, ComponentKind.UPDATE,
                                             updates_per_env_step=self.cfg.updates_per_round / self.cfg.update_every)
        return comps

    def _timed_update(self) -> dict[str, float]:
        """A fine-tune update with its DP step, whether or not the start rule has fired (a synthetic timing
        buffer never fires it; a distilling run's update is what the cost is about)."""
        was = self.distilling
        self.distilling = self.cfg.distill and self.cfg.distill_updates > 0
        try:
            return self.finetune_step()
        finally:
            self.distilling = was

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module,
                "world_model": self.world_model, "wm_optim": self.wm_optim, "critics": self.critics,
                "critic_optim": self.critic_optim}

    def extra_state(self) -> dict[str, Any]:
        return {"pending": dict(self.pending), "finetuning": self.finetuning, "distilling": self.distilling,
                "plan_acc": [float(self.plan_acc[0]), float(self.plan_acc[1]), int(self.plan_acc[2])],
                "train_returns": [float(x) for x in self.train_returns], "distill_start": int(self.distill_start)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pending = {str(k): float(v) for k, v in state.get("pending", {}).items()}
        self.finetuning = bool(state.get("finetuning", False))
        self.distilling = bool(state.get("distilling", False))
        acc = state.get("plan_acc", [0.0, 0.0, 0])
        self.plan_acc = [float(acc[0]), float(acc[1]), int(acc[2])]
        self.train_returns = [float(x) for x in state.get("train_returns", [])]
        self.distill_start = int(state.get("distill_start", -1))
        if self.finetuning:
            self._set_distill_hparams()


def offline_episode_return(data: dict[str, np.ndarray]) -> tuple[float, int]:
    """The mean return of the offline data's complete episodes (those that end in a terminal or a timeout), and
    the longest one's length; (nan, 0) without a complete episode."""
    ends = np.flatnonzero(data["terminal"] | data["timeout"])
    if len(ends) == 0:
        return float("nan"), 0
    rewards = data["reward"][: ends[-1] + 1].astype(np.float64)  # drop an unfinished last episode
    starts = np.concatenate([[0], ends[:-1] + 1])
    return float(np.add.reduceat(rewards, starts).mean()), int((ends - starts + 1).max())


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import pandas as pd

    return float(pd.Series(x).corr(pd.Series(y), method="spearman"))
