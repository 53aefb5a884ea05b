"""The `dp` and `common_start` sections (issue 14, part 1): the residual denoiser's widths, `dp.act_steps`
against the chunk, and the suite defaults (DPPO's design on the paper suites) under the user's overrides.
"""
from __future__ import annotations

import pytest

from methods.common.common_start_config import CommonStartConfig
from methods.common.dp_config import DPConfig
from methods.common.section import ConfigError
from tests.helpers import dp_context


def test_residual_needs_an_odd_number_of_equal_widths():
    from bench.config.parse import parse_section

    for hidden in ([32, 32], [64, 32, 32], []):
        with pytest.raises(ConfigError, match="dp.residual"):
            parse_section(DPConfig, {"residual": True, "hidden": hidden}, "dp.")
    parse_section(DPConfig, {"residual": True, "hidden": [32] * 5}, "dp.")  # two blocks
    with pytest.raises(ConfigError, match="dp.activation"):
        parse_section(DPConfig, {"activation": "swish2"}, "dp.")


def test_act_steps_is_validated_against_the_chunk():
    from bench.config.layers import resolve_config
    from methods.bc_dp import BCDP
    from methods.bc_dp.config import BCDPConfig

    assert resolve_config("bc_dp", "demo", 0, {"dp.act_steps": 2}).to_json()["dp"]["act_steps"] == 2
    for bad in (5, -1):
        with pytest.raises(ConfigError, match="dp.act_steps"):
            resolve_config("bc_dp", "demo", 0, {"dp.act_steps": bad})
    with pytest.raises(ConfigError, match="dp.act_steps"):
        resolve_config("bc_dp", "demo", 0, {"dp.act_steps": 3, "dp.chunk": 2})
    with pytest.raises(ConfigError, match="dp.act_steps"):
        BCDP(BCDPConfig(), dp_context(DPConfig(hidden=[16], act_steps=6)))
    # act_steps changes how the DP acts, not its BC training: the common start's cache key leaves it out
    assert "act_steps" in DPConfig.SAMPLING_KEYS


# ---- suite defaults ------------------------------------------------------------------------------------------
def test_dppo_design_is_the_default_on_the_paper_suites_not_on_demo():
    from bench.config.layers import resolve_config

    hop = resolve_config("bc_dp", "hopper-medium", 0, {}).to_json()
    assert {k: hop["dp"][k] for k in ("hidden", "residual", "activation", "time_dim", "layernorm")} == \
        {"hidden": [512, 512, 512], "residual": True, "activation": "relu", "time_dim": 16, "layernorm": False}
    cs = hop["common_start"]
    assert (cs["lr"], cs["lr_schedule"], cs["lr_min"], cs["batch_size"], cs["grad_clip"], cs["ema_every"]) == \
        (1e-3, "cosine", 1e-4, 128, 0.0, 10)
    assert cs["ema_start"] == 19 * 7_762 and cs["lr_warmup"] == 7_762  # DPPO's epochs in hopper-medium-v2 steps
    assert hop["dp"]["lr"] == DPConfig().lr and hop["dp"]["grad_clip"] == 1.0  # fine-tuning values unchanged
    assert hop["variant"] == ""  # defaults are not a variant
    for m in ("dppo", "modip"):  # every DP method gets the same DP and common start (one cached common start)
        other = resolve_config(m, "hopper-medium", 0, {}).to_json()
        assert other["dp"] == hop["dp"] and other["common_start"] == cs
    assert "dp" not in resolve_config("bc_gauss", "hopper-medium", 0, {}).to_json()  # no dp section leaks to non-DP methods

    demo = resolve_config("bc_dp", "demo", 0, {}).to_json()
    want = dict(DPConfig().model_dump(), eval_sampler=demo["eval"]["sampler"])
    assert demo["dp"] == want and demo["dp"]["hidden"] == [256, 256, 256] and not demo["dp"]["residual"]
    assert demo["common_start"] == CommonStartConfig().model_dump()

    kit = resolve_config("bc_dp", "kitchen-complete", 0, {}).to_json()
    assert kit["dp"]["cond_hidden"] == [128, 32] and kit["dp"]["activation"] == "mish" and kit["dp"]["residual"]
    lift = resolve_config("bc_dp", "lift-ph", 0, {}).to_json()
    assert lift["common_start"]["lr"] == 1e-4 and lift["common_start"]["batch_size"] == 256


def test_user_overrides_win_over_the_suite_defaults():
    from bench.config.layers import resolve_config

    cfg = resolve_config("bc_dp", "hopper-medium", 0, {"dp.residual": False, "dp.hidden": [256, 256],
                                                       "dp.activation": "mish", "common_start.batch_size": 64,
                                                       "common_start.ema_start": 500, "common_start.lr": 3e-4}).to_json()
    assert (cfg["dp"]["residual"], cfg["dp"]["hidden"], cfg["dp"]["activation"]) == (False, [256, 256], "mish")
    cs = cfg["common_start"]
    assert (cs["batch_size"], cs["ema_start"], cs["lr"], cs["ema_every"]) == (64, 500, 3e-4, 10)
    # a width list that the residual default cannot take fails at once, naming the key to change
    with pytest.raises(ConfigError, match="dp.residual"):
        resolve_config("bc_dp", "hopper-medium", 0, {"dp.hidden": [32, 32]})
