"""Config validation (issue 13, faults 2 and 6): every value is checked before any work starts, and each
error names its key; a section applies only to the methods that use it.
"""
from __future__ import annotations

import pytest

from bench.config.layers import resolve_config
from methods.common.section import ConfigError


# ---- fault 2 and 6: every config value is validated before any work starts ----------------------------------
@pytest.mark.parametrize("key,value", [("eval.every", 0), ("eval.every", -5), ("online.steps", -1),
                                       ("eval.episodes", -1), ("eval.episodes", 0),
                                       ("online.checkpoint_every", 0), ("pretrain.checkpoint_every", 0),
                                       ("threads", 0), ("reward_scale", float("nan")), ("eval.timing_reps", 0),
                                       ("eval.dense_every", -1), ("modip.label_ramp", -3),
                                       ("modip.planner.temperature", 0.0), ("modip.awr_max_weight", 0.5)])
def test_bad_values_are_named_before_any_work(key, value):
    from methods.common.section import ConfigError

    method = key.split(".")[0] if key.startswith("modip.") else "bc_gauss"
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        resolve_config(method, "demo", 0, {key: value})


def test_common_start_section_only_applies_where_used():
    from methods.common.section import ConfigError

    with pytest.raises(ConfigError, match="common_start"):
        resolve_config("bc_gauss", "demo", 0, {"common_start.steps": 10})
    with pytest.raises(ConfigError, match="bc_dp.batch_size"):
        resolve_config("bc_dp", "demo", 0, {"bc_dp.batch_size": 64})


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="'dp.samplr'.*dp.sampler"):
        resolve_config("bc_dp", "demo", 0, ["dp.samplr=ddim"])
    with pytest.raises(ConfigError, match="'eval.sampler' must be one of"):
        resolve_config("bc_dp", "demo", 0, ["eval.sampler=euler"])
    with pytest.raises(ConfigError, match="'dp' does not apply"):
        resolve_config("bc_gauss", "demo", 0, ["dp.sampler=ddim"])
    cfg = resolve_config("bc_dp", "demo", 0, ["eval.sampler=ddim"])
    assert cfg.dp.eval_sampler == "ddim"
