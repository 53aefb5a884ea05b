"""How many names a DP-method author meets: the size of the method contract, counted from the code.

A name is a public class attribute of the bases a DP method subclasses (`DPMethod` and `OnPolicy`, with what
they inherit from `Method`) that some registered DP method defines, overrides or uses (`self.<name>` in its
classes' bodies, or `<first parameter>.<name>` in the module-level functions of its package), plus the fields of
every context object the harness hands to a hook after construction (`ActorState`, to `act` and
`act_rollout`). Folding hooks into a dict or a catch-all context would not lower the count: the fields of a
context object count one by one.

Printed but not counted: what a method is built from (the constructor's `MethodContext` and the `TaskSpaces`
in it), the instance attributes the bases set (`self.cfg`, `self.dp`, ...), and the shared DP's own API
(methods/common/shared_dp.py), a block a method uses rather than part of the contract.

    python benchmarks/contract_names.py

It prints the bases' public names, the names each DP method meets, and on its last line the count.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BASE_MODULES = ("methods.base", "methods.dp_method", "methods.on_policy")


def public_names(*classes: type) -> set[str]:
    """Public class attributes of the given bases and their project bases (not object's, not abc's)."""
    out: set[str] = set()
    for cls in classes:
        for klass in cls.__mro__:
            if klass is object or not klass.__module__.startswith("methods"):
                continue
            out |= {n for n in vars(klass) if not n.startswith("_")}
    return out


def _self_attrs(node: ast.AST, name: str) -> set[str]:
    return {n.attr for n in ast.walk(node)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == name}


def used_names(cls: type, base_names: set[str]) -> set[str]:
    """The base names a method's own classes define, override or read (`self.<name>`), and those its package's
    module-level functions read on their first parameter (helpers that take the method, e.g. modip/distill.py)."""
    own: set[str] = set()
    classes = [k for k in cls.__mro__ if k.__module__.startswith("methods") and k.__module__ not in BASE_MODULES]
    for klass in classes:  # what its source defines (the base sets some class attributes itself: not counted)
        tree = ast.parse(inspect.getsource(klass))
        body = tree.body[0].body
        own |= {n.name for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))} & base_names
        own |= {t.id for n in body if isinstance(n, (ast.Assign, ast.AnnAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)} \
            & base_names
        own |= _self_attrs(tree, "self") & base_names
    pkg = Path(inspect.getfile(cls)).parent
    for f in sorted(pkg.glob("*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.args.args:
                own |= _self_attrs(node, node.args.args[0].arg) & base_names
    return own


def fields(obj: type) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def main() -> int:
    from methods.base import ActorState, MethodContext, TaskSpaces
    from methods.dp_method import DPMethod
    from methods.on_policy import OnPolicy
    from methods.registry import registered_methods

    base_names = public_names(DPMethod, OnPolicy)
    print(f"DPMethod and OnPolicy expose {len(base_names)} public names: {', '.join(sorted(base_names))}")
    met: set[str] = set()
    for name, cls in sorted(registered_methods().items()):
        if not issubclass(cls, DPMethod):
            continue
        used = used_names(cls, base_names)
        met |= used
        print(f"{name}: {len(used)} base names: {', '.join(sorted(used))}")
    ctx = {"ActorState": fields(ActorState)}
    for k, v in ctx.items():
        print(f"context {k} (handed to act, act_rollout): {len(v)} fields: {', '.join(v)}")
    print(f"not counted: the constructor's MethodContext ({', '.join(fields(MethodContext))}) with TaskSpaces "
          f"({', '.join(fields(TaskSpaces))}); the bases' instance attributes; the shared DP's API")
    ctx_names = {f"{k}.{n}" for k, v in ctx.items() for n in v}
    total = len(met) + len(ctx_names)
    print(f"contract_names: a DP-method author meets {total} names ({len(met)} of the bases: "
          f"{', '.join(sorted(met))}; {len(ctx_names)} context fields; the bases expose {len(base_names)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
