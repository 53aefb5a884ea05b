"""What an ablation compares: a sweep file's `ablation:` section as axes, cells and a baseline cell.

Why: what is ablated comes from the sweep file, never from the analysis code::

    ablation:
      method: <method>                       # the method whose runs are the cells
      axes: [<method>.a.b, <method>.c]       # config keys; values from the sweep's grid (or the data)
      # or axes: {<method>.a.b: [x, y], ...}  # the values, in order
      reference: [<other method>, ...]       # optional: methods drawn as reference lines
      baseline: {<method>.a.b: x, ...}       # optional: the cell ratios are to (default: each axis' first value)
      description: "what the axes mean"      # optional: printed at the top of the report

The section is checked by the sweep file's own model (results/sweep_file.py) and the file is read by its one
reader; `find_ablation` finds the file of a sweep the way the store records it (results/sweeps.py): the file
its launches recorded, else `sweeps/NAME.yaml` (or the sweep file named NAME) under the current folder or the
project's. This module only turns the checked section, with the grid's values, into cell names.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

from analysis.data import UNKNOWN
from results.keys import flatten
from results.sweep_errors import SweepError
from results.sweep_file import Ablation, parse_ablation_section, read_sweep_file
from results.sweeps import find_sweep_file


class AblationError(SweepError):
    """The ablation section is missing or malformed; the message is one line that names the problem."""


@dataclasses.dataclass(frozen=True)
class Axis:
    key: str  # a dotted config key, e.g. '<method>.planner.horizon'
    name: str  # its label in cell names (the key's last part, unless two axes share it)
    values: tuple[str, ...] | None  # the axis' values in order (None: taken from the data)


@dataclasses.dataclass(frozen=True)
class AblationSpec:
    method: str
    axes: tuple[Axis, ...]
    reference: tuple[str, ...] = ()
    baseline: tuple[str | None, ...] = ()  # one value per axis (None: the axis' first value)
    description: str = ""
    source: str = ""

    def cell_name(self, values) -> str:
        return ", ".join(f"{axis.name}={value}" for axis, value in zip(self.axes, values))

    def baseline_values(self) -> tuple[str, ...]:
        return tuple(b if b is not None else (a.values[0] if a.values else UNKNOWN)
                     for a, b in zip(self.axes, self.baseline or (None,) * len(self.axes)))

    def baseline_cell(self) -> str:
        return self.cell_name(self.baseline_values())

    def grid_cells(self) -> list[str]:
        if any(a.values is None for a in self.axes):
            return []
        return [self.cell_name(v) for v in itertools.product(*(a.values for a in self.axes))]


def value_text(value: Any) -> str:
    """A config value as a cell label: strings as they are, anything else as JSON (True -> true, 2 -> 2)."""
    return value if isinstance(value, str) else json.dumps(value)


def _names(keys: list[str], method: str) -> list[str]:
    """Cell labels of the axes: each key's last part, or the key without the method prefix where two clash."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    if len(set(last)) == len(last):
        return last
    return [k.removeprefix(method + ".") for k in keys]


def parse_ablation(section_data: Ablation | Any, grid: dict[str, Any] | None = None,
                   source: str = "<ablation>") -> AblationSpec:
    """An AblationSpec from a sweep file's `ablation:` section (checked already, or a mapping to check) and its
    `grid:`, for the values of axes that do not list their own."""
    try:
        section = section_data if isinstance(section_data, Ablation) else parse_ablation_section(section_data, source)
    except SweepError as e:
        raise AblationError(str(e)) from None
    flat_grid = flatten(grid or {})
    keys, values = list(section.axes), []
    for key, vals in section.axes.items():
        vals = flat_grid.get(key) if vals is None else vals
        if vals is not None and (not isinstance(vals, list) or not vals):
            raise AblationError(f"ablation section of {source}: the values of axis {key} (from 'grid.{key}') must "
                                "be a non-empty list")
        values.append(None if vals is None else tuple(value_text(v) for v in vals))
    baseline = tuple(None if k not in section.baseline else value_text(section.baseline[k]) for k in keys)
    for key, vals, base in zip(keys, values, baseline):
        if base is not None and vals is not None and base not in vals:
            raise AblationError(f"ablation section of {source}: 'ablation.baseline.{key}' = {base} is not one of its "
                                f"values ({'/'.join(vals)})")
    axes = tuple(Axis(k, n, v) for k, n, v in zip(keys, _names(keys, section.method), values))
    return AblationSpec(method=section.method, axes=axes, reference=tuple(section.reference), baseline=baseline,
                        description=section.description, source=source)


def ablation_from_file(path: str | Path) -> AblationSpec:
    """The AblationSpec of a sweep file's `ablation:` section (the file read by the one sweep-file reader)."""
    try:
        file = read_sweep_file(path)
    except SweepError as e:
        raise AblationError(str(e)) from None
    if file.ablation is None:
        raise AblationError(f"sweep file {path} has no 'ablation:' section (method, axes, reference)")
    return parse_ablation(file.ablation, file.grid, file.source)


def find_ablation(store_root, sweep_id: str, sweep_file: str | Path | None = None) -> AblationSpec:
    """The ablation section for a sweep: from `sweep_file`, else from the first sweep file found for it."""
    if sweep_file is None:
        try:
            sweep_file = find_sweep_file(store_root, sweep_id)
        except SweepError as e:
            raise AblationError(f"{e}: pass --sweep-file FILE with an 'ablation:' section") from None
    return ablation_from_file(sweep_file)
