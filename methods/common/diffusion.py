"""The diffusion policy (DP) shared by bc_dp, DPPO and MODIP.

Why: bc_dp, DPPO and MODIP start from the same pretrained DP (the common start), so the DP is one reusable
module rather than something buried inside BC. It is DDPM (Ho et al., 2020) over a chunk of Ta normalised
actions, conditioned on the normalised observation, with an MLP denoiser and a sinusoidal timestep embedding
(as in DPPO's MLP diffusion policy). The noise schedule is cosine (Nichol & Dhariwal, 2021; also DPPO's).
Sampling is DDPM ancestral by default, or DDIM (Song et al., 2021) with fewer steps. The denoised x0 is
clipped to [-1, 1], the normalised action box.

The denoiser is configurable (`DPConfig`): a plain MLP (the default: Mish, 256x3, today's demo DP) or DPPO's
residual MLP (`residual: true`), with the activation, widths, time embedding, layer norm and an optional
observation encoder (`cond_hidden`) as knobs. DPPO's design (irom-princeton/dppo at cc7234a) is the default on
the paper's suites through `DP_SUITE_DEFAULTS` (methods/common/dp_config.py); bench/config applies it under presets and
user overrides. How DPPO builds the denoiser (model/diffusion/mlp_diffusion.py `DiffusionMLP`,
model/common/mlp.py `MLP` / `ResidualMLP` / `TwoLayerPreActivationResNetLinear`), which this module follows:
- input: concat[flattened noisy chunk x_t (Ta*act_dim), time embedding (time_dim), cond], in that order; the
  cond is the observation, or its encoding by `cond_mlp` (an MLP whose last layer has no activation);
- time embedding: sinusoidal(time_dim) -> Linear(time_dim, 2 time_dim) -> Mish -> Linear(2 time_dim, time_dim),
  Mish whatever the network's activation;
- plain MLP: Linear [-> LayerNorm] -> act for each hidden layer, then a linear output layer (Identity);
- residual MLP (mlp_dims [w]*(2k+1)): Linear(in, w) with no activation after it, then k pre-activation blocks
  h + L2(act([LN] L1(act([LN] h)))), then Linear(w, out) straight from the last block (no activation);
  layer norm (eps 1e-6) only inside the blocks and only when asked (every DPPO config has it off).
With obs 11, act 3, Ta 4 and mlp_dims [512, 512, 512] that is 553,020 parameters (tests/methods/common/test_diffusion.py).

`act_steps` is how many actions of each Ta-chunk a DP method executes per call (DPPO's `act_steps`): the
chunk is still sampled and trained whole; `SharedDP.act` (methods/common/shared_dp.py) returns its first
act_steps actions.

A sampling chain (`sample`, `ddim_from`, DPPO's `sample_chain`) has its whole batch at one step per call, so
the time embedding (sinusoid -> MLP) and the condition encoder, which depend on the step and the obs only, run
once per chain (`_chain_inputs`: one time-MLP call on the chain's steps, broadcast over the batch) instead of at
every step for every row. Training keeps the per-row embedding of its random steps (a table of the T steps
indexed by t measured within 2% of it, noise, on the demo and d4rl DPs at batch 128 and 256).

`denoiser_calls` counts denoiser forward passes, so tests can count what a planner pays per plan.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from methods.common.compiling import compile_step
from methods.common.dp_config import DPConfig
from methods.common.mish import Mish
from methods.common.networks import EMA, ResidualMLP, mlp

ACTIVATIONS: dict[str, type[nn.Module]] = {
    # DPPO's model/common/mlp.py `activation_dict` (Identity aside), plus SiLU.
    "mish": Mish, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "tanh": nn.Tanh, "softplus": nn.Softplus,
    "silu": nn.SiLU,
}


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
        half = dim // 2
        # computed once (the same float32 values every call computed before); not in the state dict
        self.register_buffer("freqs", torch.exp(torch.arange(half, dtype=torch.float32)
                                                * (-math.log(10000.0) / (half - 1))), persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Denoiser(nn.Module):
    """eps_theta(x_t, t, s): an MLP over [x_t (flattened chunk), time embedding, cond], where cond is the
    normalised obs or, with `cond_hidden`, its encoding by a small MLP (DPPO's DiffusionMLP). The network is
    a plain MLP or DPPO's residual MLP (see the module doc)."""

    def __init__(self, obs_dim: int, act_dim: int, chunk: int, hidden, time_dim: int, *, residual: bool = False,
                 activation: str = "mish", layernorm: bool = False, cond_hidden=()):
        super().__init__()
        self.chunk, self.act_dim = chunk, act_dim
        act = ACTIVATIONS[activation]
        # The time embedding is Mish whatever `activation` is (as in DPPO's DiffusionMLP).
        self.time = nn.Sequential(SinusoidalEmbedding(time_dim), nn.Linear(time_dim, time_dim * 2), Mish(),
                                  nn.Linear(time_dim * 2, time_dim))
        cond_hidden = list(cond_hidden)
        cond_dim = obs_dim
        self.cond: nn.Module | None = None
        if cond_hidden:  # DPPO's cond_mlp: act between layers, none after the last
            self.cond = mlp(obs_dim, cond_hidden[:-1], cond_hidden[-1], act=act)
            cond_dim = cond_hidden[-1]
        in_dim = chunk * act_dim + time_dim + cond_dim
        if residual:
            self.net = ResidualMLP(in_dim, hidden, chunk * act_dim, act, layernorm)
        else:
            self.net = mlp(in_dim, hidden, chunk * act_dim, act=act, layer_norm=layernorm)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.step(x, self.time(t), self.encode(cond))

    def encode(self, cond: torch.Tensor) -> torch.Tensor:
        """The condition the network reads: the obs, or its encoding by `cond_mlp`."""
        return cond if self.cond is None else self.cond(cond)

    def step(self, x: torch.Tensor, temb: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """eps from the time embedding `temb` ((B, time_dim), or (1, time_dim) for a batch all at one step,
        broadcast) and the encoded condition (`encode`)."""
        b = x.shape[0]
        h = torch.cat([x.reshape(b, -1), temb.expand(b, -1), cond], dim=-1)
        return self.net(h).reshape(b, self.chunk, self.act_dim)


def build_denoiser(obs_dim: int, act_dim: int, chunk: int, cfg: DPConfig) -> Denoiser:
    """The denoiser that `cfg` describes."""
    return Denoiser(obs_dim, act_dim, chunk, cfg.hidden, cfg.time_dim, residual=cfg.residual,
                    activation=cfg.activation, layernorm=cfg.layernorm, cond_hidden=cfg.cond_hidden)


class DiffusionPolicy(nn.Module):
    """DDPM over normalised action chunks. Inputs and outputs are in normalised spaces."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int):
        super().__init__()
        self.cfg = cfg
        self.obs_dim, self.act_dim, self.chunk = obs_dim, act_dim, chunk
        self.T = cfg.denoising_steps
        self.denoiser = build_denoiser(obs_dim, act_dim, chunk, cfg)
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
        # The same coefficients as Python floats (each the float32 value above), for sampling chains, where every
        # sample of a batch is at the same step: scalar arithmetic instead of gathers and broadcasts per step.
        self._chain = {name: [float(v) for v in values] for name, values in (
            ("sqrt_ab", alphas_bar.sqrt()), ("sqrt_1m_ab", (1 - alphas_bar).sqrt()), ("c0", self.post_c0),
            ("ct", self.post_ct), ("std", (0.5 * self.post_logvar).exp()))}
        self.denoiser_calls = 0

    # ---- training ---------------------------------------------------------------------------------------
    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator: torch.Generator | None = None,
             weights: torch.Tensor | None = None) -> torch.Tensor:
        """The ordinary denoising (epsilon-prediction) loss on clean chunks x0 (B, Ta, act_dim)."""
        return weighted_mean(self.sample_losses(x0, cond, generator), weights)

    def sample_losses(self, x0: torch.Tensor, cond: torch.Tensor,
                      generator: torch.Generator | None = None) -> torch.Tensor:
        """The denoising loss of each sample (B,): one random step t and noise per sample."""
        return self.noise_losses(x0, cond, *self.draw_noise(x0, generator))

    def draw_noise(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """The random part of a denoising loss: a step t (B,) and noise like x0, drawn in that order."""
        t = torch.randint(0, self.T, (x0.shape[0],), device=x0.device, generator=generator)
        return t, torch.randn(x0.shape, device=x0.device, generator=generator)

    def noise_losses(self, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
                     noise: torch.Tensor) -> torch.Tensor:
        """The denoising loss of each sample (B,) at steps t with `noise` (its deterministic part)."""
        b = x0.shape[0]
        ab = self.alphas_bar[t].view(b, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        eps = self.denoiser(x_t, t, cond)
        return ((eps - noise) ** 2).mean(dim=(1, 2))

    # ---- sampling ---------------------------------------------------------------------------------------
    def eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t, s). Subclasses may route steps to other networks (DPPO's frozen early steps); a
        subclass that does routes a chain's steps alike in `denoiser_at`."""
        return self.denoiser(x_t, t, cond)

    def denoiser_at(self, i: int) -> Denoiser:
        """The network that denoises step i of a sampling chain (`eps`'s routing for a batch all at step i)."""
        return self.denoiser

    def _chain_inputs(self, steps: list[int],
                      cond: torch.Tensor) -> list[tuple[Denoiser, torch.Tensor, torch.Tensor]]:
        """For each step of a chain through `steps`: (its network, its time embedding (1, time_dim), the encoded
        cond). They depend on the step and the obs only, not on the batch row nor on x, so each network's time
        MLP runs once per chain on the chain's steps, and its condition encoder once, instead of at every step
        for every row."""
        nets = [self.denoiser_at(i) for i in steps]
        out: list = [None] * len(steps)
        for net in dict.fromkeys(nets):
            rows = [k for k, n in enumerate(nets) if n is net]
            table = net.time(torch.tensor([steps[k] for k in rows], device=cond.device, dtype=torch.long))
            enc = net.encode(cond)
            for r, k in enumerate(rows):
                out[k] = (net, table[r:r + 1], enc)
        return out

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
        k = self._chain
        steps = list(reversed(range(self.T)))
        for i, inputs in zip(steps, self._chain_inputs(steps, cond)):
            # p_mean_logvar at a step shared by the whole batch, with its coefficients as scalars
            x0, _ = self._chain_x0(x, i, inputs)
            mean = x0.mul_(k["c0"][i]).add_(x * k["ct"][i])
            if i == 0 or deterministic:
                x = mean
            else:
                std = max(k["std"][i], self.cfg.min_sampling_std)
                x = mean.add_(torch.randn(x.shape, device=x.device, generator=generator).mul_(std))
        return x.clamp(-1.0, 1.0)

    def _chain_x0(self, x_t: torch.Tensor, i: int,
                  inputs: tuple[Denoiser, torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """`predict_x0` for a batch that is all at step i, given the step's `_chain_inputs`: (x0, a fresh tensor;
        eps)."""
        if not torch.compiler.is_compiling():
            self.denoiser_calls += 1
        net, temb, cond = inputs
        eps = net.step(x_t, temb, cond)
        k = self._chain
        # the same float32 operations as predict_x0 (no fused multiply-adds), so the same bits
        return torch.sub(x_t, eps * k["sqrt_1m_ab"][i]).div_(k["sqrt_ab"][i]).clamp_(-1.0, 1.0), eps

    def _ddim(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # eta = 0 DDIM on an evenly spaced subsequence of the T training steps, from pure noise at T - 1.
        return self.ddim_from(x, cond, self.ddim_timesteps(self.cfg.ddim_steps, "linspace"))

    def ddim_timesteps(self, steps: int, schedule: str = "linspace") -> list[int]:
        """The descending training steps an eta = 0 DDIM chain of `steps` steps visits.

        linspace: evenly spaced from T - 1 to 0 (this DP's `ddim` sampler; it starts at pure noise).
        leading: DPPO's DDIM schedule (model/diffusion/diffusion.py, `ddim_discretize: uniform`): step ratio
        T // steps, t = ratio · (steps - 1), ..., ratio, 0; with T 20 and 5 steps, 16, 12, 8, 4, 0 (it starts at
        t = 16, ᾱ ≈ 0.054, not at t = T - 1)."""
        if not 1 <= steps <= self.T:
            raise ValueError(f"a DDIM chain needs 1 to {self.T} steps, got {steps}")
        if schedule == "linspace":
            return torch.linspace(self.T - 1, 0, steps).round().long().tolist()
        if schedule == "leading":
            ratio = self.T // steps
            return [ratio * k for k in reversed(range(steps))]
        raise ValueError(f"unknown DDIM schedule '{schedule}' (linspace or leading)")

    def ddim_from(self, x: torch.Tensor, cond: torch.Tensor, timesteps: list[int],
                  recompute_eps: bool = False) -> torch.Tensor:
        """The deterministic (eta = 0) DDIM chain from x at timesteps[0] (B, Ta, act_dim) through `timesteps`
        (descending): a = DP(s, x), a function of the state and the initial noise. Each step predicts x0 (clamped
        to [-1, 1]) and steps along the predicted noise; the output is the last step's x0. recompute_eps: the
        noise is re-derived from the clamped x0, (x - √ᾱ x0) / √(1 - ᾱ), as DPPO's DDIM does (p_mean_var:
        "re-calculate noise based on clamped x_recon"); otherwise the network's prediction is used."""
        c = self._chain
        for k, (i, inputs) in enumerate(zip(timesteps, self._chain_inputs(timesteps, cond))):
            x0, eps = self._chain_x0(x, i, inputs)
            if recompute_eps:
                eps = torch.sub(x, x0 * c["sqrt_ab"][i]).div_(c["sqrt_1m_ab"][i])
            if k == len(timesteps) - 1:
                x = x0
            else:
                j = timesteps[k + 1]
                x = (x0 * c["sqrt_ab"][j]).add_(eps * c["sqrt_1m_ab"][j])
        return x.clamp(-1.0, 1.0)


def weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Σ w v / Σ w (the plain mean when weights is None)."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clamp_min(1e-8)


class DPModule:
    """A DP with its optimiser and EMA: the unit that the common-start checkpoint carries."""

    def __init__(self, obs_dim: int, act_dim: int, cfg: DPConfig, chunk: int, device, compile_train: bool = False):
        self.cfg = cfg
        self.policy = DiffusionPolicy(obs_dim, act_dim, cfg, chunk).to(device)
        self.optim = torch.optim.AdamW(self.policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        self.ema = EMA(self.policy, cfg.ema_decay)
        # the run key compile_train (methods/common/compiling.py): the step's loss, forward and backward, compiled
        self._losses = compile_step(self._weighted_losses, compile_train)

    def train_step(self, x0: torch.Tensor, cond: torch.Tensor, generator=None, weights=None,
                   update_ema: bool = True, grad_clip: float | None = None) -> float:
        """One denoising step. `grad_clip`: the max grad norm (None = dp.grad_clip, the fine-tuning value; the
        common start passes its own common_start.grad_clip); 0 = no clipping."""
        return self.train_step_errors(x0, cond, generator, weights, update_ema, grad_clip)[0]

    def train_step_errors(self, x0: torch.Tensor, cond: torch.Tensor, generator=None, weights=None,
                          update_ema: bool = True, grad_clip: float | None = None) -> tuple[float, torch.Tensor]:
        """`train_step`, also returning each sample's unweighted denoising loss (B,), detached (for a loss split
        by where the samples came from)."""
        self.policy.train()
        t, noise = self.policy.draw_noise(x0, generator)
        loss, errors = self._losses(x0, cond, t, noise, weights)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.grad_clip if grad_clip is None else grad_clip
        if clip > 0:
            nn.utils.clip_grad_norm_(self.policy.parameters(), clip)
        self.optim.step()
        if update_ema:
            self.ema.update(self.policy)
        return float(loss.detach()), errors.detach()

    def _weighted_losses(self, x0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                         weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(the weighted loss, each sample's loss (B,)) at drawn steps and noise: what compile_train compiles."""
        errors = self.policy.noise_losses(x0, cond, t, noise)
        return weighted_mean(errors, weights), errors

    def reset_optimizer_moments(self) -> None:
        """Forget Adam's moments and step counts (e.g. when fine-tuning on new targets starts), keeping the lr."""
        self.optim.state.clear()

    def reset_to_ema(self) -> None:
        """Fine-tuning starts from the EMA weights (protocol rule)."""
        self.policy.load_state_dict(self.ema.module.state_dict())

    def state_dict(self) -> dict:
        return {"policy": self.policy.state_dict(), "optim": self.optim.state_dict(), "ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state["policy"])
        self.optim.load_state_dict(state["optim"])
        self.ema.load_state_dict(state["ema"])
