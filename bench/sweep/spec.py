"""Sweep specs: a checked sweep file as the runs it stands for, each resolved through the runner's config.

Why: a sweep file (its schema and its one reader: results/sweep_file.py) says what a batch of runs is meant to
be; this module expands it into run specs (methods x tasks x grid x seeds), each resolved through the runner's
own config at expansion time, so a bad config key also fails before anything is submitted.

A key whose first part names a method (`modip.planner.terminal`) applies to that method's runs only, a
`dp.` key only to methods built on the diffusion policy, and a `common_start.` key only to methods that start
from the common-start DP, so one grid can span several method families.
"""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

from bench.config.layers import resolve_config
from bench.config.run import RunConfig, run_id_of
from methods.catalog import method_card, method_cards
from methods.common.section import ConfigError
from results.sweep_errors import SweepError
from results.sweep_file import Resources, SweepFile, Tune, parse_sweep_file, read_sweep_file


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
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)  # dotted keys
    grid: dict[str, list[Any]] = dataclasses.field(default_factory=dict)  # dotted keys
    per_method: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    resources: Resources = dataclasses.field(default_factory=Resources)
    executor: str = "slurm"
    tune: Tune | None = None
    description: str = ""
    source: str = ""  # the file it came from
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)  # the file's data as read, to hand to jobs as is

    @classmethod
    def of(cls, file: SweepFile) -> SweepSpec:
        """The spec of a checked sweep file."""
        return cls(name=file.name, methods=list(file.methods), tasks=list(file.tasks), seeds=list(file.seeds),
                   overrides=dict(file.overrides), grid=dict(file.grid),
                   per_method={m: dict(ov) for m, ov in file.per_method.items()}, resources=file.resources,
                   executor=file.executor, tune=file.tune, description=file.description, source=file.source,
                   raw=file.raw)

    def expand(self) -> list[RunSpec]:
        """Every run of the sweep, in a stable order, de-duplicated by run_id."""
        return expand(self)


def parse_sweep(data: Any, source: str = "<string>") -> SweepSpec:
    """A SweepSpec from already-parsed YAML data (checks every key)."""
    return SweepSpec.of(parse_sweep_file(data, source))


def load_sweep(path: str | Path) -> SweepSpec:
    """A SweepSpec from a sweep file, read by the one sweep-file reader (safe YAML, every key checked)."""
    return SweepSpec.of(read_sweep_file(path))


def applies_to(key: str, method: str) -> bool:
    """Whether an override key belongs to `method`'s runs (method-named and dp. sections are scoped)."""
    head = key.split(".", 1)[0]
    if head == "dp":
        return method_card(method).uses_dp
    if head == "common_start":
        return method_card(method).uses_pretrained_dp
    if head in method_cards():
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
