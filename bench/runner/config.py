"""The run config: the harness's own sections plus the method's section, resolved and locked.

Why: one typed config describes a run completely; its hash (with the seed) is the run_id, so relaunching the
same config finds the same run. Unknown keys fail at once, naming the key and the closest valid one.

Layout of a resolved config (a nested dict):
  method, task, seed, device, threads, deterministic, reward_scale, dataset_path, preset, variant
  pretrain: {steps, log_every, checkpoint_every}
  online:   {steps, checkpoint_every, log_every}
  eval:     {every, episodes, sampler, seed_set, timing, timing_reps, timing_batch}
  dp:       {...}   for methods built on the shared diffusion policy (dp.sampler, dp.denoising_steps, ...)
  common_start: {steps, batch_size, lr_schedule, ...}  for methods that start from the common-start DP
  <method>: {...}   the method's own config (e.g. modip.planner.terminal)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any, Literal

from methods.base import get_method_class
from methods.common.common_start import COMMON_START_SUITE_DEFAULTS, CommonStartConfig
from methods.common.diffusion import DP_SUITE_DEFAULTS, DPConfig
from methods.config import ConfigError, _closest, apply_overrides, deep_merge, from_dict, to_dict


@dataclasses.dataclass
class PretrainConfig:
    steps: int = 20_000
    log_every: int = 250
    checkpoint_every: int = 5_000

    def validate(self) -> None:
        _at_least(self, "pretrain", steps=0, log_every=1, checkpoint_every=1)


@dataclasses.dataclass
class OnlineConfig:
    steps: int = 200_000  # env steps
    checkpoint_every: int = 10_000  # env steps; checkpoints land at the next episode boundary
    log_every: int = 1_000

    def validate(self) -> None:
        _at_least(self, "online", steps=0, checkpoint_every=1, log_every=1)


@dataclasses.dataclass
class EvalConfig:
    every: int = 10_000  # the env-step grid
    # An optional denser grid early on: every `dense_every` env steps up to `dense_until` (0 = none), where a
    # fine-tuning dip would hide between points of the main grid (MODIP's distillation benchmark).
    dense_every: int = 0
    dense_until: int = 0
    episodes: int = 10
    sampler: Literal["ddpm", "ddim"] = "ddpm"  # how every DP method samples at eval
    seed_set: Literal["report", "tune"] = "report"
    timing: bool = True  # time the method's components at the end of the run
    timing_reps: int = 10
    timing_batch: int = 16

    def validate(self) -> None:
        _at_least(self, "eval", every=1, episodes=1, timing_reps=1, timing_batch=1, dense_every=0, dense_until=0)
        if self.dense_until > 0 and self.dense_every < 1:
            raise ConfigError(f"config key 'eval.dense_every' must be >= 1 when eval.dense_until > 0 "
                              f"(got {self.dense_every}); set it, or eval.dense_until=0")


@dataclasses.dataclass
class RunConfig:
    method: str = ""
    task: str = ""
    seed: int = 0
    device: str = "cpu"
    threads: int = 1
    deterministic: bool = True
    reward_scale: float = 1.0
    dataset_path: str = ""  # optional raw D4RL / robomimic hdf5 file instead of the task's dataset id
    preset: str = ""  # a labelled method preset (e.g. "demo": small networks, few planner samples)
    variant: str = ""  # a short label for non-default overrides (filled in automatically)
    pretrain: PretrainConfig = dataclasses.field(default_factory=PretrainConfig)
    online: OnlineConfig = dataclasses.field(default_factory=OnlineConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)


    def validate(self) -> None:
        _at_least(self, "", seed=0, threads=1)
        if not (math.isfinite(self.reward_scale) and self.reward_scale > 0):
            raise ConfigError(f"config key 'reward_scale' must be a finite number > 0, got {self.reward_scale}")
        dev = self.device.split(":")[0]
        if dev not in ("cpu", "cuda", "mps"):
            raise ConfigError(f"config key 'device'='{self.device}' is not a torch device (use cpu or cuda)")


def check_device(device: str) -> None:
    """Before a run does any work: the device exists on this machine (a sweep resolves configs elsewhere)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'device'='{device}' but CUDA is not available here "
                          f"(torch {torch.__version__}); use device=cpu")


def _at_least(obj, section: str, **minimum: int) -> None:
    """Each named int field of obj must be >= its minimum; one line naming the key otherwise."""
    for key, lo in minimum.items():
        v = getattr(obj, key)
        if v < lo:
            name = f"{section}.{key}" if section else key
            raise ConfigError(f"config key '{name}' must be >= {lo}, got {v}")


HARNESS_KEYS = {f.name for f in dataclasses.fields(RunConfig)}


def resolve_config(method: str, task: str, seed: int, overrides: dict[str, Any] | list[str] | None = None,
                   base: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved config (a nested dict) of one run. Raises ConfigError naming any bad key."""
    from bench.tasks import get_task

    cls = get_method_class(method)
    spec = get_task(task)
    raw: dict[str, Any] = deep_merge({"method": method, "task": task, "seed": seed}, base or {})
    raw = apply_overrides(raw, overrides or {})
    user_overrides = _flatten({k: v for k, v in raw.items() if k not in ("method", "task", "seed")})

    method_section = raw.pop(method, {}) or {}
    dp_section = raw.pop("dp", {}) or {}
    cs_section = raw.pop("common_start", {}) or {}
    preset = raw.get("preset", "") or ""
    presets = cls.presets or {}
    if preset:
        if preset not in presets and preset != "default":
            raise ConfigError(f"config key 'preset': method '{method}' has no preset '{preset}'"
                              f"{_closest(preset, presets) if presets else ' (it has none)'}")
        p = presets.get(preset, {})
        method_section = deep_merge(p.get(method, {}), method_section)
        dp_section = deep_merge(p.get("dp", {}), dp_section)
        cs_section = deep_merge(p.get("common_start", {}), cs_section)
        for k, v in p.items():
            if k not in (method, "dp", "common_start") and k not in raw:
                raw[k] = v
    # Defaults for the task's suite sit under the preset and the user's overrides: the method's own
    # (cls.suite_defaults), and those of the shared DP and its common start (DPPO's design on the paper's
    # suites: DP_SUITE_DEFAULTS, COMMON_START_SUITE_DEFAULTS), for the methods that have those sections.
    method_section = deep_merge((cls.suite_defaults or {}).get(spec.suite, {}), method_section)
    if cls.uses_dp:
        dp_section = deep_merge(DP_SUITE_DEFAULTS.get(spec.suite, {}), dp_section)
    if cls.uses_pretrained_dp:
        cs_section = deep_merge(COMMON_START_SUITE_DEFAULTS.get(spec.suite, {}), cs_section)
    for key in list(raw):
        if key not in HARNESS_KEYS:
            extra_sections = [method] + (["dp"] if cls.uses_dp else []) + \
                (["common_start"] if cls.uses_pretrained_dp else [])
            raise ConfigError(f"unknown config key '{key}'{_closest(key, list(HARNESS_KEYS) + extra_sections)}")
    run = from_dict(RunConfig, raw)
    out = to_dict(run)
    out[method] = to_dict(from_dict(cls.Config, method_section, prefix=method + "."))
    if cls.uses_dp:
        dp_section = dict(dp_section)
        dp_section["eval_sampler"] = run.eval.sampler
        dp_cfg = from_dict(DPConfig, dp_section, prefix="dp.")
        chunk = dp_cfg.chunk or spec.chunk
        if not 1 <= dp_cfg.executed_steps(chunk) <= chunk:
            raise ConfigError(f"config key 'dp.act_steps' must be in [1, the DP's chunk {chunk}] (0 = the whole "
                              f"chunk), got {dp_cfg.act_steps}")
        out["dp"] = to_dict(dp_cfg)
    elif dp_section:
        raise ConfigError(f"config section 'dp' does not apply to method '{method}' (it has no diffusion policy)")
    if cls.uses_pretrained_dp:
        out["common_start"] = to_dict(from_dict(CommonStartConfig, cs_section, prefix="common_start."))
    elif cs_section:
        raise ConfigError(f"config section 'common_start' does not apply to method '{method}' (it does not start "
                          f"from the common-start DP); set it per method in a sweep file")
    if not out["variant"]:
        out["variant"] = variant_label(user_overrides)
    if spec.name != task:
        raise ConfigError(f"task '{task}' resolved to '{spec.name}'")
    return out


# Keys that change what is measured but not which variant it is.
_NON_VARIANT = ("seed", "device", "threads", "deterministic", "pretrain.", "online.", "eval.", "common_start.", "dataset_path",
                "variant")


def variant_label(flat: dict[str, Any]) -> str:
    items = [f"{k}={v}" for k, v in sorted(flat.items()) if not k.startswith(_NON_VARIANT)]
    return ",".join(items)


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, prefix + k + "."))
        else:
            out[prefix + k] = v
    return out


def run_id_of(cfg: dict[str, Any]) -> str:
    """hash(config, seed): the same resolved config and seed always give the same run_id."""
    keyed = {k: v for k, v in cfg.items() if k not in ("device", "threads")}
    blob = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def method_config(cfg: dict[str, Any]):
    """(method class, its config, DPConfig or None, CommonStartConfig or None) of a resolved config."""
    cls = get_method_class(cfg["method"])
    mcfg = from_dict(cls.Config, cfg[cfg["method"]], prefix=cfg["method"] + ".")
    dp_cfg = from_dict(DPConfig, cfg["dp"], prefix="dp.") if "dp" in cfg else None
    cs_cfg = from_dict(CommonStartConfig, cfg["common_start"], prefix="common_start.") if "common_start" in cfg else None
    return cls, mcfg, dp_cfg, cs_cfg
