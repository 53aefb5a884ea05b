"""bc_dp's config section (`bc_dp`): empty, since its training is the common start (the `common_start`
section, methods/common/common_start_config.py) and its DP is the `dp` section (methods/common/dp_config.py).

Why a module of its own: every method's section is read and checked without torch (bench/config).
"""
from __future__ import annotations

from typing import Any

from methods.common.section import Section


class BCDPConfig(Section):
    """bc_dp has no settings of its own: its training is the common start (the `common_start` section)."""


PRESETS: dict[str, dict[str, Any]] = {}
SUITE_DEFAULTS: dict[str, dict[str, Any]] = {}

BCDPConfig.presets = PRESETS
BCDPConfig.suite_defaults = SUITE_DEFAULTS
