"""PA-RL's action optimisation: rerank DP samples by Q, then take gradient steps on Q from the best ones.

Why: this is what replaces MODIP's world model and MPC in PA-RL (Mark et al., arXiv 2412.06685). It follows the
official code (MaxSobolMark/PolicyAgnosticRL, jaxrl_m/agents/continuous/action_optimization.py
`action_optimization_sample_actions` and `local_optimization_steps`), written here in PyTorch:
  1. rerank: Q of each of the N proposals, the ensemble *mean* over critics (it reranks by the mean whatever
     `optimize_critic_ensemble_min` says); keep the top k;
  2. for distillation only, the worst kept candidate is replaced by the dataset action at that state;
  3. `steps` steps of plain gradient ascent on the ensemble-mean Q, a ← clip(a + step_size ∇_a Q, box), with no
     normalisation of the gradient; each candidate keeps the iterate (0..steps) with the highest Q
     (`keep_action_with_max_value`, default True). Deviation (issue 25 C3, `units="action"`, opt-in through
     `parl.step_units`): the step is taken in action units instead, a ← clip(a + step_size ∇_a Q / rms(∇_a Q)),
     the gradient's RMS over the candidate's executed elements, so every step moves each candidate by
     step_size RMS per element whatever Q's scale. PA-RL's raw step (local_optimization_steps, step_size 3e-4
     in parl_iql.py's constructor defaults and base_config.py) is `units="q"`: on the demo's and Hopper's Q it
     moved an action by at most ~0.03 of the [-1, 1] box in 5 steps (parl/q_gain 0.005-0.011 on Hopper);
  4. the final Q of the k candidates chooses one: the argmax (acting, `argmax=True`), or a sample from
     softmax(Q / temperature) (distillation, `distill_argmax=False` in the state configs; temperature 1 there).
Candidates are chunks in the DP's normalised action space (box [-1, 1]); Q sees the executed part of each
(the first `executed` actions), so the gradient moves those and the chunk's tail stays as the DP sampled it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch


def rerank(q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], s: torch.Tensor, cands: torch.Tensor,
           keep: int, executed: int, with_q: bool = False):
    """cands (B, N, Ta, A) -> the `keep` with the highest Q (B, keep, Ta, A), best last (argsort order); with_q:
    also their Q (B, keep)."""
    b, n = cands.shape[:2]
    with torch.no_grad():
        q = q_fn(s.repeat_interleave(n, 0), cands[:, :, :executed].reshape(b * n, executed, -1)).view(b, n)
    top = q.argsort(dim=1)[:, n - keep:]
    kept = torch.gather(cands, 1, top[:, :, None, None].expand(-1, -1, *cands.shape[2:]))
    return (kept, torch.gather(q, 1, top)) if with_q else kept


def ascend(q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], s: torch.Tensor, cands: torch.Tensor,
           steps: int, step_size: float, executed: int, units: str = "q") -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ascent on Q from each candidate (B, k, Ta, A), clipped to [-1, 1] after every step; each keeps
    its best iterate. units "q": a step of step_size times the gradient (PA-RL's); "action": a step of
    step_size RMS per executed element along the gradient (the module doc). Returns (the candidates with their
    executed part optimised, their Q (B, k))."""
    if units not in ("q", "action"):
        raise ValueError(f"unknown step units '{units}' (q or action)")
    b, k = cands.shape[:2]
    s_rep = s.repeat_interleave(k, 0)
    a = cands[:, :, :executed].reshape(b * k, executed, -1).detach().clone()
    best_a, best_q = a.clone(), torch.full((b * k,), -torch.inf, device=a.device)
    for i in range(steps + 1):
        if i < steps:
            with torch.enable_grad():
                a.requires_grad_(True)
                q = q_fn(s_rep, a)
                grad = torch.autograd.grad(q.sum(), a)[0]
        else:  # the last iterate's Q only: no graph
            with torch.no_grad():
                q, grad = q_fn(s_rep, a.detach()), None
        with torch.no_grad():
            q = q.detach()
            better = q > best_q
            best_q = torch.where(better, q, best_q)
            best_a = torch.where(better[:, None, None], a.detach(), best_a)
            if grad is not None:
                if units == "action":  # the gradient's direction, scaled to an RMS of 1 per candidate
                    grad = grad / grad.pow(2).mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)
                a = (a.detach() + step_size * grad).clamp(-1.0, 1.0)
    out = cands.clone()
    out[:, :, :executed] = best_a.view(b, k, executed, -1)
    return out, best_q.view(b, k)


def choose(cands: torch.Tensor, q: torch.Tensor, argmax: bool, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """One candidate per state (B, Ta, A): the argmax of Q, or a sample from softmax(Q / temperature)."""
    if argmax:
        pick = q.argmax(1)
    else:
        pick = torch.multinomial(torch.softmax(q / temperature, dim=1), 1, generator=generator).squeeze(1)
    return cands[torch.arange(cands.shape[0], device=cands.device), pick]
