"""How many names a DP-method author meets: the size of the method contract, counted from the code.

A name is a public attribute of the base a DP method subclasses (`DPMethod`, with what it inherits from
`Method`) that some registered DP method defines, overrides or uses (`self.<name>` in its package's code), plus
the fields of every context object the harness hands to a hook (`MethodContext`, `TaskSpaces`, `ActorState`,
and the progress object of the loops, where there is one). Folding hooks into a dict or a catch-all context
would not lower the count: the fields of a context object count one by one.

    python benchmarks/contract_names.py

It prints the base's public names, the names each DP method meets, and on its last line the count.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def public_names(cls: type) -> set[str]:
    """Public attributes of cls and its project bases (not object's, not pydantic's)."""
    out: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or not klass.__module__.startswith("methods"):
            continue
        out |= {n for n in vars(klass) if not n.startswith("_")}
    return out


def used_names(cls: type, base_names: set[str]) -> set[str]:
    """The base's names that a method class's package defines in a class body or reads as `self.<name>`."""
    pkg = Path(inspect.getfile(cls)).parent
    files = [pkg / f for f in sorted(p.name for p in pkg.glob("*.py"))]
    own = set()
    for klass in cls.__mro__:  # project classes between the method and the base (e.g. a critic-DP base)
        if klass.__module__.startswith("methods") and klass.__module__ not in ("methods.base",
                                                                                 "methods.dp_method"):
            own |= {n for n in vars(klass) if n in base_names}
            files.append(Path(inspect.getfile(klass)))
    for f in set(files):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                if node.attr in base_names:
                    own.add(node.attr)
    return own


def context_fields() -> dict[str, set[str]]:
    """Fields of the context objects handed to hooks."""
    import methods.base as base

    out = {}
    for name in ("MethodContext", "TaskSpaces", "ActorState", "LoopProgress"):
        obj = getattr(base, name, None)
        if obj is None:
            continue
        fields = {f.name for f in dataclasses.fields(obj)} if dataclasses.is_dataclass(obj) else set()
        fields |= {n for n, v in vars(obj).items() if not n.startswith("_") and callable(v)}
        out[name] = fields
    return out


def main() -> int:
    from methods.registry import registered_methods
    from methods.dp_method import DPMethod

    base_names = public_names(DPMethod)
    print(f"DPMethod exposes {len(base_names)} public names: {', '.join(sorted(base_names))}")
    met: set[str] = set()
    for name, cls in sorted(registered_methods().items()):
        if not issubclass(cls, DPMethod):
            continue
        used = used_names(cls, base_names)
        met |= used
        print(f"{name}: {len(used)} base names: {', '.join(sorted(used))}")
    ctx = context_fields()
    ctx_names = set().union(*ctx.values()) if ctx else set()
    for k, v in ctx.items():
        print(f"context {k}: {len(v)} fields: {', '.join(sorted(v))}")
    total = len(met | {f"ctx.{n}" for n in ctx_names})
    print(f"contract_names: a DP-method author meets {total} names ({len(met)} of the base, {len(ctx_names)} "
          f"context fields; the base exposes {len(base_names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
