"""Resolve a run's config from its layers, once, into a typed RunConfig, remembering which layer set each key.

Why: defaults come from several places, and a researcher must be able to see which one set a value
(`mbench config`). The layers, lowest first:

  default     the section models' own defaults (bench/config/run.py, the method's config.py, dp, common_start)
  suite       the task suite's defaults: the method's SUITE_DEFAULTS, DP_SUITE_DEFAULTS, COMMON_START_SUITE_DEFAULTS,
              and the task's eval protocol (TaskSpec.eval_defaults: its states, episodes, final episodes)
  preset      the method's labelled preset named by the `preset` key (its own section, dp, common_start)
  sweep       a sweep file's `overrides` and its grid point
  per_method  a sweep file's `per_method` entry for this method
  set         `--set KEY=VALUE` (and any direct overrides of a caller)

A higher layer wins key by key. The `preset` key itself may come from sweep, per_method or set. Two keys are
derived: `dp.eval_sampler` copies `eval.sampler` (one sampling rule for every DP method), and `variant`, unless
given, labels the user's overrides that change what is run (not budgets, evaluation or where it runs).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from bench.config.dotted import as_dotted, nest
from bench.config.parse import parse_section
from bench.config.run import HARNESS_KEYS, RunConfig
from bench.tasks import get_task
from methods.catalog import MethodCard, method_card
from methods.common.common_start_config import COMMON_START_SUITE_DEFAULTS, CommonStartConfig
from methods.common.dp_config import DP_SUITE_DEFAULTS, DPConfig
from methods.common.section import ConfigError
from results.keys import closest, flatten

LAYERS = ("default", "suite", "preset", "sweep", "per_method", "set")
USER_LAYERS = ("sweep", "per_method", "set")
# Keys that change what is measured but not which variant it is (left out of the automatic `variant` label).
NON_VARIANT = ("seed", "device", "threads", "deterministic", "compile_train", "pretrain.", "online.", "eval.",
               "common_start.", "dataset_path", "variant")


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A resolved config and, for every dotted key of its JSON, the layer that set it."""

    cfg: RunConfig
    sources: dict[str, str]


def variant_label(flat: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(flat.items()) if not k.startswith(NON_VARIANT))


def _sections(cls: MethodCard) -> tuple[str, ...]:
    """The sections a method's run config has besides the harness's: its own, then dp and common_start."""
    return (cls.name,) + (("dp",) if cls.uses_dp else ()) + (("common_start",) if cls.uses_pretrained_dp else ())


def resolve(method: str, task: str, seed: int, *, sweep: dict[str, Any] | None = None,
            per_method: dict[str, Any] | None = None,
            overrides: dict[str, Any] | list[str] | None = None) -> Resolved:
    """The typed config of one run and where each value came from. Raises ConfigError naming any bad key.
    The method is read from its card (methods/catalog: its config.py alone), so no method and no torch is
    imported here."""
    cls = method_card(method)
    spec = get_task(task)
    user = {"sweep": as_dotted(sweep), "per_method": as_dotted(per_method), "set": as_dotted(overrides)}
    for layer in user.values():
        for key in ("method", "task"):
            if key in layer:
                raise ConfigError(f"'{key}' is not a config key that can be overridden; choose it with --{key} "
                                  f"(or a sweep file's '{key}s:' list)")
    merged_flat: dict[str, Any] = {}
    for name in USER_LAYERS:
        merged_flat.update(user[name])
    raw = nest(merged_flat)
    user_flat = {k: v for k, v in merged_flat.items() if k != "seed"}

    sections = _sections(cls)
    for key in raw:
        if key not in HARNESS_KEYS and key not in sections:
            if key == "dp":
                raise ConfigError(f"config section 'dp' does not apply to method '{method}' (it has no diffusion "
                                  f"policy)")
            if key == "common_start":
                raise ConfigError(f"config section 'common_start' does not apply to method '{method}' (it does not "
                                  f"start from the common-start DP); set it per method in a sweep file")
            raise ConfigError(f"unknown config key '{key}'{closest(key, sorted(HARNESS_KEYS) + list(sections))}")

    preset = str(raw.get("preset") or "")
    presets = cls.Config.presets or {}
    if preset and preset not in presets and preset != "default":
        raise ConfigError(f"config key 'preset': method '{method}' has no preset '{preset}'"
                          f"{closest(preset, presets) if presets else ' (it has none)'}")
    chosen = presets.get(preset, {}) if preset else {}
    suite = {"eval": spec.eval_defaults(), method: (cls.Config.suite_defaults or {}).get(spec.suite, {}),
             "dp": DP_SUITE_DEFAULTS.get(spec.suite, {}) if cls.uses_dp else {},
             "common_start": COMMON_START_SUITE_DEFAULTS.get(spec.suite, {}) if cls.uses_pretrained_dp else {}}
    layered = {"suite": flatten({k: v for k, v in suite.items() if v}),
               "preset": flatten({k: v for k, v in chosen.items() if k in sections}), **user}
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in ("suite", "preset", *USER_LAYERS):
        for k, v in layered[name].items():
            values[k], sources[k] = v, name
    data = nest({k: v for k, v in values.items() if k.split(".", 1)[0] not in sections})
    data.update(method=method, task=task)
    data.setdefault("seed", seed)
    harness = parse_section(RunConfig, data, "")
    section = parse_section(cls.Config, nest(values).get(method, {}), f"{method}.")
    dp = cs = None
    if cls.uses_dp:
        dp_data = dict(nest(values).get("dp", {}), eval_sampler=harness.eval.sampler)
        dp = parse_section(DPConfig, dp_data, "dp.")
        chunk = dp.chunk or spec.chunk
        if not 1 <= dp.executed_steps(chunk) <= chunk:
            raise ConfigError(f"config key 'dp.act_steps' must be in [1, the DP's chunk {chunk}] (0 = the whole "
                              f"chunk), got {dp.act_steps}")
        sources["dp.eval_sampler"] = f"eval.sampler ({sources.get('eval.sampler', 'default')})"
    if cls.uses_pretrained_dp:
        cs = parse_section(CommonStartConfig, nest(values).get("common_start", {}), "common_start.")
    cfg = harness.model_copy(update={"section": section, "dp": dp, "common_start": cs})
    if not cfg.variant:
        cfg = cfg.model_copy(update={"variant": variant_label(user_flat)})
        sources["variant"] = "derived from the overrides"
    if spec.name != task:
        raise ConfigError(f"task '{task}' resolved to '{spec.name}'")
    full = flatten(cfg.to_json())
    return Resolved(cfg, {k: sources.get(k, "default") for k in full})


def resolve_config(method: str, task: str, seed: int, overrides: dict[str, Any] | list[str] | None = None, *,
                   sweep: dict[str, Any] | None = None, per_method: dict[str, Any] | None = None) -> RunConfig:
    """The typed config of one run (`resolve` without the sources)."""
    return resolve(method, task, seed, sweep=sweep, per_method=per_method, overrides=overrides).cfg


def from_json(data: dict[str, Any]) -> RunConfig:
    """A stored config (RunConfig.to_json) read back, typed (a checkpoint or the store's config_json)."""
    cls = method_card(str(data.get("method", "")))
    rest = {k: v for k, v in data.items() if k not in _sections(cls)}
    cfg = parse_section(RunConfig, rest, "")
    return cfg.model_copy(update={
        "section": parse_section(cls.Config, data.get(cls.name, {}), f"{cls.name}."),
        "dp": parse_section(DPConfig, data["dp"], "dp.") if "dp" in data else None,
        "common_start": parse_section(CommonStartConfig, data["common_start"], "common_start.")
        if "common_start" in data else None})
