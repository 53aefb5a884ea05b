"""The registry of methods: every method by name, and lookup with a hint for a misspelt name.

Why: the harness, the CLI and the tests name a method by a string (`--method modip`) and need its class. Each
method registers itself with `methods.base.register` when its package is imported; this package imports every
method package, found on disk: each folder of `methods/` with a config.py (its config section). A method package
that fails to import is an error here, never skipped. The layers of `methods/`, each importing only from those
below it:
  methods/common (networks, DP, buffers, normalisers, config sections)
  <- methods/base.py (the contract), methods/dp_method.py, critic_dp.py and on_policy.py (the bases)
  <- one folder per method (methods/<name>)
  <- methods/registry (here).
Importing it imports every method (and so torch); a light module imports it where it needs a method class.
What the config layer and the CLI need of a method before it is built (its config section, actors, whether it
is built on the shared DP) is in methods/catalog, read from each method's config.py alone, without torch.
"""
from __future__ import annotations

import difflib
import importlib
from pathlib import Path

from methods import base
from methods.base import Method
from methods.common.section import MethodError

METHODS_DIR = Path(__file__).resolve().parents[1]


def method_packages() -> list[str]:
    """The method packages on disk: the folders of methods/ that hold a config.py."""
    return sorted(p.parent.name for p in METHODS_DIR.glob("*/config.py") if (p.parent / "__init__.py").exists())


def _discover() -> None:
    """Import every method package; each registers its method."""
    for folder in method_packages():
        importlib.import_module(f"methods.{folder}")


_discover()


def registered_methods() -> dict[str, type[Method]]:
    """Every registered method by name: those found on disk and any registered since."""
    return base.registered()


def get_method_class(name: str) -> type[Method]:
    methods = base.registered()
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(methods))})"
        raise MethodError(f"unknown method '{name}'{hint}")
    return methods[name]
