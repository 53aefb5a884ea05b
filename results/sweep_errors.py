"""A sweep file's errors in one line: pydantic validates, and its first error becomes a SweepError naming the key.

Why: a typo in a sweep file must fail at once, before anything is submitted or reported, with one line that
names the key and, for an unknown key, the closest valid one (`unknown key 'resources.cpu' (did you mean
'cpus'?)`). Validators that can say more than a type raise `bad_value(reason)` ("'<key>' <reason>", the key
filled in here) or a ValueError whose message names its keys itself.
"""
from __future__ import annotations

import re
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from results.keys import closest


class SweepError(ValueError):
    """A sweep file is malformed; the message is one line that names the problem."""


def bad_value(reason: str) -> PydanticCustomError:
    """A bad value of the key being validated; the message reads "'<dotted key>' <reason>"."""
    return PydanticCustomError("sweep_value", "{reason}", {"reason": reason})


def _model_in(tp: Any) -> tuple[type[BaseModel] | None, bool]:
    """The model a field holds (in a union, list or mapping), and whether a mapping's key comes first."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp, False
    for arg in get_args(tp):
        model, keyed = _model_in(arg)
        if model is not None:
            return model, keyed or get_origin(tp) is dict
    return None, False


def _owner(cls: type[BaseModel], loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that holds the key at `loc` (its last part)."""
    parts = list(loc[:-1])
    while parts:
        field = cls.model_fields.get(parts.pop(0))
        model, keyed = _model_in(field.annotation) if field is not None else (None, False)
        if model is None:
            return None
        if keyed and parts:
            parts.pop(0)  # a mapping's key, e.g. tune.params.<key>
        cls = model
    return cls


_EXPECTS = {"int": "an integer", "float": "a number", "bool": "true or false", "string": "a string",
            "list": "a list", "dict": "a mapping", "model": "a mapping", "finite": "a finite number"}


def _message(cls: type[BaseModel], err: dict[str, Any], prefix: str) -> str:
    loc = tuple(str(p) for p in err["loc"] if not isinstance(p, int))
    key = ".".join(p for p in (prefix, *loc) if p)
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "extra_forbidden":
        owner = _owner(cls, loc)
        return f"unknown key '{key}'{closest(loc[-1], list(owner.model_fields) if owner else [])}"
    if kind == "missing":
        return f"missing key '{key}'"
    if kind == "sweep_value":
        return f"'{key}' {ctx['reason']}" if key else ctx["reason"]
    if kind == "value_error":  # a message that names its keys itself
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error":
        options = re.findall(r"'([^']*)'", ctx["expected"])
        return f"'{key}' must be one of {', '.join(options)}, got {value!r}"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op, bound = next((o, ctx[k]) for k, o in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")) if k in ctx)
        return f"'{key}' must be {op} {bound}, got {value!r}"
    if kind == "too_short":
        return f"'{key}' must not be empty"
    expects = next((text for word, text in _EXPECTS.items() if kind.startswith(word)), None)
    if expects:
        return f"'{key}' must be {expects}, got {value!r}"
    return f"'{key}': {err['msg']}, got {value!r}"


def parse_part(cls: type[BaseModel], data: Any, where: str, prefix: str = ""):
    """`cls` from `data`; the first problem (unknown keys first) raises SweepError("<where>: <one line>"),
    naming its key under `prefix` (e.g. "ablation")."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        errors = sorted(e.errors(), key=lambda r: r["type"] != "extra_forbidden")
        raise SweepError(f"{where}: {_message(cls, errors[0], prefix)}") from None
