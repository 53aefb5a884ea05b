"""The base of every config section, and the errors a bad config raises: a bad key or value, an unknown method.

Why: a method declares its config as a pydantic model (one section: its own keys, typed, with defaults) and its
presets; the harness (bench/config) parses, layers and validates them. This module is all a method needs for
that, and it imports neither torch nor anything of the harness, so a config can be read and checked without
building a network.

A section model:
- forbids unknown keys (the harness names the closest valid one);
- coerces what pydantic's lax mode coerces (an int from 3.0 or "3", a bool from "true", a string from a
  number), nothing hand-written; NaN and infinities are refused;
- carries, for a method's own section, its `presets` and `suite_defaults` (class variables, set in the
  method's config.py);
- may define `check(self, prefix)`: the cross-field and range checks that a type cannot say, raising a one-line
  ConfigError that names the key. `prefix` is the section's dotted place in the run config (e.g. "idql.critic"),
  so that a section shared by several methods names its keys where they are.
"""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A bad config key or value. The message is one line that names the key and the fix."""


class MethodError(ValueError):
    """An unknown method name (methods/catalog and methods/registry look a method up by its name). It lives here,
    below every method, so that the light catalog raises the same error as the registry."""


class Section(BaseModel):
    """A config section: typed keys with defaults, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, allow_inf_nan=False,
                              protected_namespaces=())
    # A method's own section carries its labelled presets (name -> nested dict of sections, e.g. "demo",
    # "test") and its defaults per task suite (applied under presets and user overrides).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    suite_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    def check(self, prefix: str) -> None:
        """Cross-field and range checks (none by default); raise ConfigError naming `prefix`.key."""
