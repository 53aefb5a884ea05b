"""The registry of methods: every built-in method by name, and lookup with a hint for a misspelt name.

Why: the harness, the CLI and the tests name a method by a string (`--method modip`) and need its class. Each
method registers itself with `methods.base.register` when its package is imported; this package imports the
built-in ones, so it sits above them all. The layers of `methods/`, each importing only from those below it:
  methods/common (networks, DP, buffers, normalisers, config sections)
  <- methods/base.py (the contract), methods/dp_method.py and critic_dp.py (the DP-method bases)
  <- one folder per method (methods/<name>)
  <- methods/registry (here).
Importing it imports every method (and so torch); a light module (bench.config, the CLI) imports it where it
needs a method class.
"""
from __future__ import annotations

import difflib

from methods import base, bc_dp, bc_gauss, dppo, dsrl, idql, modip, parl, tdmpc2
from methods.base import Method, MethodError

# The built-in methods' packages: importing each registers its method under its name.
BUILTIN = (bc_gauss, bc_dp, modip, dppo, tdmpc2, idql, parl, dsrl)


def registered_methods() -> dict[str, type[Method]]:
    """Every registered method by name: the built-in ones and any registered since."""
    return base.registered()


def get_method_class(name: str) -> type[Method]:
    methods = base.registered()
    if name not in methods:
        close = difflib.get_close_matches(name, list(methods), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(methods))})"
        raise MethodError(f"unknown method '{name}'{hint}")
    return methods[name]
