"""Parse a mapping into a section model: pydantic does the typing; this turns its errors into one line.

Why: a typo in a config key must fail at once with the closest valid key (`unknown config key 'dp.samplr' (did
you mean 'dp.sampler'?)`), and a bad value must name its key and what it must be. pydantic (v2, lax mode)
validates and coerces; `parse_section` translates the first error into a ConfigError and then runs each
section's own `check(prefix)`, innermost sections first.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from methods.common.section import ConfigError, Section
from results.keys import closest  # the one did-you-mean (sweep files and the analysis use it too)


def _model_at(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The section class that holds the key at `loc` (the last element is the key itself)."""
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part))
        if field is None:
            return None
        tp = field.annotation
        args = getattr(tp, "__args__", ()) or ()
        nxt = next((a for a in (tp, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if nxt is None:
            return None
        cls = nxt
    return cls


_EXPECTS = {
    "int": "an int", "float": "a number", "bool": "a bool", "string": "a string", "list": "a list",
    "dict": "a mapping", "finite": "a finite number",
}


def _message(cls: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int))
    key = prefix + ".".join(loc)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(cls, loc)
        options = list(owner.model_fields) if owner is not None else []
        section = prefix + ".".join(loc[:-1]) + ("." if len(loc) > 1 else "")
        return f"unknown config key '{key}'{closest(loc[-1], options, section)}"
    if kind == "value_error":
        inner = (err.get("ctx") or {}).get("error")
        return str(inner) if inner is not None else f"config key '{key}': {err['msg']}"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"config key '{key}' must be one of {expected}, got {value!r}"
    if kind in ("model_type", "model_attributes_type"):
        return f"config key '{key}' is a section; give a mapping, got {value!r}"
    if kind == "missing":
        return f"config section '{prefix.rstrip('.') or cls.__name__}': missing key '{key}'"
    for word, expects in _EXPECTS.items():
        if kind.startswith(word) or (word == "finite" and kind == "finite_number"):
            return f"config key '{key}' must be {expects}, got {value!r}"
    return f"config key '{key}': {err['msg']}, got {value!r}"


def _run_checks(obj: BaseModel, prefix: str) -> None:
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        if isinstance(value, Section):
            _run_checks(value, f"{prefix}.{name}" if prefix else name)
    if isinstance(obj, Section):
        obj.check(prefix)


def parse_section(cls: type[BaseModel], data: dict[str, Any] | None, prefix: str = ""):
    """`cls` from a (nested) mapping: unknown keys and bad values raise a one-line ConfigError naming the key
    under `prefix` (e.g. "modip."); then every section's `check` runs, innermost first."""
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or cls.__name__}' must be a mapping, got {data!r}")
    try:
        obj = cls.model_validate(dict(data or {}))
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda r: r["type"] != "extra_forbidden")  # unknown keys first
        raise ConfigError(_message(cls, errors[0], prefix)) from None
    _run_checks(obj, prefix.rstrip("."))
    return obj
