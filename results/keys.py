"""Dotted keys and the closest valid key: how a setting is named across the project, and the one did-you-mean.

Why: a run's config (`--set`, its config_json in the store), a sweep file (`overrides`, `grid`, `per_method`,
`tune.params`, `ablation.axes`) and the analysis all name a setting by its dotted key (`modip.planner.horizon`),
and every typo in a key should be answered the same way. These two helpers live here, in the store's package,
because it is the one package that both the harness (bench, which imports analysis for its report commands)
and the analysis (which therefore must not import bench) may import; bench/config imports them from here.
"""
from __future__ import annotations

import difflib
from typing import Any


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; a non-mapping value ends a key."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def closest(name: str, options, prefix: str = "", cutoff: float = 0.4) -> str:
    """' (did you mean 'prefix+x'?)' for the closest option, else ' (valid keys: ...)'."""
    m = difflib.get_close_matches(name, list(options), n=1, cutoff=cutoff)
    if m:
        return f" (did you mean '{prefix}{m[0]}'?)"
    return f" (valid keys: {', '.join(prefix + o for o in sorted(options))})"
