"""The catalog of methods: what the harness knows of each method without importing it, and so without torch.

Why: `mbench list methods`, `mbench config METHOD` and the config layer (bench/config, bench/sweep/spec.py) need a
method's name, its config section (with its presets and suite defaults), its actors and whether it is built on
the shared DP (its runs then have the `dp` and `common_start` sections), and importing a method imports torch,
which takes seconds. Each method declares these in its torch-free config.py: its section, `ACTORS` (with
`SELECTION`, how each actor picks its action at evaluation, which runs record for the reports) and `USES_DP`
(methods/base.py says the contract). This package finds the method packages on disk as the registry does (each
folder of methods/ with a config.py and an __init__.py) and loads their config.py alone, never the package's
__init__.py (which imports the method): each from its file, under its own name (methods.<name>.config) in
sys.modules, so that the method package, when it is imported, takes the same module and the same section class.
A config.py that fails to load, or declares no ACTORS, SELECTION or USES_DP, is an error here, never skipped.

The classes are in methods/registry, which checks that each agrees with its card here.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from methods.common.section import MethodError, Section
from methods.common.selection import RULES

METHODS_DIR = Path(__file__).resolve().parents[1]


def method_packages() -> list[str]:
    """The method packages on disk: the folders of methods/ that hold a config.py (and an __init__.py)."""
    return sorted(p.parent.name for p in METHODS_DIR.glob("*/config.py") if (p.parent / "__init__.py").exists())


@dataclasses.dataclass(frozen=True)
class MethodCard:
    """One method as its config.py declares it; the attributes that the config layer reads off a method class
    (`name`, `Config`, `actors`, `uses_dp`, `uses_pretrained_dp`) have the class's names and values."""

    name: str
    Config: type[Section]
    actors: tuple[str, ...]
    uses_dp: bool
    selection: dict[str, str] = dataclasses.field(default_factory=dict)  # actor -> how it picks its action

    @property
    def uses_pretrained_dp(self) -> bool:
        """A method built on the shared DP starts from the common start (methods/base.py derives it so)."""
        return self.uses_dp

    @property
    def doc(self) -> str:
        """The method package's docstring, read from its __init__.py without running it."""
        return ast.get_docstring(ast.parse((METHODS_DIR / self.name / "__init__.py").read_text()), clean=False) or ""


def _card(folder: str, module: ModuleType) -> MethodCard:
    """A method's card from its config module: the section that carries its presets, ACTORS and USES_DP."""
    sections = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Section)
                and v.__module__ == module.__name__ and "presets" in v.__dict__]
    actors, uses_dp = getattr(module, "ACTORS", None), getattr(module, "USES_DP", None)
    where = f"methods/{folder}/config.py"
    if len(sections) != 1:
        raise TypeError(f"{where} must define one section that carries the method's presets (its Config), "
                        f"found {[c.__name__ for c in sections]}")
    if not (isinstance(actors, tuple) and actors and all(isinstance(a, str) and a for a in actors)):
        raise TypeError(f"{where} must declare ACTORS, a non-empty tuple of the actors' names, got {actors!r}")
    if not isinstance(uses_dp, bool):
        raise TypeError(f"{where} must declare USES_DP (True for a method built on the shared DP), got {uses_dp!r}")
    selection = getattr(module, "SELECTION", None)
    if not (isinstance(selection, dict) and set(selection) == set(actors) and set(selection.values()) <= set(RULES)):
        raise TypeError(f"{where} must declare SELECTION, each actor's action-selection rule at evaluation (one of "
                        f"{RULES}, methods/common/selection.py), got {selection!r}")
    return MethodCard(name=folder, Config=sections[0], actors=actors, uses_dp=uses_dp,
                      selection={a: selection[a] for a in actors})


def _discover() -> dict[str, MethodCard]:
    """Every method package's card, each from its config.py alone: the file is run as the module
    methods.<name>.config, which its package, imported later, takes from sys.modules as it is."""
    cards = {}
    for folder in method_packages():
        name = f"methods.{folder}.config"
        if name not in sys.modules:  # else its package has been imported, and the module with it
            spec = importlib.util.spec_from_file_location(f"methods.{folder}.config", METHODS_DIR / folder / "config.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
        cards[folder] = _card(folder, sys.modules[name])
    return cards


_CARDS = _discover()


def method_cards() -> dict[str, MethodCard]:
    """Every method on disk, by name."""
    return dict(_CARDS)


def method_card(name: str) -> MethodCard:
    """The card of method `name`; MethodError, with a hint, for a name that is none."""
    if name not in _CARDS:
        close = difflib.get_close_matches(name, list(_CARDS), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(_CARDS))})"
        raise MethodError(f"unknown method '{name}'{hint}")
    return _CARDS[name]
