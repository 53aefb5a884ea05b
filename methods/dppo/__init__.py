"""dppo: Diffusion Policy Policy Optimization (Ren et al., 2024), PPO over the denoising MDP of the shared DP.

Why: DPPO is the on-policy way to fine-tune the pretrained DP, and the reference that MODIP's planner-based
fine-tuning is compared with. It starts from the bc_dp checkpoint (the common start) and runs no offline
phase of its own. The ladder of classes, read top to bottom:
  methods/common/diffusion.py  DiffusionPolicy   the shared DDPM (bc_dp's)
  methods/dppo/vpg.py          VPGDiffusion      frozen first T-K steps, chains, per-step log-probs
  methods/dppo/ppo.py          PPODiffusion      clipped loss per denoising step
  this file                    DPPO              critic V(s), running reward scaling, GAE, update epochs
The harness owns the vector envs and the rollout loop (bench/runner/on_policy.py); it calls `act_rollout`
for each chunk decision and `update_rollout` once per rollout, which a stop request abandons between two minibatch
steps (methods/on_policy.py: the harness puts the method back as before it, and the resumed run redoes it).

Settings come from DPPO's finetune configs (irom-princeton/dppo, cfg/gym/finetune/{hopper,walker2d,
halfcheetah}-v2/ft_ppo_diffusion_mlp.yaml for the `d4rl` suite; cfg/gym/finetune/kitchen-*-v0 and
cfg/robomimic/finetune/{lift,can}/ft_ppo_diffusion_mlp.yaml for the others). As in DPPO:
- one decision samples one action chunk of Ta (`horizon_steps`, 4) actions and executes its first
  `dp.act_steps` of them (DPPO's `act_steps`: `action_venv = output_venv[:, :self.act_steps]`; 0 = all Ta);
  the denoising chains stay over the whole Ta-chunk, but PPO's ratios use the log-probs of the executed
  actions only (DPPO's `reward_horizon = act_steps`; methods/dppo/ppo.py). A decision's
  reward is the sum of its executed actions' rewards, and `gamma` discounts per decision (0.99 on gym and
  kitchen, 0.999 on robomimic), not per env step;
- GAE with lambda 0.95 over decisions; rewards divided by the running std of a discounted return
  (`reward_scale_running`, PPG's reward normaliser, clip 10); the critic's loss is 0.5 MSE to the GAE returns;
- a minibatch is `batch_size` (decision, denoising step) pairs drawn without replacement from all
  n_steps * n_envs * K of them; `update_epochs` passes; an epoch stops early once approx KL > `target_kl`;
- `reward_scale_const` multiplies the rewards after the running scaler, in GAE (`scaled_rewards`);
- episodes continue across rollouts (`reset_at_iteration: False`; bench/runner/on_policy.py keeps the
  envs), and the running scaler carries each env's discounted return across rollouts (its `ret`), which
  the checkpoint holds with the scaler's moments (`extra_state`);
- for the first `n_critic_warmup_itr` rollouts only the critic learns (2 on robomimic, 0 elsewhere).
Where we differ, on purpose:
- timeouts bootstrap with V(last obs of the episode) and terminals never do (DESIGN.md); DPPO's gym
  wrapper does not separate the two when it bootstraps;
- episodes continue across rollouts as in DPPO (`reset_at_iteration: False`), but DPPO also resets every
  env after each of its in-loop evaluation iterations; ours evaluates on its own envs, so it never does.
  Episodes cut at the end of a rollout bootstrap like timeouts (DPPO: V(obs_venv) at t = n_steps - 1);
- learning rates are constant (DPPO's cosine schedules have min_lr equal to the lr, so they are constant
  after a 10-iteration warm-up that starts from min_lr too);
- evaluation samples the fine-tuned DP with the harness's eval sampler and the DP's own noise schedule (no
  exploration floor), exactly as bc_dp is evaluated, so env step 0 scores equal bc_dp's.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from methods.base import ActorState, ComponentKind, MethodContext, TimedComponent, register
from methods.common.mish import Mish
from methods.common.networks import mlp
from methods.dp_method import DPMethod
from methods.dppo.config import ACTORS, DPPOConfig
from methods.dppo.ppo import PPODiffusion
from methods.on_policy import OnPolicy


class RunningRewardScaler:
    """Divide rewards by the running std of a per-env discounted return (PPG's reward normaliser; DPPO's
    util/reward_scaling.py): returns are accumulated along each env's valid decisions and restart at the
    first decision of an episode; the std is over every return seen so far; scaled rewards clip at +-10.

    Episodes continue across rollouts (bench/runner/on_policy.py), so, as DPPO's `RunningRewardScaler.ret`,
    each env's running return `ret` carries over from one call to the next instead of starting at 0."""

    def __init__(self, gamma: float, n_envs: int, clip: float = 10.0, epsilon: float = 1e-8):
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.mean, self.var, self.count = 0.0, 1.0, 1e-4  # RunningMeanStd's start (count epsilon 1e-4)
        self.ret = np.zeros(n_envs)  # each env's discounted return so far, along its current episode

    def __call__(self, reward: np.ndarray, first: np.ndarray, valid: np.ndarray) -> np.ndarray:
        n_steps, n_envs = reward.shape
        if self.ret.shape != (n_envs,):
            raise ValueError(f"a rollout of {n_envs} envs for a reward scaler of {self.ret.shape[0]} envs")
        ret = self.ret
        rets = []
        for t in range(n_steps):
            v = valid[t]
            ret = np.where(v, reward[t] + np.where(first[t], 0.0, self.gamma * ret), ret)
            rets.append(ret[v])
        self.ret = ret
        x = np.concatenate(rets)
        if x.size:
            self._update(float(x.mean()), float(x.var()), x.size)
        return np.clip(reward / np.sqrt(self.var + self.epsilon), -self.clip, self.clip) * valid

    def _update(self, batch_mean: float, batch_var: float, batch_count: int) -> None:
        delta = batch_mean - self.mean
        total = self.count + batch_count
        m2 = self.var * self.count + batch_var * batch_count + delta ** 2 * self.count * batch_count / total
        self.mean, self.var, self.count = self.mean + delta * batch_count / total, m2 / (total - 1), total

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "var": self.var, "count": self.count, "ret": torch.from_numpy(self.ret.copy())}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.mean, self.var, self.count = float(st["mean"]), float(st["var"]), float(st["count"])
        if "ret" in st:
            ret = st["ret"].numpy().astype(np.float64)
            if ret.shape != self.ret.shape:
                raise ValueError(f"the checkpoint's reward scaler holds {ret.shape[0]} envs' returns, "
                                 f"this run has {self.ret.shape[0]} envs")
            self.ret = ret.copy()


def gae(reward: np.ndarray, value: np.ndarray, next_value: np.ndarray, terminal: np.ndarray, done: np.ndarray,
        valid: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimation (Schulman et al., 2016) over the decisions of a rollout, (T, n_envs).

    delta_t = r_t + gamma (1 - terminal_t) V(s'_t) - V(s_t), with s'_t the obs the step returned (the last obs
    of the episode when it ended), so timeouts and the rollout's end bootstrap and terminals never do.
    A_t = delta_t + gamma lam (1 - done_t) A_{t+1}: the sum stops at an episode's end. Invalid slots (the
    autoreset step after an episode ends, whose action the env ignored) get A = 0 and are never reached by
    the recursion, because the slot before one is always an episode's end."""
    adv = np.zeros_like(reward, dtype=np.float64)
    last = np.zeros(reward.shape[1])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + gamma * (1.0 - terminal[t]) * next_value[t] - value[t]
        last = np.where(valid[t], delta + gamma * lam * (1.0 - done[t]) * last, 0.0)
        adv[t] = last
    return adv


@register("dppo")
class DPPO(OnPolicy, DPMethod):
    Config = DPPOConfig
    actors = ACTORS

    def __init__(self, cfg: DPPOConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        spaces = self.spaces
        # Rollouts sample the DDPM chain; DDIM fine-tuning (DPPO's learned-eta variant) is not implemented.
        self.model = PPODiffusion(spaces.obs_dim, spaces.act_dim, self.dp_cfg, self.chunk,
                                  ft_denoising_steps=cfg.ft_denoising_steps,
                                  gamma_denoising=cfg.gamma_denoising, clip_ploss_coef=cfg.clip_ploss_coef,
                                  clip_ploss_coef_base=cfg.clip_ploss_coef_base,
                                  clip_ploss_coef_rate=cfg.clip_ploss_coef_rate,
                                  min_logprob_std=cfg.min_logprob_denoising_std, norm_adv=cfg.norm_adv,
                                  reward_horizon=self.act_steps).to(self.device)
        # Its two denoiser copies take the common start's EMA weights when the harness loads it (DPMethod's
        # load_pretrained_dp calls the model's load_pretrained), as fine-tuning starts from them (protocol rule).
        self.model.load_pretrained(self.dp.ema.module.state_dict())
        # V(s) on normalised env observations (DPPO's CriticObs, Mish).
        self.critic = mlp(spaces.obs_dim, cfg.critic_hidden, 1, act=Mish).to(self.device)
        self.actor_optim = torch.optim.AdamW(self.model.denoiser.parameters(), lr=cfg.actor_lr,
                                             weight_decay=cfg.actor_weight_decay, fused=True)
        self.critic_optim = torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic_lr,
                                              weight_decay=cfg.critic_weight_decay, fused=True)
        self.reward_scaler = RunningRewardScaler(cfg.gamma, cfg.n_envs)
        self.iteration = 0  # rollouts consumed by update_rollout

    # ---- acting -----------------------------------------------------------------------------------------
    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.normalizer.norm_obs(obs)).squeeze(-1)

    def rollout_size(self) -> tuple[int, int, int]:
        return self.cfg.n_envs, self.cfg.n_steps, self.act_steps

    @torch.no_grad()
    def act_rollout(self, obs: np.ndarray, state: ActorState) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Exploration actions for the vector envs, (n_envs, act_steps, act_dim): the executed first act_steps of
        each sampled Ta-chunk (DPPO: `output_venv[:, :self.act_steps]`), with the chains that PPO needs, which
        stay whole, (n_envs, K + 1, Ta, act_dim); a decision's log-prob is that of its executed actions."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        chunks, chain = self.model.sample_chain(self.normalizer.norm_obs(o), state.generator,
                                                self.cfg.min_sampling_denoising_std, self.cfg.randn_clip_value)
        return self.normalizer.unnorm_act(self.dp.executed(chunks)).cpu().numpy(), {"chain": chain.cpu().numpy()}

    def act(self, obs, actor, state, eval_mode):
        if eval_mode:  # the fine-tuned DP itself, sampled exactly as bc_dp is at evaluation (its act_steps)
            return self.dp.act(obs, state.generator, True, policy=self.model), {}
        return self.act_rollout(obs, state)[0], {}

    # ---- the update -------------------------------------------------------------------------------------
    def update_rollout(self, rollout: dict[str, Any], between=None) -> list[dict[str, float]]:
        """One DPPO update from a rollout of arrays shaped (T, n_envs, ...), T <= n_steps (see on_policy.py):
        obs, next_obs, reward, terminal, done, valid, first, chain. One metrics dict per minibatch step (the
        rollout's own statistics with the last). `between()` is called before each of the K passes that score
        the rollout's chains and before each minibatch step (a stop raises there: methods/on_policy.py)."""
        cfg, dev = self.cfg, self.device
        valid = np.asarray(rollout["valid"], bool)
        n_steps, n_envs = valid.shape
        f32 = lambda x: torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev)
        obs, next_obs = f32(rollout["obs"]), f32(rollout["next_obs"])
        with torch.no_grad():
            values = self.value(obs.reshape(-1, obs.shape[-1])).reshape(n_steps, n_envs).double().cpu().numpy()
            next_values = self.value(next_obs.reshape(-1, obs.shape[-1])).reshape(n_steps, n_envs).double().cpu().numpy()
        reward = self.scaled_rewards(rollout)
        adv = gae(reward, values, next_values, np.asarray(rollout["terminal"], np.float64),
                  np.asarray(rollout["done"], np.float64), valid, cfg.gamma, cfg.gae_lambda)
        returns = adv + values

        # Flatten the valid decisions; the autoreset slots never enter the update.
        idx = np.flatnonzero(valid.reshape(-1))
        cond = self.normalizer.norm_obs(obs.reshape(-1, obs.shape[-1])[idx])
        chains = f32(rollout["chain"]).reshape(-1, *np.asarray(rollout["chain"]).shape[2:])[idx]
        adv_t = f32(adv.reshape(-1)[idx])
        ret_t = f32(returns.reshape(-1)[idx])
        n_dec, k = len(idx), self.model.ft_steps
        if n_dec == 0:
            return []
        lps = []
        with torch.no_grad():  # log-probs under the weights that sampled the chains
            for j in range(k):  # K passes over the whole rollout (at DPPO's hopper size, seconds each)
                if between is not None:
                    between()
                lps.append(self.model.step_log_prob(cond, chains[:, j], chains[:, j + 1],
                                                    torch.full((n_dec,), j, device=dev)))
        old_lp = torch.stack(lps, dim=1)  # (n_dec, K)
        return self._ppo_epochs(cond, chains, adv_t, ret_t, old_lp, values.reshape(-1)[idx], between)

    def scaled_rewards(self, rollout: dict[str, Any]) -> np.ndarray:
        """The rewards GAE sees: divided by the running return std (which updates it), then times
        `reward_scale_const`. The constant comes after the running scaler, as in DPPO (train_ppo_diffusion_agent.py
        multiplies `reward_trajs[t] * self.reward_scale_const` in the GAE delta, after `running_reward_scaler`):
        before it, the scaler would divide it back out."""
        valid = np.asarray(rollout["valid"], bool)
        reward = np.asarray(rollout["reward"], np.float64)
        if self.cfg.reward_scale_running:
            reward = self.reward_scaler(reward, np.asarray(rollout["first"], bool), valid)
        return reward * self.cfg.reward_scale_const

    def _ppo_epochs(self, cond, chains, adv, ret, old_lp, old_values, between=None) -> list[dict[str, float]]:
        cfg = self.cfg
        n_dec, k = old_lp.shape
        total = n_dec * k
        n_batches = max(1, total // cfg.batch_size)  # DPPO drops the remainder of each epoch
        warmup = self.iteration < cfg.n_critic_warmup_itr
        steps: list[dict[str, float]] = []
        stop = False
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(total, generator=self.generator).to(self.device)
            for b in range(n_batches):
                sel = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                dec, j = sel // k, sel % k
                if between is not None:
                    between()
                m = self.minibatch_step(cond[dec], chains[dec, j], chains[dec, j + 1], j, adv[dec], ret[dec],
                                        old_lp[dec, j], train_actor=not warmup)
                steps.append(m)
                if cfg.target_kl > 0 and m.get("ppo/approx_kl", 0.0) > cfg.target_kl:
                    stop = True
                    break
            if stop:
                break
        self.iteration += 1
        out = steps[-1]  # the rollout's statistics go with its last step (the harness logs the means)
        # How much of the GAE returns' variance the pre-update critic explained (DPPO logs the same).
        ret_np = ret.double().cpu().numpy()
        var_ret = float(ret_np.var())
        out["ppo/explained_var"] = 1.0 - float((ret_np - old_values).var()) / var_ret if var_ret > 0 else float("nan")
        out["ppo/early_stop"] = float(stop)
        out["ppo/reward_scale_std"] = float(np.sqrt(self.reward_scaler.var))
        return steps

    def minibatch_step(self, cond, x_prev, x_next, j, adv, ret, old_lp, train_actor: bool = True) -> dict[str, float]:
        """One gradient step of actor (clipped loss) and critic (0.5 MSE to GAE returns), from separate
        optimisers; during critic warm-up only the critic steps."""
        cfg = self.cfg
        v_loss = 0.5 * ((self.critic(cond).squeeze(-1) - ret) ** 2).mean()
        metrics = {"loss/value": float(v_loss.detach())}
        self.critic_optim.zero_grad(set_to_none=True)
        loss = cfg.vf_coef * v_loss
        if train_actor:
            pg_loss, info = self.model.policy_loss(cond, x_prev, x_next, j, adv, old_lp)
            loss = loss + pg_loss
            self.actor_optim.zero_grad(set_to_none=True)
            metrics["loss/policy"] = float(pg_loss.detach())
            metrics.update({f"ppo/{key}": v for key, v in info.items()})
        loss.backward()
        if train_actor:
            if cfg.max_grad_norm > 0:
                nn.utils.clip_grad_norm_(self.model.denoiser.parameters(), cfg.max_grad_norm)
            self.actor_optim.step()
        self.critic_optim.step()
        return metrics

    # ---- timing, checkpoints ----------------------------------------------------------------------------
    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        executed = self.act_steps  # env actions executed per DP call: act_steps of the sampled Ta-chunk
        # Updates per env step, nominal: a rollout of n_envs x n_steps decisions (each `executed` = act_steps
        # env steps) makes update_epochs passes of floor(decisions * K / batch_size) minibatch steps (at least
        # one); an epoch stopped early by target_kl makes fewer.
        settings = {"denoising_steps": self.dp.denoising_steps(), "ft_denoising_steps": self.cfg.ft_denoising_steps}
        n_envs, n_steps, _ = self.rollout_size()
        decisions = n_envs * n_steps
        grad_steps = self.cfg.update_epochs * max(1, decisions * self.model.ft_steps // self.cfg.batch_size)
        per_env_step = grad_steps / (decisions * executed)
        comps = {"act": TimedComponent(lambda: self.act(obs, "dp", st, True), ComponentKind.ACT, actor="dp",
                                       actions_per_call=executed, settings=settings)}
        if self.buffer is not None:
            # One PPO minibatch step on synthetic data: chains sampled at dataset states, random advantages.
            # It changes the weights, so the runner times it only after the final evaluation.
            n_dec = max(1, min(self.cfg.batch_size, 4096) // self.model.ft_steps)
            o = self.buffer.sample(n_dec, source="offline", device=self.device)["obs"]
            cond = self.normalizer.norm_obs(o)
            g = torch.Generator().manual_seed(0)
            _, chains = self.model.sample_chain(cond, None, self.cfg.min_sampling_denoising_std,
                                                self.cfg.randn_clip_value)
            n = n_dec * self.model.ft_steps
            dec = torch.arange(n, device=self.device) // self.model.ft_steps
            j = torch.arange(n, device=self.device) % self.model.ft_steps
            adv, ret = torch.randn(n, generator=g).to(self.device), torch.randn(n, generator=g).to(self.device)
            with torch.no_grad():
                old_lp = self.model.step_log_prob(cond[dec], chains[dec, j], chains[dec, j + 1], j)
            comps["update"] = TimedComponent(
                lambda: self.minibatch_step(cond[dec], chains[dec, j], chains[dec, j + 1], j, adv, ret, old_lp),
                ComponentKind.UPDATE, updates_per_env_step=per_env_step, settings=settings)
        return comps

    def modules(self):
        return {"policy": self.model, "critic": self.critic, "actor_optim": self.actor_optim,
                "critic_optim": self.critic_optim}

    def extra_state(self):
        return {"iteration": self.iteration, "reward_scaler": self.reward_scaler.state_dict()}
