"""bc_gauss: behaviour cloning with an MLP Gaussian policy (tanh-free, state-independent clipping).

Why: the simplest baseline; its online curve is flat (no online phase), a reference line for the DP methods.
It is also the template of a method (methods/base.py says the contract): a Config, its actors, `act`, an
offline `pretrain`, `modules` and `timed_components`; no `update`, so no online phase.
It maximises the log-likelihood of the normalised dataset actions under N(mu(s), sigma(s)); eval acts with mu.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from methods.base import ActorState, ComponentKind, Method, MethodContext, TimedComponent, register
from methods.bc_gauss.config import ACTORS, BCGaussConfig
from methods.common.networks import mlp


@register("bc_gauss")
class BCGauss(Method):
    Config = BCGaussConfig
    actors = ACTORS

    def __init__(self, cfg: BCGaussConfig, ctx: MethodContext):
        super().__init__(cfg, ctx)
        spaces = self.spaces
        torch.manual_seed(self.seed)
        self.net = mlp(spaces.obs_dim, cfg.hidden, 2 * spaces.act_dim, act=nn.ReLU).to(self.device)
        self.optim = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, fused=True)

    def _dist(self, obs_n: torch.Tensor):
        mu, log_std = self.net(obs_n).chunk(2, dim=-1)
        log_std = log_std.clamp(self.cfg.log_std_min, self.cfg.log_std_max)
        return torch.tanh(mu), log_std

    def pretrain(self, buffer):
        return self._step(buffer.sample(self.cfg.batch_size, source="offline", device=self.device))

    def _step(self, batch):
        obs = self.normalizer.norm_obs(batch["obs"])
        act = self.normalizer.norm_act(batch["action"])
        mu, log_std = self._dist(obs)
        nll = (0.5 * ((act - mu) / log_std.exp()) ** 2 + log_std).sum(-1).mean()
        self.optim.zero_grad(set_to_none=True)
        nll.backward()
        self.optim.step()
        return {"loss/nll": float(nll.detach()), "loss/mse": float(((act - mu) ** 2).mean().detach())}

    @torch.no_grad()
    def act(self, obs: np.ndarray, actor: str | None, state: ActorState, eval_mode: bool):
        o = self.normalizer.norm_obs(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        mu, log_std = self._dist(o)
        a = mu if eval_mode else mu + log_std.exp() * torch.randn(mu.shape, generator=state.generator,
                                                                    device=mu.device)
        return self.normalizer.unnorm_act(a).cpu().numpy()[:, None, :], {}

    def modules(self):
        return {"net": self.net, "optim": self.optim}

    def timed_components(self, batch_size: int = 1):
        obs = np.zeros((batch_size, self.spaces.obs_dim), np.float32)
        st = ActorState.create(0, self.device)
        batch = self.buffer.sample(self.cfg.batch_size, source="offline", device=self.device) if self.buffer else None
        # act returns one action per call (B, 1, act_dim); updates are offline only: no updates per env step.
        comps = {"act": TimedComponent(lambda: self.act(obs, "policy", st, True), ComponentKind.ACT,
                                       actor="policy", actions_per_call=1)}
        if batch is not None:
            comps["update"] = TimedComponent(lambda: self._step(batch), ComponentKind.UPDATE,
                                             updates_per_env_step=None)
        return comps
