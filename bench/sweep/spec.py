"""Sweep files: load them safely, check every key, and expand the grid into run specs.

Why: a sweep file is the one record of what a batch of runs was meant to be (methods x tasks x seeds x an
overrides grid, the resources, the executor). It is read with a safe YAML loader, and a typo anywhere in it
fails at once with a one-line error that names the key, before anything is submitted. Every run spec is
resolved through the runner's own config at expansion time, so a bad config key also fails before submission.

A sweep file::

    name: demo-tiny                 # becomes a path under <store>/sweeps/ and the store's sweep id
    methods: [bc_gauss, bc_dp]
    tasks: [demo]
    seeds: [0, 1]                   # a list, or {start: 0, count: 5}
    overrides: {threads: 1}         # every run
    grid: {dp.denoising_steps: [10, 20]}   # cartesian product
    per_method: {dppo: {online.steps: 1000}}  # one method's runs only
    resources: {partition: debug, cpus: 1, gpus: 0, mem: 2G, time: 30, array_parallelism: 2}
    executor: slurm                 # slurm | local | debug
    tune: {...}                     # only for `mbench tune` (see bench/sweep/tune.py)

A key whose first part names a method (`modip.planner.terminal`) applies to that method's runs only, a
`dp.` key only to methods built on the diffusion policy, and a `common_start.` key only to methods that start
from the common-start DP, so one grid can span several method families.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import yaml

from bench.config.run import RunConfig

# Seeds at or above this are reserved for tuning: tuning and reporting never share a seed.
TUNE_SEED_BASE = 1000

EXECUTORS = ("slurm", "local", "debug")
TOP_KEYS = ("name", "description", "methods", "tasks", "seeds", "overrides", "grid", "per_method", "resources",
            "executor", "tune", "ablation")  # ablation: read by `mbench ablate` (analysis/ablate.py)
RESOURCE_KEYS = ("partition", "cpus", "gpus", "mem", "time", "array_parallelism", "account", "qos",
                 "constraint")
TUNE_KEYS = ("method", "task", "trials", "workers", "params", "storage", "direction", "sampler_seed", "actor",
             "max_retry")
PARAM_KEYS = ("type", "low", "high", "log", "step", "choices")


class SweepError(ValueError):
    """A sweep file is malformed; the message is one line that names the problem."""


@dataclasses.dataclass(frozen=True)
class Resources:
    partition: str | None = None
    cpus: int = 1
    gpus: int = 0
    mem: str | None = None  # Slurm syntax: "4G", "512M"
    time: int = 60  # minutes
    array_parallelism: int = 64
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None

    @property
    def mem_gb(self) -> float | None:
        if self.mem is None:
            return None
        text = self.mem.strip().upper().rstrip("B")
        scale = {"K": 1 / 1024 ** 2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
        if text and text[-1] in scale:
            return float(text[:-1]) * scale[text[-1]]
        return float(text) / 1024  # Slurm's default unit is MB


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: what `mbench run` would be given, plus its resolved config and run_id."""

    method: str
    task: str
    seed: int
    overrides: dict[str, Any]
    cfg: RunConfig
    run_id: str

    def label(self) -> str:
        return f"{self.method}/{self.task}/s{self.seed}" + (f"[{self.cfg.variant}]" if self.cfg.variant else "")


@dataclasses.dataclass
class SweepSpec:
    name: str
    methods: list[str]
    tasks: list[str]
    seeds: list[int]
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    per_method: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    resources: Resources = dataclasses.field(default_factory=Resources)
    executor: str = "slurm"
    tune: dict[str, Any] | None = None
    description: str = ""
    source: str = ""  # the file it came from
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)  # the parsed YAML, to hand to jobs as is

    def expand(self) -> list[RunSpec]:
        """Every run of the sweep, in a stable order, de-duplicated by run_id."""
        return expand(self)


def _fail(source: str, msg: str) -> None:
    raise SweepError(f"sweep file {source}: {msg}")


def _check_keys(source: str, where: str, mapping: Any, allowed: tuple[str, ...]) -> dict:
    if not isinstance(mapping, dict):
        _fail(source, f"'{where}' must be a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (expected one of: {', '.join(allowed)})"
            _fail(source, f"unknown key '{where + '.' if where else ''}{key}'{hint}")
    return mapping


def _str_list(source: str, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        _fail(source, f"'{key}' must be a non-empty list of names")
    return list(value)


def _seeds(source: str, value: Any) -> list[int]:
    if isinstance(value, dict):
        _check_keys(source, "seeds", value, ("start", "count"))
        value = list(range(int(value.get("start", 0)), int(value.get("start", 0)) + int(value.get("count", 1))))
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and not isinstance(s, bool)
                                                          and s >= 0 for s in value):
        _fail(source, "'seeds' must be a non-negative integer, a list of them, or {start, count}")
    if len(set(value)) != len(value):
        _fail(source, "'seeds' has duplicates")
    return list(value)


def _flat_overrides(source: str, where: str, value: Any) -> dict[str, Any]:
    """Overrides as {dotted.key: value}; nested mappings are flattened."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(source, f"'{where}' must be a mapping of config keys to values")
    out: dict[str, Any] = {}

    def walk(prefix: str, d: dict) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(key + ".", v)
            else:
                out[key] = v

    walk("", value)
    return out


def _minutes(source: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.replace("-", "").replace(":", "").isdigit():  # [D-]HH:MM:SS or MM
        days = 0
        text = value
        if "-" in text:
            d, text = text.split("-", 1)
            days = int(d)
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 3:
            return days * 1440 + parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
        if len(parts) == 2:
            return days * 1440 + parts[0] + (1 if parts[1] else 0)
        if len(parts) == 1:
            return days * 1440 + parts[0]
    _fail(source, f"'resources.time' must be minutes or [D-]HH:MM:SS, got {value!r}")
    raise AssertionError


def parse_sweep(data: Any, source: str = "<string>") -> SweepSpec:
    """A SweepSpec from already-parsed YAML data (checks every key)."""
    if not isinstance(data, dict):
        _fail(source, "the file must be a YAML mapping")
    _check_keys(source, "", data, TOP_KEYS)
    from results.store import validate_name

    if "name" not in data:
        _fail(source, "missing key 'name'")
    try:
        name = validate_name(data["name"], "sweep name")
    except ValueError as e:
        _fail(source, str(e))
    tune = data.get("tune")
    if tune is not None:
        _check_keys(source, "tune", tune, TUNE_KEYS)
        params = tune.get("params") or {}
        if not isinstance(params, dict) or not params:
            _fail(source, "'tune.params' must map config keys to search spaces")
        for key, space in params.items():
            _check_keys(source, f"tune.params.{key}", space, PARAM_KEYS)
            kind = space.get("type")
            if kind not in ("float", "int", "categorical"):
                _fail(source, f"'tune.params.{key}.type' must be float, int or categorical, got {kind!r}")
            if kind == "categorical" and not isinstance(space.get("choices"), list):
                _fail(source, f"'tune.params.{key}.choices' must be a list")
            if kind != "categorical" and ("low" not in space or "high" not in space):
                _fail(source, f"'tune.params.{key}' needs low and high")
        if tune.get("storage", "journal") not in ("journal", "sqlite"):
            _fail(source, "'tune.storage' must be journal or sqlite")
        if tune.get("direction", "maximize") not in ("maximize", "minimize"):
            _fail(source, "'tune.direction' must be maximize or minimize")
    methods = _str_list(source, "methods", data.get("methods", [tune.get("method")] if tune and tune.get("method")
                                                       else None))
    tasks = _str_list(source, "tasks", data.get("tasks", [tune.get("task")] if tune and tune.get("task") else None))
    if "seeds" not in data:
        _fail(source, "missing key 'seeds'")
    seeds = _seeds(source, data["seeds"])
    if tune is not None:
        low = [s for s in seeds if s < TUNE_SEED_BASE]
        if low:
            _fail(source, f"tuning seeds must be >= {TUNE_SEED_BASE} (disjoint from reported seeds), got {low}")
        if len(methods) != 1 or len(tasks) != 1:
            _fail(source, "a tune file names exactly one method and one task")
    else:
        high = [s for s in seeds if s >= TUNE_SEED_BASE]
        if high:
            _fail(source, f"seeds >= {TUNE_SEED_BASE} are reserved for tuning, got {high}")
    overrides = _flat_overrides(source, "overrides", data.get("overrides"))
    grid_raw = _flat_overrides(source, "grid", data.get("grid"))
    for key, values in grid_raw.items():
        if not isinstance(values, list) or not values:
            _fail(source, f"'grid.{key}' must be a non-empty list of values")
    per_method_raw = data.get("per_method") or {}
    if not isinstance(per_method_raw, dict):
        _fail(source, "'per_method' must map method names to overrides")
    per_method = {}
    for m, ov in per_method_raw.items():
        if m not in methods:
            _fail(source, f"'per_method.{m}' names a method that is not in 'methods' ({', '.join(methods)})")
        per_method[m] = _flat_overrides(source, f"per_method.{m}", ov)
    res_raw = _check_keys(source, "resources", data.get("resources") or {}, RESOURCE_KEYS)
    res_kw: dict[str, Any] = {}
    for key in ("partition", "account", "qos", "constraint"):
        if res_raw.get(key) is not None:
            res_kw[key] = str(res_raw[key])
    for key in ("cpus", "gpus", "array_parallelism"):
        if key in res_raw:
            v = res_raw[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if key == "gpus" else 1):
                _fail(source, f"'resources.{key}' must be an integer >= {0 if key == 'gpus' else 1}")
            res_kw[key] = v
    if "mem" in res_raw:
        res_kw["mem"] = str(res_raw["mem"]) if not isinstance(res_raw["mem"], int) else f"{res_raw['mem']}G"
    if "time" in res_raw:
        res_kw["time"] = _minutes(source, res_raw["time"])
    resources = Resources(**res_kw)
    try:
        _ = resources.mem_gb
    except ValueError:
        _fail(source, f"'resources.mem' must look like 4G or 512M, got {resources.mem!r}")
    executor = data.get("executor", "slurm")
    if executor not in EXECUTORS:
        _fail(source, f"'executor' must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    return SweepSpec(name=name, methods=methods, tasks=tasks, seeds=seeds, overrides=overrides, grid=grid_raw,
                     per_method=per_method, resources=resources, executor=executor, tune=tune,
                     description=str(data.get("description", "")), source=source, raw=data)


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file with yaml.safe_load (no tags, no code) and check it."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path}: not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SweepError(f"sweep file {path}: not valid YAML ({first})") from None
    return parse_sweep(data, str(path))


def applies_to(key: str, method: str) -> bool:
    """Whether an override key belongs to `method`'s runs (method-named and dp. sections are scoped)."""
    from methods.base import get_method_class, registered_methods

    head = key.split(".", 1)[0]
    if head == "dp":
        return get_method_class(method).uses_dp
    if head == "common_start":
        return get_method_class(method).uses_pretrained_dp
    if head in registered_methods():
        return head == method
    return True


def method_overrides(spec: SweepSpec, method: str, grid_point: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in spec.overrides.items() if applies_to(k, method)}
    out.update({k: v for k, v in grid_point.items() if applies_to(k, method)})
    out.update(spec.per_method.get(method, {}))
    return out


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))] or [{}]


def expand(spec: SweepSpec, extra_overrides: dict[str, Any] | None = None) -> list[RunSpec]:
    """methods x tasks x grid x seeds -> RunSpecs, each resolved (ConfigError names a bad key)."""
    from bench.config.layers import resolve_config
    from bench.config.run import run_id_of
    from methods.common.section import ConfigError

    runs: list[RunSpec] = []
    seen: set[str] = set()
    for method in spec.methods:
        for task in spec.tasks:
            for point in grid_points(spec.grid):
                for seed in spec.seeds:
                    ov = method_overrides(spec, method, point)
                    ov.update(extra_overrides or {})
                    common = {k: v for k, v in {**spec.overrides, **point}.items() if applies_to(k, method)}
                    try:
                        cfg = resolve_config(method, task, seed, dict(extra_overrides or {}), sweep=common,
                                             per_method=spec.per_method.get(method, {}))
                    except ConfigError as e:
                        raise SweepError(f"sweep {spec.name} ({method}, {task}): {e}") from None
                    except (KeyError, ValueError) as e:  # unknown method or task
                        msg = str(e.args[0]) if e.args else str(e)
                        raise SweepError(f"sweep {spec.name}: {msg}") from None
                    rid = run_id_of(cfg)
                    if rid in seen:
                        continue
                    seen.add(rid)
                    runs.append(RunSpec(method, task, seed, ov, cfg, rid))
    return runs
