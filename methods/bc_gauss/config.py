"""bc_gauss's config section (`bc_gauss`): the MLP Gaussian policy and its BC training.

Why a module of its own: a config is read and checked without torch (bench/config). bc_gauss has no presets
and no per-suite defaults: the class defaults everywhere.
"""
from __future__ import annotations

from typing import Any

from methods.common.section import Section
from methods.common.selection import MEAN


class BCGaussConfig(Section):
    hidden: list[int] = [256, 256]
    lr: float = 3e-4
    batch_size: int = 256
    log_std_min: float = -5.0
    log_std_max: float = 1.0


PRESETS: dict[str, dict[str, Any]] = {}
SUITE_DEFAULTS: dict[str, dict[str, Any]] = {}

BCGaussConfig.presets = PRESETS
BCGaussConfig.suite_defaults = SUITE_DEFAULTS

# What the harness knows of bc_gauss without importing it (methods/catalog): the actors it evaluates, the
# headline first (the class's `actors`), and whether it is built on the shared DP (a DPMethod: its runs also
# have the `dp` and `common_start` sections).
ACTORS: tuple[str, ...] = ("policy",)
SELECTION = {"policy": MEAN}  # how each actor picks its action at evaluation (methods/common/selection.py)
USES_DP = False
