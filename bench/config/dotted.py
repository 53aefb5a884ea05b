"""Dotted keys: the one way a config key is named outside its section (`modip.planner.horizon`).

Why: `--set`, sweep `overrides`/`per_method`/`grid`, tune params and `mbench config` all name keys this way;
these helpers turn nested mappings into dotted ones and back, and parse a `--set` value safely.
"""
from __future__ import annotations

from typing import Any

import yaml

from methods.common.section import ConfigError
from results.keys import flatten  # {"a": {"b": 1}} -> {"a.b": 1}; shared with sweep files and the analysis


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """data[a][b][c] = value for "a.b.c", making the sections on the way; a value in the way is an error."""
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"config key '{dotted}': '{p}' is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        set_dotted(out, k, v)
    return out


def parse_value(text: str) -> Any:
    """A --set value read with a safe YAML loader (numbers, bools, lists), never eval."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_pairs(items: list[str]) -> dict[str, Any]:
    """["a.b=1", ...] -> {"a.b": 1}; each item must be key=value."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        k, v = item.split("=", 1)
        if not v.strip():
            raise ConfigError(f"override '{item}' has an empty value; give one (e.g. {k.strip()}=VALUE), write "
                              f"{k.strip()}='' for an empty string, or leave it out for its default")
        out[k.strip()] = parse_value(v)
    return out


def as_dotted(overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Overrides given as a mapping (dotted or nested) or as key=value strings, as one dotted mapping."""
    if not overrides:
        return {}
    if isinstance(overrides, list):
        return parse_pairs(overrides)
    return flatten(overrides)
