"""TD-MPC2's update: the losses of the world model and the Q ensemble, then the policy prior, then V and the targets.

Why a file of its own: with the planner in `planner.py`, the update is the other half of the algorithm, and the
half that must follow the official `update` (nicklashansen/tdmpc2 at e9f5932) loss by loss and coefficient by
coefficient (see the package docstring). The method (`__init__.py`) owns the optimisers, the Q scale and the
discount; `update` reads and steps them, and may be compiled whole (`compile`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from methods.tdmpc2.model import symlog

if TYPE_CHECKING:
    from methods.tdmpc2 import TDMPC2


class RunningScale(nn.Module):
    """The Q scale that normalises the policy objective: an EMA (tau) of the 5-95 percentile range, >= 1."""

    def __init__(self, tau: float):
        super().__init__()
        self.tau = tau
        self.register_buffer("value", torch.ones(1))
        self.register_buffer("quantiles", torch.tensor([0.05, 0.95]))

    @torch.no_grad()
    def update(self, q: torch.Tensor) -> None:
        lo, hi = torch.quantile(q.detach().reshape(-1), self.quantiles)  # linear interpolation, as official
        self.value.lerp_((hi - lo).clamp(min=1.0).reshape(1), self.tau)


def update(agent: TDMPC2, obs0, next_obs, action, reward, terminated) -> dict[str, torch.Tensor]:
    """One update of `agent` from time-major normalised sequences (see `TDMPC2._tensors`): the world model and
    the Q ensemble, then the policy prior, then V (planner.terminal = v), then the target networks."""
    cfg, m = agent.cfg, agent.model
    H, K = cfg.horizon, agent.dims.num_q
    rho = cfg.rho ** torch.arange(H + 1, device=obs0.device, dtype=obs0.dtype)
    # TD targets: r + gamma (1 - terminated) min of 2 random target Qs at a' ~ pi(z'), z' from the online
    # encoder. Termination (not timeout) is the only thing that stops bootstrapping.
    with torch.no_grad():
        next_z = m.encode(next_obs)
        next_a = m.pi(next_z, torch.randn_like(action))[0]
        members = torch.randperm(K, device=obs0.device)[:2]
        td_target = reward + agent.discount * (1 - terminated) * m.q_two(next_z, next_a, members, "min",
                                                                          which="target")
    # latent rollout and the rho-weighted consistency loss
    z = m.encode(obs0)
    zs = [z]
    consistency = 0.0
    for t in range(H):
        z = m.next(z, action[t])
        consistency = consistency + F.mse_loss(z, next_z[t]) * rho[t]
        zs.append(z)
    zs = torch.stack(zs)
    q_logits = m.q_logits(zs[:-1], action, dropout=True)  # (K, H, B, bins)
    reward_logits = m.reward(zs[:-1], action)
    reward_loss = (m.two_hot.cross_entropy(reward_logits, reward).mean(dim=(1, 2)) * rho[:H]).sum() / H
    target_dist = m.two_hot.encode(td_target)
    value_loss = (-(target_dist * F.log_softmax(q_logits, -1)).sum(-1).mean(-1) * rho[:H]).sum() / (H * K)
    consistency = consistency / H
    if m.termination_head is not None:
        termination_loss = F.binary_cross_entropy_with_logits(m.termination_logit(zs[1:]), terminated)
    else:
        termination_loss = torch.zeros((), device=obs0.device)
    total = (cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss
             + cfg.termination_coef * termination_loss + cfg.value_coef * value_loss)
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(agent.model_params, cfg.grad_clip_norm)
    agent.optim.step()
    agent.optim.zero_grad(set_to_none=True)

    # policy prior: maximise the (scale-normalised) avg of 2 random Qs plus the scaled entropy
    zs = zs.detach()
    action_pi, _, _, scaled_entropy = m.pi(zs, torch.randn(*zs.shape[:-1], action.shape[-1],
                                                           device=zs.device, dtype=zs.dtype))
    members = torch.randperm(K, device=obs0.device)[:2]
    q = m.q_two(zs, action_pi, members, "avg", which="detach", dropout=True)
    agent.scale.update(q[0])
    q = q / agent.scale.value
    pi_loss = (-(cfg.entropy_coef * scaled_entropy + q).mean(dim=(1, 2)) * rho).mean()
    pi_loss.backward()
    pi_grad_norm = torch.nn.utils.clip_grad_norm_(m.pi_head.parameters(), cfg.grad_clip_norm)
    agent.pi_optim.step()
    agent.pi_optim.zero_grad(set_to_none=True)

    out = {"loss/consistency": consistency.detach(), "loss/reward": reward_loss.detach(),
           "loss/value": value_loss.detach(), "loss/termination": termination_loss.detach(),
           "loss/total": total.detach(), "loss/pi": pi_loss.detach(), "grad_norm": grad_norm.detach(),
           "pi_grad_norm": pi_grad_norm.detach(), "pi_scale": agent.scale.value[0].clone()}
    if m.value_head is not None:
        out["loss/v"] = value_update(agent, torch.cat([zs[:1], next_z]), reward, terminated)
    m.soft_update_targets(cfg.tau)
    return out

def value_update(agent: TDMPC2, latents, reward, terminated) -> torch.Tensor:
    """V(z) by expectile TD on encoder latents: V(z_t) -> r_t + gamma (1 - d_t) V_target(z_t+1).

    Regressed in symlog space (like every other TD-MPC2 value head, robust to the return scale), with the
    asymmetric weight |tau - 1(target < V)| of an expectile; V does not shape the latent space."""
    with torch.no_grad():
        target = reward + agent.discount * (1 - terminated) * agent.model.value(latents[1:], target=True)
    pred = agent.model.value_head(latents[:-1])
    diff = symlog(target) - pred
    weight = torch.abs(agent.cfg.v_expectile - (diff < 0).float())
    loss = (weight * diff.pow(2)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(agent.model.value_head.parameters(), agent.cfg.grad_clip_norm)
    agent.v_optim.step()
    agent.v_optim.zero_grad(set_to_none=True)
    return loss.detach()
