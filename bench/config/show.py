"""`mbench config METHOD [--task T] [--preset P] [--set K=V]`: every key of a run, its type and value.

Without a task: each key's type and class default. With a task: the resolved value of each key and the layer
that set it (bench/config/layers.py: default, suite, preset, sweep, per_method, set).
"""
from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel

from bench.config.layers import resolve
from bench.config.run import RunConfig
from methods.catalog import method_card
from methods.common.common_start_config import CommonStartConfig
from methods.common.dp_config import DPConfig


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "|".join(str(a) for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{inner}]" if args else name
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _keys(model: BaseModel, prefix: str, skip: frozenset[str] = frozenset()) -> list[tuple[str, str, Any]]:
    """(dotted key, type, value) of a section's scalar keys, then its subsections' (in field order)."""
    scalars, sections = [], []
    for name, field in type(model).model_fields.items():
        if name in skip or field.exclude:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sections += _keys(value, f"{prefix}{name}.")
        elif value is not None or name not in ("dp", "common_start"):
            scalars.append((prefix + name, _type_name(field.annotation), value))
    return scalars + sections


def _text(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def config_rows(method: str, task: str | None = None, overrides: list[str] | None = None) -> list[tuple[str, ...]]:
    """Rows (key, type, default) without a task; (key, type, value, layer) with one. `method` and `task` are
    chosen, not set, so they are not listed; dp.eval_sampler is listed only with a task (it copies
    eval.sampler)."""
    cls = method_card(method)
    if task is None:
        dp = DPConfig() if cls.uses_dp else None
        cs = CommonStartConfig() if cls.uses_pretrained_dp else None
        cfg = RunConfig(method=method, dp=dp, common_start=cs)
        rows = _keys(cfg, "", frozenset({"method", "task", "dp", "common_start"}))
        rows += _keys(cs, "common_start.") if cs is not None else []
        rows += _keys(dp, "dp.", frozenset({"eval_sampler"})) if dp is not None else []
        rows += _keys(cls.Config(), f"{method}.")
        return [(k, t, _text(v)) for k, t, v in rows]
    res = resolve(method, task, 0, overrides=overrides or [])
    cfg = res.cfg
    rows = _keys(cfg, "", frozenset({"method", "task", "dp", "common_start"}))
    rows += _keys(cfg.common_start, "common_start.") if cfg.common_start is not None else []
    rows += _keys(cfg.dp, "dp.") if cfg.dp is not None else []
    rows += _keys(cfg.section, f"{method}.")
    return [(k, t, _text(v), res.sources.get(k, "default")) for k, t, v in rows]


def format_rows(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) + "  " + r[-1] for r in rows)
