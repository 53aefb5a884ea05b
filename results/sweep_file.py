"""Sweep files: their schema (pydantic models), and the one reader that turns a file into a checked record.

Why: a sweep file is the one record of what a batch of runs was meant to be (methods x tasks x seeds x an
overrides grid, the resources, the executor, a tuning study, an ablation). It is read with a safe YAML loader,
and a typo anywhere in it fails at once with a one-line error that names the key, before anything is
submitted or reported. The harness (bench/sweep: expand, launch, tune) and the analysis (`mbench ablate` reads
the `ablation:` section) read it through `read_sweep_file` here, never YAML of their own. It lives in the
store's package because both may import that, and analysis may not import bench.

A sweep file::

    name: demo-tiny                 # becomes a path under <store>/sweeps/ and the store's sweep id
    description: what it is for     # optional
    methods: [bc_gauss, bc_dp]
    tasks: [demo]
    seeds: [0, 1]                   # a list, or {start: 0, count: 5}
    overrides: {threads: 1}         # every run (dotted or nested keys)
    grid: {dp.denoising_steps: [10, 20]}   # cartesian product
    per_method: {dppo: {online.steps: 1000}}  # one method's runs only
    resources: {partition: debug, cpus: 1, gpus: 0, mem: 2G, time: 30, array_parallelism: 2}
    executor: slurm                 # slurm | local | debug
    tune: {...}                     # only for `mbench tune` (see bench/sweep/tune.py)
    ablation: {...}                 # only for `mbench ablate` (see analysis/ablation_spec.py)

pydantic checks structure and types; the validators below say only what a type cannot (a Slurm time, seeds
reserved for tuning, ...). results/sweep_errors.py turns the first error into one line (unknown keys first,
with the closest valid key).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from results.keys import flatten
from results.names import validate_name
from results.safe_yaml import YamlRefused, load_yaml_file
from results.sweep_errors import SweepError, bad_value, parse_part

# The seed protocol: tuning seeds are [TUNE_SEED_BASE, TUNE_SEED_STOP) (10-14 in use, up to 19 reserved); the
# demo reports seeds 0-4 and the reference sweeps (sweeps/paper-*.yaml, sweeps/ablate-modip.yaml) the held-out
# seeds 100-104, which choose nothing. A tune file uses tuning seeds only; any other sweep may run on tuning seeds
# only to diagnose, evaluating on the tuning eval seeds (`eval.seed_set: tune`), so that no reported number
# comes from a seed that chose something.
TUNE_SEED_BASE = 10
TUNE_SEED_STOP = 20
# The most seeds a sweep may name: bounded before the list is built (a typo of a count must not fill memory).
MAX_SEEDS = 10_000

Executor = Literal["slurm", "local", "debug"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


class _Part(BaseModel):
    """A part of a sweep file: unknown keys refused, numbers read as text where text is wanted, no NaN."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True, allow_inf_nan=False)


def _none_as(empty):
    """A before-validator that reads an empty YAML value (`key:`) as `empty`."""
    return lambda v: empty() if v is None else v


# ------------------------------------------------------------------------------------------------ resources
def slurm_minutes(value: Any) -> int:
    """Minutes from a positive int or a Slurm time ([D-]HH:MM:SS, [D-]HH:MM, MM); seconds round up."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", value):
        days, _, text = value.rpartition("-")
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 3:
            minutes = parts[0] * 60 + parts[1] + (1 if parts[2] else 0)
        elif len(parts) == 2:
            minutes = parts[0] + (1 if parts[1] else 0)
        else:
            minutes = parts[0]
        return int(days or 0) * 1440 + minutes
    raise bad_value(f"must be minutes or [D-]HH:MM:SS, got {value!r}")


def mem_in_gb(mem: str) -> float:
    """GB of a Slurm memory size ("4G", "512M", "1T", a bare number of MB); ValueError if it is none."""
    text = mem.strip().upper().rstrip("B")
    scale = {"K": 1 / 1024 ** 2, "M": 1 / 1024, "G": 1.0, "T": 1024.0}
    if text and text[-1] in scale:
        return float(text[:-1]) * scale[text[-1]]
    return float(text) / 1024  # Slurm's default unit is MB


class Resources(_Part):
    """What each job asks the scheduler for."""

    partition: str | None = None
    cpus: Annotated[StrictInt, Field(ge=1)] = 1
    gpus: Annotated[StrictInt, Field(ge=0)] = 0
    mem: str | None = None  # Slurm syntax: "4G", "512M"; a bare integer in the file is GB
    time: int = 60  # minutes; the file may give [D-]HH:MM:SS
    array_parallelism: Annotated[StrictInt, Field(ge=1)] = 64
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None

    @field_validator("mem", mode="before")
    @classmethod
    def _int_is_gb(cls, v: Any) -> Any:
        return f"{v}G" if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("mem")
    @classmethod
    def _mem_parses(cls, v: str | None) -> str | None:
        try:
            if v is not None:
                mem_in_gb(v)
        except ValueError:
            raise bad_value(f"must look like 4G or 512M, got {v!r}") from None
        return v

    _time = field_validator("time", mode="before")(lambda v: slurm_minutes(v))

    @property
    def mem_gb(self) -> float | None:
        return None if self.mem is None else mem_in_gb(self.mem)


# --------------------------------------------------------------------------------------------- tune, seeds
class Param(_Part):
    """One tuned config key's search space (optuna's suggest_float / suggest_int / suggest_categorical)."""

    type: Literal["float", "int", "categorical"]
    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    step: int | float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _space(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise bad_value("needs choices (a non-empty list)")
            return self
        if self.low is None or self.high is None:
            raise bad_value("needs low and high")
        if self.low > self.high:
            raise bad_value(f"has low {self.low} above high {self.high}")
        if self.log and self.low <= 0:
            raise bad_value(f"is log-scaled, so low must be > 0, got {self.low}")
        if self.step is not None and self.step <= 0:
            raise bad_value(f"has step {self.step}; it must be > 0")
        if self.type == "int" and not all(isinstance(v, int) for v in (self.low, self.high, self.step or 1)):
            raise bad_value("is an int space: low, high and step must be integers")
        return self


class Tune(_Part):
    """An optuna study over one method on one task (`mbench tune`, bench/sweep/tune.py)."""

    method: str | None = None  # the file's `methods` when it has none
    task: str | None = None  # the file's `tasks` when it has none
    trials: Annotated[int, Field(ge=1)] = 20
    workers: Annotated[int, Field(ge=1)] = 1
    storage: Literal["journal", "sqlite"] = "journal"
    direction: Literal["maximize", "minimize"] = "maximize"
    sampler_seed: int | None = None
    actor: str | None = None  # whose final score is the objective (default: the method's first actor)
    max_retry: Annotated[int, Field(ge=0)] = 3
    params: dict[str, Param] = Field(default_factory=dict, validate_default=True)

    @field_validator("params")
    @classmethod
    def _some(cls, v: dict[str, Param]) -> dict[str, Param]:
        if not v:
            raise bad_value("must map config keys to search spaces")
        return v


class SeedRange(_Part):
    """`seeds: {start, count}`."""

    start: Annotated[StrictInt, Field(ge=0)] = 0
    count: Annotated[StrictInt, Field(ge=1, le=MAX_SEEDS)] = 1


# ------------------------------------------------------------------------------------------------ ablation
class Ablation(_Part):
    """What `mbench ablate` compares (analysis/ablation_spec.py turns this into cells)."""

    method: str  # the method whose runs are the cells
    axes: dict[str, Annotated[list[Any], Field(min_length=1)] | None]  # key -> its values (None: the grid's)
    reference: list[StrictStr] = []  # methods drawn as reference lines
    baseline: dict[str, Any] = {}  # axis key -> the baseline cell's value (default: each axis' first value)
    description: str = ""

    _reference = field_validator("reference", mode="before")(lambda v: [] if v is None else [v] if isinstance(v, str)
                                                             else v)
    _baseline = field_validator("baseline", mode="before")(_none_as(dict))
    _description = field_validator("description", mode="before")(_none_as(str))

    @field_validator("method", mode="before")
    @classmethod
    def _named(cls, v: Any) -> Any:
        if not isinstance(v, str) or not v:
            raise bad_value("must name the method whose runs are the cells")
        return v

    @field_validator("axes", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        """A key or a list of keys is read as {key: None} (values from the grid); keys in order, once each."""
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            bad = [k for k in v if not isinstance(k, str) or not k]
            if bad:
                raise bad_value(f"has a key that is not a dotted config key: {bad[0]!r}")
            twice = sorted({k for k in v if v.count(k) > 1})
            if twice:
                raise bad_value(f"names {twice[0]} twice")
            v = dict.fromkeys(v)
        if not isinstance(v, dict) or not v:
            raise bad_value("must be a non-empty list of config keys, or map each key to its values")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Ablation:
        if self.method in self.reference:
            raise ValueError(f"'ablation.reference' names the ablated method {self.method} itself")
        for key in self.baseline:
            if key not in self.axes:
                raise ValueError(f"'ablation.baseline.{key}' is not one of the axes ({', '.join(self.axes)})")
        return self


# -------------------------------------------------------------------------------------------------- the file
def _names(v: Any) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise bad_value("must be a non-empty list of names")
    return v


def _few(seeds: list[int], n: int = 5) -> str:
    """A list of seeds for a message: its first few and how many in all."""
    return str(seeds) if len(seeds) <= n else f"[{', '.join(map(str, seeds[:n]))}, ...] ({len(seeds)} seeds)"


def _seeds(v: Any) -> Any:
    if isinstance(v, dict):
        r = SeedRange.model_validate(v)  # its errors name 'seeds.<key>'
        v = list(range(r.start, r.start + r.count))
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                   for s in v):
        raise bad_value("must be a non-negative integer, a list of them, or {start, count}")
    if len(set(v)) != len(v):
        raise bad_value("has duplicates")
    return v


def _flat(v: Any) -> Any:
    """Overrides as {dotted.key: value}: nested mappings are flattened; anything else is left for the type."""
    return {} if v is None else flatten(v) if isinstance(v, dict) else v


def _grid(v: Any) -> Any:
    v = _flat(v)
    for key, values in v.items() if isinstance(v, dict) else ():
        if not isinstance(values, list) or not values:
            raise ValueError(f"'grid.{key}' must be a non-empty list of values")
    return v


def _per_method(v: Any) -> Any:
    if v is None:
        return {}
    return {m: _flat(ov) for m, ov in v.items()} if isinstance(v, dict) else v


class SweepFile(_Part):
    """A sweep file, checked. `source` is the file it came from and `raw` its data as read (what jobs get)."""

    name: str
    description: str = ""
    methods: list[str]
    tasks: list[str]
    seeds: list[int] | SeedRange  # always a list once read
    overrides: dict[str, Any] = {}  # dotted keys
    grid: dict[str, list[Any]] = {}  # dotted keys
    per_method: dict[str, dict[str, Any]] = {}  # method -> dotted keys
    resources: Resources = Resources()
    executor: Executor = "slurm"
    tune: Tune | None = None
    ablation: Ablation | None = None
    _source: str = PrivateAttr("<string>")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    _name = field_validator("name", mode="before")(lambda v: validate_name(v, "sweep name"))
    _description = field_validator("description", mode="before")(_none_as(str))
    _methods = field_validator("methods", "tasks", mode="before")(_names)
    _seeds = field_validator("seeds", mode="before")(_seeds)
    _overrides = field_validator("overrides", mode="before")(_flat)
    _grid = field_validator("grid", mode="before")(_grid)
    _per_method = field_validator("per_method", mode="before")(_per_method)
    _resources = field_validator("resources", mode="before")(_none_as(dict))

    @model_validator(mode="before")
    @classmethod
    def _from_tune(cls, data: Any) -> Any:
        """A tune file may name its one method and task in `tune:` only."""
        tune = data.get("tune") if isinstance(data, dict) else None
        if isinstance(tune, dict):
            for key, one in (("methods", "method"), ("tasks", "task")):
                if key not in data and tune.get(one):
                    data = {**data, key: [tune[one]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SweepFile:
        tuning = [s for s in self.seeds if TUNE_SEED_BASE <= s < TUNE_SEED_STOP]
        if self.tune is not None:
            other = [s for s in self.seeds if s not in tuning]
            if other:
                raise ValueError(f"tuning seeds must be in {TUNE_SEED_BASE}-{TUNE_SEED_STOP - 1} (disjoint from "
                                 f"reported seeds), got {_few(other)}")
            if len(self.methods) != 1 or len(self.tasks) != 1:
                raise ValueError("a tune file names exactly one method and one task")
        elif tuning and self.overrides.get("eval.seed_set") != "tune":
            raise ValueError(f"seeds {TUNE_SEED_BASE}-{TUNE_SEED_STOP - 1} are reserved for tuning, got {_few(tuning)}: "
                             "a sweep on them only diagnoses, with overrides eval.seed_set: tune")
        for m in self.per_method:
            if m not in self.methods:
                raise ValueError(f"'per_method.{m}' names a method that is not in 'methods' ({', '.join(self.methods)})")
        return self

    @property
    def source(self) -> str:
        return self._source

    @property
    def raw(self) -> dict[str, Any]:
        return self._raw


# -------------------------------------------------------------------------------------------- the reader
def load_yaml(path: str | Path) -> Any:
    """A sweep or tune file's data, read by the one safe loader (results/safe_yaml.py: no tags, no code, no
    anchors or aliases, no duplicate keys, bounded size); one-line SweepError if it cannot be."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path}: not found")
    try:
        return load_yaml_file(path)
    except YamlRefused as e:
        raise SweepError(f"sweep file {path}: {e}") from None


def parse_sweep_file(data: Any, source: str = "<string>") -> SweepFile:
    """A SweepFile from already-read data (every key checked)."""
    if not isinstance(data, dict):
        raise SweepError(f"sweep file {source}: the file must be a YAML mapping")
    file = parse_part(SweepFile, data, f"sweep file {source}")
    file._source, file._raw = str(source), data
    return file


def read_sweep_file(path: str | Path) -> SweepFile:
    """The one reader of a sweep file: safe YAML, then every key checked."""
    return parse_sweep_file(load_yaml(path), str(path))


def parse_ablation_section(data: Any, source: str = "<ablation>") -> Ablation:
    """An `ablation:` section on its own (keys named 'ablation.<key>')."""
    return parse_part(Ablation, data, f"ablation section of {source}", prefix="ablation")
