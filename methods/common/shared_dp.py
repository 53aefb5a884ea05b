"""The shared DP as a DP method uses it: the DP module (weights, optimiser, EMA) plus acting in env units.

Why: every DP method samples chunks from the observation, executes the first `act_steps` of each, and trains
the DP by behaviour cloning on buffer chunks; that code lives once, on the DP object a DPMethod holds as
`self.dp`, so that it is a block a method uses, not part of the method contract (methods/base.py).
"""
from __future__ import annotations

import numpy as np
import torch

from methods.common.diffusion import DPModule
from methods.common.dp_config import DPConfig
from methods.common.normalize import Normalizer


class SharedDP(DPModule):
    """A DPModule that samples from raw observations and returns env actions: the first `act_steps` of its
    Ta-chunks (DPPO's `act_steps`)."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int, act_steps: int,
                 normalizer: Normalizer, device, compile_train: bool = False):
        super().__init__(obs_dim, act_dim, cfg, chunk, device, compile_train)
        self.chunk, self.act_steps = int(chunk), int(act_steps)
        self.normalizer = normalizer
        self.device = torch.device(device)

    def executed(self, chunks: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """The actions of sampled chunks (B, Ta, ...) that a DP call executes: the first act_steps of each."""
        return chunks[:, : self.act_steps]

    @torch.no_grad()
    def sample_obs(self, obs: np.ndarray | torch.Tensor, generator: torch.Generator, eval_mode: bool,
                   policy: torch.nn.Module | None = None) -> torch.Tensor:
        """Normalised chunks (B, Ta, act_dim) from the EMA DP (or `policy`), from raw observations, sampled
        through `eval_sampler` at evaluation and `sampler` in training (the harness's one rule)."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        cond = self.normalizer.norm_obs(o)
        policy = policy if policy is not None else self.ema.module
        sampler = self.cfg.eval_sampler if eval_mode else self.cfg.sampler
        return policy.sample(cond, generator=generator, sampler=sampler)

    def act(self, obs, generator: torch.Generator, eval_mode: bool,
            policy: torch.nn.Module | None = None) -> np.ndarray:
        """The executed part (B, act_steps, act_dim) of the DP's chunks, in env units (EMA DP, or `policy`)."""
        chunk = self.sample_obs(obs, generator, eval_mode, policy=policy)
        return self.normalizer.unnorm_act(self.executed(chunk)).cpu().numpy()

    def batch(self, buffer, n: int, source: str = "offline") -> dict[str, torch.Tensor]:
        """n (normalised obs, normalised action chunk) pairs from the buffer."""
        b = buffer.sample_chunks(n, self.chunk, source=source, device=self.device)
        return {"obs": self.normalizer.norm_obs(b["obs"]), "chunk": self.normalizer.norm_act(b["action_chunk"])}

    def bc_step(self, buffer, n: int, source: str = "offline") -> float:
        """One behaviour-cloning (denoising) step on n buffer chunks."""
        b = self.batch(buffer, n, source)
        return self.train_step(b["chunk"], b["obs"], generator=None)

    def denoising_steps(self, sampler: str | None = None) -> int:
        """Denoising steps of one sample with `sampler` (the eval sampler by default)."""
        sampler = sampler or self.cfg.eval_sampler
        return self.cfg.ddim_steps if sampler == "ddim" else self.cfg.denoising_steps
