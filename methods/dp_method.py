"""The base of every method built on the shared diffusion policy (bc_dp, DPPO, MODIP, ...).

Why: these methods share one DP (methods/common/diffusion.py), its sampling path and its common start, so the
code that builds the DP, samples chunks from it and takes the common-start checkpoint lives once, here.
"""
from __future__ import annotations

import numpy as np
import torch

from methods.base import ActorState, ComponentKind, Method, MethodContext, TimedComponent
from methods.common.diffusion import DPModule
from methods.common.dp_config import DPConfig
from methods.common.section import ConfigError


class DPMethod(Method):
    """Builds the shared DP, samples chunks from it, and carries the common start."""

    uses_dp = True

    def __init__(self, cfg, ctx: MethodContext):
        super().__init__(cfg, ctx)
        self.dp_cfg = ctx.dp_cfg or DPConfig()
        self.chunk = self.dp_cfg.chunk or self.spaces.chunk
        # Env actions executed of each sampled chunk per call (DPPO's act_steps; dp.act_steps 0 = the chunk).
        self.act_steps = self.dp_cfg.executed_steps(self.chunk)
        if not 1 <= self.act_steps <= self.chunk:
            raise ConfigError(f"config key 'dp.act_steps' must be in [1, the DP's chunk {self.chunk}] "
                              f"(0 = the whole chunk), got {self.dp_cfg.act_steps}")
        torch.manual_seed(self.seed)
        self.dp = DPModule(self.spaces.obs_dim, self.spaces.act_dim, self.dp_cfg, self.chunk, self.device)

    def decision_length(self) -> int:
        """Env actions one DP decision executes: act_steps of the Ta-chunk."""
        return int(self.act_steps)

    def dp_batch(self, n: int, source: str = "offline") -> dict[str, torch.Tensor]:
        """n offline (or online) (normalised obs, normalised action chunk) pairs from the buffer."""
        b = self.buffer.sample_chunks(n, self.chunk, source=source, device=self.device)
        return {"obs": self.normalizer.norm_obs(b["obs"]), "chunk": self.normalizer.norm_act(b["action_chunk"])}

    def bc_step(self, n: int, source: str = "offline") -> float:
        """One behaviour-cloning (denoising) step of the DP on n buffer chunks."""
        b = self.dp_batch(n, source)
        return self.dp.train_step(b["chunk"], b["obs"], generator=None)

    @torch.no_grad()
    def dp_sample(self, obs: np.ndarray | torch.Tensor, generator: torch.Generator, eval_mode: bool,
                  policy: torch.nn.Module | None = None) -> torch.Tensor:
        """Normalised chunks (B, Ta, act_dim) from the EMA DP (or `policy`), from raw observations."""
        o = torch.as_tensor(obs, dtype=torch.float32, device=self.device)
        cond = self.normalizer.norm_obs(o)
        policy = policy if policy is not None else self.dp.ema.module
        sampler = self.dp_cfg.eval_sampler if eval_mode else self.dp_cfg.sampler
        return policy.sample(cond, generator=generator, sampler=sampler)

    def executed(self, chunks: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """The actions of sampled chunks (B, Ta, ...) that a DP call executes: the first act_steps of each."""
        return chunks[:, : self.act_steps]

    def act_dp(self, obs, state: ActorState, eval_mode: bool, policy: torch.nn.Module | None = None) -> np.ndarray:
        """The executed part (B, act_steps, act_dim) of the DP's chunks, in env units (from the EMA DP, or
        `policy`)."""
        chunk = self.dp_sample(obs, state.generator, eval_mode, policy=policy)
        return self.normalizer.unnorm_act(self.executed(chunk)).cpu().numpy()

    def probe_obs(self, batch_size: int) -> np.ndarray:
        """Observations for timing an actor: the first offline states of the buffer (zeros without one)."""
        if self.buffer is not None and self.buffer.size >= batch_size:
            return self.buffer.offline_stats(("obs",), limit=batch_size)["obs"]
        return np.zeros((batch_size, self.spaces.obs_dim), np.float32)

    def actor_components(self, batch_size: int = 1) -> dict[str, TimedComponent]:
        """`<actor>_act` for every actor: one evaluation-mode call on `batch_size` states (act_steps actions)."""
        obs = self.probe_obs(batch_size)
        comps = {}
        for i, actor in enumerate(self.actors):
            state = ActorState.create(i, self.device)
            comps[f"{actor}_act"] = TimedComponent(lambda a=actor, st=state: self.act(obs, a, st, True),
                                                   ComponentKind.ACT, actor=actor, actions_per_call=self.act_steps)
        return comps

    def update_rate(self) -> float:
        """Fine-tune updates per env step (the timed update's metadata; a method with an `update` component)."""
        raise NotImplementedError(f"{self.name} times an update but has no update_rate")

    def timed_update(self) -> dict[str, float]:
        """The update the timing harness measures (a fine-tune update by default)."""
        return self.finetune_step()

    def timed_components(self, batch_size: int = 1) -> dict[str, TimedComponent]:
        """`<actor>_act` for every actor (act_steps actions per call) and, with a buffer, `update` (`timed_update`
        at `update_rate()` per env step). Methods that time something else override this."""
        comps = self.actor_components(batch_size)
        if self.buffer is not None:
            comps["update"] = TimedComponent(self.timed_update, ComponentKind.UPDATE,
                                             updates_per_env_step=self.update_rate())
        return comps

    def export_pretrained_dp(self) -> dict:
        """This method's DP as a common-start state (the format load_pretrained_dp takes)."""
        return {"dp": self.dp.state_dict(), "normalizer": self.normalizer.state_dict(), "chunk": self.chunk}

    def load_pretrained_dp(self, state: dict) -> None:
        if int(state["chunk"]) != self.chunk:
            raise ValueError(f"pretrained DP has chunk {state['chunk']}, this method uses {self.chunk}")
        self.dp.load_state_dict(state["dp"])
        self.normalizer.load_state_dict(state["normalizer"])
