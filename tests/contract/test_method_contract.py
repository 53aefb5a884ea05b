"""The method contract: every registered method implements the declared contract, a deliberately incomplete
one is caught, and the rollout kind is an enum.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest


# ---- the method contract -----------------------------------------------------------------------------------
def test_every_registered_method_implements_the_declared_contract():
    from methods.base import contract_violations
    from methods.registry import registered_methods

    bad = {name: v for name, cls in registered_methods().items() if (v := contract_violations(cls))}
    assert not bad, bad


def test_an_incomplete_method_is_caught():
    from methods.base import ActorState, Method, MethodContext, RolloutKind, TaskSpaces, contract_violations
    from methods.common.normalize import Normalizer

    @dataclasses.dataclass
    class Cfg:
        lr: float = 1e-3

    class Incomplete(Method):  # off-policy by default, but no finetune_step, no act, no timed components
        Config = Cfg
        actors = ("pi",)
        train_actor = "mpc"

        def modules(self):
            return {}

    v = contract_violations(Incomplete)
    assert any("'act'" in x for x in v) and any("'timed_components'" in x for x in v)
    assert any("finetune_step" in x for x in v) and any("train_actor 'mpc'" in x for x in v)
    assert any("pretrain_step" in x for x in v)
    spaces = TaskSpaces(obs_dim=2, act_dim=1, act_low=-np.ones(1), act_high=np.ones(1), max_episode_steps=10)
    with pytest.raises(TypeError, match="abstract"):
        Incomplete(Cfg(), MethodContext(spaces=spaces, normalizer=Normalizer(np.zeros(2), np.ones(2),
                                                                             -np.ones(1), np.ones(1))))

    class OnPolicyWithoutRollouts(Incomplete):
        rollout_kind = RolloutKind.ON_POLICY
        train_actor = "pi"

        def act(self, obs, actor, state: ActorState, eval_mode):
            return obs

        def timed_components(self, batch_size=1):
            return {}

    v = contract_violations(OnPolicyWithoutRollouts)
    assert {x for x in v if "rollout" in x} == {
        "hook 'rollout_size' is required by its declarations but not implemented",
        "hook 'act_rollout' is required by its declarations but not implemented",
        "hook 'update_rollout' is required by its declarations but not implemented"}
    assert OnPolicyWithoutRollouts.rollout_kind is RolloutKind.ON_POLICY


def test_rollout_kind_is_an_enum_and_strings_are_normalised():
    from methods.base import RolloutKind
    from methods.registry import registered_methods

    for cls in registered_methods().values():
        assert isinstance(cls.rollout_kind, RolloutKind)
