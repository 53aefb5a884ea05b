"""Every registered method declares its timed components (kind, actor, actions per call, updates per env
step) from its live config.
"""
from __future__ import annotations

import pytest
import torch

from methods.base import ComponentKind, TimedComponent


def test_every_registered_method_declares_its_components_from_its_config():
    """Each method's components carry kind, actor and actions per call read from its live config."""
    from bench.timing.synthetic import build_subject

    torch.set_num_threads(1)
    want = {"bc_gauss": {"act": ("act", "policy", 1)},
            "bc_dp": {"act": ("act", "dp", 4)},
            "dppo": {"act": ("act", "dp", 4)},
            "tdmpc2": {"plan": ("plan", "mpc", 1), "pi_act": ("act", "pi", 1)},
            "modip": {"plan": ("plan", "mpc", 3), "plan_chunk": ("plan", "mpc_chunk", 4), "dp_act": ("act", "dp", 4)},
            "idql": {"resample_act": ("act", "resample", 2), "dp_act": ("act", "dp", 2)},
            "parl": {"rerank_act": ("act", "rerank", 4), "dp_act": ("act", "dp", 4)},
            "dsrl": {"steered_act": ("act", "steered", 4), "dp_act": ("act", "dp", 4)}}
    over = {"dppo": ["preset=test"], "tdmpc2": ["preset=test", "tdmpc2.utd=0.5"],
            "idql": ["preset=test", "dp.act_steps=2", "idql.batch_size=100", "idql.replay_ratio=50"],
            "parl": ["preset=test", "parl.update_every=4"],
            "dsrl": ["preset=test", "dsrl.train_freq=3"],
            "modip": ["preset=test", "modip.planner.replan_every=3", "modip.update_every=4",
                      "modip.updates_per_round=2"]}
    for name, acts in want.items():
        m = build_subject(name, "demo", overrides=over.get(name, [])).method
        comps = m.timed_components(batch_size=1)
        assert all(isinstance(c, TimedComponent) for c in comps.values()), name
        got = {k: (c.kind.value, c.actor, c.actions_per_call) for k, c in comps.items() if c.kind != ComponentKind.UPDATE}
        assert got == acts, name
        ups = comps["update"].updates_per_env_step
        expected = {"bc_gauss": None, "bc_dp": None, "tdmpc2": 0.5, "modip": 0.5, "idql": 50 / (100 * 2),
                    "parl": 0.25,
                    # a train call every train_freq 3 vector steps of n_envs 4 decisions of 4 actions
                    "dsrl": 1 / (3 * 4 * 4),
                    # preset test: 3 envs x 8 decisions x 4 actions; 2 epochs x max(1, 24 * 4 // 64) minibatches
                    "dppo": 2 * 1 / (3 * 8 * 4)}[name]
        assert ups == (pytest.approx(expected) if expected is not None else None), name
