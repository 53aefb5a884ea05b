"""bc_dp: behaviour cloning of a diffusion policy (DDPM, 20 steps, action chunks).

Why: the DP that DPPO and MODIP fine-tune starts here (the common start), and its online curve is flat: the
reference line every fine-tuning method must beat. The DP itself lives in methods/common/diffusion.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from methods.base import ActorState, Method, register
from methods.common.diffusion import DPConfig, DPModule


@dataclasses.dataclass
class BCDPConfig:
    batch_size: int = 256


class DPMethod(Method):
    """Base of every method built on the shared DP: builds it, samples chunks, carries the common start."""

    uses_dp = True

    def __init__(self, cfg, spaces, normalizer, device="cpu", seed=0, dp_cfg: DPConfig | None = None, **_):
        super().__init__(cfg, spaces, normalizer, device, seed)
        self.dp_cfg = dp_cfg or DPConfig()
        self.chunk = self.dp_cfg.chunk or spaces.chunk
        torch.manual_seed(seed)
        self.dp = DPModule(spaces.obs_dim, spaces.act_dim, self.dp_cfg, self.chunk, self.device)

    def dp_batch(self, n: int, source: str = "offline") -> dict[str, torch.Tensor]:
        b = self.buffer.sample_chunks(n, self.chunk, source=source, device=self.device)
        return {"obs": self.normalizer.norm_obs(b["obs"]), "chunk": self.normalizer.norm_act(b["action_chunk"])}

    def bc_step(self, n: int, source: str = "offline") -> float:
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

    def act_dp(self, obs, state: ActorState, eval_mode: bool) -> np.ndarray:
        chunk = self.dp_sample(obs, state.generator, eval_mode)
        return self.normalizer.unnorm_act(chunk).cpu().numpy()

    def export_pretrained_dp(self) -> dict:
        return {"dp": self.dp.state_dict(), "normalizer": self.normalizer.state_dict(), "chunk": self.chunk}

    def load_pretrained_dp(self, state: dict) -> None:
        if int(state["chunk"]) != self.chunk:
            raise ValueError(f"pretrained DP has chunk {state['chunk']}, this method uses {self.chunk}")
        self.dp.load_state_dict(state["dp"])
        self.normalizer.load_state_dict(state["normalizer"])


@register("bc_dp")
class BCDP(DPMethod):
    Config = BCDPConfig
    rollout_kind = "none"
    actors = ("dp",)

    def pretrain_step(self, batch=None):
        loss = self.bc_step(self.cfg.batch_size)
        self.grad_steps += 1
        return {"loss/denoise": loss}

    def pretrain_batch(self):
        return None  # bc_dp samples its own chunk batches

    def act(self, obs, actor, state, eval_mode):
        return self.act_dp(obs, state, eval_mode)

    def modules(self):
        return {"dp": self.dp.policy, "dp_optim": self.dp.optim, "dp_ema": self.dp.ema.module}

    def cost_settings(self):
        return {"denoising_steps": self.dp_cfg.denoising_steps if self.dp_cfg.eval_sampler == "ddpm"
                else self.dp_cfg.ddim_steps}

    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        comps = {"act": lambda: self.act(obs, "dp", st, True)}
        if self.buffer is not None:
            comps["update"] = lambda: self.bc_step(self.cfg.batch_size)
        return comps
