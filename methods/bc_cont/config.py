"""bc_cont's config section (`bc_cont`): how many behaviour-cloning steps the DP takes per env step online.

Why a module of its own: every method's section is read and checked without torch (bench/config).
The defaults are MODIP's DP-step schedule on hopper (`modip.update_every` 2 with `modip.distill_updates` 1 at
`modip.distill_batch` 128, the demo preset's, which the hopper screen keeps): one DP step every 2 env steps, from
the first online step on, so that the control takes at least as many DP gradient steps as MODIP's distillation
(which starts later, by its start rule). Set them to a MODIP run's values when it uses others.
"""
from __future__ import annotations

from typing import Any

from methods.common.section import ConfigError, Section
from methods.common.selection import DP_SAMPLE


class BCContConfig(Section):
    update_every: int = 2  # env steps between rounds of BC steps (MODIP's update_every)
    updates_per_round: int = 1  # BC steps per round (MODIP's distill_updates)
    batch_size: int = 128  # offline (s, chunk) pairs per BC step (MODIP's distill_batch)
    # The DP's lr and EMA decay while continuing (0 = keep the common start's optimiser lr / the DP's EMA decay),
    # as MODIP's distill_lr and distill_ema_decay.
    lr: float = 0.0
    ema_decay: float = 0.0

    def check(self, prefix: str) -> None:
        if self.update_every < 1 or self.updates_per_round < 0 or self.batch_size < 1:
            raise ConfigError("config keys 'bc_cont.update_every' >= 1, 'bc_cont.updates_per_round' >= 0 and "
                              "'bc_cont.batch_size' >= 1")
        if self.lr < 0 or not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError("config keys 'bc_cont.lr' >= 0 and 'bc_cont.ema_decay' in [0, 1)")


PRESETS: dict[str, dict[str, Any]] = {}
SUITE_DEFAULTS: dict[str, dict[str, Any]] = {}

BCContConfig.presets = PRESETS
BCContConfig.suite_defaults = SUITE_DEFAULTS

# What the harness knows of bc_cont without importing it (methods/catalog).
ACTORS: tuple[str, ...] = ("dp",)
SELECTION = {"dp": DP_SAMPLE}
USES_DP = True
