"""MODIP: a pretrained diffusion policy fine-tuned on targets planned by MPC in a learned world model.

Why: this is the method the harness exists to test (DESIGN.md, "Methods"). Its two claims are knobs here:
- inference time, `modip.planner.terminal` ∈ {v, q, none}: plans scored by a terminal V(s) cost no DP chain,
  while a terminal Q(s, a ~ DP) costs one full denoising chain per candidate and iteration (planner.py);
- training time, `modip.critic.target` ∈ {indep, policy}: critics learned from policy-independent TD targets
  (expectile TD on V, Q toward r + γV) against TD-MPC2-style targets that sample the DP (critics.py).

Pieces, read in this order: world_model.py (ensemble of probabilistic MLPs over Δs, r, termination),
critics.py (V and Q), planner.py (MPPI top to bottom), then this file, which wires them into the harness:
- pretrain: the DP comes from the common-start bc_dp checkpoint (uses_pretrained_dp); MODIP's own offline
  steps train the world model and the critics on the dataset, never the DP;
- actors: `dp` (the product: the fine-tuned DP alone, EMA weights) and `mpc` (the planner). Training acts with
  `mpc`; each plan's label (the noise-free first Ta actions of the final mean) is stored with the transition
  where the plan was made (buffer extra `label`), with the planned H-step reward (`plan_reward`) for the
  planned-vs-realised diagnostic;
- fine-tune: every `update_every` env steps, one update of the world model, the critics (dataset + replay at
  `online_ratio`), and the DP with its ordinary denoising loss on (s, label) mixed with offline (s, chunk)
  pairs at `label_ratio`;
- diagnostics into the curves: `wm/*` one-step and H-step errors, `diag/v_mc_*` V against Monte-Carlo returns
  of each finished training episode, `diag/plan_gap` planned minus realised H-step reward.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from methods.base import ActorState, MethodContext, register
from methods.common.dp_method import DPMethod
from methods.config import ConfigError
from methods.modip.critics import CriticConfig, Critics
from methods.modip.planner import PlanModels, PlannerConfig, plan, shift_mean
from methods.modip.world_model import WorldModel, WorldModelConfig


@dataclasses.dataclass
class ModipConfig:
    world_model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    critic: CriticConfig = dataclasses.field(default_factory=CriticConfig)
    planner: PlannerConfig = dataclasses.field(default_factory=PlannerConfig)
    update_every: int = 1  # K: env steps between fine-tune updates
    updates_per_round: int = 1
    online_ratio: float = 0.5  # share of replay (online) transitions in world-model and critic batches
    distill: bool = True  # train the DP on the planned labels
    distill_batch: int = 256
    distill_updates: int = 1  # DP gradient steps per fine-tune update (the DP step is cheap next to a plan)
    # Share of planned labels in a distillation batch; the rest are offline (s, chunk) pairs. A DDPM samples
    # from the mixture it is trained on, so at 0.5 half of what the DP imitates stays the medium data; the
    # offline share is a regulariser against forgetting at states the planner never visits, not a target.
    label_ratio: float = 0.5
    # Labels from the last `label_window` env steps only (0 = all). The planner improves as its world model
    # and critics learn, so an old label is a worse planner's answer; uniform sampling over the whole history
    # would keep the DP imitating the early planner.
    label_window: int = 0
    distill_lr: float = 0.0  # the DP's learning rate during fine-tuning (0 = keep the pretrained DP's)
    distill_ema_decay: float = 0.0  # the DP's EMA decay during fine-tuning (0 = keep the pretrained DP's)
    diag_every: int = 100  # world-model error diagnostics every N updates (pretrain and fine-tune)
    diag_sequences: int = 256

    def validate(self) -> None:
        if self.update_every < 1 or self.updates_per_round < 0:
            raise ConfigError("config keys 'modip.update_every' >= 1 and 'modip.updates_per_round' >= 0")
        if self.distill_updates < 0 or self.label_window < 0 or self.distill_lr < 0:
            raise ConfigError("config keys 'modip.distill_updates', 'modip.label_window', 'modip.distill_lr' >= 0")
        if not 0.0 <= self.distill_ema_decay < 1.0:
            raise ConfigError(f"config key 'modip.distill_ema_decay' must be in [0, 1), got {self.distill_ema_decay}")
        for key in ("online_ratio", "label_ratio"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"config key 'modip.{key}' must be in [0, 1], got {getattr(self, key)}")


# Labelled presets. `demo`: small networks and a cheap planner, so that a demo seed fits its ~80 s share on 2 CPU
# cores; chosen on demo seeds 0 (short runs, DP and MPC scores per eval), and labelled as such. `test`: tiny, for
# contract tests. Neither touches the `dp` section: the DP must stay the bc_dp checkpoint's (the common start).
# Demo choices, each with what it fixed:
# - critic.target_tau 0.02: with 3000 pretrain steps, Polyak 0.005 leaves V ~15 target time constants, far short
#   of γ's 100-step horizon; V was then noise at value_scale (~900 return units) and steered the plan: the mpc
#   actor scored 8 at step 0 (27-41 with 0.02; a no-terminal planner scored 17), and its early labels were worse
#   than the DP they taught;
# - label_ratio 0.9, label_window 1000: the DP samples what it is trained on, so a 50/50 batch keeps half of it
#   imitating the medium data; the window keeps the current planner's labels (it improves fast online), and the
#   10% offline share guards states the planner never visits;
# - replan_every 2, not the DP's chunk 4: the pendulum needs feedback, and open-loop 4-step plans in a learned
#   model scored far lower (12 against 22 at step 0; 44 against 200 after 6000 steps, one seed each); the label
#   is still the plan's first Ta = 4 actions;
# - planner.dp_sampler ddim (5 steps) and 2 iterations: the DP chain of the proposals was the largest cost of a
#   plan; the `dp` actor itself still samples with the DP's own DDPM chain;
# - update_every 2, distill_updates 1 at distill_batch 128: half a DP gradient step per env step; against 2
#   updates at batch 64 it cut a demo seed from ~132 s to ~111 s of CPU for a similar dp score (74 vs 79, one seed).
_DEMO = {
    "modip": {
        "world_model": {"members": 5, "hidden": [64, 64], "batch_size": 64},
        "critic": {"hidden": [64, 64], "batch_size": 128, "target_tau": 0.02},
        "planner": {"horizon": 4, "samples": 64, "elites": 8, "iterations": 2, "pi_trajectories": 8,
                    "replan_every": 2, "dp_sampler": "ddim"},
        "update_every": 2, "distill_updates": 1, "distill_batch": 128, "label_ratio": 0.9, "label_window": 1000,
        "diag_every": 100, "diag_sequences": 128,
    },
}
_TEST = {
    "modip": {
        "world_model": {"members": 3, "hidden": [32, 32], "batch_size": 32},
        "critic": {"hidden": [32, 32], "batch_size": 32},
        "planner": {"horizon": 4, "samples": 16, "elites": 4, "iterations": 2, "pi_trajectories": 4},
        "update_every": 4, "distill_batch": 32, "diag_every": 10, "diag_sequences": 16,
    },
}


@register("modip")
class MODIP(DPMethod):
    Config = ModipConfig
    rollout_kind = "off_policy"
    uses_pretrained_dp = True
    actors = ("dp", "mpc")  # dp first: the fine-tuned policy alone is the product (the headline actor)
    train_actor = "mpc"
    presets: ClassVar[dict[str, dict[str, Any]]] = {"demo": _DEMO, "test": _TEST}

    def __init__(self, cfg: ModipConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        spaces = self.spaces
        if cfg.planner.horizon < self.chunk:
            raise ConfigError(f"config key 'modip.planner.horizon'={cfg.planner.horizon} must be >= the DP's "
                              f"chunk {self.chunk}: the DP's label is the first Ta actions of the plan")
        self.gamma = float(spaces.gamma)
        self.world_model = WorldModel(spaces.obs_dim, spaces.act_dim, cfg.world_model).to(self.device)
        self.wm_optim = torch.optim.AdamW(self.world_model.parameters(), lr=cfg.world_model.lr,
                                          weight_decay=cfg.world_model.weight_decay)
        self.critics = Critics(spaces.obs_dim, spaces.act_dim, cfg.critic, self.gamma).to(self.device)
        self.critic_optim = torch.optim.Adam(self.critics.parameters_to_train(), lr=cfg.critic.lr)
        # Episode diagnostics computed in observe(), returned by the next update (saved in checkpoints).
        self.pending: dict[str, float] = {}
        self.finetuning = False  # set by end_pretrain; the DP's fine-tuning lr / EMA decay apply from then on

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

    def buffer_extras(self) -> dict[str, tuple[int, ...]]:
        return {"label": (self.chunk, self.spaces.act_dim), "plan_reward": ()}

    def _normalised(self, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"obs": self.normalizer.norm_obs(b["obs"]), "next_obs": self.normalizer.norm_obs(b["next_obs"]),
                "action": self.normalizer.norm_act(b["action"]), "reward": b["reward"],
                "terminal": b["terminal"]}

    # ---- updates -------------------------------------------------------------------------------------------
    def _wm_step(self, source: str) -> dict[str, float]:
        wcfg = self.cfg.world_model
        k, n = wcfg.members, wcfg.batch_size
        raw = self.buffer.sample(k * n, source=source, device=self.device, online_ratio=self.cfg.online_ratio,
                                 fields=("obs", "action", "reward", "next_obs", "terminal"))
        b = {key: v.view(k, n, *v.shape[1:]) for key, v in self._normalised(raw).items()}  # a batch per member
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
                                 online_ratio=self.cfg.online_ratio,
                                 fields=("obs", "action", "reward", "next_obs", "terminal"))
        sampler = self._dp_first_action if self.cfg.critic.target == "policy" else None
        loss, metrics = self.critics.loss(self._normalised(raw), sampler)
        self.critic_optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.critics.parameters_to_train(), 10.0)
        self.critic_optim.step()
        self.critics.update_targets()
        return metrics

    def distill_batch(self, n: int) -> dict[str, torch.Tensor]:
        """(s, label) pairs from planned labels, mixed with offline (s, chunk) pairs at `label_ratio`."""
        n_label = round(n * self.cfg.label_ratio)
        obs, chunks = [], []
        if n_label > 0:
            # Labels are online only; the window keeps the most recent planner's answers (label_window).
            lab = self.buffer.sample(n_label, source="online", require="label", recent=self.cfg.label_window,
                                     device=self.device, fields=("obs", "label"))
            # labels are stored as planned: normalised actions in [-1, 1], the DP's own space
            obs.append(self.normalizer.norm_obs(lab["obs"]))
            chunks.append(lab["label"])
        if n - n_label > 0:
            off = self.dp_batch(n - n_label, "offline")
            obs.append(off["obs"])
            chunks.append(off["chunk"])
        return {"obs": torch.cat(obs), "chunk": torch.cat(chunks)}

    def _has_labels(self) -> bool:
        return self.buffer.carries("label", source="online", recent=self.cfg.label_window)

    def _wm_diagnostics(self, source: str) -> dict[str, float]:
        h = self.cfg.planner.horizon
        try:
            seq = self.buffer.sample_sequences(self.cfg.diag_sequences, h, source=source, device=self.device,
                                               online_ratio=self.cfg.online_ratio)
        except RuntimeError:  # no segment of length H yet
            return {}
        obs = self.normalizer.norm_obs(torch.cat([seq["obs"][:, :1], seq["next_obs"]], dim=1))
        self.world_model.eval()
        return self.world_model.errors(obs, self.normalizer.norm_act(seq["action"]), seq["reward"])

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
        metrics = {**self._wm_step("mixed"), **self._critic_step("mixed")}
        if self.cfg.distill and self.cfg.distill_updates > 0 and self._has_labels():
            losses = []
            for _ in range(self.cfg.distill_updates):
                b = self.distill_batch(self.cfg.distill_batch)
                losses.append(self.dp.train_step(b["chunk"], b["obs"]))
            metrics["loss/dp_distill"] = float(np.mean(losses))
        self.grad_steps += 1
        if self.grad_steps % self.cfg.diag_every == 0:
            metrics.update(self._wm_diagnostics("mixed"))
        metrics.update(self.pending)
        self.pending = {}
        return metrics

    # ---- episode diagnostics -------------------------------------------------------------------------------
    def observe_episode(self, episode: dict[str, np.ndarray]) -> None:
        self.pending.update(self._episode_diagnostics(episode))

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
    def act_mpc(self, obs: np.ndarray, state: ActorState, eval_mode: bool) -> np.ndarray:
        pcfg = self.cfg.planner
        s = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        self.world_model.eval()
        result = plan(self.plan_models(eval_mode), s, self._warm_start(state, s.shape[0]), state.generator, pcfg,
                      self.gamma, self.spaces.act_dim)
        actions = result.mean[:, : pcfg.replan_every]
        if not eval_mode and pcfg.explore_std > 0:
            noise = torch.randn(actions.shape, device=self.device, generator=state.generator)
            actions = (actions + pcfg.explore_std * noise).clamp(-1.0, 1.0)
        state.memory["mean"] = shift_mean(result.mean, pcfg.replan_every)
        state.extras = {"label": result.mean[:, : self.chunk].cpu().numpy(),
                        "plan_reward": result.planned_reward.cpu().numpy()}
        return self.normalizer.unnorm_act(actions).cpu().numpy()

    def act(self, obs, actor: str, state: ActorState, eval_mode: bool) -> np.ndarray:
        if actor == "dp":  # the first dp.act_steps actions of the DP's chunk (DPMethod.act_dp)
            return self.act_dp(obs, state, eval_mode)
        if actor == "mpc":
            return self.act_mpc(obs, state, eval_mode)
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
        from methods.base import ComponentKind, TimedComponent

        if self.buffer is not None and self.buffer.size >= batch_size:
            obs = self.buffer.offline_stats(("obs",), limit=batch_size)["obs"]
        else:
            obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        plan_state = ActorState.create(0, self.device)
        dp_state = ActorState.create(1, self.device)
        # A plan executes its first replan_every actions; a DP call the first dp.act_steps of its chunk (what
        # act_dp returns); updates_due makes updates_per_round updates every update_every env steps.
        executed = self.act_steps
        comps = {"plan": TimedComponent(lambda: self.act(obs, "mpc", plan_state, True), ComponentKind.PLAN,
                                        actor="mpc", actions_per_call=int(self.cfg.planner.replan_every)),
                 "dp_act": TimedComponent(lambda: self.act(obs, "dp", dp_state, True), ComponentKind.ACT,
                                          actor="dp", actions_per_call=executed)}
        if self.buffer is not None:
            comps["update"] = TimedComponent(self.finetune_step, ComponentKind.UPDATE,
                                             updates_per_env_step=self.cfg.updates_per_round / self.cfg.update_every)
        return comps

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module,
                "world_model": self.world_model, "wm_optim": self.wm_optim, "critics": self.critics,
                "critic_optim": self.critic_optim}

    def extra_state(self) -> dict[str, Any]:
        return {"pending": dict(self.pending), "finetuning": self.finetuning}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pending = {str(k): float(v) for k, v in state.get("pending", {}).items()}
        self.finetuning = bool(state.get("finetuning", False))
        if self.finetuning:
            self._set_distill_hparams()


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import pandas as pd

    return float(pd.Series(x).corr(pd.Series(y), method="spearman"))
