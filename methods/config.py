"""Locked, typed configs built from nested dataclasses.

Why: a typo in a config key must fail at once with the closest valid key (robomimic's locked configs), and
a config must round-trip through the results store as plain JSON. Methods define their config as a
dataclass; the harness composes them into one run config. No string from a config is ever evaluated.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import typing
from typing import Any

import yaml


class ConfigError(ValueError):
    """A bad config key or value. The message is one line that names the key and the fix."""


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _type_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _closest(name: str, options, prefix: str = "") -> str:
    m = difflib.get_close_matches(name, list(options), n=1, cutoff=0.4)
    if m:
        return f" (did you mean '{prefix}{m[0]}'?)"
    return f" (valid keys: {', '.join(prefix + o for o in sorted(options))})"


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"config key '{key}' must be one of {list(args)}, got {value!r}")
        return value
    if origin is typing.Union or (origin is not None and str(origin) == "types.UnionType"):
        if value is None and type(None) in args:
            return None
        last: Exception | None = None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError as e:
                last = e
        raise last or ConfigError(f"bad value for '{key}': {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_coerce(v, inner, key) for v in value]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' must be a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{key}' is a section; give a mapping, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key '{key}' must be a bool, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if float(value).is_integer() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' must be an int, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' must be a number, got {value!r}") from None
        if out != out:
            raise ConfigError(f"config key '{key}' is NaN")
        return out
    if tp is str:
        if not isinstance(value, str):
            return str(value)
        return value
    return value


def from_dict(cls, data: dict | None, prefix: str = ""):
    """Build dataclass `cls` from a (nested) mapping, rejecting unknown keys by name."""
    data = dict(data or {})
    fields = _fields(cls)
    hints = _type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown config key '{prefix}{key}'{_closest(key, fields, prefix)}")
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        obj = cls(**kwargs)
    except TypeError as e:  # a missing required field
        raise ConfigError(f"config section '{prefix.rstrip('.') or cls.__name__}': {e}") from None
    validate = getattr(obj, "validate", None)
    if callable(validate):
        # a section shared by several methods (e.g. IQL's critics) takes the key prefix to name its keys
        if "prefix" in inspect.signature(validate).parameters:
            validate(prefix=prefix.rstrip("."))
        else:
            validate()
    return obj


def to_dict(obj) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(obj)))


def parse_value(text: str) -> Any:
    """Parse a --set value with a safe YAML loader (numbers, bools, lists), never eval."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(data: dict, overrides: dict[str, Any] | list[str]) -> dict:
    """Apply dotted-key overrides (`a.b.c=value`) to a nested mapping, in place, and return it."""
    if isinstance(overrides, list):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override '{item}' is not of the form key=value")
            k, v = item.split("=", 1)
            pairs[k.strip()] = parse_value(v)
        overrides = pairs
    for dotted, value in overrides.items():
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
    return data


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out
