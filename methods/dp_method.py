"""The base of every method built on the shared diffusion policy (bc_dp, DPPO, MODIP, ...), and its timing helper.

Why: these methods share one DP (methods/common/shared_dp.py), its sampling path and its common start, so the
code that builds the DP and takes the common-start checkpoint lives once, here. A DPMethod starts from the
common start: the harness builds (or reads from its cache) the behaviour-cloned DP and loads it with
`load_pretrained_dp` before the method's first verb; fine-tuning starts from its EMA weights (protocol rule),
and any of the method's modules with a `load_pretrained(state_dict)` (DPPO's fine-tuned copy) gets them too.
The method acts with `self.dp.act(obs, state.generator, eval_mode)` and trains it with `self.dp.train_step`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from methods.base import ActorState, ComponentKind, Method, MethodContext, TimedComponent
from methods.common.dp_config import DPConfig
from methods.common.section import ConfigError
from methods.common.shared_dp import SharedDP


class DPMethod(Method):
    """Builds the shared DP (`self.dp`, with `self.chunk` Ta and `self.act_steps` executed per call) and takes
    the common start."""

    _kind_base = True
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
        self.dp = SharedDP(self.spaces.obs_dim, self.spaces.act_dim, self.dp_cfg, self.chunk, self.act_steps,
                           self.normalizer, self.device, compile_train=ctx.compile_train)

    # ---- what the harness calls -----------------------------------------------------------------------------
    def export_pretrained_dp(self) -> dict:
        """This method's DP as a common-start state (the format load_pretrained_dp takes)."""
        return {"dp": self.dp.state_dict(), "normalizer": self.normalizer.state_dict(), "chunk": self.chunk}

    def load_pretrained_dp(self, state: dict) -> None:
        """Take the common start: the DP and its normaliser; the DP's weights restart from its EMA, and every
        module with `load_pretrained` takes the EMA weights."""
        if int(state["chunk"]) != self.chunk:
            raise ValueError(f"pretrained DP has chunk {state['chunk']}, this method uses {self.chunk}")
        self.dp.load_state_dict(state["dp"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.dp.reset_to_ema()
        for module in self.modules().values():
            if hasattr(module, "load_pretrained"):
                module.load_pretrained(self.dp.ema.module.state_dict())


def probe_obs(method: Method, batch_size: int) -> np.ndarray:
    """Observations for timing an actor: the first offline states of the buffer (zeros without one)."""
    buffer = method.buffer
    if buffer is not None and buffer.size >= batch_size:
        return buffer.offline_stats(("obs",), limit=batch_size)["obs"]
    return np.zeros((batch_size, method.spaces.obs_dim), np.float32)


def act_components(method: Method, batch_size: int, actions_per_call: int,
                   settings: dict[str, Any]) -> dict[str, TimedComponent]:
    """`<actor>_act` for every actor of `method`: one evaluation-mode call on `batch_size` probe states."""
    obs = probe_obs(method, batch_size)
    comps = {}
    for i, actor in enumerate(method.actors):
        state = ActorState.create(i, method.device)
        comps[f"{actor}_act"] = TimedComponent(lambda a=actor, st=state: method.act(obs, a, st, True),
                                               ComponentKind.ACT, actor=actor, actions_per_call=actions_per_call,
                                               settings=settings)
    return comps
