"""TD-MPC2's planner: MPPI over the latent world model (the official `_plan`). Read top to bottom.

Why a file of its own: the planner is where TD-MPC2 is MODIP's control (`methods/modip/planner.py`): its terminal
value, `terminal_value`, is Q(z_H, pi(z_H)), one MLP pass, where MODIP's terminal Q costs a diffusion chain. The
method (`__init__.py`) wires it in: it draws the noise with the actor's generator, keeps each env's mean between
plans, and optionally compiles `plan`.

A plan, for a batch of B observations at once (time-major: candidate actions are (H, B, N, A)):
  1. the observations are encoded once, and `num_pi_trajs` (P) trajectories of the policy prior are rolled out
     in the latent model (`pi_trajectories`); they stay the same for the whole plan;
  2. the mean starts from the previous plan's mean shifted by one step (`warm_start`), the std at max_std;
  3. `iterations` rounds: N - P Gaussian samples around the mean (clamped to [-1, 1]) plus the P policy
     trajectories, each scored by `estimate_value`:
         G = sum_{t<H} gamma^t m_t r_t + gamma^H m_H terminal(z_H),
     where m_t is 0 after the first predicted termination (episodic mode) and terminal(z_H) is the avg of 2 given
     Q members at a ~ pi(z_H), or V(z_H) (`planner.terminal`); the E elites' weights
     exp(temperature (G - max G)) give the new mean and std (std clamped to [min_std, max_std]);
  4. the executed action: an elite drawn by its weight (Gumbel-max), plus std noise when training.
All randomness comes in through `noise`, drawn by `plan_noise` from the caller's torch.Generator in a fixed order,
so `plan` itself is deterministic, has no host syncs, and can be compiled (CUDA graphs on a GPU).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from methods.tdmpc2.model import WorldModel

if TYPE_CHECKING:
    from methods.tdmpc2.config import PlannerConfig


def plan_noise(cfg: PlannerConfig, batch: int, horizon: int, act_dim: int, num_q: int, generator: torch.Generator,
               device: torch.device, eval_mode: bool) -> dict[str, torch.Tensor]:
    """Every random number of one plan of `batch` observations, drawn from `generator` in a fixed order."""
    B, H, A, dev = batch, horizon, act_dim, device
    N, P, I, K = cfg.num_samples, cfg.num_pi_trajs, cfg.iterations, num_q
    u = torch.rand(B, cfg.num_elites, generator=generator, device=dev).clamp_(1e-10, 1 - 1e-7)
    return {
        "pi": torch.randn(H, B * P, A, generator=generator, device=dev),
        "sample": torch.randn(I, H, B, N - P, A, generator=generator, device=dev),
        "terminal": torch.randn(I, B * N, A, generator=generator, device=dev),
        "members": torch.argsort(torch.rand(I, K, generator=generator, device=dev), dim=1)[:, :2],
        "gumbel": -torch.log(-torch.log(u)),
        "explore": (torch.zeros(B, A, device=dev) if eval_mode
                    else torch.randn(B, A, generator=generator, device=dev)),
    }


def previous_mean(prev: torch.Tensor | None, horizon: int, batch: int, act_dim: int,
                  device: torch.device) -> torch.Tensor:
    """The previous plan's mean (H, B, A) of each env: zeros at the first plan and on a change of shape (an env
    that starts an episode has its row zeroed by ActorState.reset)."""
    H, B, A = horizon, batch, act_dim
    prev = (torch.zeros(H, B, A, device=device) if prev is None
            else torch.as_tensor(prev, dtype=torch.float32, device=device))
    if prev.shape != (H, B, A):
        prev = torch.zeros(H, B, A, device=device)
    return prev


def warm_start(prev_mean: torch.Tensor) -> torch.Tensor:
    """The first mean of a plan: the previous plan's mean shifted by the one executed step, zeros at the tail."""
    return torch.cat([prev_mean[1:], torch.zeros_like(prev_mean[:1])])


def terminal_value(model: WorldModel, z: torch.Tensor, eps: torch.Tensor, members: torch.Tensor,
                   terminal: str) -> torch.Tensor:
    """The planner's terminal value, the `planner.terminal` knob: Q(z_H, a ~ pi(z_H)) or V(z_H)."""
    if terminal == "v":
        return model.value(z)
    return model.q_two(z, model.pi(z, eps)[0], members, "avg")


def estimate_value(model: WorldModel, z: torch.Tensor, actions: torch.Tensor, eps: torch.Tensor,
                   members: torch.Tensor, gamma: float, episodic: bool, terminal: str) -> torch.Tensor:
    """Return of each action sequence: sum_t gamma^t m_t r_t + gamma^H m_H terminal value, where m_t is
    0 after the first predicted termination (episodic mode)."""
    ret = torch.zeros(z.shape[0], 1, device=z.device, dtype=z.dtype)
    alive = torch.ones_like(ret)
    discount = 1.0
    for t in range(actions.shape[0]):
        reward = model.two_hot.decode(model.reward(z, actions[t]))
        z = model.next(z, actions[t])
        ret = ret + discount * alive * reward
        discount = discount * gamma
        if episodic:
            alive = alive * (model.termination_logit(z) <= 0).to(z.dtype)  # sigmoid > 0.5 ends it
    return ret + discount * alive * terminal_value(model, z, eps, members, terminal)


def pi_trajectories(model: WorldModel, z: torch.Tensor, eps: torch.Tensor, trajs: int) -> torch.Tensor:
    """`trajs` (P) action sequences of the policy prior from each latent z (B, latent), rolled out in the model
    with the noise eps (H, B * P, A): (H, B, P, A)."""
    H, B, A = eps.shape[0], z.shape[0], eps.shape[-1]
    zp = z.repeat_interleave(trajs, 0)
    steps = []
    for t in range(H):
        a = model.pi(zp, eps[t])[0]
        steps.append(a)
        if t < H - 1:
            zp = model.next(zp, a)
    return torch.stack(steps).view(H, B, trajs, A)


@torch.no_grad()
def plan(model: WorldModel, cfg: PlannerConfig, obs: torch.Tensor, prev_mean: torch.Tensor,
         noise: dict[str, torch.Tensor], gamma: float, episodic: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """MPPI in latent space for a batch of B observations. All randomness comes in through `noise`.

    obs (B, obs_dim) normalised; prev_mean (H, B, A) is the previous plan's mean (zeros at an episode
    start). Returns the actions (B, A) and the new mean (H, B, A) for the next warm start."""
    H, B = prev_mean.shape[0], obs.shape[0]
    N, P, E, A = cfg.num_samples, cfg.num_pi_trajs, cfg.num_elites, prev_mean.shape[-1]
    z = model.encode(obs)
    actions_pi = None
    if P > 0:  # trajectories of the policy prior, rolled out in the model
        actions_pi = pi_trajectories(model, z, noise["pi"], P)
    z = z.repeat_interleave(N, 0)
    mean = warm_start(prev_mean)
    std = torch.full_like(mean, cfg.max_std)
    for i in range(cfg.iterations):
        sampled = (mean.unsqueeze(2) + std.unsqueeze(2) * noise["sample"][i]).clamp(-1, 1)
        actions = sampled if actions_pi is None else torch.cat([actions_pi, sampled], dim=2)  # (H, B, N, A)
        value = estimate_value(model, z, actions.view(H, B * N, A), noise["terminal"][i], noise["members"][i],
                               gamma, episodic, cfg.terminal)
        value = value.nan_to_num(0).view(B, N)
        elite_value, elite_idx = torch.topk(value, E, dim=1)
        elite_actions = torch.gather(actions, 2, elite_idx.view(1, B, E, 1).expand(H, B, E, A))
        score = torch.exp(cfg.temperature * (elite_value - elite_value.max(1, keepdim=True).values))
        score = score / score.sum(1, keepdim=True)
        w = score.view(1, B, E, 1)
        mean = (w * elite_actions).sum(2) / (score.sum(1).view(1, B, 1) + 1e-9)
        std = ((w * (elite_actions - mean.unsqueeze(2)).pow(2)).sum(2) / (score.sum(1).view(1, B, 1) + 1e-9))
        std = std.sqrt().clamp(cfg.min_std, cfg.max_std)
    # the executed action: an elite drawn by its score (Gumbel-max), plus std noise when training
    pick = torch.argmax(torch.log(score) + noise["gumbel"], dim=1)
    action = elite_actions[0, torch.arange(B, device=obs.device), pick]
    action = action + std[0] * noise["explore"]
    return action.clamp(-1, 1), mean
