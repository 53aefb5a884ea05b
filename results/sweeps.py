"""A sweep in the results store: its folder, its launch records, and the sweep file it was launched from.

Why: everything about a sweep that is not a result lives under `<store>/sweeps/<name>/` (launches.jsonl,
submitit/, attempts/, the optuna storage; see bench/sweep/launch.py). The harness writes there and the analysis
finds a sweep's file from there, both through these definitions, never a copy of the layout; the file itself is
read by the one sweep-file reader (results/sweep_file.py: read_sweep_file).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from results.names import validate_name
from results.sweep_errors import SweepError
from results.sweep_file import load_yaml

LAUNCHES = "launches.jsonl"  # one line per launch: when, git sha, executor, the sweep file (spec_file), run ids, ...
PROJECT_SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"  # the shipped sweep files


def sweep_dir(store_root: str | os.PathLike, name: str) -> Path:
    """`<store>/sweeps/<name>/`: the sweep's launches, job logs, attempts and tuning storage."""
    return Path(store_root) / "sweeps" / validate_name(name, "sweep name")


def launches_path(store_root: str | os.PathLike, name: str) -> Path:
    return sweep_dir(store_root, name) / LAUNCHES


def read_launches(store_root: str | os.PathLike, name: str) -> list[dict[str, Any]]:
    """The sweep's launch records, oldest first (a line that is not a JSON record is skipped)."""
    path = launches_path(store_root, name)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            out.append(row)
    return out


def sweep_file_candidates(store_root: str | os.PathLike, sweep_id: str) -> list[Path]:
    """Where the sweep file of `sweep_id` may be, in the order looked at: the files its launches recorded
    (newest first), then sweeps/<id>.yaml and any sweeps/*.yaml named <id>, in the current folder and the
    project's."""
    out = [Path(row["spec_file"]) for row in reversed(read_launches(store_root, sweep_id)) if row.get("spec_file")]
    folders = list(dict.fromkeys([Path.cwd() / "sweeps", PROJECT_SWEEPS]))
    for folder in folders:
        out += [folder / f"{sweep_id}.yaml", folder / f"{sweep_id}.yml"]
    for folder in folders:
        for path in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
            try:
                data = load_yaml(path)
            except SweepError:
                continue
            if isinstance(data, dict) and data.get("name") == sweep_id:
                out.append(path)
    return list(dict.fromkeys(out))


def find_sweep_file(store_root: str | os.PathLike, sweep_id: str) -> Path:
    """The first sweep file found for `sweep_id` (sweep_file_candidates); SweepError if there is none."""
    for path in sweep_file_candidates(store_root, sweep_id):
        if path.is_file():
            return path
    raise SweepError(f"no sweep file found for sweep '{sweep_id}' (looked for sweeps/{sweep_id}.yaml and the "
                     "launches' sweep file)")

