"""bc_dp's config section (`bc_dp`): empty, since its training is the common start (the `common_start`
section, methods/common/common_start_config.py) and its DP is the `dp` section (methods/common/dp_config.py).

Why a module of its own: every method's section is read and checked without torch (bench/config).
"""
from __future__ import annotations

from typing import Any

from methods.common.section import Section
from methods.common.selection import DP_SAMPLE


class BCDPConfig(Section):
    """bc_dp has no settings of its own: its training is the common start (the `common_start` section)."""


PRESETS: dict[str, dict[str, Any]] = {}
SUITE_DEFAULTS: dict[str, dict[str, Any]] = {}

BCDPConfig.presets = PRESETS
BCDPConfig.suite_defaults = SUITE_DEFAULTS

# What the harness knows of bc_dp without importing it (methods/catalog): the actors it evaluates, the
# headline first (the class's `actors`), and whether it is built on the shared DP (a DPMethod: its runs also
# have the `dp` and `common_start` sections).
ACTORS: tuple[str, ...] = ("dp",)
SELECTION = {"dp": DP_SAMPLE}  # how each actor picks its action at evaluation (methods/common/selection.py)
USES_DP = True
