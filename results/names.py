"""Names that become path components in the results store: run ids, sweep ids, sweep names.

Why: a name is joined into paths (`table=runs/sweep=<sweep_id>/<run_id>+a1.parquet`), so it is restricted to a
safe alphabet: no '/', no '..', no leading dot (temporary and hidden files start with '.'), no leading '_'
(reserved for compacted files), no '=' and no '+' (which separates a run id from its attempt).
"""
from __future__ import annotations

import re
from typing import Any

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")


def validate_name(name: Any, kind: str = "name") -> str:
    """Return `name` if it is safe as a single path component, else raise ValueError naming it."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise ValueError(
            f"invalid {kind} {name!r}: use 1-200 characters from [A-Za-z0-9_.-], starting with a letter or "
            "digit, with no '..' (names become paths in the results store)"
        )
    return name
