"""The diffusion policy (DP) shared by bc_dp, DPPO and MODIP.

Why: bc_dp, DPPO and MODIP start from the same pretrained DP (the common start), so the DP is one reusable
module rather than something buried inside BC. It is DDPM (Ho et al., 2020) over a chunk of Ta normalised
actions, conditioned on the normalised observation, with an MLP denoiser and a sinusoidal timestep embedding
(as in DPPO's MLP diffusion policy). The noise schedule is cosine (Nichol & Dhariwal, 2021; also DPPO's).
Sampling is DDPM ancestral by default, or DDIM (Song et al., 2021) with fewer steps. The denoised x0 is
clipped to [-1, 1], the normalised action box.

`denoiser_calls` counts denoiser forward passes, so tests can count what a planner pays per plan.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import torch
from torch import nn

from methods.common.networks import EMA, mlp


@dataclasses.dataclass
class DPConfig:
    denoising_steps: int = 20
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    ddim_steps: int = 5
    # How a DP samples at evaluation: one harness setting (`eval.sampler`) copied here for every DP method.
    eval_sampler: Literal["ddpm", "ddim"] = "ddpm"
    chunk: int = 0  # action chunk length Ta; 0 = the task's default (4 on d4rl, as in DPPO)
    hidden: list[int] = dataclasses.field(default_factory=lambda: [256, 256, 256])
    time_dim: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-6
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    # DPPO-style: a floor on the std of each DDPM step's noise when sampling (0 = none).
    min_sampling_std: float = 0.0

    # Keys that change how the DP samples but not what BC training computes (the common start's cache key
    # leaves them out).
    SAMPLING_KEYS = ("eval_sampler", "sampler")

    def validate(self) -> None:
        if self.denoising_steps < 1:
            raise ValueError("dp.denoising_steps must be >= 1")
        if not 1 <= self.ddim_steps <= self.denoising_steps:
            from methods.config import ConfigError

            raise ConfigError(f"dp.ddim_steps must be in [1, dp.denoising_steps], got {self.ddim_steps}")


def cosine_betas(steps: int, s: float = 0.008) -> torch.Tensor:
    t = torch.linspace(0, steps, steps + 1, dtype=torch.float64) / steps
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alphas_bar = f / f[0]
    betas = 1 - alphas_bar[1:] / alphas_bar[:-1]
    return betas.clamp(1e-4, 0.999).float()


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Denoiser(nn.Module):
    """eps_theta(x_t, t, s): an MLP over [x_t (flattened chunk), time embedding, normalised obs]."""

    def __init__(self, obs_dim: int, act_dim: int, chunk: int, hidden, time_dim: int):
        super().__init__()
        self.chunk, self.act_dim = chunk, act_dim
        self.time = nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, time_dim * 2), nn.Mish(),
                                  nn.Linear(time_dim * 2, time_dim))
        self.net = mlp(chunk * act_dim + time_dim + obs_dim, hidden, chunk * act_dim, act=nn.Mish)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = torch.cat([x.reshape(b, -1), self.time(t), cond], dim=-1)
        return self.net(h).reshape(b, self.chunk, self.act_dim)


class DiffusionPolicy(nn.Module):
    """DDPM over normalised action chunks. Inputs and outputs are in normalised spaces."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int):
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim, self.chunk = obs_dim, act_dim, chunk
        self.T = cfg.denoising_steps
        self.denoiser = Denoiser(obs_dim, act_dim, chunk, cfg.hidden, cfg.time_dim)
        betas = cosine_betas(self.T)
        alphas = 1.0 - betas
        alphas_bar = torch.cumprod(alphas, 0)
        alphas_bar_prev = torch.cat([torch.ones(1), alphas_bar[:-1]])
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        self.register_buffer("alphas_bar", alphas_bar)
        self.register_buffer("alphas_bar_prev", alphas_bar_prev)
        # posterior q(x_{t-1} | x_t, x0) (Ho et al. eq. 7)
        self.register_buffer("post_var", betas * (1 - alphas_bar_prev) / (1 - alphas_bar))
        self.register_buffer("post_logvar", torch.log(self.post_var.clamp_min(1e-20)))
        self.register_buffer("post_c0", betas * alphas_bar_prev.sqrt() / (1 - alphas_bar))
        self.register_buffer("post_ct", (1 - alphas_bar_prev) * alphas.sqrt() / (1 - alphas_bar))
        self.denoiser_calls = 0

    # ---- training ---------------------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None,
             weights: torch.Tensor | None = None) -> torch.Tensor:
        """The ordinary denoising (epsilon-prediction) loss on clean chunks x0 (B, Ta, act_dim)."""
        b = x0.shape[0]
        t = torch.randint(0, self.T, (b,), device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, device=x0.device, generator=generator)
        ab = self.alphas_bar[t].view(b, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        eps = self.denoiser(x_t, t, cond)
        err = ((eps - noise) ** 2).mean(dim=(1, 2))
        if weights is not None:
            return (err * weights).sum() / weights.sum().clamp_min(1e-8)
        return err.mean()

    # ---- sampling ---------------------------------------------------------------------------------------
    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t, s). Subclasses may route steps to other networks (DPPO's frozen early steps)."""
        return self.denoiser(x_t, t, cond)

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # A diagnostic counted in eager mode only: an int attribute changed under torch.compile becomes a guard,
        # and the compiled sampler would recompile on every call (then fall back to eager at the recompile limit).
        if not torch.compiler.is_compiling():
            self.denoiser_calls += 1
        eps = self.eps(x_t, t, cond)
        ab = self.alphas_bar[t].view(-1, 1, 1)
        x0 = ((x_t - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1.0, 1.0)
        return x0, eps

    def p_mean_logvar(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor):
        """Mean and log-variance of p(x_{t-1} | x_t) for DDPM (used by sampling and by DPPO's log-probs)."""
        x0, _ = self.predict_x0(x_t, t, cond)
        mean = self.post_c0[t].view(-1, 1, 1) * x0 + self.post_ct[t].view(-1, 1, 1) * x_t
        return mean, self.post_logvar[t].view(-1, 1, 1)

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, generator: torch.Generator | None = None, sampler: str | None = None,
               deterministic: bool = False) -> torch.Tensor:
        """Chunks (B, Ta, act_dim) in [-1, 1]. deterministic=True drops the per-step noise (DDPM mean path)."""
        sampler = sampler or self.cfg.sampler
        b = cond.shape[0]
        x = torch.randn((b, self.chunk, self.act_dim), device=cond.device, generator=generator)
        if sampler == "ddim":
            return self._ddim(x, cond)
        for i in reversed(range(self.T)):
            t = torch.full((b,), i, device=cond.device, dtype=torch.long)
            mean, logvar = self.p_mean_logvar(x, t, cond)
            if i == 0 or deterministic:
                x = mean
            else:
                std = (0.5 * logvar).exp()
                if self.cfg.min_sampling_std > 0:
                    std = std.clamp_min(self.cfg.min_sampling_std)
                x = mean + std * torch.randn(x.shape, device=x.device, generator=generator)
        return x.clamp(-1.0, 1.0)

    def _ddim(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # eta = 0 DDIM on an evenly spaced subsequence of the T training steps.
        steps = torch.linspace(self.T - 1, 0, self.cfg.ddim_steps).round().long().tolist()
        b = x.shape[0]
        for k, i in enumerate(steps):
            t = torch.full((b,), i, device=x.device, dtype=torch.long)
            x0, eps = self.predict_x0(x, t, cond)
            if k == len(steps) - 1:
                x = x0
            else:
                ab_prev = self.alphas_bar[steps[k + 1]]
                x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x.clamp(-1.0, 1.0)


class DPModule:
    """A DP with its optimiser and EMA: the unit that the common-start checkpoint carries."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int, device):
        self.cfg = cfg
        self.policy = DiffusionPolicy(obs_dim, act_dim, cfg, chunk).to(device)
        self.optim = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ema = EMA(self.policy, cfg.ema_decay)

    def train_step(self, x0: torch.Tensor, cond: torch.Tensor, generator=None, weights=None,
                   update_ema: bool = True) -> float:
        self.policy.train()
        loss = self.policy.loss(x0, cond, generator=generator, weights=weights)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.policy.parameters(), self.cfg.grad_clip)
        self.optim.step()
        if update_ema:
            self.ema.update(self.policy)
        return float(loss.detach())

    def reset_to_ema(self) -> None:
        """Fine-tuning starts from the EMA weights (protocol rule)."""
        self.policy.load_state_dict(self.ema.module.state_dict())

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optim": self.optim.state_dict(), "ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optim.load_state_dict(state["optim"])
        self.ema.load_state_dict(state["ema"])
