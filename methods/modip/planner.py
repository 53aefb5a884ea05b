"""MODIP's planner: MPPI in the world model, with DP proposals and a terminal V(s). Read top to bottom.

Why one file: the paper's inference-time claim lives in one line, `terminal_value`, where `planner.terminal`
picks V(ŝ_H) (MODIP), Q(ŝ_H, a_H ~ DP) (a full denoising chain per sample and iteration, the cost MODIP
removes) or nothing. Everything else is the same for all three, so a latency difference is that line's.

A plan, for a batch of B start states at once (all tensors, no Python loop over samples):
  1. proposals from the DP: `pi_trajectories` action sequences made by sampling a DP chunk at ŝ, stepping the
     world model through it, and sampling again at the state reached (H and γ are counted in env steps); the
     planning model is deterministic (ensemble means), so the proposals are rolled out once per plan and only
     their terminal term is recomputed in each iteration;
  2. `iterations` rounds of MPPI (TD-MPC2's `_plan`, Hansen et al. 2024): Gaussian samples around the running
     mean, plus the DP proposals, all scored by
         score = Σ_{t<H} γ^t m_t (r̂_t - λ u_t) + γ^H m_H · terminal(ŝ_H),    m_t = Π_{k<t} (1 - d̂_k),
     where r̂, d̂ are the ensemble-mean reward and termination probability and u the ensemble disagreement
     (λ = `uncertainty_penalty`); m_t masks every reward after a predicted termination, so a plan never
     collects reward through a terminal state (the reward of the terminating step itself still counts);
  3. the elites' softmax weights give the new mean and std; the mean is blended with the previous one by
     `momentum` (the fraction of the old mean kept). The weights are exp(temperature · (score - max) / σ_e)
     with σ_e the elites' score spread (`score_norm: elite_std`, MODIP's own): the scores are in return units
     (hundreds on the demo), and TD-MPC2's raw exp(temperature · (score - max)) (`score_norm: none`) made the
     weights one-hot there, collapsing the std to min_std after one iteration. The effective sample size
     1 / Σ w² of the elite weights is returned as a diagnostic (elites = uniform, 1 = argmax).
The caller executes the first `replan_every` actions of the final mean (stores them noise-free as the DP's
label material, one per executed step), and warm-starts the next plan from the mean shifted by the executed
length. At horizon 0 (`plan_by_q`) there is no world model: the plan is the DP proposal with the highest Q.

All actions are in the normalised, clipped action space [-1, 1] that the DP also samples in; states are
normalised observations. The plan has no host syncs (no `.item()`, no branching on tensor values), so it can
be captured whole in a CUDA graph; its randomness comes from the caller's torch.Generator.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from methods.modip.config import PlannerConfig


@dataclasses.dataclass
class PlanModels:
    """What the planner may call. All inputs and outputs are normalised; N is any batch size.

    step(s (N,obs), a (N,act)) -> (s' (N,obs), r̂ (N,), d̂ (N,) termination probability, disagreement (N,))
    value(s) -> V (N,);  q(s, a) -> Q (N,);  policy(s, generator) -> DP chunk (N, Ta, act) from a full chain.
    """

    step: Callable
    value: Callable | None = None
    q: Callable | None = None
    policy: Callable | None = None


@dataclasses.dataclass
class PlanResult:
    mean: torch.Tensor  # (B, H, act): the final mean sequence (the plan)
    std: torch.Tensor  # (B, H, act)
    planned_reward: torch.Tensor  # (B,): Σ γ^t m_t r̂_t of the final mean (for the planned-vs-realised gap)
    score: torch.Tensor  # (B,): the best candidate's score in the last iteration
    ess: torch.Tensor  # (B,): effective sample size of the last iteration's elite weights
    dp_won: torch.Tensor  # (B,): 1.0 where the last iteration's best candidate was a DP proposal
    # (B, 3) for the searches that pick one proposal (best_of_dp, horizon 0), else None: how far the pick stands
    # out from the median proposal, in the proposals' score std, and its lead in the score's reward part and in
    # its terminal part (score units; NaN at horizon 0, whose score is Q alone). A pick that leads by little
    # against the spread is chosen on noise in r̂ + γV (`lead_over_median`).
    lead: torch.Tensor | None = None


def rollout(models: PlanModels, s: torch.Tensor, actions: torch.Tensor, gamma: float, penalty: float = 0.0):
    """Roll (N, H, act) sequences from (N, obs) states: masked discounted reward, alive mask m_H and ŝ_H."""
    reward_sum = torch.zeros(s.shape[0], device=s.device)
    alive = torch.ones(s.shape[0], device=s.device)
    for t in range(actions.shape[1]):
        s, r, d, disagreement = models.step(s, actions[:, t])
        reward_sum = reward_sum + (gamma ** t) * alive * (r - penalty * disagreement)
        alive = alive * (1.0 - d)  # m_{t+1} = m_t (1 - d̂_t): nothing after a predicted termination counts
    return reward_sum, alive, s


def terminal_value(models: PlanModels, s_h: torch.Tensor, terminal: str, generator) -> torch.Tensor:
    """The `planner.terminal` knob, in one place. q runs a full DP chain at ŝ_H for every candidate."""
    if terminal == "v":
        return models.value(s_h)
    if terminal == "q":
        return models.q(s_h, models.policy(s_h, generator)[:, 0])
    return torch.zeros(s_h.shape[0], device=s_h.device)


def score_sequences(models: PlanModels, s: torch.Tensor, actions: torch.Tensor, cfg: PlannerConfig, gamma: float,
                    generator, cached: tuple[torch.Tensor, ...] | None = None, parts: bool = False):
    """score = Σ_{t<H} γ^t m_t (r̂_t - λ u_t) + γ^H m_H terminal(ŝ_H), for (B, N, obs) states and (B, N, H, act)
    plans. `cached` = (reward_sum, alive, ŝ_H) of the first P candidates of each state, each (B, P[, obs]), already
    rolled out: the world model is deterministic in planning (ensemble means), so a candidate that does not change
    between iterations (a DP proposal) need not be rolled out again. The terminal term is always recomputed for all
    N, so terminal=q still pays a full DP chain per candidate and iteration. parts: (score, its reward part, its
    terminal part), each (B, N)."""
    b, n, h, a = actions.shape
    p = 0 if cached is None else cached[0].shape[1]
    reward_sum, alive, s_h = rollout(models, s[:, p:].reshape(b * (n - p), -1),
                                     actions[:, p:].reshape(b * (n - p), h, a), gamma, cfg.uncertainty_penalty)
    reward_sum, alive, s_h = reward_sum.view(b, n - p), alive.view(b, n - p), s_h.view(b, n - p, -1)
    if cached is not None:
        reward_sum, alive, s_h = (torch.cat([c, x], dim=1) for c, x in zip(cached, (reward_sum, alive, s_h)))
    terminal = terminal_value(models, s_h.reshape(b * n, -1), cfg.terminal, generator).view(b, n)
    tail = (gamma ** h) * alive * terminal
    return (reward_sum + tail, reward_sum, tail) if parts else reward_sum + tail


def lead_over_median(values: list[torch.Tensor], pick: torch.Tensor) -> torch.Tensor:
    """(B, 1 + k): the picked candidate's lead over the median candidate of its state in values[0] (the score),
    in units of the score's std over the candidates, then its lead in each further part, in score units."""
    rows = torch.arange(pick.shape[0], device=pick.device)
    score = values[0]
    spread = score.std(dim=1, unbiased=False).clamp_min(1e-8)
    out = [(score[rows, pick] - score.median(dim=1).values) / spread]
    out += [v[rows, pick] - v.median(dim=1).values for v in values[1:]]
    return torch.stack(out, dim=1)


def propose_from_policy(models: PlanModels, s0: torch.Tensor, n: int, horizon: int, generator) -> torch.Tensor:
    """n DP-proposed sequences per start state: (B, n, H, act). The DP is resampled at the state each chunk ends
    (the model is stepped only to reach that state: it is deterministic in planning, so nothing else changes)."""
    b = s0.shape[0]
    s = s0.repeat_interleave(n, dim=0)
    actions: list[torch.Tensor] = []
    while len(actions) < horizon:
        chunk = models.policy(s, generator)
        for j in range(chunk.shape[1]):
            actions.append(chunk[:, j])
            if len(actions) == horizon:
                break
            if len(actions) + chunk.shape[1] - 1 - j < horizon:  # another chunk follows: walk to its state
                s = models.step(s, chunk[:, j])[0]
    return torch.stack(actions, dim=1).view(b, n, horizon, -1)


def shift_mean(mean: torch.Tensor, executed: int) -> torch.Tensor:
    """The warm start for the next plan: drop the executed steps, pad the tail with zeros (TD-MPC2)."""
    return torch.cat([mean[:, executed:], torch.zeros_like(mean[:, :executed])], dim=1)


@torch.no_grad()
def plan(models: PlanModels, s0: torch.Tensor, warm_mean: torch.Tensor | None, generator, cfg: PlannerConfig,
         gamma: float, act_dim: int) -> PlanResult:
    """MPPI from normalised states s0 (B, obs). warm_mean (B, H, act) or None. Returns the plan for each state."""
    b, h, n, p = s0.shape[0], cfg.horizon, cfg.samples, cfg.pi_trajectories
    device = s0.device
    mean = torch.zeros(b, h, act_dim, device=device) if warm_mean is None else warm_mean
    std = torch.full((b, h, act_dim), cfg.max_std, device=device)
    s_rep = s0.unsqueeze(1).expand(b, n, s0.shape[1])  # every candidate of state i starts from s0[i]
    proposals, cached = None, None
    if p > 0:
        proposals = propose_from_policy(models, s0, p, h, generator)  # (B, P, H, act), fixed for the whole plan
        r_p, alive_p, s_h_p = rollout(models, s_rep[:, :p].reshape(b * p, -1), proposals.reshape(b * p, h, act_dim),
                                      gamma, cfg.uncertainty_penalty)
        cached = (r_p.view(b, p), alive_p.view(b, p), s_h_p.view(b, p, -1))
    best = torch.zeros(b, device=device)
    ess, dp_won = torch.zeros(b, device=device), torch.zeros(b, device=device)
    for _ in range(cfg.iterations):
        noise = torch.randn((b, n - p, h, act_dim), device=device, generator=generator)
        candidates = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1.0, 1.0)
        if proposals is not None:
            candidates = torch.cat([proposals, candidates], dim=1)  # (B, N, H, act)
        scores = score_sequences(models, s_rep, candidates, cfg, gamma, generator, cached)  # (B, N)
        elite_scores, elite_idx = scores.topk(cfg.elites, dim=1)
        elites = torch.gather(candidates, 1, elite_idx[:, :, None, None].expand(-1, -1, h, act_dim))
        # exp(temperature · (score - max) / scale), normalised: softmax does exactly that, stably.
        scale = elite_weight_scale(elite_scores, cfg.score_norm)
        w = torch.softmax(cfg.temperature * elite_scores / scale, dim=1)
        weights = w[:, :, None, None]
        new_mean = (weights * elites).sum(1)
        new_std = ((weights * (elites - new_mean.unsqueeze(1)) ** 2).sum(1)).sqrt()
        mean = cfg.momentum * mean + (1.0 - cfg.momentum) * new_mean
        std = new_std.clamp(cfg.min_std, cfg.max_std)
        best = elite_scores[:, 0]
        ess = 1.0 / (w ** 2).sum(1)
        dp_won = (elite_idx[:, 0] < p).float()
    planned_reward, _, _ = rollout(models, s0, mean, gamma)
    return PlanResult(mean=mean, std=std, planned_reward=planned_reward, score=best, ess=ess, dp_won=dp_won)


@torch.no_grad()
def plan_best_of_dp(models: PlanModels, s0: torch.Tensor, generator, cfg: PlannerConfig, gamma: float,
                    length: int) -> PlanResult:
    """`planner.search: best_of_dp`: `pi_trajectories` DP proposals of `length` = max(horizon, Ta) actions per
    state, each scored over its first `horizon` actions by `score_sequences` (the same score as MPPI's, the same
    `planner.terminal`), and the best one is the plan (B, length, act). No Gaussian candidate, no mean, no warm
    start: every executed action is a DP sample's, so the search cannot leave the DP's support."""
    b, p, h = s0.shape[0], cfg.pi_trajectories, cfg.horizon
    proposals = propose_from_policy(models, s0, p, length, generator)  # (B, P, L, act), L >= H
    s_rep = s0.unsqueeze(1).expand(b, p, s0.shape[1])
    scores, reward_part, terminal_part = score_sequences(models, s_rep, proposals[:, :, :h], cfg, gamma, generator,
                                                         parts=True)  # (B, P) each
    best, pick = scores.max(dim=1)
    chosen = proposals[torch.arange(b, device=s0.device), pick]
    planned_reward, _, _ = rollout(models, s0, chosen[:, :h], gamma)
    ones = torch.ones(b, device=s0.device)
    return PlanResult(mean=chosen, std=torch.zeros_like(chosen), planned_reward=planned_reward, score=best,
                      ess=ones, dp_won=ones, lead=lead_over_median([scores, reward_part, terminal_part], pick))


@torch.no_grad()
def plan_by_q(models: PlanModels, s0: torch.Tensor, generator, cfg: PlannerConfig) -> PlanResult:
    """Horizon 0 (`planner.horizon: 0`), the single-factor control for the world model: no rollout, no MPPI.
    `pi_trajectories` DP chunks at each state (the planner's own DP proposals, sampled as it samples them) are
    scored by MODIP's Q of their first action, Q(s, chunk[0]) (the critics' ensemble mean; `planner.terminal`
    does not apply: V(s) is the same for every candidate), and the argmax is the plan, (B, Ta, act). The world
    model is never called (`models.step` may be None)."""
    b, p = s0.shape[0], cfg.pi_trajectories
    s_rep = s0.repeat_interleave(p, dim=0)  # candidate j of state i at row i * P + j, as propose_from_policy
    chunks = models.policy(s_rep, generator)
    q = models.q(s_rep, chunks[:, 0]).view(b, p)
    best, pick = q.max(dim=1)
    chosen = chunks.view(b, p, *chunks.shape[1:])[torch.arange(b, device=s0.device), pick]
    ones = torch.ones(b, device=s0.device)
    lead = torch.cat([lead_over_median([q], pick), torch.full((b, 2), float("nan"), device=s0.device)], dim=1)
    return PlanResult(mean=chosen, std=torch.zeros_like(chosen), planned_reward=torch.zeros_like(ones), score=best,
                      ess=ones, dp_won=ones, lead=lead)


def elite_weight_scale(elite_scores: torch.Tensor, score_norm: str) -> torch.Tensor:
    """The score unit of the elite weights (B, 1): the elites' score std (floored, so equal scores give uniform
    weights), or 1 (raw scores, TD-MPC2's convention)."""
    if score_norm == "none":
        return torch.ones_like(elite_scores[:, :1])
    spread = elite_scores.std(dim=1, keepdim=True, unbiased=False)
    return spread.clamp_min(1e-6 * (1.0 + elite_scores.abs().mean(dim=1, keepdim=True)))


def policy_chain_calls(horizon: int, chunk: int) -> int:
    """DP chains per plan for the proposals (the q terminal adds one chain per iteration)."""
    return math.ceil(horizon / chunk)
