"""The IQL critics' config section (methods/common/iql.py), shared by IDQL (`idql.critic`) and PA-RL (`parl.critic`).

Why a module of its own: a config is read and checked without torch (bench/config). The section is shared, so its
`check` names its keys under the prefix it is given (e.g. "idql.critic").
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from methods.common.section import ConfigError, Section


class IQLConfig(Section):
    # DPPO's ft_idql_diffusion_mlp.yaml (cfg/gym/finetune/hopper-v2): critic_q / critic_v mlp_dims [256, 256, 256],
    # activation_type Mish, residual_style True; CriticObsAct's double Q (2 members, min in the V loss).
    hidden: list[int] = [256, 256, 256]
    # residual_style True reaches CriticObs (V), but CriticObsAct (Q) spells its argument `residual_tyle`
    # (model/common/critic.py), so the config's residual_style lands in **kwargs and DPPO's Q is a plain MLP.
    v_residual: bool = True
    q_residual: bool = False
    activation: Literal["mish", "relu", "gelu", "elu", "tanh", "softplus", "silu"] = "mish"
    layer_norm: bool = False
    q_members: int = 2
    lr: float = 1e-3  # train.critic_lr (the cosine schedule there has min_lr = lr: constant after 10 warm-up itrs)
    weight_decay: float = 0.0  # train.critic_weight_decay
    expectile: float = 0.8  # diffusion_idql.py: loss_critic_v calls expectile_loss with its default 0.8
    target_tau: float = 0.001  # train.critic_tau
    grad_clip: float = 0.0  # none in DPPO's IDQL trainer (0 = no clipping)
    # Decisions cut short by a timeout or by the end of the stored data (methods/common/decisions.py): `drop`
    # redraws them (the critic learns from whole decisions and from those cut by a terminal); `pad` keeps them,
    # padded with their last action and discounted as a whole decision: the computation before issue 25, close to
    # DPPO's (its MultiStep wrapper keeps a cut decision whole, with its sampled chunk, and γ once), kept so that
    # tests/methods/test_equivalence.py compares the rest of the update with 05edce8's where this fix is a no-op.
    # id_neutral (bench/config/run.py): run ids do not move with this fix.
    cut_short: Literal["drop", "pad"] = Field("drop", json_schema_extra={"id_neutral": True})

    def check(self, prefix: str) -> None:
        if not 0.5 <= self.expectile < 1.0:
            raise ConfigError(f"config key '{prefix}.expectile' must be in [0.5, 1), got {self.expectile}")
        if not 0.0 < self.target_tau <= 1.0:
            raise ConfigError(f"config key '{prefix}.target_tau' must be in (0, 1], got {self.target_tau}")
        if self.q_members < 1 or self.lr <= 0 or self.grad_clip < 0:
            raise ConfigError(f"config keys '{prefix}.q_members' >= 1, '{prefix}.lr' > 0, '{prefix}.grad_clip' >= 0")
        for key in ("v_residual", "q_residual"):
            if getattr(self, key) and (not self.hidden or len(set(self.hidden)) != 1 or len(self.hidden) % 2 == 0):
                raise ConfigError(f"config key '{prefix}.{key}'=true needs '{prefix}.hidden' of an odd number of "
                                  f"equal widths, got {self.hidden}")
